"""Builds the pytransitions machine from the table in align_case.py.

One machine is shared by the whole process: a case is never bound to it. To try a
trigger we hand the machine a small throwaway object holding the case's current
state (building a Machine per case costs milliseconds and leaks memory).
"""

from functools import lru_cache

from transitions import Machine, MachineError

from . import align_case as wf


def _transition_dicts():
    return [{"trigger": t.trigger, "source": list(t.source), "dest": t.dest} for t in wf.TRANSITIONS]


class _StateHolder:
    """The minimum pytransitions needs from a model: a `state` attribute."""

    __slots__ = ("state",)

    def __init__(self, state):
        self.state = state


@lru_cache(maxsize=1)
def machine() -> Machine:
    return Machine(
        model=None,
        states=list(wf.STATES),
        transitions=_transition_dicts(),
        initial=wf.INITIAL,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )


def allowed_triggers(state: str) -> list[str]:
    """Triggers the table allows from `state`, in table order."""
    events = machine().events
    return [t for t in wf.TRIGGERS if state in events[t].transitions]


def next_state(state: str, trigger: str) -> str:
    """The state `trigger` leads to from `state`; raises MachineError if not allowed."""
    if trigger not in machine().events:
        raise MachineError(f"unknown trigger {trigger!r}")
    holder = _StateHolder(state)
    machine().events[trigger].trigger(holder)
    return holder.state
