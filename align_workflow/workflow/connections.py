"""Database connections of worker threads that run many cases (align_batch,
`align_retry_due --workers`).

Django gives every thread its own connection. A worker thread that closed it after
every case paid for a new PostgreSQL backend per case (about a fifth of a batch run's
time); one that never closed it would leave it open after the pool is gone. So each
thread keeps its connection from one case to the next, and the thread that started
the pool closes them all once the workers are done:

    held = ThreadConnections()
    with ThreadPoolExecutor(...) as pool:
        ...                       # each worker calls held.keep() after each case
    held.close_all()
"""

from __future__ import annotations

import logging
import threading

from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)


class ThreadConnections:
    """The worker threads' database connections: each thread keeps its own for its next
    case and they are closed together when the run ends."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}

    def keep(self):
        """In a worker thread, after a case: keep its connection, unless it broke."""
        own = connections[DEFAULT_DB_ALIAS]
        if own.connection is not None and own.errors_occurred and not own.is_usable():
            own.close()
        if own.connection is not None:
            with self._lock:
                self._held[id(own)] = own

    def close_all(self):
        """In the calling thread, once the worker threads are done."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for own in held:
            own.inc_thread_sharing()
            try:
                own.close()
            except Exception:  # the server already dropped it: nothing left to release
                logger.warning("a worker thread's database connection did not close cleanly", exc_info=True)
            finally:
                own.dec_thread_sharing()
