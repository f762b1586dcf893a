"""The portals' error pages with DEBUG on too, and a 405 page instead of an empty answer.

With DEBUG off Django calls the handlers in align_workflow/urls.py; with DEBUG on it would
show its debug 404 (with every URL pattern) and 403 pages, which the demo and development
servers must not show either: a provider opening another provider's case sees the same
"page not found" everywhere. A 500 keeps Django's debug page with DEBUG on (the traceback
is what a developer needs) and is the styled page with DEBUG off.

Under /api/ the same handlers answer in the APIs' JSON error envelope; the APIs' own
405s and other refusals are left alone."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.urls import Resolver404, resolve

from .views import errors


class ErrorPagesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.DEBUG:
            try:
                resolve(request.path_info)
            except Resolver404:
                # CommonMiddleware (outside this one) still redirects a missing slash.
                return errors.page_not_found(request)
        response = self.get_response(request)
        if not errors.is_api(request) and isinstance(response, HttpResponseNotAllowed) and not response.content:
            return errors.method_not_allowed(request, response["Allow"])
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, Http404):
            return errors.page_not_found(request, exception)
        if isinstance(exception, PermissionDenied):
            return errors.permission_denied(request, exception)
        return None
