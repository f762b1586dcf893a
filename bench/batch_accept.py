"""Figure 4: `align_batch accept --processes 2 --concurrency 8` against the old scripts' sequential loop.

Setup (not timed, at zero latency, the way the batch tests prepare cases): each case is
made `provider_approved` with its aligner purchase recorded; Align (the simulator) gets
its patient and IAS order through the app's own client and submits a plan (the `emit`
control); the plan row is stored; the acceptance screenshot (a real JPEG) is put in the
simulator's vault through the app's vault client and recorded as the case's
CCACCEPTSCREEN asset. That is what `align_batch accept` selects, and what Align needs
to accept. Then the simulator adds 50 ms to every call.

- baseline: one case after another, one bare `requests.put` per case to
  PUT /orders/{caseId}/accept with the case's screenshot ids, as the old batch script did
  (one token first; no records, no checks, no notes);
- measured: `manage.py align_batch accept --processes 2 --concurrency 8` (its default
  selection), run from this process with its two forked worker processes; every case
  goes through the engine and the outbound service. Its CPU is this process's and its
  worker processes' (waited for, so counted in RUSAGE_CHILDREN).

Both accept the same cases: after the baseline, Align (the simulator) is given a new
pending plan for each case (`/_sim/cases/<id>/emit`, not timed), so the batch's
acceptance is real work too. Every case must end `accepted`.
"""

import io
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from align_simulator.launch import SimulatorHandle
from align_workflow.align.client import Align
from align_workflow.align.vault import get_vault
from align_workflow.cases.models import Case, CaseAsset, TreatmentPlan
from align_workflow.workflow.align_effects import patient_fields
from states import align_case as wf

from . import flow
from .report import Row

LATENCY_MS = 50
PROCESSES = int(os.environ.get("BENCH_BATCH_PROCESSES", "2"))  # one per core of the 2-core machine
CONCURRENCY = int(os.environ.get("BENCH_BATCH_CONCURRENCY", "8"))  # threads in each process


def _children_cpu():
    """CPU seconds of this process's children that were waited for (the batch's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _old_script_loop(sim_url, rows):
    token = requests.post(
        f"{sim_url}/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": settings.ALIGN_CLIENT_ID,
            "client_secret": settings.ALIGN_CLIENT_SECRET,
        },
        timeout=10,
    ).json()["access_token"]
    for case_id, mrn, vault_id, external_key in rows:
        response = requests.put(
            f"{sim_url}/orders/{case_id}/accept",
            headers={"Authorization": f"Bearer {token}"},
            json={"caseId": case_id, "mrn": mrn, "vault_id": vault_id, "external_key": external_key},
            timeout=10,
        )
        if response.status_code != 200:
            raise RuntimeError(f"case {case_id}: {response.status_code} {response.text[:300]}")


def _known_to_align(case, sim, jpeg):
    """Align has the case's patient, order and a pending plan; the screenshot is in the vault."""
    try:
        align = Align()
        patient = align.create_patient(**patient_fields(case), idempotency_key=None)
        align.create_order(
            case_id=case.pk,
            p_id=patient.p_id,
            mrn=case.patient.mrn,
            treatment_option="BOTH_ARCHES",
            chief_concern=settings.ALIGN_CHIEF_CONCERN,
            idempotency_key=None,
        )
        plan = SimulatorHandle(sim.url).emit(case.pk, "treatment_plan.submitted")["body"]["data"]
        blob = get_vault().put(jpeg, filename=f"clincheck-acceptance-case-{case.pk}.jpg", content_type="image/jpeg")
        return case.pk, patient.p_id, plan, blob
    finally:
        connection.close()


def _ready_to_accept(cases, sim, jpeg):
    with ThreadPoolExecutor(max_workers=8) as pool:
        known = list(pool.map(lambda case: _known_to_align(case, sim, jpeg), cases))
    now = timezone.now()
    for pk, p_id, _, _ in known:
        Case.objects.filter(pk=pk).update(align_pid=p_id)
    Case.objects.filter(pk__in=[k[0] for k in known]).update(state=wf.PROVIDER_APPROVED, aligners_purchased_at=now)
    TreatmentPlan.objects.bulk_create(
        [
            TreatmentPlan(case_id=pk, plan_id=plan["treatmentPlanId"], version=plan["version"], received_at=now)
            for pk, _, plan, _ in known
        ]
    )
    CaseAsset.objects.bulk_create(
        [
            CaseAsset(
                case_id=pk,
                kind=CaseAsset.Kind.CCACCEPTSCREEN,
                filename=f"clincheck-acceptance-case-{pk}.jpg",
                vault_id=blob.vault_id,
                external_key=blob.external_key,
            )
            for pk, _, _, blob in known
        ]
    )


