"""`POST /_sim/cases/{caseId}/adopt`: a case the app already has, placed in the store as if
Align had done its part of the case's life so far.

The body describes the case (the app's own records: ids Align handed out, the plans it
submitted) and the `stage` it reached; the store then holds the patient, the IAS order,
the sales orders, the plans and Align's status exactly as the calls and events up to
that stage would have left them. No event is sent, no effect counted, nothing is
scheduled: a later call (create the order, upload, modify, accept) or
`POST /_sim/cases/{caseId}/emit` carries the case on.

Adopting again with the same description changes nothing; a different description
replaces what the simulator holds for the case.

    {"stage": "plan_submitted",                       # see STAGES
     "mrn": "401009", "pId": "P0001009",             # Align's patient id, as the app has it
     "firstName": "Ava", "lastName": "Nguyen",        # optional: dateOfBirth, gender, email, phone, address
     "treatmentOption": "BOTH_ARCHES",                # from order_created on; optional: chiefConcern
     "assets": [{"kind": "STL_UPPER", "vault_id": ..., "external_key": ...}],   # optional
     "salesOrders": [{"salesOrderNumber": "SO10091", "orderKind": "PRIMARY"}],  # optional
     "plans": [{"treatmentPlanId": "TP1009-1", "version": 1, "stages": {"upper": 14, "lower": 12}}],
     "comments": "...",                               # modification_requested: the provider's request
     "screenshot": {"vault_id": ..., "external_key": ...},   # accepted / shipped, optional
     "cancelled": false}                              # Align cancelled it after `stage`
"""

import json
import re
from datetime import datetime

from .previews import describe_preview
from .store import Case, Patient, Plan, utc_now_iso
from .wire import ApiError, as_case_id, invalid_field, missing_fields, require

# How far the case got, in order. Each stage includes everything before it.
STAGES = (
    "patient_created",
    "order_created",
    "assets_uploaded",
    "plan_submitted",
    "modification_requested",
    "accepted",
    "shipped",
)
GENDERS = ("M", "F")
TREATMENT_OPTIONS = ("BOTH_ARCHES", "UPPER_ONLY", "LOWER_ONLY")
ORDER_KINDS = ("PRIMARY", "SECONDARY")
ADDRESS_KEYS = ("line1", "line2", "city", "state", "zip", "country")
# Ids the simulator hands out itself; an adopted one moves the counter past it so none repeats.
COUNTED_IDS = (
    ("patient", re.compile(r"^P(\d+)$")),
    ("sales_order", re.compile(r"^SO(\d+)$")),
    ("plan", re.compile(r"^TP(\d+)$")),
)


def reached(stage, other):
    return STAGES.index(stage) >= STAGES.index(other)


def conflict(field, message):
    return ApiError(409, "SIM.ADOPT_CONFLICT", message, {"field": field})


def text(params, name, default=""):
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise invalid_field(name, f"{name} must be a string")
    return str(value).strip()


def object_list(params, name):
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid_field(name, f"{name} must be a list of objects")
    return value


def parse(params):
    """The validated description, or 400 naming the field."""
    stage = require(params, ("stage", "mrn", "pId", "firstName", "lastName"))[0]
    if stage == "cancelled":
        raise invalid_field("stage", 'give the stage the case reached before it was cancelled, and "cancelled": true')
    if stage not in STAGES:
        raise ApiError(
            400,
            "REQUEST.INVALID_FIELD",
            f"stage must be one of {', '.join(STAGES)}",
            {"field": "stage", "allowed": list(STAGES)},
        )
    described = {
        "stage": stage,
        "mrn": text(params, "mrn"),
        "pId": text(params, "pId"),
        "firstName": text(params, "firstName"),
        "lastName": text(params, "lastName"),
    }
    date_of_birth = text(params, "dateOfBirth")
    if date_of_birth:
        try:
            datetime.strptime(date_of_birth, "%Y-%m-%d")
        except ValueError:
            raise invalid_field("dateOfBirth", "dateOfBirth must be a date as YYYY-MM-DD") from None
    gender = text(params, "gender")
    if gender and gender not in GENDERS:
        raise ApiError(
            400, "REQUEST.INVALID_FIELD", "gender must be M or F", {"field": "gender", "allowed": list(GENDERS)}
        )
    address = params.get("address") or {}
    if not isinstance(address, dict):
        raise invalid_field("address", "address must be an object with line1, line2, city, state, zip, country")
    described.update(
        dateOfBirth=date_of_birth,
        gender=gender,
        email=text(params, "email"),
        phone=text(params, "phone"),
        address={k: text(address, k) for k in ADDRESS_KEYS},
    )

    described["cancelled"] = params.get("cancelled", False)
    if not isinstance(described["cancelled"], bool):
        raise invalid_field("cancelled", "cancelled must be true or false")
    if stage == "patient_created":
        for later in ("treatmentOption", "assets", "salesOrders", "plans", "screenshot"):
            if params.get(later):
                raise invalid_field(
                    later, f"{later} is only for a case that has an order (stage order_created or later)"
                )
        if described["cancelled"]:
            raise invalid_field("cancelled", "only a case with an order can be cancelled at Align")
        return described

    treatment_option = text(params, "treatmentOption")
    if not treatment_option:
        raise missing_fields(["treatmentOption"])
    if treatment_option not in TREATMENT_OPTIONS:
        raise ApiError(
            400,
            "REQUEST.INVALID_FIELD",
            "unknown treatment option",
            {"field": "treatmentOption", "allowed": list(TREATMENT_OPTIONS)},
        )
    described.update(treatmentOption=treatment_option, chiefConcern=text(params, "chiefConcern"))
    if not reached(stage, "assets_uploaded"):
        for later in ("assets", "salesOrders", "plans", "screenshot"):
            if params.get(later):
                raise invalid_field(later, f"{later} is only for a case whose assets were uploaded")
        return described

    described["assets"] = [dict(a) for a in object_list(params, "assets")]
    described["salesOrders"] = sales_orders(params)
    if not reached(stage, "plan_submitted"):
        for later in ("plans", "screenshot"):
            if params.get(later):
                raise invalid_field(later, f"{later} is only for a case with a submitted plan")
        return described

    described["plans"] = plans(params)
    described["comments"] = text(params, "comments")
    described["screenshot"] = screenshot(params) if reached(stage, "accepted") else None
    if params.get("screenshot") and not reached(stage, "accepted"):
        raise invalid_field("screenshot", "screenshot is only for an accepted (or shipped) case")
    return described


