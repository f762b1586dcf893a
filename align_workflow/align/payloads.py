"""The shape of the events the Align service sends (contract section 5), and a small
validator that reports every problem with its field path, e.g.
{"data.stages.upper": ["must be at most 20"]}.

Unknown extra fields are accepted and ignored, so the service may add fields.

It also holds the other direction's pure pieces: the values Align accepts
(genders, treatment options, phone characters, ...) and the builder of the patient
payload. Which of our records each required field is read from, and the check before
anything is sent, is the workflow's (align_workflow/workflow/preflight.py).
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime

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
    SALES_ORDER_CREATED: Obj(
        {
            **_COMMON,
            "pId": Str(max_length=40),
            "salesOrderNumber": Str(max_length=40),
            "orderKind": Str(choices=("PRIMARY", "SECONDARY")),
            "orderType": Str(max_length=20),
            "createdAt": DateTime(),
        }
    ),
    TREATMENT_PLAN_SUBMITTED: Obj(
        {
            **_COMMON,
            # Not needed to store the plan, and unknown until Align opened a sales order.
            "pId": Str(max_length=40, null=True, blank=True),
            "salesOrderNumber": Str(max_length=40, null=True, blank=True),
            "treatmentPlanId": Str(max_length=40),
            "version": Int(min_value=1, max_value=10_000),
            "revisionOf": Str(max_length=40, null=True, blank=True),
            "stages": Obj(
                {"upper": Int(min_value=0, max_value=MAX_STAGES), "lower": Int(min_value=0, max_value=MAX_STAGES)}
            ),
            "attachments": Bool(),
            "ipr": Bool(),
            "notes": Str(max_length=5000, blank=True),
            "assets": List(
                Obj(
                    {
                        "kind": Str(choices=("PROVPREV",)),
                        "url": Url(max_length=500),
                        "sha256": Sha256(),
                        "size": Int(min_value=0),
                    }
                )
            ),
        }
    ),
    CASE_STATUS_CHANGED: Obj(
        {
            **_COMMON,
            "salesOrderNumber": Str(max_length=40, null=True, blank=True),
            "status": Str(choices=ALIGN_STATUSES),
            "previousStatus": Str(choices=ALIGN_STATUSES, null=True, required=False),
            "shipment": Obj(
                {
                    "carrier": Str(max_length=60),
                    "trackingNumber": Str(max_length=80),
                    "shippedAt": DateTime(),
                    "alignerCount": Int(min_value=0, required=False),
                },
                required=False,
                null=True,
            ),
            "reason": Str(max_length=2000, blank=True, null=True, required=False),
        }
    ),
}

ENVELOPE = Obj(
    {
        "type": Str(choices=EVENT_TYPES),
        "event_id": Str(max_length=100),
        "occurred_at": DateTime(),
        "data": Obj({}),
    }
)


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
        elif (
            isinstance(value, str)
            and not _storable_text(value)
            or isinstance(value, float)
            and not math.isfinite(value)
        ):
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
        raise PayloadError(
            {bad: ["contains a character or number that cannot be stored (NUL, lone surrogate, infinity)"]}
        )
    errors = {}
    envelope = ENVELOPE.clean(payload, "", errors)
    if envelope is None:
        raise PayloadError(errors)
    data = None
    if envelope.get("type") in DATA and isinstance(payload.get("data"), dict):
        data = DATA[envelope["type"]].clean(payload["data"], "data", errors)
        if (
            envelope["type"] == CASE_STATUS_CHANGED
            and data is not None
            and data.get("status") == "SHIPPED"
            and not payload["data"].get("shipment")
        ):
            _err(errors, "data.shipment", "is required when the status is SHIPPED")
    if errors:
        raise PayloadError(errors)
    return Event(
        type=envelope["type"],
        event_id=envelope["event_id"],
        occurred_at=envelope["occurred_at"],
        data=data,
        payload=payload,
    )


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
COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")


# --- The payloads themselves (what the client sends) --------------------------------------


def patient_fields(case) -> dict:
    """Our patient in the contract's terms (POST /patients). Align requires M or F."""
    p = case.patient
    return dict(
        case_id=case.pk,
        mrn=p.mrn.strip(),
        first_name=p.first_name.strip(),
        last_name=p.last_name.strip(),
        date_of_birth=p.date_of_birth.isoformat(),
        gender=p.gender if p.gender in ALIGN_GENDERS else "M",
        email=p.email.strip(),
        phone=p.phone.strip(),
        address=dict(
            line1=p.address_line1.strip(),
            line2=p.address_line2.strip(),
            city=p.city.strip(),
            state=p.state.strip(),
            zip=p.zip_code.strip(),
            country=p.country.strip(),
        ),
    )
