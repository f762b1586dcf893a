"""Workflow analytics for support (/support/workflow/ and /support/metrics.json).

Everything is computed in SQL (window functions and aggregates) in a fixed number of
queries, and each query reads only the history of the last weeks: the cases with a
history row since then (index on StateLog's timestamp), and the cases created since
then (index on Case.created). How long the system has been in use does not matter.

Definitions (docs/analytics.md):

- A *stay* in a state runs from the history row that entered it (for `eligible`, the
  case's creation) to the next history row of the same case. It counts when it ended
  within the last WINDOW_DAYS days. Median and 90th percentile by the nearest-rank
  method: the value at rank ceil(p * n) of the n stays sorted by length.
- Weekly, by ISO week of the row's timestamp in the site's time zone (TIME_ZONE), the
  last WEEKS weeks, the current one included: `entered` counts cases created (they
  start in `eligible`), `shipped` and `cancelled` the history rows entering those states.
- The funnel follows the cases created in those weeks (the cohort whose `entered` the
  weekly rows count): how many reached each step from `eligible` to `shipping`, and how
  many were cancelled at each step.
- Revisions per case: of the cohort's cases that received a plan, how many had 0, 1, 2
  and 3 or more revision requests.
- Stuck over time: at the end of each week (now, for the current one), how many cases
  had been in a non-terminal state for longer than ALIGN_STUCK_AFTER_SECONDS.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import TruncWeek
from django.db.models.lookups import Exact
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, Prescription
from states import align_case as wf

from .selectors import in_align_workflow

WINDOW_DAYS = 30
WEEKS = 12
# The steps of the funnel, in order: the main path (revision_requested is a loop beside it).
FUNNEL = (
    wf.ELIGIBLE,
    wf.PATIENT_CREATED,
    wf.ORDER_CREATED,
    wf.ASSETS_UPLOADED,
    wf.PLAN_RECEIVED,
    wf.PROVIDER_APPROVED,
    wf.ACCEPTED,
    wf.SHIPPING,
)
REVISION_BUCKETS = ("0", "1", "2", "3+")


def iso_week(day) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _week_starts(now: datetime) -> list[datetime]:
    """The Mondays (00:00, site time zone) that start the last WEEKS ISO weeks, oldest first."""
    local = timezone.localtime(now)
    monday = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=local.weekday())
    return [monday - timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]


def _seconds(start: str, end: str) -> str:
    """SQL for the seconds between two timestamp columns."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _at(value: datetime):
    """A datetime as the database backend stores it (raw SQL gets no conversion)."""
    return connection.ops.adapt_datetimefield_value(value)


def _steps_sql() -> str:
    """A CTE `steps` of the stays that ended since a given moment (parameter), one row per
    history row: the state the case was in, when it entered it and when it left it."""
    log, case = StateLog._meta.db_table, Case._meta.db_table
    sql = f"""
        WITH recent AS (
            SELECT DISTINCT object_id FROM {log} WHERE content_type_id = %s AND timestamp >= %s
        ),
        steps AS (
            SELECT l.timestamp AS ended,
                   COALESCE(LAG(l.state) OVER w, l.source_state) AS state,
                   COALESCE(LAG(l.timestamp) OVER w, (SELECT c.created FROM {case} c WHERE c.id = l.object_id)) AS started
            FROM {log} l
            JOIN recent r ON r.object_id = l.object_id
            WHERE l.content_type_id = %s
            WINDOW w AS (PARTITION BY l.object_id ORDER BY l.timestamp, l.id)
        )
    """
    # The case's creation is read only for its first row (a subquery per such row, by
    # primary key): joining the cases instead makes PostgreSQL scan all of them.
    return sql


def _content_type_id() -> int:
    return ContentType.objects.get_for_model(Case).pk


