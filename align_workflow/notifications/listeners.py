"""What the notifications hear: the workflow's signals (sent after commit) and, on the
sweep, events from Align waiting too long. Each turns one real change into one
notification key; a listener never raises (the workflow's change is already committed
and other listeners must still run)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone

from align_workflow.cases.models import Case
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow.models import OutboundAttempt

from . import texts
from .models import Kind
from .services import notify

logger = logging.getLogger(__name__)


def on_transition_applied(sender, case_id, trigger, **kwargs):
    try:
        if trigger == "receive_plan":
            plan_arrived(case_id)
        elif trigger == "ship":
            shipped(case_id)
    except Exception:  # the transition stands; the failure is logged, never raised into the workflow
        logger.exception("case %s: the notification for %s could not be recorded", case_id, trigger)


def on_attention_raised(sender, case_id, attempt_id, **kwargs):
    try:
        attention(case_id, attempt_id)
    except Exception:  # as above
        logger.exception("case %s: the needs-attention notification could not be recorded", case_id)


def _case(case_id):
    """The case with its provider and user, and its newest plan's version, in one query."""
    return (
        Case.objects.select_related("prescription__provider__user")
        .annotate(newest_plan=Max("treatment_plans__version"))
        .get(pk=case_id)
    )


def _provider(case):
    prescription = getattr(case, "prescription", None)
    return prescription.provider if prescription else None


def plan_arrived(case_id):
    """The case's newest plan waits for its provider: one email per plan version."""
    case = _case(case_id)
    version = case.newest_plan
    provider = _provider(case)
    if version is None or provider is None:
        return None
    return notify(
        Kind.PLAN,
        f"plan:{case_id}:{version}",
        case=case,
        provider=provider,
        text=texts.plan(case, version),
        link=texts.provider_case_url(case),
    )


def shipped(case_id):
    case = _case(case_id)
    provider = _provider(case)
    if provider is None:
        return None
    return notify(
        Kind.SHIPPED,
        f"shipped:{case_id}",
        case=case,
        provider=provider,
        text=texts.shipped(case),
        link=texts.provider_case_url(case),
    )


def attention(case_id, attempt_id):
    """A call to Align gave up and flagged the case: the staff addresses, once per failed attempt."""
    case = _case(case_id)
    step = OutboundAttempt.objects.filter(pk=attempt_id).values_list("step", flat=True).first() or ""
    return notify(
        Kind.ATTENTION,
        f"attention:{case_id}:{attempt_id}",
        case=case,
        recipients=settings.ALIGN_ATTENTION_EMAILS,
        text=texts.attention(case, step),
        link=texts.staff_case_url(case),
    )


def waiting_events(now=None) -> list:
    """Events pending longer than ALIGN_EVENT_PENDING_ATTENTION_SECONDS: one email per case
    and oldest waiting event (the same wait is not announced twice; a new one is)."""
    now = now or timezone.now()
    threshold = settings.ALIGN_EVENT_PENDING_ATTENTION_SECONDS
    groups = (
        InboundEvent.objects.filter(
            status=InboundEvent.Status.PENDING, received_at__lt=now - timedelta(seconds=threshold)
        )
        .values("case_id")
        .annotate(oldest=Min("id"), count=Count("id"))
        .order_by("oldest")
    )
    cases = Case.objects.in_bulk([g["case_id"] for g in groups if g["case_id"] is not None])
    rows = []
    for group in groups:
        case = cases.get(group["case_id"])
        text = texts.events_pending(case, group["count"], threshold)
        row = notify(
            Kind.EVENTS_PENDING,
            f"events_pending:{group['case_id'] or 'none'}:{group['oldest']}",
            case=case,
            recipients=settings.ALIGN_ATTENTION_EMAILS,
            text=text,
            link=texts.staff_case_url(case) if case else texts.link("/admin/integration/inboundevent/"),
        )
        rows.append(row)
    return rows
