"""At-least-once, in no guaranteed order: the events of several cases, delivered in
shuffled orders (many seeds, some events repeated), leave every record exactly as
in-order delivery does: the case, Align's status (furthest status included), the plans
and their previews, the sales orders. Compared as full fingerprints of the rows."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from align_workflow.cases.models import Case
from align_workflow.integration.models import AlignCaseStatus, InboundEvent
from align_workflow.workflow import fire
from states import align_case as wf
from tests.support.deliveries import deliver, iso, make_event
from tests.support.factories import make_case

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def so(n, kind, minute, number=None):
    return (
        "sales_order.created",
        minute,
        {
            "orderKind": kind,
            "salesOrderNumber": number or f"SO-{{tag}}-{n}-{kind[0]}",
            "createdAt": iso(T0 + timedelta(minutes=minute)),
        },
    )


def plan(n, version, minute):
    return (
        "treatment_plan.submitted",
        minute,
        {
            "version": version,
            "treatmentPlanId": f"TP-{{tag}}-{n}-{version}",
            "revisionOf": f"TP-{{tag}}-{n}-{version - 1}" if version > 1 else None,
            "stages": {"upper": 10 + version, "lower": 8 + version},
            "notes": f"Plan version {version}.",
            "assets": [
                {
                    "kind": "PROVPREV",
                    "url": f"https://align.example.com/p/TP-{{tag}}-{n}-{version}.mp4",
                    "sha256": f"{version:064x}",
                    "size": 1000 * version,
                }
            ],
        },
    )


def status(status_name, minute, **extra):
    data = {"status": status_name, "previousStatus": None, "shipment": None, **extra}
    if status_name == "SHIPPED":
        data["shipment"] = {
            "carrier": "FedEx",
            "trackingNumber": "TRK-{tag}-" + str(minute),
            "shippedAt": iso(T0 + timedelta(minutes=minute)),
            "alignerCount": 20,
        }
    return ("case.status_changed", minute, data)


# kind: (start state, how many cases, events for case n, the staff action after delivery)
SCENARIOS = {
    "first plan": (
        wf.ASSETS_UPLOADED,
        4,
        lambda n: [
            so(n, "PRIMARY", 0),
            so(n, "SECONDARY", 1),
            status("SETUP_IN_PROGRESS", 2),
            status("CLINCHECK_READY", 3),
            plan(n, 1, 4),
        ],
        None,
    ),
    "revision": (
        wf.ASSETS_UPLOADED,
        4,
        lambda n: [
            so(n, "PRIMARY", 0),
            so(n, "SECONDARY", 1),
            plan(n, 1, 2),
            status("MODIFICATION_REQUESTED", 3),
            status("SETUP_IN_PROGRESS", 4),
            plan(n, 2, 5),
            status("CLINCHECK_READY", 6),
        ],
        None,
    ),
    "shipping": (
        wf.ACCEPTED,
        4,
        lambda n: [status("APPROVED", 0), status("IN_MANUFACTURING", 1), status("SHIPPED", 2)],
        None,
    ),
    "shipped before accepted": (
        wf.PROVIDER_APPROVED,
        4,
        lambda n: [status("APPROVED", 0), status("IN_MANUFACTURING", 1), status("SHIPPED", 2)],
        "accept_clincheck",
    ),
    "plans before the assets": (
        wf.ORDER_CREATED,
        4,
        lambda n: [so(n, "PRIMARY", 0), so(n, "SECONDARY", 1), plan(n, 1, 2), plan(n, 2, 3)],
        "upload_assets",
    ),
    "cancelled by Align": (
        wf.PLAN_RECEIVED,
        2,
        lambda n: [status("ON_HOLD", 0, reason="Records missing"), status("CANCELLED", 1, reason="Patient declined")],
        None,
    ),
    "a newer primary order": (
        wf.ASSETS_UPLOADED,
        2,
        lambda n: [
            so(n, "PRIMARY", 0, f"SO-{{tag}}-{n}-P1"),
            so(n, "SECONDARY", 1),
            so(n, "PRIMARY", 2, f"SO-{{tag}}-{n}-P2"),
            status("RECEIVED", 3),
        ],
        None,
    ),
    # ON_HOLD or CANCELLED first must not change the furthest status.
    "cancelled after approval": (
        wf.PROVIDER_APPROVED,
        2,
        lambda n: [
            status("APPROVED", 0),
            status("ON_HOLD", 1, reason="Payment"),
            status("CANCELLED", 2, reason="Refund"),
        ],
        None,
    ),
    # A plan dated before the cancel, and one after it: both kept, whatever arrives first.
    "plans around a cancel": (
        wf.ASSETS_UPLOADED,
        2,
        lambda n: [so(n, "PRIMARY", 0), plan(n, 1, 1), status("CANCELLED", 2, reason="Moved away"), plan(n, 2, 3)],
        None,
    ),
    # One clock running ahead (within the skew of the real time, hours after the others).
    "an on-hold from a clock running ahead": (
        wf.ACCEPTED,
        2,
        lambda n: [
            status("APPROVED", 0),
            status("ON_HOLD", 600, reason="Clock ahead"),
            status("IN_MANUFACTURING", 2),
            status("SHIPPED", 3),
        ],
        None,
    ),
}

EVENTS = sum(count * len(script(1)) for _, count, script, _ in SCENARIOS.values())


def build_world(tag):
    """The cases of every scenario, their events, and what staff do afterwards."""
    world = []
    number = 0  # numbers sales orders and plans uniquely across all cases of the world
    for kind, (state, count, script, follow_up) in SCENARIOS.items():
        for n in range(count):
            case = make_case(state=state)
            case_events = []
            number += 1
            for j, (event_type, minute, data) in enumerate(script(number)):
                data = json.loads(json.dumps(data).replace("{tag}", tag))
                case_events.append(
                    make_event(
                        event_type,
                        case,
                        event_id=f"evt-{tag}-{case.pk}-{j}",
                        occurred_at=T0 + timedelta(minutes=minute),
                        **data,
                    )
                )
            world.append((kind, n, case, case_events, follow_up))
    return world


# Set by the database or the clock when a row is written, not by what Align said.
VOLATILE = {
    "id",
    "case",
    "case_id",
    "created",
    "updated_at",
    "received_at",
    "state_changed_at",
    "event",
    "event_id",
    "preview",
    "preview_id",
    "busy_with",
    "busy_until",
    # who the factory made the case for: differs between two worlds by construction
    "case_number",
    "patient",
    "patient_id",
}


def fingerprint(row):
    """Every field of a row but its keys and write times, as JSON-able values."""
    if row is None:
        return None
    values = {}
    for field in row._meta.concrete_fields:
        if field.name in VOLATILE or field.attname in VOLATILE:
            continue
        value = getattr(row, field.attname)
        values[field.name] = value.isoformat() if hasattr(value, "isoformat") else value
    return values


def full_snapshot(case, tag):
    """The fingerprints of the case, its Align status, plans (with previews) and orders."""
    case = Case.objects.get(pk=case.pk)
    view = {
        "case": fingerprint(case),
        "align_status": fingerprint(AlignCaseStatus.objects.filter(case=case).first()),
        "plans": sorted(
            (
                dict(fingerprint(p), preview=fingerprint(p.preview))
                for p in case.treatment_plans.select_related("preview")
            ),
            key=lambda p: p["version"],
        ),
        "orders": sorted((fingerprint(o) for o in case.align_orders.all()), key=lambda o: o["sales_order_number"]),
    }
    return json.loads(json.dumps(view, default=str).replace(tag, "W"))


def snapshot(case, tag):
    case = Case.objects.get(pk=case.pk)
    known = AlignCaseStatus.objects.filter(case=case).first()
    view = {
        "state": case.state,
        "cancel_reason": case.cancel_reason,
        "shipping": [case.carrier, case.tracking_number, case.shipped_at and case.shipped_at.isoformat()],
        "sales_order_number": case.align_sales_order_number,
        "patient_id": case.align_patient_id,
        "orders": sorted(
            [o.sales_order_number, o.order_kind, o.order_type, o.p_id, o.align_created_at.isoformat()]
            for o in case.align_orders.all()
        ),
        "plans": sorted(
            [
                p.plan_id,
                p.version,
                p.revision_of,
                p.sales_order_number,
                p.stages_upper,
                p.stages_lower,
                p.notes,
                p.preview.url,
                p.preview.sha256,
                p.preview.size,
            ]
            for p in case.treatment_plans.select_related("preview")
        ),
        "current_plan": getattr(case.treatment_plans.first(), "version", None),
        "align_status": known
        and [known.status, known.previous_status, known.furthest_status, known.occurred_at.isoformat()],
    }
    return json.loads(json.dumps(view).replace(tag, "W"))


def run(client, staff, tag, deliveries, *, full=False):
    world = build_world(tag)
    everything = [e for *_, case_events, _ in world for e in case_events]
    for payload in deliveries(everything):
        response = deliver(client, payload)
        assert response.status_code == 200, response.content
    for _kind, _n, case, _, follow_up in world:
        if follow_up:
            fire(Case.objects.get(pk=case.pk), follow_up, by=staff)
    events = InboundEvent.objects.filter(event_id__startswith=f"evt-{tag}-")
    assert events.count() == len(everything) == EVENTS
    assert not events.filter(status__in=["pending", "failed"]).exists(), list(
        events.filter(status__in=["pending", "failed"]).values_list("event_id", "status_detail")
    )
    take = full_snapshot if full else snapshot
    return {(kind, n): take(case, tag) for kind, n, case, _, _ in world}


@pytest.mark.django_db(transaction=True)
def test_shuffled_repeated_delivery_ends_like_in_order_delivery(client, staff, flags_on, local_effects_only):
    in_order = run(client, staff, "wq1", lambda events: sorted(events, key=lambda e: e["occurred_at"]))

    def shuffled_three_times(events):
        deliveries = events * 3
        random.Random(20260301).shuffle(deliveries)
        return deliveries

    shuffled = run(client, staff, "wq2", shuffled_three_times)

    assert shuffled.keys() == in_order.keys()
    for key in in_order:
        assert shuffled[key] == in_order[key], key
    # The scenarios really reached where they should.
    assert {k: v["state"] for k, v in in_order.items() if k[1] == 0} == {
        ("first plan", 0): wf.PLAN_RECEIVED,
        ("revision", 0): wf.PLAN_RECEIVED,
        ("shipping", 0): wf.SHIPPING,
        ("shipped before accepted", 0): wf.SHIPPING,
        ("plans before the assets", 0): wf.PLAN_RECEIVED,
        ("cancelled by Align", 0): wf.CANCELLED,
        ("a newer primary order", 0): wf.ASSETS_UPLOADED,
        ("cancelled after approval", 0): wf.CANCELLED,
        ("plans around a cancel", 0): wf.CANCELLED,
        ("an on-hold from a clock running ahead", 0): wf.SHIPPING,
    }
    assert in_order[("cancelled after approval", 0)]["align_status"][:3] == ["CANCELLED", "", "APPROVED"]
    assert [p[1] for p in in_order[("plans around a cancel", 0)]["plans"]] == [1, 2]
    assert in_order[("an on-hold from a clock running ahead", 0)]["align_status"][:3] == ["ON_HOLD", "", "SHIPPED"]
    assert in_order[("revision", 0)]["current_plan"] == 2
    assert in_order[("a newer primary order", 0)]["sales_order_number"].endswith("-P2")
    assert in_order[("shipped before accepted", 0)]["shipping"][:2] == ["FedEx", "TRK-W-2"]


SEEDS = range(1, 9)


@pytest.mark.django_db(transaction=True)
def test_many_random_orders_leave_identical_records(client, staff, flags_on, local_effects_only):
    """Eight random orders (a third of the events delivered twice), each compared with
    in-order delivery field by field: case, Align status, plans and previews, orders."""
    in_order = run(client, staff, "wr0", lambda events: sorted(events, key=lambda e: e["occurred_at"]), full=True)
    assert in_order[("an on-hold from a clock running ahead", 0)]["align_status"]["furthest_status"] == "SHIPPED"
    for seed in SEEDS:
        rng = random.Random(seed)

        def shuffled(events, rng=rng):
            deliveries = events + rng.sample(events, len(events) // 3)
            rng.shuffle(deliveries)
            return deliveries

        got = run(client, staff, f"wr{seed}", shuffled, full=True)
        assert got.keys() == in_order.keys()
        for key in in_order:
            assert got[key] == in_order[key], (seed, key)


def test_pending_event_ids_are_the_case_pending_events_oldest_first(staff, flags_on, local_effects_only):
    """The plain statement behind apply_pending: only this case's pending events, in
    the order they happened at Align (then arrival, then id)."""
    from align_workflow.integration.events import pending_event_ids

    case, other = make_case(), make_case()
    now = datetime.now(UTC)

    def event(n, case, status, occurred):
        return InboundEvent.objects.create(
            event_id=f"evt-order-{n}",
            type=InboundEvent.Type.CASE_STATUS_CHANGED,
            case=case,
            payload={},
            raw_body="{}",
            status=status,
            occurred_at=now + timedelta(seconds=occurred),
        )

    late = event(1, case, InboundEvent.Status.PENDING, 30)
    early = event(2, case, InboundEvent.Status.PENDING, 10)
    event(3, case, InboundEvent.Status.APPLIED, 0)
    event(4, other, InboundEvent.Status.PENDING, 0)
    tie = event(5, case, InboundEvent.Status.PENDING, 10)
    assert pending_event_ids(case.pk) == [early.pk, tie.pk, late.pk]
    assert pending_event_ids(make_case().pk) == []
