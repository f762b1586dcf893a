"""Figure 1: the engine's overhead per transition, against the floor and against peers.

Every variant applies the same transition (accepted -> shipping, with carrier and
tracking number) to cases already loaded by the caller, each in its own transaction:

- floor: hand-written SELECT ... FOR UPDATE, UPDATE, StateLog INSERT;
- floor, one statement: the engine's own SQL (compare-and-set UPDATE and StateLog INSERT
  in one statement) hand-written with no checks: what the engine's Python costs;
- engine: align_workflow.workflow.fire();
- django-fsm-2: FSMField + @transition + ConcurrentTransitionMixin, logged by django-fsm-log's signal handler;
- pytransitions FAQ: a Machine built per model instance (reloaded under the row lock).
"""

import gc
import statistics
import tracemalloc

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.utils import timezone
from django_fsm_log.models import StateLog

from align_workflow.cases.models import Case, Patient
from align_workflow.workflow import fire
from bench.models import FaqCase, FsmCase
from states import align_case as wf

from .report import Row, timed

SHIP = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}


def _make_cases(n, prefix):
    patients = Patient.objects.bulk_create(
        [Patient(mrn=f"{prefix}{i}", first_name="B", last_name="B", date_of_birth="1990-01-01") for i in range(n)]
    )
    Case.objects.bulk_create(
        [Case(case_number=f"{prefix}{i}", patient=p, state=wf.ACCEPTED) for i, p in enumerate(patients)]
    )
    return list(Case.objects.filter(case_number__startswith=prefix))


def _floor(cases):
    ct = ContentType.objects.get_for_model(Case)
    for case in cases:
        with transaction.atomic():
            locked = Case.objects.select_for_update().get(pk=case.pk)
            if locked.state != wf.ACCEPTED:
                raise RuntimeError("wrong state")
            now = timezone.now()
            Case.objects.filter(pk=case.pk).update(state=wf.SHIPPING, state_changed_at=now, shipped_at=now, **SHIP)
            StateLog.objects.create(
                source_state=wf.ACCEPTED,
                state=wf.SHIPPING,
                transition="ship",
                content_type=ct,
                object_id=case.pk,
                description="Shipped",
            )


def _floor_one_statement(cases):
    """The engine's own database work, hand-written: one UPDATE…RETURNING + INSERT statement."""
    ct = ContentType.objects.get_for_model(Case)
    sql = (
        'WITH moved AS (UPDATE "cases_case" SET "state" = %s, "state_changed_at" = %s, "shipped_at" = %s, '
        '"carrier" = %s, "tracking_number" = %s WHERE "id" = %s AND "state" = %s RETURNING "id") '
        'INSERT INTO "django_fsm_log_statelog" ("timestamp", "source_state", "state", "transition", '
        '"content_type_id", "description", "object_id") SELECT %s, %s, %s, %s, %s, %s, moved."id" FROM moved '
        'RETURNING "id"'
    )
    if connection.vendor != "postgresql":  # the engine writes two statements there; so does this
        for case in cases:
            with transaction.atomic():
                now = timezone.now()
                if not Case.objects.filter(pk=case.pk, state=wf.ACCEPTED).update(
                    state=wf.SHIPPING, state_changed_at=now, shipped_at=now, **SHIP
                ):
                    raise RuntimeError("wrong state")
                StateLog.objects.create(
                    timestamp=now,
                    source_state=wf.ACCEPTED,
                    state=wf.SHIPPING,
                    transition="ship",
                    content_type=ct,
                    object_id=case.pk,
                    description="Shipped",
                )
        return
    for case in cases:
        with transaction.atomic(), connection.cursor() as cursor:
            now = timezone.now()
            cursor.execute(
                sql,
                [
                    wf.SHIPPING,
                    now,
                    now,
                    SHIP["carrier"],
                    SHIP["tracking_number"],
                    case.pk,
                    wf.ACCEPTED,
                    now,
                    wf.ACCEPTED,
                    wf.SHIPPING,
                    "ship",
                    ct.pk,
                    "Shipped",
                ],
            )
            if cursor.fetchone() is None:
                raise RuntimeError("wrong state")


def _engine(cases):
    for case in cases:
        fire(case, "ship", by=None, **SHIP)


def _notifications(connected: bool):
    """The notifications' listener on the engine's signal (an email to the provider when a
    case ships): off for the comparisons (the floor and django-fsm send no email), on for
    its own row."""
    from align_workflow.notifications.listeners import on_transition_applied  # why: bench-only switch
    from align_workflow.workflow.engine import transition_applied  # why: bench-only switch

    uid = "notifications-transition-applied"
    if connected:
        transition_applied.connect(on_transition_applied, dispatch_uid=uid)
    else:
        transition_applied.disconnect(dispatch_uid=uid)


def _engine_with_email(cases):
    _notifications(True)
    try:
        _engine(cases)
    finally:
        _notifications(False)


def _fsm(cases):
    for case in cases:
        with transaction.atomic():
            case.ship(by=None, **SHIP)
            case.save()


