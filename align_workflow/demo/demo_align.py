"""Telling a fresh Align simulator about the cases this app already has (`make run`).

The simulator starts empty, but the demo data has cases past `eligible` whose history
says Align already has their patient, order, sales orders and plans. `adopt_cases`
describes each such case from our records to the simulator's
`POST /_sim/cases/{caseId}/adopt` control, so that the case's next step (create the
order, upload, request a revision, accept, or an event from Align) works as it would
for a case sent in this run. Only for the simulator: the real service has no such call.
"""

import time
from dataclasses import dataclass, field

import requests
from django.conf import settings
from django_fsm_log.models import StateLog

from align_workflow.align.payloads import patient_fields
from align_workflow.cases.models import AlignOrder, Case, CaseAsset, PhotoAssessment, TreatmentPlan
from align_workflow.workflow.models import OutboundAttempt
from align_workflow.workflow.preflight import newest_screenshot
from states import align_case as wf

# Our state -> how far the case got at Align (the simulator's adopt stages). A provider's
# approval stays with us until the acceptance is sent, so Align still has the plan pending.
STAGE_FOR_STATE = {
    wf.PATIENT_CREATED: "patient_created",
    wf.ORDER_CREATED: "order_created",
    wf.ASSETS_UPLOADED: "assets_uploaded",
    wf.PLAN_RECEIVED: "plan_submitted",
    wf.PROVIDER_APPROVED: "plan_submitted",
    wf.REVISION_REQUESTED: "modification_requested",
    wf.ACCEPTED: "accepted",
    wf.SHIPPING: "shipped",
}


@dataclass
class AdoptReport:
    adopted: list = field(default_factory=list)  # case numbers
    skipped: list = field(default_factory=list)  # (case number, why)
    failed: list = field(default_factory=list)  # (case number, the simulator's answer)

    def summary(self):
        line = f"Align simulator: {len(self.adopted)} case(s) past eligible adopted"
        if self.adopted:
            line += f" ({', '.join(self.adopted)})"
        if self.skipped:
            line += f"; {len(self.skipped)} skipped"
        if self.failed:
            line += f"; {len(self.failed)} FAILED"
        return line + "."


def state_before_cancel(case):
    log = (
        StateLog.objects.for_(case)
        .filter(transition="cancel", state=wf.CANCELLED)
        .order_by("-timestamp", "-id")
        .first()
    )
    return log.source_state if log else None


def adoption(case):
    """The adopt body for `case`, or (None, why not) when Align has nothing of it."""
    reached, cancelled = case.state, False
    if case.state == wf.CANCELLED:
        reached, cancelled = state_before_cancel(case), True
    stage = STAGE_FOR_STATE.get(reached)
    if stage is None:
        return None, f"never sent to Align (state {case.state})"
    if not case.align_pid:
        return None, "no Align patient id"
    patient = patient_fields(case)
    body = {
        "stage": stage,
        "mrn": patient["mrn"],
        "pId": case.align_pid,
        "firstName": patient["first_name"],
        "lastName": patient["last_name"],
        "dateOfBirth": patient["date_of_birth"],
        "gender": patient["gender"],
        "email": patient["email"],
        "phone": patient["phone"],
        "address": patient["address"],
    }
    if stage == "patient_created":
        return body, None
    assessment = PhotoAssessment.objects.filter(case=case).first()
    body.update(
        treatmentOption=assessment.treatment_option if assessment else "",
        chiefConcern=settings.ALIGN_CHIEF_CONCERN,
        cancelled=cancelled,
    )
    if stage == "order_created":
        return body, None
    body["assets"] = [
        {
            "kind": a.kind,
            "vault_id": a.vault_id,
            "external_key": a.external_key,
            "filename": a.filename,
            "sha256": a.sha256,
        }
        for a in CaseAsset.objects.filter(case=case, kind__in=CaseAsset.STL_KINDS, removed=False).order_by(
            "kind", "created", "id"
        )
    ]
    body["salesOrders"] = [
        {
            "salesOrderNumber": so.sales_order_number,
            "orderKind": so.order_kind,
            "orderType": so.order_type or "IAS",
            "createdAt": so.align_created_at.isoformat(),
        }
        for so in AlignOrder.objects.filter(case=case).order_by("align_created_at", "id")
    ]
    if stage == "assets_uploaded":
        return body, None
    body["plans"] = [
        {
            "treatmentPlanId": p.plan_id,
            "version": p.version,
            "revisionOf": p.revision_of,
            "salesOrderNumber": p.sales_order_number,
            "stages": {"upper": p.stages_upper, "lower": p.stages_lower},
            "notes": p.notes,
            "attachments": p.attachments,
            "ipr": p.ipr,
        }
        for p in TreatmentPlan.objects.filter(case=case).order_by("version", "id")
    ]
    if stage == "modification_requested":
        body["comments"] = revision_comments(case)
    if stage in ("accepted", "shipped"):
        shot = newest_screenshot(case.pk)
        if shot is not None:
            body["screenshot"] = {"vault_id": shot.vault_id, "external_key": shot.external_key}
    return body, None


def revision_comments(case):
    """The provider's words of the last revision request that Align took, if we sent one."""
    attempt = (
        OutboundAttempt.objects.filter(case=case, step="request_revision", status=OutboundAttempt.Status.SUCCEEDED)
        .order_by("-id")
        .first()
    )
    return str((attempt.params or {}).get("comments") or "") if attempt else ""


def adopt_cases(simulator_url, cases=None, timeout=10):
    """Adopt every case past `eligible` (or `cases`) into the simulator at `simulator_url`."""
    report = AdoptReport()
    if cases is None:
        cases = Case.objects.exclude(state=wf.ELIGIBLE)
    http = requests.Session()
    for case in sorted(cases, key=lambda c: c.case_number):
        body, why_not = adoption(case)
        if body is None:
            report.skipped.append((case.case_number, why_not))
            continue
        try:
            response = http.post(f"{simulator_url.rstrip('/')}/_sim/cases/{case.pk}/adopt", json=body, timeout=timeout)
        except requests.RequestException as exc:
            report.failed.append((case.case_number, f"{type(exc).__name__}: {exc}"))
            continue
        if response.status_code == 200:
            report.adopted.append(case.case_number)
        else:
            report.failed.append((case.case_number, f"{response.status_code} {response.text[:300]}"))
    return report


def wait_for_simulator(simulator_url, timeout=20.0, alive=lambda: True):
    """True once the simulator answers its state control; False after `timeout` seconds,
    or as soon as `alive()` says its process is gone."""
    deadline = time.monotonic() + timeout
    while alive():
        try:
            if requests.get(f"{simulator_url.rstrip('/')}/_sim/state", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return False
