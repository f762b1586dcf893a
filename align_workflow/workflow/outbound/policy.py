"""Retry policy: how long a call may run (the lease), when a failed call is tried again
and how often."""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone


def lease_end():
    """Until when a process may hold a call before another one takes it over."""
    return timezone.now() + timedelta(seconds=settings.ALIGN_CALL_LEASE_SECONDS)


def retries_left(attempt_number: int) -> bool:
    """Whether attempt `attempt_number` of a step may be followed by an automatic one."""
    return attempt_number < settings.ALIGN_RETRY_MAX_ATTEMPTS


def retry_delay(attempt_number: int, retry_after: float | None = None) -> float:
    """Seconds until the next automatic attempt: exponential backoff with jitter.

    The ceiling doubles with every attempt (base, 2*base, 4*base, ...); the delay is
    drawn from its upper half, so that cases that failed together do not all come back
    at the same moment, and never sooner than the service's Retry-After.
    """
    ceiling = min(settings.ALIGN_RETRY_BASE_SECONDS * 2 ** (attempt_number - 1), settings.ALIGN_RETRY_MAX_DELAY_SECONDS)
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after:
        delay = max(delay, float(retry_after))
    return delay
