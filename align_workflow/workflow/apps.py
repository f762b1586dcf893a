from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    name = "align_workflow.workflow"
    label = "workflow"

    def ready(self):
        # Register the effects that call Align and the vault (effects.py holds the local ones).
        from . import align_effects, checks  # noqa: F401  why: registers effects and checks; needs the models loaded
