"""states/ must say what the product's workflow (docs/workflow.md) says."""

import re
from pathlib import Path

from states import align_case as wf
from states.machine import allowed_triggers, machine

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "workflow.md"


def test_states_module_imports_no_django():
    import ast

    for path in (Path(wf.__file__).parent).glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(name.startswith("django") for name in imported), path


def test_machine_is_built_from_the_table():
    m = machine()
    assert list(m.states) == list(wf.STATES)
    assert set(m.events) == set(wf.TRIGGERS)  # auto_transitions=False: no to_<state> triggers
    for state in wf.TERMINAL:
        assert allowed_triggers(state) == []


def _contract_rows():
    rows = {}
    for line in CONTRACT.read_text().splitlines():
        m = re.match(r"\| `(\w+)` \| (.+?) \| `(\w+)` \| (.+?) \|", line)
        if m:
            trigger, source, dest, actor = m.groups()
            sources = re.findall(r"`(\w+)`", source)
            if "any non-terminal" in source:
                sources = list(wf.NON_TERMINAL)
            rows[trigger] = (set(sources), dest, actor)
    assert rows, f"no transition rows found in {CONTRACT}"
    return rows


def test_transition_table_matches_the_contract():
    rows = _contract_rows()
    assert set(rows) == set(wf.TRIGGERS)
    for t in wf.TRANSITIONS:
        sources, dest, actor = rows[t.trigger]
        assert set(t.source) == sources, t.trigger
        assert t.dest == dest, t.trigger
        for role in t.actor:
            assert role in actor.lower(), (t.trigger, role, actor)
