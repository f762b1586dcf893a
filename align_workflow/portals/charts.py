"""Bar charts drawn on the server as SVG for the support page. Each chart is a picture
(role="img" with a title naming the table beside it); its numbers are in that table,
which screen readers read. No script, no inline style: the page's CSS colours the bars."""

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class of its bars: chart-a, chart-b, chart-c
    values: list  # numbers or None (nothing to draw)


LABEL_WIDTH = 170
BAR_AREA = 440
ROW = 22


def hbar(chart_id: str, title: str, labels: list[str], series: list[Series], unit=lambda v: str(v)) -> str:
    """Horizontal bars: one group per label, one bar per series, its value written at its end."""
    top = max((v for s in series for v in s.values if v is not None), default=0) or 1
    group = ROW * len(series) + 8
    height = group * len(labels) + 28
    width = LABEL_WIDTH + BAR_AREA + 110
    parts = []
    for i, label in enumerate(labels):
        y0 = 20 + i * group
        parts.append(format_html('<text class="chart-label" x="{}" y="{}">{}</text>', LABEL_WIDTH - 8, y0 + 15, label))
        for j, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            y = y0 + j * ROW
            length = max(1, round(BAR_AREA * value / top)) if value else 0
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>'
                    '<text class="chart-value" x="{}" y="{}">{}</text>',
                    s.css,
                    LABEL_WIDTH,
                    y,
                    length,
                    ROW - 6,
                    f"{label}, {s.name}",
                    unit(value),
                    LABEL_WIDTH + length + 4,
                    y + 12,
                    unit(value),
                )
            )
    legend = format_html_join(
        "",
        '<rect class="{}" x="{}" y="2" width="10" height="10"></rect><text class="chart-legend" x="{}" y="11">{}</text>',
        ((s.css, LABEL_WIDTH + k * 130, LABEL_WIDTH + k * 130 + 14, s.name) for k, s in enumerate(series)),
    )
    return format_html(
        '<svg class="chart" id="{}" role="img" aria-labelledby="{}-title" viewBox="0 0 {} {}"'
        ' xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{} (the numbers are in the table that follows)</title>'
        "{}{}</svg>",
        chart_id,
        chart_id,
        width,
        height,
        chart_id,
        title,
        legend,
        mark_safe("".join(str(p) for p in parts)),  # each part built with format_html (escaped)
    )


def duration(seconds) -> str:
    """Seconds in words a person reads at a glance: 45 s, 12 min, 3.5 h, 2.1 d."""
    if seconds is None:
        return "—"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            value = seconds / size
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:g} s"
