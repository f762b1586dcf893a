"""Align's side of the world, in memory: patients, cases, sales orders, plans, tokens, blobs.

All of it sits behind one re-entrant lock (`Store.lock`); a piece of work checks and
changes the state inside one `with store.lock:` block, so concurrent requests can
neither lose nor double an effect. `effects` counts how many times each piece of work
was really done: an idempotent replay is not an effect.
"""

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

EFFECT_NAMES = ("patients", "orders", "uploads", "accepts", "modifies", "tokens", "blobs")
REQUEST_LOG_LIMIT = 10_000


def utc_now_iso():
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Patient:
    p_id: str
    mrn: str
    first_name: str
    last_name: str
    date_of_birth: str
    gender: str
    email: str
    phone: str
    address: dict
    case_ids: list
    created_at: str = field(default_factory=utc_now_iso)

    def to_json(self):
        return {
            "pId": self.p_id,
            "mrn": self.mrn,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "dateOfBirth": self.date_of_birth,
            "gender": self.gender,
            "email": self.email,
            "phone": self.phone,
            "address": self.address,
            "caseIds": list(self.case_ids),
            "createdAt": self.created_at,
        }


@dataclass
class Plan:
    plan_id: str
    case_id: int
    version: int
    revision_of: str | None
    sales_order_number: str | None
    stages: dict
    notes: str
    preview: dict
    status: str = "PENDING"  # PENDING, MODIFICATION_REQUESTED, APPROVED
    attachments: bool = False
    ipr: bool = False
    comments: str | None = None
    screenshot: dict | None = None
    submitted_at: str = field(default_factory=utc_now_iso)

    def to_json(self):
        return {
            "treatmentPlanId": self.plan_id,
            "caseId": self.case_id,
            "version": self.version,
            "revisionOf": self.revision_of,
            "salesOrderNumber": self.sales_order_number,
            "stages": dict(self.stages),
            "attachments": self.attachments,
            "ipr": self.ipr,
            "notes": self.notes,
            "status": self.status,
            "comments": self.comments,
            "screenshot": self.screenshot,
            "submittedAt": self.submitted_at,
            "assets": [dict(self.preview)],
        }


@dataclass
class Case:
    """One case at Align: its IAS order, sales orders, plans and Align's status."""

    case_id: int
    p_id: str
    mrn: str
    order_type: str
    treatment_option: str
    chief_concern: str
    status: str = "RECEIVED"
    created_at: str = field(default_factory=utc_now_iso)
    assets: list = field(default_factory=list)
    uploads: int = 0
    sales_orders: list = field(default_factory=list)
    plans: list = field(default_factory=list)
    status_history: list = field(default_factory=list)

    def move_to(self, status):
        """Align's status changes; the history keeps every step."""
        previous, self.status = self.status, status
        self.status_history.append({"status": status, "previousStatus": previous, "at": utc_now_iso()})
        return previous

    @property
    def pending_plan(self):
        if self.plans and self.plans[-1].status == "PENDING":
            return self.plans[-1]
        return None

    def latest_sales_order(self, kind="PRIMARY"):
        of_kind = [so for so in self.sales_orders if so["orderKind"] == kind]
        return of_kind[-1] if of_kind else None

    @property
    def primary_sales_order_number(self):
        primary = self.latest_sales_order("PRIMARY")
        return primary["salesOrderNumber"] if primary else None

    def to_json(self):
        return {
            "caseId": self.case_id,
            "pId": self.p_id,
            "mrn": self.mrn,
            "status": self.status,
            "orders": [
                {
                    "orderType": self.order_type,
                    "treatmentOption": self.treatment_option,
                    "chiefConcern": self.chief_concern,
                    "status": self.status,
                    "createdAt": self.created_at,
                }
            ],
            "salesOrders": [dict(so) for so in self.sales_orders],
            "plans": [plan.to_json() for plan in self.plans],
            "assets": [dict(a) for a in self.assets],
            "statusHistory": [dict(h) for h in self.status_history],
        }


@dataclass
class Token:
    value: str
    expires_at: float
    revoked: bool = False


@dataclass
class Blob:
    vault_id: str
    blob_id: str
    data: bytes
    content_type: str
    filename: str
    created_at: str = field(default_factory=utc_now_iso)

    def to_json(self):
        return {
            "vault_id": self.vault_id,
            "blob_id": self.blob_id,
            "size": len(self.data),
            "content_type": self.content_type,
            "filename": self.filename,
            "created_at": self.created_at,
        }


class Store:
    """Everything the simulator remembers. Hold `lock` to read or change anything."""

    def __init__(self):
        self.lock = threading.RLock()
        # Numbers keep counting across resets, so ids never repeat within one process;
        # the random start keeps a restarted simulator from reusing a previous run's ids.
        start = random.SystemRandom().randrange(1000, 5_000_000)
        self._counters = {"patient": start, "sales_order": start * 10, "plan": start}
        self.generation = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.generation += 1
            self.patients = {}  # mrn -> Patient
            self.cases = {}  # case id -> Case
            self.tokens = {}  # value -> Token
            self.blobs = {}  # (vault id, blob id) -> Blob
            self.events = []  # every event sent, with its delivery record
            self.request_log = []
            self.adopted = {}  # case id -> the description it was adopted with (adopt.py)
            self.effects = dict.fromkeys(EFFECT_NAMES, 0)

    def next_id(self, kind):
        with self.lock:
            self._counters[kind] += 1
            return self._counters[kind]

    def reserve_id(self, kind, number):
        """`next_id(kind)` will answer more than `number` (an id adopted from outside is never reissued)."""
        with self.lock:
            self._counters[kind] = max(self._counters[kind], number)

    def count_effect(self, name):
        with self.lock:
            self.effects[name] += 1

    def patient_by_p_id(self, p_id):
        with self.lock:
            return next((p for p in self.patients.values() if p.p_id == p_id), None)

    def issue_token(self, ttl):
        with self.lock:
            token = Token("tok_" + secrets.token_urlsafe(24), time.time() + ttl)
            self.tokens[token.value] = token
            self.effects["tokens"] += 1
            return token

    def log_request(self, entry):
        with self.lock:
            entry["id"] = len(self.request_log) + 1
            self.request_log.append(entry)
            del self.request_log[:-REQUEST_LOG_LIMIT]

    def snapshot(self):
        """The `/_sim/state` view."""
        with self.lock:
            now = time.time()
            return {
                "patients": [p.to_json() for p in self.patients.values()],
                "orders": [c.to_json() for c in self.cases.values()],
                "plans": [plan.to_json() for c in self.cases.values() for plan in c.plans],
                "effects": dict(self.effects),
                "tokens": {
                    "active": sum(1 for t in self.tokens.values() if not t.revoked and t.expires_at > now),
                    "issued": len(self.tokens),
                },
                "blobs": [b.to_json() for b in self.blobs.values()],
                "events": [dict(e, deliveries=list(e["deliveries"])) for e in self.events],
                "adopted": sorted(self.adopted),
            }
