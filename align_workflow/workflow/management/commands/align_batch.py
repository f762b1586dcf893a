"""Batch operations on many cases (they replace the old CSV scripts).

    python manage.py align_batch accept                       # provider approved + purchased + screenshot
    python manage.py align_batch revise --csv revisions.csv   # case_id / case_number / mrn [, comments]
    python manage.py align_batch upload-assets --case-ids 12,15 --dry-run
    python manage.py align_batch retry-failed --concurrency 8 --report outcome.csv
    python manage.py align_batch accept --processes 2 --concurrency 8   # 2 worker processes (PostgreSQL)

The work itself is in align_workflow.workflow.batch; this module reads the options and
shows progress and the summary (control characters in case numbers, file names and
messages are printed as escapes). Exit status: 0 when nothing failed, 1 when a case
failed, was in progress elsewhere, or the run was interrupted, 2 when the input could
not be used (nothing sent).
"""

import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager, nullcontext

from django.core.management.base import BaseCommand, CommandError

from align_workflow.workflow import batch
from align_workflow.workflow.terminal import terminal_safe

DEFAULT_CONCURRENCY = 4
SHOWN_PER_REASON = 10
SHOWN_FAILURES = 50
BAR_WIDTH = 30


class Progress:
    """One plain line per case ("[12/300] C000123 accepted") when the output is not a
    terminal; on a terminal a bar that redraws itself, with failures printed above it."""

    def __init__(self, out, total, action, *, bar):
        self.out, self.total, self.action, self.bar = out, total, action, bar
        self.seen = 0
        self.counts = dict.fromkeys(batch.OUTCOMES, 0)
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, outcome):
        with self.lock:
            self.seen += 1
            self.counts[outcome.outcome] += 1
            line = f"[{self.seen}/{self.total}] {terminal_safe(outcome.line_text(self.action))}"
            if not self.bar:
                self.out.write(line)
                return
            if outcome.outcome in (batch.FAILED, batch.BUSY):
                self.out.write("\r\033[K" + line)
            self._draw()

    def _draw(self):
        filled = round(BAR_WIDTH * self.seen / self.total) if self.total else BAR_WIDTH
        elapsed = time.monotonic() - self.started
        rate = self.seen / elapsed if elapsed > 0 else 0
        left = f", {round((self.total - self.seen) / rate)}s left" if rate and self.seen < self.total else ""
        c = self.counts
        self.out.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.seen}/{self.total}  "
            f"done {c[batch.DONE]}  skipped {c[batch.SKIPPED]}  failed {c[batch.FAILED]}"
            + (f"  in progress elsewhere {c[batch.BUSY]}" if c[batch.BUSY] else "")
            + f"{left}\033[K",
            ending="",
        )
        self.out.flush()

    def close(self):
        if self.bar and self.seen:
            self.out.write("")


def _below_error(record):
    return record.levelno >= logging.ERROR


