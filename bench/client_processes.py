"""Separate processes using the Align client at the same moment, for the token tests.

A pool of spawned processes, each with Django set up from the environment (so the
cache is the same Redis as the test's, through REDIS_URL). Every task waits at a
barrier sized to the pool, so each of the N tasks runs in a different process and they
all call the service together. Used by the benchmarks (bench/token_lock.py) and by
tests/integration/test_client_processes.py.
"""

import logging
import multiprocessing
import os

_barrier = None


def _start_worker(barrier, env=None):
    global _barrier
    _barrier = barrier
    os.environ.update(env or {})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "align_workflow.settings")
    import django

    django.setup()


class _Statuses(logging.Handler):
    """Collects the HTTP status of every request this process's client sends."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen = []

    def emit(self, record):
        if hasattr(record, "align_path"):
            self.seen.append((record.align_method, record.align_path, record.align_status))


def read_case(base_url, case_id, share_token_lock=True):
    """In a worker: wait for the others, then GET /orders/{case_id} once."""
    from align_workflow.align.client import Align, AlignError

    class ClientUnderTest(Align):
        pass

    ClientUnderTest.share_token_lock = share_token_lock
    align = ClientUnderTest(base_url)
    statuses = _Statuses()
    logger = logging.getLogger("align_workflow.align.client")
    logger.addHandler(statuses)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # sixteen processes' request lines would only be noise on the console
    try:
        _barrier.wait(timeout=60)
        try:
            align.get_case(case_id)
            outcome = "OK"
        except AlignError as error:
            outcome = error.code
    finally:
        logger.removeHandler(statuses)
    return {"pid": os.getpid(), "outcome": outcome, "requests": statuses.seen}


class ClientProcesses:
    def __init__(self, size, env=None):
        """`size` spawned processes; `env` is set in each one's environment before Django starts
        (the benchmarks point REDIS_URL at a Redis database of their own)."""
        context = multiprocessing.get_context("spawn")
        self.size = size
        self.pool = context.Pool(size, initializer=_start_worker, initargs=(context.Barrier(size), env))

    def read_case_together(self, base_url, case_id, *, share_token_lock=True, timeout=120):
        """Each of `size` processes reads the case once, all at the same moment."""
        args = [(base_url, case_id, share_token_lock)] * self.size
        results = self.pool.starmap_async(read_case, args, chunksize=1).get(timeout)
        assert len({r["pid"] for r in results}) == self.size, "every call ran in its own process"
        return results

    def close(self):
        self.pool.terminate()
        self.pool.join()