def _selection(ids):
    shots = {
        a.case_id: (a.vault_id, a.external_key)
        for a in CaseAsset.objects.filter(case_id__in=ids, kind=CaseAsset.Kind.CCACCEPTSCREEN)
    }
    return [
        (pk, mrn, *shots[pk])
        for pk, mrn in Case.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "patient__mrn")
    ]


def _machine_cpu_per_case(meter, seconds, n):
    if meter.busy is None:
        return "-"
    return f"{meter.busy * (os.cpu_count() or 1) * seconds / n * 1000:.1f} ms"


def run(scale=1.0):
    skipped = flow.needs_postgres("4 batch")
    if skipped:
        return [skipped]
    n = max(CONCURRENCY // 4, int(1000 * scale))
    flow.flags_on()
    _, provider_user = flow.people("F4")
    screenshot = flow.screenshot_data_url()
    cases = flow.make_cases(n, "F4", provider_user)
    ids = [c.pk for c in cases]

    with flow.Simulator() as sim:
        flow.use_simulator(sim)
        sim.config(auto_advance=False, callback_base_url="", app_url="", latency_ms=0, seed=0)
        _ready_to_accept(cases, sim, flow.screenshot_jpeg(screenshot))
        sim.config(latency_ms=LATENCY_MS)

        sim_pid = sim.process.pid
        loop_cpu = flow.CpuMeter().start()
        sim_before = flow.cpu_now(sim_pid)
        start = time.perf_counter()
        _old_script_loop(sim.url, _selection(ids))
        t_loop = time.perf_counter() - start
        loop_cpu.stop()
        sim_loop = flow.cpu_now(sim_pid) - sim_before

        for pk in ids:  # a pending plan again at Align, for the batch to accept
            sim.emit(pk, "treatment_plan.submitted")
        accepts_before = flow.effects(sim)["accepts"]

        out = io.StringIO()
        batch_cpu = flow.CpuMeter().start()
        children_before = _children_cpu()
        sim_before = flow.cpu_now(sim_pid)
        start = time.perf_counter()
        call_command(
            "align_batch",
            "accept",
            "--processes",
            str(PROCESSES),
            "--concurrency",
            str(CONCURRENCY),
            stdout=out,
            stderr=out,
        )
        t_batch = time.perf_counter() - start
        batch_cpu.stop()
        workers_cpu = _children_cpu() - children_before
        sim_batch = flow.cpu_now(sim_pid) - sim_before
        accepted = Case.objects.filter(pk__in=ids, state=wf.ACCEPTED).count()
        if accepted != n or flow.effects(sim)["accepts"] - accepts_before != n:
            raise RuntimeError(f"align_batch accepted {accepted} of {n} cases:\n{out.getvalue()[-3000:]}")

    speedup = t_loop / t_batch
    return [
        Row(
            "4 batch",
            f"{n} acceptances, {LATENCY_MS} ms latency, align_batch --processes {PROCESSES} --concurrency {CONCURRENCY}",
            f"{t_batch:.1f} s",
            f"{t_loop:.1f} s sequential loop",
            speedup,
            ">= 10",
            speedup >= 10,
        ),
        Row(
            "4 batch", "time per case", f"{t_batch / n * 1000:.1f} ms", f"{t_loop / n * 1000:.1f} ms", speedup, "report"
        ),
        Row(
            "4 batch",
            "CPU per acceptance (this process and the batch's worker processes)",
            f"{(batch_cpu.cpu + workers_cpu) / n * 1000:.1f} ms",
            f"{loop_cpu.cpu / n * 1000:.1f} ms",
            None,
            "<= 7 ms",
            (batch_cpu.cpu + workers_cpu) / n * 1000 <= 7,
        ),
        Row(
            "4 batch",
            "  of which in the calling process (selection, progress, report)",
            f"{batch_cpu.cpu / n * 1000:.1f} ms",
            "",
            None,
            "report",
        ),
        Row(
            "4 batch",
            "the simulator's CPU per acceptance (Align's side, on the same 2 cores)",
            f"{sim_batch / n * 1000:.1f} ms",
            f"{sim_loop / n * 1000:.1f} ms",
            None,
            "report",
        ),
        Row(
            "4 batch",
            "the machine's CPU per acceptance (every process: app, simulator, PostgreSQL, others)",
            _machine_cpu_per_case(batch_cpu, t_batch, n),
            _machine_cpu_per_case(loop_cpu, t_loop, n),
            None,
            "report",
        ),
        Row(
            "4 batch",
            "the machine's CPU busy (both cores, every process)",
            flow.percent(batch_cpu.busy),
            flow.percent(loop_cpu.busy),
            None,
            "report",
        ),
    ]