def stays(now: datetime, ct: int) -> dict:
    """Per non-terminal state: the stays that ended in the window, their median and p90."""
    since = now - timedelta(days=WINDOW_DAYS)
    cte = _steps_sql()
    sql = f"""{cte},
        stays AS (
            SELECT state, {_seconds("started", "ended")} AS secs FROM steps WHERE ended >= %s AND ended <= %s
        ),
        ranked AS (
            SELECT state, secs,
                   ROW_NUMBER() OVER (PARTITION BY state ORDER BY secs) AS rn,
                   COUNT(*) OVER (PARTITION BY state) AS n
            FROM stays
        )
        SELECT state, MAX(n),
               MAX(CASE WHEN rn = (n + 1) / 2 THEN secs END),
               MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN secs END)
        FROM ranked GROUP BY state
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [ct, _at(since), ct, _at(since), _at(now)])
        rows = {state: (n, median, p90) for state, n, median, p90 in cursor.fetchall()}
    result = {}
    for state in wf.NON_TERMINAL:
        n, median, p90 = rows.get(state, (0, None, None))
        result[state] = {"stays": int(n), "median_seconds": _num(median), "p90_seconds": _num(p90)}
    return result


def _num(value):
    """Seconds as a JSON number, to the millisecond (whole seconds as integers)."""
    if value is None:
        return None
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value


def _prescribed_to_align():
    """Whether a case is in the Align workflow, as a condition inside an aggregate on a
    scalar subquery (its prescription's lab, looked up by the case's index): a join, or
    EXISTS, lets PostgreSQL choose to read every prescription ever written instead."""
    lab = Subquery(Prescription.objects.filter(case=OuterRef("pk")).values("lab")[:1])
    return Q(Exact(lab, Prescription.Lab.ALIGN))


def weekly(starts: list[datetime], ct: int) -> list[dict]:
    first = starts[0]
    entered = (
        Case.objects.filter(created__gte=first)
        .annotate(week=TruncWeek("created"))
        .values("week")
        .annotate(n=Count("id", filter=_prescribed_to_align()))
    )
    # The states are counted, not filtered: a WHERE on the state would lead PostgreSQL to
    # the index on the state, that is to every case ever shipped.
    ended = (
        StateLog.objects.filter(content_type_id=ct, timestamp__gte=first)
        .annotate(week=TruncWeek("timestamp"))
        .values("week")
        .annotate(shipped=Count("id", filter=Q(state=wf.SHIPPING)), cancelled=Count("id", filter=Q(state=wf.CANCELLED)))
    )
    counts = {}
    for row in entered:
        counts[(iso_week(row["week"]), "entered")] = row["n"]
    for row in ended:
        counts[(iso_week(row["week"]), wf.SHIPPING)] = row["shipped"]
        counts[(iso_week(row["week"]), wf.CANCELLED)] = row["cancelled"]
    return [
        {
            "week": iso_week(start),
            "entered": counts.get((iso_week(start), "entered"), 0),
            "shipped": counts.get((iso_week(start), wf.SHIPPING), 0),
            "cancelled": counts.get((iso_week(start), wf.CANCELLED), 0),
        }
        for start in starts
    ]


@dataclass(frozen=True)
class Cohort:
    reached: dict  # step -> cases that reached it
    cancelled: dict  # step -> cases cancelled while at it
    revisions: dict  # "0", "1", "2", "3+" -> cases (of those that received a plan)


def cohort(first: datetime, ct: int) -> Cohort:
    """The funnel and revisions of the cases created since `first` (three queries). A case
    with history is in the Align workflow (its lab cannot change once it left eligible)."""
    created = Case.objects.filter(created__gte=first)
    logs = StateLog.objects.filter(content_type_id=ct, object_id__in=created.values("id"))
    steps = FUNNEL[1:]
    totals = logs.aggregate(
        **{f"r_{s}": Count("object_id", distinct=True, filter=Q(state=s)) for s in steps},
        **{
            f"c_{s}": Count("object_id", distinct=True, filter=Q(state=wf.CANCELLED, source_state=s)) for s in wf.STATES
        },
    )
    eligible = created.aggregate(n=Count("id", filter=_prescribed_to_align()))["n"]
    reached = {wf.ELIGIBLE: eligible, **{s: totals[f"r_{s}"] for s in steps}}
    cancelled = {s: totals[f"c_{s}"] for s in wf.STATES if totals[f"c_{s}"]}
    return Cohort(reached, cancelled, _revisions(first, ct, reached[wf.PLAN_RECEIVED]))


def _revisions(first, ct, with_plan) -> dict:
    log, case = StateLog._meta.db_table, Case._meta.db_table
    sql = f"""
        SELECT CASE WHEN n >= 3 THEN 3 ELSE n END AS bucket, COUNT(*) FROM (
            SELECT l.object_id, COUNT(*) AS n FROM {log} l JOIN {case} c ON c.id = l.object_id
            WHERE l.content_type_id = %s AND l.transition = 'request_revision' AND c.created >= %s
            GROUP BY l.object_id
        ) per_case GROUP BY bucket
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [ct, _at(first)])
        buckets = {int(bucket): n for bucket, n in cursor.fetchall()}
    revised = sum(buckets.values())
    return {"0": max(with_plan - revised, 0), "1": buckets.get(1, 0), "2": buckets.get(2, 0), "3+": buckets.get(3, 0)}


