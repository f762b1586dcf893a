"""Twenty requests racing on one case produce exactly one transition (PostgreSQL)."""

import threading

import pytest
from django.db import transaction
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from align_workflow.workflow import TransitionNotAllowed, fire
from states import align_case as wf
from states.machine import next_state
from tests.support.factories import make_case
from tests.support.threads import race

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_one_transition(require_postgres, staff, flags_on, local_effects_only):
    case = make_case(state=wf.ORDER_CREATED)
    outcomes = race(lambda: fire(Case.objects.get(pk=case.pk), "cancel", by=staff, reason="duplicate click"), THREADS)

    successes = [o for o in outcomes if isinstance(o, StateLog)]
    refusals = [o for o in outcomes if isinstance(o, TransitionNotAllowed)]
    assert len(successes) == 1, outcomes
    assert len(refusals) == THREADS - 1, outcomes
    assert {r.code for r in refusals} == {"wrong_state"}
    assert StateLog.objects.for_(case).count() == 1
    assert Case.objects.get(pk=case.pk).state == wf.CANCELLED


def naive_fire(case_id, trigger, read_together=None):
    """What the old view code did: read, check, write, log, with no row lock. With
    `read_together` (a barrier), every thread has read before any writes: the interleaving
    that a loaded machine makes likely, made certain."""
    with transaction.atomic():
        case = Case.objects.get(pk=case_id)
        dest = next_state(case.state, trigger)  # raises if not allowed
        if read_together is not None:
            read_together.wait(timeout=30)
        case.state = dest
        case.save()
        StateLog.objects.create(source_state=wf.ORDER_CREATED, state=dest, transition=trigger, content_object=case)
    return "done"


@pytest.mark.django_db(transaction=True)
def test_negative_control_without_the_row_lock_the_race_doubles_history(require_postgres):
    case = make_case(state=wf.ORDER_CREATED)
    read_together = threading.Barrier(THREADS)
    outcomes = race(lambda: naive_fire(case.pk, "cancel", read_together), THREADS)
    # Without the lock every thread sees order_created and all of them "cancel" it.
    assert outcomes.count("done") > 1, outcomes
    assert StateLog.objects.for_(case).count() > 1


APPROVALS = 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_of_one_case_decode_one_picture(
    require_postgres, provider, monkeypatch, settings, tmp_path
):
    """Twelve approvals of one case at once: the picture is decoded after the case is
    claimed, so eleven are refused before decoding (a 25-megapixel JPEG is 75 MB decoded:
    twelve at once took the web workers from 245 MB to 1.9 GB)."""
    from align_workflow.align import vault
    from align_workflow.workflow import align_effects
    from tests.support.images import data_url, image_bytes

    settings.MEDIA_ROOT = tmp_path
    case = make_case(provider=provider, state=wf.PLAN_RECEIVED)
    shot = data_url(image_bytes("JPEG", size=(400, 300)), "image/jpeg")
    decoded = []
    real_decode = align_effects.decode_screenshot

    def counting_decode(value):
        decoded.append(1)
        return real_decode(value)

    real_put = vault.LocalVault.put

    def slow_put(self, *args, **kwargs):
        import time

        time.sleep(0.5)  # every other approval arrives while this one holds the claim
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(align_effects, "decode_screenshot", counting_decode)
    monkeypatch.setattr(vault.LocalVault, "put", slow_put)

    outcomes = race(
        lambda: fire(Case.objects.get(pk=case.pk), "approve_plan", by=provider.user, acceptance_screenshot=shot),
        APPROVALS,
    )

    successes = [o for o in outcomes if isinstance(o, StateLog)]
    refusals = [o for o in outcomes if isinstance(o, TransitionNotAllowed)]
    assert len(successes) == 1 and len(refusals) == APPROVALS - 1, outcomes
    assert {r.code for r in refusals} <= {"in_progress", "wrong_state"}
    assert len(decoded) == 1
    assert Case.objects.get(pk=case.pk).state == wf.PROVIDER_APPROVED


@pytest.mark.django_db(transaction=True)
def test_twenty_identical_gender_changes_write_one_note(require_postgres, staff):
    """Read-then-write without a lock wrote four identical notes; under the case lock the
    first change writes one note and the others find nothing to change."""
    from align_workflow.cases.models import CaseNote, Patient
    from align_workflow.portals.services import set_patient_gender
    from tests.support.factories import PatientFactory

    case = make_case(patient=PatientFactory(gender="U"))
    outcomes = race(
        lambda: set_patient_gender(Case.objects.select_related("patient").get(pk=case.pk), "F", by=staff), THREADS
    )

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True], outcomes
    assert CaseNote.objects.filter(case=case, text__startswith="Patient gender changed").count() == 1
    assert Patient.objects.get(pk=case.patient_id).gender == "F"


@pytest.mark.django_db(transaction=True)
def test_twenty_identical_contact_corrections_write_one_note(require_postgres, staff):
    """The contact form compared the posted values with the patient as the view had read
    it, then wrote: twenty identical corrections at once wrote several notes. Under the
    case's and the patient's locks the first writes and the others find nothing to change."""
    from align_workflow.cases.models import CaseNote, Patient
    from align_workflow.portals.forms import ContactForm
    from align_workflow.portals.services import set_patient_contact

    case = make_case()
    posted = {
        "phone": "+1 415 555 0199",
        "email": "new.address@example.com",
        "address_line1": "1 New Street",
        "address_line2": "",
        "city": "Oakland",
        "state": "CA",
        "zip_code": "94601",
        "country": "US",
    }

    def correct():
        fresh = Case.objects.select_related("patient").get(pk=case.pk)
        form = ContactForm(posted, instance=fresh.patient)
        assert form.is_valid(), form.errors
        return tuple(set_patient_contact(fresh, form, by=staff))

    outcomes = race(correct, THREADS)

    assert sum(1 for changed in outcomes if changed) == 1, outcomes
    assert CaseNote.objects.filter(case=case, text__startswith="Patient contact details corrected").count() == 1
    assert Patient.objects.get(pk=case.patient_id).phone == "+1 415 555 0199"
