"""CSV exports: the staff case list (with its filters) and one case's full history.

Rows are streamed: the list is read in chunks (QuerySet.iterator) and each line is sent
as it is written, so 10,000 cases are never held in memory at once. Every cell that a
spreadsheet would read as a formula (starting with = + - @, a tab or a carriage return)
is prefixed with an apostrophe (OWASP's advice on CSV injection)."""

import csv
from datetime import datetime

from django.utils import timezone

from align_workflow.cases.models import CaseNote
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow.history import state_logs
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000

LIST_HEADER = [
    "case number",
    "patient last name",
    "patient first name",
    "MRN",
    "provider",
    "state",
    "state since",
    "needs attention",
    "created",
]
HISTORY_HEADER = ["when", "kind", "what", "detail", "by"]


def neutralise(value) -> str:
    """A cell as text a spreadsheet shows as it is, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _when(moment: datetime | None) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds") if moment else ""


class _Line:
    """A file-like object whose write() returns what was written (for csv.writer)."""

    def write(self, value):
        return value


def csv_lines(header, rows):
    """The CSV text, one line at a time: the header, then each row, every cell neutralised."""
    writer = csv.writer(_Line())
    yield writer.writerow([neutralise(cell) for cell in header])
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def case_list_rows(cases):
    """The staff list's rows (a queryset from selectors.staff_cases), read in chunks."""
    for case in cases.iterator(chunk_size=CHUNK):
        prescription = getattr(case, "prescription", None)
        yield [
            case.case_number,
            case.patient.last_name,
            case.patient.first_name,
            case.patient.mrn,
            prescription.provider.account_name if prescription else "",
            wf.state_label(case.state),
            _when(case.state_changed_at),
            "yes" if case.needs_attention else "no",
            _when(case.created),
        ]


def _who(user) -> str:
    return user.get_username() if user is not None else "Align / automation"


def case_history_rows(case):
    """Every state change, note, call to Align and event from Align of the case, oldest
    first (the case page's timeline shows the newest few hundred; this is all of it)."""
    entries = [
        (
            log.timestamp,
            "state",
            f"{wf.trigger_words(log.transition)}: {wf.state_label(log.source_state or '')} → {wf.state_label(log.state)}",
            log.description or "",
            _who(log.by),
        )
        for log in state_logs(case)
    ]
    entries += [
        (note.created, "note", "Note", note.text, _who(note.author) if note.author_id else "")
        for note in CaseNote.objects.filter(case=case).select_related("author").order_by("created", "id")
    ]
    for attempt in OutboundAttempt.objects.filter(case=case).select_related("by").order_by("created", "id"):
        title = f"{attempt.label} (try {attempt.attempt}, {attempt.get_status_display().lower()})"
        detail = " ".join(
            part
            for part in [
                f"HTTP {attempt.http_status}" if attempt.http_status else "",
                attempt.error_code,
                attempt.error,
            ]
            if part
        )
        who = (attempt.by.get_full_name() or attempt.by.get_username()) if attempt.by_id else "automatic"
        when = attempt.finished_at or attempt.started_at or attempt.created
        entries.append((when, "call to Align", title, detail, who))
    entries += [
        (
            event.received_at,
            "event from Align",
            f"{event.type} ({event.status})",
            " — ".join(part for part in [event.summary, event.status_detail] if part),
            "Align",
        )
        for event in InboundEvent.objects.filter(case=case).order_by("received_at", "id")
    ]
    entries.sort(key=lambda e: e[0])
    for when, *rest in entries:
        yield [_when(when), *rest]
