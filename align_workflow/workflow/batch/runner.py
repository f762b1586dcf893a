"""Running a batch: each case planned (actions.py) and sent through the engine and the
outbound services, up to `concurrency` at once (pool.py); one case's trouble never stops
the others."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import connection
from django.db.models import Subquery

from align_workflow.cases.models import Case, CaseNote

from .. import busy, outbound
from ..effects import EffectFailed
from ..engine import TransitionNotAllowed, fire, fire_checked
from ..pool import Interrupted, WorkerStopped, can_fork, run_each, run_each_in_processes
from .actions import Busy, Plan, Skip, refuse_if_busy
from .report import BUSY, DONE, FAILED, SKIPPED, WOULD_DO, RowOutcome
from .selection import Row

logger = logging.getLogger(__name__)


def _scrubbed(exc, case):
    return outbound.scrub(f"{type(exc).__name__}: {exc}", case.patient)[:500]


def _plan_for(action, row) -> tuple[Case, Plan]:
    try:
        # As it is now, not as selected; with the step of a call in flight for it, if any (one statement).
        case = (
            Case.objects.select_related("patient")
            .annotate(open_call_step=Subquery(busy.open_call_query().order_by("-id").values("step")[:1]))
            .get(pk=row.case.pk)
        )
    except Case.DoesNotExist:
        raise Skip("the case no longer exists") from None
    row.case = case
    refuse_if_busy(case)
    return case, action.plan(case, row)


def _execute(action, case, plan) -> tuple[str, str]:
    """Send one case as planned: (outcome, detail)."""
    if plan.retry:
        try:
            result = outbound.retry_here(case, step=plan.step, note=plan.note)
        except TransitionNotAllowed as exc:
            return (BUSY if exc.code == "in_progress" else SKIPPED), str(exc)
        if result.ok and not result.queued:
            return DONE, result.message
        if result.queued:
            return BUSY, "another process is sending it"
        if result.attempt_id is None:  # refused before anything was sent
            return SKIPPED, result.error
        return FAILED, result.message
    CaseNote.objects.create(case_id=case.pk, text=plan.note)
    try:
        if plan.checked is not None:
            log = fire_checked(case, action.trigger, by=plan.by, params=plan.checked)
        else:
            log = fire(case, action.trigger, by=plan.by, **plan.params)
    except TransitionNotAllowed as exc:
        if exc.code == "in_progress":
            return BUSY, str(exc)
        return SKIPPED, (action.wrong_state_reason(case) if exc.code == "wrong_state" else str(exc))
    except EffectFailed as exc:  # AlignCallFailed among them: the attempt and its note are recorded
        return FAILED, str(exc)
    return DONE, log.description or action.done_word


def process(action, row, *, dry_run=False) -> RowOutcome:
    """Check one row's case and, unless `dry_run`, send it. Never raises for one case's trouble."""
    if row.problem:
        return RowOutcome(row, action.name, SKIPPED, row.problem)
    case = row.case
    try:
        case, plan = _plan_for(action, row)
        if dry_run:
            return RowOutcome(row, action.name, WOULD_DO, plan.description)
        outcome, detail = _execute(action, case, plan)
    except Busy as exc:
        return RowOutcome(row, action.name, BUSY, str(exc))
    except Skip as exc:
        return RowOutcome(row, action.name, SKIPPED, str(exc))
    except Exception as exc:  # one case's unexpected error must not stop the others
        logger.exception("align_batch %s: case %s failed", action.name, getattr(case, "pk", None))
        return RowOutcome(row, action.name, FAILED, _scrubbed(exc, case))
    if plan.remark and outcome not in (SKIPPED, BUSY):
        return RowOutcome(row, action.name, outcome, f"{detail} ({plan.remark})", remark=plan.remark)
    return RowOutcome(row, action.name, outcome, detail)


def effective_concurrency(requested: int) -> tuple[int, str]:
    """The number of cases sent at once, and why it differs from `requested` ("" when it does not)."""
    requested = max(1, int(requested))
    if requested > 1 and connection.vendor == "sqlite":
        return 1, (
            "SQLite lets one process write at a time, so cases are sent one at a time "
            f"(--concurrency {requested} needs PostgreSQL)."
        )
    return requested, ""


def effective_processes(requested: int) -> tuple[int, str]:
    """The number of worker processes, and why it differs from `requested` ("" when it does not)."""
    requested = max(1, int(requested))
    if requested > 1 and connection.vendor == "sqlite":
        return (
            1,
            f"SQLite lets one process write at a time, so one process sends (--processes {requested} needs PostgreSQL).",
        )
    if requested > 1 and connection.in_atomic_block:  # a forked worker would share the open transaction
        return 1, f"the batch runs inside a database transaction, so one process sends (--processes {requested})."
    if requested > 1 and not can_fork():
        return 1, f"this system cannot fork worker processes, so one process sends (--processes {requested})."
    return requested, ""


def _packed(action, row, dry_run):
    """In a worker process: the outcome as plain values (the row stays with the parent)."""
    outcome = process(action, row, dry_run=dry_run)
    return outcome.outcome, outcome.detail, outcome.remark


def run(
    action,
    rows: list[Row],
    *,
    dry_run=False,
    concurrency=1,
    processes=1,
    on_outcome: Callable[[RowOutcome], None] | None = None,
) -> tuple[list[RowOutcome], bool]:
    """Process every row, up to `concurrency` at once in each of `processes` worker
    processes. Returns the outcomes in the rows' order and whether the run was
    interrupted (Ctrl-C: cases not started are reported as skipped; the ones in flight
    finish). A worker process that dies leaves its unfinished cases failed."""
    outcomes: dict[int, RowOutcome] = {}
    report = on_outcome or (lambda outcome: None)
    interrupted = False
    try:
        todo = [index for index, row in enumerate(rows) if not row.problem]
        if (concurrency > 1 or processes > 1) and len(todo) > 1:
            for index, row in enumerate(rows):
                if row.problem:  # nothing to look up or send: reported at once
                    outcomes[index] = process(action, row, dry_run=dry_run)
                    report(outcomes[index])
        else:
            todo = list(range(len(rows)))

        def reported(position, outcome):
            outcomes[todo[position]] = outcome
            report(outcome)

        if processes > 1:

            def unpacked(position, packed):
                reported(position, RowOutcome(rows[todo[position]], action.name, *packed))

            run_each_in_processes(
                lambda index: _packed(action, rows[index], dry_run),
                todo,
                processes=processes,
                workers=concurrency,
                name="align-batch",
                on_result=unpacked,
            )
        else:
            run_each(
                lambda index: process(action, rows[index], dry_run=dry_run),
                todo,
                workers=concurrency,
                name="align-batch",
                on_result=reported,
            )
    except WorkerStopped as exc:
        logger.error("align_batch %s: %s", action.name, exc)
        for index, row in enumerate(rows):
            if index not in outcomes:
                outcomes[index] = RowOutcome(
                    row, action.name, FAILED, f"not finished: {exc}; run the command again to do what is left"
                )
    except (Interrupted, KeyboardInterrupt):
        interrupted = True
        for index, row in enumerate(rows):
            if index not in outcomes:
                outcomes[index] = RowOutcome(row, action.name, SKIPPED, "not run: the batch was interrupted")
    return [outcomes[i] for i in range(len(rows))], interrupted
