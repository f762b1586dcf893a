"""Signals the workflow sends for the layers above it (which connect to them; the
workflow never imports its listeners). The engine's own, `transition_applied` and
`claim_released`, are defined in engine.py."""

from django.db import transaction
from django.dispatch import Signal

from align_workflow.cases.models import Case

# Sent after the transaction that set a case's needs-attention flag has committed: a call
# to Align failed for good (or its process stopped on the last attempt). kwargs: case_id,
# attempt_id (the attempt that failed: one real change each).
attention_raised = Signal()


def raise_attention_after_commit(case_id: int, attempt_id: int) -> None:
    """Inside the transaction that sets the flag: tell the listeners once it commits."""
    transaction.on_commit(
        lambda: attention_raised.send(sender=Case, case_id=case_id, attempt_id=attempt_id), robust=True
    )
