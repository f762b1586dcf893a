"""Align's own work on a case, announced as events (contract section 5).

Each thing Align does (open a sales order, change its status, submit a ClinCheck plan)
is one function that builds the event's `data` from the case, lets the caller override
any field, applies the result to the store and hands the event to the outbox. The same
functions serve `POST /_sim/cases/{caseId}/emit` and the scripted progress that follows
the app's calls when `auto_advance` is on:

- after the first successful asset upload: sales order PRIMARY, sales order SECONDARY,
  status SETUP_IN_PROGRESS, then plan version 1 with status CLINCHECK_READY;
- after a revision request: status SETUP_IN_PROGRESS, then the next plan version
  (`revisionOf` the previous one) with status CLINCHECK_READY;
- after an accept: status IN_MANUFACTURING, then SHIPPED with the shipment.

Steps are `delay_ms` apart. Status changes the app caused itself (APPROVED,
MODIFICATION_REQUESTED) are in the call's answer and are not sent again as events.
"""

import random
import string
import uuid
from datetime import UTC, datetime

from .previews import describe_preview
from .scheduler import Scheduler
from .store import Plan, utc_now_iso
from .wire import ApiError

SALES_ORDER_CREATED = "sales_order.created"
PLAN_SUBMITTED = "treatment_plan.submitted"
STATUS_CHANGED = "case.status_changed"
EVENT_TYPES = (SALES_ORDER_CREATED, PLAN_SUBMITTED, STATUS_CHANGED)

# Align's statuses, and where each one goes next on the happy path.
NEXT_STATUS = {
    "RECEIVED": "SETUP_IN_PROGRESS",
    "SETUP_IN_PROGRESS": "CLINCHECK_READY",
    "MODIFICATION_REQUESTED": "SETUP_IN_PROGRESS",
    "APPROVED": "IN_MANUFACTURING",
    "IN_MANUFACTURING": "SHIPPED",
}
STOPPED = ("CANCELLED", "ON_HOLD")
MAX_STAGES = 20

AFTER_UPLOAD = (
    ((SALES_ORDER_CREATED, {"orderKind": "PRIMARY"}),),
    ((SALES_ORDER_CREATED, {"orderKind": "SECONDARY"}),),
    ((STATUS_CHANGED, {"status": "SETUP_IN_PROGRESS"}),),
    ((PLAN_SUBMITTED, {}), (STATUS_CHANGED, {"status": "CLINCHECK_READY"})),
)
AFTER_MODIFY = (
    ((STATUS_CHANGED, {"status": "SETUP_IN_PROGRESS"}),),
    ((PLAN_SUBMITTED, {}), (STATUS_CHANGED, {"status": "CLINCHECK_READY"})),
)
AFTER_ACCEPT = (
    ((STATUS_CHANGED, {"status": "IN_MANUFACTURING"}),),
    ((STATUS_CHANGED, {"status": "SHIPPED"}),),
)


def new_event_id():
    return "evt_" + uuid.uuid4().hex


