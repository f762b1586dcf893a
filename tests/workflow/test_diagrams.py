import re
import shutil

import pytest
from django.core.management import CommandError, call_command

from align_workflow.workflow import diagrams
from states import align_case as wf
from tests.support.factories import make_case


def test_committed_diagrams_are_up_to_date():
    call_command("render_diagrams", "--check")


def test_check_fails_when_a_diagram_is_stale(tmp_path, monkeypatch):
    shutil.copytree(diagrams.DIAGRAM_DIR, tmp_path, dirs_exist_ok=True)
    monkeypatch.setattr(diagrams, "DIAGRAM_DIR", tmp_path)
    (tmp_path / "align_case.dot").write_text("digraph {}")
    with pytest.raises(CommandError, match="align_case.dot"):
        call_command("render_diagrams", "--check")
    call_command("render_diagrams")
    call_command("render_diagrams", "--check")


def test_workflow_diagram_shows_every_state_and_transition():
    svg = (diagrams.DIAGRAM_DIR / "align_case.svg").read_text()
    titles = set(re.findall(r"<title>([^<]+)</title>", svg))
    for state in wf.STATES:
        assert state in titles
    for t in wf.TRANSITIONS:
        for source in t.source:
            assert f"{source}&#45;&gt;{t.dest}" in titles, (source, t.dest)
            assert f">{t.trigger}</text>" in svg


def _node_fill(svg, state):
    block = re.search(rf"<title>{state}</title>\s*<path fill=\"([^\"]+)\"", svg)
    return block.group(1)


def _edge_colour(svg, source, dest):
    block = re.search(rf"<title>{source}&#45;&gt;{dest}</title>\s*<path fill=\"none\" stroke=\"([^\"]+)\"", svg)
    return block.group(1)


@pytest.mark.django_db
def test_case_diagram_highlights_current_state_and_path(staff, flags_on, local_effects_only):
    from align_workflow.workflow import fire

    case = make_case(state=wf.ORDER_CREATED)
    fire(case, "cancel", by=staff, reason="test")
    svg = diagrams.case_svg(case)
    assert _node_fill(svg, wf.CANCELLED) != _node_fill(svg, wf.ELIGIBLE)
    assert _edge_colour(svg, wf.ORDER_CREATED, wf.CANCELLED) != _edge_colour(svg, wf.ELIGIBLE, wf.CANCELLED)
    assert _edge_colour(svg, wf.ORDER_CREATED, wf.CANCELLED) == "blue"


def test_render_diagrams_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot`
    with pytest.raises(CommandError, match="needs Graphviz.*make system-deps"):
        call_command("render_diagrams", "--check")
