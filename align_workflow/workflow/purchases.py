"""Aligner purchases: the fact from the shop (or the staff button), and the ClinCheck
acceptance that follows it.

    from align_workflow.workflow import purchases

    outcome = purchases.report_purchase(case_id, source="shop", purchased_at=when, order_reference="A-1")
    outcome = purchases.report_purchase(case_id, source="staff", by=request.user)

A purchase is always recorded (once per case: a repeat keeps the first report), whatever
the flags say. The acceptance (`accept_clincheck`, PUT /orders/{caseId}/accept) is then
sent when every rule allows it: the `set-align-order-status` flag is on, the case is
prescribed to Align and an acceptance screenshot is stored (the engine and the step's
pre-flight check each). While the flag is off the acceptance *waits*: the case page
says so, and the retry sweep (`align_retry_due`, the Celery sweep) sends it once the flag
is on. Exactly once: only the report that recorded the purchase sends at once, a waiting
case is picked up only while no acceptance call exists for it (a failed one belongs to
the retries), and the engine's claim refuses a second sender.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from align_workflow.cases.models import Case, CaseNote, Prescription
from states import align_case as wf

from .engine import TransitionNotAllowed, flag_is_on
from .models import OutboundAttempt

logger = logging.getLogger(__name__)

# A purchase can have happened once the provider approved the plan.
PURCHASABLE = (wf.PROVIDER_APPROVED, wf.ACCEPTED, wf.SHIPPING)
SOURCES = {"staff": "staff", "shop": "the shop", "batch": "align_batch"}

# What happened to the acceptance.
SENT = "sent"  # Align accepted the ClinCheck now
QUEUED = "queued"  # Celery mode: recorded and handed to a worker, which sends it
WAITING = "waiting"  # the flag is off: sent by the retry sweep once it is on
ALREADY = "already_sent"  # accepted before, or being sent by another process
IN_RETRIES = "in_retries"  # an acceptance call failed earlier; the retries own it
FAILED = "failed"  # the call failed; a retry is planned or the case needs attention
REFUSED = "refused"  # a rule refuses it (lab, screenshot, ...): a person must fix the case


class PurchaseRefused(Exception):
    """The case cannot have been purchased (yet): nothing was recorded."""

    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code  # "not_found" or "not_purchasable"


@dataclass
class PurchaseOutcome:
    case_id: int
    purchased_at: datetime
    recorded: bool  # this report recorded the purchase (False: it was already recorded)
    acceptance: str  # SENT, WAITING, ALREADY, IN_RETRIES, FAILED, REFUSED or "" (nothing to send)
    detail: str = ""

    @property
    def message(self) -> str:
        first = "Aligner purchase recorded." if self.recorded else "The aligner purchase was already recorded."
        return f"{first} {self.detail}".strip()


def is_waiting(case) -> bool:
    """The case's acceptance waits: bought and approved, but nothing sent yet."""
    return (
        case.state == wf.PROVIDER_APPROVED
        and case.aligners_purchased_at is not None
        and not OutboundAttempt.objects.filter(case_id=case.pk, step="accept_clincheck").exists()
    )


def report_purchase(case_id, *, source, by=None, purchased_at=None, order_reference="") -> PurchaseOutcome:
    """Record the purchase (once per case), then send the acceptance if every rule allows.

    Raises PurchaseRefused (nothing recorded) for an unknown case, a case whose plan is
    not approved yet or a cancelled case. (The lab is the acceptance's rule: a purchase of
    an approved case is a fact even if its prescription was changed behind our back.)
    """
    if source not in SOURCES:
        raise ValueError(f"unknown purchase source {source!r}")
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id).first()
        if case is None:
            raise PurchaseRefused(f"No case {case_id}.", code="not_found")
        if case.state not in PURCHASABLE:
            raise PurchaseRefused(
                f"The case is {wf.state_label(case.state)} ({wf.MEANINGS[case.state]}): aligners can be bought "
                "only once the provider approved the plan; nothing was recorded.",
                code="not_purchasable",
            )
        recorded = case.aligners_purchased_at is None
        if recorded:
            case.aligners_purchased_at = purchased_at or timezone.now()
            case.aligners_purchase_source = source
            case.aligners_purchase_reported_by = by
            case.aligners_order_reference = order_reference or ""
            case.save(
                update_fields=[
                    "aligners_purchased_at",
                    "aligners_purchase_source",
                    "aligners_purchase_reported_by",
                    "aligners_order_reference",
                ]
            )
            who = f"{SOURCES[source]} ({by.get_username()})" if by is not None else SOURCES[source]
            ref = f", order reference {order_reference}" if order_reference else ""
            CaseNote.objects.create(
                case_id=case.pk,
                author=by,
                text=(
                    f"Aligner purchase recorded: bought {timezone.localtime(case.aligners_purchased_at):%Y-%m-%d %H:%M}, "
                    f"reported by {who}{ref}."
                ),
            )
    # The same answer for every report: the time as stored, in UTC.
    outcome = PurchaseOutcome(case.pk, case.aligners_purchased_at.astimezone(UTC), recorded, "")
    if case.state != wf.PROVIDER_APPROVED:
        outcome.detail = "The ClinCheck was already accepted."
        return outcome
    # A repeated automatic report sends nothing: the first one (or the sweep) did or will.
    if recorded or by is not None:
        # A person clicking sees a refusal or a failed call as an error, as with any action.
        outcome.acceptance, outcome.detail = send_acceptance(case, by=by, raise_errors=by is not None)
    else:
        outcome.acceptance = WAITING if is_waiting(case) else ALREADY
        outcome.detail = (
            "The acceptance waits to be sent."
            if outcome.acceptance == WAITING
            else "The acceptance was already sent or is being sent."
        )
    return outcome