class AlignProgress:
    """Builds, applies and sends Align's events; runs the scripted steps on a timer thread."""

    def __init__(self, store, config, outbox, public_url):
        self.store = store
        self.config = config
        self.outbox = outbox
        self.public_url = public_url
        self.scheduler = Scheduler("align-sim-progress")
        self.random = random.Random()
        self.reseed()

    def reseed(self):
        self.random.seed(f"{self.config.seed}-plans" if self.config.seed is not None else None)

    def reset(self):
        self.scheduler.clear()
        self.reseed()

    def stop(self):
        self.scheduler.stop()

    # --- scripted progress ---------------------------------------------------------

    def after_upload(self, case_id):
        self._script(case_id, AFTER_UPLOAD)

    def after_modify(self, case_id):
        self._script(case_id, AFTER_MODIFY)

    def after_accept(self, case_id):
        self._script(case_id, AFTER_ACCEPT)

    def _script(self, case_id, steps):
        if not self.config.auto_advance:
            return
        generation = self.store.generation
        delay_s = self.config.delay_ms / 1000
        for number, step in enumerate(steps, start=1):
            self.scheduler.schedule(number * delay_s, lambda step=step: self._run_step(case_id, step, generation))

    def _run_step(self, case_id, step, generation):
        with self.store.lock:
            case = self.store.cases.get(case_id)
            if self.store.generation != generation or case is None or case.status in STOPPED:
                return
            bodies = [self._apply(case_id, event_type, overrides) for event_type, overrides in step]
        for body in bodies:
            self.outbox.send(body)

    # --- one event ------------------------------------------------------------------

    def emit(self, case_id, event_type, overrides):
        """Build one event from the case (or from the overrides alone for a case the
        simulator does not know), apply it and send it now."""
        if event_type not in EVENT_TYPES:
            raise ApiError(
                400, "REQUEST.INVALID_FIELD", f"type must be one of {', '.join(EVENT_TYPES)}", {"field": "type"}
            )
        if not isinstance(overrides, dict):
            raise ApiError(400, "REQUEST.INVALID_FIELD", "data must be an object", {"field": "data"})
        with self.store.lock:
            body = self._apply(case_id, event_type, overrides)
        return self.outbox.send(body)

    def _apply(self, case_id, event_type, overrides):
        case = self.store.cases.get(case_id)
        build = {SALES_ORDER_CREATED: self._sales_order, PLAN_SUBMITTED: self._plan, STATUS_CHANGED: self._status}[
            event_type
        ]
        data = build(case_id, case, dict(overrides))
        return {"type": event_type, "event_id": new_event_id(), "occurred_at": utc_now_iso(), "data": data}

    def _sales_order(self, case_id, case, overrides):
        kind = overrides.get("orderKind") or ("SECONDARY" if case and case.latest_sales_order("PRIMARY") else "PRIMARY")
        data = {
            "caseId": case_id,
            "mrn": case.mrn if case else None,
            "pId": case.p_id if case else None,
            "salesOrderNumber": f"SO{self.store.next_id('sales_order'):08d}",
            "orderKind": kind,
            "orderType": case.order_type if case else "IAS",
            "createdAt": utc_now_iso(),
        }
        data.update(overrides)
        if case:
            case.sales_orders.append(
                {k: data[k] for k in ("salesOrderNumber", "orderKind", "orderType", "createdAt") if k in data}
            )
        return data

    def _plan(self, case_id, case, overrides):
        plans = case.plans if case else []
        plan_id = f"TP{self.store.next_id('plan'):07d}"
        data = {
            "caseId": case_id,
            "mrn": case.mrn if case else None,
            "pId": case.p_id if case else None,
            "salesOrderNumber": case.primary_sales_order_number if case else None,
            "treatmentPlanId": plan_id,
            "version": max((p.version for p in plans if isinstance(p.version, int)), default=0) + 1,
            "revisionOf": plans[-1].plan_id if plans else None,
            "stages": self._stages(case.treatment_option if case else "BOTH_ARCHES"),
            "attachments": False,
            "ipr": False,
            "notes": self._notes(plans),
            "assets": [self._preview(plan_id)],
        }
        data.update(overrides)
        if case:
            for earlier in plans:
                if earlier.status == "PENDING":
                    earlier.status = "SUPERSEDED"
            case.plans.append(
                Plan(
                    plan_id=data.get("treatmentPlanId", plan_id),
                    case_id=case_id,
                    version=data.get("version"),
                    revision_of=data.get("revisionOf"),
                    sales_order_number=data.get("salesOrderNumber"),
                    stages=data.get("stages"),
                    notes=data.get("notes"),
                    preview=self._preview(plan_id),
                    attachments=data.get("attachments"),
                    ipr=data.get("ipr"),
                )
            )
        return data

    def _status(self, case_id, case, overrides):
        previous = case.status if case else None
        status = overrides.get("status") or NEXT_STATUS.get(previous)
        if not status:
            raise ApiError(
                400,
                "REQUEST.MISSING_FIELD",
                f"no next status after {previous}: give data.status",
                {"fields": ["status"]},
            )
        data = {
            "caseId": case_id,
            "mrn": case.mrn if case else None,
            "salesOrderNumber": case.primary_sales_order_number if case else None,
            "status": status,
            "previousStatus": previous,
        }
        if status == "SHIPPED":
            data["shipment"] = self._shipment(case)
        if status in STOPPED:
            data["reason"] = "Align put the case on hold" if status == "ON_HOLD" else "Cancelled at Align"
        data.update(overrides)
        if case:
            case.move_to(data["status"])
        return data

    # --- realistic details ------------------------------------------------------------

    def _stages(self, treatment_option):
        upper = self.random.randint(8, MAX_STAGES)
        lower = self.random.randint(8, MAX_STAGES)
        if treatment_option == "UPPER_ONLY":
            lower = 0
        if treatment_option == "LOWER_ONLY":
            upper = 0
        return {"upper": upper, "lower": lower}

    @staticmethod
    def _notes(plans):
        if not plans:
            return "Initial ClinCheck treatment plan."
        return f"Revised after the provider's request: {plans[-1].comments or 'no comments'}"

    def _preview(self, plan_id):
        return describe_preview(self.public_url, plan_id)

    def _shipment(self, case):
        plan = next((p for p in reversed(case.plans) if p.status == "APPROVED"), None) if case else None
        stages = plan.stages if plan and isinstance(plan.stages, dict) else {"upper": 20, "lower": 20}
        tracking = "1Z" + "".join(self.random.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        return {
            "carrier": "UPS",
            "trackingNumber": tracking,
            "shippedAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "alignerCount": max(int(stages.get("upper") or 0), int(stages.get("lower") or 0)),
        }
