"""No page depends on Graphviz's `dot` to answer, and a page does not run `dot` on every load."""

import logging
import os

import pytest
from graphviz.backend import execute

from align_workflow.workflow import diagrams
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

EXPLANATION = "Diagrams need Graphviz"


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    """`dot` is not installed: PATH is an empty directory, and the warning was not given yet."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(diagrams, "_missing_graphviz_logged", False)


@pytest.fixture
def dot_runs(monkeypatch):
    """Counts the times graphviz starts `dot`."""
    calls = []
    real = execute.run_check

    def counting(cmd, *args, **kwargs):
        calls.append(cmd)
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(execute, "run_check", counting)
    return calls


def test_case_page_and_support_page_answer_without_dot_and_say_why(staff_client, no_dot, caplog):
    case = make_case(state=wf.ORDER_CREATED)
    caplog.set_level(logging.WARNING, logger="align_workflow.workflow.diagrams")
    for _ in range(2):
        page = staff_client.get(f"/staff/cases/{case.pk}/")
        support = staff_client.get("/support/workflow/")
        for response in (page, support):
            assert response.status_code == 200
            html = response.content.decode()
            assert EXPLANATION in html
            assert "make system-deps" in html
            # no diagram (the support page's analytics charts are drawn without Graphviz)
            assert "<svg" not in html.replace('<svg class="chart"', "")
    warnings = [r for r in caplog.records if r.name == "align_workflow.workflow.diagrams"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert "Graphviz" in warnings[0].getMessage()


def test_the_diagram_comes_back_once_dot_is_installed(staff_client, monkeypatch, tmp_path):
    case = make_case(state=wf.ORDER_CREATED)
    real_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert EXPLANATION in staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    monkeypatch.setenv("PATH", real_path)
    html = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert EXPLANATION not in html
    assert '<svg class="diagram"' in html


def test_a_case_diagram_is_rendered_once_per_state_and_path(
    staff_client, staff, flags_on, local_effects_only, dot_runs
):
    from align_workflow.workflow import fire

    case = make_case(state=wf.ORDER_CREATED)
    first = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    again = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert len(dot_runs) == 1
    assert first.count("<svg") == again.count("<svg") == 1
    # Another case with the same state and path shares the drawing.
    twin = make_case(state=wf.ORDER_CREATED)
    staff_client.get(f"/staff/cases/{twin.pk}/")
    assert len(dot_runs) == 1
    # The case moves: a new path, a new drawing with the new state highlighted.
    fire(case, "cancel", by=staff, reason="test")
    moved = staff_client.get(f"/staff/cases/{case.pk}/").content.decode()
    assert len(dot_runs) == 2
    assert moved != first


def test_the_support_diagram_is_rendered_once_per_set_of_counts(staff_client, dot_runs):
    make_case(state=wf.ORDER_CREATED)
    staff_client.get("/support/workflow/")
    staff_client.get("/support/workflow/")
    assert len(dot_runs) == 1
    make_case(state=wf.ORDER_CREATED)
    html = staff_client.get("/support/workflow/").content.decode()
    assert len(dot_runs) == 2
    assert "2 cases" in html[html.index('id="workflow-diagram"') :]


def test_the_cache_key_changes_with_the_workflow(monkeypatch):
    before = diagrams.workflow_version()
    monkeypatch.setattr(wf, "TRANSITIONS", wf.TRANSITIONS[:-1])
    diagrams.workflow_version.cache_clear()
    try:
        assert diagrams.workflow_version() != before
    finally:
        monkeypatch.undo()
        diagrams.workflow_version.cache_clear()
    assert diagrams.workflow_version() == before
