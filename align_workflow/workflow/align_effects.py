"""The effects that talk to Align (through align_workflow.align.client) and to the
vault: create_patient, create_order, upload_assets, request_revision, accept_clincheck
and approve_plan.

Each Align step follows the engine's effect contract (see effects.py):

- `check` refuses unusable input before anything is claimed or sent;
- `call` records the attempt (committed), sends the request with the attempt's
  idempotency key, and on failure commits the outcome, a case note and the retry plan
  before raising AlignCallFailed (the case stays where it was);
- `apply` (in the transaction that moves the case) stores what Align answered, marks
  the attempt succeeded and adds the "Align accepted ..." note;
- `recover` handles the rare commit failure after Align already did the work.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from align_workflow.align import client as align_api
from align_workflow.align import vault
from align_workflow.align.errors import AlignError, AlignRejected
from align_workflow.align.payloads import patient_fields  # noqa: F401 - the builder, used by others too
from align_workflow.cases.models import Case, CaseAsset, CaseNote, PhotoAssessment, TreatmentPlan
from states import align_case as wf

from . import outbound, staged
from . import preflight as records_check
from .effects import AlignCallFailed, EffectFailed, EffectInputError, PreflightFailed, register
from .preflight import newest_screenshot  # noqa: F401 - read by others from here too
from .screenshots import check_data_url, decode_screenshot

logger = logging.getLogger(__name__)

MAX_COMMENT_LENGTH = 4000
# A revision request whose comment is align_batch's default, not the provider's words
# (params["sent_by"]); the history says so and the plan page shows it as the batch's.
BATCH_SENDER = "align_batch"
BATCH_REVISION_PREFIX = "Revision requested by align_batch with its default comment"
# Only a negative-control test turns this off, to show the duplicates keys prevent.
SEND_IDEMPOTENCY_KEYS = True


@dataclass(frozen=True)
class CallOutcome:
    attempt_id: int
    result: Any
    duration_ms: int
    attempt: Any = None  # the OutboundAttempt as begun (its step, chain and actor do not change)


def align_client():
    """The client every effect uses (tests replace this function with a fake)."""
    return align_api.Align()


def _align_step(step, send):
    """The `call` of an Align step: record the attempt, send, record a failure."""

    def call(case, by, params):
        attempt = outbound.begin_attempt(case, step, by, params, attempt_id=params.attempt_id)
        started = time.monotonic()
        try:
            key = attempt.idempotency_key if SEND_IDEMPOTENCY_KEYS else None
            result = send(align_client(), case, params, key)
        except Exception as exc:
            duration = round((time.monotonic() - started) * 1000)
            if not _is_align_error(exc):
                logger.exception("case %s: %s failed inside this app", case.pk, step)
            failure = outbound.record_failure(attempt, exc, duration)
            note = failure.note or f"{wf.trigger_label(step)} failed: {exc}"
            raise AlignCallFailed(note, attempt=failure.attempt, error=exc) from exc
        return CallOutcome(attempt.pk, result, round((time.monotonic() - started) * 1000), attempt)

    return call


def _is_align_error(exc):
    return isinstance(exc, AlignError)


def _recover(case, by, params, outcome, exc):
    if not isinstance(outcome, CallOutcome):
        return
    state_now = Case.objects.filter(pk=case.pk).values_list("state", flat=True).first() or "gone"
    outbound.record_unsaved_success(outcome.attempt_id, outcome.duration_ms, exc, state_now)


# --- create_patient -------------------------------------------------------------------


def preflight(step):
    """The `check` part shared by every Align step: the fields Align requires for this call
    (workflow.preflight.REQUIRED), read from the case as it is now. A case changed since
    it was sent (a lab switched, a screenshot gone) is refused before anything is sent,
    with a case note saying what to fix."""

    def check(case, by, params):
        prepared = getattr(params, "prepared", {})
        known = {"screenshot": prepared["screenshot_asset"]} if "screenshot_asset" in prepared else {}
        records = records_check.Records(case, **known)
        if hasattr(params, "prepared"):
            params.prepared["records"] = records  # what was read, for the call (not read again)
        problems = records_check.problems(case, step, records=records)
        if problems:
            what = records_check.describe(problems)
            label = wf.trigger_label(step)
            raise PreflightFailed(
                f"Cannot {wf.trigger_words(step)}: {what}. Nothing was sent to Align.",
                note=f"{label} was not sent to Align: {what}. Fix this on the case, then send it again.",
                problems=problems,
            )

    return check


def _checks(*checks):
    def check(case, by, params):
        for one in checks:
            one(case, by, params)

    return check


def _send_create_patient(client, case, params, key):
    return client.create_patient(**patient_fields(case), idempotency_key=key)


def _apply_create_patient(case, by, params, outcome):
    patient = outcome.result
    case.align_pid = patient.p_id
    notes = []
    if case.patient.gender not in ("M", "F"):
        notes.append(
            "The patient's gender is unknown here; it was sent to Align as M, because Align "
            "requires M or F. Correct it with Align if that is wrong."
        )
    summary = f"Align patient id {patient.p_id}" + ("" if patient.created else " (Align already had this patient).")
    outbound.record_success(
        case, outcome.attempt_id, outcome.duration_ms, summary, notes, attempt=outcome.attempt, params=params
    )
    return f"Align patient {patient.p_id}" + (" (gender unknown, sent as M)" if notes else "")


# --- create_order ---------------------------------------------------------------------


def _send_create_order(client, case, params, key):
    records = params.prepared.get("records")  # the pre-flight's reads: the option as it checked it
    treatment_option = (
        records.treatment_option
        if records is not None
        else PhotoAssessment.objects.get(case_id=case.pk).treatment_option
    )
    return client.create_order(
        case_id=case.pk,
        p_id=case.align_pid,
        mrn=case.patient.mrn,
        order_type="IAS",
        treatment_option=treatment_option,
        chief_concern=settings.ALIGN_CHIEF_CONCERN,
        idempotency_key=key,
    )


def _apply_create_order(case, by, params, outcome):
    order = outcome.result
    outbound.record_success(
        case,
        outcome.attempt_id,
        outcome.duration_ms,
        f"{order.order_type} order, status {order.status}.",
        attempt=outcome.attempt,
        params=params,
    )
    return f"{order.order_type} order {order.status.lower()}"


# --- upload_assets --------------------------------------------------------------------


def _send_upload_assets(client, case, params, key):
    upload = client.upload_assets(case_id=case.pk, p_id=case.align_pid, mrn=case.patient.mrn, idempotency_key=key)
    if not upload.accepted:
        raise AlignRejected("Align answered that it did not accept the assets.", status=200, code="NOT_ACCEPTED")
    return upload


def _apply_upload_assets(case, by, params, outcome):
    upload = outcome.result
    outbound.record_success(
        case,
        outcome.attempt_id,
        outcome.duration_ms,
        f"{upload.asset_count} asset(s).",
        attempt=outcome.attempt,
        params=params,
    )
    return f"{upload.asset_count} asset(s) uploaded"


# --- request_revision -------------------------------------------------------------------


def pending_plan_version(case_id):
    """The version of the case's newest plan (the one waiting for review), or None."""
    return TreatmentPlan.objects.filter(case_id=case_id).order_by("-version").values_list("version", flat=True).first()


