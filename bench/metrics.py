"""Figure 8: the support analytics (/support/metrics.json and the page's numbers) with
100,000 cases against the same with 1,000.

The analytics read the last weeks of the history (stays that ended in the last 30 days,
the cases created and the rows written in the last 12 weeks), so what must not matter
is how long the workflow has been in use. Both sizes hold the same 1,000 recent cases
(created over the last 100 days, each as far along the path as its age allows, some
revised, some cancelled, with the StateLog rows the engine would have written); the
large one adds 99,000 older cases, created over the five years before and finished
(shipped or cancelled), with their history: about 8 rows each.

- the number of queries must not depend on the number of cases (CaptureQueriesContext);
- the median time with 100,000 cases over the median with 1,000 must stay <= 1.5.

The JSON is fetched through the Django test Client as a staff user (middleware, session,
view, JSON), the page's numbers (metrics.analytics(): the JSON's plus revisions and stuck
cases over time) by calling the function. The sizes alternate in rounds (the tables are
emptied and the data written again, then VACUUM ANALYZE as autovacuum would), so a change
in the machine's load falls on both alike.
"""

import random
import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management.color import no_style
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, Patient, Prescription, Provider
from align_workflow.portals import metrics
from states import align_case as wf

from .report import Row

HOUR, DAY = 3600, 86400
RECENT_DAYS = 100
OLD_DAYS = 5 * 365
BATCH = 2000
TRIGGER = {t.dest: t.trigger for t in wf.TRANSITIONS if t.dest not in (wf.PLAN_RECEIVED, wf.CANCELLED)} | {
    wf.PLAN_RECEIVED: "receive_plan",
    wf.CANCELLED: "cancel",
}


def _path(rng):
    """(state, seconds after the previous step) along the workflow, as real cases go."""
    steps = [
        (wf.PATIENT_CREATED, rng.uniform(HOUR, 3 * DAY)),
        (wf.ORDER_CREATED, rng.uniform(5, 600)),
        (wf.ASSETS_UPLOADED, rng.uniform(5, 600)),
        (wf.PLAN_RECEIVED, rng.uniform(DAY, 5 * DAY)),
    ]
    while rng.random() < 0.3:
        steps += [(wf.REVISION_REQUESTED, rng.uniform(HOUR, 3 * DAY)), (wf.PLAN_RECEIVED, rng.uniform(DAY, 4 * DAY))]
    steps += [
        (wf.PROVIDER_APPROVED, rng.uniform(HOUR, 3 * DAY)),
        (wf.ACCEPTED, rng.uniform(HOUR, 5 * DAY)),
        (wf.SHIPPING, rng.uniform(5 * DAY, 15 * DAY)),
    ]
    if rng.random() < 0.15:  # cancelled at some step instead
        at = rng.randrange(len(steps) - 1)
        steps = steps[:at] + [(wf.CANCELLED, rng.uniform(HOUR, 5 * DAY))]
    return steps


def _add_cases(first, count, *, newest, oldest, provider, ct, rng):
    """`count` cases created between `oldest` and `newest` days ago, with their history up
    to now (an old case has finished; a recent one is as far along as its age allows)."""
    now = timezone.now()
    for lo in range(first, first + count, BATCH):
        hi = min(first + count, lo + BATCH)
        patients = Patient.objects.bulk_create(
            [
                Patient(mrn=f"MRN{i:07d}", first_name="Bench", last_name=f"Case{i}", date_of_birth="1990-01-01")
                for i in range(lo, hi)
            ]
        )
        cases, histories = [], []
        for i, patient in zip(range(lo, hi), patients, strict=True):
            created = now - timedelta(days=rng.uniform(newest, oldest))
            state, at, rows = wf.ELIGIBLE, created, []
            for target, gap in _path(rng):
                at += timedelta(seconds=gap)
                if at > now:
                    break
                rows.append((state, target, at))
                state = target
            changed = rows[-1][2] if rows else created
            cases.append(
                Case(case_number=f"C{i:07d}", patient=patient, state=state, state_changed_at=changed, created=created)
            )
            histories.append(rows)
        cases = Case.objects.bulk_create(cases)
        Prescription.objects.bulk_create([Prescription(case=c, provider=provider) for c in cases])
        StateLog.objects.bulk_create(
            [
                StateLog(
                    content_type_id=ct,
                    object_id=case.pk,
                    timestamp=at,
                    source_state=source,
                    state=target,
                    transition=TRIGGER[target],
                )
                for case, rows in zip(cases, histories, strict=True)
                for source, target, at in rows
            ],
            batch_size=5000,
        )


