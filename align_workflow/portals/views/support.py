"""/support/workflow/: where every case is, how many have not moved for too long, and how
the workflow has gone lately (analytics); /support/metrics.json: the same numbers for tools."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from align_workflow.workflow.diagrams import MISSING_GRAPHVIZ, cached_svg
from states import align_case as wf
from states.drawing import graph, state_label

from .. import metrics, selectors
from ..access import staff_required
from ..charts import Series, duration, hbar
from .common import inline_svg


def _list_url(**params):
    return reverse("portals:staff_cases") + "?" + urlencode(params)


def annotated_workflow_svg(counts) -> str | None:
    """The workflow diagram with each state's case count and stuck count; a state links
    to the staff case list filtered to it (None without Graphviz). Drawn once per set of
    counts."""
    key = [[c.state, c.total, c.stuck] for c in counts]
    return cached_svg("support", key, lambda: _annotated_graph(counts))


def _annotated_graph(counts):
    digraph = graph()
    for c in counts:
        lines = [f"{c.total} case{'s' if c.total != 1 else ''}"] + ([f"{c.stuck} stuck"] if c.stuck else [])
        label = state_label(c.state, *lines)
        attrs = {
            "label": label,
            "URL": _list_url(state=c.state),
            "target": "_top",
            "tooltip": f"{c.meaning} Click to list these cases.",
        }
        if c.stuck:
            attrs.update(fillcolor="#fde2e1", color="#c0392b", penwidth="2")
        elif c.total:
            attrs.update(fillcolor="#e6f0fb")
        digraph.node(c.state, **attrs)
    return digraph


@require_GET
@staff_required
def workflow(request):
    counts = selectors.state_counts()
    rows = [
        {"count": c, "list_url": _list_url(state=c.state), "stuck_url": _list_url(state=c.state, stuck="on")}
        for c in counts
    ]
    return render(
        request,
        "portals/support/workflow.html",
        {
            "nav": "support",
            "rows": rows,
            "diagram": inline_svg(svg) if (svg := annotated_workflow_svg(counts)) else None,
            "diagram_missing": MISSING_GRAPHVIZ,
            "total": sum(c.total for c in counts),
            "stuck_total": sum(c.stuck for c in counts),
            "stuck_url": _list_url(stuck="on"),
            "attention_total": selectors.attention_count(),
            "attention_url": _list_url(attention="on"),
            "stuck_after": _duration(settings.ALIGN_STUCK_AFTER_SECONDS),
            **_analytics_context(metrics.analytics()),
        },
    )


@require_GET
def metrics_json(request):
    """The workflow's analytics as JSON (shape and definitions in docs/analytics.md).
    Staff only, as the page; refusals are JSON too (401 signed out, 403 not staff)."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"error": "Sign in as staff to read the workflow metrics."}, status=401)
    if not (user.is_active and user.is_staff):
        return JsonResponse({"error": "Only staff may read the workflow metrics."}, status=403)
    return JsonResponse(metrics.metrics())


def _analytics_context(analytics):
    data, cohort = analytics.metrics, analytics.cohort
    stays = [(wf.state_label(s), row) for s, row in data["states"].items()]
    weeks = data["weekly"]
    funnel = [
        {"state": s, "label": wf.state_label(s), "reached": n, "cancelled": cohort.cancelled.get(s, 0)}
        for s, n in data["funnel"].items()
    ]
    labels = [label for label, _ in stays]
    return {
        "analytics": analytics,
        "window_days": data["window_days"],
        "stays": [
            {"label": label, "median": duration(r["median_seconds"]), "p90": duration(r["p90_seconds"]), **r}
            for label, r in stays
        ],
        "weekly": weeks,
        "funnel": funnel,
        "revision_cancelled": cohort.cancelled.get(wf.REVISION_REQUESTED, 0),
        "revisions": list(cohort.revisions.items()),
        "stuck_series": analytics.stuck,
        "charts": {
            "stays": hbar(
                "chart-stays",
                f"How long cases stay in each state (last {data['window_days']} days)",
                labels,
                [
                    Series("median", "chart-a", [r["median_seconds"] for _, r in stays]),
                    Series("90th percentile", "chart-b", [r["p90_seconds"] for _, r in stays]),
                ],
                unit=duration,
            ),
            "weekly": hbar(
                "chart-weekly",
                "Cases entered, shipped and cancelled per week",
                [w["week"] for w in weeks],
                [
                    Series("entered", "chart-a", [w["entered"] for w in weeks]),
                    Series("shipped", "chart-b", [w["shipped"] for w in weeks]),
                    Series("cancelled", "chart-c", [w["cancelled"] for w in weeks]),
                ],
            ),
            "funnel": hbar(
                "chart-funnel",
                "Funnel of the cases created in these weeks",
                [f["label"] for f in funnel],
                [
                    Series("reached", "chart-a", [f["reached"] for f in funnel]),
                    Series("cancelled there", "chart-c", [f["cancelled"] for f in funnel]),
                ],
            ),
            "revisions": hbar(
                "chart-revisions",
                "Revisions per case (cases that received a plan)",
                [f"{k} revision{'' if k == '1' else 's'}" for k in cohort.revisions],
                [Series("cases", "chart-a", list(cohort.revisions.values()))],
            ),
            "stuck": hbar(
                "chart-stuck",
                "Stuck cases at the end of each week",
                [p["week"] for p in analytics.stuck],
                [Series("stuck", "chart-c", [p["stuck"] for p in analytics.stuck])],
            ),
        },
    }


def _duration(seconds):
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
