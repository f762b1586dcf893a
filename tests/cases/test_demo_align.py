"""`make run`'s adopt step (demo/demo_align.py) against the real simulator process: after
seed_demo and adopt_cases, every demo case past eligible is known to Align and its next
step works, calls from the app and events from Align alike. Without the adopt step the
same calls fail (the negative control)."""

import io
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from align_workflow.align.client import Align
from align_workflow.cases.models import Case
from align_workflow.demo.demo_align import adopt_cases, adoption, wait_for_simulator
from align_workflow.portals.services import mark_aligners_purchased
from align_workflow.workflow import fire, send_to_align
from align_workflow.workflow.effects import EffectFailed
from states import align_case as wf
from tests.support.images import png_url

pytestmark = pytest.mark.django_db(transaction=True)

PAST_ELIGIBLE = [f"DEMO-{n}" for n in range(1006, 1016)]


@pytest.fixture
def demo(simulator, live_server, settings, tmp_path):
    """The demo data, and the simulator talking to this app as `make run` sets it up."""
    settings.ALIGN_VAULT_URL = "local"
    settings.MEDIA_ROOT = tmp_path / "media"
    simulator.config(
        app_url=live_server.url,
        callback_base_url=live_server.url,
        callback_secret=settings.ALIGN_EVENTS_SECRET,
        inbound_token=settings.ALIGN_INBOUND_TOKEN,
    )
    call_command("seed_demo", stdout=io.StringIO())
    return simulator


def demo_case(number):
    return Case.objects.get(case_number=number)


def staff_user():
    return get_user_model().objects.get(username="staff")


def provider_of(case):
    return case.prescription.provider.user


def wait_for_state(number, state, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        case = demo_case(number)
        if case.state == state:
            return case
        assert time.monotonic() < deadline, f"{number} is {case.state}, not {state}"
        time.sleep(0.05)


def test_every_demo_case_past_eligible_is_adopted(demo):
    assert wait_for_simulator(demo.url, timeout=2)
    report = adopt_cases(demo.url)

    assert report.adopted == PAST_ELIGIBLE and report.failed == [] and report.skipped == []
    assert report.summary().startswith("Align simulator: 10 case(s) past eligible adopted (DEMO-1006, ")
    state = demo.state()
    pks = sorted(demo_case(n).pk for n in PAST_ELIGIBLE)
    assert state["adopted"] == pks
    assert {p["mrn"] for p in state["patients"]} == {demo_case(n).patient.mrn for n in PAST_ELIGIBLE}
    assert sorted(c["caseId"] for c in state["orders"]) == [pk for pk in pks if pk != demo_case("DEMO-1006").pk]
    assert state["events"] == [] and not any(state["effects"][k] for k in ("patients", "orders", "accepts"))
    assert Align().get_case(demo_case("DEMO-1013").pk).status == "SHIPPED"
    assert Align().get_case(demo_case("DEMO-1014").pk).status == "CANCELLED"

    again = adopt_cases(demo.url)  # run_demo twice against one simulator: nothing changes
    assert again.adopted == PAST_ELIGIBLE and demo.state()["orders"] == state["orders"]


def test_after_the_adopt_step_each_demo_case_takes_its_next_step(demo):
    adopt_cases(demo.url)
    staff = staff_user()

    # Calls from the app: Send to Align resumes, the provider decides, staff record the purchase.
    for number in ("DEMO-1006", "DEMO-1007"):
        result = send_to_align(demo_case(number), by=staff)
        assert result.ok and result.done, (number, result)
        assert demo_case(number).state == wf.ASSETS_UPLOADED

    case = demo_case("DEMO-1009")
    fire(case, "approve_plan", by=provider_of(case), acceptance_screenshot=png_url())
    mark_aligners_purchased(case, by=staff)
    assert case.state == wf.ACCEPTED

    case = demo_case("DEMO-1011")
    mark_aligners_purchased(case, by=staff)
    assert case.state == wf.ACCEPTED

    case = demo_case("DEMO-1015")
    fire(case, "request_revision", by=provider_of(case), comments="Less movement on 11 and 21.")
    assert case.state == wf.REVISION_REQUESTED

    # Events from Align: a first plan, a revised plan, manufacture and shipping.
    demo.emit(demo_case("DEMO-1008").pk, "treatment_plan.submitted")
    demo.emit(demo_case("DEMO-1010").pk, "treatment_plan.submitted")
    shipped = demo_case("DEMO-1012").pk
    demo.emit(shipped, "case.status_changed")
    demo.emit(shipped, "case.status_changed")
    assert wait_for_state("DEMO-1008", wf.PLAN_RECEIVED).treatment_plans.get().sales_order_number == "SO10081"
    revised = wait_for_state("DEMO-1010", wf.PLAN_RECEIVED).treatment_plans.first()
    assert (revised.version, revised.revision_of) == (2, "TP1010-1")
    assert wait_for_state("DEMO-1012", wf.SHIPPING).tracking_number.startswith("1Z")

    assert not Case.objects.filter(needs_attention=True).exists()
    effects = demo.state()["effects"]
    assert (effects["orders"], effects["uploads"], effects["accepts"], effects["modifies"]) == (1, 2, 2, 1)


def test_without_the_adopt_step_align_has_never_heard_of_them(demo):
    """The negative control: the same next steps fail when nothing was adopted."""
    staff = staff_user()
    result = send_to_align(demo_case("DEMO-1006"), by=staff)
    assert result.failed_step == "create_order" and "404" in result.error

    case = demo_case("DEMO-1011")
    with pytest.raises(EffectFailed, match="404"):
        mark_aligners_purchased(case, by=staff)
    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED and case.needs_attention


def test_the_description_follows_our_records(demo):
    case = demo_case("DEMO-1014")  # cancelled after its order was created
    body, why_not = adoption(case)
    assert why_not is None
    assert (body["stage"], body["cancelled"], body["pId"]) == ("order_created", True, case.align_pid)
    assert adoption(demo_case("DEMO-1011"))[0]["stage"] == "plan_submitted"  # approval not sent yet
    shot = adoption(demo_case("DEMO-1012"))[0]["screenshot"]
    assert set(shot) == {"vault_id", "external_key"}
    assert adoption(demo_case("DEMO-1001")) == (None, "never sent to Align (state eligible)")


def test_run_demo_adopts_once_the_simulator_answers_and_says_how_many_in_one_line(demo):
    from align_workflow.demo.management.commands.run_demo import Command as RunDemo

    out, err = io.StringIO(), io.StringIO()
    RunDemo(stdout=out, stderr=err)._adopt(demo.url, demo.process)
    assert out.getvalue().splitlines() == [
        "Align simulator: 10 case(s) past eligible adopted (" + ", ".join(PAST_ELIGIBLE) + ")."
    ]
    assert err.getvalue() == "" and len(demo.state()["adopted"]) == 10


def test_waiting_for_a_simulator_that_is_gone_stops_at_once():
    started = time.monotonic()
    assert not wait_for_simulator("http://127.0.0.1:9", timeout=30, alive=lambda: False)
    assert time.monotonic() - started < 5