def _empty():
    """Empty the cases and their history (TRUNCATE: the history is append-only to the app)."""
    tables = [Case._meta.db_table, Patient._meta.db_table, StateLog._meta.db_table]
    with connection.cursor() as cursor:
        for statement in connection.ops.sql_flush(no_style(), tables, allow_cascade=True):
            cursor.execute(statement)


def _vacuum():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"VACUUM ANALYZE {Case._meta.db_table}, {Prescription._meta.db_table}, {StateLog._meta.db_table}"
            )


def _build(size, recent, provider, ct):
    _empty()
    _add_cases(0, recent, newest=0, oldest=RECENT_DAYS, provider=provider, ct=ct, rng=random.Random(8))
    if size > recent:
        _add_cases(
            recent,
            size - recent,
            newest=RECENT_DAYS + 30,
            oldest=RECENT_DAYS + 30 + OLD_DAYS,
            provider=provider,
            ct=ct,
            rng=random.Random(9),
        )
    _vacuum()


def run(scale=1.0):
    large = max(100, int(100_000 * scale))
    small = max(10, int(1000 * scale))
    rounds = 2 if scale >= 0.5 else 1  # a round writes 100,000 cases with their history: minutes
    repeats = max(5, int(15 * min(scale * 10, 1.0)))
    staff = get_user_model().objects.create_user("bench-metrics-staff", password="x", is_staff=True)
    provider_user = get_user_model().objects.create_user("bench-metrics-provider")
    provider = Provider.objects.create(user=provider_user, account_name="Practice")
    client = Client()
    client.force_login(staff)
    url = reverse("portals:support_metrics")
    ct = ContentType.objects.get_for_model(Case).pk

    measures = {
        "/support/metrics.json": lambda: client.get(url, secure=True),
        "the page's analytics": metrics.analytics,
    }
    queries = {size: {} for size in ("small", "large")}
    times = {size: {name: [] for name in measures} for size in queries}
    answers = {}
    for r in range(rounds):
        for size, count in (("small", small), ("large", large)):
            _build(count, small, provider, ct)
            for name, measure in measures.items():
                for _ in range(2):  # warm up: connection, session, plans
                    measure()
                if r == 0:
                    with CaptureQueriesContext(connection) as captured:
                        result = measure()
                    queries[size][name] = len(captured.captured_queries)
                    if name == "/support/metrics.json":
                        assert result.status_code == 200, result.status_code
                        answers[size] = result.json()
                for _ in range(repeats):
                    start = time.perf_counter()
                    measure()
                    times[size][name].append(time.perf_counter() - start)
    # The extra cases are older than every window: both sizes count the same recent cases.
    assert answers["small"]["funnel"] == answers["large"]["funnel"], (answers["small"], answers["large"])
    _empty()

    ms = lambda t: f"{t * 1000:.1f} ms"  # noqa: E731
    rows = []
    for name in measures:
        q_small, q_large = queries["small"][name], queries["large"][name]
        rows.append(
            Row(
                "8 metrics",
                f"{name}: queries, {large} vs {small} cases",
                str(q_large),
                str(q_small),
                None,
                "equal",
                q_large == q_small,
            )
        )
        t_small, t_large = statistics.median(times["small"][name]), statistics.median(times["large"][name])
        ratio = t_large / t_small
        rows.append(
            Row(
                "8 metrics",
                f"{name}: median of {rounds * repeats}, {large} vs {small} cases",
                ms(t_large),
                ms(t_small),
                ratio,
                "<= 1.5",
                ratio <= 1.5,
            )
        )
    return rows
