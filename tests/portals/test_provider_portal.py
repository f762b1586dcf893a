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
    preview = CaseAsset.objects.create(
        case=case, kind=CaseAsset.Kind.PROVPREV, url=f"https://example.com/preview/{version}"
    )
    return TreatmentPlan.objects.create(
        case=case,
        plan_id=f"TP-{case.pk}-{version}",
        version=version,
        stages_upper=14,
        stages_lower=12,
        notes=f"Plan notes v{version}",
        preview=preview,
        **fields,
    )


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
    assert [c.case_number for c, _ in response.context["waiting"]] == ["MINE-2"]
    assert [c.case_number for c in response.context["page"].object_list] == ["MINE-2", "MINE-1"]
    html = response.content.decode()
    assert "THEIRS-1" not in html
    assert html.index("MINE-2") < html.index("MINE-1")
    assert "version 3" in html
    assert mine_old.pk


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", ""),
        ("get", "status/"),
        ("post", "approve/"),
        ("post", "request-revision/"),
    ],
)
def test_another_providers_case_is_404(client, other_provider, review_case, method, path):
    client.force_login(other_provider.user)
    response = getattr(client, method)(
        f"/provider/cases/{review_case.pk}/{path}", {"comments": "x", "acceptance_screenshot": jpeg_data_url()}
    )
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
    block = html[html.index('id="acceptance-block"') : html.index("</section>", html.index('id="acceptance-block"'))]
    patient = review_case.patient
    for text in [
        patient.first_name,
        patient.last_name,
        patient.mrn,
        review_case.case_number,
        "version 2",
        "14 upper",
        "12 lower",
        "Plan notes v2",
        "https://example.com/preview/2",
    ]:
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
    response = provider_client.post(
        f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": jpeg_data_url()}, follow=True
    )
    review_case.refresh_from_db()
    assert review_case.state == wf.PROVIDER_APPROVED
    assert StateLog.objects.for_(review_case).get().by == provider.user
    assert any(m.startswith("Plan approved.") for m in messages_of(response))
    html = response.content.decode()
    assert f"Approved by {provider.user.username} on" in html
    assert 'id="approve-button"' not in html


