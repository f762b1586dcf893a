"""The provider's and staff's ClinCheck steps, against a fake Align and the local vault:
request_revision, approve_plan (the acceptance screenshot) and accept_clincheck."""

import io
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_fsm_log.models import StateLog
from PIL import Image

from align_workflow.cases.models import Case, CaseAsset, CaseNote, TreatmentPlan
from align_workflow.workflow import TransitionNotAllowed, fire, outbound
from align_workflow.workflow.effects import EffectFailed
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.fakes import unavailable
from tests.support.images import data_url, image_bytes, jpeg_with_exif, png_bomb, png_url

pytestmark = pytest.mark.django_db(transaction=True)

S = OutboundAttempt.Status


def plan(case, version):
    return TreatmentPlan.objects.create(case=case, plan_id=f"TP-{case.pk}-{version}", version=version)


def receive_plan(case, version):
    """Align submits plan `version` and the case receives it."""
    fire(case, "receive_plan", by=None, plan={"plan_id": f"TP-{case.pk}-{version}", "version": version})


def provider_of(case):
    return case.prescription.provider.user


def screenshots(case):
    return list(CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN))


# --- request_revision --------------------------------------------------------------------


def test_request_revision_sends_the_comments_at_once(fake_align, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    plan(case, 1)
    fire(case, "request_revision", by=provider_of(case), comments="  Less movement on the upper incisors.  ")
    assert case.state == wf.REVISION_REQUESTED
    [sent] = fake_align.sent("request_modification")
    assert sent == dict(
        case_id=case.pk,
        mrn=case.patient.mrn,
        comments="Less movement on the upper incisors.",
        idempotency_key=f"align-workflow:case-{case.pk}:request_revision:plan-v1:1",
    )
    [attempt] = OutboundAttempt.objects.filter(case=case)
    assert (attempt.status, attempt.by, attempt.params) == (
        S.SUCCEEDED,
        provider_of(case),
        {"comments": "Less movement on the upper incisors.", "plan_version": 1},
    )
    assert CaseNote.objects.filter(case=case, text__startswith="Align accepted Request Revision.").exists()


@pytest.mark.parametrize("comments", [None, "", "   \n "])
def test_request_revision_needs_comments(comments, fake_align, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed, match="Comments are required") as refused:
        fire(case, "request_revision", by=provider_of(case), comments=comments)
    assert refused.value.code == "invalid_input"
    assert fake_align.calls == [] and not OutboundAttempt.objects.exists()
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED


def test_request_revision_is_gated_by_its_flag(fake_align):
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed, match="'set-align-order-status' flag is off"):
        fire(case, "request_revision", by=provider_of(case), comments="x")
    assert fake_align.calls == []


