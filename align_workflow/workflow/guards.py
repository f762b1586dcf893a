"""Guards: conditions a case must meet before a trigger may fire.

Each guard returns every criterion with its own verdict, so the staff panel can show
a checklist and a refusal can name exactly what is missing.
"""

from dataclasses import dataclass

from align_workflow.cases.models import CaseAsset, PhotoAssessment, Prescription
from states import align_case as wf


@dataclass(frozen=True)
class Criterion:
    name: str
    label: str
    ok: bool
    reason: str


def can_send_to_align(case) -> list[Criterion]:
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

    stl_count = CaseAsset.objects.filter(case=case, kind__in=CaseAsset.STL_KINDS, removed=False).count()
    stl_ok = stl_count >= 2
    stl_reason = f"{stl_count} STL file{'s' if stl_count != 1 else ''} (at least 2 needed)"

    return [
        Criterion("lab_is_align", "Prescription lab is Align", lab_ok, lab_reason),
        Criterion("photos_approved", "Photo assessment approved", photos_ok, photos_reason),
        Criterion("two_stl_files", "At least two STL files", stl_ok, stl_reason),
    ]


GUARDS = {wf.CAN_SEND_TO_ALIGN: can_send_to_align}
