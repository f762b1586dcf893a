"""Celery, for ALIGN_EXECUTION=celery: workers send the recorded attempts to Align.

    celery -A align_workflow worker     # runs attempts (late acknowledgement: a worker that dies
                                        # mid-task leaves the message to be delivered again)
    celery -A align_workflow beat       # every ALIGN_SWEEP_SECONDS: queue due retries, take over
                                        # attempts whose lease expired

Settings come from Django's (the CELERY_* names); the broker is CELERY_BROKER_URL (Redis).
The tasks (workflow/tasks.py) are bound to this app, so the web process queues them on
the configured broker; `align_workflow/__init__.py` deliberately does not import Celery
(the simulator runs from this package without Django or Celery).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "align_workflow.settings")

app = Celery("align_workflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["align_workflow.workflow", "align_workflow.notifications"])
