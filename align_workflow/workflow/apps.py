from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    name = "align_workflow.workflow"
    label = "workflow"

    def ready(self):
        # The effects of the table's rows, registered explicitly (a missing one stops
        # start-up: checks.check_effects, align_workflow.E010); importing checks
        # registers the system checks.
        from . import align_effects, checks, effects, flags  # noqa: F401  why: needs the models loaded

        flags.connect_signals()
        effects.register_local_effects()
        align_effects.register_align_effects()
