"""The case page's timeline and the facts of its Align panel.

One entry per step of the case, newest first: a state change with the calls to Align that
made it (numbered tries: try 1, try 2, ...), the case notes written while it ran and the
event from Align that caused it, folded in. The calls of a step that has not happened
(failed, waiting for a retry, not sent) make an entry of their own; a note or an event that
belongs to no step (a person's note, a sales order from Align) is an entry too.

Everything is read with a fixed number of queries, however long the history."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from django.conf import settings

from align_workflow.cases.models import CaseAsset, CaseNote
from align_workflow.integration.models import AlignCaseStatus, InboundEvent
from align_workflow.workflow.history import state_logs
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf

# A note or an event this close to a step's call or state change belongs to that step (they
# are written in the same transaction or right after it).
NEAR = timedelta(seconds=2)
# How much history one page shows of each kind (the newest).
LIMIT = 200


@dataclass(frozen=True)
class Try:
    """One call to Align of a step."""

    number: int
    when: datetime
    outcome: str  # "accepted", "failed", "failed, needs a person", "in progress", "not sent"
    detail: str = ""
    failed: bool = False
    retry_at: datetime | None = None  # the automatic retry planned after it


@dataclass
class TimelineEntry:
    when: datetime
    kinds: set  # facets for the filter: "state", "attempt", "event", "note"
    title: str
    outcome: str = ""
    who: str = ""
    failed: bool = False
    detail: str = ""
    tries: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    events: list = field(default_factory=list)  # Align's events folded in: (when, words, type, detail)
    trigger: str = ""  # the step's technical name (small print for support)
    by_id: int | None = None  # the person who did the step (None: Align or automation)
    screenshot: CaseAsset | None = None
    screenshot_url: str = ""  # where the page shows it (set by the view)

    @property
    def kind(self):
        """The main kind: "state", "attempt", "event" or "note"."""
        return next(k for k in ("state", "attempt", "event", "note") if k in self.kinds)

    @property
    def css(self):
        classes = [f"tl-{k}" for k in sorted(self.kinds)]
        return " ".join(classes + (["tl-failed"] if self.failed else []))


def _who(user):
    if user is not None:
        return user.get_full_name() or user.get_username()
    return "automatic"


def _try_of(number, attempt):
    retry_at = attempt.next_retry_at if attempt.failed else None
    if attempt.status == OutboundAttempt.Status.SUCCEEDED:
        outcome = "accepted by Align"
    elif attempt.status == OutboundAttempt.Status.FAILED_RETRYABLE:
        outcome = "failed, retried automatically" if retry_at else "failed"
    elif attempt.status == OutboundAttempt.Status.FAILED_PERMANENT:
        outcome = "failed, needs a person"
    elif attempt.status == OutboundAttempt.Status.SKIPPED:
        outcome = "not sent"
    else:
        outcome = "in progress"
    # A call Align accepted has its case note ("Align accepted ...") in the entry already.
    http = f"HTTP {attempt.http_status}" if attempt.http_status and attempt.http_status != 200 else ""
    detail = " ".join(part for part in (http, attempt.error) if part)
    return Try(
        number=number,
        when=attempt.finished_at or attempt.started_at or attempt.created,
        outcome=outcome,
        detail=detail,
        failed=attempt.failed,
        retry_at=retry_at,
    )


# How a step whose calls did not change the state reads, by the status of its last call.
OPEN_STEP = {
    OutboundAttempt.Status.PENDING: "waiting to be sent to Align",
    OutboundAttempt.Status.IN_FLIGHT: "being sent to Align",
    OutboundAttempt.Status.FAILED_RETRYABLE: "failed",
    OutboundAttempt.Status.FAILED_PERMANENT: "failed",
    OutboundAttempt.Status.SKIPPED: "not sent",
    OutboundAttempt.Status.SUCCEEDED: "accepted by Align, nothing changed here",
}


def _step_entries(logs, attempts):
    """A step entry per state change, with the calls that made it; then one per step whose
    calls did not (yet) change the state."""
    pending = list(attempts)  # oldest first
    found = []
    for log in logs:
        calls = [a for a in pending if a.step == log.transition and a.created <= log.timestamp]
        pending = [a for a in pending if a not in calls]
        entry = TimelineEntry(
            when=log.timestamp,
            kinds={"state"} | ({"attempt"} if calls else set()),
            title=wf.step_done(log.transition),
            outcome=f"The case is now {wf.state_label(log.state)}.",
            who=_who(log.by),
            detail=log.description or "",
            tries=[_try_of(n, a) for n, a in enumerate(calls, 1)],
            trigger=log.transition,
            by_id=log.by_id,
        )
        # When it ran: each call, and the moment the state changed (not the hours between
        # a failed try and its retry, when anything else may have happened).
        found.append((entry, [(log.timestamp, log.timestamp)] + [(a.created, _end(a)) for a in calls]))
    by_step = {}
    for attempt in pending:
        by_step.setdefault(attempt.step, []).append(attempt)
    for step, calls in by_step.items():
        tries = [_try_of(n, a) for n, a in enumerate(calls, 1)]
        last = tries[-1]
        entry = TimelineEntry(
            when=last.when,
            kinds={"attempt"},
            title=f"{wf.trigger_label(step)}: {OPEN_STEP.get(calls[-1].status, 'not done')}",
            outcome=f"Last try {last.outcome}.",
            who=_who(calls[-1].by),
            failed=last.failed,
            tries=tries,
            trigger=step,
            by_id=calls[-1].by_id,
        )
        found.append((entry, [(a.created, _end(a)) for a in calls]))
    return found


def _end(attempt):
    return attempt.finished_at or attempt.started_at or attempt.created


def _owner(when, steps, author_id=None):
    """The step a note written at `when` belongs to: the one running then (the latest to
    start, when calls overlap), else one that ran within NEAR of it; None for neither. A
    person's note belongs only to a step that person did."""
    if author_id is not None:
        steps = [(entry, windows) for entry, windows in steps if entry.by_id == author_id]
    running = [(start, entry) for entry, windows in steps for start, end in windows if start <= when <= end]
    if running:
        return max(running, key=lambda found: found[0])[1]
    near = [
        (min(abs(when - start), abs(when - end)), entry)
        for entry, windows in steps
        for start, end in windows
        if start - NEAR <= when <= end + NEAR
    ]
    return min(near, key=lambda found: found[0])[1] if near else None


