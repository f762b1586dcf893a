"""Cases made by `seed_demo --eligible N` are cases Align accepts, end to end: through the
simulator (a separate process) from eligible to shipping, with the app's own calls and
the simulator's events."""

import pytest
from django.conf import settings
from django.core.management import call_command

from align_workflow.cases.models import Case
from align_workflow.portals.services import mark_aligners_purchased
from align_workflow.workflow import fire, send_to_align
from align_workflow.workflow.guards import can_send_to_align
from states import align_case as wf
from tests.support.images import png_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def align(simulator, live_server, settings):
    settings.ALIGN_EXECUTION = "inline"
    settings.ALIGN_VAULT_URL = simulator.url
    simulator.config(
        app_url=live_server.url,
        callback_base_url=live_server.url,
        auto_advance=True,
        delay_ms=10,
        callback_secret=settings.ALIGN_EVENTS_SECRET,
        inbound_token=settings.ALIGN_INBOUND_TOKEN,
    )
    return simulator


def wait_for_state(simulator, case, state, timeout=15):
    simulator.wait_for(lambda _: Case.objects.get(pk=case.pk).state == state, timeout=timeout)
    return Case.objects.get(pk=case.pk)


def test_a_case_from_seed_demo_eligible_goes_from_eligible_to_shipping(align):
    call_command("seed_demo", eligible=5)
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.get(username="staff")
    case = Case.objects.select_related("patient", "prescription__provider__user").get(case_number="LOAD-000003")
    assert all(c.ok for c in can_send_to_align(case)), [c for c in can_send_to_align(case) if not c.ok]

    result = send_to_align(case, by=staff)
    assert result.ok, result
    case = wait_for_state(align, case, wf.PLAN_RECEIVED)
    fire(case, "approve_plan", by=case.prescription.provider.user, acceptance_screenshot=png_url())
    mark_aligners_purchased(case, by=staff)
    case = wait_for_state(align, case, wf.SHIPPING)
    assert case.tracking_number and case.aligners_purchased_at is not None
    assert align.state()["effects"]["accepts"] == 1
    assert settings.ALIGN_EXECUTION == "inline"
