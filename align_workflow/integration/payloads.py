"""The shape of the events the Align service sends (contract section 5), and a small
validator that reports every problem with its field path, e.g.
{"data.stages.upper": ["must be at most 20"]}.

Unknown extra fields are accepted and ignored, so the service may add fields.

The second half is the other direction: per call from the app to Align, the fields
Align requires, how each is read from our records, and `preflight(case, step)`, which
checks them before anything is sent (see REQUIRED).
"""

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.dateparse import parse_datetime

SALES_ORDER_CREATED = "sales_order.created"
TREATMENT_PLAN_SUBMITTED = "treatment_plan.submitted"
CASE_STATUS_CHANGED = "case.status_changed"
EVENT_TYPES = (SALES_ORDER_CREATED, TREATMENT_PLAN_SUBMITTED, CASE_STATUS_CHANGED)

# Align's own statuses, in the order a case goes through them. The statuses on one line
# share a rank: the setup steps repeat after a modification request (they are ordered by
# when they happened). CANCELLED and ON_HOLD can come at any time.
STATUS_ORDER = (
    ("RECEIVED",),
    ("SETUP_IN_PROGRESS", "CLINCHECK_READY", "MODIFICATION_REQUESTED"),
    ("APPROVED",),
    ("IN_MANUFACTURING",),
    ("SHIPPED",),
)
ANYTIME_STATUSES = ("CANCELLED", "ON_HOLD")
ALIGN_STATUSES = (*(status for same in STATUS_ORDER for status in same), *ANYTIME_STATUSES)
# A status ranked behind the furthest one seen for a case is stale (events.py).
STATUS_RANK = {status: rank for rank, same in enumerate(STATUS_ORDER) for status in same}

MAX_STAGES = 20


class PayloadError(Exception):
    def __init__(self, errors: dict):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class _Field:
    def __init__(self, *, required=True, null=False):
        self.required = required
        self.null = null

    def clean(self, value, path, errors):  # pragma: no cover - overridden
        raise NotImplementedError


class Str(_Field):
    def __init__(self, *, max_length=200, blank=False, choices=None, **kw):
        super().__init__(**kw)
        self.max_length, self.blank, self.choices = max_length, blank, choices

    def clean(self, value, path, errors):
        if not isinstance(value, str):
            return _err(errors, path, "must be a string")
        if not self.blank and not value.strip():
            return _err(errors, path, "must not be blank")
        if len(value) > self.max_length:
            return _err(errors, path, f"must be at most {self.max_length} characters")
        if self.choices is not None and value not in self.choices:
            return _err(errors, path, f"must be one of {', '.join(self.choices)}")
        return value


class Int(_Field):
    def __init__(self, *, min_value=None, max_value=None, **kw):
        super().__init__(**kw)
        self.min_value, self.max_value = min_value, max_value

    def clean(self, value, path, errors):
        if isinstance(value, bool) or not isinstance(value, int):
            return _err(errors, path, "must be an integer")
        if self.min_value is not None and value < self.min_value:
            return _err(errors, path, f"must be at least {self.min_value}")
        if self.max_value is not None and value > self.max_value:
            return _err(errors, path, f"must be at most {self.max_value}")
        return value


class Bool(_Field):
    def clean(self, value, path, errors):
        if not isinstance(value, bool):
            return _err(errors, path, "must be true or false")
        return value


class DateTime(_Field):
    def clean(self, value, path, errors):
        if not isinstance(value, str):
            return _err(errors, path, "must be an ISO 8601 date and time string")
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            return _err(errors, path, "must be an ISO 8601 date and time")
        if parsed.tzinfo is None:
            return _err(errors, path, "must include a time zone")
        return parsed


class Url(Str):
    def clean(self, value, path, errors):
        value = super().clean(value, path, errors)
        if isinstance(value, str) and not value.startswith(("https://", "http://")):
            return _err(errors, path, "must be an http(s) URL")
        return value


class Sha256(Str):
    def __init__(self, **kw):
        super().__init__(max_length=64, **kw)

    def clean(self, value, path, errors):
        value = super().clean(value, path, errors)
        if isinstance(value, str) and (len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value)):
            return _err(errors, path, "must be 64 hexadecimal characters")
        return value.lower() if isinstance(value, str) else value