def stuck_over_time(starts: list[datetime], now: datetime, ct: int) -> list[dict]:
    """How many cases were stuck at the end of each week (now for the current week)."""
    after = timedelta(seconds=settings.ALIGN_STUCK_AFTER_SECONDS)
    points = [start + timedelta(weeks=1) for start in starts[:-1]] + [now]
    # Cases still in the stay they were in then (they have not moved since).
    still = Case.objects.filter(in_align_workflow(), state__in=wf.NON_TERMINAL).aggregate(
        **{f"p{i}": Count("id", filter=Q(state_changed_at__lte=t - after)) for i, t in enumerate(points)}
    )
    # Cases in a stay, since ended, that had lasted longer than `after` by then.
    cte = _steps_sql()
    columns = ", ".join("SUM(CASE WHEN started <= %s AND ended > %s THEN 1 ELSE 0 END)" for _ in points)
    placeholders = ", ".join(["%s"] * len(wf.NON_TERMINAL))
    sql = f"{cte} SELECT {columns} FROM steps WHERE ended > %s AND state IN ({placeholders})"
    params = [ct, _at(points[0]), ct]
    for t in points:
        params += [_at(t - after), _at(t)]
    params += [_at(points[0]), *wf.NON_TERMINAL]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ended = cursor.fetchone()
    return [
        {"week": iso_week(timezone.localtime(start)), "at": t, "stuck": still[f"p{i}"] + int(ended[i] or 0)}
        for i, (start, t) in enumerate(zip(starts, points, strict=True))
    ]


@dataclass(frozen=True)
class Analytics:
    """What the support page draws: the metrics and what only the page shows."""

    metrics: dict  # the JSON of /support/metrics.json
    cohort: Cohort
    stuck: list  # [{"week", "at", "stuck"}], oldest first (empty unless asked for)


def analytics(now: datetime | None = None, *, stuck=True) -> Analytics:
    now = now or timezone.now()
    ct = _content_type_id()
    starts = _week_starts(now)
    with transaction.atomic():
        _small_queries()
        group = cohort(starts[0], ct)
        data = {
            "window_days": WINDOW_DAYS,
            "states": stays(now, ct),
            "weekly": weekly(starts, ct),
            "funnel": group.reached,
        }
        return Analytics(data, group, stuck_over_time(starts, now, ct) if stuck else [])


def _small_queries():
    """Tell PostgreSQL, for this transaction only, that these queries are small: it would
    compile one whose estimated cost passes `jit_above_cost` (the per-row lookups above
    are estimated high, though each reads one row by its index) and start parallel
    workers, each costing more (~100 ms and ~10 ms) than running the query."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)"
            )


def metrics(now: datetime | None = None) -> dict:
    """The JSON of /support/metrics.json (shape in docs/analytics.md)."""
    return analytics(now, stuck=False).metrics
