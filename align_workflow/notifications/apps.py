from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "align_workflow.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from align_workflow.workflow.engine import transition_applied  # why: loads models, ready only now
        from align_workflow.workflow.signals import attention_raised  # why: loads models, ready only now

        from . import checks  # noqa: F401  why: registers the system check
        from .listeners import on_attention_raised, on_transition_applied  # why: loads models, ready only now

        # Connected after the inbound app's listener (INSTALLED_APPS order): events that waited
        # for this change are applied first, so a burst of plans announces the newest once.

        transition_applied.connect(on_transition_applied, dispatch_uid="notifications-transition-applied")
        attention_raised.connect(on_attention_raised, dispatch_uid="notifications-attention-raised")