class Obj(_Field):
    def __init__(self, fields, **kw):
        super().__init__(**kw)
        self.fields = fields

    def clean(self, value, path, errors):
        if not isinstance(value, dict):
            return _err(errors, path, "must be an object")
        cleaned = {}
        for name, field in self.fields.items():
            sub = f"{path}.{name}" if path else name
            if name not in value:
                if field.required:
                    _err(errors, sub, "is required")
                continue
            if value[name] is None:
                if not field.null:
                    _err(errors, sub, "must not be null")
                cleaned[name] = None
                continue
            cleaned[name] = field.clean(value[name], sub, errors)
        return cleaned


class List(_Field):
    def __init__(self, item, *, max_items=20, **kw):
        super().__init__(**kw)
        self.item, self.max_items = item, max_items

    def clean(self, value, path, errors):
        if not isinstance(value, list):
            return _err(errors, path, "must be a list")
        if len(value) > self.max_items:
            return _err(errors, path, f"must have at most {self.max_items} items")
        return [self.item.clean(v, f"{path}[{i}]", errors) for i, v in enumerate(value)]


def _err(errors, path, message):
    errors.setdefault(path or "body", []).append(message)
    return None


# Field lengths match the columns the values are stored in.
_COMMON = {"caseId": Int(min_value=1, max_value=2**31 - 1), "mrn": Str(max_length=40)}

DATA = {
    SALES_ORDER_CREATED: Obj({
        **_COMMON,
        "pId": Str(max_length=40),
        "salesOrderNumber": Str(max_length=40),
        "orderKind": Str(choices=("PRIMARY", "SECONDARY")),
        "orderType": Str(max_length=20),
        "createdAt": DateTime(),
    }),
    TREATMENT_PLAN_SUBMITTED: Obj({
        **_COMMON,
        # Not needed to store the plan, and unknown until Align opened a sales order.
        "pId": Str(max_length=40, null=True, blank=True),
        "salesOrderNumber": Str(max_length=40, null=True, blank=True),
        "treatmentPlanId": Str(max_length=40),
        "version": Int(min_value=1, max_value=10_000),
        "revisionOf": Str(max_length=40, null=True, blank=True),
        "stages": Obj({"upper": Int(min_value=0, max_value=MAX_STAGES),
                       "lower": Int(min_value=0, max_value=MAX_STAGES)}),
        "attachments": Bool(),
        "ipr": Bool(),
        "notes": Str(max_length=5000, blank=True),
        "assets": List(Obj({
            "kind": Str(choices=("PROVPREV",)),
            "url": Url(max_length=500),
            "sha256": Sha256(),
            "size": Int(min_value=0),
        })),
    }),
    CASE_STATUS_CHANGED: Obj({
        **_COMMON,
        "salesOrderNumber": Str(max_length=40, null=True, blank=True),
        "status": Str(choices=ALIGN_STATUSES),
        "previousStatus": Str(choices=ALIGN_STATUSES, null=True, required=False),
        "shipment": Obj({
            "carrier": Str(max_length=60),
            "trackingNumber": Str(max_length=80),
            "shippedAt": DateTime(),
            "alignerCount": Int(min_value=0, required=False),
        }, required=False, null=True),
        "reason": Str(max_length=2000, blank=True, null=True, required=False),
    }),
}

ENVELOPE = Obj({
    "type": Str(choices=EVENT_TYPES),
    "event_id": Str(max_length=100),
    "occurred_at": DateTime(),
    "data": Obj({}),
})


@dataclass(frozen=True)
class Event:
    """A well-formed event: the envelope, and `data` with its values checked and parsed."""

    type: str
    event_id: str
    occurred_at: datetime
    data: dict
    payload: dict

    @property
    def case_id(self) -> int:
        return self.data["caseId"]


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _unstorable(payload):
    """The path of a value PostgreSQL's jsonb cannot hold (NUL, lone surrogates, inf), or None.

    Such values parse as JSON but would fail when the event is stored: they are refused
    here, with the rest of the validation, instead of becoming a server error.
    """
    todo = [("", payload)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                if not _storable_text(key):
                    return path or "body"
                todo.append((sub, item))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, str) and not _storable_text(value) or isinstance(value, float) and not math.isfinite(value):
            return path or "body"
    return None


