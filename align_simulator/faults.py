"""Injected faults: what `POST /_sim/faults` asks the simulator to do wrong.

A fault names a route ("POST /orders", a template such as "PUT /orders/{caseId}/accept",
a concrete path such as "PUT /orders/42/accept", or "*" for every contract route) and
one mode:

- `status` (the default): answer `status` (503 unless given) in the error envelope,
  without doing the work; 503 and 429 carry `Retry-After` (`retry_after`, default 1);
- `timeout_after_commit`: do the work, keep the answer for the Idempotency-Key, then
  wait `seconds` (default 15) before answering, so the client has given up;
- `reset`: drop the connection without answering and without doing the work;
- `reset_after_commit`: do the work, then drop the connection;
- `latency`: answer normally after `latency_ms`.

`count` limits how many requests it hits (unlimited when absent); `rate` makes each
matching request hit with that probability, from a random generator seeded by `seed`
(or the config's seed), so a test sees the same sequence every run.
"""

import itertools
import random
import threading

MODES = ("status", "timeout_after_commit", "reset", "reset_after_commit", "latency")
ERROR_CODES = {
    429: "RATE_LIMITED",
    500: "INTERNAL",
    502: "BAD_GATEWAY",
    503: "SERVICE.UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
SPEC_KEYS = {
    "route",
    "mode",
    "status",
    "count",
    "rate",
    "seed",
    "seconds",
    "latency_ms",
    "code",
    "message",
    "retry_after",
}


class FaultSpecError(ValueError):
    """A fault spec that cannot be understood."""


class Fault:
    _ids = itertools.count(1)

    def __init__(self, spec, default_seed=None):
        unknown = sorted(set(spec) - SPEC_KEYS)
        if unknown:
            raise FaultSpecError(f"unknown fault keys: {', '.join(unknown)}")
        self.id = next(self._ids)
        self.route = str(spec.get("route", "*")).strip()
        self.mode = spec.get("mode") or ("latency" if "latency_ms" in spec and "status" not in spec else "status")
        if self.mode not in MODES:
            raise FaultSpecError(f"mode must be one of {', '.join(MODES)}")
        self.status = self._number(spec, "status", 503, int)
        if not 400 <= self.status <= 599:
            raise FaultSpecError("status must be a 4xx or 5xx code")
        self.count = self._number(spec, "count", None, int)
        self.rate = self._number(spec, "rate", None, float)
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise FaultSpecError("rate must be between 0 and 1")
        self.seed = spec.get("seed", default_seed)
        self.seconds = self._number(spec, "seconds", 15.0, float)
        self.latency_ms = self._number(spec, "latency_ms", 0, float)
        self.retry_after = self._number(spec, "retry_after", 1, int)
        self.code = spec.get("code") or ERROR_CODES.get(self.status, f"SIMULATED.{self.status}")
        self.message = spec.get("message") or f"simulated fault ({self.mode})"
        self.fired = 0
        self._random = random.Random(self.seed)

    @staticmethod
    def _number(spec, key, default, kind):
        value = spec.get(key, default)
        if value is None:
            return None
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise FaultSpecError(f"{key} must be a number") from None

    def matches(self, template, concrete):
        return self.route in ("*", template, concrete)

    @property
    def exhausted(self):
        return self.count is not None and self.fired >= self.count

    def hits(self):
        """Whether this request is hit (the caller holds the book's lock)."""
        if self.exhausted:
            return False
        if self.rate is not None and self._random.random() >= self.rate:
            return False
        self.fired += 1
        return True

    def to_json(self):
        return {
            "id": self.id,
            "route": self.route,
            "mode": self.mode,
            "status": self.status,
            "count": self.count,
            "rate": self.rate,
            "seed": self.seed,
            "seconds": self.seconds,
            "latency_ms": self.latency_ms,
            "code": self.code,
            "retry_after": self.retry_after,
            "fired": self.fired,
            "remaining": None if self.count is None else max(self.count - self.fired, 0),
        }


class FaultBook:
    """The faults in force; the first one (in the order added) that hits a request applies."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def add(self, spec, default_seed=None):
        fault = Fault(spec, default_seed)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self):
        with self._lock:
            self._faults.clear()

    def pick(self, template, concrete):
        with self._lock:
            for fault in self._faults:
                if fault.matches(template, concrete) and fault.hits():
                    return fault
        return None

    def to_json(self):
        with self._lock:
            return [f.to_json() for f in self._faults]
