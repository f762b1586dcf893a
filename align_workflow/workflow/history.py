"""Reading a case's history: the StateLog rows the engine wrote."""

from django_fsm_log.models import StateLog


def state_logs(case):
    return StateLog.objects.for_(case).select_related("by").order_by("timestamp", "id")


def path_taken(case) -> list[tuple[str, str]]:
    """The (source, target) pairs the case has gone through, oldest first."""
    return [(log.source_state, log.state) for log in state_logs(case)]
