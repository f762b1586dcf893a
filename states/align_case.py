"""The Align case workflow, written as a table that support staff can read.

Every case whose prescription goes to the Align lab moves through these states.
Each row of TRANSITIONS says: *who* (actors) may do *what* (trigger) to a case in
*which states* (source), where the case goes if it works (dest), and what is done
on the way (effect). Anything not in this table is refused before anything is sent.

This file is the single source of truth: the engine, the diagrams in diagrams/ and
the tests are all built from it. It imports nothing from Django on purpose.
"""

from typing import NamedTuple

# --- States: each one is a condition that is true about the case -----------------

ELIGIBLE = "eligible"  # prescribed to Align; nothing sent yet
PATIENT_CREATED = "patient_created"  # Align has a patient record; its pId is stored
ORDER_CREATED = "order_created"  # Align has the primary (IAS) order
ASSETS_UPLOADED = "assets_uploaded"  # Align has the STL ids; waiting for orders and a plan
PLAN_RECEIVED = "plan_received"  # a ClinCheck plan waits for the provider
REVISION_REQUESTED = "revision_requested"  # provider asked for changes; new plan awaited
PROVIDER_APPROVED = "provider_approved"  # provider approved; screenshot stored; awaiting purchase
ACCEPTED = "accepted"  # aligners bought; acceptance sent; awaiting manufacture
SHIPPING = "shipping"  # Align shipped the aligners (end of the workflow)
CANCELLED = "cancelled"  # the case left the Align workflow (end of the workflow)

STATES = (
    ELIGIBLE,
    PATIENT_CREATED,
    ORDER_CREATED,
    ASSETS_UPLOADED,
    PLAN_RECEIVED,
    REVISION_REQUESTED,
    PROVIDER_APPROVED,
    ACCEPTED,
    SHIPPING,
    CANCELLED,
)
INITIAL = ELIGIBLE
TERMINAL = (SHIPPING, CANCELLED)
NON_TERMINAL = tuple(s for s in STATES if s not in TERMINAL)

# One line each, in words a person at the front desk would use.
MEANINGS = {
    ELIGIBLE: "Prescribed to Align; nothing sent yet.",
    PATIENT_CREATED: "Align has a patient record for this case.",
    ORDER_CREATED: "Align has the primary (IAS) order.",
    ASSETS_UPLOADED: "Align has the scans; waiting for the treatment plan.",
    PLAN_RECEIVED: "A ClinCheck plan is waiting for the provider's review.",
    REVISION_REQUESTED: "The provider asked for changes; waiting for a new plan.",
    PROVIDER_APPROVED: "The provider approved the plan; waiting for the aligner purchase.",
    ACCEPTED: "Aligners bought and acceptance sent to Align; waiting for manufacture.",
    SHIPPING: "Align shipped the aligners.",
    CANCELLED: "The case left the Align workflow.",
}

# How a state reads on a page or inside a sentence ("the case is plan received").
STATE_LABELS = {
    ELIGIBLE: "eligible",
    PATIENT_CREATED: "patient created",
    ORDER_CREATED: "order created",
    ASSETS_UPLOADED: "assets uploaded",
    PLAN_RECEIVED: "plan received",
    REVISION_REQUESTED: "revision requested",
    PROVIDER_APPROVED: "provider approved",
    ACCEPTED: "accepted",
    SHIPPING: "shipping",
    CANCELLED: "cancelled",
}

# --- Actors: who may fire a trigger ---------------------------------------------

STAFF = "staff"  # a clinic staff user
PROVIDER = "provider"  # the provider on the case's own prescription
ALIGN = "align"  # an event from Align (acts with no user)
SYSTEM = "system"  # automation: retries, batch jobs, purchase hooks (acts with no user)

# --- Guards and flags ------------------------------------------------------------

CAN_SEND_TO_ALIGN = "can_send_to_align"  # lab is Align, photos approved, >= 2 STL files
FLAG_INITIATE_ORDER = "initiate-align-order"
FLAG_SET_ORDER_STATUS = "set-align-order-status"


class Transition(NamedTuple):
    trigger: str
    source: tuple
    dest: str
    actor: tuple
    effect: str
    guard: str | None = None
    flag: str | None = None


# --- The transition table ----------------------------------------------------------
# trigger, source states, destination, actors, effect (and guard / flag where one applies)

