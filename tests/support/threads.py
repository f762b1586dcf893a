"""Threads released at the same moment, for the concurrency tests."""

import threading

from django.db import close_old_connections, connection


def race(target, threads, *, timeout=60):
    """Run `target` in `threads` threads released together by a barrier; return what each
    returned or raised (an exception is an outcome, not a test error). Each thread closes
    its own database connection, so a test database can be dropped afterwards."""
    barrier = threading.Barrier(threads)
    outcomes = []

    def run():
        try:
            barrier.wait()
            outcomes.append(target())
        except Exception as exc:  # noqa: BLE001 - the outcome is what we measure
            outcomes.append(exc)
        finally:
            close_old_connections()
            connection.close()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=timeout)
    return outcomes


def together(target, threads=8):
    """`race`, for targets that must all succeed."""
    outcomes = race(target, threads)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert errors == [], errors
    assert len(outcomes) == threads, "a thread did not finish"
    return outcomes
