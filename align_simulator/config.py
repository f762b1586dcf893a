"""The simulator's configuration: the defaults of contract section 6 and the knobs tests turn.

Every value can be changed at run time through `POST /_sim/config`; `POST /_sim/reset`
restores the values the process was started with. Unknown keys are refused, so a typo
in a test fails loudly instead of silently configuring nothing.
"""

import copy

DEFAULT_EVENTS_SECRET = "whsec_ZGVtby1ldmVudHMtc2VjcmV0LWtleS0zMmJ5dGVzISE="
DEFAULT_APP_URL = "http://127.0.0.1:8000"
MAX_DELIVERY_CONCURRENCY = 64

DEFAULTS = {
    # Where the app lives: asset lists come from {app_url}/api/align/cases/{id}/assets ...
    "app_url": DEFAULT_APP_URL,
    # ... and events go to {callback_base_url}/api/align/events ("" keeps them undelivered).
    "callback_base_url": DEFAULT_APP_URL,
    # One whsec_ secret, or a list of them (each signs; the header carries every signature).
    "callback_secret": DEFAULT_EVENTS_SECRET,
    "inbound_token": "demo-inbound-token",
    "client_id": "demo",
    "client_secret": "demo-secret",
    "vault_api_key": "demo-vault-key",
    # Align's own progress: after an upload / revision / accept, send the events by itself.
    "auto_advance": True,
    "delay_ms": 2000,
    "token_ttl": 3600,
    # Added to every contract request; work_ms is spent inside the work (after the checks).
    "latency_ms": 0,
    "work_ms": 0,
    # Event delivery: retries with exponential backoff, bounded (about a day by default).
    "retry_base_ms": 1000,
    "retry_max_ms": 300_000,
    "retry_max_attempts": 300,
    "delivery_timeout_s": 10.0,
    # Up to this many event POSTs in flight at once (one case's events stay in order).
    "delivery_concurrency": 4,
    "duplicate_rate": 0.0,
    "shuffle": False,
    "shuffle_window_ms": 300,
    # Seeds every random choice (fault rates, duplicates, shuffling, plan stages); None: random.
    "seed": None,
    "app_timeout_s": 5.0,
    "idempotency_ttl_s": 86_400,
    # Off only to show, in a test, what the per-key lock prevents.
    "idempotency_lock": True,
}

TYPES = {
    "app_url": str,
    "callback_base_url": str,
    "callback_secret": (str, list),
    "inbound_token": str,
    "client_id": str,
    "client_secret": str,
    "vault_api_key": str,
    "auto_advance": bool,
    "delay_ms": (int, float),
    "token_ttl": (int, float),
    "latency_ms": (int, float),
    "work_ms": (int, float),
    "retry_base_ms": (int, float),
    "retry_max_ms": (int, float),
    "retry_max_attempts": int,
    "delivery_timeout_s": (int, float),
    "delivery_concurrency": int,
    "duplicate_rate": (int, float),
    "shuffle": bool,
    "shuffle_window_ms": (int, float),
    "seed": (int, type(None)),
    "app_timeout_s": (int, float),
    "idempotency_ttl_s": (int, float),
    "idempotency_lock": bool,
}


class ConfigError(ValueError):
    """A config update names an unknown key or gives a value of the wrong type."""


def validated(values):
    """Check an update; `duplicates: true` is accepted as `duplicate_rate: 1`."""
    values = dict(values)
    if "duplicates" in values:
        duplicates = values.pop("duplicates")
        if not isinstance(duplicates, bool):
            raise ConfigError("duplicates must be true or false")
        values.setdefault("duplicate_rate", 1.0 if duplicates else 0.0)
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    for key, value in values.items():
        expected = TYPES[key]
        is_bool = isinstance(value, bool)
        if (is_bool and expected is not bool) or not isinstance(value, expected):
            raise ConfigError(f"{key} has the wrong type: {value!r}")
    if not 1 <= values.get("delivery_concurrency", 1) <= MAX_DELIVERY_CONCURRENCY:
        raise ConfigError(f"delivery_concurrency must be between 1 and {MAX_DELIVERY_CONCURRENCY}")
    if not 0 <= values.get("duplicate_rate", 0) <= 1:
        raise ConfigError("duplicate_rate must be between 0 and 1")
    for key in ("app_url", "callback_base_url"):
        if key in values:
            values[key] = values[key].rstrip("/")
    return values


class Config:
    """The live configuration; `startup` is what a reset goes back to."""

    def __init__(self, **overrides):
        self.startup = {**copy.deepcopy(DEFAULTS), **validated(overrides)}
        self.values = copy.deepcopy(self.startup)

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def update(self, values):
        self.values.update(validated(values))
        return self.snapshot()

    def reset(self):
        self.values = copy.deepcopy(self.startup)

    def snapshot(self):
        return copy.deepcopy(self.values)

    @property
    def secrets(self):
        secret = self.values["callback_secret"]
        return secret if isinstance(secret, list) else [secret]