def _storable_text(text):
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse(body: bytes) -> Event:
    """Parse and check one event body; raise PayloadError with field errors."""
    try:
        # Plain UTF-8 only: json.loads(bytes) would also take UTF-16/32 and a leading BOM.
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError({"body": ["is not valid JSON"]}) from None
    bad = _unstorable(payload)
    if bad is not None:
        raise PayloadError({bad: ["contains a character or number that cannot be stored (NUL, lone surrogate, "
                                  "infinity)"]})
    errors = {}
    envelope = ENVELOPE.clean(payload, "", errors)
    if envelope is None:
        raise PayloadError(errors)
    data = None
    if envelope.get("type") in DATA and isinstance(payload.get("data"), dict):
        data = DATA[envelope["type"]].clean(payload["data"], "data", errors)
        if (envelope["type"] == CASE_STATUS_CHANGED and data is not None
                and data.get("status") == "SHIPPED" and not payload["data"].get("shipment")):
            _err(errors, "data.shipment", "is required when the status is SHIPPED")
    if errors:
        raise PayloadError(errors)
    return Event(type=envelope["type"], event_id=envelope["event_id"], occurred_at=envelope["occurred_at"],
                 data=data, payload=payload)


# =====================================================================================
# Calls from the app to Align (contract section 3): what each call sends, read from our
# records, and the pre-flight that checks every field Align requires BEFORE anything is
# sent. One table per call; each row is one group of fields as staff would fix it:
#
#   Required(name, label, fields sent, where we read them, check)
#
# `check(case, records)` returns None when the group is fine, else the reason (what to fix). It
# never puts the patient's details in the reason: reasons go to case notes and messages.
# The simulator refuses exactly these (REQUEST.MISSING_FIELD / INVALID_FIELD, 422s).
# =====================================================================================


ALIGN_GENDERS = ("M", "F")
TREATMENT_OPTIONS = ("BOTH_ARCHES", "UPPER_ONLY", "LOWER_ONLY")
MIN_STL_FILES = 2
MAX_COMMENT_LENGTH = 4000
LAB_ALIGN = "AL"

