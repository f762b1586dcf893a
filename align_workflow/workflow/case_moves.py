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


def _like_prefix(prefix):
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _clear_attention_elsewhere(case, prefixes):
    """The flag cleared in a statement of its own (databases other than PostgreSQL)."""
    raised_by = Q()
    for prefix in prefixes:
        raised_by |= Q(attention_reason__startswith=prefix)
    if Case.objects.filter(raised_by, pk=case.pk, needs_attention=True).update(
        needs_attention=False, attention_reason=""
    ):
        case.needs_attention, case.attention_reason = False, ""


# Reads run with the move, in the same round trip, once the case row is locked: name ->
# a SELECT with one parameter, the case id. Registered by the layers above (integration:
# the case's pending events), so that what they would ask right after the move costs no
# statement of its own. Each statement of a multi-statement query has its own snapshot
# (READ COMMITTED): the read sees everything committed before the move took the lock.
_PROBES: dict[str, str] = {}


def register_probe(name: str, sql: str) -> None:
    _PROBES[name] = sql


def _probes_allowed():
    # Several statements in one execute need client-side binding (Django's default).
    return bool(_PROBES) and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")


def move_and_log(case, expected_state, changes, log, *, not_busy, clear_attention=()) -> dict | None:
    """Compare-and-set the case row and insert its StateLog row.

    On PostgreSQL both happen in ONE statement (a data-modifying CTE): the history row
    is inserted only if the case row matched, and the transaction costs a single round
    trip. Elsewhere, the same in two statements.

    `clear_attention`: reason prefixes; a needs-attention flag whose reason begins with
    one of them is cleared by the same statement (tested against the row as it is when
    it is updated), and `case` gets the flag and reason the row now holds.

    Returns the rows of every registered probe ({name: rows}), read after the move in
    the same round trip; None where they were not run (then the caller asks itself).
    """
    clear_attention = () if {"needs_attention", "attention_reason"} & set(changes) else tuple(clear_attention)
    if connection.vendor != "postgresql":
        compare_and_set(case, expected_state, changes, not_busy=not_busy)
        if clear_attention:
            _clear_attention_elsewhere(case, clear_attention)
        log.save(force_insert=True)
        return None
    case_meta, log_meta = Case._meta, StateLog._meta
    assignments, params = [], []
    for name, value in changes.items():
        field = case_meta.get_field(name)
        assignments.append(f'"{field.column}" = %s')
        params.append(field.get_db_prep_save(value, connection))
    if clear_attention:
        raised = '"needs_attention" AND "attention_reason" LIKE ANY(%s)'
        assignments.append(f'"needs_attention" = CASE WHEN {raised} THEN false ELSE "needs_attention" END')
        assignments.append(f'"attention_reason" = CASE WHEN {raised} THEN \'\' ELSE "attention_reason" END')
        patterns = [_like_prefix(prefix) for prefix in clear_attention]
        params += [patterns, patterns]
    where = f'"{case_meta.pk.column}" = %s AND "state" = %s'
    params += [case.pk, expected_state]
    if not_busy:
        where += ' AND ("busy_until" IS NULL OR "busy_until" <= %s)'
        params.append(case_meta.get_field("busy_until").get_db_prep_save(timezone.now(), connection))
    columns = [log_meta.get_field(name).column for name in _LOG_COLUMNS]
    params += [log_meta.get_field(name).get_db_prep_save(getattr(log, name), connection) for name in _LOG_COLUMNS]
    pk = case_meta.pk.column
    sql = (
        f'WITH moved AS (UPDATE "{case_meta.db_table}" SET {", ".join(assignments)} WHERE {where} '
        f'RETURNING "{pk}", "needs_attention", "attention_reason"), '
        f'logged AS (INSERT INTO "{log_meta.db_table}" ({", ".join(columns)}, "object_id") '
        f'SELECT {", ".join(["%s"] * len(columns))}, moved."{pk}" FROM moved '
        f'RETURNING "{log_meta.pk.column}") '
        f'SELECT logged."{log_meta.pk.column}", moved."needs_attention", moved."attention_reason" FROM logged, moved'
    )
    probes = list(_PROBES.items()) if _probes_allowed() else []
    for _name, probe in probes:
        sql += f"; {probe}"
        params.append(case.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        found = {}
        for name, _probe in probes:
            cursor.nextset()
            found[name] = cursor.fetchall()
    if row is None:
        raise StateMoved
    log.pk = row[0]
    log._state.adding = False
    case.needs_attention, case.attention_reason = row[1], row[2]
    return found if probes else None
