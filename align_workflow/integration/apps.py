from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "align_workflow.integration"
    label = "integration"

    def ready(self):
        from align_workflow.workflow.engine import transition_applied

        from .events import on_transition_applied

        # Events that arrived early are applied as soon as their case moves.
        transition_applied.connect(on_transition_applied, dispatch_uid="align-apply-pending-events")
