"""Events from the Align service: verify, store, then apply (contract section 5).

    receive(body, headers) -> Receipt    # what POST /api/align/events does

1. The Standard Webhooks signature is checked over the raw body (signatures.py).
2. A repeated event id answers as before and changes nothing.
3. The body is parsed and checked (payloads.py); the case must exist and the MRN match.
4. The event is stored and committed as `pending` in a transaction of its own, so a
   crash before it is applied loses nothing (a redelivery or the next transition of
   its case applies it).
5. It is applied in a second transaction, always through the workflow engine
   (`fire(case, trigger, by=None)`), and marked `applied`, `pending` (the case cannot
   take it yet), `ignored` (it can never apply, or is older than what we know) or
   `failed` (an unexpected error; a person re-applies it from the admin).

Pending events are retried whenever their case changes state (the engine's
`transition_applied` signal, sent after commit), oldest `occurred_at` first.
Nothing here logs patient details: only event ids, types and case ids.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from align_workflow.align import payloads
from align_workflow.align.signatures import SignatureError, verify_signature
from align_workflow.cases.models import AlignOrder, Case, TreatmentPlan
from align_workflow.workflow import effects
from align_workflow.workflow.case_moves import register_probe
from align_workflow.workflow.engine import TransitionNotAllowed, fire
from states import align_case as wf

from .align_status import stale_reason, status_record
from .models import AlignCaseStatus, InboundEvent

logger = logging.getLogger(__name__)

EventStatus = InboundEvent.Status


# --- Receiving ------------------------------------------------------------------------


class EventRefused(Exception):
    """The delivery was refused; nothing was stored."""

    def __init__(self, http_status, code, message, details=None):
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class Receipt:
    event: InboundEvent
    duplicate: bool


def _log_refusal(code, event_id, event_type=None, case_id=None):
    # The event id comes from the sender; repr() keeps a forged one from forging log lines.
    logger.warning(
        "align event refused: %s (event %r, type %r, case %s)", code, (event_id or "")[:100], event_type, case_id
    )


def receive(body: bytes, headers) -> Receipt:
    """Verify, store and apply one delivery. Raises EventRefused (nothing stored)."""
    try:
        webhook_id = verify_signature(body, headers)
    except SignatureError as exc:
        _log_refusal("SIGNATURE.INVALID", headers.get("webhook-id"))
        raise EventRefused(401, "SIGNATURE.INVALID", f"Signature check failed: {exc}") from None

    existing = InboundEvent.objects.filter(event_id=webhook_id).first()
    if existing is not None:
        return Receipt(_redelivered(existing), duplicate=True)

    try:
        event = payloads.parse(body)
    except payloads.PayloadError as exc:
        _log_refusal("EVENT.INVALID", webhook_id)
        raise EventRefused(400, "EVENT.INVALID", "The event is malformed.", {"fields": exc.errors}) from None
    if event.event_id != webhook_id:
        _log_refusal("EVENT.ID_MISMATCH", webhook_id, event.type)
        raise EventRefused(
            400,
            "EVENT.INVALID",
            "The event is malformed.",
            {"fields": {"event_id": ["must equal the webhook-id header"]}},
        )
    skew = settings.ALIGN_EVENT_FUTURE_SKEW_SECONDS
    if event.occurred_at > timezone.now() + timedelta(seconds=skew):
        # A clock running ahead would make every real status after it look older.
        _log_refusal("EVENT.IN_FUTURE", webhook_id, event.type, event.case_id)
        raise EventRefused(
            400,
            "EVENT.INVALID",
            "The event is malformed.",
            {"fields": {"occurred_at": [f"is more than {skew} seconds in the future"]}},
        )

    case = Case.objects.select_related("patient").filter(pk=event.case_id).first()
    if case is None:
        _log_refusal("CASE.NOT_FOUND", webhook_id, event.type, event.case_id)
        raise EventRefused(404, "CASE.NOT_FOUND", f"No case {event.case_id}.")
    if case.patient.mrn != event.data["mrn"]:
        _log_refusal("CASE.MRN_MISMATCH", webhook_id, event.type, event.case_id)
        raise EventRefused(
            422,
            "CASE.MRN_MISMATCH",
            f"The MRN does not match case {event.case_id}.",
            {"fields": {"data.mrn": ["does not match the case's patient"]}},
        )

    stored, created = store(event, body, case)
    if not created:
        return Receipt(_redelivered(stored), duplicate=True)
    return Receipt(apply_event(stored.pk), duplicate=False)


def store(event: payloads.Event, body: bytes, case) -> tuple[InboundEvent, bool]:
    """Commit the event as pending; (event, False) if its id is already stored."""
    fields = dict(
        event_id=event.event_id,
        type=event.type,
        case=case,
        summary=summarize(event),
        payload=event.payload,
        raw_body=body.decode("utf-8"),
        occurred_at=event.occurred_at,
        status=EventStatus.PENDING,
        status_detail="received, not applied yet",
    )
    try:
        if connection.in_atomic_block:
            with transaction.atomic():  # a savepoint: a duplicate leaves the caller's transaction usable
                stored = InboundEvent.objects.create(**fields)
        else:
            # Autocommit (the endpoint): the INSERT is a transaction of its own, committed
            # before the event is applied, in one round trip instead of three.
            stored = InboundEvent.objects.create(**fields)
        return stored, True
    except IntegrityError:
        # Another delivery of the same event won the race (the unique event_id).
        existing = InboundEvent.objects.filter(event_id=event.event_id).first()
        if existing is None:
            raise
        return existing, False


def _redelivered(event):
    """A repeat delivery changes nothing, except that a stored event nobody has applied
    yet (the process died after storing it) gets applied now."""
    if event.status == EventStatus.PENDING and event.attempts == 0:
        return apply_event(event.pk, first_time=True)
    return event


def summarize(event: payloads.Event) -> str:
    data = event.data
    if event.type == payloads.SALES_ORDER_CREATED:
        return f"sales order {data['salesOrderNumber']} ({data['orderKind']})"
    if event.type == payloads.TREATMENT_PLAN_SUBMITTED:
        return f"plan {data['treatmentPlanId']} v{data['version']}"
    return f"status {data['status']}"


# --- Applying -------------------------------------------------------------------------


@dataclass(frozen=True)
class EventOutcome:
    status: str
    detail: str


def applied(detail):
    return EventOutcome(EventStatus.APPLIED, detail)


def ignored(detail):
    return EventOutcome(EventStatus.IGNORED, detail)


def pending(detail):
    return EventOutcome(EventStatus.PENDING, detail)


class _ApplyFailed(Exception):
    """_apply raised: its transaction is rolled back, the failure is recorded in a new one."""

    def __init__(self, seen):
        super().__init__("applying the event failed")
        self.seen = seen  # (status, attempts) of the event before this try


# The events this thread is applying: the move an event makes reads the case's pending
# events (the event itself among them, its outcome not written yet); it is not retried.
_applying = threading.local()


def apply_event(event_pk, *, again=False, first_time=False) -> InboundEvent:
    """Apply one stored event if it is still pending; returns it with its new status.

    again=True also retries an ignored or failed one (the admin's "re-apply");
    first_time=True only applies it if nobody has tried yet (a redelivery).
    An applied event is never applied twice.
    """
    applying = _applying.__dict__.setdefault("ids", set())
    applying.add(event_pk)
    try:
        return _apply_event(event_pk, again=again, first_time=first_time)
    finally:
        applying.discard(event_pk)


def _apply_event(event_pk, *, again, first_time) -> InboundEvent:
    try:
        with transaction.atomic():
            # NO KEY UPDATE: another event of the case, holding the case, may record this one
            # as the current status (a foreign key: KEY SHARE), which FOR UPDATE would deadlock.
            event = InboundEvent.objects.select_for_update(no_key=True).get(pk=event_pk)
            if event.status == EventStatus.APPLIED or (event.status != EventStatus.PENDING and not again):
                return event
            if first_time and event.attempts:
                return event
            seen = (event.status, event.attempts)
            event.attempts += 1
            event.last_attempt_at = timezone.now()
            try:
                outcome = _apply(event)
            except Exception as exc:  # noqa: BLE001 - recorded on the event for a person to see
                # No savepoint around _apply (one fewer per event): the whole transaction
                # rolls back, which undoes what _apply wrote, and the failure is recorded below.
                raise _ApplyFailed(seen) from exc
            _record(event, outcome)
    except _ApplyFailed as failure:
        exc = failure.__cause__
        logger.error(
            "align event %s (%s, case %s) failed to apply", event.event_id, event.type, event.case_id, exc_info=exc
        )
        with transaction.atomic():
            event = InboundEvent.objects.select_for_update(no_key=True).get(pk=event_pk)
            if (event.status, event.attempts) != failure.seen:
                return event  # another process took it up between the two transactions: its outcome stands
            event.attempts += 1
            event.last_attempt_at = timezone.now()
            _record(event, EventOutcome(EventStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]))
    logger.info("align event %s (%s, case %s): %s", event.event_id, event.type, event.case_id, event.status)
    return event


def _record(event, outcome):
    event.status = outcome.status
    event.status_detail = outcome.detail
    if outcome.status == EventStatus.APPLIED:
        event.applied_at = timezone.now()
    event.save(update_fields=["status", "status_detail", "applied_at", "attempts", "last_attempt_at"])


def _apply(event) -> EventOutcome:
    if event.case_id is None:
        return ignored("The case no longer exists.")
    # One event of a case at a time: the case row is locked until this event is done.
    case = Case.objects.select_for_update().get(pk=event.case_id)
    parsed = payloads.parse(event.raw_body.encode("utf-8"))
    return HANDLERS[event.type](case, event, parsed.data)


def _apply_sales_order(case, event, data) -> EventOutcome:
    # Never updated in place: a number we already have is a no-op.
    order, created = AlignOrder.objects.get_or_create(
        sales_order_number=data["salesOrderNumber"],
        defaults=dict(
            case=case,
            order_kind=data["orderKind"],
            order_type=data["orderType"],
            p_id=data["pId"],
            align_created_at=data["createdAt"],
        ),
    )
    if not created:
        if order.case_id != case.pk:
            return ignored(f"Sales order {order.sales_order_number} is already recorded for case {order.case_id}.")
        return ignored(f"Sales order {order.sales_order_number} is already recorded.")
    return applied(f"Sales order {order.sales_order_number} ({order.order_kind}) recorded.")


def _plan_from(data):
    preview = next((a for a in data["assets"] if a["kind"] == "PROVPREV"), None)
    if preview is not None:
        filename = preview["url"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:255]
        preview = {**preview, "filename": filename}
    return {
        "plan_id": data["treatmentPlanId"],
        "version": data["version"],
        "revision_of": data["revisionOf"],
        "sales_order_number": data["salesOrderNumber"],
        "stages_upper": data["stages"]["upper"],
        "stages_lower": data["stages"]["lower"],
        "attachments": data["attachments"],
        "ipr": data["ipr"],
        "notes": data["notes"],
        "preview": preview,
    }


def _apply_plan(case, event, data) -> EventOutcome:
    plan = _plan_from(data)
    try:
        fire(case, wf.EVENT_TRIGGERS[payloads.TREATMENT_PLAN_SUBMITTED], by=None, plan=plan)
    except effects.StalePlan as exc:
        # Older than the plan the provider sees: kept as a record, the case is left alone.
        return ignored(_record_older_plan(case, plan, exc))
    except TransitionNotAllowed as exc:
        outcome = _not_now(case, exc)
        if outcome.status == EventStatus.IGNORED:
            # The case can never take it (cancelled, or past the review): kept as a record,
            # as it is when it arrives before the cancel.
            return ignored(f"{outcome.detail} {_record_plan_once(case, plan)}")
        return outcome
    return applied(f"Plan {plan['plan_id']} version {plan['version']} received; the case is plan received.")


def _record_older_plan(case, plan, exc):
    return f"{exc} {_record_plan_once(case, plan)}"


def _record_plan_once(case, plan):
    if TreatmentPlan.objects.filter(case=case, version=plan["version"]).exists():
        return f"Version {plan['version']} is already stored."
    effects.record_plan(case, plan)
    return "Stored for the record; the case is unchanged."


def _apply_status(case, event, data) -> EventOutcome:
    status = data["status"]
    current, furthest, _ = status_record(case)
    known = AlignCaseStatus.objects.filter(case=case).first() or AlignCaseStatus(case=case)
    if current is not None:
        occurred_at, _, current_pk, current_status, previous = current
        record = (current_status, previous, occurred_at, current_pk, furthest[3] if furthest else "")
        if record != (known.status, known.previous_status, known.occurred_at, known.event_id, known.furthest_status):
            known.status, known.previous_status, known.occurred_at = current_status, previous, occurred_at
            known.event_id, known.furthest_status = current_pk, record[4]
            known.save(force_insert=known._state.adding)  # a new record: INSERT, not UPDATE then INSERT
    is_current = current is not None and current[2] == event.pk

    trigger = wf.EVENT_TRIGGERS.get(f"{payloads.CASE_STATUS_CHANGED}:{status}")
    if trigger is None:
        if is_current:
            return applied(f"Align status {status} recorded.")
        if furthest is not None and furthest[2] == event.pk:
            return applied(
                f"Align status {status} recorded as the furthest so far; {current[3]}, dated later, "
                "stays the current status."
            )
        return ignored(stale_reason(status, current, furthest))
    # SHIPPED and CANCELLED move the case whenever they come: the workflow decides whether
    # the case can take them, so the case ends the same whatever the delivery order.
    params = {}
    if trigger == "ship":
        shipment = data["shipment"]
        params = {
            "carrier": shipment["carrier"],
            "tracking_number": shipment["trackingNumber"],
            "shipped_at": shipment["shippedAt"],
        }
    elif trigger == "cancel":
        params = {"reason": (data.get("reason") or "").strip() or "Cancelled by Align (no reason given)."}
    try:
        fire(case, trigger, by=None, **params)
    except TransitionNotAllowed as exc:
        return _not_now(case, exc)
    return applied(f"Align status {status} recorded; the case is {wf.state_label(case.state)}.")


HANDLERS = {
    payloads.SALES_ORDER_CREATED: _apply_sales_order,
    payloads.TREATMENT_PLAN_SUBMITTED: _apply_plan,
    payloads.CASE_STATUS_CHANGED: _apply_status,
}


# --- Early and late events ------------------------------------------------------------


@cache
def reachable_from(state) -> frozenset:
    """Every state the case can still reach from `state` (itself included)."""
    seen, todo = {state}, [state]
    while todo:
        current = todo.pop()
        for t in wf.TRANSITIONS:
            if current in t.source and t.dest not in seen:
                seen.add(t.dest)
                todo.append(t.dest)
    return frozenset(seen)


def _not_now(case, exc: TransitionNotAllowed) -> EventOutcome:
    """A refused trigger: wait if the case may still get there, else record why not."""
    if exc.code == "in_progress":
        return pending(f"Waiting: {exc}")
    if exc.code == "wrong_state":
        sources = set(wf.BY_TRIGGER[exc.trigger].source)
        if sources & reachable_from(case.state):
            return pending(
                f"Waiting for the case to reach {' or '.join(sorted(sources))} (it is {wf.state_label(case.state)})."
            )
        return ignored(
            f"Can never apply: the case is {wf.state_label(case.state)} and cannot "
            f"{wf.trigger_words(exc.trigger)} any more."
        )
    return ignored(f"Refused by the workflow ({exc.code}): {exc}")


PENDING_PROBE = "pending_events"


@cache
def _pending_sql() -> str:
    qn = connection.ops.quote_name
    return (
        f"SELECT {qn('id')} FROM {qn(InboundEvent._meta.db_table)} WHERE {qn('case_id')} = %s "
        f"AND {qn('status')} = '{EventStatus.PENDING.value}' ORDER BY {qn('occurred_at')}, {qn('received_at')}, {qn('id')}"
    )


def register_pending_probe():
    """Called when the app is ready: the engine reads the case's pending events with the
    move that may let them apply (one round trip, under the case's lock; case_moves)."""
    register_probe(PENDING_PROBE, _pending_sql())


def pending_event_ids(case_id) -> list[int]:
    """The case's pending events, oldest first. Asked after every transition of every
    case, and almost always empty, so it is one plain statement (on the index
    case, status, occurred_at) rather than a queryset compiled anew each time: the
    compilation cost as much as the engine's own state change."""
    with connection.cursor() as cursor:
        cursor.execute(_pending_sql(), [case_id])
        return [row[0] for row in cursor.fetchall()]


def apply_pending(case_id, ids=None) -> list[InboundEvent]:
    """Try every pending event of a case, oldest first (`ids`: as already read)."""
    return [apply_event(pk) for pk in (pending_event_ids(case_id) if ids is None else ids)]


def on_transition_applied(sender, case_id, probes=None, **kwargs):
    """The engine moved a case, or a call stopped holding it: waiting events may apply now.
    `probes`: the pending events as the move read them, under the case's lock (an event
    that goes pending later waited for that lock, so it saw the case moved), or None."""
    rows = (probes or {}).get(PENDING_PROBE)
    if rows is not None:
        applying = getattr(_applying, "ids", ())
        rows = [row[0] for row in rows if row[0] not in applying]
    try:
        apply_pending(case_id, rows)
    except Exception:  # noqa: BLE001 - must not break whoever fired the transition
        logger.exception("applying pending align events of case %s failed", case_id)
