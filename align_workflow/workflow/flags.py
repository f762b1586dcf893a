"""The waffle flags that switch calls to Align on and off, as the engine reads them.

waffle keeps each flag in the Django cache (Redis in production), so every check is a
round trip to Redis and an unpickling. The engine checks a step's flag several times
per step (the click, the claim, the batch's pre-flight), so each process keeps the
flag row it read for `ALIGN_FLAG_CACHE_SECONDS` (default 2 s; 0 turns this off).

The bound: a flag switched off is obeyed by this process at once when it was saved
here (the admin, `manage.py waffle_flag`, the seed: saving or deleting a flag, or
changing its users or groups, empties this process's copy), and by every other process
(web workers, Celery workers, align_batch) at most ALIGN_FLAG_CACHE_SECONDS later. A
step already claimed when the flag goes off still finishes (as before: the flag is
checked before anything is sent, never in the middle of a call).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection, transaction
from waffle import get_waffle_flag_model

# name -> (monotonic time until which it is used, the flag row as waffle returned it)
_kept: dict = {}
_clock = time.monotonic  # tests move it forward


def get_flag(name: str):
    """waffle's flag `name` (a row with pk None when it does not exist), read again at
    most every ALIGN_FLAG_CACHE_SECONDS."""
    now = _clock()
    kept = _kept.get(name)
    if kept is not None and kept[0] > now:
        return kept[1]
    flag = get_waffle_flag_model().get(name)
    seconds = settings.ALIGN_FLAG_CACHE_SECONDS
    if seconds > 0:
        _kept[name] = (now + seconds, flag)
    return flag


def forget(**kwargs) -> None:
    """Drop every flag kept by this process (a flag, or its users or groups, changed
    here): now, and again once the change is committed (waffle empties its shared cache
    then; a read in between may have kept the flag as it was)."""
    _kept.clear()
    if connection.in_atomic_block:
        transaction.on_commit(_kept.clear)


def connect_signals() -> None:
    """Called when the app is ready: a flag saved or deleted here is forgotten at once."""
    from django.db.models.signals import m2m_changed, post_delete, post_save  # why: app loading (ready())

    flag_model = get_waffle_flag_model()
    post_save.connect(forget, sender=flag_model, dispatch_uid="align_flags_saved")
    post_delete.connect(forget, sender=flag_model, dispatch_uid="align_flags_deleted")
    for relation in ("users", "groups"):
        through = getattr(getattr(flag_model, relation, None), "through", None)
        if through is not None:
            m2m_changed.connect(forget, sender=through, dispatch_uid=f"align_flags_{relation}")
