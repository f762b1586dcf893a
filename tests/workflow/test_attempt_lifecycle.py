"""The lifecycle of a call to Align (an OutboundAttempt) is one state machine, in
outbound/lifecycle.py: every allowed move is made, every other one is refused, and
nothing else in the project writes an attempt's status."""

import ast
from pathlib import Path

import pytest
from django.utils import timezone

from align_workflow.workflow.models import OutboundAttempt
from align_workflow.workflow.outbound import lifecycle
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

S = OutboundAttempt.Status
ALLOWED = {
    ("start", S.PENDING): S.IN_FLIGHT,
    ("skip", S.PENDING): S.SKIPPED,
    ("succeed", S.IN_FLIGHT): S.SUCCEEDED,
    ("succeed", S.FAILED_RETRYABLE): S.SUCCEEDED,  # Align's answer came after the lease ran out
    ("fail", S.IN_FLIGHT): S.FAILED_RETRYABLE,
    ("give_up", S.IN_FLIGHT): S.FAILED_PERMANENT,
    ("expire", S.IN_FLIGHT): S.FAILED_RETRYABLE,
}
REFUSED = [(move, status) for move in lifecycle.MOVES for status in S.values if (move, status) not in ALLOWED]


def an_attempt(status):
    case = make_case()
    # Rows in every status are made directly: the lifecycle only creates pending or in-flight ones.
    return OutboundAttempt.objects.create(
        case=case,
        step="create_order",
        idempotency_key=f"k-{case.pk}",
        attempt=1,
        status=status,
        claimed_until=timezone.now(),
    )


def test_the_table_is_the_one_tested_here():
    assert {(m.name, source): m.dest for m in lifecycle.MOVES.values() for source in m.source} == ALLOWED


@pytest.mark.parametrize(("move", "source"), list(ALLOWED), ids=[f"{m}-from-{s}" for m, s in ALLOWED])
def test_an_allowed_move_is_made_with_its_fields(move, source):
    attempt = an_attempt(source)
    assert lifecycle.allowed(source, ALLOWED[move, source])
    assert lifecycle.move(attempt.pk, move, message="why") is True
    attempt.refresh_from_db()
    assert (attempt.status, attempt.message) == (ALLOWED[move, source], "why")


@pytest.mark.parametrize(("move", "source"), REFUSED, ids=[f"{m}-from-{s}" for m, s in REFUSED])
def test_a_move_from_another_status_changes_nothing(move, source):
    attempt = an_attempt(source)
    assert not lifecycle.allowed(source, lifecycle.MOVES[move].dest) or source in lifecycle.FINAL
    assert lifecycle.move(attempt.pk, move, message="why") is False
    attempt.refresh_from_db()
    assert (attempt.status, attempt.message) == (source, "")


def test_a_move_honours_its_extra_condition():
    attempt = an_attempt(S.IN_FLIGHT)  # its lease ends now, so it has not run out "before" a minute ago
    a_minute_ago = timezone.now() - timezone.timedelta(minutes=1)
    assert lifecycle.move(attempt.pk, "expire", where={"claimed_until__lt": a_minute_ago}) is False
    attempt.refresh_from_db()
    assert attempt.status == S.IN_FLIGHT


def test_two_racing_processes_make_a_move_once():
    attempt = an_attempt(S.PENDING)
    assert [lifecycle.move(attempt.pk, "start"), lifecycle.move(attempt.pk, "start")] == [True, False]


def test_an_unknown_move_or_a_status_smuggled_in_is_an_error():
    attempt = an_attempt(S.PENDING)
    with pytest.raises(lifecycle.LifecycleError, match="no move 'finish'"):
        lifecycle.move(attempt.pk, "finish")
    with pytest.raises(lifecycle.LifecycleError, match="the move sets the status"):
        lifecycle.move(attempt.pk, "start", status=S.SUCCEEDED)


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED_RETRYABLE, S.FAILED_PERMANENT, S.SKIPPED])
def test_an_attempt_is_created_pending_or_in_flight_only(status):
    case = make_case()
    with pytest.raises(lifecycle.LifecycleError, match="created pending or in flight"):
        lifecycle.create(status, case_id=case.pk, step="create_order", idempotency_key="k", attempt=1)
    assert not OutboundAttempt.objects.filter(case=case).exists()


@pytest.mark.parametrize("status", lifecycle.INITIAL)
def test_a_new_attempt_is_recorded(status):
    case = make_case()
    created = lifecycle.create(status, case_id=case.pk, step="create_order", idempotency_key="k", attempt=1)
    assert OutboundAttempt.objects.get(pk=created.pk).status == status


def _writes_status(node):
    """A call that writes an attempt's status: .update(status=...), .create(status=...),
    or an assignment to `<something>.status`."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("update", "create", "get_or_create", "update_or_create", "bulk_update")
    ):
        return any(k.arg == "status" for k in node.keywords)
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Attribute) and t.attr == "status" for t in node.targets)
    return False


def test_no_other_module_writes_an_attempts_status():
    root = Path(__file__).resolve().parents[2] / "align_workflow" / "workflow"
    writers = []
    for path in root.rglob("*.py"):
        if path.name == "lifecycle.py" or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        writers += [f"{path.relative_to(root)}:{n.lineno}" for n in ast.walk(tree) if _writes_status(n)]
    assert writers == []


def test_the_callers_copy_gets_the_new_values_only_when_the_move_was_made():
    attempt = an_attempt(S.IN_FLIGHT)
    assert lifecycle.move(attempt.pk, "give_up", instance=attempt, error_code="X") is True
    assert (attempt.status, attempt.error_code) == (S.FAILED_PERMANENT, "X")
    assert lifecycle.move(attempt.pk, "fail", instance=attempt, error_code="Y") is False
    assert (attempt.status, attempt.error_code) == (S.FAILED_PERMANENT, "X")
