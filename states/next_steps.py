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
    staff: str  # the next step, as the staff list says it
    provider: str  # the next step, as the provider's own list says it

    @property
    def turn_label(self) -> str:
        return TURN_LABELS[self.turn]

    @property
    def provider_turn_label(self) -> str:
        return TURN_LABELS_FOR_PROVIDER[self.turn]


NEXT_STEPS = {
    wf.ELIGIBLE: NextStep(STAFF, "Send to Align once the checklist passes", "The clinic sends the case to Align"),
    wf.PATIENT_CREATED: NextStep(STAFF, "Resume sending to Align", "The clinic finishes sending the case to Align"),
    wf.ORDER_CREATED: NextStep(STAFF, "Resume sending to Align", "The clinic finishes sending the case to Align"),
    wf.ASSETS_UPLOADED: NextStep(ALIGN, "Align sends the treatment plan", "Align sends the treatment plan"),
    wf.PLAN_RECEIVED: NextStep(
        PROVIDER, "The provider reviews the plan", "Review the plan: approve it or ask for a revision"
    ),
    wf.REVISION_REQUESTED: NextStep(ALIGN, "Align sends a revised plan", "Align sends a revised plan"),
    wf.PROVIDER_APPROVED: NextStep(STAFF, "Record the aligner purchase", "The clinic records the aligner purchase"),
    wf.ACCEPTED: NextStep(ALIGN, "Align makes and ships the aligners", "Align makes and ships the aligners"),
    wf.SHIPPING: NextStep(NOBODY, "Nothing: the aligners are shipped", "Nothing: the aligners are shipped"),
    wf.CANCELLED: NextStep(NOBODY, "Nothing: the case was cancelled", "Nothing: the case was cancelled"),
}

# A case that needs attention: a call to Align failed and a person must look.
NEEDS_ATTENTION = NextStep(
    STAFF, "Look at the failed call to Align and retry", "The clinic looks into a problem with Align"
)


def next_step(state: str, needs_attention: bool = False) -> NextStep:
    """Whose turn it is and what happens next for a case in `state`."""
    if needs_attention and state in wf.NON_TERMINAL:
        return NEEDS_ATTENTION
    return NEXT_STEPS.get(state) or NextStep(NOBODY, "Nothing", "Nothing")
