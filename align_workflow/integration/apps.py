from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "align_workflow.integration"
    label = "integration"

    def ready(self):
        from align_workflow.workflow.engine import claim_released, transition_applied  # why: loads models

        from .events import on_transition_applied, register_pending_probe  # why: loads models, ready only now

        # Events that arrived early are applied as soon as their case moves.
        transition_applied.connect(on_transition_applied, dispatch_uid="align-apply-pending-events")
        # ... read with the move itself, in the same round trip.
        register_pending_probe()
        # ... and when a failed call stops holding the case (an event refused as "in progress").
        claim_released.connect(on_transition_applied, dispatch_uid="align-apply-pending-events-on-release")
