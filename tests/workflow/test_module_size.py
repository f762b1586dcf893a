"""No module of the workflow grows past ~400 lines: a module that does is doing more
than one thing (split it by concern, as outbound/ and batch/ are)."""

from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[2] / "align_workflow" / "workflow"
LIMIT = 420


def test_no_workflow_module_is_over_the_limit():
    sizes = {
        str(p.relative_to(WORKFLOW)): len(p.read_text().splitlines())
        for p in WORKFLOW.rglob("*.py")
        if "migrations" not in p.parts
    }
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
