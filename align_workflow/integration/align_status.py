"""Align's status of a case, worked out from every status event stored for it, so that
the order the events arrived in (and one clock running ahead) cannot change the result."""

from align_workflow.align import payloads

from .models import InboundEvent

__all__ = ["STATUS_RANK", "rank_of", "stale_reason", "status_record"]

# Align's status order (payloads.STATUS_ORDER): a status behind the furthest one seen is stale.
STATUS_RANK = payloads.STATUS_RANK


def rank_of(status):
    return STATUS_RANK.get(status)


def status_record(case):
    """Align's status for the case as every status event stored for it says, whatever the
    order they arrived in: (current, furthest, events), each event a tuple
    (occurred_at, event_id, pk, status, previous status).

    furthest: the status furthest along Align's order (of equal rank, the latest).
    current: the latest event (by occurred_at, then event id) that is not behind the
    furthest status; ON_HOLD and CANCELLED, which can come at any point, by time alone.
    A ranked status beyond everything known is never made stale by a later-dated ON_HOLD,
    so one clock running ahead cannot block the case.
    """
    rows = InboundEvent.objects.filter(case=case, type=InboundEvent.Type.CASE_STATUS_CHANGED).values_list(
        "occurred_at", "event_id", "pk", "payload"
    )
    events = []
    for occurred_at, event_id, pk, payload in rows:
        data = (payload or {}).get("data") or {}
        if isinstance(data.get("status"), str):
            events.append((occurred_at, event_id, pk, data["status"], data.get("previousStatus") or ""))
    ranked = [e for e in events if rank_of(e[3]) is not None]
    furthest = max(ranked, key=lambda e: (rank_of(e[3]), e[0], e[1]), default=None)
    top = rank_of(furthest[3]) if furthest else None
    candidates = [e for e in events if rank_of(e[3]) is None or rank_of(e[3]) == top]
    current = max(candidates, key=lambda e: (e[0], e[1]), default=None)
    return current, furthest, events


def stale_reason(status, current, furthest):
    rank, top = rank_of(status), rank_of(furthest[3]) if furthest else None
    if rank is not None and top is not None and rank < top:
        return f"Align status {status} comes before {furthest[3]}, which is already known."
    return f"Align status {status} happened before {current[3]}, which is already known."