def test_a_revision_of_a_later_plan_is_new_work_not_a_replay(fake_align, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    plan(case, 1)
    fire(case, "request_revision", by=provider_of(case), comments="first round")
    receive_plan(case, 2)
    fire(case, "request_revision", by=provider_of(case), comments="second round")
    keys = [kw["idempotency_key"] for kw in fake_align.sent("request_modification")]
    assert keys == [
        f"align-workflow:case-{case.pk}:request_revision:plan-v1:1",
        f"align-workflow:case-{case.pk}:request_revision:plan-v2:1",
    ]
    assert fake_align.effects["modifies"] == 2


def test_a_failed_revision_request_is_retried_with_the_provider_as_actor(fake_align, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    plan(case, 1)
    fake_align.fail("request_modification", unavailable(503))
    with pytest.raises(EffectFailed, match="Bad Align response during Request Revision. Status code: 503"):
        fire(case, "request_revision", by=provider_of(case), comments="tweak")
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    OutboundAttempt.objects.update(next_retry_at=timezone.now())
    outbound.run_due()
    assert Case.objects.get(pk=case.pk).state == wf.REVISION_REQUESTED
    assert StateLog.objects.for_(case).get(transition="request_revision").by == provider_of(case)
    first, second = [kw for kw in fake_align.sent("request_modification")]
    assert first == second  # same comments, same key


def test_a_stale_revision_retry_is_not_sent_for_a_newer_plan(fake_align, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    plan(case, 1)
    fake_align.fail("request_modification", unavailable(503))
    with pytest.raises(EffectFailed):
        fire(case, "request_revision", by=provider_of(case), comments="about v1")
    receive_plan(case, 2)  # Align sent version 2 anyway
    OutboundAttempt.objects.update(next_retry_at=timezone.now())
    outbound.run_due()
    last = OutboundAttempt.objects.order_by("-id").first()
    assert last.status == S.SKIPPED and "version 2 is the one waiting now" in last.message
    assert len(fake_align.sent("request_modification")) == 1
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED


# --- approve_plan: the screenshot --------------------------------------------------------


def test_approve_plan_stores_the_screenshot_reencoded_in_the_vault(local_vault, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    plan(case, 1)
    log = fire(
        case, "approve_plan", by=provider_of(case), acceptance_screenshot=data_url(jpeg_with_exif(), "image/jpeg")
    )
    assert case.state == wf.PROVIDER_APPROVED
    [asset] = screenshots(case)
    assert asset.vault_id and asset.external_key and asset.filename.endswith(".jpg")
    blob = local_vault.get(asset.vault_id, asset.external_key)
    image = Image.open(io.BytesIO(blob))
    assert image.format == "JPEG" and not image.getexif() and b"Jane" not in blob
    assert "acceptance screenshot stored (64×48, from JPEG)" in log.description


BAD_SCREENSHOTS = {
    "bad base64": ("data:image/png;base64,iVBOR!!", "not valid base64"),
    "gif": (data_url(image_bytes("GIF"), "image/png"), "a GIF image"),
    "bomb": (data_url(png_bomb(6000, 6000)), "decompression bomb"),
    "truncated": (data_url(image_bytes("JPEG", size=(200, 200))[:400], "image/jpeg"), "truncated"),
    "missing": (None, "missing"),
}


@pytest.mark.parametrize("name", list(BAD_SCREENSHOTS))
def test_a_bad_screenshot_is_refused_and_nothing_is_stored(name, local_vault, flags_on, settings):
    value, message = BAD_SCREENSHOTS[name]
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed, match=message) as refused:
        fire(case, "approve_plan", by=provider_of(case), acceptance_screenshot=value)
    assert refused.value.code == "invalid_input"
    assert screenshots(case) == [] and not StateLog.objects.for_(case).exists()
    assert Case.objects.get(pk=case.pk).state == wf.PLAN_RECEIVED
    assert not (settings.MEDIA_ROOT / "vault").exists()


def test_an_oversize_screenshot_is_refused(local_vault, flags_on, settings):
    settings.ALIGN_SCREENSHOT_MAX_BYTES = 100
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed, match="too large"):
        fire(case, "approve_plan", by=provider_of(case), acceptance_screenshot=png_url(size=(300, 300)))
    assert screenshots(case) == []


def test_another_providers_screenshot_is_not_even_decoded(local_vault, other_provider, flags_on, monkeypatch):
    from align_workflow.workflow import align_effects

    monkeypatch.setattr(align_effects, "decode_screenshot", lambda value: pytest.fail("decoded"))
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(TransitionNotAllowed) as refused:
        fire(case, "approve_plan", by=other_provider.user, acceptance_screenshot=png_url())
    assert refused.value.code == "not_your_case"


def test_a_vault_failure_leaves_no_asset_and_no_transition(flags_on, monkeypatch):
    from align_workflow.align import vault

    class BrokenVault:
        def put(self, data, *, filename, content_type):
            raise vault.VaultError("vault unavailable")

    monkeypatch.setattr(vault, "get_vault", lambda: BrokenVault())
    case = make_case(state=wf.PLAN_RECEIVED)
    with pytest.raises(EffectFailed, match="Could not store the acceptance screenshot"):
        fire(case, "approve_plan", by=provider_of(case), acceptance_screenshot=png_url())
    case.refresh_from_db()
    assert case.state == wf.PLAN_RECEIVED and case.busy_with == ""
    assert screenshots(case) == []


def test_a_transition_refused_after_the_vault_write_leaves_no_asset_row(local_vault, flags_on, monkeypatch):

    real_put = type(local_vault).put
    case = make_case(state=wf.PLAN_RECEIVED)

    def put_then_cancel(self, data, **kw):
        blob = real_put(self, data, **kw)
        # Meanwhile the case is cancelled (its claim had expired): the state check fails at commit.
        Case.objects.filter(pk=case.pk).update(state=wf.CANCELLED)
        return blob

    monkeypatch.setattr(type(local_vault), "put", put_then_cancel)
    with pytest.raises(TransitionNotAllowed, match="the case is cancelled"):
        fire(case, "approve_plan", by=provider_of(case), acceptance_screenshot=png_url())
    assert screenshots(case) == [] and not StateLog.objects.for_(case).exists()


# --- accept_clincheck ----------------------------------------------------------------------


def test_accept_sends_the_newest_screenshots_identifiers(fake_align, local_vault, staff, flags_on):
    case = make_case(state=wf.PLAN_RECEIVED)
    plan(case, 1)
    CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        vault_id="old-vault",
        external_key="old-key",
        created=timezone.now() - timedelta(days=3),
    )
    fire(case, "approve_plan", by=provider_of(case), acceptance_screenshot=png_url())
    newest = CaseAsset.objects.filter(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN).order_by("-created").first()
    fire(case, "accept_clincheck", by=staff)
    assert case.state == wf.ACCEPTED
    [sent] = fake_align.sent("accept_clincheck")
    assert sent == dict(
        case_id=case.pk,
        mrn=case.patient.mrn,
        vault_id=newest.vault_id,
        external_key=newest.external_key,
        idempotency_key=f"align-workflow:case-{case.pk}:accept_clincheck:screenshot-{newest.pk}:1",
    )
    assert CaseNote.objects.filter(
        case=case, text=f"Align accepted Accept ClinCheck. Status APPROVED. Sales order SO-{case.pk}."
    ).exists()


@pytest.mark.parametrize("screenshot", [None, ("", ""), ("00000000-0000-0000-0000-000000000000",) * 2])
def test_accept_without_a_screenshot_is_refused_before_anything_is_sent(screenshot, fake_align, staff, flags_on):
    case = make_case(state=wf.PROVIDER_APPROVED)
    if screenshot:
        CaseAsset.objects.create(
            case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, vault_id=screenshot[0], external_key=screenshot[1]
        )
    with pytest.raises(TransitionNotAllowed, match="No acceptance screenshot is stored") as refused:
        fire(case, "accept_clincheck", by=staff)
    assert refused.value.code == "invalid_input"
    assert fake_align.calls == [] and not OutboundAttempt.objects.exists()


def test_accept_by_automation_on_purchase(fake_align, flags_on):
    case = make_case(state=wf.PROVIDER_APPROVED)
    CaseAsset.objects.create(
        case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, vault_id=str(uuid.uuid4()), external_key=str(uuid.uuid4())
    )
    fire(case, "accept_clincheck", by=None)
    assert case.state == wf.ACCEPTED
