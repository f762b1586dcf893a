"""The case page's timeline: what happened to a case, newest first."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from align_workflow.cases.models import CaseNote
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow.history import state_logs
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    kind: str  # "state", "note", "attempt" or "event"
    title: str
    detail: str = ""
    who: str = ""
    failed: bool = False


def _who(user):
    if user is None:
        return "Align / automation"
    return user.get_username()


def _attempt_entries(case):
    """Calls to Align recorded for this case (OutboundAttempt rows), with their errors."""
    return [
        attempt_entry(a)
        for a in OutboundAttempt.objects.filter(case=case).select_related("by").order_by("-created", "-id")[:200]
    ]


def attempt_entry(attempt):
    title = f"Call to Align: {attempt.label} (try {attempt.attempt}, {attempt.get_status_display().lower()})"
    detail = " ".join(
        part for part in [f"HTTP {attempt.http_status}" if attempt.http_status else "", attempt.error] if part
    )
    if attempt.next_retry_at and attempt.failed:
        detail += f" Next automatic retry at {timezone.localtime(attempt.next_retry_at):%Y-%m-%d %H:%M:%S}."
    return TimelineEntry(
        when=attempt.finished_at or attempt.started_at or attempt.created,
        kind="attempt",
        title=title,
        detail=detail.strip(),
        who=_who(attempt.by) if attempt.by_id else "",
        failed=attempt.failed,
    )


def _event_entries(case):
    """Events Align sent about this case (once inbound events are stored)."""
    return [
        TimelineEntry(
            when=event.received_at,
            kind="event",
            title=f"Event from Align: {event.type} ({event.status})",
            detail=" — ".join(part for part in [event.summary, event.status_detail] if part),
            failed=event.status == InboundEvent.Status.FAILED,
        )
        for event in InboundEvent.objects.filter(case=case).order_by("-received_at", "-id")[:200]
    ]


def timeline(case) -> list[TimelineEntry]:
    """State changes, case notes, calls to Align and events from Align, newest first."""
    entries = [
        TimelineEntry(
            when=log.timestamp,
            kind="state",
            title=f"{wf.trigger_words(log.transition)}: {log.source_state} → {log.state}",
            detail=log.description or "",
            who=_who(log.by),
        )
        for log in state_logs(case)
    ]
    entries += [
        TimelineEntry(
            when=note.created,
            kind="note",
            title="Note",
            detail=note.text,
            who=_who(note.author) if note.author_id else "",
        )
        for note in CaseNote.objects.filter(case=case).select_related("author")[:500]
    ]
    entries += _attempt_entries(case)
    entries += _event_entries(case)
    return sorted(entries, key=lambda e: e.when, reverse=True)
