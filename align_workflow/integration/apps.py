from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "align_workflow.integration"
    label = "integration"

    def ready(self):
        # why (both): they load models, which only exist once the apps are ready.
        from align_workflow.workflow.engine import claim_released, transition_applied

        from .events import on_transition_applied

        # Events that arrived early are applied as soon as their case moves.
        transition_applied.connect(on_transition_applied, dispatch_uid="align-apply-pending-events")
        # ... and when a failed call stops holding the case (an event refused as "in progress").
        claim_released.connect(on_transition_applied, dispatch_uid="align-apply-pending-events-on-release")