def _check_request_revision(case, by, params):
    if params.get("sent_by") not in (None, BATCH_SENDER):
        raise EffectInputError("Unknown sender of a revision request.")
    comments = str(params.get("comments") or "").strip()
    if not comments:
        raise EffectInputError("Comments are required to request a revision: say what should change in the plan.")
    if len(comments) > MAX_COMMENT_LENGTH:
        raise EffectInputError(f"The comments are too long ({len(comments)} characters; at most {MAX_COMMENT_LENGTH}).")
    params["comments"] = comments
    current = pending_plan_version(case.pk) or 0
    asked_for = params.get("plan_version")
    if asked_for is None:
        params["plan_version"] = current
    elif int(asked_for) != current:
        raise EffectInputError(
            f"This revision request is about plan version {asked_for}, but version {current} is the one "
            "waiting now; review the new plan instead. Nothing was sent."
        )


def _send_request_revision(client, case, params, key):
    return client.request_modification(
        case_id=case.pk, mrn=case.patient.mrn, comments=params["comments"], idempotency_key=key
    )


def _apply_request_revision(case, by, params, outcome):
    version = params.get("plan_version") or "?"
    outbound.record_success(
        case,
        outcome.attempt_id,
        outcome.duration_ms,
        f"Revision requested for plan version {version}.",
        attempt=outcome.attempt,
        params=params,
    )
    # The comment in full: the provider's plan page shows it from the history.
    if params.get("sent_by") == BATCH_SENDER:
        return f"{BATCH_REVISION_PREFIX} (plan version {version}): {params['comments']}"
    return f"Revision requested (plan version {version}): {params['comments']}"


# --- accept_clincheck --------------------------------------------------------------------


def _check_accept_clincheck(case, by, params):
    asset = newest_screenshot(case.pk)
    if asset is None:
        raise EffectInputError(
            "No acceptance screenshot is stored for this case (it is stored when the provider approves the plan), "
            "so the acceptance cannot be sent to Align. Nothing was sent."
        )
    asked_for = params.get("screenshot_asset_id")
    if asked_for is None:
        params["screenshot_asset_id"] = asset.pk
    elif int(asked_for) != asset.pk:
        raise EffectInputError(
            "A newer acceptance screenshot was stored since this acceptance was first sent; "
            "send the acceptance again. Nothing was sent."
        )
    params.prepared["screenshot_asset"] = asset  # the row just read, for the pre-flight and the call


