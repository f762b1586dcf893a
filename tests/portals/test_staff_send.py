"""Send to Align and Retry from the staff portal, against an in-memory Align (the
client's interface; the real simulator is exercised by the browser test)."""

import uuid

import pytest

from align_workflow.cases.models import Case
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.fakes import FakeAlign, rejected, unavailable
from tests.support.pages import messages_of

# Calls run after the commit of the request that asked for them, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_align(monkeypatch, settings):
    from align_workflow.workflow import align_effects

    settings.ALIGN_EXECUTION = "inline"
    settings.ALIGN_RETRY_MAX_ATTEMPTS = 1
    fake = FakeAlign()
    monkeypatch.setattr(align_effects, "align_client", lambda: fake)
    return fake


def send(client, case):
    return client.post(f"/staff/cases/{case.pk}/send/", follow=True)


def test_send_takes_an_eligible_case_to_assets_uploaded(staff_client, fake_align, flags_on):
    case = make_case()
    response = send(staff_client, case)
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED
    [message] = messages_of(response)
    assert message.startswith("Align accepted:") and message.endswith("The case is now assets uploaded.")
    html = response.content.decode()
    assert html.count('class="tl-attempt') == 3  # one call per step in the timeline
    assert 'id="send-button"' not in html


def test_a_failed_step_stops_the_send_and_shows_the_error(staff_client, fake_align, flags_on):
    fake_align.fail("create_order", unavailable(503, message="Align is down for maintenance"))
    case = make_case()
    response = send(staff_client, case)
    case.refresh_from_db()
    assert case.state == wf.PATIENT_CREATED
    [message] = messages_of(response)
    assert "Align is down for maintenance" in message and "The case stays patient created" in message
    html = response.content.decode()
    assert 'class="tl-attempt tl-failed"' in html
    assert "HTTP 503" in html


def test_retry_after_a_rejection_finishes_the_send(staff_client, fake_align, flags_on):
    fake_align.fail("create_patient", rejected(422, "PATIENT.INVALID", "zip code is not valid"))
    case = make_case()
    send(staff_client, case)
    case.refresh_from_db()
    assert case.state == wf.ELIGIBLE and case.needs_attention
    page = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="retry-button"' in page and "zip code is not valid" in page

    response = staff_client.post(f"/staff/cases/{case.pk}/retry/", follow=True)
    case.refresh_from_db()
    assert case.state == wf.ASSETS_UPLOADED and not case.needs_attention
    assert any(m.endswith("The case is now assets uploaded.") for m in messages_of(response))


def test_retry_with_nothing_to_retry_is_refused_with_a_message(staff_client, fake_align, flags_on):
    case = make_case()
    response = staff_client.post(f"/staff/cases/{case.pk}/retry/", follow=True)
    assert response.status_code == 200
    assert any(
        m.startswith("Nothing to retry: no call to Align was made for this case yet.") for m in messages_of(response)
    )


def test_send_refused_by_a_criterion_says_which(staff_client, fake_align, flags_on):
    case = make_case(stl_files=1)
    response = send(staff_client, case)
    assert Case.objects.get(pk=case.pk).state == wf.ELIGIBLE
    [message] = messages_of(response)
    assert "At least two STL files: 1 STL file (at least 2 needed)" in message
    assert not fake_align.calls


def test_send_refused_when_the_flag_is_off(staff_client, fake_align):
    from waffle import get_waffle_flag_model

    get_waffle_flag_model().objects.update_or_create(name=wf.FLAG_INITIATE_ORDER, defaults={"everyone": False})
    case = make_case()
    response = send(staff_client, case)
    assert any("initiate-align-order" in m for m in messages_of(response)), messages_of(response)
    assert not fake_align.calls


def test_send_on_a_case_already_sent_is_refused(staff_client, fake_align, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    response = send(staff_client, case)
    assert any(m.startswith("Nothing to do: this was already done.") for m in messages_of(response))


def test_aligners_purchased_when_align_is_down_keeps_the_purchase(staff_client, fake_align, flags_on):
    from align_workflow.cases.models import CaseAsset

    case = make_case(state=wf.PROVIDER_APPROVED)
    CaseAsset.objects.create(
        case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, vault_id=str(uuid.uuid4()), external_key=str(uuid.uuid4())
    )
    fake_align.fail("accept_clincheck", unavailable(503))
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED and case.aligners_purchased_at is not None
    assert any(
        m.startswith("Align did not answer Accept ClinCheck.") and "Retry it from the case" in m
        for m in messages_of(response)
    ), messages_of(response)
    first = case.aligners_purchased_at

    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    case.refresh_from_db()
    assert case.state == wf.ACCEPTED and case.aligners_purchased_at == first
