"""One vocabulary: the words people read for states and triggers come from states/, event
types and Align's status order are defined once, and each name means one thing."""

import ast
import re
from pathlib import Path

from align_simulator import progress
from align_workflow.align import payloads
from align_workflow.integration import align_status
from align_workflow.integration.models import InboundEvent
from states import align_case as wf

PACKAGE = Path(__file__).resolve().parents[2] / "align_workflow"


def test_every_state_and_trigger_has_one_label():
    assert list(wf.STATE_LABELS) == list(wf.STATES)
    assert list(wf.TRIGGER_LABELS) == list(wf.TRIGGERS)
    assert wf.state_label(wf.PLAN_RECEIVED) == "plan received"
    assert wf.trigger_label("accept_clincheck") == "Accept ClinCheck"
    assert wf.trigger_words("accept_clincheck") == "accept clincheck"
    # A name no longer in the table (an old history row) still reads as words.
    assert wf.state_label("on_hold") == "on hold"
    assert wf.trigger_label("resend_scans") == "Resend Scans"


def test_no_module_makes_its_own_labels():
    """Labels come from states/ (the simulator, which is not the app, aside)."""
    pattern = re.compile(r"""\.replace\(\s*["']_["']\s*,\s*["'] ["']\s*\)|\|cut:"_\"""")
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in (".py", ".html") or "simulator" in path.parts or "migrations" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert found == []


def test_event_types_are_defined_once():
    assert [value for value, _ in InboundEvent.Type.choices] == list(payloads.EVENT_TYPES)
    assert {key.split(":")[0] for key in wf.EVENT_TRIGGERS} == set(payloads.EVENT_TYPES)
    # The simulator is the other side of the contract: it must speak the same event types.
    assert set(progress.EVENT_TYPES) == set(payloads.EVENT_TYPES)


def test_align_status_order_is_defined_once():
    ranked = [s for same in payloads.STATUS_ORDER for s in same]
    assert (*ranked, *payloads.ANYTIME_STATUSES) == payloads.ALIGN_STATUSES
    assert align_status.STATUS_RANK is payloads.STATUS_RANK
    assert payloads.STATUS_RANK["CLINCHECK_READY"] == payloads.STATUS_RANK["SETUP_IN_PROGRESS"]
    assert payloads.STATUS_RANK["RECEIVED"] < payloads.STATUS_RANK["APPROVED"] < payloads.STATUS_RANK["SHIPPED"]


def _top_level_names(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_outcome_and_status_each_mean_one_thing():
    modules = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    for name in ("Outcome", "Status"):
        defined = [str(p.relative_to(PACKAGE.parent)) for p in modules if name in _top_level_names(p)]
        assert defined == [], f"a module-level {name!r} (say which: EventOutcome, AttemptStatus, ...)"


def test_every_trigger_has_its_timeline_words_and_every_align_status_a_label():
    assert list(wf.STEP_DONE) == list(wf.TRIGGERS)
    assert wf.step_done("upload_assets") == "Align received the scans"
    assert wf.step_done("resend_scans") == "Resend Scans"
    assert set(wf.ALIGN_STATUS_LABELS) == set(payloads.ALIGN_STATUSES)
    assert wf.align_status_label("IN_MANUFACTURING") == "In manufacturing"
    assert wf.align_status_label("LOST_IN_TRANSIT") == "LOST_IN_TRANSIT"