def _send_accept_clincheck(client, case, params, key):
    asset = params.prepared.get("screenshot_asset")
    if asset is None or asset.pk != int(params["screenshot_asset_id"]):
        asset = CaseAsset.objects.get(pk=params["screenshot_asset_id"], case_id=case.pk)
    return client.accept_clincheck(
        case_id=case.pk,
        mrn=case.patient.mrn,
        vault_id=asset.vault_id,
        external_key=asset.external_key,
        idempotency_key=key,
    )


def _apply_accept_clincheck(case, by, params, outcome):
    accepted = outcome.result
    so = f" Sales order {accepted.sales_order_number}." if accepted.sales_order_number else ""
    outbound.record_success(
        case,
        outcome.attempt_id,
        outcome.duration_ms,
        f"Status {accepted.status}.{so}",
        attempt=outcome.attempt,
        params=params,
    )
    return f"ClinCheck accepted by Align ({accepted.status})"


# --- approve_plan: the acceptance screenshot into the vault -------------------------------


def _check_approve_plan(case, by, params):
    if staged.PARAM in params:  # queued: decoded and stored by the provider's request
        return staged.check(case, params)
    # Only the cheap checks here: the picture is decoded in the call, once the case is
    # claimed, so that concurrent approvals of one case decode one image, not one each.
    check_data_url(params.get("acceptance_screenshot"))


def _call_approve_plan(case, by, params):
    # Decoding and the vault write are slow, so they happen here, under the claim and
    # outside any transaction; the asset row is written in apply, in the transaction that
    # moves the case, so a refused transition leaves no row behind (only an unreferenced
    # blob in the vault). A ScreenshotError here is a refusal (the engine releases the claim).
    if "staged" in params.prepared:
        return staged.store(case, by, params)
    shot = params.prepared["screenshot"] = decode_screenshot(params.get("acceptance_screenshot"))
    try:
        return vault.get_vault().put(
            shot.jpeg, filename=f"clincheck-acceptance-case-{case.pk}.jpg", content_type="image/jpeg"
        )
    except vault.VaultError as exc:
        CaseNote.objects.create(
            case_id=case.pk,
            text=f"Could not store the acceptance screenshot in the vault ({exc}); the plan was not approved.",
        )
        raise EffectFailed(
            f"Could not store the acceptance screenshot ({exc}); the plan was not approved, please try again."
        ) from exc


def _apply_approve_plan(case, by, params, blob):
    shot = params.prepared["screenshot"]
    CaseAsset.objects.create(
        case=case,
        kind=CaseAsset.Kind.CCACCEPTSCREEN,
        filename=f"clincheck-acceptance-case-{case.pk}.jpg",
        sha256=hashlib.sha256(shot.jpeg).hexdigest(),
        vault_id=blob.vault_id,
        external_key=blob.external_key,
    )
    version = pending_plan_version(case.pk)
    plan = f"plan version {version}" if version else "the plan"
    summary = f"Approved {plan}; acceptance screenshot stored ({shot.width}×{shot.height}, from {shot.source_format})"
    if "staged" in params.prepared:
        staged.done(case, params, summary)
    return summary


def _recover_approve_plan(case, by, params, blob, exc):
    if blob is not None and "attempt" in params.prepared:  # queued: stored again on the retry
        state_now = Case.objects.filter(pk=case.pk).values_list("state", flat=True).first() or "gone"
        outbound.record_unsaved_success(params.prepared["attempt"].pk, params.prepared["duration_ms"], exc, state_now)
    if blob is not None:
        logger.warning(
            "case %s: approve_plan not applied (%s); vault blob %s is unreferenced",
            case.pk,
            type(exc).__name__,
            blob.external_key,
        )


def register_align_effects():
    """Register the effects that call Align and the vault (called when the app is ready)."""
    register(
        "create_patient",
        call=_align_step("create_patient", _send_create_patient),
        apply=_apply_create_patient,
        recover=_recover,
    )  # its pre-flight is the can_send_to_align guard
    register(
        "create_order",
        check=preflight("create_order"),
        call=_align_step("create_order", _send_create_order),
        apply=_apply_create_order,
        recover=_recover,
    )
    register(
        "upload_assets",
        check=preflight("upload_assets"),
        call=_align_step("upload_assets", _send_upload_assets),
        apply=_apply_upload_assets,
        recover=_recover,
    )
    register(
        "request_revision",
        check=_checks(_check_request_revision, preflight("request_revision")),
        call=_align_step("request_revision", _send_request_revision),
        apply=_apply_request_revision,
        recover=_recover,
    )
    register(
        "accept_clincheck",
        check=_checks(_check_accept_clincheck, preflight("accept_clincheck")),
        call=_align_step("accept_clincheck", _send_accept_clincheck),
        apply=_apply_accept_clincheck,
        recover=_recover,
    )
    register(
        "approve_plan",
        check=_check_approve_plan,
        call=_call_approve_plan,
        apply=_apply_approve_plan,
        recover=_recover_approve_plan,
    )
