import html
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


def _titles(svg):
    return set(re.findall(r"<title>([^<]+)</title>", svg))


def test_workflow_diagram_shows_every_state_and_step_once_in_words():
    svg = (diagrams.DIAGRAM_DIR / "align_case.svg").read_text()
    titles = _titles(svg)
    for state in wf.STATES:
        assert state in titles
        assert wf.state_label(state).capitalize() in svg  # the words, the technical name in small print
    for t in wf.TRANSITIONS:
        assert f">{wf.trigger_label(t.trigger)}</text>" in svg
        if t.trigger == "cancel":
            continue
        for source in t.source:
            assert f"{source}&#45;&gt;{t.dest}" in titles, (source, t.dest)


def test_cancel_is_drawn_once_from_any_open_state():
    svg = (diagrams.DIAGRAM_DIR / "align_case.svg").read_text()
    into_cancelled = [t for t in _titles(svg) if t.endswith(f"&#45;&gt;{wf.CANCELLED}")]
    assert into_cancelled == [f"any_open_state&#45;&gt;{wf.CANCELLED}"]
    assert svg.count(">Cancel</text>") == 1


def test_each_step_says_who_may_do_it_and_what_it_needs():
    svg = html.unescape((diagrams.DIAGRAM_DIR / "align_case.svg").read_text())
    assert "by staff or automatically" in svg  # create order / upload assets / accept
    assert "by the provider" in svg  # approve, request revision
    assert "by Align" in svg  # receive plan, ship
    assert "needs the checklist all ticked" in svg  # create patient's guard
    assert f"only while the switch {wf.FLAG_INITIATE_ORDER} is on" in svg
    assert f"only while the switch {wf.FLAG_SET_ORDER_STATUS} is on" in svg


def test_labels_are_readable_size():
    svg = (diagrams.DIAGRAM_DIR / "align_case.svg").read_text()
    sizes = [float(s) for s in re.findall(r'font-size="([0-9.]+)"', svg)]
    assert min(sizes) >= 10


def _node_fill(svg, state):
    block = re.search(rf"<title>{state}</title>.*?<path fill=\"([^\"]+)\"", svg, re.S)
    return block.group(1)


def _edge_colour(svg, source, dest):
    block = re.search(rf"<title>{source}&#45;&gt;{dest}</title>.*?<path fill=\"none\" stroke=\"([^\"]+)\"", svg, re.S)
    return block.group(1)


@pytest.mark.django_db
def test_case_diagram_highlights_current_state_and_path(staff, flags_on, local_effects_only):
    from align_workflow.workflow import fire

    case = make_case(state=wf.ORDER_CREATED)
    fire(case, "cancel", by=staff, reason="test")
    svg = diagrams.case_svg(case)
    assert _node_fill(svg, wf.CANCELLED) != _node_fill(svg, wf.ELIGIBLE)
    # the steps it took are marked; the cancel it made is drawn from where it was made
    assert _edge_colour(svg, wf.ORDER_CREATED, wf.CANCELLED) == "blue"
    assert _edge_colour(svg, wf.ORDER_CREATED, wf.ASSETS_UPLOADED) != "blue"
    assert f"{wf.ELIGIBLE}&#45;&gt;{wf.CANCELLED}" not in _titles(svg)


def test_render_diagrams_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot`
    with pytest.raises(CommandError, match="needs Graphviz.*make system-deps"):
        call_command("render_diagrams", "--check")
