"""The lifecycle of a call to Align (an OutboundAttempt), as a state machine.

Every status an attempt takes is written here and nowhere else:

    created as   pending (a runner will send it) or in_flight (sent by this process now)

    move       from                          to
    start      pending                       in_flight         a process took it to send it
    skip       pending                       skipped           refused before sending
    succeed    in_flight, failed_retryable   succeeded         Align accepted it (also when the
                                                               answer came after the lease ran out)
    fail       in_flight                     failed_retryable  timeout, connection, 5xx, 429
    give_up    in_flight                     failed_permanent  4xx, credentials, our own error
    expire     in_flight                     failed_retryable  the process sending it stopped

succeeded, failed_permanent and skipped are final; failed_retryable is final too (a retry
is a new attempt with the same key). Each move is one conditional UPDATE
(`… WHERE status IN (<from>)`): of two processes racing for the same move, one wins and
the other is told (`move` returns False) and records nothing.
"""

from __future__ import annotations

from typing import NamedTuple

from ..models import OutboundAttempt

AttemptStatus = OutboundAttempt.Status


class Move(NamedTuple):
    name: str
    source: tuple
    dest: str


MOVES = {
    m.name: m
    for m in (
        Move("start", (AttemptStatus.PENDING,), AttemptStatus.IN_FLIGHT),
        Move("skip", (AttemptStatus.PENDING,), AttemptStatus.SKIPPED),
        Move("succeed", (AttemptStatus.IN_FLIGHT, AttemptStatus.FAILED_RETRYABLE), AttemptStatus.SUCCEEDED),
        Move("fail", (AttemptStatus.IN_FLIGHT,), AttemptStatus.FAILED_RETRYABLE),
        Move("give_up", (AttemptStatus.IN_FLIGHT,), AttemptStatus.FAILED_PERMANENT),
        Move("expire", (AttemptStatus.IN_FLIGHT,), AttemptStatus.FAILED_RETRYABLE),
    )
}
INITIAL = (AttemptStatus.PENDING, AttemptStatus.IN_FLIGHT)
FINAL = (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED_RETRYABLE, AttemptStatus.FAILED_PERMANENT, AttemptStatus.SKIPPED)


class LifecycleError(Exception):
    """A move that the lifecycle does not have (a programming error, not a race)."""


def allowed(source: str, dest: str) -> bool:
    """Whether an attempt in `source` may become `dest`."""
    return any(source in m.source and m.dest == dest for m in MOVES.values())


def create(status: str, **fields) -> OutboundAttempt:
    """Record a new attempt, pending or in flight."""
    if status not in INITIAL:
        raise LifecycleError(f"an attempt is created pending or in flight, not {status}")
    return OutboundAttempt.objects.create(status=status, **fields)


def move(attempt_id: int, name: str, *, where=None, instance=None, **fields) -> bool:
    """Make move `name` on the attempt, writing `fields` with it, if the attempt is still
    in one of the move's source states (and matches `where`). False when it is not: another
    process moved it first. `instance`, the caller's copy of the row, gets the new values
    when the move was made."""
    try:
        spec = MOVES[name]
    except KeyError:
        raise LifecycleError(f"an attempt has no move {name!r}") from None
    if "status" in fields:
        raise LifecycleError("the move sets the status")
    rows = OutboundAttempt.objects.filter(pk=attempt_id, status__in=spec.source, **(where or {}))
    if rows.update(status=spec.dest, **fields) != 1:
        return False
    if instance is not None:
        for field_name, value in {**fields, "status": spec.dest}.items():
            setattr(instance, field_name, value)
    return True
