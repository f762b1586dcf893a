"""Celery tasks (ALIGN_EXECUTION=celery): the same code the inline mode runs. Both are
idempotent: a notification is claimed with a conditional update before it is sent."""

import logging

from align_workflow.celery import app

from . import services
from .sweep import sweep

logger = logging.getLogger(__name__)


@app.task(name="notifications.deliver", acks_late=True, ignore_result=True)
def deliver_task(notification_id):
    services.deliver(notification_id)


@app.task(name="notifications.sweep", ignore_result=True)
def sweep_task():
    result = sweep()
    if result.delivered or result.waiting_events:
        logger.info(
            "notifications sweep: %s sent, %s failed, %s about waiting events",
            result.sent,
            result.failed,
            result.waiting_events,
        )
