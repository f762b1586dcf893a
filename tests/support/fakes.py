"""A fake Align client for unit tests: the client's interface, in memory.

It keeps what the real service keeps (one answer per idempotency key, one patient
per MRN, one IAS order per case), counts the work really done (`effects`, like the
simulator's), and fails on demand:

    fake.fail("create_order", unavailable(503))     # the next create_order raises this
    fake.fail("create_patient", AFTER_COMMIT)        # does the work, then times out
"""

import threading
from collections import Counter, defaultdict

from django.db import connection

from align_workflow.align.client import (
    AlignAuthError,
    AlignRejected,
    AlignUnavailable,
    AssetUpload,
    ClinCheckResult,
    CreatedOrder,
    CreatedPatient,
)
from align_workflow.workflow.models import OutboundAttempt

AFTER_COMMIT = "after_commit"
EFFECT_OF = {
    "create_patient": "patients",
    "create_order": "orders",
    "upload_assets": "uploads",
    "accept_clincheck": "accepts",
    "request_modification": "modifies",
}


def unavailable(status=503, code="ALIGN.UNAVAILABLE", message="Align is unavailable", retry_after=None):
    return AlignUnavailable(message, status=status, code=code, request_id="req-fake", retry_after=retry_after)


def timeout():
    return AlignUnavailable("no answer within 0.1s read", code="TIMEOUT")


def rejected(status=422, code="PATIENT.INVALID", message="gender must be M or F"):
    return AlignRejected(message, status=status, code=code, request_id="req-fake")


def auth_refused():
    return AlignAuthError("invalid client", status=401, code="AUTH.INVALID_CLIENT", request_id="req-fake")


class FakeAlign:
    def __init__(self):
        self.lock = threading.Lock()
        self.effects = Counter()
        self.answers = {}  # idempotency key -> (params, answer)
        self.failures = defaultdict(list)
        self.calls = []  # (method, kwargs, seen) in order
        self.patients = {}  # mrn -> pId
        self.orders = set()  # case ids with an IAS order

    def fail(self, method, *failures):
        self.failures[method].extend(failures)

    def sent(self, method):
        return [kwargs for m, kwargs, _ in self.calls if m == method]

    # --- the client's interface ---------------------------------------------------------

    def create_patient(self, **kw):
        return self._handle("create_patient", kw, self._create_patient)

    def create_order(self, **kw):
        return self._handle("create_order", kw, self._create_order)

    def upload_assets(self, **kw):
        return self._handle("upload_assets", kw, lambda kw: AssetUpload(kw["case_id"], True, 2))

    def accept_clincheck(self, **kw):
        return self._handle(
            "accept_clincheck", kw, lambda kw: ClinCheckResult(kw["case_id"], "APPROVED", f"SO-{kw['case_id']}")
        )

    def request_modification(self, **kw):
        return self._handle(
            "request_modification", kw, lambda kw: ClinCheckResult(kw["case_id"], "MODIFICATION_REQUESTED", None)
        )

    # --- the service's behaviour --------------------------------------------------------

    def _create_patient(self, kw):
        created = kw["mrn"] not in self.patients
        pid = self.patients.setdefault(kw["mrn"], f"P{len(self.patients) + 1:07d}")
        if not created:
            self.effects["patients"] -= 1  # a repeat per MRN is not new work
        return CreatedPatient(pid, kw["mrn"], created)

    def _create_order(self, kw):
        if kw["case_id"] in self.orders:
            raise rejected(409, "ORDER.EXISTS", "an IAS order already exists for this case")
        self.orders.add(kw["case_id"])
        return CreatedOrder(kw["case_id"], kw["p_id"], kw["order_type"], "RECEIVED")

    def _handle(self, method, kw, work):
        seen = {
            "in_transaction": connection.in_atomic_block,
            "attempt": OutboundAttempt.objects.filter(idempotency_key=kw.get("idempotency_key"))
            .order_by("-id")
            .values("status", "attempt")
            .first(),
        }
        with self.lock:
            self.calls.append((method, dict(kw), seen))
            planned = self.failures[method].pop(0) if self.failures[method] else None
            if isinstance(planned, Exception):
                raise planned
            key = kw.get("idempotency_key")
            params = {k: v for k, v in kw.items() if k != "idempotency_key"}
            if key is not None and key in self.answers:
                stored_params, answer = self.answers[key]
                if stored_params != params:
                    raise rejected(422, "IDEMPOTENCY.MISMATCH", "the key was used with other parameters")
                if isinstance(answer, Exception):
                    raise answer
                return answer
            try:
                answer = work(kw)
            except AlignRejected as exc:
                answer = exc
            if not isinstance(answer, Exception):
                self.effects[EFFECT_OF[method]] += 1
            if key is not None:
                self.answers[key] = (params, answer)
            if isinstance(answer, Exception):
                raise answer
            if planned == AFTER_COMMIT:
                raise timeout()
            return answer
