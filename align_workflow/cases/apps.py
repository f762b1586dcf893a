from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "align_workflow.cases"
    label = "cases"

    def ready(self):
        # The state history (django-fsm-log's StateLog) is append-only, like the rest of the audit trail.
        from .records import guard_statelog  # why: loads django-fsm-log's models, ready only now

        guard_statelog()
