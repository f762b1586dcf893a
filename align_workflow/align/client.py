"""The Align client: how this app talks to the Align integration service.

The service's HTTP contract is described in docs/align-contract.md;
this module is the only place that speaks it. Use it like this:

    from align_workflow.align.client import Align, AlignUnavailable, AlignRejected

    align = Align()                                  # URL, credentials, timeouts from settings
    patient = align.create_patient(case_id=case.pk, mrn=..., first_name=..., ...,
                                   idempotency_key=f"case-{case.pk}-create_patient")
    patient.p_id                                     # typed results, never raw dicts

What it guarantees:

- **One token for every process.** The bearer token lives in Django's cache (Redis via
  django-redis in production) for `expires_in - 60` seconds. Fetching it happens under
  a lock (a Redis lock when the cache offers one, a process-local lock otherwise) with
  a second look at the cache once the lock is held, so a hundred workers starting at
  once make one token request. On a 401 the cached token is dropped only if it is still
  the one that was refused (someone else may already have replaced it), a new one is
  fetched under the same lock, and the request is sent once more; a second 401 raises
  AlignAuthError.
- **Every request has a (connect, read) timeout**: ALIGN_CONNECT_TIMEOUT and
  ALIGN_READ_TIMEOUT.
- **Connections are kept alive**: each thread sends its calls through one session of
  its own (align/http.py, shared with the HTTP vault), whichever Align() object
  makes them; no cookies are kept. `session=` replaces it (tests).
- **Errors are typed and keep the evidence** (HTTP status, the envelope's error code and
  message, the request id, the raw body), and are mapped from responses in one place
  (`errors.error_from_response`):
    AlignUnavailable  timeouts, connection errors, 5xx, 429: retry later (retry_after
                      carries Retry-After when the service sent one);
    AlignRejected     any other 4xx: retrying will not help, a person has to look;
    AlignAuthError    our credentials were refused, or a fresh token was refused too.
- **Every mutating call sends the caller's `Idempotency-Key`**, so a retry of a call
  whose answer was lost is answered from the service's memory instead of done twice.
- **Logs carry no patient details**: method, path, status, latency, request id and case
  id only; never names, dates of birth, emails, phones, addresses or error messages
  (the service may echo the request body in them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import requests
from django.conf import settings
from django.core.cache import cache as default_cache

from .errors import (
    AlignAuthError,
    AlignError,
    AlignRejected,
    AlignUnavailable,
    _json_or_none,
    _request_id,
    error_from_response,
)
from .http import thread_session
from .results import AssetUpload, CaseView, ClinCheckResult, CreatedOrder, CreatedPatient, MissingField, field_of
from .tokens import SharedToken

logger = logging.getLogger(__name__)

__all__ = [
    "Align",
    "AlignError",
    "AlignUnavailable",
    "AlignRejected",
    "AlignAuthError",
    "CreatedPatient",
    "CreatedOrder",
    "AssetUpload",
    "ClinCheckResult",
    "CaseView",
]


class Align(SharedToken):
    """The Align integration service, one method per call of the contract."""

    def __init__(
        self,
        base_url=None,
        client_id=None,
        client_secret=None,
        *,
        connect_timeout=None,
        read_timeout=None,
        cache=None,
        session=None,
    ):
        self.base_url = (base_url or settings.ALIGN_SERVICE_URL).rstrip("/")
        self.client_id = client_id if client_id is not None else settings.ALIGN_CLIENT_ID
        self.client_secret = client_secret if client_secret is not None else settings.ALIGN_CLIENT_SECRET
        self.connect_timeout = float(connect_timeout if connect_timeout is not None else settings.ALIGN_CONNECT_TIMEOUT)
        self.read_timeout = float(read_timeout if read_timeout is not None else settings.ALIGN_READ_TIMEOUT)
        self.cache = cache if cache is not None else default_cache
        # An injected session (tests) is used as given; otherwise each call uses its
        # thread's kept-alive session (align/http.py), looked up when the call is
        # made, so one client object may be shared between threads.
        self._session = session
        # One token per service and client id: a second Align elsewhere shares it.
        scope = hashlib.sha256(f"{self.base_url}|{self.client_id}".encode()).hexdigest()[:16]
        self.token_cache_key = f"align:token:{scope}"
        self.token_lock_key = f"align:token-lock:{scope}"

    @property
    def timeout(self):
        return (self.connect_timeout, self.read_timeout)

    @property
    def session(self):
        return self._session if self._session is not None else thread_session()

    # --- the contract's calls -------------------------------------------------------

    def create_patient(
        self,
        *,
        case_id,
        mrn,
        first_name,
        last_name,
        date_of_birth,
        gender,
        email,
        phone,
        address,
        idempotency_key,
    ) -> CreatedPatient:
        """POST /patients: register the patient with Align (idempotent per MRN)."""
        if hasattr(date_of_birth, "isoformat"):
            date_of_birth = date_of_birth.isoformat()
        address = dict(address or {})
        body = self._call(
            "POST",
            "/patients",
            case_id=case_id,
            idempotency_key=idempotency_key,
            json_body={
                "caseId": case_id,
                "mrn": mrn,
                "firstName": first_name,
                "lastName": last_name,
                "dateOfBirth": date_of_birth,
                "gender": gender,
                "email": email,
                "phone": phone,
                "address": {k: address.get(k, "") for k in ("line1", "line2", "city", "state", "zip", "country")},
            },
        )
        return self._parse(
            body,
            "POST",
            "/patients",
            lambda b: CreatedPatient(
                p_id=str(field_of(b, "pId")), mrn=str(field_of(b, "mrn")), created=bool(field_of(b, "created"))
            ),
        )

    def create_order(
        self, *, case_id, p_id, mrn, treatment_option, chief_concern, idempotency_key, order_type="IAS"
    ) -> CreatedOrder:
        """POST /orders: open the primary order for the case."""
        body = self._call(
            "POST",
            "/orders",
            case_id=case_id,
            idempotency_key=idempotency_key,
            json_body={
                "caseId": case_id,
                "pId": p_id,
                "mrn": mrn,
                "orderType": order_type,
                "treatmentOption": treatment_option,
                "chiefConcern": chief_concern,
            },
        )
        return self._parse(
            body,
            "POST",
            "/orders",
            lambda b: CreatedOrder(
                case_id=int(field_of(b, "caseId")),
                p_id=str(field_of(b, "pId")),
                order_type=str(field_of(b, "orderType")),
                status=str(field_of(b, "status")),
            ),
        )

    def upload_assets(self, *, case_id, p_id, mrn, idempotency_key) -> AssetUpload:
        """POST /assets/upload: the service fetches the case's STL list from us."""
        body = self._call(
            "POST",
            "/assets/upload",
            case_id=case_id,
            idempotency_key=idempotency_key,
            json_body={"pId": p_id, "mrn": mrn, "caseId": case_id},
        )
        return self._parse(
            body,
            "POST",
            "/assets/upload",
            lambda b: AssetUpload(
                case_id=int(field_of(b, "caseId")),
                accepted=bool(field_of(b, "accepted")),
                asset_count=int(field_of(b, "assetCount")),
            ),
        )

    def accept_clincheck(self, *, case_id, mrn, vault_id, external_key, idempotency_key) -> ClinCheckResult:
        """PUT /orders/{caseId}/accept: the provider approved the plan."""
        path = f"/orders/{int(case_id)}/accept"
        body = self._call(
            "PUT",
            path,
            case_id=case_id,
            idempotency_key=idempotency_key,
            json_body={"caseId": case_id, "mrn": mrn, "vault_id": vault_id, "external_key": external_key},
        )
        return self._parse(body, "PUT", path, self._clincheck_result)

    def request_modification(self, *, case_id, mrn, comments, idempotency_key) -> ClinCheckResult:
        """PUT /orders/{caseId}/modify: the provider asked for a revised plan."""
        path = f"/orders/{int(case_id)}/modify"
        body = self._call(
            "PUT",
            path,
            case_id=case_id,
            idempotency_key=idempotency_key,
            json_body={"caseId": case_id, "mrn": mrn, "comments": comments},
        )
        return self._parse(body, "PUT", path, self._clincheck_result)

    def get_case(self, case_id) -> CaseView:
        """GET /orders/{caseId}: the service's view of the case."""
        path = f"/orders/{int(case_id)}"
        body = self._call("GET", path, case_id=case_id)

        def parse(b):
            return CaseView(
                case_id=int(field_of(b, "caseId", default=case_id)),
                p_id=field_of(b, "pId", default=None),
                status=field_of(b, "status", default=None),
                orders=list(field_of(b, "orders", default=None) or []),
                sales_orders=list(field_of(b, "salesOrders", "sales_orders", default=None) or []),
                plans=list(field_of(b, "plans", "treatmentPlans", default=None) or []),
            )

        return self._parse(body, "GET", path, parse)

    @staticmethod
    def _clincheck_result(b):
        return ClinCheckResult(
            case_id=int(field_of(b, "caseId")),
            status=str(field_of(b, "status")),
            sales_order_number=field_of(b, "salesOrderNumber", default=None),
        )

    @staticmethod
    def _parse(body, method, path, build):
        try:
            if not isinstance(body, dict):
                raise MissingField("a JSON object")
            return build(body)
        except (MissingField, TypeError, ValueError) as exc:
            raise AlignUnavailable(
                f"the service's answer could not be read (missing or bad {exc})",
                status=200,
                code="INVALID_RESPONSE",
                request_id=body.get("request_id") if isinstance(body, dict) else None,
                body=json.dumps(body) if body is not None else None,
                method=method,
                path=path,
            ) from None

    # --- requests -------------------------------------------------------------------

    def _call(self, method, path, *, case_id=None, json_body=None, idempotency_key=None):
        """Send an authorised request; on a 401 refresh the token once and resend."""
        headers = {"Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = str(idempotency_key)
        token = self._token()
        try:
            return self._send(method, path, case_id=case_id, json_body=json_body, headers=headers, token=token)
        except AlignAuthError:
            token = self._replace_refused_token(token)
        return self._send(method, path, case_id=case_id, json_body=json_body, headers=headers, token=token)

    def _send(self, method, path, *, case_id=None, json_body=None, headers=None, token=None):
        """One HTTP request with timeouts; returns the parsed body of a 200 or raises."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.base_url + path, json=json_body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            code, reason = _unavailable(exc, self.connect_timeout, self.read_timeout)
            self._log(logging.WARNING, method, path, None, started, None, case_id, code)
            raise AlignUnavailable(f"{reason} ({type(exc).__name__})", code=code, method=method, path=path) from exc

        if response.status_code == 200:
            body = _json_or_none(response)
            self._log(logging.INFO, method, path, 200, started, _request_id(response, body), case_id, None)
            if body is None:
                raise AlignUnavailable(
                    "the service answered 200 with a body that is not JSON",
                    status=200,
                    code="INVALID_RESPONSE",
                    request_id=_request_id(response, None),
                    body=response.text,
                    method=method,
                    path=path,
                )
            return body
        error = error_from_response(response, method, path)
        self._log(logging.WARNING, method, path, response.status_code, started, error.request_id, case_id, error.code)
        raise error

    @staticmethod
    def _log(level, method, path, status, started, request_id, case_id, error_code):
        # Only identifiers and numbers: bodies and error messages may carry patient details.
        latency_ms = round((time.monotonic() - started) * 1000)
        logger.log(
            level,
            "align %s %s status=%s latency_ms=%d request_id=%s case_id=%s%s",
            method,
            path,
            status if status is not None else "-",
            latency_ms,
            request_id or "-",
            case_id if case_id is not None else "-",
            f" error={error_code}" if error_code else "",
            extra={
                "align_method": method,
                "align_path": path,
                "align_status": status,
                "align_latency_ms": latency_ms,
                "align_request_id": request_id,
                "align_case_id": case_id,
                "align_error_code": error_code,
            },
        )


def _unavailable(exc, connect_timeout, read_timeout) -> tuple[str, str]:
    """The code and the reason of a request that got no answer (Timeout is checked first:
    requests' ConnectTimeout is both a Timeout and a ConnectionError)."""
    if isinstance(exc, requests.Timeout):
        return "TIMEOUT", f"no answer within {connect_timeout}s connect / {read_timeout}s read"
    if isinstance(exc, requests.ConnectionError):
        return "CONNECTION", "could not connect to the integration service"
    return "REQUEST_FAILED", "the request failed"
