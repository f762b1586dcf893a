"""How steps are named to people: the names come from the table in states/."""

from __future__ import annotations

from states import align_case as wf

# The steps whose calls to Align are recorded as attempts (and may flag a case).
ALIGN_STEPS = ("create_patient", "create_order", "upload_assets", "request_revision", "accept_clincheck",
               "approve_plan")
STEP_LABELS = {step: wf.LABELS[step] for step in ALIGN_STEPS}


def step_label(step: str) -> str:
    return wf.LABELS.get(step) or step.replace("_", " ").title()
