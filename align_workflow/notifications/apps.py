from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "align_workflow.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from align_workflow.workflow.engine import transition_applied  # why: loads models, ready only now
        from align_workflow.workflow.signals import attention_raised  # why: loads models, ready only now

        from .listeners import on_attention_raised, on_transition_applied  # why: loads models, ready only now

        transition_applied.connect(on_transition_applied, dispatch_uid="notifications-transition-applied")
        attention_raised.connect(on_attention_raised, dispatch_uid="notifications-attention-raised")
