"""The Align client's shared bearer token: one token for every process.

The token lives in Django's cache (Redis via django-redis in production) for
`expires_in - 60` seconds. Fetching it happens under a lock (a Redis lock when the cache
offers one, a process-local lock otherwise) with a second look at the cache once the
lock is held, so a hundred workers starting at once make one token request. A refused
token is dropped only if it is still the one that was refused.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

from .errors import AlignUnavailable

# The client's logger: the token's log lines read as the client's.
logger = logging.getLogger("align_workflow.align.client")

# A token is thrown away this long before the service says it expires, so that a
# request never sets off with a token that dies on the way.
TOKEN_EXPIRY_MARGIN_SECONDS = 60


# --- Token lock ---------------------------------------------------------------------

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(name):
    with _process_locks_guard:
        return _process_locks.setdefault(name, threading.Lock())


class SharedToken:
    """The token half of the client (mixed into Align): needs `cache`, `token_cache_key`,
    `token_lock_key`, the timeouts and `_send`."""

    # Fetch tokens under a lock shared by every process using the cache. Only a test
    # turns this off, to show what happens without it.
    share_token_lock = True

    def _token(self):
        """The cached token, or a new one fetched by exactly one process."""
        token = self.cache.get(self.token_cache_key)
        if token:
            return token
        with self._token_lock():
            token = self.cache.get(self.token_cache_key)  # someone may have fetched it meanwhile
            if token:
                return token
            return self._fetch_token()

    def _replace_refused_token(self, refused):
        """Drop `refused` from the cache unless it was already replaced; return a usable token."""
        with self._token_lock():
            current = self.cache.get(self.token_cache_key)
            if current and current != refused:
                return current  # another process already replaced it
            if current:
                self.cache.delete(self.token_cache_key)
            return self._fetch_token()

    @contextmanager
    def _token_lock(self):
        if not self.share_token_lock:
            yield
            return
        shared_lock = getattr(self.cache, "lock", None)
        if shared_lock is None:
            # A cache without locks (local memory) is private to this process anyway.
            with _process_lock(self.token_lock_key):
                yield
            return
        # The holder makes one token request; if it dies, the lock expires after that long.
        hold = self.connect_timeout + self.read_timeout + 5
        lock = shared_lock(self.token_lock_key, timeout=hold, blocking_timeout=hold)
        acquired = lock.acquire()
        if not acquired:
            # The lock only saves token requests; going on without it is still correct.
            logger.warning("align token lock not acquired within %.0fs; fetching a token without it", hold)
        try:
            yield
        finally:
            if acquired:
                try:
                    lock.release()
                except Exception:  # expired meanwhile (redis LockError): nothing to release
                    logger.warning("align token lock had expired before release")

    def _fetch_token(self):
        body = self._send(
            "POST",
            "/auth/token",
            json_body={
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "grant_type": "client_credentials",
            },
            headers={"Accept": "application/json"},
        )
        try:
            token = str(body["access_token"])
            expires_in = int(body.get("expires_in", 3600))
        except (KeyError, TypeError, ValueError):
            raise AlignUnavailable(
                "the token answer could not be read",
                status=200,
                code="INVALID_RESPONSE",
                method="POST",
                path="/auth/token",
            ) from None
        ttl = expires_in - TOKEN_EXPIRY_MARGIN_SECONDS
        if ttl > 0:
            self.cache.set(self.token_cache_key, token, timeout=ttl)
        logger.info("align token fetched expires_in=%s cached_for=%s", expires_in, max(ttl, 0))
        return token
