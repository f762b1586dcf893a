"""Whose turn it is, and what happens next, for a case in each state.

The work queues in the portals show this beside every case ("whose turn" and "next
step"). It reads the same table as align_case.py: a case waits for one party, and the
next step is said in words a person at the front desk would use. A case that needs
attention (a call to Align failed for good) is always the clinic staff's turn, whatever
its state.
"""

from typing import NamedTuple

from . import align_case as wf

# Who a case is waiting for.
STAFF = "staff"  # the clinic's staff (the staff portal)
PROVIDER = "provider"  # the provider on the case's prescription
ALIGN = "align"  # Align: a plan, a revision, manufacture or shipping
NOBODY = "nobody"  # the case has finished the workflow

TURN_LABELS = {
    STAFF: "Clinic staff",
    PROVIDER: "Provider",
    ALIGN: "Align",
    NOBODY: "Nobody",
}

# The same, as the provider reads it on their own list ("you", "the clinic").
TURN_LABELS_FOR_PROVIDER = {
    STAFF: "The clinic",
    PROVIDER: "You",
    ALIGN: "Align",
    NOBODY: "Nobody",
}


class NextStep(NamedTuple):
    turn: str  # STAFF, PROVIDER, ALIGN or NOBODY
    staff: str  # the next step on the staff list, after whose turn it is ("Align · Sends the plan")
    provider: str  # the same on the provider's own list ("You · Review the plan")

    @property
    def turn_label(self) -> str:
        return TURN_LABELS[self.turn]

    @property
    def provider_turn_label(self) -> str:
        return TURN_LABELS_FOR_PROVIDER[self.turn]


NEXT_STEPS = {
    wf.ELIGIBLE: NextStep(STAFF, "Send to Align once the checklist passes", "Sends the case to Align"),
    wf.PATIENT_CREATED: NextStep(STAFF, "Resume sending to Align", "Finishes sending the case to Align"),
    wf.ORDER_CREATED: NextStep(STAFF, "Resume sending to Align", "Finishes sending the case to Align"),
    wf.ASSETS_UPLOADED: NextStep(ALIGN, "Sends the treatment plan", "Sends the treatment plan"),
    wf.PLAN_RECEIVED: NextStep(PROVIDER, "Reviews the plan", "Review the plan: approve it or ask for a revision"),
    wf.REVISION_REQUESTED: NextStep(ALIGN, "Sends a revised plan", "Sends a revised plan"),
    wf.PROVIDER_APPROVED: NextStep(STAFF, "Record the aligner purchase", "Records the aligner purchase"),
    wf.ACCEPTED: NextStep(ALIGN, "Makes and ships the aligners", "Makes and ships the aligners"),
    wf.SHIPPING: NextStep(NOBODY, "Finished: the aligners are shipped", "Finished: the aligners are shipped"),
    wf.CANCELLED: NextStep(NOBODY, "Finished: the case was cancelled", "Finished: the case was cancelled"),
}

# A case that needs attention: a call to Align failed and a person must look.
NEEDS_ATTENTION = NextStep(STAFF, "Look at the failed call to Align and retry", "Looks into a problem with Align")


def next_step(state: str, needs_attention: bool = False) -> NextStep:
    """Whose turn it is and what happens next for a case in `state`."""
    if needs_attention and state in wf.NON_TERMINAL:
        return NEEDS_ATTENTION
    return NEXT_STEPS.get(state) or NextStep(NOBODY, "Nothing to do", "Nothing to do")
