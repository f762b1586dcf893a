"""The case page's timeline and Align panel (staff and provider): one entry per step in a
person's words, numbered tries, the planned retry, local times with their zone, the
acceptance screenshot, the tracking link and Align's latest status."""

import html as markup
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from align_workflow.align.vault import get_vault
from align_workflow.cases.models import Case, CaseAsset, CaseNote
from align_workflow.integration.models import AlignCaseStatus, InboundEvent
from align_workflow.portals import timeline
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.deliveries import deliver, make_event
from tests.support.factories import make_case
from tests.support.fakes import FakeAlign, unavailable
from tests.support.portal_images import jpeg_data_url

# Calls run after the commit of the request that asked for them, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_align(monkeypatch, settings, tmp_path):
    from align_workflow.workflow import align_effects

    settings.ALIGN_EXECUTION = "inline"
    settings.ALIGN_RETRY_MAX_ATTEMPTS = 1
    settings.MEDIA_ROOT = tmp_path
    fake = FakeAlign()
    monkeypatch.setattr(align_effects, "align_client", lambda: fake)
    return fake


def entries(html):
    """The timeline's entries as text, newest first."""
    block = html.split('id="timeline"', 1)[1].split("</ol>", 1)[0]
    return [
        markup.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", "<li" + li))).strip()
        for li in block.split("<li")[1:]
    ]


def full_flow(client, staff_client, provider_client, provider, fake_align):
    """A case from eligible to shipping: sent by staff, a plan from Align, approved by its
    provider, bought, accepted and shipped by Align."""
    case = make_case(provider=provider)
    staff_client.post(f"/staff/cases/{case.pk}/send/")
    plan = make_event("treatment_plan.submitted", case, treatmentPlanId=f"TP-{case.pk}")
    assert deliver(client, plan).status_code in (200, 202)
    provider_client.post(f"/provider/cases/{case.pk}/approve/", {"acceptance_screenshot": jpeg_data_url()})
    staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"})
    shipped = make_event("case.status_changed", case, occurred_at=timezone.now())
    shipped["data"]["shipment"]["trackingNumber"] = "1Z999AA10123456784"
    assert deliver(client, shipped).status_code in (200, 202)
    case.refresh_from_db()
    assert case.state == wf.SHIPPING
    return case


def test_a_full_flow_has_one_entry_per_step_in_words(
    client, staff, staff_client, provider_client, provider, fake_align, flags_on
):
    case = full_flow(client, staff_client, provider_client, provider, fake_align)
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    shown = entries(html)
    steps = [
        "create_patient",
        "create_order",
        "upload_assets",
        "receive_plan",
        "approve_plan",
        "accept_clincheck",
        "ship",
    ]
    assert len(shown) == len(steps), shown
    for text, trigger in zip(shown, reversed(steps), strict=True):
        assert wf.step_done(trigger) in text, text
    assert "→" not in html.split('id="timeline"', 1)[1]
    assert "plan_received" not in entries(html)[3]
    # Details are folded in: who did it, the call's result, the note, Align's event.
    approve = shown[2]
    assert provider.user.username in approve
    send_first = shown[-1]
    assert "Try 1" in send_first and "accepted" in send_first  # the call's result
    assert staff.username in send_first  # who sent it

    ship = shown[0]
    assert "Caused by Align's status: Shipped" in ship
    plan = shown[3]
    assert "Caused by Align: Treatment plan submitted" in plan
    # The case notes written by a step are in its entry, not entries of their own.
    notes = list(CaseNote.objects.filter(case=case).values_list("text", flat=True))
    assert len(notes) >= 4
    for text in notes:
        [owner] = [entry for entry in shown if text in entry]
        assert owner.count(text) == 1
    [order_note] = [text for text in notes if text.startswith("Align accepted Create Order")]
    assert order_note in shown[-2]


def test_retries_are_numbered(staff_client, fake_align, flags_on):
    fake_align.fail("create_order", unavailable(503, message="Align is down"))
    case = make_case()
    staff_client.post(f"/staff/cases/{case.pk}/send/")
    failed = entries(staff_client.get(f"/staff/cases/{case.pk}/").content.decode())
    assert failed[0].split(" ", 3)[3].startswith("Create Order: failed"), failed
    assert "Try 1" in failed[0] and "Try 2" not in failed[0]
    staff_client.post(f"/staff/cases/{case.pk}/retry/")
    assert Case.objects.get(pk=case.pk).state == wf.ASSETS_UPLOADED
    assert OutboundAttempt.objects.filter(case=case, step="create_order").count() == 2
    shown = entries(staff_client.get(f"/staff/cases/{case.pk}/").content.decode())
    [order] = [e for e in shown if wf.step_done("create_order") in e]
    assert order.count("Try 1") == 1 and order.count("Try 2") == 1
    assert order.index("Try 1") < order.index("Try 2")  # in the order they were made
    assert "HTTP 503" in order and "Align is down" in order


