"""The workflow engine: the one place where an Align case changes state.

    fire(case, "create_order", by=request.user)

checks the trigger against the table in states/ (state, actor, waffle flag, guard),
runs the transition's effect, moves the case and writes one django-fsm-log StateLog
row in the same transaction. A refusal raises TransitionNotAllowed before anything is
sent or written.

Effects that call Align run with no transaction open and no row lock held: the case
is first *claimed* (so that a double click or a racing worker is refused instead of
sending twice), the call is made, and the change is committed in a short transaction.

Concurrency: every write to the case row is a compare-and-set, `UPDATE … WHERE
state = <the state we checked>`. The UPDATE takes the row lock and holds it until
commit, so of two racing transactions one wins and the other, once the lock is free,
matches no row; it then re-reads the case and is refused with the real reason
(wrong state, already in progress). One round trip fewer than SELECT … FOR UPDATE.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django_fsm_log.models import StateLog
from transitions import MachineError

from align_workflow.cases.models import Case, CaseNote, Prescription, Provider
from states import align_case as wf
from states.machine import next_state

from . import busy, flags
from . import effects as effect_registry
from .case_moves import StateMoved, compare_and_set, move_and_log
from .effects import EffectParams
from .guards import GUARDS

logger = logging.getLogger(__name__)

# Sent after the transaction that applied a transition has committed.
# `probes`: what case_moves' registered probes read with the move ({name: rows}), or None.
transition_applied = Signal()  # kwargs: case_id, trigger, source, target, probes
# Sent when a call's claim on a case ends without a transition (the call failed): what
# was refused while the case was busy may be tried again.
claim_released = Signal()  # kwargs: case_id, trigger


class TransitionNotAllowed(Exception):
    """A trigger was refused; nothing was sent and nothing was written.

    `code` says why, for callers that branch on it: unknown_trigger, wrong_state,
    actor, not_your_case, flag_off, guard, invalid_input, in_progress.
    """

    def __init__(self, message, *, code, trigger=None, state=None, criteria=None):
        super().__init__(message)
        self.code = code
        self.trigger = trigger
        self.state = state
        self.criteria = criteria or []


def is_staff(by) -> bool:
    """Whether `by` holds the staff role (on every case): a user with is_staff."""
    return by is not None and bool(getattr(by, "is_staff", False))


def roles_of(case, by) -> set[str]:
    """The actor roles `by` holds on `case` (None is Align and automation)."""
    if by is None:
        return {wf.ALIGN, wf.SYSTEM}
    roles = set()
    if is_staff(by):
        roles.add(wf.STAFF)
    provider_user_id = Prescription.objects.filter(case_id=case.pk).values_list("provider__user_id", flat=True).first()
    if provider_user_id is not None and provider_user_id == by.pk:
        roles.add(wf.PROVIDER)
    return roles


def _is_provider(user) -> bool:
    return user is not None and Provider.objects.filter(user_id=user.pk).exists()


def flag_is_on(name: str, by=None) -> bool:
    flag = flags.get_flag(name)  # kept in this process for ALIGN_FLAG_CACHE_SECONDS (see flags.py)
    if flag.pk is None:
        return False
    if flag.everyone is not None:
        return bool(flag.everyone)
    return bool(by is not None and flag.is_active_for_user(by))


def _check_actor(case, spec, by):
    if wf.STAFF in spec.actor and is_staff(by):
        # Staff may fire it whoever the case's provider is: no need to look the provider up.
        return
    roles = roles_of(case, by)
    if roles & set(spec.actor):
        return
    if wf.PROVIDER in spec.actor and _is_provider(by):
        raise TransitionNotAllowed(
            "This case belongs to another provider.", code="not_your_case", trigger=spec.trigger, state=case.state
        )
    who = (
        "Align or automation" if by is None else (", ".join(sorted(roles)) or "neither staff nor this case's provider")
    )
    raise TransitionNotAllowed(
        f"Only {' or '.join(spec.actor)} may {wf.trigger_words(spec.trigger)}; this request comes from {who}.",
        code="actor",
        trigger=spec.trigger,
        state=case.state,
    )


def _check_state(case, spec):
    try:
        next_state(case.state, spec.trigger)
    except MachineError:
        allowed = ", ".join(spec.source)
        raise TransitionNotAllowed(
            f"Cannot {wf.trigger_words(spec.trigger)}: the case is {wf.state_label(case.state)} "
            f"({wf.MEANINGS[case.state]}); this is allowed only from: {allowed}.",
            code="wrong_state",
            trigger=spec.trigger,
            state=case.state,
        ) from None


def _check_flag(case, spec, by):
    if spec.flag and not flag_is_on(spec.flag, by):
        raise TransitionNotAllowed(
            f"The '{spec.flag}' flag is off, so {wf.trigger_words(spec.trigger)} is disabled; nothing was sent.",
            code="flag_off",
            trigger=spec.trigger,
            state=case.state,
        )


def _check_guard(case, spec):
    if not spec.guard:
        return
    criteria = GUARDS[spec.guard](case)
    failed = [c for c in criteria if not c.ok]
    if failed:
        raise TransitionNotAllowed(
            f"Cannot {wf.trigger_words(spec.trigger)}: " + "; ".join(f"{c.label}: {c.reason}" for c in failed) + ".",
            code="guard",
            trigger=spec.trigger,
            state=case.state,
            criteria=criteria,
        )


def check(case, trigger, *, by):
    """Raise TransitionNotAllowed unless `by` may fire `trigger` on `case` as it is now."""
    spec = _spec(trigger)
    _check_actor(case, spec, by)
    _check_state(case, spec)
    _check_flag(case, spec, by)
    _check_guard(case, spec)
    return spec


def refuse_if_busy(case, trigger, *, attempts=True):
    """TransitionNotAllowed (code in_progress) while a call to Align for the case is in
    flight (see busy.py). `attempts=False`: only the case's claim counts (the engine's own
    check, made while the runner's attempt for this very call is open)."""
    step = busy.busy_step(case, attempts=attempts)
    if step:
        raise TransitionNotAllowed(busy.busy_message(step), code="in_progress", trigger=trigger, state=case.state)


