# Load Celery with Django so that queued tasks use the configured broker (see celery.py).
from .celery import app as celery_app

__all__ = ("celery_app",)
