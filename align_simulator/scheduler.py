"""A timer thread: runs jobs at their due time, one at a time, in (due time, submission) order.

The simulator has two: Align's own progress (plans, sales orders, statuses) and the
event outbox, so that a slow or failing event receiver never holds up Align's work.
`clear()` drops every job not yet started (a reset); jobs check the store's generation
themselves for the one that may be running.
"""

import heapq
import itertools
import logging
import threading
import time

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, name):
        self._name = name
        self._jobs = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, delay_s, job):
        with self._wakeup:
            heapq.heappush(self._jobs, (time.monotonic() + max(delay_s, 0), next(self._order), job))
            self._wakeup.notify()

    def clear(self):
        with self._wakeup:
            self._jobs.clear()

    def pending(self):
        with self._wakeup:
            return len(self._jobs)

    def stop(self, timeout=5):
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        self._thread.join(timeout)

    def _next_job(self):
        with self._wakeup:
            while not self._stopped:
                if self._jobs:
                    due = self._jobs[0][0] - time.monotonic()
                    if due <= 0:
                        return heapq.heappop(self._jobs)[2]
                    self._wakeup.wait(due)
                else:
                    self._wakeup.wait()
            return None

    def _run(self):
        while (job := self._next_job()) is not None:
            try:
                job()
            except Exception:  # noqa: BLE001 - one broken job must not stop the thread
                log.exception("%s: a scheduled job failed", self._name)
