"""The Align workflow engine. Public API:

    from align_workflow.workflow import fire, TransitionNotAllowed
"""


def __getattr__(name):
    # Imported lazily so that `align_workflow.workflow` can be listed in INSTALLED_APPS.
    if name in ("fire", "TransitionNotAllowed", "check", "available_triggers", "transition_applied", "roles_of"):
        from . import engine

        return getattr(engine, name)
    if name == "send_to_align":
        from . import outbound

        return outbound.send_to_align
    raise AttributeError(name)
