"""The provider portal: own cases only, plan review, approve, request a revision."""

import pytest
from django_fsm_log.models import StateLog
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Case, CaseAsset, TreatmentPlan
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.pages import messages_of
from tests.support.portal_images import jpeg_data_url

pytestmark = pytest.mark.django_db


def plan(case, version=1, **fields):
    preview = CaseAsset.objects.create(case=case, kind=CaseAsset.Kind.PROVPREV, url=f"https://example.com/preview/{version}")
    return TreatmentPlan.objects.create(case=case, plan_id=f"TP-{case.pk}-{version}", version=version,
                                        stages_upper=14, stages_lower=12, notes=f"Plan notes v{version}",
                                        preview=preview, **fields)


@pytest.fixture
def review_case(provider):
    case = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    plan(case, 1)
    plan(case, 2)
    return case


def test_provider_pages_need_a_login(client, review_case):
    for url in ["/provider/", f"/provider/cases/{review_case.pk}/"]:
        assert client.get(url)["Location"].startswith("/accounts/login/?next=")


def test_staff_without_a_provider_record_get_403(staff_client, review_case):
    assert staff_client.get("/provider/").status_code == 403
    assert staff_client.get(f"/provider/cases/{review_case.pk}/").status_code == 403


def test_list_shows_only_own_cases_waiting_first(provider_client, provider, other_provider):
    mine_old = make_case(provider=provider, case_number="MINE-1", state=wf.ACCEPTED)
    mine_waiting = make_case(provider=provider, case_number="MINE-2", state=wf.PLAN_RECEIVED)
    plan(mine_waiting, 3)
    make_case(provider=other_provider, case_number="THEIRS-1", state=wf.PLAN_RECEIVED)
    response = provider_client.get("/provider/")
    assert [c.case_number for c in response.context["waiting"]] == ["MINE-2"]
    assert [c.case_number for c in response.context["others"]] == ["MINE-1"]
    html = response.content.decode()
    assert "THEIRS-1" not in html
    assert html.index("MINE-2") < html.index("MINE-1")
    assert "version 3" in html
    assert mine_old.pk


@pytest.mark.parametrize("method,path", [
    ("get", ""), ("get", "status/"), ("post", "approve/"), ("post", "request-revision/"),
])
def test_another_providers_case_is_404(client, other_provider, review_case, method, path):
    client.force_login(other_provider.user)
    response = getattr(client, method)(f"/provider/cases/{review_case.pk}/{path}",
                                       {"comments": "x", "acceptance_screenshot": jpeg_data_url()})
    assert response.status_code == 404
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


@pytest.mark.parametrize("path", ["approve/", "request-revision/"])
def test_actions_are_post_only(provider_client, review_case, path):
    assert provider_client.get(f"/provider/cases/{review_case.pk}/{path}").status_code == 405


def test_review_page_shows_patient_comments_and_latest_plan(provider_client, review_case, flags_on):
    response = provider_client.get(f"/provider/cases/{review_case.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="acceptance-block"' in html
    block = html[html.index('id="acceptance-block"'):html.index("</section>", html.index('id="acceptance-block"'))]
    patient = review_case.patient
    for text in [patient.first_name, patient.last_name, patient.mrn, review_case.case_number,
                 "version 2", "14 upper", "12 lower", "Plan notes v2", "https://example.com/preview/2"]:
        assert text in block, text
    assert "Plan notes v1" not in block
    assert 'name="acceptance_screenshot"' in html and 'type="hidden"' in html
    assert 'id="approve-button"' in html and 'id="revision-button"' in html
    assert "html2canvas/dist/html2canvas.min.js" in html
    assert "version 1" in html  # earlier versions listed outside the block


def test_no_decision_buttons_outside_plan_received(provider_client, provider):
    case = make_case(provider=provider, state=wf.REVISION_REQUESTED)
    plan(case, 1)
    html = provider_client.get(f"/provider/cases/{case.pk}/").content.decode()
    assert 'id="approve-button"' not in html and 'id="revision-button"' not in html
    assert "new plan version appears here" in html


def test_approve_with_a_screenshot(provider_client, provider, review_case, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = provider_client.post(f"/provider/cases/{review_case.pk}/approve/",
                                    {"acceptance_screenshot": jpeg_data_url()}, follow=True)
    review_case.refresh_from_db()
    assert review_case.state == wf.PROVIDER_APPROVED
    assert StateLog.objects.for_(review_case).get().by == provider.user
    assert any(m.startswith("Plan approved.") for m in messages_of(response))
    html = response.content.decode()
    assert f"Approved by {provider.user.username} on" in html
    assert 'id="approve-button"' not in html


@pytest.mark.parametrize("value,message", [
    ("", "The acceptance screenshot is missing"),
    ("data:image/png;base64,iVBORw0KGgo=", "not a JPEG image"),
])
def test_approve_without_a_usable_screenshot_is_refused(provider_client, review_case, value, message):
    response = provider_client.post(f"/provider/cases/{review_case.pk}/approve/",
                                    {"acceptance_screenshot": value}, follow=True)
    assert response.status_code == 200
    assert any(message in m for m in messages_of(response))
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_approve_twice_is_refused_with_a_message(provider_client, review_case, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    url = f"/provider/cases/{review_case.pk}/approve/"
    provider_client.post(url, {"acceptance_screenshot": jpeg_data_url()})
    response = provider_client.post(url, {"acceptance_screenshot": jpeg_data_url()}, follow=True)
    assert response.status_code == 200
    assert any("Cannot approve plan: the case is provider approved" in m for m in messages_of(response))
    assert StateLog.objects.for_(review_case).count() == 1


def test_request_revision_needs_a_comment(provider_client, review_case, flags_on):
    response = provider_client.post(f"/provider/cases/{review_case.pk}/request-revision/",
                                    {"comments": "  "}, follow=True)
    assert "Write what should change: a revision needs a comment." in messages_of(response)
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_request_revision(provider_client, review_case, flags_on, local_effects_only):
    response = provider_client.post(f"/provider/cases/{review_case.pk}/request-revision/",
                                    {"comments": "Less IPR on the lower arch"}, follow=True)
    assert Case.objects.get(pk=review_case.pk).state == wf.REVISION_REQUESTED
    assert any(m.startswith("Revision requested.") for m in messages_of(response))


def test_request_revision_flag_off_is_refused_and_hidden(provider_client, review_case, local_effects_only):
    get_waffle_flag_model().objects.update_or_create(name=wf.FLAG_SET_ORDER_STATUS, defaults={"everyone": False})
    html = provider_client.get(f"/provider/cases/{review_case.pk}/").content.decode()
    assert 'id="revision-button"' not in html and "switched off" in html
    response = provider_client.post(f"/provider/cases/{review_case.pk}/request-revision/",
                                    {"comments": "Please change"}, follow=True)
    assert any("set-align-order-status" in m for m in messages_of(response))
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_status_endpoint(provider_client, review_case):
    data = provider_client.get(f"/provider/cases/{review_case.pk}/status/").json()
    assert data["state"] == wf.PLAN_RECEIVED and data["stamp"]
