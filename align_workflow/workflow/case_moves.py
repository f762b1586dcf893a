"""Writing a case's move: the compare-and-set of the case row and its StateLog row.

Every write to the case row is `UPDATE … WHERE state = <the state we checked>`: the
UPDATE takes the row lock and holds it until commit, so of two racing transactions one
wins and the other, once the lock is free, matches no row (StateMoved); the engine then
re-reads the case and refuses it with the real reason.
"""

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case


class StateMoved(Exception):
    """The compare-and-set found the case no longer as checked; re-read and re-check."""


def compare_and_set(case, expected_state, changes, *, not_busy):
    """UPDATE the case row only if it is still in `expected_state` (and, with `not_busy`,
    not claimed by a call in flight). The UPDATE takes the row lock, which is held until
    the transaction ends: a racing transaction waits, then matches no row."""
    rows = Case.objects.filter(pk=case.pk, state=expected_state)
    if not_busy:
        rows = rows.filter(Q(busy_until__isnull=True) | Q(busy_until__lte=timezone.now()))
    if rows.update(**changes) != 1:
        raise StateMoved


_LOG_COLUMNS = ("timestamp", "by_id", "source_state", "state", "transition", "content_type_id", "description")


def move_and_log(case, expected_state, changes, log, *, not_busy):
    """Compare-and-set the case row and insert its StateLog row.

    On PostgreSQL both happen in ONE statement (a data-modifying CTE): the history row
    is inserted only if the case row matched, and the transaction costs a single round
    trip. Elsewhere, the same in two statements.
    """
    if connection.vendor != "postgresql":
        compare_and_set(case, expected_state, changes, not_busy=not_busy)
        log.save(force_insert=True)
        return
    case_meta, log_meta = Case._meta, StateLog._meta
    assignments, params = [], []
    for name, value in changes.items():
        field = case_meta.get_field(name)
        assignments.append(f'"{field.column}" = %s')
        params.append(field.get_db_prep_save(value, connection))
    where = f'"{case_meta.pk.column}" = %s AND "state" = %s'
    params += [case.pk, expected_state]
    if not_busy:
        where += ' AND ("busy_until" IS NULL OR "busy_until" <= %s)'
        params.append(case_meta.get_field("busy_until").get_db_prep_save(timezone.now(), connection))
    columns = [log_meta.get_field(name).column for name in _LOG_COLUMNS]
    params += [log_meta.get_field(name).get_db_prep_save(getattr(log, name), connection) for name in _LOG_COLUMNS]
    sql = (
        f'WITH moved AS (UPDATE "{case_meta.db_table}" SET {", ".join(assignments)} WHERE {where} '
        f'RETURNING "{case_meta.pk.column}") '
        f'INSERT INTO "{log_meta.db_table}" ({", ".join(columns)}, "object_id") '
        f'SELECT {", ".join(["%s"] * len(columns))}, moved."{case_meta.pk.column}" FROM moved '
        f'RETURNING "{log_meta.pk.column}"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise StateMoved
    log.pk = row[0]
    log._state.adding = False
