"""What travels on the wire: parsed requests, responses, and the error envelope.

Request bodies may be JSON or form-encoded (contract section 1); form fields may nest
one level as `address[line1]` or `address.line1`, or carry a JSON object as a string.
Every answer is JSON, errors in the envelope
`{"error": {"code", "message", "details"}, "request_id"}`.
"""

import base64
import binascii
import contextlib
import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

NESTED_FORM_KEY = re.compile(r"^(\w+)(?:\[(\w+)\]|\.(\w+))$")


def new_request_id():
    return "req_" + uuid.uuid4().hex[:20]


class ApiError(Exception):
    """An answer in the error envelope. Raised anywhere in a route; the server renders it."""

    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def missing_fields(fields):
    return ApiError(400, "REQUEST.MISSING_FIELD", f"missing or blank: {', '.join(fields)}", {"fields": list(fields)})


def invalid_field(name, message):
    return ApiError(400, "REQUEST.INVALID_FIELD", message, {"field": name})


@dataclass
class Response:
    status: int = 200
    body: object = None  # a dict / list (sent as JSON) or bytes (sent as is)
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self):
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def error_response(error, request_id):
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}, "request_id": request_id}
    return Response(error.status, body, dict(error.headers))


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-cased names
    raw_body: bytes
    client_ip: str
    request_id: str = field(default_factory=new_request_id)
    path_args: dict = field(default_factory=dict)
    route: str = ""  # the route's template, e.g. "PUT /orders/{caseId}/accept"
    _params: object = None

    @property
    def content_type(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def params(self):
        """The body as a dict, parsed once; 400 REQUEST.MALFORMED when it cannot be."""
        if self._params is None:
            self._params = parse_body(self.raw_body, self.content_type)
        return self._params


def parse_body(raw, content_type):
    if not raw.strip():
        return {}
    if content_type == "application/x-www-form-urlencoded":
        return parse_form(raw)
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if content_type:
                raise ApiError(400, "REQUEST.MALFORMED", "the body is not valid JSON") from None
            return parse_form(raw)
        if not isinstance(value, dict):
            raise ApiError(400, "REQUEST.MALFORMED", "the body must be a JSON object")
        return value
    raise ApiError(
        400,
        "REQUEST.MALFORMED",
        f"unsupported content type {content_type!r}",
        {"accepted": ["application/json", "application/x-www-form-urlencoded"]},
    )


def parse_form(raw):
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "REQUEST.MALFORMED", "the body is not valid form data") from None
    params = {}
    for key, value in pairs:
        nested = NESTED_FORM_KEY.match(key)
        if nested:
            outer, inner = nested.group(1), nested.group(2) or nested.group(3)
            params.setdefault(outer, {})
            if isinstance(params[outer], dict):
                params[outer][inner] = value
        else:
            params[key] = value
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("{"):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


def fingerprint(method, path, params):
    """What makes two requests "the same parameters" for an Idempotency-Key.

    Values are compared as text so that a form field "42" equals the JSON number 42.
    """

    def as_text(value):
        if isinstance(value, dict):
            return {k: as_text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [as_text(v) for v in value]
        return "" if value is None else str(value)

    return json.dumps([method, path, as_text(params)], sort_keys=True)


def require(params, names):
    """The named fields, all present and non-blank, or 400 REQUEST.MISSING_FIELD naming them."""
    missing = [n for n in names if params.get(n) is None or str(params.get(n)).strip() == ""]
    if missing:
        raise missing_fields(missing)
    return [params[n] for n in names]


def as_case_id(value, name="caseId"):
    try:
        case_id = int(str(value).strip())
    except ValueError:
        raise invalid_field(name, f"{name} must be an integer") from None
    if case_id <= 0:
        raise invalid_field(name, f"{name} must be positive")
    return case_id


def basic_credentials(req):
    """(user, password) from an `Authorization: Basic` header, or None."""
    scheme, _, value = req.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password
