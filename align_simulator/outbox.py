"""Event delivery: signed POSTs to `{callback_base_url}/api/align/events`, retried with backoff.

Signed as the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256>`), with the `standardwebhooks` package; with
several secrets configured, each one signs and the header carries every signature.
Any non-2xx answer or network error is retried after `retry_base_ms * 2**(attempt-1)`
(at most `retry_max_ms`), up to `retry_max_attempts` attempts in all. With
`duplicate_rate`, an event is also delivered a second time (same id and body); with
`shuffle`, events are held back a random time of up to `shuffle_window_ms`, so they
arrive out of order. Every attempt is recorded on the event (`/_sim/state` "events").
"""

import json
import logging
import random
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


class Outbox:
    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.scheduler = Scheduler("align-sim-outbox")
        self.session = requests.Session()  # used by the outbox thread only
        self.random = random.Random()
        self.reseed()

    def reseed(self):
        self.random.seed(f"{self.config.seed}-delivery" if self.config.seed is not None else None)

    def reset(self):
        self.scheduler.clear()
        self.reseed()

    def stop(self):
        self.scheduler.stop()

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
        self.scheduler.schedule(delay_s, lambda: self._attempt(record, raw, generation, attempt))

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