def test_a_scheduled_retry_is_shown_with_its_time(staff_client, fake_align, flags_on, settings):
    settings.ALIGN_RETRY_MAX_ATTEMPTS = 3
    fake_align.fail("create_order", unavailable(503))
    case = make_case()
    staff_client.post(f"/staff/cases/{case.pk}/send/")
    attempt = OutboundAttempt.objects.get(case=case, step="create_order")
    assert attempt.next_retry_at is not None
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    when = timezone.localtime(attempt.next_retry_at)
    panel = html.split('id="align-panel"', 1)[1].split("</section>", 1)[0]
    assert 'id="scheduled-retry"' in panel
    assert f"{when:%H:%M}" in panel.split('id="scheduled-retry"', 1)[1].split("</p>", 1)[0]
    assert "try 2" in panel.lower()
    # No retry planned: nothing said.
    OutboundAttempt.objects.filter(pk=attempt.pk).update(next_retry_at=None)
    assert 'id="scheduled-retry"' not in staff_client.get(f"/staff/cases/{case.pk}/").content.decode()


def test_times_are_local_with_their_zone(staff_client, staff, flags_on, settings):
    settings.TIME_ZONE = "America/New_York"
    case = make_case()
    note = CaseNote.objects.create(case=case, text="Called the clinic", author=staff)
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    local = timezone.localtime(note.created, timezone.get_default_timezone())
    zone = local.strftime("%Z")
    assert zone in ("EST", "EDT")
    [shown] = entries(html)
    assert shown.startswith(f"{local:%Y-%m-%d %H:%M} {zone}"), shown


def _approved_case(provider, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    case = make_case(provider=provider, state=wf.PROVIDER_APPROVED)
    blob = get_vault().put(b"\xff\xd8\xff\xe0 not really a jpeg", filename="x.jpg", content_type="image/jpeg")
    shot = CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        filename=f"clincheck-acceptance-case-{case.pk}.jpg",
        vault_id=blob.vault_id,
        external_key=blob.external_key,
    )
    return case, shot


def test_the_acceptance_screenshot_is_viewable_by_staff_and_the_cases_provider_only(
    client, staff_client, provider_client, provider, other_provider, tmp_path, settings
):
    case, shot = _approved_case(provider, tmp_path, settings)
    staff_url = f"/staff/cases/{case.pk}/acceptance-screenshot/{shot.pk}/"
    provider_url = f"/provider/cases/{case.pk}/acceptance-screenshot/{shot.pk}/"

    staff_page = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert f'href="{staff_url}"' in staff_page
    answer = staff_client.get(staff_url)
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content if answer.streaming else [answer.content]).startswith(b"\xff\xd8\xff")
    assert answer["Content-Type"] == "image/jpeg"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in answer["Cache-Control"] and "private" in answer["Cache-Control"]
    assert "default-src 'none'" in answer["Content-Security-Policy"]
    assert case.patient.last_name not in answer.get("Content-Disposition", "")

    assert provider_client.get(provider_url).status_code == 200
    assert f'href="{provider_url}"' in provider_client.get(f"/provider/cases/{case.pk}/").content.decode()

    other = Client()
    other.force_login(other_provider.user)
    assert other.get(provider_url).status_code == 404
    assert other.get(staff_url).status_code == 403
    assert provider_client.get(staff_url).status_code == 403
    assert client.get(staff_url).status_code == 302  # to the sign-in page
    # Another case's screenshot id under this case, or another kind of file: not found.
    other_case, other_shot = _approved_case(provider, tmp_path, settings)
    assert staff_client.get(f"/staff/cases/{case.pk}/acceptance-screenshot/{other_shot.pk}/").status_code == 404
    scan = CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.STL_UPPER).first()
    assert staff_client.get(f"/staff/cases/{case.pk}/acceptance-screenshot/{scan.pk}/").status_code == 404


def test_a_screenshot_missing_from_the_vault_is_a_clear_404(staff_client, provider, tmp_path, settings):
    case, shot = _approved_case(provider, tmp_path, settings)
    for blob in (tmp_path / "vault").rglob("*"):
        if blob.is_file():
            blob.unlink()
    answer = staff_client.get(f"/staff/cases/{case.pk}/acceptance-screenshot/{shot.pk}/")
    assert answer.status_code == 404
    assert b"not in the vault" in answer.content


