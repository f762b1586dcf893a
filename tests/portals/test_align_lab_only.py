"""Only cases prescribed to the Align lab are in the Align workflow; the lab is fixed once
the case has been sent."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from align_workflow.cases.models import Case, CaseAsset, Prescription
from align_workflow.portals import selectors
from align_workflow.workflow import TransitionNotAllowed, send_to_align
from states import align_case as wf
from tests.support.factories import make_case
from tests.support.fakes import FakeAlign
from tests.support.pages import messages_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_align(monkeypatch):
    from align_workflow.workflow import align_effects

    fake = FakeAlign()
    monkeypatch.setattr(align_effects, "align_client", lambda: fake)
    return fake


# --- The lab is fixed once the case was sent -------------------------------------------------


def test_the_lab_may_change_while_nothing_was_sent(db):
    case = make_case(lab=Prescription.Lab.IN_HOUSE)
    rx = case.prescription
    rx.lab = Prescription.Lab.ALIGN
    rx.full_clean()
    rx.save()
    assert Prescription.objects.get(pk=rx.pk).lab == Prescription.Lab.ALIGN


@pytest.mark.parametrize("state", [wf.PATIENT_CREATED, wf.PROVIDER_APPROVED, wf.SHIPPING, wf.CANCELLED])
def test_a_lab_change_after_sending_is_refused_by_the_model(state):
    case = make_case(state=state)
    rx = case.prescription
    rx.lab = Prescription.Lab.IN_HOUSE
    with pytest.raises(ValidationError) as cleaned:
        rx.full_clean()
    assert "cannot be changed" in cleaned.value.message_dict["lab"][0]
    with pytest.raises(ValidationError):
        rx.save()
    assert Prescription.objects.get(pk=rx.pk).lab == Prescription.Lab.ALIGN


def test_saving_the_same_lab_after_sending_is_fine():
    case = make_case(state=wf.ORDER_CREATED)
    case.prescription.save()


def test_the_admin_refuses_a_lab_change_after_sending(staff):
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    case = make_case(state=wf.ASSETS_UPLOADED)
    rx = case.prescription
    response = client.post(
        f"/admin/cases/prescription/{rx.pk}/change/",
        {
            "case": case.pk,
            "provider": rx.provider_id,
            "lab": Prescription.Lab.IN_HOUSE,
            "created_0": "2026-01-01",
            "created_1": "10:00:00",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "cannot be changed" in response.content.decode()
    assert Prescription.objects.get(pk=rx.pk).lab == Prescription.Lab.ALIGN


# --- Outside the workflow ------------------------------------------------------------------------


def test_send_to_align_refuses_a_case_not_prescribed_to_align(staff, flags_on):
    case = make_case(lab=Prescription.Lab.OTHER)
    with pytest.raises(TransitionNotAllowed, match="not prescribed to Align") as refused:
        send_to_align(case, by=staff)
    assert refused.value.code == "guard"


def test_other_lab_cases_are_not_listed_or_counted_with_the_align_cases(staff_client):
    align = make_case()
    other = make_case(lab=Prescription.Lab.IN_HOUSE)
    Case.objects.filter(pk=other.pk).update(needs_attention=True)

    page = staff_client.get("/staff/")
    listed = [c.pk for c in page.context["page"].object_list]
    assert listed == [align.pk]
    assert page.context["total"] == 1 and page.context["attention_total"] == 0
    assert {c.state: c.total for c in selectors.state_counts()}[wf.ELIGIBLE] == 1
    assert "1 not prescribed to Align" in page.content.decode()

    apart = staff_client.get("/staff/", {"other_labs": "on"})
    assert [c.pk for c in apart.context["page"].object_list] == [other.pk]
    html = apart.content.decode()
    assert "outside the Align workflow" in html and "outside the workflow (In-house)" in html


def test_the_support_diagram_counts_only_align_cases(staff_client):
    make_case()
    make_case(lab=Prescription.Lab.OTHER)
    make_case(lab=Prescription.Lab.IN_HOUSE)
    response = staff_client.get("/support/workflow/")
    assert response.context["total"] == 1


def test_an_other_lab_case_has_no_align_panel(staff_client, flags_on):
    case = make_case(lab=Prescription.Lab.IN_HOUSE)
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert 'id="align-panel"' not in html and 'id="send-button"' not in html
    assert 'id="outside-workflow"' in html and "Not prescribed to Align" in html
    response = staff_client.post(f"/staff/cases/{case.pk}/send/", follow=True)
    assert any("not prescribed to Align" in m for m in messages_of(response))


def test_lab_changed_before_acceptance_is_refused_and_nothing_is_sent(staff_client, fake_align, flags_on):
    case = make_case(state=wf.PROVIDER_APPROVED)
    CaseAsset.objects.create(
        case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, vault_id=str(uuid.uuid4()), external_key=str(uuid.uuid4())
    )
    Prescription.objects.filter(case=case).update(lab=Prescription.Lab.IN_HOUSE)  # from before the rule
    response = staff_client.post(f"/staff/cases/{case.pk}/aligners-purchased/", {"confirm": "1"}, follow=True)
    case.refresh_from_db()
    assert case.state == wf.PROVIDER_APPROVED
    assert case.aligners_purchased_at is not None  # the purchase is a fact; the acceptance is what is refused
    assert fake_align.sent("accept_clincheck") == []
    assert any("Prescription lab is Align" in m for m in messages_of(response))
