"""Celery tasks (ALIGN_EXECUTION=celery). They only call the code the inline mode runs.

Both are idempotent: `align.run_attempt` is keyed by the attempt and sends it only if it
is still pending (a redelivered or duplicated message does nothing); `align.sweep`
claims each piece of due work with a conditional update before queueing it.
"""

import logging

from align_workflow.celery import app

from . import outbound, purchases

logger = logging.getLogger(__name__)


@app.task(name="align.run_attempt", acks_late=True, ignore_result=True)
def run_attempt_task(attempt_id):
    result = outbound.run_attempt(attempt_id)
    if result is not None:
        logger.info(
            "attempt %s: case %s now %s (done: %s; failed: %s)",
            attempt_id,
            result.case_id,
            result.state,
            ",".join(result.done) or "-",
            result.failed_step or "-",
        )


@app.task(name="align.sweep", ignore_result=True)
def sweep_task():
    """Queue every retry that is due and every attempt whose lease expired."""
    run, to_run = outbound.collect_due()
    for attempt_id in to_run:
        run_attempt_task.delay(attempt_id)
    sent = purchases.send_waiting()  # bought cases whose acceptance waited for the flag
    if sent:
        logger.info("align sweep: %s waiting acceptance(s) looked at", len(sent))
    if run.expired or to_run:
        logger.info("align sweep: %s expired, %s restarted, %s retries queued", run.expired, run.restarted, run.retried)
    return len(to_run)