def _faq(ids):
    ct = ContentType.objects.get_for_model(FaqCase)
    for pk in ids:
        with transaction.atomic():
            case = FaqCase.objects.select_for_update().get(pk=pk)
            case.ship()
            now = timezone.now()
            case.carrier, case.tracking_number = SHIP["carrier"], SHIP["tracking_number"]
            case.shipped_at = case.state_changed_at = now
            case.save()
            StateLog.objects.create(
                source_state=wf.ACCEPTED,
                state=wf.SHIPPING,
                transition="ship",
                content_type=ct,
                object_id=pk,
                description="Shipped",
            )


def _retained_per_case(load, act, n):
    """Bytes still allocated per case after acting on n cases that the caller keeps alive,
    minus what the same cases cost when merely loaded."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    loaded = load()
    gc.collect()
    just_loaded = tracemalloc.get_traced_memory()[0]
    act(loaded)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - base) / n, (after - just_loaded) / n, loaded


def run(scale=1.0):
    n = max(20, int(2000 * scale))
    rows = []
    ours = _make_cases(n, "E1-")
    mailed = _make_cases(n, "EM-")
    _notifications(False)
    floor_cases = _make_cases(n, "F1-")
    floor1_cases = _make_cases(n, "G1-")
    FsmCase.objects.bulk_create([FsmCase(case_number=f"S1-{i}") for i in range(n)])
    fsm_cases = list(FsmCase.objects.filter(case_number__startswith="S1-"))
    FaqCase.objects.bulk_create([FaqCase(case_number=f"Q1-{i}") for i in range(n)])
    faq_ids = list(FaqCase.objects.filter(case_number__startswith="Q1-").values_list("pk", flat=True))

    # Warm up every path once (imports, caches) on throwaway rows.
    _floor(_make_cases(3, "WF-"))
    _engine(_make_cases(3, "WE-"))

    # Interleaved rounds in rotating order, so that drift in the machine's state (disk
    # flushes, caches, other load) falls on every variant alike; the ratio reported is
    # the median of the per-round ratios.
    variants = {
        "floor": (_floor, floor_cases),
        "floor1": (_floor_one_statement, floor1_cases),
        "engine": (_engine, ours),
        "engine_email": (_engine_with_email, mailed),
        "fsm": (_fsm, fsm_cases),
        "faq": (_faq, faq_ids),
    }
    rounds = 20
    times = {name: [] for name in variants}
    for r in range(rounds):
        part = slice(r * n // rounds, (r + 1) * n // rounds)
        names = list(variants)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, items = variants[name]
            times[name].append(timed(fn, items[part]))
    t_floor, t_engine, t_fsm, t_faq = (sum(times[k]) for k in ("floor", "engine", "fsm", "faq"))

    def ratio(other):
        return statistics.median(e / o for e, o in zip(times["engine"], times[other], strict=True))

    assert Case.objects.filter(case_number__startswith="E1-", state=wf.SHIPPING).count() == n
    assert FsmCase.objects.filter(state=wf.SHIPPING).count() == n

    per = lambda t: f"{t / n * 1e6:.0f} us/transition"  # noqa: E731
    rows.append(
        Row(
            "1 engine",
            f"{n} transitions vs floor",
            per(t_engine),
            per(t_floor),
            ratio("floor"),
            "<= 1.3",
            ratio("floor") <= 1.3,
        )
    )
    rows.append(
        Row(
            "1 engine",
            f"{n} transitions vs its own SQL hand-written",
            per(t_engine),
            per(sum(times["floor1"])),
            ratio("floor1"),
            "report",
        )
    )
    rows.append(
        Row(
            "1 engine",
            f"{n} transitions vs django-fsm-2",
            per(t_engine),
            per(t_fsm),
            ratio("fsm"),
            "<= 1.0",
            ratio("fsm") <= 1.0,
        )
    )
    rows.append(
        Row(
            "1 engine",
            f"{n} transitions with the shipped email (notifications on) vs without",
            per(sum(times["engine_email"])),
            per(t_engine),
            statistics.median(m / e for m, e in zip(times["engine_email"], times["engine"], strict=True)),
            "report",
        )
    )
    rows.append(
        Row("1 engine", f"{n} transitions vs Machine per instance", per(t_engine), per(t_faq), ratio("faq"), "report")
    )

    m = max(50, int(10000 * scale))
    mem_cases = _make_cases(m, "M1-")
    ids = [c.pk for c in mem_cases]
    del mem_cases
    total, retained, _ = _retained_per_case(lambda: list(Case.objects.filter(pk__in=ids)), _engine, m)
    FaqCase.objects.bulk_create([FaqCase(case_number=f"Q2-{i}") for i in range(m)])
    faq_total, _, faq_loaded = _retained_per_case(
        lambda: list(FaqCase.objects.filter(case_number__startswith="Q2-")), lambda cases: None, m
    )
    del faq_loaded
    rows.append(
        Row(
            "1 engine",
            f"memory retained per case after {m} transitions",
            f"{retained:.0f} B",
            f"{total:.0f} B with the case object",
            None,
            "<= 2048 B",
            retained <= 2048,
        )
    )
    rows.append(
        Row(
            "1 engine",
            "memory per case, Machine per instance (FAQ)",
            f"{faq_total:.0f} B",
            f"{total:.0f} B ours",
            faq_total / max(total, 1),
            "report",
        )
    )
    return rows
