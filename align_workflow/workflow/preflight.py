"""Pre-flight: per call from the app to Align, every field Align requires, how each is
read from our records, and `preflight(case, step)`, which checks them as the database
holds them now, before anything is sent (see REQUIRED).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from align_workflow.align.payloads import COUNTRY_CODE, LAB_ALIGN, MIN_STL_FILES, PHONE_CHARS, TREATMENT_OPTIONS
from align_workflow.cases.models import CaseAsset, Patient, PhotoAssessment, Prescription


class Required(NamedTuple):
    name: str  # stable id of the group (the checklist's data-criterion)
    label: str  # what staff see, e.g. "Patient phone number"
    fields: tuple  # the contract's field names sent for it
    source: str  # where we read it from
    check: Callable  # (case, Records) -> None (fine) or the reason it is not
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
    parts = (
        ("street (line 1)", p.address_line1),
        ("city", p.city),
        ("state", p.state),
        ("ZIP code", p.zip_code),
        ("country", p.country),
    )
    missing = [name for name, value in parts if _blank(value)]
    if missing:
        return f"missing: {', '.join(missing)}"
    if not COUNTRY_CODE.match(p.country.strip()):
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
    return "the ALIGN_CHIEF_CONCERN setting is blank" if _blank(settings.ALIGN_CHIEF_CONCERN) else None


def _is_nil(value):
    try:
        return uuid.UUID(str(value)).int == 0
    except ValueError:
        return not str(value).strip("0-")


def newest_screenshot(case_id):
    """The newest usable CCACCEPTSCREEN asset of the case, or None."""
    for asset in CaseAsset.objects.filter(case_id=case_id, kind=CaseAsset.Kind.CCACCEPTSCREEN, removed=False).order_by(
        "-created", "-id"
    ):
        if asset.vault_id and asset.external_key and not _is_nil(asset.vault_id) and not _is_nil(asset.external_key):
            return asset
    return None


def stored_stl_count(case_id) -> int:
    """STL files the service can resolve: not removed, stored with their vault references."""
    return (
        CaseAsset.objects.filter(case_id=case_id, kind__in=CaseAsset.STL_KINDS, removed=False)
        .exclude(vault_id="")
        .exclude(external_key="")
        .count()
    )


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


_LAB = Required(
    "lab_is_align", "Prescription lab is Align", (), "Prescription.lab == 'AL'", _lab, "prescribed to the Align lab"
)
_MRN = Required("patient_mrn", "Patient MRN", ("mrn",), "Patient.mrn", _mrn)

# The table: per call, every group of fields Align requires.
REQUIRED = {
    "create_patient": (  # POST /patients
        _LAB,
        _MRN,
        Required("patient_name", "Patient name", ("firstName", "lastName"), "Patient.first_name, last_name", _names),
        Required(
            "patient_date_of_birth", "Patient date of birth", ("dateOfBirth",), "Patient.date_of_birth", _date_of_birth
        ),
        Required("patient_gender", "Patient gender", ("gender",), "Patient.gender (unknown is sent as M)", _gender),
        Required("patient_email", "Patient email", ("email",), "Patient.email", _email),
        Required("patient_phone", "Patient phone number", ("phone",), "Patient.phone", _phone),
        Required(
            "patient_address",
            "Patient address",
            ("address.line1", "address.city", "address.state", "address.zip", "address.country"),
            "Patient.address_line1, city, state, zip_code, country",
            _address,
        ),
    ),
    "create_order": (  # POST /orders
        _LAB,
        _MRN,
        Required("align_patient_id", "Align patient id", ("pId",), "Case.align_pid (from Create Patient)", _pid),
        Required(
            "treatment_option",
            "Treatment option",
            ("treatmentOption",),
            "PhotoAssessment.treatment_option",
            _treatment_option,
        ),
        Required("chief_concern", "Chief concern", ("chiefConcern",), "settings.ALIGN_CHIEF_CONCERN", _chief_concern),
    ),
    "upload_assets": (  # POST /assets/upload (the service then reads our STL list)
        _LAB,
        _MRN,
        Required("align_patient_id", "Align patient id", ("pId",), "Case.align_pid (from Create Patient)", _pid),
        Required(
            "two_stl_files",
            "At least two STL files",
            (),
            "CaseAsset STL_UPPER/STL_LOWER, not removed, with vault_id and external_key",
            _stl_files,
            "at least 2 stored STL files",
        ),
    ),
    "accept_clincheck": (  # PUT /orders/{caseId}/accept
        _LAB,
        _MRN,
        Required(
            "acceptance_screenshot",
            "Acceptance screenshot",
            ("vault_id", "external_key"),
            "the newest CCACCEPTSCREEN CaseAsset",
            _screenshot,
            "stored",
        ),
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
        return self._get("patient", self._load_patient)

    def _load_patient(self):
        patient = Patient.objects.get(pk=self.case.patient_id)
        # The row just checked is the one the call then sends (`case.patient`), not read again.
        self.case.patient = patient
        return patient

    @property
    def lab(self):
        return self._get(
            "lab", lambda: Prescription.objects.filter(case_id=self.case.pk).values_list("lab", flat=True).first()
        )

    @property
    def treatment_option(self):
        return self._get(
            "treatment_option",
            lambda: (
                PhotoAssessment.objects.filter(case_id=self.case.pk).values_list("treatment_option", flat=True).first()
            ),
        )

    @property
    def stl_count(self):
        return self._get("stl_count", lambda: stored_stl_count(self.case.pk))

    @property
    def screenshot(self):
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
