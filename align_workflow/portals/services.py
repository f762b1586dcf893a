"""Portal actions that are more than one engine call. Views call these and map the
domain errors (TransitionNotAllowed) to messages; the state only moves through fire().

Whatever reads before it writes does so under the case's row lock (SELECT ... FOR
UPDATE) or as one conditional UPDATE, so that two clicks at once, or a click racing a
transition, write once: one note per real change, nothing recorded on a case that moved."""

from django.db import transaction
from django.utils import timezone

from align_workflow.cases.models import Case, CaseNote, Patient
from align_workflow.workflow.engine import check, fire
from states import align_case as wf


def mark_aligners_purchased(case, *, by):
    """The customer bought the aligners: record when, then accept the ClinCheck with Align.

    Refused (TransitionNotAllowed) before anything is written when accept_clincheck is
    not allowed now. If the call to Align then fails, the purchase stays recorded and
    the case stays provider_approved, so a retry only has to repeat the acceptance.
    """
    check(case, "accept_clincheck", by=by)
    # Only the first purchase counts: a second click or a retry keeps the original time.
    # One conditional UPDATE: recorded only if the case is still where it was checked.
    Case.objects.filter(pk=case.pk, state=case.state, aligners_purchased_at__isnull=True).update(
        aligners_purchased_at=timezone.now())
    return fire(case, "accept_clincheck", by=by)  # fire() reloads the case, purchase time included


def set_patient_gender(case, gender, *, by):
    """Correct the patient's gender on the clinic's record, with a case note saying so."""
    if gender not in Patient.Gender.values:
        raise ValueError(f"unknown gender {gender!r}")
    with transaction.atomic():
        # Under the case's row lock, and the patient's (a patient may have several cases):
        # of twenty identical changes at once, the first writes, the others find it done.
        locked = Case.objects.select_for_update().only("pk", "state", "patient_id").get(pk=case.pk)
        patient = Patient.objects.select_for_update().get(pk=locked.patient_id)
        case.patient = patient  # the caller's copy shows what is stored now
        if patient.gender == gender:
            return False
        before = patient.get_gender_display()
        patient.gender = gender
        patient.save(update_fields=["gender"])
        note = f"Patient gender changed from {before} to {patient.get_gender_display()}"
        if locked.state != wf.ELIGIBLE:
            note += " (Align already has the patient record; the change was not sent to Align)"
        CaseNote.objects.create(case=case, author=by, text=note + ".")
    return True