@contextmanager
def terminal_logs_quiet():
    """While the progress bar is drawn, log handlers writing to a terminal show errors
    only (one line per request would scatter the bar); files and other handlers keep
    everything."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    handlers = {
        h
        for lg in loggers
        for h in lg.handlers
        if isinstance(h, logging.StreamHandler) and getattr(h.stream, "isatty", lambda: False)()
    }
    for handler in handlers:
        handler.addFilter(_below_error)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(_below_error)


class Command(BaseCommand):
    help = (
        "Accept ClinChecks, re-send revision requests, upload assets or retry failed calls for many "
        "cases at once, through the workflow engine."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, title="actions")
        helps = {
            "accept": "send the ClinCheck acceptance (default: provider approved, aligners purchased, "
            "acceptance screenshot stored)",
            "revise": "re-send revision requests whose call failed (a file may add a comments column)",
            "upload-assets": "upload the STL assets of cases stuck in order created",
            "retry-failed": "retry the last failed call of every case that needs attention",
        }
        for name, action in batch.ACTIONS.items():
            sub = actions.add_parser(name, help=helps[name], description=helps[name])
            chosen = sub.add_mutually_exclusive_group()
            columns = ", ".join(batch.ID_COLUMNS)
            chosen.add_argument(
                "--csv",
                metavar="FILE",
                help=f"a CSV file with a header row naming one of {columns}"
                + (" and optionally comments" if action.takes_comments else "")
                + " (any order, any case; the old scripts' id, medical_record_number"
                + (", body, comment" if action.takes_comments else "")
                + " too)",
            )
            chosen.add_argument("--case-ids", metavar="IDS", help="case ids separated by commas, e.g. 12,15,18")
            sub.add_argument("--dry-run", action="store_true", help="list what would be done; send nothing")
            sub.add_argument(
                "--concurrency",
                type=int,
                default=None,
                metavar="N",
                help=f"send up to N cases at once (default {DEFAULT_CONCURRENCY}; 1 on SQLite)",
            )
            sub.add_argument(
                "--processes",
                type=int,
                default=1,
                metavar="N",
                help="share the cases among N worker processes, each sending up to --concurrency at once "
                "with its own database connections (default 1; PostgreSQL only)",
            )
            sub.add_argument(
                "--report",
                metavar="FILE",
                help="write every case's outcome to this CSV file "
                "(line, case_id, case_number, mrn, action, outcome, detail)",
            )

    def handle(
        self,
        *args,
        action,
        csv=None,
        case_ids=None,
        dry_run=False,
        concurrency=None,
        processes=1,
        report=None,
        **options,
    ):
        act = batch.ACTIONS[action]
        asked_for = concurrency
        concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
        if concurrency < 1:
            raise CommandError("--concurrency must be 1 or more.", returncode=2)
        if processes < 1:
            raise CommandError("--processes must be 1 or more.", returncode=2)
        columns = []
        try:
            if csv:
                rows, source = batch.rows_from_csv(csv, act, columns=columns), csv
            elif case_ids is not None:
                rows, source = batch.rows_from_ids(batch.parse_case_ids(case_ids)), "--case-ids"
            else:
                rows, source = batch.default_rows(act), act.selection_description
        except batch.BatchInputError as exc:
            raise CommandError(f"{terminal_safe(exc)} Nothing was sent.", returncode=2) from None
        report_file = self._open_report(report)
        try:
            workers, why = batch.effective_concurrency(concurrency)
            if why and asked_for is not None:
                self.stderr.write(f"Note: {why}")
            processes, why = batch.effective_processes(processes)
            if why:
                self.stderr.write(f"Note: {why}")
            mode = " (dry run: nothing is sent)" if dry_run else ""
            self.stdout.write(f"align_batch {act.name}: {len(rows)} case(s) from {terminal_safe(source)}{mode}.")
            if columns:
                self.stdout.write(f"Columns read: {terminal_safe('; '.join(columns))}.")
            bar = self.stdout.isatty() and not dry_run
            progress = Progress(self.stdout, len(rows), act, bar=bar)
            started = time.monotonic()
            with terminal_logs_quiet() if bar and options.get("verbosity", 1) < 2 else nullcontext():
                outcomes, interrupted = batch.run(
                    act, rows, dry_run=dry_run, concurrency=workers, processes=processes, on_outcome=progress
                )
            progress.close()
            elapsed = time.monotonic() - started

            if report_file is not None:
                batch.write_report(report_file, outcomes)
                report_file.close()
                report_file = None
            self._summary(act, outcomes, dry_run, elapsed, workers, processes, report)
        finally:
            if report_file is not None:
                report_file.close()

        counts = batch.counts(outcomes)
        if interrupted:
            raise CommandError(
                "Interrupted: the cases not started were not sent; run the same command again to do what is left.",
                returncode=1,
            )
        if counts[batch.FAILED]:
            raise CommandError(
                f"{counts[batch.FAILED]} case(s) failed (see above); run the same command again "
                "to retry them: cases already done are skipped.",
                returncode=1,
            )
        if counts[batch.BUSY]:
            raise CommandError(
                f"{counts[batch.BUSY]} case(s) in progress elsewhere (see above): another process is "
                "sending them, or one that was stopped mid-call holds them until its lease ends "
                "(ALIGN_CALL_LEASE_SECONDS); run the same command again after that.",
                returncode=1,
            )

    def _open_report(self, path):
        if not path:
            return None
        try:
            # Opened before anything is sent, so that an unwritable path costs nothing.
            return open(path, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise CommandError(
                f"--report {path}: cannot write it ({exc.strerror or exc}). Nothing was sent.", returncode=2
            ) from None

    def _summary(self, act, outcomes, dry_run, elapsed, workers, processes, report):
        counts = batch.counts(outcomes)
        if dry_run:
            self.stdout.write(
                f"Dry run: nothing was sent. {counts[batch.WOULD_DO]} would be sent, {counts[batch.SKIPPED]} skipped."
            )
        else:
            busy = f", {counts[batch.BUSY]} {batch.BUSY_WORDS}" if counts[batch.BUSY] else ""
            self.stdout.write(
                f"Done: {counts[batch.DONE]} {act.done_word}, {counts[batch.SKIPPED]} skipped, "
                f"{counts[batch.FAILED]} failed{busy}, in {elapsed:.1f}s ({workers} at a time"
                + (f" in each of {processes} processes" if processes > 1 else "")
                + ")."
            )
        for kind, title in ((batch.SKIPPED, "Skipped:"), (batch.BUSY, "In progress elsewhere:")):
            grouped = OrderedDict()
            for o in outcomes:
                if o.outcome == kind:
                    grouped.setdefault(o.detail, []).append(o.case_number or o.row.label)
            if grouped:
                self.stdout.write(title)
            for reason, who in grouped.items():
                more = f" and {len(who) - SHOWN_PER_REASON} more" if len(who) > SHOWN_PER_REASON else ""
                self.stdout.write(terminal_safe(f"  {reason} ({len(who)}): {', '.join(who[:SHOWN_PER_REASON])}{more}"))
        failed = [o for o in outcomes if o.outcome == batch.FAILED]
        if failed:
            self.stdout.write("Failed:")
            for o in failed[:SHOWN_FAILURES]:
                self.stdout.write(terminal_safe(f"  {o.case_number or o.row.label}: {o.detail}"))
            if len(failed) > SHOWN_FAILURES:
                self.stdout.write(
                    f"  ... and {len(failed) - SHOWN_FAILURES} more"
                    + (" (see the report)" if report else " (use --report FILE to see them all)")
                )
        if report:
            self.stdout.write(f"Report: {terminal_safe(report)}")
