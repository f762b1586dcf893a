"""The staff portal: the case list and the case page with its Align panel.

Each action parses its input, calls one service (the engine, send_to_align,
retry_case or a portal service) and turns a refusal into a message."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from align_workflow.cases.models import Case, CaseAsset, Patient, Prescription
from align_workflow.workflow import busy, purchases
from align_workflow.workflow.diagrams import MISSING_GRAPHVIZ, case_svg
from align_workflow.workflow.engine import available_triggers, fire, flag_is_on
from align_workflow.workflow.guards import can_send_to_align
from align_workflow.workflow.outbound import retry_case, send_to_align
from states import align_case as wf
from states.next_steps import next_step

from .. import selectors, services, wording
from ..access import staff_required
from ..forms import CancelForm, CaseFilterForm, CaseSearchForm, ContactForm, GenderForm
from . import queues
from .common import form_errors, inline_svg, perform, send_outcome
from .panel import screenshot_response, timeline_context

PAGE_SIZE = 25
# A filtered list counts its cases up to here (or to the page asked for) and then says
# "more than N": counting every match of a broad search would cost as much as the list is long.
COUNT_CAP = 200
# Checklist criteria the contact details form fixes (opened when one of them fails).
CONTACT_CRITERIA = {"patient_email", "patient_phone", "patient_address"}
# States from which "Send to Align" starts or resumes (eligible, patient_created, order_created).
SEND_SOURCES = {state for trigger in wf.SEND_TO_ALIGN for state in wf.BY_TRIGGER[trigger].source}


# Searches a person made, kept in their session under an opaque id (the newest few).
SEARCHES_KEY = "staff_searches"


@require_http_methods(["GET", "POST"])
@staff_required
def case_list(request):
    """The case list. The search box is POSTed and answered with a redirect to
    `/staff/?s=<opaque id>`, so patient names and MRNs never appear in an address, an
    access log or the browser's history; state, attention, stuck and the sort may be in
    the address. Invalid or unknown filters are reported (400), never silently dropped."""
    form, status, redirected = queues.read_filters(
        request,
        key=SEARCHES_KEY,
        search_form=CaseSearchForm,
        filter_form=CaseFilterForm,
        address=reverse("portals:staff_cases"),
    )
    if redirected is not None:
        return redirected
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    sort = filters.get("sort", "")
    cases = Case.objects.none() if status == 400 else selectors.staff_cases_filtered(filters)
    list_counts = selectors.list_counts()
    counts = list_counts.states
    total = sum(c.total for c in counts)
    filtered = any(value for name, value in filters.items() if name != "sort")
    pages = queues.paginate(
        request,
        cases,
        per_page=PAGE_SIZE,
        cap=COUNT_CAP,
        # The whole list's count is the sum of the counts per state: nothing more to count.
        known_count=total if status != 400 and not filtered else None,
    )
    form = queues.search_box(CaseSearchForm, form, filters, status == 400)
    return render(
        request,
        "portals/staff/case_list.html",
        {
            "nav": "staff",
            "form": form,
            "page": pages.page,
            "page_links": pages.links,
            "page_notice": pages.notice,
            "rows": [(case, next_step(case.state, case.needs_attention)) for case in pages.page.object_list],
            "columns": queues.columns(sort),
            "sort": sort,
            "counts": counts,
            "total": total,
            "attention_total": list_counts.attention,
            "outside_total": list_counts.outside,
            "filters": filters,
            "filtered": filtered,
            "invalid": status == 400,
        },
        status=status,
    )


def _case_or_404(pk):
    try:
        return selectors.staff_case(pk)
    except Case.DoesNotExist:
        raise Http404("No such case.") from None


@require_GET
@staff_required
def case_detail(request, pk):
    case = _case_or_404(pk)
    available = available_triggers(case, by=request.user)
    criteria = can_send_to_align(case)
    send_flag_on = flag_is_on(wf.FLAG_INITIATE_ORDER, request.user)
    # A case that needs attention is resumed with Retry (same step, same idempotency key).
    can_send = any(t in available for t in wf.SEND_TO_ALIGN) and not case.needs_attention
    prescription = getattr(case, "prescription", None)
    queued = busy.queued_step(case.pk)
    return render(
        request,
        "portals/staff/case_detail.html",
        {
            "nav": "staff",
            "case": case,
            "in_workflow": prescription is not None and prescription.lab == Prescription.Lab.ALIGN,
            "patient": case.patient,
            "criteria": criteria,
            "all_criteria_pass": all(c.ok for c in criteria),
            "send_flag_on": send_flag_on,
            "can_send": can_send,
            "sending_stage": case.state in SEND_SOURCES,
            "can_purchase": case.state == wf.PROVIDER_APPROVED and not queued,
            "acceptance_waiting": purchases.is_waiting(case),
            "acceptance_flag_on": flag_is_on(wf.FLAG_SET_ORDER_STATUS, request.user),
            "can_cancel": "cancel" in available,
            "gender_unknown": case.patient.gender == Patient.Gender.UNKNOWN,
            "gender_form": GenderForm(initial={"gender": case.patient.gender}),
            "contact_form": ContactForm(instance=case.patient, prefix="contact"),
            "contact_editable": case.state not in services.CONTACT_LOCKED_STATES,
            "contact_needs_fix": any(not c.ok for c in criteria if c.name in CONTACT_CRITERIA),
            "cancel_form": CancelForm(),
            **timeline_context(case, "portals:staff_acceptance_screenshot"),
            "assets": CaseAsset.objects.filter(case=case).order_by("kind", "created"),
            "plans": selectors.with_preview_links(case.treatment_plans.select_related("preview")[:5]),
            "orders": case.align_orders.order_by("order_kind", "-align_created_at", "-id"),  # primary first
            "diagram": inline_svg(svg) if (svg := case_svg(case)) else None,
            "diagram_missing": MISSING_GRAPHVIZ,
            "terminal": case.state in wf.TERMINAL,
            "status_url": request.path + "status/",
            "stamp": selectors.case_stamp(case),
            "queued_label": wf.trigger_label(queued) if queued else "",
            "attention": wording.attention(case),
        },
    )


@require_GET
@staff_required
def acceptance_screenshot(request, pk, asset_id):
    return screenshot_response(request, _case_or_404(pk), asset_id, nav="staff")


@require_GET
@staff_required
def case_status(request, pk):
    case = get_object_or_404(Case, pk=pk)
    return JsonResponse({"state": case.state, "stamp": selectors.case_stamp(case)})


def _back(case):
    return redirect("portals:staff_case", pk=case.pk)


def _now_in(case):
    case.refresh_from_db(fields=["state", "needs_attention"])
    return f"The case is now {wf.state_label(case.state)}."


@require_POST
@staff_required
def send(request, pk):
    case = get_object_or_404(Case, pk=pk)
    perform(request, lambda: send_to_align(case, by=request.user), success=send_outcome(case), case=case)
    return _back(case)


@require_POST
@staff_required
def retry(request, pk):
    case = get_object_or_404(Case, pk=pk)
    perform(request, lambda: retry_case(case, by=request.user), success=send_outcome(case), case=case)
    return _back(case)


def _purchase_message(outcome):
    state = f"The case is now {wf.state_label(Case.objects.get(pk=outcome.case_id).state)}."
    if outcome.acceptance == purchases.SENT:
        return f"Aligner purchase recorded and the ClinCheck accepted. {state}"
    if outcome.acceptance == purchases.WAITING:
        first = "Aligner purchase recorded." if outcome.recorded else "The aligner purchase was already recorded."
        return messages.INFO, wording.Wording(
            f"{first} The acceptance is not sent to Align yet: "
            f"{wording.FLAG_WORDS[wf.FLAG_SET_ORDER_STATUS].lower()} is switched off.",
            "It is sent automatically once an administrator switches it on.",
            code="flag_off · accept_clincheck",
            detail=outcome.detail,
            level=messages.INFO,
        ).html()
    if outcome.acceptance in (purchases.QUEUED, purchases.ALREADY, ""):
        return messages.INFO, f"{outcome.message} {state}"
    return messages.WARNING, f"{outcome.message} {state}"


def _unconfirmed(request, case, action, **fields):
    """The confirmation page of an irreversible action posted without confirm=1 (the
    dialog sets it; without JavaScript this page asks instead). None once confirmed."""
    if request.POST.get("confirm") == "1":
        return None
    flag_on = flag_is_on(wf.FLAG_SET_ORDER_STATUS, request.user)
    return render(
        request,
        "portals/confirm.html",
        {
            "nav": "staff",
            "case": case,
            "action": action,
            "c": wording.confirmation(action, flag_on=flag_on),
            "back": reverse("portals:staff_case", args=[case.pk]),
            "fields": list(fields.items()),
            "reason": fields.get("reason", ""),
        },
    )


@require_POST
@staff_required
def aligners_purchased(request, pk):
    case = get_object_or_404(Case, pk=pk)
    if (page := _unconfirmed(request, case, "purchased")) is not None:
        return page
    perform(
        request,
        lambda: services.mark_aligners_purchased(case, by=request.user),
        success=_purchase_message,
        case=case,
    )
    return _back(case)


@require_POST
@staff_required
def cancel(request, pk):
    case = get_object_or_404(Case, pk=pk)
    form = CancelForm(request.POST)
    if form.is_valid():
        if (page := _unconfirmed(request, case, "cancel", reason=form.cleaned_data["reason"])) is not None:
            return page
        perform(
            request,
            lambda: fire(case, "cancel", by=request.user, reason=form.cleaned_data["reason"]),
            success="The case was cancelled. Align was not told: cancel it with Align as well if it has the case.",
            case=case,
        )
    else:
        form_errors(request, form)
    return _back(case)


@require_POST
@staff_required
def set_gender(request, pk):
    case = get_object_or_404(Case.objects.select_related("patient"), pk=pk)
    form = GenderForm(request.POST)
    if form.is_valid():
        changed = services.set_patient_gender(case, form.cleaned_data["gender"], by=request.user)
        if changed:
            text = f"Patient gender set to {case.patient.get_gender_display()}."
            if case.state != wf.ELIGIBLE:
                text += " This change was not sent to Align: Align already has the patient record."
            messages.success(request, text)
        else:
            messages.info(request, "The patient's gender was already that.")
    else:
        form_errors(request, form)
    return _back(case)


@require_POST
@staff_required
def set_contact(request, pk):
    case = get_object_or_404(Case.objects.select_related("patient"), pk=pk)
    form = ContactForm(request.POST, instance=case.patient, prefix="contact")
    if not form.is_valid():
        form_errors(request, form)
        return _back(case)
    try:
        changed = services.set_patient_contact(case, form, by=request.user)
    except services.ContactRefused as refused:
        wording.say(request, wording.contact_refused(refused, case=case))
        return _back(case)
    if changed:
        text = f"Patient contact details saved ({', '.join(changed)})."
        if case.state != wf.ELIGIBLE:
            text += " This change was not sent to Align: Align already has the patient record."
        messages.success(request, text)
    else:
        messages.info(request, "The patient's contact details were already that.")
    return _back(case)
