"""An approval queued for a worker (ALIGN_EXECUTION=celery).

The provider's request decodes the acceptance screenshot and stores it in the database
(`stage`, in the transaction that records the approval's attempt, so the picture is kept
before anything is queued); the worker checks it is still there (`check`), puts it in the
vault (`store`, the slow part) and the transaction that approves the plan turns it into
the case's acceptance screenshot and deletes the staged copy (`done`)."""

from __future__ import annotations

import hashlib
import time

from align_workflow.align import vault

from .effects import AlignCallFailed, EffectInputError
from .engine import TransitionNotAllowed
from .models import StagedScreenshot
from .outbound.outcomes import begin_attempt, record_failure, record_success
from .screenshots import Screenshot, ScreenshotError, decode_screenshot

# The approval attempt's one parameter: which staged screenshot it stores.
PARAM = "staged_screenshot_id"


def filename(case_id) -> str:
    return f"clincheck-acceptance-case-{case_id}.jpg"


def stage(case, params) -> dict:
    """Decode the screenshot in `params` and store it; the attempt's parameters. Raises
    TransitionNotAllowed (nothing stored) when the picture cannot be used."""
    try:
        shot = decode_screenshot(params.get("acceptance_screenshot"))
    except ScreenshotError as exc:
        raise TransitionNotAllowed(str(exc), code="invalid_input", trigger="approve_plan", state=case.state) from exc
    row = StagedScreenshot.objects.create(
        case_id=case.pk,
        jpeg=shot.jpeg,
        sha256=hashlib.sha256(shot.jpeg).hexdigest(),
        width=shot.width,
        height=shot.height,
        source_format=shot.source_format,
    )
    return {PARAM: row.pk}


def check(case, params):
    """The worker's check: the staged screenshot is still stored for this case."""
    row = StagedScreenshot.objects.filter(pk=params.get(PARAM), case_id=case.pk).first()
    if row is None:
        raise EffectInputError(
            "The acceptance screenshot of this approval is no longer stored; approve the plan again. Nothing was stored."
        )
    params.prepared["staged"] = row
    params.prepared["screenshot"] = Screenshot(bytes(row.jpeg), row.width, row.height, row.source_format)


def store(case, by, params):
    """The worker's call: record the attempt as started, put the picture in the vault,
    record a failure (AlignCallFailed) when the vault refuses it."""
    attempt = params.prepared["attempt"] = begin_attempt(case, "approve_plan", by, params, attempt_id=params.attempt_id)
    started = time.monotonic()
    try:
        blob = vault.get_vault().put(
            params.prepared["screenshot"].jpeg, filename=filename(case.pk), content_type="image/jpeg"
        )
    except vault.VaultError as exc:
        failure = record_failure(attempt, exc, round((time.monotonic() - started) * 1000))
        note = failure.note or f"Could not store the acceptance screenshot in the vault: {exc}"
        raise AlignCallFailed(note, attempt=failure.attempt, error=exc) from exc
    params.prepared["duration_ms"] = round((time.monotonic() - started) * 1000)
    return blob


def done(case, params, summary):
    """In the transaction that approves the plan: the attempt succeeded, the staged copy goes."""
    attempt = params.prepared["attempt"]
    record_success(
        case,
        attempt.pk,
        params.prepared["duration_ms"],
        summary,
        attempt=attempt,
        note="Acceptance screenshot stored in the vault; plan approved.",
    )
    StagedScreenshot.objects.filter(pk=params.prepared["staged"].pk).delete()
