"""Shared by the align_batch tests: running the command, and cases that Align (the
simulator) already knows, prepared through the client without the asset upload."""

import io
import uuid

from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from align_workflow.align.client import Align
from align_workflow.cases.models import Case, CaseAsset, CaseNote, TreatmentPlan
from align_workflow.workflow.align_effects import patient_fields
from states import align_case as wf
from tests.support.factories import make_case


class Terminal(io.StringIO):
    """Output that says it is a terminal (for the progress bar)."""

    def isatty(self):
        return True


def run_batch(*args, stdout=None):
    """Run `align_batch *args`; returns (exit status, stdout, stderr)."""
    out, err = stdout or io.StringIO(), io.StringIO()
    try:
        call_command("align_batch", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
        err.write(f"CommandError: {exc}\n")
    return code, out.getvalue(), err.getvalue()


def effects(sim, *names):
    counted = sim.state()["effects"]
    return {name: counted[name] for name in names}


def keys_sent(sim, method, path):
    return [r.get("idempotency_key") for r in sim.requests() if r["method"] == method and r["path"] == path]


def notes(case):
    return list(CaseNote.objects.filter(case=case).order_by("id").values_list("text", flat=True))


def known_to_align(sim, case, *, plan=True):
    """Align has the case's patient and IAS order and, with `plan`, a ClinCheck plan
    waiting for a decision, which the app has received too."""
    align = Align()
    patient = align.create_patient(**patient_fields(case), idempotency_key=None)
    align.create_order(
        case_id=case.pk,
        p_id=patient.p_id,
        mrn=case.patient.mrn,
        treatment_option="BOTH_ARCHES",
        chief_concern="Crowding.",
        idempotency_key=None,
    )
    Case.objects.filter(pk=case.pk).update(align_pid=patient.p_id)
    case.align_pid = patient.p_id
    if plan:
        data = sim.emit(case.pk, "treatment_plan.submitted")["body"]["data"]
        TreatmentPlan.objects.create(case=case, plan_id=data["treatmentPlanId"], version=data["version"])
    return case


def with_screenshot(case):
    return CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        filename="accept.jpg",
        vault_id=str(uuid.uuid4()),
        external_key=str(uuid.uuid4()),
    )


def ready_to_accept(sim=None, *, purchased=True, screenshot=True, state=wf.PROVIDER_APPROVED, **fields):
    """A provider-approved case (with a purchase and a screenshot unless told otherwise);
    with `sim`, Align has its plan waiting."""
    case = make_case(state=state, aligners_purchased_at=timezone.now() if purchased else None, **fields)
    if sim is not None:
        known_to_align(sim, case)
    if screenshot:
        with_screenshot(case)
    return case


def write_csv(tmp_path, text, name="cases.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)
