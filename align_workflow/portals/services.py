"""Portal actions that are more than one engine call. Views call these and map the
domain errors (TransitionNotAllowed) to messages; the state only moves through fire().

Whatever reads before it writes does so under the case's row lock (SELECT ... FOR
UPDATE) or as one conditional UPDATE, so that two clicks at once, or a click racing a
transition, write once: one note per real change, nothing recorded on a case that moved."""

from django.db import transaction

from align_workflow.cases.models import Case, CaseNote, Patient
from align_workflow.workflow import purchases
from align_workflow.workflow.engine import TransitionNotAllowed
from states import align_case as wf


def mark_aligners_purchased(case, *, by):
    """Staff confirm the customer bought the aligners (the same service as the shop's API):
    the purchase is recorded, then the ClinCheck acceptance is sent if every rule allows
    it; while the `set-align-order-status` flag is off it waits (the retry sweep sends it).

    Raises TransitionNotAllowed (nothing recorded) for a case that cannot have been bought
    yet; a refusal of the acceptance or a failed call is raised too (the purchase stays
    recorded, the case provider_approved, so a retry only repeats the acceptance).
    Returns the PurchaseOutcome; `case` is refreshed.
    """
    try:
        outcome = purchases.report_purchase(case.pk, source="staff", by=by)
    except purchases.PurchaseRefused as refused:
        raise TransitionNotAllowed(
            str(refused), code="wrong_state", trigger="accept_clincheck", state=case.state
        ) from refused
    finally:
        case.refresh_from_db()
    return outcome


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


class ContactRefused(Exception):
    """The patient's contact details cannot be changed from this case now."""


# Past this point Align has accepted the plan (or the case has left the workflow).
CONTACT_LOCKED_STATES = (wf.ACCEPTED, wf.SHIPPING, wf.CANCELLED)


def set_patient_contact(case, form, *, by):
    """Correct the patient's phone, email and address from a valid ContactForm, with a case
    note naming what changed (never the values). Refused once the case is accepted."""
    with transaction.atomic():
        # Under the case's and the patient's row locks, compared with what is stored now:
        # of twenty identical corrections at once, the first writes, the others find it done.
        locked = Case.objects.select_for_update().only("pk", "state", "patient_id").get(pk=case.pk)
        if locked.state in CONTACT_LOCKED_STATES:
            raise ContactRefused(
                f"The patient's contact details cannot be changed from a case that is {wf.state_label(locked.state)}."
            )
        patient = Patient.objects.select_for_update().get(pk=locked.patient_id)
        changed = [name for name in form.Meta.fields if getattr(patient, name) != form.cleaned_data[name]]
        if not changed:
            case.patient = patient
            return []
        for name in changed:
            setattr(patient, name, form.cleaned_data[name])
        patient.save(update_fields=changed)
        case.patient = patient  # the caller's copy shows what is stored now
        labels = form.labels_of(changed)
        note = f"Patient contact details corrected: {', '.join(labels)}"
        if locked.state != wf.ELIGIBLE:
            note += " (Align already has the patient record; the change was not sent to Align)"
        CaseNote.objects.create(case=case, author=by, text=note + ".")
    return labels