def sales_orders(params):
    result = []
    for i, so in enumerate(object_list(params, "salesOrders")):
        number, kind = text(so, "salesOrderNumber"), text(so, "orderKind")
        if not number:
            raise missing_fields([f"salesOrders[{i}].salesOrderNumber"])
        if kind not in ORDER_KINDS:
            raise ApiError(
                400,
                "REQUEST.INVALID_FIELD",
                "orderKind must be PRIMARY or SECONDARY",
                {"field": f"salesOrders[{i}].orderKind", "allowed": list(ORDER_KINDS)},
            )
        result.append(
            {
                "salesOrderNumber": number,
                "orderKind": kind,
                "orderType": text(so, "orderType") or "IAS",
                "createdAt": text(so, "createdAt") or None,
            }
        )
    return result


def plans(params):
    given = object_list(params, "plans")
    if not given:
        raise missing_fields(["plans"])
    result, last_version = [], 0
    for i, plan in enumerate(given):
        plan_id = text(plan, "treatmentPlanId")
        if not plan_id:
            raise missing_fields([f"plans[{i}].treatmentPlanId"])
        version = plan.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version <= last_version:
            raise invalid_field(f"plans[{i}].version", "versions must be whole numbers, rising, oldest plan first")
        last_version = version
        stages = plan.get("stages") or {"upper": 0, "lower": 0}
        if (
            not isinstance(stages, dict)
            or set(stages) - {"upper", "lower"}
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in stages.values())
        ):
            raise invalid_field(f"plans[{i}].stages", 'stages must be {"upper": n, "lower": n}')
        if any(p["treatmentPlanId"] == plan_id for p in result):
            raise invalid_field(f"plans[{i}].treatmentPlanId", "each plan needs its own treatmentPlanId")
        result.append(
            {
                "treatmentPlanId": plan_id,
                "version": version,
                "revisionOf": text(plan, "revisionOf") or (result[-1]["treatmentPlanId"] if result else None),
                "salesOrderNumber": text(plan, "salesOrderNumber") or None,
                "stages": {"upper": stages.get("upper", 0), "lower": stages.get("lower", 0)},
                "notes": text(plan, "notes"),
                "attachments": bool(plan.get("attachments")),
                "ipr": bool(plan.get("ipr")),
                "comments": text(plan, "comments") or None,
            }
        )
    return result


def screenshot(params):
    shot = params.get("screenshot")
    if shot is None:
        return None
    if not isinstance(shot, dict):
        raise invalid_field("screenshot", "screenshot must be an object with vault_id and external_key")
    vault_id, external_key = text(shot, "vault_id"), text(shot, "external_key")
    if not (vault_id and external_key):
        raise missing_fields([f"screenshot.{k}" for k in ("vault_id", "external_key") if not text(shot, k)])
    return {"vault_id": vault_id, "external_key": external_key, "checked": False}


# --- into the store ------------------------------------------------------------------------


