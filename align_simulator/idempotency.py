"""Idempotency-Key: the first answer per key is kept (24 h) and replayed without the work.

A repeat with the same key and other parameters gets 422 IDEMPOTENCY.MISMATCH.
Requests with the same key are serialised by a per-key lock, so two of them arriving
together do the work once: the second waits and then replays the first one's answer.
Only answers the route itself gave are kept: an injected fault, a 5xx or an auth
refusal did no work, so a retry with the same key does it.
"""

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .wire import ApiError, Response


@dataclass
class Stored:
    fingerprint: str
    route: str
    status: int
    body: object
    headers: dict
    stored_at: float


class IdempotencyStore:
    def __init__(self):
        self._lock = threading.Lock()
        self._stored = {}
        self._key_locks = {}

    def reset(self):
        with self._lock:
            self._stored.clear()
            self._key_locks.clear()

    @contextmanager
    def exclusive(self, key, enabled=True):
        """Hold the key's lock (when `enabled`) while checking, working and storing."""
        if not enabled:
            yield
            return
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            yield

    def replay(self, key, fingerprint, ttl):
        """The stored answer for `key`, None when there is none, 422 when the parameters differ."""
        with self._lock:
            stored = self._stored.get(key)
            if stored and time.time() - stored.stored_at > ttl:
                del self._stored[key]
                stored = None
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise ApiError(
                422,
                "IDEMPOTENCY.MISMATCH",
                "this Idempotency-Key was used with different parameters",
                {"idempotency_key": key, "original_route": stored.route},
            )
        headers = dict(stored.headers, **{"Idempotent-Replayed": "true"})
        return Response(stored.status, stored.body, headers)

    def keep(self, key, fingerprint, route, response):
        if response.status >= 500 or response.status == 401:
            return
        with self._lock:
            self._stored.setdefault(
                key, Stored(fingerprint, route, response.status, response.body, dict(response.headers), time.time())
            )

    def count(self):
        with self._lock:
            return len(self._stored)
