"""System checks (`manage.py check`, run by every management command and at start-up)
for settings that would otherwise fail quietly in production."""

from django.conf import settings
from django.core import checks

from . import effects

EXECUTION_MODES = ("inline", "celery")


@checks.register(checks.Tags.compatibility)
def check_execution(app_configs=None, **kwargs):
    problems = []
    mode = settings.ALIGN_EXECUTION
    if mode not in EXECUTION_MODES:
        problems.append(
            checks.Error(
                f"ALIGN_EXECUTION is {mode!r}; it must be one of: {', '.join(EXECUTION_MODES)}.",
                hint="Unset it to send calls to Align from the web process, or set it to 'celery'.",
                id="align_workflow.E001",
            )
        )
    elif mode == "celery" and getattr(settings, "REDIS_URL", "") == settings.CELERY_BROKER_URL:
        problems.append(
            checks.Warning(
                "The Celery broker is the Redis database the cache uses (CELERY_BROKER_URL is REDIS_URL): "
                "clearing the cache would drop queued calls to Align.",
                hint="Set CELERY_BROKER_URL to another Redis database, e.g. redis://host:6379/2.",
                id="align_workflow.W001",
            )
        )
    return problems


def demo_secret_errors():
    """With DEBUG off, every secret left at its public demo value, or empty, by name."""
    if settings.DEBUG:
        return []
    demo = getattr(settings, "DEMO_SECRETS", {})
    names = list(demo)
    if getattr(settings, "ALIGN_VAULT_URL", "local") == "local":
        names.remove("ALIGN_VAULT_API_KEY")  # the local vault uses no key
    if not getattr(settings, "SHOP_API_TOKEN", ""):
        names.remove("SHOP_API_TOKEN")  # unset: the shop's purchase API is off, nothing to guess
    errors = []
    for name in names:
        value = getattr(settings, name, "")
        if not value or value == demo.get(name):
            errors.append(
                checks.Error(
                    f"{name} is {'unset' if not value else 'the public demo value'} while DEBUG is off.",
                    hint=f"Set {'DJANGO_SECRET_KEY' if name == 'SECRET_KEY' else name} in the environment to a secret of this deployment "
                    "(or DJANGO_DEBUG=1 for development only).",
                    id="align_workflow.E002",
                )
            )
    return errors


@checks.register(checks.Tags.security)
def check_secrets(app_configs=None, **kwargs):
    return demo_secret_errors()


@checks.register(checks.Tags.compatibility)
def check_effects(app_configs=None, **kwargs):
    """Every row of the table in states/ has its effect registered."""
    return [
        checks.Error(
            f"Workflow effect missing: {problem}.",
            hint="Register it with workflow.effects.register (align_effects.py for calls to Align).",
            id="align_workflow.E010",
        )
        for problem in effects.registry_problems()
    ]