def test_the_tracking_number_links_to_the_carrier(staff_client, provider_client, provider, settings):
    case = make_case(provider=provider, state=wf.SHIPPING)
    Case.objects.filter(pk=case.pk).update(carrier="UPS", tracking_number="1Z 999/AA1")
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    link = re.search(r'<a [^>]*id="tracking-link"[^>]*>', html).group(0)
    assert 'href="https://www.ups.com/track?tracknum=1Z%20999%2FAA1"' in link
    assert 'rel="noopener noreferrer"' in link and 'target="_blank"' in link
    settings.CARRIER_TRACKING_URLS = {"UPS": "https://track.example.com/ups/{number}"}
    html = provider_client.get(f"/provider/cases/{case.pk}/").content.decode()
    assert 'href="https://track.example.com/ups/1Z%20999%2FAA1"' in html
    # A carrier without a template: the number, not a link.
    Case.objects.filter(pk=case.pk).update(carrier="Pigeon Post")
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="tracking-link"' not in html and "1Z 999/AA1" in html


def test_the_panel_shows_aligns_latest_status_with_its_time(staff_client, provider_client, provider):
    case = make_case(provider=provider, state=wf.ACCEPTED)
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="align-status"' not in html
    when = timezone.now() - timedelta(hours=3)
    AlignCaseStatus.objects.create(case=case, status="IN_MANUFACTURING", previous_status="APPROVED", occurred_at=when)
    for page in (staff_client.get(f"/staff/cases/{case.pk}/"), provider_client.get(f"/provider/cases/{case.pk}/")):
        html = page.content.decode()
        status = html.split('id="align-status"', 1)[1].split("</dd>", 1)[0]
        assert "In manufacturing" in status or "IN_MANUFACTURING" in status
        assert f"{timezone.localtime(when):%Y-%m-%d %H:%M}" in status


def test_the_provider_sees_the_timeline_of_their_case(provider_client, provider, staff, flags_on):
    case = make_case(provider=provider, state=wf.ACCEPTED)
    CaseNote.objects.create(case=case, text="Aligners ordered", author=staff)
    html = provider_client.get(f"/provider/cases/{case.pk}/").content.decode()
    assert 'id="timeline"' in html and "Aligners ordered" in entries(html)[0]


def test_the_case_page_makes_a_fixed_number_of_queries(
    client, staff_client, provider_client, provider, fake_align, flags_on
):
    small = full_flow(client, staff_client, provider_client, provider, fake_align)
    big = full_flow(client, staff_client, provider_client, provider, fake_align)
    for n in range(30):
        CaseNote.objects.create(case=big, text=f"note {n}")
        InboundEvent.objects.create(
            event_id=f"evt-extra-{n}",
            type="sales_order.created",
            case=big,
            payload={},
            raw_body="{}",
            occurred_at=timezone.now(),
            status="applied",
        )
    for url in ("/staff/cases/{}/", "/provider/cases/{}/"):
        client_ = staff_client if url.startswith("/staff") else provider_client
        with CaptureQueriesContext(connection) as few:
            client_.get(url.format(small.pk))
        with CaptureQueriesContext(connection) as many:
            client_.get(url.format(big.pk))
        assert len(many) == len(few), url
        assert len(few) <= 40


def test_timeline_entries_are_built_from_bounded_queries(fake_align, staff, flags_on):
    case = make_case()
    with CaptureQueriesContext(connection) as queries:
        timeline.case_timeline(case)
    assert len(queries) <= 6


def test_an_event_is_folded_into_the_step_it_caused_even_in_a_burst(client, staff_client, provider, flags_on):
    """Align's events come in bursts (a status, then the shipment): each step names the
    event that made it, and the others stay entries of their own."""
    case = make_case(provider=provider, state=wf.ACCEPTED)
    order = make_event("sales_order.created", case)
    making = make_event("case.status_changed", case, occurred_at=timezone.now() - timedelta(seconds=2))
    making["data"].update(status="IN_MANUFACTURING", previousStatus="APPROVED")
    making["data"].pop("shipment")
    shipped = make_event("case.status_changed", case, occurred_at=timezone.now())
    for payload in (order, making, shipped):
        assert deliver(client, payload).status_code in (200, 202)
    assert Case.objects.get(pk=case.pk).state == wf.SHIPPING
    shown = entries(staff_client.get(f"/staff/cases/{case.pk}/").content.decode())
    [ship] = [e for e in shown if wf.step_done("ship") in e]
    assert "Caused by Align's status: Shipped" in ship and "In manufacturing" not in ship
    assert any(e.split(" ", 3)[3].startswith("Align's status: In manufacturing") for e in shown), shown
    assert any(e.split(" ", 3)[3].startswith("Align: Sales order created") for e in shown), shown
    assert len(shown) == 3
