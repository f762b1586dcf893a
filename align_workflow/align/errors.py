"""The Align client's typed errors, and the one place responses are mapped to them.

AlignUnavailable  timeouts, connection errors, 5xx, 429: retry later (retry_after
                  carries Retry-After when the service sent one);
AlignRejected     any other 4xx: retrying will not help, a person has to look;
AlignAuthError    our credentials were refused, or a fresh token was refused too.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


class AlignError(Exception):
    """A call to the integration service failed; keeps what the service said."""

    retryable = False

    def __init__(self, message, *, status=None, code="", request_id=None, body=None, method=None, path=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.body = body  # the raw response text, when there was a response
        self.method = method
        self.path = path

    def __str__(self):
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        text = f"{self.code or 'ERROR'} ({where}): {self.message}"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text

    def _state(self):
        return {
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "body": self.body,
            "method": self.method,
            "path": self.path,
        }

    def __reduce__(self):
        # Keyword-only arguments are lost by Exception's default pickling (Celery
        # pickles exceptions across processes).
        return (_rebuild_error, (type(self), self.message, self._state()))


class AlignUnavailable(AlignError):
    """The service could not be reached or could not answer now: try again later."""

    retryable = True

    def __init__(self, message, *, retry_after=None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def _state(self):
        return {**super()._state(), "retry_after": self.retry_after}


class AlignRejected(AlignError):
    """The service refused the request as it stands: a person has to look at it."""


class AlignAuthError(AlignError):
    """Our credentials were refused, or a freshly fetched token was refused as well."""


def _rebuild_error(cls, message, state):
    return cls(message, **state)


# --- Mapping responses to errors (the one place) -----------------------------------


def _retry_after_seconds(value):
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json_or_none(response):
    try:
        return response.json()
    except ValueError:
        return None


def _request_id(response, body):
    if isinstance(body, dict) and body.get("request_id"):
        return str(body["request_id"])
    return response.headers.get("X-Request-Id") or response.headers.get("Request-Id")


def error_from_response(response, method, path):
    """Turn a non-200 response into the AlignError subclass its status calls for."""
    status = response.status_code
    body = _json_or_none(response)
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict):
        code = str(envelope.get("code") or f"HTTP_{status}")
        message = str(envelope.get("message") or response.reason or "")
    else:
        code = f"HTTP_{status}"
        message = f"HTTP {status} {response.reason or ''}".strip() + (
            "" if body is not None else " (the body was not JSON)"
        )
    evidence = dict(
        status=status,
        code=code,
        request_id=_request_id(response, body),
        body=response.text,
        method=method,
        path=path,
    )
    if status == 401:
        return AlignAuthError(message, **evidence)
    if status == 429 or status >= 500:
        return AlignUnavailable(
            message, retry_after=_retry_after_seconds(response.headers.get("Retry-After")), **evidence
        )
    if 400 <= status < 500:
        return AlignRejected(message, **evidence)
    # 1xx/3xx/other 2xx: the contract promises 200 for success and nothing else.
    return AlignUnavailable(f"unexpected HTTP {status}", **evidence)
