"""How the workflow is drawn (diagrams/ and the portals' pictures), from the table in align_case.py.

Each state is a box with its label in words and its technical name in small print.
Each step is an arrow labelled with what it is, who may do it, and what it needs (the
checklist, or a switch that must be on). Cancelling is allowed from every open state,
so it is drawn once, from "any open state", instead of one arrow per state.

A case's own drawing highlights where it is now and marks the steps it took (a case
that was cancelled also shows the arrow from the state it was cancelled in).
"""

from html import escape

import graphviz

from . import align_case as wf

TITLE = "Align case workflow"
ANY_OPEN_STATE = "any_open_state"  # the one box every cancel arrow starts from

ACTOR_WORDS = {
    wf.STAFF: "staff",
    wf.PROVIDER: "the provider",
    wf.ALIGN: "Align",
    wf.SYSTEM: "automatically",
}
GUARD_WORDS = {
    wf.CAN_SEND_TO_ALIGN: "needs the checklist all ticked",
}

FONT = "DejaVu Sans"
CURRENT_FILL = "#cfe3fa"
CURRENT_BORDER = "#1a5fb4"
TAKEN = "blue"  # the steps a case took
NOT_TAKEN = "#555555"


def actors_words(actors) -> str:
    """Who may fire a step: "staff or automatically"."""
    return " or ".join(ACTOR_WORDS.get(a, a) for a in actors)


def needs_words(transition) -> list[str]:
    """What a step needs besides being in the right state, one phrase each."""
    needs = []
    if transition.guard:
        needs.append(GUARD_WORDS.get(transition.guard, f"needs {transition.guard}"))
    if transition.flag:
        needs.append(f"only while the switch {transition.flag} is on")
    return needs


def state_label(state: str, *lines: str) -> str:
    """A state's box: its label in words, the technical name small, then any extra lines."""
    parts = [f"<b>{escape(wf.state_label(state).capitalize())}</b>"]
    parts += [escape(line) for line in lines]
    parts.append(f'<font point-size="10" color="#555555">{escape(state)}</font>')
    return "<" + "<br/>".join(parts) + ">"


def _step_label(transition) -> str:
    lines = [f"<b>{escape(wf.trigger_label(transition.trigger))}</b>", escape(f"by {actors_words(transition.actor)}")]
    lines += [f'<i><font point-size="10">{escape(need)}</font></i>' for need in needs_words(transition)]
    return "<" + "<br/>".join(lines) + ">"


def graph(current: str | None = None, path=()) -> graphviz.Digraph:
    """A graphviz Digraph of the workflow; with `current`, that state is highlighted and
    the `path` steps are marked (`path`: the (source, dest) pairs the case took)."""
    taken = {tuple(step) for step in path}
    from_any_open = [t for t in wf.TRANSITIONS if set(t.source) == set(wf.NON_TERMINAL)]
    dot = graphviz.Digraph(name=TITLE, comment=TITLE)
    dot.attr("graph", label=TITLE, labelloc="t", fontsize="18", fontname=FONT, rankdir="TB", nodesep="0.5")
    dot.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname=FONT, fontsize="14")
    dot.attr("edge", fontname=FONT, fontsize="12", color=NOT_TAKEN, fontcolor="#222222")

    for state in wf.STATES:
        attrs = {"label": state_label(state), "tooltip": wf.MEANINGS[state]}
        if state == current:
            attrs.update(fillcolor=CURRENT_FILL, color=CURRENT_BORDER, penwidth="3")
        dot.node(state, **attrs)

    for transition in wf.TRANSITIONS:
        if transition in from_any_open:
            continue
        for source in transition.source:
            attrs = {"label": _step_label(transition), "tooltip": transition.effect}
            if (source, transition.dest) in taken:
                attrs.update(color=TAKEN, penwidth="2.5")
            dot.edge(source, transition.dest, **attrs)

    # Cancel: once, from every open state at the same time.
    if from_any_open:
        dot.node(
            ANY_OPEN_STATE,
            label=f'<any open state<br/><font point-size="10" color="#555555">{escape(_open_range())}</font>>',
            shape="note",
            style="filled",
            fillcolor="#f4f4f4",
            tooltip="Every state but " + " and ".join(wf.state_label(s) for s in wf.TERMINAL),
        )
    for transition in from_any_open:
        label, effect = _step_label(transition), transition.effect
        dot.edge(ANY_OPEN_STATE, transition.dest, label=label, tooltip=effect, style="dashed")
        for source, dest in sorted(taken):
            if dest == transition.dest and source in transition.source:
                dot.edge(source, dest, label=label, color=TAKEN, penwidth="2.5", tooltip=effect)
    return dot


def _open_range() -> str:
    open_states = wf.NON_TERMINAL
    return f"{wf.state_label(open_states[0])} … {wf.state_label(open_states[-1])}"
