"""The effects of transitions: what is done on the way from one state to the next.

An Effect has up to three parts, each optional:

- `check(case, by, params)`: validates the caller's input before anything is written
  or sent; raises EffectInputError with a message for the user.
- `call(case, by, params)`: the slow part (an HTTP call to Align). The engine runs it
  with no transaction open and no row lock held, after claiming the case so that no
  other process runs the same call at the same time. It returns a result, or raises;
  any exception leaves the case where it was.
- `apply(case, by, params, result)`: runs inside the transaction that changes the
  state, just before the compare-and-set that moves the case (if that finds the case
  moved on, the transaction and everything `apply` wrote roll back); stores what the
  call returned. It may return a short description for the history row.
- `recover(case, by, params, result, exc)`: runs when the call succeeded but the
  transaction applying it failed (`exc`), so that the effect can record that the
  outside world already did the work (e.g. plan to re-send with the same key).

`check` may add prepared values to `params` (the same dict reaches `call` and `apply`).
`call` may raise EffectInputError for input that is only examined once the case is
claimed (the approval's picture is decoded there): the engine releases the claim and
refuses the transition like a failed `check`.

Effects are registered per trigger with `register`, explicitly when the app is ready
(apps.py: `register_local_effects` below, `align_effects.register_align_effects` for the
ones that call Align and the vault). Every row of the table in states/ has one: `get` of a trigger without one is an
error (UnknownEffect), never a silent state change, and the system check
align_workflow.E010 stops every command at start-up when a row has none, or when a row
whose effect calls Align has an effect without a `call`.

`params` is an EffectParams: the caller's parameters (a dict, kept as given) and, apart
from them, what the engine and the effects hand each other: `attempt_id` (the pending
attempt a runner is sending) and `prepared` (values a `check` read for the `call` or
`apply`, e.g. the screenshot asset row). Nothing internal rides among the caller's
parameters.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from align_workflow.cases.models import CaseAsset, TreatmentPlan
from states import align_case as wf


class EffectInputError(Exception):
    """The caller's input for a transition is unusable; nothing was done."""

    code = "invalid_input"
    note = ""  # a case note to add when the engine refuses the transition for it


class PreflightFailed(EffectInputError):
    """A field Align requires for the call is missing or invalid in our records (the
    pre-flight of workflow.preflight); nothing was sent. The engine refuses it with
    code "guard" and adds `note` (what to fix) to the case."""

    code = "guard"

    def __init__(self, message, *, note="", problems=()):
        super().__init__(message)
        self.note = note
        self.problems = list(problems)


class EffectFailed(Exception):
    """The effect was attempted and failed; the case stays where it was."""


class AlignCallFailed(EffectFailed):
    """A call to Align failed; the attempt, its case note and any retry are recorded.

    `attempt` is the OutboundAttempt (status, next_retry_at, ...); `error` the exception
    (usually an AlignError with status, code, message and request_id).
    """

    def __init__(self, message, *, attempt, error):
        super().__init__(message)
        self.attempt = attempt
        self.error = error


class UnknownEffect(LookupError):
    """A trigger has no registered effect (see the system check align_workflow.E010)."""


class EffectParams(dict):
    """The caller's parameters of a transition, plus the engine's and effects' own values
    kept apart from them (`attempt_id`, `prepared`)."""

    def __init__(self, params=(), *, attempt_id=None):
        super().__init__(params)
        self.attempt_id = attempt_id
        self.prepared = {}
        # Set by engine.preflight once the effect's check passed on these parameters.
        self.checked = False


class StalePlan(EffectFailed):
    """A treatment plan that is not newer than the newest one already stored."""

    def __init__(self, message, *, newest_version):
        super().__init__(message)
        self.newest_version = newest_version


@dataclass
class Effect:
    check: Callable | None = None
    call: Callable | None = None
    apply: Callable[..., Any] | None = None
    recover: Callable | None = None


EFFECTS: dict[str, Effect] = {}


def register(trigger: str, *, check=None, call=None, apply=None, recover=None) -> Effect:
    if trigger not in wf.BY_TRIGGER:
        raise ValueError(f"unknown trigger {trigger!r}")
    effect = Effect(check=check, call=call, apply=apply, recover=recover)
    EFFECTS[trigger] = effect
    return effect