PHONE_CHARS = re.compile(r"^[0-9 +().\-/x]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class Required(NamedTuple):
    name: str          # stable id of the group (the checklist's data-criterion)
    label: str         # what staff see, e.g. "Patient phone number"
    fields: tuple      # the contract's field names sent for it
    source: str        # where we read it from
    check: Callable    # (case, Records) -> None (fine) or the reason it is not
    ok_reason: str = "present"


@dataclass(frozen=True)
class Verdict:
    """One group's outcome; the same shape as guards.Criterion (name, label, ok, reason)."""

    name: str
    label: str
    ok: bool
    reason: str


def _blank(value):
    return value is None or not str(value).strip()


def _lab(case, r):
    from align_workflow.cases.models import Prescription

    lab = r.lab
    if lab is None:
        return "the case has no prescription"
    if lab != LAB_ALIGN:
        label = dict(Prescription.Lab.choices).get(lab, lab)
        return f"prescribed to {label}, not Align"
    return None


def _mrn(case, r):
    return "missing" if _blank(r.patient.mrn) else None


def _names(case, r):
    p = r.patient
    missing = [n for n, v in (("first name", p.first_name), ("last name", p.last_name)) if _blank(v)]
    return f"{' and '.join(missing)} missing" if missing else None


def _date_of_birth(case, r):
    dob = r.patient.date_of_birth
    if dob is None:
        return "missing"
    if dob > date.today():
        return "is in the future"
    return None


def _email(case, r):
    value = (r.patient.email or "").strip()
    if not value:
        return "missing: Align needs the patient's email address"
    try:
        validate_email(value)
    except ValidationError:
        return "is not a valid email address"
    return None


def _phone(case, r):
    value = (r.patient.phone or "").strip()
    if not value:
        return "missing: Align needs the patient's phone number"
    digits = sum(c.isdigit() for c in value)
    if not PHONE_CHARS.match(value) or not 7 <= digits <= 15:
        return "is not a phone number (7 to 15 digits, with + ( ) - . / spaces)"
    return None


def _address(case, r):
    p = r.patient
    parts = (("street (line 1)", p.address_line1), ("city", p.city), ("state", p.state), ("ZIP code", p.zip_code),
             ("country", p.country))
    missing = [name for name, value in parts if _blank(value)]
    if missing:
        return f"missing: {', '.join(missing)}"
    if not _COUNTRY.match(p.country.strip()):
        return "the country must be a two-letter code such as US"
    return None


def _gender(case, r):
    # Align requires M or F; an unknown gender is sent as M with a case note (a warning
    # on the checklist, not a refusal), so only a value outside our choices is refused.
    return None if r.patient.gender in ("M", "F", "U") else "is not M, F or unknown"


def _pid(case, r):
    return "the case has no Align patient id yet (Create Patient has not succeeded)" if _blank(case.align_pid) else None


def _treatment_option(case, r):
    option = r.treatment_option
    if option is None:
        return "no photo assessment yet"
    if option not in TREATMENT_OPTIONS:
        return "the photo assessment has no treatment option Align knows (both arches, upper or lower only)"
    return None


def _chief_concern(case, r):
    from django.conf import settings

    return "the ALIGN_CHIEF_CONCERN setting is blank" if _blank(settings.ALIGN_CHIEF_CONCERN) else None


def stored_stl_count(case_id) -> int:
    """STL files the service can resolve: not removed, stored with their vault references."""
    from align_workflow.cases.models import CaseAsset

    return (CaseAsset.objects.filter(case_id=case_id, kind__in=CaseAsset.STL_KINDS, removed=False)
            .exclude(vault_id="").exclude(external_key="").count())


def _stl_files(case, r):
    count = r.stl_count
    if count < MIN_STL_FILES:
        return f"{count} STL file{'s' if count != 1 else ''} (at least {MIN_STL_FILES} needed)"
    return None


def _uuid_ok(value):
    try:
        return uuid.UUID(str(value).strip()).int != 0
    except ValueError:
        return False


def _screenshot(case, r):
    asset = r.screenshot
    if asset is None:
        return "no acceptance screenshot is stored (it is stored when the provider approves the plan)"
    if not (_uuid_ok(asset.vault_id) and _uuid_ok(asset.external_key)):
        return "the stored acceptance screenshot has no valid vault reference (vault_id, external_key)"
    return None


_LAB = Required("lab_is_align", "Prescription lab is Align", (), "Prescription.lab == 'AL'", _lab,
                "prescribed to the Align lab")
_MRN = Required("patient_mrn", "Patient MRN", ("mrn",), "Patient.mrn", _mrn)

# The table: per call, every group of fields Align requires.
REQUIRED = {
    "create_patient": (   # POST /patients
        _LAB,
        _MRN,
        Required("patient_name", "Patient name", ("firstName", "lastName"), "Patient.first_name, last_name", _names),
        Required("patient_date_of_birth", "Patient date of birth", ("dateOfBirth",), "Patient.date_of_birth",
                 _date_of_birth),
        Required("patient_gender", "Patient gender", ("gender",), "Patient.gender (unknown is sent as M)", _gender),
        Required("patient_email", "Patient email", ("email",), "Patient.email", _email),
        Required("patient_phone", "Patient phone number", ("phone",), "Patient.phone", _phone),
        Required("patient_address", "Patient address", ("address.line1", "address.city", "address.state",
                                                        "address.zip", "address.country"),
                 "Patient.address_line1, city, state, zip_code, country", _address),
    ),
    "create_order": (     # POST /orders
        _LAB,
        _MRN,
        Required("align_patient_id", "Align patient id", ("pId",), "Case.align_pid (from Create Patient)", _pid),
        Required("treatment_option", "Treatment option", ("treatmentOption",), "PhotoAssessment.treatment_option",
                 _treatment_option),
        Required("chief_concern", "Chief concern", ("chiefConcern",), "settings.ALIGN_CHIEF_CONCERN",
                 _chief_concern),
    ),
    "upload_assets": (    # POST /assets/upload (the service then reads our STL list)
        _LAB,
        _MRN,
        Required("align_patient_id", "Align patient id", ("pId",), "Case.align_pid (from Create Patient)", _pid),
        Required("two_stl_files", "At least two STL files", (), "CaseAsset STL_UPPER/STL_LOWER, not removed, "
                 "with vault_id and external_key", _stl_files, "at least 2 stored STL files"),
    ),
    "accept_clincheck": (  # PUT /orders/{caseId}/accept
        _LAB,
        _MRN,
        Required("acceptance_screenshot", "Acceptance screenshot", ("vault_id", "external_key"),
                 "the newest CCACCEPTSCREEN CaseAsset", _screenshot, "stored"),
    ),
    "request_revision": (  # PUT /orders/{caseId}/modify; the comments are checked with the request
        _LAB,
        _MRN,
    ),
}

# Groups produced by an earlier call of Send to Align: not checked before the first one.
_FROM_EARLIER_STEPS = {"align_patient_id"}


class Records:
    """What the checks read, each looked up once (and only if a check needs it), as the
    database holds it now: the caller's copy of the case may predate a correction."""

    def __init__(self, case, **known):
        self.case = case
        self._known = known

    def _get(self, name, load):
        if name not in self._known:
            self._known[name] = load()
        return self._known[name]

    @property
    def patient(self):
        from align_workflow.cases.models import Patient

        return self._get("patient", lambda: Patient.objects.get(pk=self.case.patient_id))

    @property
    def lab(self):
        from align_workflow.cases.models import Prescription

        return self._get("lab", lambda: Prescription.objects.filter(case_id=self.case.pk)
                         .values_list("lab", flat=True).first())

    @property
    def treatment_option(self):
        from align_workflow.cases.models import PhotoAssessment

        return self._get("treatment_option", lambda: PhotoAssessment.objects.filter(case_id=self.case.pk)
                         .values_list("treatment_option", flat=True).first())

    @property
    def stl_count(self):
        return self._get("stl_count", lambda: stored_stl_count(self.case.pk))

    @property
    def screenshot(self):
        from align_workflow.workflow.align_effects import newest_screenshot

        return self._get("screenshot", lambda: newest_screenshot(self.case.pk))


def preflight(case, step, *, ahead=False, records=None) -> list[Verdict]:
    """Every group Align requires for `step`, each with its verdict (in table order).

    `ahead`: checking before Send to Align starts, so groups an earlier step produces
    (the Align patient id) are left out.
    """
    records = records or Records(case)
    verdicts = []
    for req in REQUIRED.get(step, ()):
        if ahead and req.name in _FROM_EARLIER_STEPS:
            continue
        reason = req.check(case, records)
        verdicts.append(Verdict(req.name, req.label, reason is None, req.ok_reason if reason is None else reason))
    return verdicts


def problems(case, step, *, records=None) -> list[Verdict]:
    return [v for v in preflight(case, step, records=records) if not v.ok]


def describe(verdicts) -> str:
    return "; ".join(f"{v.label}: {v.reason}" for v in verdicts)


# --- The payloads themselves (what the client sends), read from the same records ----------

def patient_fields(case) -> dict:
    """Our patient in the contract's terms (POST /patients). Align requires M or F."""
    p = case.patient
    return dict(
        case_id=case.pk, mrn=p.mrn.strip(), first_name=p.first_name.strip(), last_name=p.last_name.strip(),
        date_of_birth=p.date_of_birth.isoformat(), gender=p.gender if p.gender in ALIGN_GENDERS else "M",
        email=p.email.strip(), phone=p.phone.strip(),
        address=dict(line1=p.address_line1.strip(), line2=p.address_line2.strip(), city=p.city.strip(),
                     state=p.state.strip(), zip=p.zip_code.strip(), country=p.country.strip()),
    )