@pytest.mark.parametrize(
    "value,message",
    [
        ("", "The acceptance screenshot is missing"),
        ("data:image/png;base64,iVBORw0KGgo=", "The acceptance screenshot is not a readable PNG image."),
        ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "only JPEG or PNG images are accepted"),
    ],
)
def test_approve_without_a_usable_screenshot_is_refused(provider_client, review_case, value, message):
    response = provider_client.post(
        f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": value}, follow=True
    )
    assert response.status_code == 200
    assert any(message in m for m in messages_of(response))
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_approve_twice_is_refused_with_a_message(provider_client, review_case, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    url = f"/provider/cases/{review_case.pk}/approve/"
    provider_client.post(url, {"acceptance_screenshot": jpeg_data_url()})
    response = provider_client.post(url, {"acceptance_screenshot": jpeg_data_url()}, follow=True)
    assert response.status_code == 200
    assert any(m.startswith("Nothing to do: this was already done.") for m in messages_of(response))
    assert StateLog.objects.for_(review_case).count() == 1


def test_request_revision_needs_a_comment(provider_client, review_case, flags_on):
    response = provider_client.post(
        f"/provider/cases/{review_case.pk}/request-revision/", {"comments": "  "}, follow=True
    )
    assert "Write what should change: a revision needs a comment." in messages_of(response)
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_request_revision(provider_client, review_case, flags_on, local_effects_only):
    response = provider_client.post(
        f"/provider/cases/{review_case.pk}/request-revision/", {"comments": "Less IPR on the lower arch"}, follow=True
    )
    assert Case.objects.get(pk=review_case.pk).state == wf.REVISION_REQUESTED
    assert any(m.startswith("Revision requested.") for m in messages_of(response))


def test_request_revision_flag_off_is_refused_and_hidden(provider_client, review_case, local_effects_only):
    get_waffle_flag_model().objects.update_or_create(name=wf.FLAG_SET_ORDER_STATUS, defaults={"everyone": False})
    html = provider_client.get(f"/provider/cases/{review_case.pk}/").content.decode()
    assert 'id="revision-button"' not in html and "switched off" in html
    response = provider_client.post(
        f"/provider/cases/{review_case.pk}/request-revision/", {"comments": "Please change"}, follow=True
    )
    assert any(
        "Sending revision requests and plan acceptances to Align is switched off" in m for m in messages_of(response)
    )
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_status_endpoint(provider_client, review_case):
    data = provider_client.get(f"/provider/cases/{review_case.pk}/status/").json()
    assert data["state"] == wf.PLAN_RECEIVED and data["stamp"]


def test_case_page_with_an_approval_by_nobody_shows_the_page(provider_client, provider):
    """An approve_plan history row without a user (automation, imported history, the demo
    data) must not make the provider's case page a 500."""
    from django.contrib.contenttypes.models import ContentType

    case = make_case(provider=provider, state=wf.PROVIDER_APPROVED)
    plan(case, 1)
    StateLog.objects.create(
        by=None,
        source_state=wf.PLAN_RECEIVED,
        state=wf.PROVIDER_APPROVED,
        transition="approve_plan",
        content_type=ContentType.objects.get_for_model(Case),
        object_id=case.pk,
    )
    response = provider_client.get(f"/provider/cases/{case.pk}/")
    assert response.status_code == 200
    assert "Approved by the provider on" in response.content.decode()


# --- the acceptance screenshot's size: one setting for the request, the form and the decoder ---


def noise_jpeg_data_url(width, height, quality=90):
    """A JPEG that compresses as badly as a dense high-density capture does."""
    import base64
    import io
    import os

    from PIL import Image

    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def post_like_a_browser(client, url, data):
    """What form.submit() sends: application/x-www-form-urlencoded (base64's + and / become %2B, %2F)."""
    from urllib.parse import urlencode

    return client.post(url, urlencode(data), content_type="application/x-www-form-urlencoded", follow=True)


def test_a_ratio_3_sized_screenshot_is_accepted(provider_client, review_case, settings, tmp_path):
    """A devicePixelRatio-3 capture is a ~3.5 MB data URL: over Django's default 2.5 MB
    request limit, under ALIGN_SCREENSHOT_MAX_BYTES, which governs this view."""
    settings.MEDIA_ROOT = tmp_path
    shot = noise_jpeg_data_url(1900, 1550)
    assert 3_000_000 < len(shot) < settings.ALIGN_SCREENSHOT_MAX_BYTES
    assert len(shot) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post_like_a_browser(
        provider_client, f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": shot}
    )
    assert response.status_code == 200
    assert any(m.startswith("Plan approved.") for m in messages_of(response)), messages_of(response)
    assert Case.objects.get(pk=review_case.pk).state == wf.PROVIDER_APPROVED


def test_an_oversize_screenshot_gets_a_message_not_a_bare_400(provider_client, review_case, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.ALIGN_SCREENSHOT_MAX_BYTES = 300_000
    shot = noise_jpeg_data_url(700, 700)
    assert len(shot) > 300_000 * 1.3  # over the request limit too, not only the field's
    response = post_like_a_browser(
        provider_client, f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": shot}
    )
    assert response.status_code == 200
    assert response.redirect_chain == [(f"/provider/cases/{review_case.pk}/", 302)]
    assert any("too large" in m and "0.3 MB" in m and "not approved" in m for m in messages_of(response)), messages_of(
        response
    )
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


@pytest.mark.parametrize("encoded", [False, True])
def test_the_form_and_the_decoder_use_the_same_limit(provider_client, review_case, settings, tmp_path, encoded):
    """Just over the setting: refused with the decoder's message whichever way it is posted."""
    settings.MEDIA_ROOT = tmp_path
    shot = noise_jpeg_data_url(300, 300)
    settings.ALIGN_SCREENSHOT_MAX_BYTES = len(shot) - len("data:image/jpeg;base64,") - 10
    url = f"/provider/cases/{review_case.pk}/approve/"
    if encoded:
        response = post_like_a_browser(provider_client, url, {"acceptance_screenshot": shot})
    else:
        response = provider_client.post(url, {"acceptance_screenshot": shot}, follow=True)
    assert any("The acceptance screenshot is too large" in m for m in messages_of(response)), messages_of(response)
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_a_larger_limit_is_honoured_by_the_form_too(provider_client, review_case, settings, tmp_path):
    """The form's own cap was a fixed 8 MiB whatever the setting said."""
    settings.MEDIA_ROOT = tmp_path
    settings.ALIGN_SCREENSHOT_MAX_BYTES = 12 * 1024 * 1024
    shot = noise_jpeg_data_url(2800, 2600)
    assert 8 * 1024 * 1024 < len(shot) < settings.ALIGN_SCREENSHOT_MAX_BYTES
    response = post_like_a_browser(
        provider_client, f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": shot}
    )
    assert any(m.startswith("Plan approved.") for m in messages_of(response)), messages_of(response)


def test_a_png_screenshot_is_accepted_as_the_readme_says(provider_client, review_case, settings, tmp_path):
    import base64
    import io

    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    out = io.BytesIO()
    Image.new("RGB", (200, 120), "white").save(out, format="PNG")
    shot = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    response = post_like_a_browser(
        provider_client, f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": shot}
    )
    assert any(m.startswith("Plan approved.") for m in messages_of(response)), messages_of(response)
    assert CaseAsset.objects.get(case=review_case, kind=CaseAsset.Kind.CCACCEPTSCREEN).filename.endswith(".jpg")


def test_a_65535_pixel_wide_png_is_refused_with_a_message(provider_client, review_case, settings, tmp_path):
    """Valid, tiny in pixels, but wider than a JPEG can be: the re-encode used to raise OSError (a 500)."""
    import base64
    import io

    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    out = io.BytesIO()
    Image.new("RGB", (65535, 1), "white").save(out, format="PNG")
    shot = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    response = post_like_a_browser(
        provider_client, f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": shot}
    )
    assert response.status_code == 200
    assert any("65535×1" in m for m in messages_of(response)), messages_of(response)
    case = Case.objects.get(pk=review_case.pk)
    assert case.state == wf.PLAN_RECEIVED and not case.busy_with
    assert not CaseAsset.objects.filter(case=review_case, kind=CaseAsset.Kind.CCACCEPTSCREEN).exists()


def test_the_approve_view_still_checks_the_csrf_token(provider, review_case):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(provider.user)
    response = client.post(f"/provider/cases/{review_case.pk}/approve/", {"acceptance_screenshot": jpeg_data_url()})
    assert response.status_code == 403
    assert Case.objects.get(pk=review_case.pk).state == wf.PLAN_RECEIVED


def test_the_page_tells_the_capture_script_the_limits(provider_client, review_case, settings, flags_on):
    settings.ALIGN_SCREENSHOT_MAX_BYTES = 1234567
    settings.ALIGN_SCREENSHOT_MAX_PIXELS = 7654321
    html = provider_client.get(f"/provider/cases/{review_case.pk}/").content.decode()
    assert 'data-max-bytes="1234567"' in html and 'data-max-pixels="7654321"' in html
