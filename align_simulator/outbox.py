"""Event delivery: signed POSTs to `{callback_base_url}/api/align/events`, retried with backoff.

Signed as the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256>`), with the `standardwebhooks` package; with
several secrets configured, each one signs and the header carries every signature.
Any non-2xx answer or network error is retried after `retry_base_ms * 2**(attempt-1)`
(at most `retry_max_ms`), up to `retry_max_attempts` attempts in all. With
`duplicate_rate`, an event is also delivered a second time (same id and body); with
`shuffle`, events are held back a random time of up to `shuffle_window_ms`, so they
arrive out of order. Every attempt is recorded on the event (`/_sim/state` "events").

Delivery is concurrent, as real webhook senders are: up to `delivery_concurrency`
POSTs are in flight at once, each from its own thread and connection. Events of one
case stay in the order they were sent (a case's next event waits while an earlier
one is in flight), unless `shuffle` asks for disorder; events of different cases
overtake each other. A retry goes to the back of the queue when its backoff is over.
"""

import json
import logging
import random
import threading
from collections import deque
from datetime import UTC, datetime

import requests
from standardwebhooks.webhooks import Webhook

from .scheduler import Scheduler
from .store import utc_now_iso

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/align/events"
DUPLICATE_GAP_S = 0.05


def signature_headers(event_id, raw_body, secrets):
    now = datetime.now(UTC)
    signatures = [Webhook(secret).sign(event_id, now, raw_body) for secret in secrets]
    return {
        "Content-Type": "application/json",
        "User-Agent": "align-simulator",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


class DeliveryPool:
    """Runs delivery attempts on up to `limit()` threads, one case's attempts one at a time.

    `submit(key, job)` queues a job; a worker takes the oldest job whose key (the case)
    has no attempt in flight (`ordered()` false: the oldest job). Workers are started
    when jobs come and the limit allows; one above a lowered limit stops when it is idle.
    """

    def __init__(self, name, limit, ordered):
        self._name = name
        self._limit = limit
        self._ordered = ordered
        self._ready = deque()
        self._busy_keys = set()
        self._workers = set()  # indexes of running workers
        self._cond = threading.Condition()
        self._stopped = False
        self.in_flight = 0
        self.most_in_flight = 0  # the highest number of attempts in flight at once, for /_sim/state

    def submit(self, key, job):
        with self._cond:
            self._ready.append((key, job))
            for index in range(self._limit()):
                if index not in self._workers:
                    self._workers.add(index)
                    threading.Thread(target=self._run, args=(index,), name=f"{self._name}-{index}", daemon=True).start()
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self._ready.clear()
            self.most_in_flight = self.in_flight

    def queued(self):
        with self._cond:
            return len(self._ready)

    def stop(self):
        with self._cond:
            self._stopped = True
            self._ready.clear()
            self._cond.notify_all()

    def _take(self):
        """The next job this worker may run, as (key, job); None: stop."""
        ordered = self._ordered()
        for position, (key, job) in enumerate(self._ready):
            if key is None or not ordered or key not in self._busy_keys:
                del self._ready[position]
                return key, job
        return None

    def _run(self, index):
        while True:
            with self._cond:
                while True:
                    if self._stopped or index >= self._limit():
                        self._workers.discard(index)
                        self._cond.notify_all()
                        return
                    taken = self._take()
                    if taken is not None:
                        break
                    self._cond.wait(1.0)
                key, job = taken
                if key is not None:
                    self._busy_keys.add(key)
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                job()
            except Exception:  # noqa: BLE001 - one broken job must not stop the worker
                log.exception("%s: a delivery failed", self._name)
            finally:
                with self._cond:
                    self.in_flight -= 1
                    self._busy_keys.discard(key)
                    self._cond.notify_all()


class Outbox:
    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.scheduler = Scheduler("align-sim-outbox")  # holds attempts until they are due
        self.pool = DeliveryPool(
            "align-sim-delivery",
            limit=lambda: self.config.delivery_concurrency,
            ordered=lambda: not self.config.shuffle,
        )
        self._local = threading.local()  # one requests.Session (connection) per delivery thread
        self.random = random.Random()
        self.reseed()

    @property
    def session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def reseed(self):
        self.random.seed(f"{self.config.seed}-delivery" if self.config.seed is not None else None)

    def reset(self):
        self.scheduler.clear()
        self.pool.clear()
        self.reseed()

    def stop(self):
        self.scheduler.stop()
        self.pool.stop()

    def send(self, body):
        """Record the event and schedule its delivery; returns the record."""
        raw = json.dumps(body)
        data = body.get("data") or {}
        record = {
            "event_id": body["event_id"],
            "type": body["type"],
            "caseId": data.get("caseId"),
            "body": body,
            "state": "pending",
            "copies": 1,
            "attempts": 0,
            "deliveries": [],
        }
        with self.store.lock:
            self.store.events.append(record)
            generation = self.store.generation
        if not self.config.callback_base_url:
            record["state"] = "undelivered"  # no receiver configured: kept for /_sim/state only
            return record
        copies = 2 if self.random.random() < self.config.duplicate_rate else 1
        record["copies"] = copies
        for copy in range(copies):
            delay = copy * DUPLICATE_GAP_S
            if self.config.shuffle:
                delay += self.random.random() * self.config.shuffle_window_ms / 1000
            self._schedule(delay, record, raw, generation, attempt=1)
        return record

    def _schedule(self, delay_s, record, raw, generation, attempt):
        def due():
            self.pool.submit(record["caseId"], lambda: self._attempt(record, raw, generation, attempt))

        self.scheduler.schedule(delay_s, due)

    def _attempt(self, record, raw, generation, attempt):
        if self.store.generation != generation:
            return
        url = self.config.callback_base_url + EVENTS_PATH
        status, error = None, None
        try:
            response = self.session.post(
                url,
                data=raw.encode(),
                headers=signature_headers(record["event_id"], raw, self.config.secrets),
                timeout=self.config.delivery_timeout_s,
            )
            status = response.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        delivered = status is not None and 200 <= status < 300
        with self.store.lock:
            record["attempts"] += 1
            record["deliveries"].append(
                {"attempt": attempt, "at": utc_now_iso(), "url": url, "status": status, "error": error}
            )
            if delivered:
                record["state"] = "delivered"
            elif attempt >= self.config.retry_max_attempts and record["state"] != "delivered":
                record["state"] = "failed"
        log.info(
            "event %s %s case %s attempt %s -> %s",
            record["type"],
            record["event_id"],
            record["caseId"],
            attempt,
            status or error,
        )
        if not delivered and attempt < self.config.retry_max_attempts:
            backoff_ms = min(self.config.retry_base_ms * 2 ** (attempt - 1), self.config.retry_max_ms)
            self._schedule(backoff_ms / 1000, record, raw, generation, attempt + 1)
