import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "align_workflow.settings")
application = get_wsgi_application()

# Fail closed: with DEBUG off, a demo or unset secret stops the server from starting.
from align_workflow.workflow.checks import demo_secret_errors  # noqa: E402

_errors = demo_secret_errors()
if _errors:
    raise ImproperlyConfigured("Refusing to start: " + " ".join(e.msg for e in _errors))
