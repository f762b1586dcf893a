"""One `requests.Session` per thread, shared by the Align client and the HTTP vault.

A new session per call opened a new TCP connection per call (and paid for building the
session's adapters). A session kept for the thread keeps its connections alive between
calls, to the service and to the vault alike (one pool per host).

- **Per thread**: a `requests.Session` is not documented as thread-safe, so each thread
  has its own; worker threads (the batch, `align_retry_due --workers`, Celery's thread
  pool) each reuse theirs for every call they make.
- **Per process**: a child forked after its parent made calls gets a session of its own
  instead of sharing the parent's sockets.
- **No cookies**: nothing a response sets is sent back with a later request, as with
  the fresh session each call used to get; only connections are reused.

A connection the server closed meanwhile is noticed by urllib3 before it is reused
(and a new one opened); one that breaks during a request fails that request as before
(`AlignUnavailable` / a retryable `VaultError`), and is replaced for the next one.
"""

from __future__ import annotations

import http.cookiejar
import os
import threading

import requests

_local = threading.local()


def _new_session() -> requests.Session:
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def thread_session() -> requests.Session:
    """This thread's session (created on first use, and again in a forked child)."""
    pid = os.getpid()
    session = getattr(_local, "session", None)
    if session is None or getattr(_local, "pid", None) != pid:
        session = _new_session()
        _local.session, _local.pid = session, pid
    return session