def _check_claim(case, spec):
    refuse_if_busy(case, spec.trigger, attempts=False)


def available_triggers(case, *, by) -> list[str]:
    """Triggers `by` could fire on `case` right now (for showing buttons)."""
    available = []
    for trigger in wf.TRIGGERS:
        try:
            check(case, trigger, by=by)
        except TransitionNotAllowed:
            continue
        available.append(trigger)
    return available


def _spec(trigger):
    spec = wf.BY_TRIGGER.get(trigger)
    if spec is None:
        raise TransitionNotAllowed(f"Unknown action {trigger!r}.", code="unknown_trigger", trigger=trigger)
    return spec


_RETRIES = 3
_FIELDS = [f.attname for f in Case._meta.concrete_fields if not f.primary_key]


def _snapshot(case):
    return {name: getattr(case, name) for name in _FIELDS}


def _refresh(case):
    case.refresh_from_db(fields=_FIELDS)


def _checked(case, checks):
    """Run `checks` on the caller's copy of the case; a refusal is only final once it
    holds on what the database holds (the caller's copy may be stale)."""
    try:
        checks()
    except TransitionNotAllowed:
        _refresh(case)
        checks()


def _claim(case, spec, by):
    """Mark the case as busy with this trigger's call, so that a second caller is refused."""
    for _ in range(_RETRIES):
        _checked(case, lambda: (check(case, spec.trigger, by=by), _check_claim(case, spec)))
        until = timezone.now() + timedelta(seconds=settings.ALIGN_CALL_LEASE_SECONDS)
        try:
            compare_and_set(case, case.state, {"busy_with": spec.trigger, "busy_until": until}, not_busy=True)
        except StateMoved:
            _refresh(case)
            continue
        case.busy_with, case.busy_until = spec.trigger, until
        return case.state
    raise TransitionNotAllowed("The case keeps changing; try again.", code="in_progress", trigger=spec.trigger)


def _release(case, trigger):
    released = Case.objects.filter(pk=case.pk, busy_with=trigger).update(busy_with="", busy_until=None)
    _refresh(case)
    if released:
        case_id = case.pk
        transaction.on_commit(lambda: claim_released.send(sender=Case, case_id=case_id, trigger=trigger))


def _commit(case, spec, by, params, effect, result, claimed_from):
    """The transaction that applies the effect's result, moves the case and logs it."""
    with transaction.atomic():
        if claimed_from is None:
            _checked(case, lambda: (check(case, spec.trigger, by=by), _check_claim(case, spec)))
        else:
            # The call succeeded; only the state can have moved on meanwhile.
            _checked(case, lambda: _check_state(case, spec))
        source = case.state
        before = _snapshot(case)
        description = effect.apply(case, by, params, result) if effect.apply else None
        case.state = spec.dest
        case.state_changed_at = timezone.now()
        if claimed_from is not None:
            case.busy_with, case.busy_until = "", None
        changes = {name: value for name, value in _snapshot(case).items() if value != before[name]}
        changes["state_changed_at"] = case.state_changed_at
        log = StateLog(
            timestamp=case.state_changed_at,
            by=by,
            source_state=source,
            state=spec.dest,
            transition=spec.trigger,
            content_type=ContentType.objects.get_for_model(Case),
            object_id=case.pk,
            description=description or params.get("description") or None,
        )
        clear = params.prepared.get("clear_attention", ())
        probes = move_and_log(case, source, changes, log, not_busy=claimed_from is None, clear_attention=clear)
        case_id, trigger, target = case.pk, spec.trigger, spec.dest
        transaction.on_commit(
            lambda: transition_applied.send(
                sender=Case, case_id=case_id, trigger=trigger, source=source, target=target, probes=probes
            )
        )
    return log


