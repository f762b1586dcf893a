"""The outcome of each case of a batch, and the CSV report of them."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from .selection import Row

DONE, SKIPPED, FAILED, WOULD_DO = "done", "skipped", "failed", "would_do"
BUSY = "in_progress"  # another process holds the case (e.g. a run killed mid-call, until its lease ends)
OUTCOMES = (DONE, SKIPPED, FAILED, WOULD_DO, BUSY)
BUSY_WORDS = "in progress elsewhere"
REPORT_COLUMNS = ("line", "case_id", "case_number", "mrn", "action", "outcome", "detail")


@dataclass
class RowOutcome:
    row: Row
    action: str
    outcome: str
    detail: str = ""
    remark: str = ""  # something the user should know about how it was done (also in `detail`)

    @property
    def case_id(self):
        return self.row.case.pk if self.row.case else None

    @property
    def case_number(self):
        return self.row.case_number

    @property
    def mrn(self):
        return self.row.case.patient.mrn if self.row.case else ""

    def line_text(self, action) -> str:
        """The one-line outcome shown per case: "C000123 accepted", "C000124 skipped: already accepted"."""
        who = self.case_number or self.row.label
        if self.outcome == DONE:
            return (
                f"{who} {action.done_word}"
                + (f": {self.detail}" if action.detail_when_done else "")
                + (f" ({self.remark})" if self.remark and not action.detail_when_done else "")
            )
        if self.outcome == WOULD_DO:
            return f"{who} would {self.detail}"
        if self.outcome == BUSY:
            return f"{who} {BUSY_WORDS}: {self.detail}"
        return f"{who} {self.outcome}: {self.detail}"


def _cell(value):
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_report(handle, outcomes: list[RowOutcome]) -> None:
    writer = csv.writer(handle)
    writer.writerow(REPORT_COLUMNS)
    for o in outcomes:
        writer.writerow(
            [_cell(v) for v in (o.row.line, o.case_id, o.case_number, o.mrn, o.action, o.outcome, o.detail)]
        )


def counts(outcomes: list[RowOutcome]) -> dict[str, int]:
    return {name: sum(1 for o in outcomes if o.outcome == name) for name in OUTCOMES}