TRANSITIONS = (
    Transition(
        "create_patient",
        (ELIGIBLE,),
        PATIENT_CREATED,
        (STAFF,),
        "POST /patients; unknown gender is sent as M with a case note",
        guard=CAN_SEND_TO_ALIGN,
        flag=FLAG_INITIATE_ORDER,
    ),
    Transition(
        "create_order",
        (PATIENT_CREATED,),
        ORDER_CREATED,
        (STAFF, SYSTEM),
        "POST /orders (IAS, treatment option from the photo assessment)",
        flag=FLAG_INITIATE_ORDER,
    ),
    Transition(
        "upload_assets",
        (ORDER_CREATED,),
        ASSETS_UPLOADED,
        (STAFF, SYSTEM),
        "POST /assets/upload (ids only)",
        flag=FLAG_INITIATE_ORDER,
    ),
    Transition(
        "receive_plan",
        (ASSETS_UPLOADED, REVISION_REQUESTED, PLAN_RECEIVED),
        PLAN_RECEIVED,
        (ALIGN,),
        "store the plan (a newer version replaces the pending one)",
    ),
    Transition(
        "request_revision",
        (PLAN_RECEIVED,),
        REVISION_REQUESTED,
        (PROVIDER,),
        "PUT /orders/{caseId}/modify with the provider's comment",
        flag=FLAG_SET_ORDER_STATUS,
    ),
    Transition(
        "approve_plan",
        (PLAN_RECEIVED,),
        PROVIDER_APPROVED,
        (PROVIDER,),
        "store the acceptance screenshot in the vault (CCACCEPTSCREEN)",
    ),
    Transition(
        "accept_clincheck",
        (PROVIDER_APPROVED,),
        ACCEPTED,
        (STAFF, SYSTEM),
        "PUT /orders/{caseId}/accept with the screenshot's vault_id and external_key",
        flag=FLAG_SET_ORDER_STATUS,
    ),
    Transition("ship", (ACCEPTED,), SHIPPING, (ALIGN,), "store carrier, tracking number, ship date"),
    Transition("cancel", NON_TERMINAL, CANCELLED, (STAFF, ALIGN), "record the reason"),
)

TRIGGERS = tuple(t.trigger for t in TRANSITIONS)
BY_TRIGGER = {t.trigger: t for t in TRANSITIONS}

# How a trigger is named on its own (case notes, the list of calls to Align, batch output).
# Inside a sentence it reads in lower case: "Cannot request revision: ...".
TRIGGER_LABELS = {
    "create_patient": "Create Patient",
    "create_order": "Create Order",
    "upload_assets": "Upload Assets",
    "receive_plan": "Receive Plan",
    "request_revision": "Request Revision",
    "approve_plan": "Approve Plan",
    "accept_clincheck": "Accept ClinCheck",
    "ship": "Ship",
    "cancel": "Cancel",
}


def state_label(state: str) -> str:
    """The label of a state; a name no longer in the table (an old history row) reads as words."""
    return STATE_LABELS.get(state) or state.replace("_", " ")


def trigger_label(trigger: str) -> str:
    """The name of a trigger on its own: "Accept ClinCheck"."""
    return TRIGGER_LABELS.get(trigger) or trigger.replace("_", " ").title()


def trigger_words(trigger: str) -> str:
    """The trigger inside a sentence: "accept clincheck"."""
    return trigger_label(trigger).lower()


# "Send to Align" in the staff portal runs these in order, resuming from the current state.
SEND_TO_ALIGN = ("create_patient", "create_order", "upload_assets")

# Which trigger an event from Align fires (see the events module for the details).
EVENT_TRIGGERS = {
    "treatment_plan.submitted": "receive_plan",
    "case.status_changed:SHIPPED": "ship",
    "case.status_changed:CANCELLED": "cancel",
    "sales_order.created": None,  # adds an order row; changes no state
}

# How a step that happened reads in a case's timeline: what changed, in a person's words.
STEP_DONE = {
    "create_patient": "Align created the patient record",
    "create_order": "Align opened the order",
    "upload_assets": "Align received the scans",
    "receive_plan": "Align sent a treatment plan",
    "request_revision": "The provider asked for changes to the plan",
    "approve_plan": "The provider approved the plan",
    "accept_clincheck": "Align received the ClinCheck acceptance",
    "ship": "Align shipped the aligners",
    "cancel": "The case was cancelled",
}


def step_done(trigger: str) -> str:
    """A step that happened, as the timeline says it: "Align received the scans"."""
    return STEP_DONE.get(trigger) or trigger_label(trigger)


# Align's own status of a case (its `case.status_changed` events), as the Align panel says it.
ALIGN_STATUS_LABELS = {
    "RECEIVED": "Received",
    "SETUP_IN_PROGRESS": "Setting up the treatment plan",
    "CLINCHECK_READY": "ClinCheck plan ready",
    "MODIFICATION_REQUESTED": "Changes to the plan requested",
    "APPROVED": "Plan approved",
    "IN_MANUFACTURING": "In manufacturing",
    "SHIPPED": "Shipped",
    "CANCELLED": "Cancelled",
    "ON_HOLD": "On hold",
}


def align_status_label(status: str) -> str:
    """Align's status in words; a status not in the table reads as Align sent it."""
    return ALIGN_STATUS_LABELS.get(status) or status
