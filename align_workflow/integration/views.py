"""The two endpoints the Align service calls: events in, and a case's STL asset list out."""

import functools
import hmac

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from align_workflow.cases.models import Case, CaseAsset

from . import events


def _error(status, code, message, details=None):
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JsonResponse(body, status=status)


def api(*methods):
    """An endpoint the Align service calls: CSRF-exempt (it authenticates by signature or
    bearer token), and every refusal in the JSON error envelope, never an HTML page:
    another method is a 405, a body over DATA_UPLOAD_MAX_MEMORY_SIZE a 413."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in methods:
                response = _error(
                    405,
                    "REQUEST.METHOD_NOT_ALLOWED",
                    f"{request.method} is not allowed here; use {', '.join(methods)}.",
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except RequestDataTooBig:
                return _error(
                    413,
                    "REQUEST.TOO_LARGE",
                    f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
                )

        return wrapped

    return decorate


@api("POST")  # authenticated by the Standard Webhooks signature
@transaction.non_atomic_requests  # the event must commit on its own before it is applied
def receive_event(request):
    """POST /api/align/events (contract section 5)."""
    try:
        receipt = events.receive(request.body, request.headers)
    except events.EventRefused as refused:
        return _error(refused.http_status, refused.code, refused.message, refused.details)
    event = receipt.event
    return JsonResponse(
        {
            "event_id": event.event_id,
            "status": event.status,
            "detail": event.status_detail,
            "duplicate": receipt.duplicate,
        }
    )


def _bearer_ok(request):
    expected = settings.ALIGN_INBOUND_TOKEN or ""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@api("GET", "HEAD")  # authenticated by the bearer token
def case_assets(request, case_id):
    """GET /api/align/cases/<caseId>/assets: the case's current STL files, for the service."""
    if not _bearer_ok(request):
        response = _error(401, "AUTH.TOKEN_INVALID", "A valid bearer token is required.")
        response["WWW-Authenticate"] = 'Bearer realm="align"'
        return response
    if not Case.objects.filter(pk=case_id).exists():
        return _error(404, "CASE.NOT_FOUND", f"No case {case_id}.")
    assets = CaseAsset.objects.filter(case_id=case_id, kind__in=CaseAsset.STL_KINDS, removed=False).order_by(
        "kind", "created", "id"
    )
    return JsonResponse(
        [
            {
                "kind": a.kind,
                "vault_id": a.vault_id,
                "external_key": a.external_key,
                "filename": a.filename,
                "sha256": a.sha256,
            }
            for a in assets
        ],
        safe=False,
    )
