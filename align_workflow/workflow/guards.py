"""Guards: conditions a case must meet before a trigger may fire.

Each guard returns every criterion with its own verdict, so the staff panel can show
a checklist and a refusal can name exactly what is missing.
"""

from dataclasses import dataclass

from align_workflow.cases.models import PhotoAssessment, Prescription
from states import align_case as wf

from . import preflight


@dataclass(frozen=True)
class Criterion:
    name: str
    label: str
    ok: bool
    reason: str


def can_send_to_align(case) -> list[Criterion]:
    """The checklist before Send to Align: the clinic's criteria (lab, photos, STL files)
    and every field Align requires for the three calls (preflight.REQUIRED),
    one criterion per group, each with its reason."""
    prescription = Prescription.objects.filter(case=case).first()
    lab_ok = prescription is not None and prescription.lab == Prescription.Lab.ALIGN
    if prescription is None:
        lab_reason = "the case has no prescription"
    elif lab_ok:
        lab_reason = "prescribed to the Align lab"
    else:
        lab_reason = f"prescribed to {prescription.get_lab_display()}, not Align"

    assessment = PhotoAssessment.objects.filter(case=case).first()
    photos_ok = assessment is not None and assessment.status == PhotoAssessment.Status.APPROVED
    if assessment is None:
        photos_reason = "no photo assessment yet"
    elif photos_ok:
        photos_reason = "photo assessment approved"
    else:
        photos_reason = f"photo assessment is {assessment.get_status_display().lower()}, not approved"

    criteria = [
        Criterion("lab_is_align", "Prescription lab is Align", lab_ok, lab_reason),
        Criterion("photos_approved", "Photo assessment approved", photos_ok, photos_reason),
    ]
    # What was just read is handed on, so the pre-flight does not read it again.
    records = preflight.Records(
        case,
        lab=prescription.lab if prescription else None,
        treatment_option=assessment.treatment_option if assessment else None,
    )
    seen = {"lab_is_align", "patient_gender"}  # the gender has its own warning on the checklist
    if assessment is None:
        seen.add("treatment_option")  # "no photo assessment yet" is said once, above
    for step in wf.SEND_TO_ALIGN:
        for verdict in preflight.preflight(case, step, ahead=True, records=records):
            if verdict.name in seen:
                continue
            seen.add(verdict.name)
            criteria.append(Criterion(verdict.name, verdict.label, verdict.ok, verdict.reason))
    return criteria


GUARDS = {wf.CAN_SEND_TO_ALIGN: can_send_to_align}
