"""What a legal firing of each trigger needs in a test: an acting user and parameters."""

from states import align_case as wf


def actor_for(trigger, case, staff):
    spec = wf.BY_TRIGGER[trigger]
    if wf.STAFF in spec.actor:
        return staff
    if wf.PROVIDER in spec.actor:
        return case.prescription.provider.user
    return None  # Align or automation


PARAMS = {
    "receive_plan": {"plan": {"plan_id": "TP-1", "version": 1}},
    "cancel": {"reason": "Patient moved away"},
    "ship": {"carrier": "UPS", "tracking_number": "1Z999"},
}
