"""The effects of transitions: what is done on the way from one state to the next.

An Effect has up to three parts, each optional:

- `check(case, by, params)`: validates the caller's input before anything is locked
  or sent; raises EffectInputError with a message for the user.
- `call(case, by, params)`: the slow part (an HTTP call to Align). The engine runs it
  with no transaction open and no row lock held, after claiming the case so that no
  other process runs the same call at the same time. It returns a result, or raises;
  any exception leaves the case where it was.
- `apply(case, by, params, result)`: runs inside the transaction that changes the
  state, with the case row locked; stores what the call returned. It may return a
  short description for the history row.
- `recover(case, by, params, result, exc)`: runs when the call succeeded but the
  transaction applying it failed (`exc`), so that the effect can record that the
  outside world already did the work (e.g. plan to re-send with the same key).

`check` may add prepared values to `params` (the same dict reaches `call` and `apply`).

Effects are registered per trigger with `register`; a trigger without an effect just
changes state.
"""

from dataclasses import dataclass
from typing import Any, Callable

from django.utils import timezone

from states import align_case as wf


class EffectInputError(Exception):
    """The caller's input for a transition is unusable; nothing was done."""


class EffectFailed(Exception):
    """The effect was attempted and failed; the case stays where it was."""


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
    return EFFECTS.get(trigger) or Effect()


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


register("cancel", check=_check_cancel, apply=_apply_cancel)
register("ship", apply=_apply_ship)