def get(trigger: str) -> Effect:
    try:
        return EFFECTS[trigger]
    except KeyError:
        raise UnknownEffect(f"no effect is registered for {trigger!r}; every row of states/ needs one") from None


# A row's effect calls Align when its `effect` column names an HTTP request.
_HTTP_METHODS = ("GET ", "POST ", "PUT ", "PATCH ", "DELETE ")


def calls_align(transition) -> bool:
    return transition.effect.startswith(_HTTP_METHODS)


def registry_problems() -> list[str]:
    """Rows of the table whose effect is missing (or does not call Align although the row says it does)."""
    problems = []
    for t in wf.TRANSITIONS:
        effect = EFFECTS.get(t.trigger)
        if effect is None:
            problems.append(f"{t.trigger}: no effect is registered (the table says: {t.effect})")
        elif calls_align(t) and effect.call is None:
            problems.append(f"{t.trigger}: its effect has no call, but the table says it calls Align ({t.effect})")
    return problems


# --- Effects that only touch our own database ------------------------------------


def _check_cancel(case, by, params):
    if not str(params.get("reason") or "").strip():
        raise EffectInputError("A reason is required to cancel a case.")


def _apply_cancel(case, by, params, result):
    case.cancel_reason = str(params["reason"]).strip()
    return f"Cancelled: {case.cancel_reason}"


def _apply_ship(case, by, params, result):
    case.carrier = str(params.get("carrier") or "")
    case.tracking_number = str(params.get("tracking_number") or "")
    case.shipped_at = params.get("shipped_at") or timezone.now()
    return f"Shipped by {case.carrier or 'carrier unknown'}, tracking {case.tracking_number or 'unknown'}"


def record_plan(case, plan):
    """Store one treatment plan (and its preview as a PROVPREV asset); returns the row.

    `plan` is a dict: plan_id, version, and optionally revision_of, sales_order_number,
    stages_upper, stages_lower, attachments, ipr, notes, submitted_at and
    preview {url, sha256, size, filename}.
    """
    preview = None
    if plan.get("preview"):
        p = plan["preview"]
        preview = CaseAsset.objects.create(
            case=case,
            kind=CaseAsset.Kind.PROVPREV,
            url=p.get("url", ""),
            sha256=p.get("sha256", ""),
            size=p.get("size"),
            filename=p.get("filename", ""),
        )
    return TreatmentPlan.objects.create(
        case=case,
        plan_id=plan["plan_id"],
        version=plan["version"],
        revision_of=plan.get("revision_of") or "",
        sales_order_number=plan.get("sales_order_number") or "",
        stages_upper=plan.get("stages_upper") or 0,
        stages_lower=plan.get("stages_lower") or 0,
        attachments=bool(plan.get("attachments")),
        ipr=bool(plan.get("ipr")),
        notes=plan.get("notes") or "",
        preview=preview,
        received_at=timezone.now(),
    )


def _check_receive_plan(case, by, params):
    plan = params.get("plan")
    if not isinstance(plan, dict) or not plan.get("plan_id") or not isinstance(plan.get("version"), int):
        raise EffectInputError("A treatment plan (plan id and version) is required to receive a plan.")


def _apply_receive_plan(case, by, params, result):
    # Runs in the transaction that moves the case, so the plan row commits (or rolls
    # back) together with the state change. Events from Align are applied one at a time
    # per case (the events module locks the case row), so two plans for one case are
    # compared one after the other; (case, version) is unique besides.
    plan = params["plan"]
    newest = TreatmentPlan.objects.filter(case=case).order_by("-version").first()
    if newest is not None and plan["version"] <= newest.version:
        raise StalePlan(
            f"Plan version {plan['version']} is not newer than version {newest.version} already received.",
            newest_version=newest.version,
        )
    record_plan(case, plan)
    return f"Plan {plan['plan_id']} version {plan['version']} received"


def register_local_effects():
    """Register the effects that only touch our own database (called when the app is ready)."""
    register("cancel", check=_check_cancel, apply=_apply_cancel)
    register("ship", apply=_apply_ship)
    register("receive_plan", check=_check_receive_plan, apply=_apply_receive_plan)
