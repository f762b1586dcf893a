"""Batch operations on many cases: what `manage.py align_batch` does.

    rows = batch.rows_from_csv(path, action)          # or rows_from_ids([1, 2]) / default_rows(action)
    outcomes = batch.run(action, rows, dry_run=False, concurrency=4, on_outcome=print)

Every case goes through the engine and the outbound service, exactly as a click in the
staff portal would: the state, the actor, the flag and the effect's own input are
checked first (a case that fails a check is *skipped* with the reason, and nothing is
sent or written for it), every call is an OutboundAttempt with its idempotency key,
every outcome a case note and every transition a StateLog row.

Who acts:

- `accept` (accept_clincheck) and `upload-assets` (upload_assets) run as the system
  (by=None), which the workflow table allows for both;
- `revise` (request_revision) is a provider's action: it is sent as the provider on the
  case's prescription, on their behalf, and a case note says so. A revision request
  whose call failed is re-sent as recorded (the provider's own comments, the same
  idempotency key) through the outbound retry; only a case with no failed request for its
  pending plan is sent the file's comments;
- `retry-failed` is the staff portal's Retry button: the case's last failed call is
  re-sent with its key, as whoever first sent it.

Calls run in this process (never queued to Celery, whatever ALIGN_EXECUTION says), up
to `concurrency` at a time in threads, each case in its own thread call; each thread
keeps one database connection for the run, and they are closed when it ends. With
`processes` > 1 (PostgreSQL), the cases are shared among that many forked worker
processes, each with `concurrency` threads and its own connections, so that every core
does the Python work; the outcomes come back to the calling process as they finish.

One concern a module: selection.py (CSV files, case ids, default selections), actions.py
(each action's plan for a case, decided by `engine.preflight`), runner.py (sending, in
threads through pool.py), report.py (the outcomes and the CSV report).
"""

from .actions import ACTIONS, DEFAULT_COMMENTS, Accept, Action, Busy, Plan, RetryFailed, Revise, Skip, UploadAssets
from .report import (
    BUSY,
    BUSY_WORDS,
    DONE,
    FAILED,
    OUTCOMES,
    REPORT_COLUMNS,
    SKIPPED,
    WOULD_DO,
    RowOutcome,
    counts,
    write_report,
)
from .runner import effective_concurrency, effective_processes, process, run
from .selection import (
    COLUMN_MEANINGS,
    COMMENTS_COLUMN,
    ID_COLUMNS,
    OLD_NAMES,
    BatchInputError,
    Row,
    columns_read,
    default_rows,
    is_case_id,
    parse_case_ids,
    rows_from_csv,
    rows_from_ids,
)

__all__ = [
    "ACTIONS",
    "BUSY",
    "BUSY_WORDS",
    "COLUMN_MEANINGS",
    "COMMENTS_COLUMN",
    "DEFAULT_COMMENTS",
    "DONE",
    "FAILED",
    "ID_COLUMNS",
    "OLD_NAMES",
    "OUTCOMES",
    "REPORT_COLUMNS",
    "SKIPPED",
    "WOULD_DO",
    "Accept",
    "Action",
    "BatchInputError",
    "Busy",
    "RowOutcome",
    "Plan",
    "RetryFailed",
    "Revise",
    "Row",
    "Skip",
    "UploadAssets",
    "columns_read",
    "counts",
    "default_rows",
    "effective_concurrency",
    "effective_processes",
    "is_case_id",
    "parse_case_ids",
    "process",
    "rows_from_csv",
    "rows_from_ids",
    "run",
    "write_report",
]
