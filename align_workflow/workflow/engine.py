"""The workflow engine: the one place where an Align case changes state.

    fire(case, "create_order", by=request.user)

checks the trigger against the table in states/ (state, actor, waffle flag, guard),
runs the transition's effect, moves the case and writes one django-fsm-log StateLog
row in the same transaction. A refusal raises TransitionNotAllowed before anything is
sent or written.

Effects that call Align run with no transaction open and no row lock held: the case
is first *claimed* in a short transaction (so that a double click or a racing worker
is refused instead of sending twice), the call is made, and the change is committed
in a second short transaction that re-checks the state under the row lock.
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
from waffle import get_waffle_flag_model

from align_workflow.cases.models import Case, Prescription
from states import align_case as wf
from states.machine import next_state

from . import effects as effect_registry
from .guards import GUARDS

logger = logging.getLogger(__name__)

# Sent after the transaction that applied a transition has committed.
transition_applied = Signal()  # kwargs: case_id, trigger, source, target


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


def _label(trigger):
    return trigger.replace("_", " ")


def roles_of(case, by) -> set[str]:
    """The actor roles `by` holds on `case` (None is Align and automation)."""
    if by is None:
        return {wf.ALIGN, wf.SYSTEM}
    roles = set()
    if getattr(by, "is_staff", False):
        roles.add(wf.STAFF)
    provider_user_id = (
        Prescription.objects.filter(case_id=case.pk).values_list("provider__user_id", flat=True).first()
    )
    if provider_user_id is not None and provider_user_id == by.pk:
        roles.add(wf.PROVIDER)
    return roles


def _is_provider(user) -> bool:
    from align_workflow.cases.models import Provider

    return user is not None and Provider.objects.filter(user_id=user.pk).exists()


def flag_is_on(name: str, by=None) -> bool:
    flag = get_waffle_flag_model().get(name)
    if flag.pk is None:
        return False
    if flag.everyone is not None:
        return bool(flag.everyone)
    return bool(by is not None and flag.is_active_for_user(by))


def _check_actor(case, spec, by):
    roles = roles_of(case, by)
    if roles & set(spec.actor):
        return
    if wf.PROVIDER in spec.actor and _is_provider(by):
        raise TransitionNotAllowed(
            "This case belongs to another provider.", code="not_your_case", trigger=spec.trigger, state=case.state
        )
    who = "Align or automation" if by is None else (", ".join(sorted(roles)) or "neither staff nor this case's provider")
    raise TransitionNotAllowed(
        f"Only {' or '.join(spec.actor)} may {_label(spec.trigger)}; this request comes from {who}.",
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
            f"Cannot {_label(spec.trigger)}: the case is {case.state.replace('_', ' ')} "
            f"({wf.MEANINGS[case.state]}); this is allowed only from: {allowed}.",
            code="wrong_state",
            trigger=spec.trigger,
            state=case.state,
        ) from None


def _check_flag(case, spec, by):
    if spec.flag and not flag_is_on(spec.flag, by):
        raise TransitionNotAllowed(
            f"The '{spec.flag}' flag is off, so {_label(spec.trigger)} is disabled; nothing was sent.",
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
            f"Cannot {_label(spec.trigger)}: " + "; ".join(f"{c.label}: {c.reason}" for c in failed) + ".",
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


def _check_claim(case, spec):
    if case.busy_with and case.busy_until and case.busy_until > timezone.now():
        raise TransitionNotAllowed(
            f"{_label(case.busy_with).capitalize()} is already being sent to Align for this case; "
            "wait for it to finish.",
            code="in_progress",
            trigger=spec.trigger,
            state=case.state,
        )


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


def _lock(case_id) -> Case:
    return Case.objects.select_for_update().get(pk=case_id)


def _claim(case_id, spec, by):
    with transaction.atomic():
        locked = _lock(case_id)
        check(locked, spec.trigger, by=by)
        _check_claim(locked, spec)
        locked.busy_with = spec.trigger
        locked.busy_until = timezone.now() + timedelta(seconds=settings.ALIGN_CALL_LEASE_SECONDS)
        locked.save(update_fields=["busy_with", "busy_until"])
    return locked


def _release(case_id, trigger):
    Case.objects.filter(pk=case_id, busy_with=trigger).update(busy_with="", busy_until=None)


def _copy_fields(target, source):
    for field in Case._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


def fire(case, trigger, *, by, **params):
    """Fire `trigger` on `case` as `by` (a user, or None for Align and automation).

    Returns the StateLog row written. Raises TransitionNotAllowed when refused (nothing
    sent, nothing written); an effect's own exception when its call fails (the case
    stays where it was). On success `case` is updated in place.
    """
    spec = _spec(trigger)
    effect = effect_registry.get(trigger)
    if effect.check:
        # Refuse the wrong caller / state / flag before reading (and maybe decoding) the input.
        check(case, trigger, by=by)
        try:
            effect.check(case, by, params)
        except effect_registry.EffectInputError as exc:
            raise TransitionNotAllowed(str(exc), code="invalid_input", trigger=trigger, state=case.state) from exc

    result = None
    claimed = False
    if effect.call:
        locked = _claim(case.pk, spec, by)
        claimed = True
        try:
            result = effect.call(locked, by, params)
        except BaseException:
            _release(case.pk, trigger)
            raise

    try:
        with transaction.atomic():
            locked = _lock(case.pk)
            if claimed:
                # The call succeeded; only the state can have moved on meanwhile.
                _check_state(locked, spec)
            else:
                check(locked, trigger, by=by)
                _check_claim(locked, spec)
            description = effect.apply(locked, by, params, result) if effect.apply else None
            source = locked.state
            locked.state = spec.dest
            locked.state_changed_at = timezone.now()
            if claimed:
                locked.busy_with, locked.busy_until = "", None
            locked.save()
            log = StateLog.objects.create(
                by=by,
                source_state=source,
                state=spec.dest,
                transition=trigger,
                content_type=ContentType.objects.get_for_model(Case),
                object_id=locked.pk,
                description=description or params.get("description") or None,
            )
            transaction.on_commit(
                lambda: transition_applied.send(
                    sender=Case, case_id=locked.pk, trigger=trigger, source=source, target=spec.dest
                )
            )
    except BaseException as exc:
        if claimed:
            _release(case.pk, trigger)
            if effect.recover:
                # The call did its work but the change was not saved: let the effect record that.
                try:
                    effect.recover(case, by, params, result, exc)
                except Exception:
                    logger.exception("case %s: recovering from a failed %s commit failed too", case.pk, trigger)
        raise
    _copy_fields(case, locked)
    logger.info("case %s: %s %s -> %s", locked.pk, trigger, source, spec.dest)
    return log
