"""Portal actions that are more than one engine call. Views call these and map the
domain errors (TransitionNotAllowed) to messages; the state only moves through fire()."""

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
    Case.objects.filter(pk=case.pk, aligners_purchased_at__isnull=True).update(aligners_purchased_at=timezone.now())
    return fire(case, "accept_clincheck", by=by)  # fire() reloads the case, purchase time included


def set_patient_gender(case, gender, *, by):
    """Correct the patient's gender on the clinic's record, with a case note saying so."""
    if gender not in Patient.Gender.values:
        raise ValueError(f"unknown gender {gender!r}")
    patient = case.patient
    if patient.gender == gender:
        return False
    with transaction.atomic():
        before = patient.get_gender_display()
        patient.gender = gender
        patient.save(update_fields=["gender"])
        note = f"Patient gender changed from {before} to {patient.get_gender_display()}"
        if case.state != wf.ELIGIBLE:
            note += " (Align already has the patient record; the change was not sent to Align)"
        CaseNote.objects.create(case=case, author=by, text=note + ".")
    return True


class ContactRefused(Exception):
    """The patient's contact details cannot be changed from this case now."""


# Past this point Align has accepted the plan (or the case has left the workflow).
CONTACT_LOCKED_STATES = (wf.ACCEPTED, wf.SHIPPING, wf.CANCELLED)


def set_patient_contact(case, form, *, by):
    """Correct the patient's phone, email and address from a valid ContactForm, with a case
    note naming what changed (never the values). Refused once the case is accepted."""
    if case.state in CONTACT_LOCKED_STATES:
        raise ContactRefused(f"The patient's contact details cannot be changed from a case that is "
                             f"{case.state.replace('_', ' ')}.")
    changed = form.changed_labels()
    if not changed:
        return []
    with transaction.atomic():
        form.save()
        note = f"Patient contact details corrected: {', '.join(changed)}"
        if case.state != wf.ELIGIBLE:
            note += " (Align already has the patient record; the change was not sent to Align)"
        CaseNote.objects.create(case=case, author=by, text=note + ".")
    return changed
