"""The error pages people see: 403, 404, 405 and 500 in the portals' look, each saying
what to do next, never Django's debug pages and never a patient detail or a URL pattern.

Django calls the 403, 404 and 500 handlers (align_workflow/urls.py) with DEBUG off;
middleware.ErrorPagesMiddleware renders the same pages with DEBUG on and turns the empty
405 of `require_POST` into the 405 page. The 500 page is rendered without the request:
it must work when the database or the session is what failed. Under /api/ the answers
are the APIs' JSON error envelope instead."""

from django.http import HttpResponseServerError, JsonResponse
from django.template import loader
from django.template.response import TemplateResponse

from ..intent import case_page_for

API_PREFIX = "/api/"


def is_api(request):
    return request.path_info.startswith(API_PREFIX)


def _api_error(status, code, message):
    """The APIs' JSON error envelope (as align_workflow/integration/views.py answers)."""
    return JsonResponse({"error": {"code": code, "message": message, "details": {}}}, status=status)


def _page(request, template, status, **context):
    return TemplateResponse(request, f"portals/errors/{template}", context, status=status).render()


def page_not_found(request, exception=None):
    if is_api(request):
        return _api_error(404, "NOT_FOUND", "There is no endpoint at this address.")
    return _page(request, "404.html", 404)


def permission_denied(request, exception=None):
    if is_api(request):
        return _api_error(403, "FORBIDDEN", "Not allowed.")
    return _page(request, "403.html", 403)


def csrf_failure(request, reason=""):
    """A form sent from a page that is out of date (signed in again in another tab, or a
    page kept open for days): nothing was done; back to where it came from."""
    if is_api(request):
        return _api_error(403, "FORBIDDEN", "Not allowed.")
    return _page(request, "403.html", 403, stale_form=True, case_url=case_page_for(request))


def method_not_allowed(request, allowed):
    """An action opened as a page (a bookmark, a reload, a typed address): nothing was done."""
    response = _page(request, "405.html", 405, case_url=case_page_for(request))
    response["Allow"] = allowed
    return response


def server_error(request):
    """No request context: no database query, no session, no user."""
    if is_api(request):
        return _api_error(500, "SERVER_ERROR", "The server failed; nothing is known to have been done.")
    return HttpResponseServerError(loader.get_template("portals/errors/500.html").render())
