"""CSV downloads for staff: the case list as filtered on the page, and a case's history.

Same access as the pages (staff only: a provider gets 403, anybody signed out the login
page). Filenames carry no patient details; the responses are not cached."""

import re

from django.http import Http404, HttpResponseBadRequest, HttpResponseNotFound, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from align_workflow.cases.models import Case

from .. import exports, selectors
from ..access import staff_required
from ..forms import CaseFilterForm, CaseSearchForm
from .staff import SEARCHES_KEY


def _csv(lines, filename):
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@never_cache
@staff_required
def case_list_csv(request):
    """/staff/export.csv?<the list's address>: the cases the list shows, every page of them.
    A search is given by its opaque id (`s`), as on the list; other filters as on the list."""
    if "s" in request.GET:
        saved = request.session.get(SEARCHES_KEY, {}).get(request.GET["s"])
        if saved is None:
            return HttpResponseNotFound(
                "That search is no longer available (searches are kept for your session only): search again.",
                content_type="text/plain; charset=utf-8",
            )
        form = CaseSearchForm(saved)
    else:
        form = CaseFilterForm(request.GET)
    if not form.is_valid():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        return HttpResponseBadRequest(
            "The filters were not applied and nothing was exported: " + " ".join(errors),
            content_type="text/plain; charset=utf-8",
        )
    filters = form.cleaned_data
    cases = selectors.staff_cases_filtered(filters)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return _csv(exports.csv_lines(exports.LIST_HEADER, exports.case_list_rows(cases)), f"cases-{stamp}.csv")


@require_GET
@never_cache
@staff_required
def case_history_csv(request, pk):
    """/staff/cases/<pk>/history.csv: states, notes, calls to Align and events, oldest first."""
    case = Case.objects.filter(pk=pk).first()
    if case is None:
        raise Http404("No such case.")
    number = re.sub(r"[^A-Za-z0-9_-]", "_", case.case_number)
    return _csv(
        exports.csv_lines(exports.HISTORY_HEADER, exports.case_history_rows(case)), f"case-{number}-history.csv"
    )
