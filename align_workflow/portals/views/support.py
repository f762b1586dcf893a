"""/support/workflow/: where every case is, and how many have not moved for too long."""

from django.conf import settings
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from align_workflow.workflow.diagrams import MISSING_GRAPHVIZ, cached_svg
from states.drawing import graph, state_label

from .. import selectors
from ..access import staff_required
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
        },
    )


def _duration(seconds):
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