def _input_refused(case, trigger, exc):
    return TransitionNotAllowed(
        str(exc), code=exc.code, trigger=trigger, state=case.state, criteria=getattr(exc, "problems", None)
    )


def _public(trigger, params):
    internal = sorted(name for name in params if name.startswith("_"))
    if internal:
        raise TransitionNotAllowed(
            f"Unknown parameter(s) {', '.join(internal)} for {wf.trigger_words(trigger)}.",
            code="invalid_input",
            trigger=trigger,
        )
    return params


def preflight(case, trigger, *, by, **params) -> EffectParams:
    """Every check `fire` makes before anything is sent, writing and sending nothing:
    the state, the actor, the waffle flag, the guard, the case's claim (no call of
    another trigger holds it), and the effect's check of its input (for a call to Align, its pre-flight of the
    fields Align requires). Raises the TransitionNotAllowed `fire` would; returns the
    parameters as the effect's check prepared them.

    Used by align_batch (its plans and --dry-run) so that a batch decides exactly as the
    engine would; a caller that also needs "no attempt open" asks busy.busy_step.
    """
    _spec(trigger)
    prepared = EffectParams(_public(trigger, params))
    check(case, trigger, by=by)
    refuse_if_busy(case, trigger, attempts=False)
    effect = effect_registry.get(trigger)
    if effect.check:
        try:
            effect.check(case, by, prepared)
        except effect_registry.EffectInputError as exc:
            raise _input_refused(case, trigger, exc) from exc
    prepared.checked = True
    return prepared


def fire(case, trigger, *, by, **params):
    """Fire `trigger` on `case` as `by` (a user, or None for Align and automation).

    Returns the StateLog row written. Raises TransitionNotAllowed when refused (nothing
    sent, nothing written); an effect's own exception when its call fails (the case
    stays where it was). On success `case` is updated in place; after a refusal or a
    failure it holds what the database holds.
    """
    return _fire(case, trigger, by, EffectParams(_public(trigger, params)))


def fire_checked(case, trigger, *, by, params: EffectParams):
    """`fire` with the parameters `preflight()` returned a moment ago (align_batch: its plan
    is the engine's pre-flight): the effect's check of its input is not run again; the
    state, actor, flag, guard and claim are checked again when the case is claimed."""
    if not params.checked:
        raise ValueError("fire_checked takes the parameters preflight() returned")
    return _fire(case, trigger, by, params)


def fire_attempt(case, trigger, *, by, params: EffectParams):
    """`fire` for the outbound runner: the effect sends the recorded, pending attempt
    `params.attempt_id` (`params`: what the attempt kept) instead of recording a new one."""
    return _fire(case, trigger, by, params)


def _fire(case, trigger, by, params):
    spec = _spec(trigger)
    effect = effect_registry.get(trigger)
    if effect.check and not params.checked:
        # Refuse the wrong caller / state / flag before reading (and maybe decoding) the input.
        _checked(case, lambda: check(case, trigger, by=by))
        try:
            effect.check(case, by, params)
        except effect_registry.EffectInputError as exc:
            if exc.note:
                CaseNote.objects.create(case_id=case.pk, text=exc.note)
            raise _input_refused(case, trigger, exc) from exc

    result, claimed_from = None, None
    if effect.call:
        claimed_from = _claim(case, spec, by)
        try:
            result = effect.call(case, by, params)
        except effect_registry.EffectInputError as exc:
            # Input that can only be checked once the case is claimed (a picture is decoded
            # then): a refusal like any other, and the claim is released.
            _release(case, trigger)
            raise TransitionNotAllowed(str(exc), code="invalid_input", trigger=trigger, state=case.state) from exc
        except BaseException:
            _release(case, trigger)
            raise

    try:
        for _attempt in range(_RETRIES):
            try:
                log = _commit(case, spec, by, params, effect, result, claimed_from)
                break
            except StateMoved:
                _refresh(case)
        else:
            raise TransitionNotAllowed("The case keeps changing; try again.", code="in_progress", trigger=trigger)
    except BaseException as exc:
        if claimed_from is not None:
            _release(case, trigger)
            if effect.recover:
                # The call did its work but the change was not saved: let the effect record that.
                try:
                    effect.recover(case, by, params, result, exc)
                except Exception:
                    logger.exception("case %s: recovering from a failed %s commit failed too", case.pk, trigger)
        else:
            _refresh(case)
        raise
    logger.info("case %s: %s %s -> %s", case.pk, trigger, log.source_state, spec.dest)
    return log
