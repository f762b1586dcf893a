"""Cases with a made-up state history (StateLog rows at chosen times), for the analytics."""

from datetime import timedelta

from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case
from states import align_case as wf

from .factories import make_case

TRIGGER = {
    wf.PATIENT_CREATED: "create_patient",
    wf.ORDER_CREATED: "create_order",
    wf.ASSETS_UPLOADED: "upload_assets",
    wf.PLAN_RECEIVED: "receive_plan",
    wf.REVISION_REQUESTED: "request_revision",
    wf.PROVIDER_APPROVED: "approve_plan",
    wf.ACCEPTED: "accept_clincheck",
    wf.SHIPPING: "ship",
    wf.CANCELLED: "cancel",
}


def with_history(created, steps, **kwargs):
    """A case created at `created` whose history rows enter each (state, seconds after the
    previous row, or after the creation for the first) in turn. Returns the rows' times."""
    case = make_case(created=created, **kwargs)
    at, state, times = created, wf.ELIGIBLE, {}
    for target, gap in steps:
        at += timedelta(seconds=gap)
        StateLog.objects.create(
            content_object=case, timestamp=at, source_state=state, state=target, transition=TRIGGER[target]
        )
        times.setdefault(target, []).append(at)
        state = target
    Case.objects.filter(pk=case.pk).update(state=state, state_changed_at=at)
    return times