def statuses(described):
    """Align's status history up to the stage, as the calls and scripted events make it."""
    stage = described["stage"]
    if stage == "patient_created":
        return []
    history = ["RECEIVED"]
    if stage == "assets_uploaded" and described["salesOrders"]:
        history.append("SETUP_IN_PROGRESS")
    if reached(stage, "plan_submitted"):
        for n in range(len(described["plans"])):
            if n:
                history.append("MODIFICATION_REQUESTED")
            history += ["SETUP_IN_PROGRESS", "CLINCHECK_READY"]
    if stage == "modification_requested":
        history.append("MODIFICATION_REQUESTED")
    if reached(stage, "accepted"):
        history.append("APPROVED")
    if stage == "shipped":
        history += ["IN_MANUFACTURING", "SHIPPED"]
    if described["cancelled"]:
        history.append("CANCELLED")
    return history


def build_case(case_id, described, public_url):
    stage = described["stage"]
    case = Case(
        case_id=case_id,
        p_id=described["pId"],
        mrn=described["mrn"],
        order_type="IAS",
        treatment_option=described["treatmentOption"],
        chief_concern=described["chiefConcern"],
    )
    previous = None
    case.status_history = []
    for status in statuses(described):
        case.status_history.append({"status": status, "previousStatus": previous, "at": case.created_at})
        previous = status
    case.status = previous
    if not reached(stage, "assets_uploaded"):
        return case
    case.uploads = 1
    case.assets = described["assets"]
    case.sales_orders = [dict(so, createdAt=so["createdAt"] or case.created_at) for so in described["salesOrders"]]
    if not reached(stage, "plan_submitted"):
        return case
    for n, given in enumerate(described["plans"]):
        latest = n == len(described["plans"]) - 1
        plan = Plan(
            plan_id=given["treatmentPlanId"],
            case_id=case_id,
            version=given["version"],
            revision_of=given["revisionOf"],
            sales_order_number=given["salesOrderNumber"] or case.primary_sales_order_number,
            stages=dict(given["stages"]),
            notes=given["notes"],
            preview=describe_preview(public_url, given["treatmentPlanId"]),
            attachments=given["attachments"],
            ipr=given["ipr"],
            comments=given["comments"],
        )
        if not latest:
            plan.status = "MODIFICATION_REQUESTED"
        elif stage == "modification_requested":
            plan.status = "MODIFICATION_REQUESTED"
            plan.comments = described["comments"] or plan.comments
        elif reached(stage, "accepted"):
            plan.status = "APPROVED"
            plan.screenshot = described["screenshot"]
        case.plans.append(plan)
    return case


def adopt(sim, case_id_text, params):
    case_id = as_case_id(case_id_text)
    described = parse(params)
    fingerprint = json.dumps(described, sort_keys=True)
    store = sim.store
    with store.lock:
        if store.adopted.get(case_id) == fingerprint:
            return answer(case_id, described, changed=False)
        patient = store.patients.get(described["mrn"])
        if patient is not None and patient.p_id != described["pId"]:
            raise conflict("pId", f"Align already has this mrn as patient {patient.p_id}")
        other = store.patient_by_p_id(described["pId"])
        if other is not None and other.mrn != described["mrn"]:
            raise conflict("pId", "this pId belongs to a patient with another mrn")
        for so in described.get("salesOrders", []):
            owner = sales_order_owner(store, so["salesOrderNumber"])
            if owner not in (None, case_id):
                raise conflict("salesOrders", f"sales order {so['salesOrderNumber']} belongs to case {owner}")
        if patient is None:
            patient = Patient(
                p_id=described["pId"],
                mrn=described["mrn"],
                first_name=described["firstName"],
                last_name=described["lastName"],
                date_of_birth=described["dateOfBirth"],
                gender=described["gender"],
                email=described["email"],
                phone=described["phone"],
                address=dict(described["address"]),
                case_ids=[],
            )
            store.patients[patient.mrn] = patient
        for someone in store.patients.values():
            if someone is not patient and case_id in someone.case_ids:
                someone.case_ids.remove(case_id)
        if case_id not in patient.case_ids:
            patient.case_ids.append(case_id)
        if described["stage"] == "patient_created":
            store.cases.pop(case_id, None)
        else:
            store.cases[case_id] = build_case(case_id, described, sim.url)
        reserve_ids(store, described)
        store.adopted[case_id] = fingerprint
        return answer(case_id, described, changed=True)


def sales_order_owner(store, number):
    for case in store.cases.values():
        if any(so["salesOrderNumber"] == number for so in case.sales_orders):
            return case.case_id
    return None


def reserve_ids(store, described):
    ids = [("patient", described["pId"])]
    ids += [("sales_order", so["salesOrderNumber"]) for so in described.get("salesOrders") or []]
    ids += [("plan", plan["treatmentPlanId"]) for plan in described.get("plans") or []]
    patterns = dict(COUNTED_IDS)
    for kind, value in ids:
        match = patterns[kind].match(value)
        if match:
            store.reserve_id(kind, int(match.group(1)))


def answer(case_id, described, changed):
    return {
        "caseId": case_id,
        "stage": described["stage"],
        "cancelled": described["cancelled"],
        "changed": changed,
        "adoptedAt": utc_now_iso(),
    }
