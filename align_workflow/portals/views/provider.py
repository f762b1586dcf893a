"""The provider portal: the provider's own cases and the plan review page.

Another provider's case is a 404 everywhere here, not a 403: its existence is not
shown."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from align_workflow.cases.models import Case
from align_workflow.workflow import busy
from align_workflow.workflow.engine import available_triggers
from align_workflow.workflow.outbound import fire_step
from states import align_case as wf
from states.next_steps import next_step

from .. import selectors
from ..access import provider_required
from ..forms import ApproveForm, ProviderFilterForm, ProviderSearchForm, RevisionForm
from ..uploads import body_limit, screenshot_body_limit
from . import queues
from .common import form_errors, perform
from .panel import screenshot_response, timeline_context

# States in which the provider's approval of the current plan stands.
APPROVED_STATES = (wf.PROVIDER_APPROVED, wf.ACCEPTED, wf.SHIPPING)


def _own_case_or_404(request, pk):
    try:
        return selectors.provider_case(request.user, pk)
    except Case.DoesNotExist:
        raise Http404("No such case.") from None


PAGE_SIZE = 25
# The "plans waiting for you" section shows this many (the longest waiting first) and
# links to all of them when there are more.
WAITING_SHOWN = 10
# One provider's cases are few enough to count exactly up to here (more than a working
# practice has); past it the pager says "more than N", as the staff search does.
COUNT_CAP = 1000
SEARCHES_KEY = "provider_searches"


@require_http_methods(["GET", "POST"])
@provider_required
def case_list(request):
    """The provider's own cases, a page at a time: the plans waiting for their review
    first, then every case, searchable (POSTed, as on the staff list, so patient names
    never appear in an address) and sortable."""
    form, status, redirected = queues.read_filters(
        request,
        key=SEARCHES_KEY,
        search_form=ProviderSearchForm,
        filter_form=ProviderFilterForm,
        address=reverse("portals:provider_cases"),
    )
    if redirected is not None:
        return redirected
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    sort = filters.get("sort", "")
    filtered = bool(filters.get("q") or filters.get("state"))
    if status == 400:
        cases = Case.objects.none()
    else:
        cases = selectors.provider_cases(
            request.user, q=filters.get("q", ""), state=filters.get("state", ""), sort=sort
        )
    pages = queues.paginate(request, cases, per_page=PAGE_SIZE, cap=COUNT_CAP)
    waiting = []
    if status == 200 and not filtered and pages.page.number == 1:
        waiting = list(selectors.plans_waiting(request.user)[: WAITING_SHOWN + 1])
    form = queues.search_box(ProviderSearchForm, form, filters, status == 400)
    return render(
        request,
        "portals/provider/case_list.html",
        {
            "nav": "provider",
            "form": form,
            "waiting": [(case, next_step(case.state)) for case in waiting[:WAITING_SHOWN]],
            "more_waiting": len(waiting) > WAITING_SHOWN,
            "page": pages.page,
            "page_links": pages.links,
            "page_notice": pages.notice,
            "rows": [(case, next_step(case.state)) for case in pages.page.object_list],
            "columns": queues.columns(sort),
            "sort": sort,
            "filters": filters,
            "filtered": filtered,
            "invalid": status == 400,
        },
        status=status,
    )


@require_GET
@provider_required
def case_detail(request, pk):
    case = _own_case_or_404(request, pk)
    plans = selectors.with_preview_links(case.treatment_plans.select_related("preview"))
    queued = busy.queued_step(case.pk)
    # A queued revision request or acceptance: no second action until the worker is done.
    available = [] if queued else available_triggers(case, by=request.user)
    return render(
        request,
        "portals/provider/case_detail.html",
        {
            "nav": "provider",
            "case": case,
            "patient": case.patient,
            "plan": plans[0] if plans else None,
            "earlier_plans": plans[1:],
            "revision_comments": selectors.revision_comments(case),
            "approval": selectors.approval(case) if case.state in APPROVED_STATES else None,
            "can_approve": "approve_plan" in available,
            "can_request_revision": "request_revision" in available,
            "revision_switched_off": case.state == wf.PLAN_RECEIVED
            and not queued
            and "request_revision" not in available,
            "approve_form": ApproveForm(),
            "screenshot_max_bytes": settings.ALIGN_SCREENSHOT_MAX_BYTES,
            "screenshot_max_pixels": settings.ALIGN_SCREENSHOT_MAX_PIXELS,
            "revision_form": RevisionForm(),
            "status_url": request.path + "status/",
            "stamp": selectors.case_stamp(case),
            "terminal": case.state in wf.TERMINAL,
            "queued_label": wf.trigger_label(queued) if queued else "",
            **timeline_context(case, "portals:provider_acceptance_screenshot"),
        },
    )


@require_GET
@provider_required
def acceptance_screenshot(request, pk, asset_id):
    return screenshot_response(request, _own_case_or_404(request, pk), asset_id, nav="provider")


@require_GET
@provider_required
def case_status(request, pk):
    case = _own_case_or_404(request, pk)
    return JsonResponse({"state": case.state, "stamp": selectors.case_stamp(case)})


def _screenshot_too_big(request, size, limit, pk):
    _own_case_or_404(request, pk)
    mb = 1024 * 1024
    messages.error(
        request,
        f"The approval picture is too large to send ({size / mb:.1f} MB; the limit is "
        f"{settings.ALIGN_SCREENSHOT_MAX_BYTES / mb:.1f} MB); the plan was not approved. "
        "Reload the page and approve again.",
    )
    return redirect("portals:provider_case", pk=pk)


def _approval_message(result):
    if result.queued:
        return (
            messages.INFO,
            "Approval queued: the screenshot is saved and the plan is approved in the background; "
            "this page updates when done.",
        )
    return "Plan approved. The clinic will confirm the aligner purchase with Align."


@require_POST
@csrf_exempt  # checked by csrf_protect below, once the body has been read with this view's own limit
@provider_required
@body_limit(screenshot_body_limit, too_big=_screenshot_too_big)
@csrf_protect
def approve(request, pk):
    case = _own_case_or_404(request, pk)
    form = ApproveForm(request.POST)
    if form.is_valid():
        screenshot = form.cleaned_data["acceptance_screenshot"]
        perform(
            request,
            lambda: fire_step(case, "approve_plan", by=request.user, acceptance_screenshot=screenshot),
            success=_approval_message,
            case=case,
            portal="provider",
        )
    else:
        form_errors(request, form)
    return redirect("portals:provider_case", pk=case.pk)


def _revision_message(result):
    if result.queued:
        return (
            messages.INFO,
            "Revision request queued: it is sent to Align in the background; this page updates when done.",
        )
    return "Revision requested. Align will send a new plan version."


@require_POST
@provider_required
def request_revision(request, pk):
    case = _own_case_or_404(request, pk)
    form = RevisionForm(request.POST)
    if form.is_valid():
        comments = form.cleaned_data["comments"]
        perform(
            request,
            lambda: fire_step(case, "request_revision", by=request.user, comments=comments),
            success=_revision_message,
            case=case,
            portal="provider",
        )
    else:
        form_errors(request, form)
    return redirect("portals:provider_case", pk=case.pk)
