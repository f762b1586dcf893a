"""A request-body limit of its own for one view (the approval, whose acceptance
screenshot of a high-density screen is larger than Django's DATA_UPLOAD_MAX_MEMORY_SIZE
allows every other request).

    @require_POST
    @csrf_exempt                   # the token is checked by csrf_protect below, once the body is read
    @provider_required
    @body_limit(screenshot_body_limit, too_big=...)
    @csrf_protect
    def approve(request, pk): ...

`body_limit` reads the body itself, up to the view's limit, before anything parses it;
Django then finds it already read and does not apply the global limit again. A body over
the view's limit is not read at all: `too_big(request, size, limit, *args, **kwargs)`
answers instead (a message on the page, never a bare 400). A multipart body is parsed
by Django's multipart parser, which keeps the global limit per field; the approve form
posts application/x-www-form-urlencoded.
"""

from functools import wraps
from io import BytesIO

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http.request import UnreadablePostError

# Form encoding writes base64's "+" and "/" as "%2B" and "%2F" (about 1.07 times the text
# for a JPEG), plus the CSRF token and the field name.
FORM_ENCODING_FACTOR = 1.25
FORM_OVERHEAD_BYTES = 64 * 1024


def screenshot_body_limit() -> int:
    """The approve view's request-body limit, from ALIGN_SCREENSHOT_MAX_BYTES."""
    return int(settings.ALIGN_SCREENSHOT_MAX_BYTES * FORM_ENCODING_FACTOR) + FORM_OVERHEAD_BYTES


def body_limit(limit, *, too_big):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            allowed = limit()
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > allowed:
                return too_big(request, declared, allowed, *args, **kwargs)
            if not hasattr(request, "_body") and not request._read_started:
                try:
                    body = request.read(allowed + 1)
                except OSError as exc:
                    raise UnreadablePostError(*exc.args) from exc
                if len(body) > allowed:
                    return too_big(request, len(body), allowed, *args, **kwargs)
                # What HttpRequest.body does after its own (global) check.
                request._body = body
                request._stream = BytesIO(body)
            try:
                return view(request, *args, **kwargs)
            except RequestDataTooBig:  # a multipart body: Django's per-field limit applies
                return too_big(request, declared, settings.DATA_UPLOAD_MAX_MEMORY_SIZE, *args, **kwargs)

        return wrapped

    return decorator
