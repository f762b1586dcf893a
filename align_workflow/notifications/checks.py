"""System check: an EMAIL_BACKEND that cannot be imported would fail every email quietly
(each recorded as failed); it stops start-up instead."""

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string


@checks.register(checks.Tags.compatibility)
def check_email_backend(app_configs=None, **kwargs):
    try:
        import_string(settings.EMAIL_BACKEND)
    except ImportError:
        return [
            checks.Error(
                "EMAIL_BACKEND names no email backend that can be imported.",
                hint="Use e.g. django.core.mail.backends.smtp.EmailBackend (see docs/notifications.md).",
                id="align_workflow.E020",
            )
        ]
    return []