def _event_status(event):
    status = ((event.payload or {}).get("data") or {}).get("status")
    return status if isinstance(status, str) else ""


def _event_words(event):
    status = _event_status(event)
    return f"Align's status: {wf.align_status_label(status)}" if status else f"Align: {event.get_type_display()}"


def _caused_trigger(event):
    """The step this event fires, if it fires one (states/ EVENT_TRIGGERS)."""
    status = _event_status(event)
    return wf.EVENT_TRIGGERS.get(f"{event.type}:{status}" if status else event.type)


def _cause_of(event, steps):
    """The state change this applied event made: a step it fires, done by nobody, within
    NEAR of when the event was applied (the nearest; each step has one cause)."""
    trigger = _caused_trigger(event)
    if not trigger or event.applied_at is None or event.status != InboundEvent.Status.APPLIED:
        return None
    candidates = [
        entry
        for entry, _ in steps
        if entry.trigger == trigger
        and "state" in entry.kinds
        and entry.by_id is None
        and not entry.events
        and abs(event.applied_at - entry.when) <= NEAR
    ]
    return min(candidates, key=lambda entry: abs(event.applied_at - entry.when), default=None)


def case_timeline(case) -> list[TimelineEntry]:
    """The case's timeline, newest first (five queries)."""
    logs = list(state_logs(case))
    attempts = list(OutboundAttempt.objects.filter(case=case).select_related("by").order_by("-created", "-id")[:LIMIT])[
        ::-1
    ]
    notes = list(CaseNote.objects.filter(case=case).select_related("author").order_by("-created", "-id")[:LIMIT])
    events = list(
        InboundEvent.objects.filter(case=case)
        .only("event_id", "type", "summary", "status", "status_detail", "received_at", "applied_at", "payload")
        .order_by("-received_at", "-id")[:LIMIT]
    )
    shots = list(CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, removed=False))

    steps = _step_entries(logs, attempts)
    entries = [entry for entry, _ in steps]
    for note in notes[::-1]:
        owner = _owner(note.created, steps, note.author_id)
        if owner is not None:
            owner.notes.append(note.text)
            continue
        entries.append(
            TimelineEntry(
                when=note.created,
                kinds={"note"},
                title="Note",
                who=_who(note.author) if note.author_id else "",
                detail=note.text,
            )
        )
    for event in events[::-1]:
        owner = _cause_of(event, steps)
        if owner is not None:
            owner.events.append((event.received_at, _event_words(event), event.type, event.status_detail))
            owner.kinds.add("event")
            owner.who = "Align"
            continue
        entries.append(
            TimelineEntry(
                when=event.received_at,
                kinds={"event"},
                title=_event_words(event),
                outcome=f"{event.get_status_display()}." if event.status != InboundEvent.Status.APPLIED else "",
                detail=" — ".join(part for part in (event.summary, event.status_detail) if part),
                failed=event.status == InboundEvent.Status.FAILED,
                trigger=event.type,
            )
        )
    for entry in entries:
        if entry.trigger == "approve_plan" and shots:
            # The screenshot stored by this approval: the newest one written before it.
            before = [s for s in shots if s.created <= entry.when + NEAR]
            entry.screenshot = max(before or shots, key=lambda s: (s.created, s.pk))
    return sorted(entries, key=lambda e: e.when, reverse=True)


@dataclass(frozen=True)
class PlannedRetry:
    label: str
    at: datetime
    number: int  # the try it will be


def planned_retry(case) -> PlannedRetry | None:
    """The automatic retry planned for the case's last failed call, if one is."""
    attempt = (
        OutboundAttempt.objects.filter(case=case, next_retry_at__isnull=False)
        .filter(status__in=(OutboundAttempt.Status.FAILED_RETRYABLE, OutboundAttempt.Status.FAILED_PERMANENT))
        .order_by("-created", "-id")
        .first()
    )
    if attempt is None:
        return None
    tries = OutboundAttempt.objects.filter(case=case, step=attempt.step, created__lte=attempt.created).count()
    return PlannedRetry(wf.trigger_label(attempt.step), attempt.next_retry_at, tries + 1)


def align_status(case):
    """Align's latest status of the case (AlignCaseStatus), or None before any."""
    return AlignCaseStatus.objects.filter(case=case).first()


def tracking_url(carrier: str, number: str) -> str:
    """The carrier's tracking page for the number (CARRIER_TRACKING_URLS), or "" when the
    carrier has no template."""
    if not carrier or not number:
        return ""
    templates = {name.strip().upper(): url for name, url in settings.CARRIER_TRACKING_URLS.items()}
    template = templates.get(carrier.strip().upper())
    return template.replace("{number}", quote(number.strip(), safe="")) if template else ""


def newest_screenshot(case):
    """The case's newest acceptance screenshot (the one the approval stands on), or None."""
    return (
        CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, removed=False)
        .order_by("-created", "-id")
        .first()
    )


def screenshot_of(case, asset_id):
    """The case's acceptance screenshot `asset_id` (DoesNotExist for anything else)."""
    return CaseAsset.objects.get(pk=asset_id, case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, removed=False)