def send_acceptance(case, *, by=None, raise_errors=False) -> tuple[str, str]:
    """Send the ClinCheck acceptance of a bought, approved case if every rule allows it.

    `by` None is automation (the shop's report, the sweep): it sends only while no
    acceptance call exists for the case (a failed one is retried by the retries). Staff
    (`by` a user) fire it as the button always did. `raise_errors`: a refusal
    (TransitionNotAllowed) or a failed call (AlignCallFailed) is raised, not returned.
    """
    from .align_effects import AlignCallFailed  # why: align_effects imports outbound, which imports this module
    from .outbound import fire_step  # why: outbound imports this module (the sweep)

    case.refresh_from_db()
    if case.state != wf.PROVIDER_APPROVED or case.aligners_purchased_at is None:
        return ALREADY, "The ClinCheck was already accepted."
    if not flag_is_on(wf.FLAG_SET_ORDER_STATUS, by):
        return WAITING, (
            f"The acceptance waits: the '{wf.FLAG_SET_ORDER_STATUS}' flag is off. It is sent "
            "to Align automatically (align_retry_due) once the flag is on."
        )
    if by is None and OutboundAttempt.objects.filter(case_id=case.pk, step="accept_clincheck").exists():
        return IN_RETRIES, "An earlier acceptance call for this case is handled by the retries."
    try:
        result = fire_step(case, "accept_clincheck", by=by)
    except TransitionNotAllowed as refused:
        if refused.code in ("in_progress", "wrong_state") and not raise_errors:
            return ALREADY, "The acceptance is already being sent, or was sent."
        if raise_errors:
            raise
        return REFUSED, f"The acceptance was not sent: {refused}"
    except AlignCallFailed as failed:
        if raise_errors:
            raise
        return FAILED, f"The acceptance call failed: {failed}"
    if result.queued:
        return QUEUED, "The ClinCheck acceptance is queued: it is sent to Align in the background."
    return SENT, "The ClinCheck acceptance was sent to Align and accepted."


def waiting_case_ids() -> list[int]:
    """Bought, approved Align cases whose acceptance has not been sent at all."""
    return list(
        Case.objects.filter(
            state=wf.PROVIDER_APPROVED, aligners_purchased_at__isnull=False, prescription__lab=Prescription.Lab.ALIGN
        )
        .exclude(pk__in=OutboundAttempt.objects.filter(step="accept_clincheck").values("case_id"))
        .order_by("aligners_purchased_at", "pk")
        .values_list("pk", flat=True)
    )


def send_waiting() -> list[tuple[int, str, str]]:
    """The sweep's part: send every waiting acceptance the flag now allows. Returns
    (case id, outcome, detail) for each case looked at; nothing while the flag is off."""
    if not flag_is_on(wf.FLAG_SET_ORDER_STATUS, None):
        return []
    results = []
    for case_id in waiting_case_ids():
        case = Case.objects.get(pk=case_id)
        try:
            outcome, detail = send_acceptance(case, by=None)
        except Exception:  # one case's unexpected error must not stop the others
            logger.exception("case %s: sending the waiting acceptance failed", case_id)
            continue
        results.append((case_id, outcome, detail))
    return results
