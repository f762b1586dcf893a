"""Sending cases to Align: recorded attempts, "Send to Align", retries.

    from align_workflow.workflow import send_to_align, retry_case

    result = send_to_align(case, by=request.user)   # create patient -> order -> upload assets
    result = retry_case(case, by=request.user)      # the staff portal's Retry button

Every call to Align is an OutboundAttempt row, committed before the request goes out
(see models.py). The transitions themselves are fired by the engine; this package only
decides *which* step to run, records the attempts and their outcomes (with a case note
each), plans retries and flags cases that need a person. One concern a module:

- labels.py     how steps are named (from states/)
- keys.py       idempotency keys, reused by every retry of a step
- lifecycle.py  the attempt's own state machine: every status change of an attempt
- policy.py     retry policy: lease, backoff with jitter, how many attempts
- notes.py      the case notes' words, and scrubbing patient details from Align's messages
- outcomes.py   recording an attempt before the call and its outcome after
- runner.py     running a recorded attempt (in this process, or handed to Celery)
- services.py   send_to_align, retry_case, retry_here
- sweep.py      due retries and expired leases (align_retry_due, the Celery sweep)

Execution (settings.ALIGN_EXECUTION): `inline` runs an attempt in this process right
after the transaction that recorded it commits (synchronously when the caller has no
transaction open, as in a web request); `celery` hands it to a worker. Both run
`run_attempt`, the same code. `align_retry_due` (or the Celery sweep) runs the retries
that are due and takes over attempts whose process died (lease expired).
"""

from ..busy import open_attempt
from .keys import PERSISTED_PARAMS, key_scope, next_key, persisted_params
from .labels import ALIGN_TRIGGER_LABELS, trigger_label
from .notes import scrub
from .outcomes import (
    AttemptTaken,
    Failure,
    begin_attempt,
    enqueue,
    expire,
    record_failure,
    record_success,
    record_unsaved_success,
    skip,
)
from .policy import retry_delay
from .runner import SendResult, dispatch, run_attempt
from .services import (
    QUEUEABLE_STEPS,
    SEND_STEP_FROM,
    attempts_of,
    call_to_retry,
    fire_step,
    in_background,
    retry_case,
    retry_here,
    send_to_align,
)
from .sweep import DueRun, collect_due, run_due

__all__ = [
    "PERSISTED_PARAMS",
    "QUEUEABLE_STEPS",
    "SEND_STEP_FROM",
    "ALIGN_TRIGGER_LABELS",
    "AttemptTaken",
    "DueRun",
    "Failure",
    "SendResult",
    "attempts_of",
    "begin_attempt",
    "call_to_retry",
    "collect_due",
    "dispatch",
    "enqueue",
    "expire",
    "fire_step",
    "in_background",
    "key_scope",
    "next_key",
    "open_attempt",
    "persisted_params",
    "record_failure",
    "record_success",
    "record_unsaved_success",
    "retry_case",
    "retry_delay",
    "retry_here",
    "run_attempt",
    "run_due",
    "scrub",
    "send_to_align",
    "skip",
    "trigger_label",
]
