"""How the triggers that call Align are named to people: the names come from states/."""

from __future__ import annotations

from states import align_case as wf
from states.align_case import trigger_label

__all__ = ["ALIGN_TRIGGERS", "ALIGN_TRIGGER_LABELS", "trigger_label"]

# The triggers whose calls to Align are recorded as attempts (and may flag a case).
ALIGN_TRIGGERS = (
    "create_patient",
    "create_order",
    "upload_assets",
    "request_revision",
    "accept_clincheck",
    "approve_plan",
)
ALIGN_TRIGGER_LABELS = {trigger: wf.TRIGGER_LABELS[trigger] for trigger in ALIGN_TRIGGERS}
