"""The Align workflow engine. Public API:

from align_workflow.workflow import fire, TransitionNotAllowed
from align_workflow.workflow import send_to_align, retry_case
"""


def __getattr__(name):
    # Imported lazily so that `align_workflow.workflow` can be listed in INSTALLED_APPS.
    if name in (
        "fire",
        "TransitionNotAllowed",
        "check",
        "available_triggers",
        "transition_applied",
        "roles_of",
        "preflight",
    ):
        from . import engine  # why: loads models; this package is listed in INSTALLED_APPS

        return getattr(engine, name)
    if name in ("send_to_align", "retry_case", "SendResult"):
        from . import outbound  # why: as above

        return getattr(outbound, name)
    raise AttributeError(name)
