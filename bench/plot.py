"""The figures as a picture: each ratio against its target, as an SVG (no plotting library).

`python -m bench --svg bench/figures.svg` (what `make bench` runs) draws the run's rows;
`python -m bench.plot TABLE OUT.svg [TITLE]` redraws a table printed by an earlier run.

Every row whose target is a bound on the ratio (`<= 2.0`, `>= 6`) becomes one bar. The
axis is "how far from the target": ratio / target for an upper bound, target / ratio for a
lower bound, on a log scale from 0.1 to 10, so the target is the line at 1, a met target is
a green bar ending left of it and a missed one a red bar ending right of it.
"""

from __future__ import annotations

import math
import re
import sys
from xml.sax.saxutils import escape

from .report import Row

BOUND = re.compile(r"^(<=|>=)\s*([0-9.]+)$")
LOW, HIGH = 0.1, 10.0
WIDTH, LABEL_W, PLOT_W, ROW_H, TOP = 1080, 540, 400, 26, 70


def distance(row: Row) -> float | None:
    """How far the row is from its target (1 = on it, below 1 = met), or None."""
    match = BOUND.match(row.target.strip())
    if row.ratio is None or not match or row.ratio <= 0:
        return None
    bound = float(match.group(2))
    return row.ratio / bound if match.group(1) == "<=" else bound / row.ratio


def _x(value: float) -> float:
    clamped = min(max(value, LOW), HIGH)
    share = (math.log10(clamped) - math.log10(LOW)) / (math.log10(HIGH) - math.log10(LOW))
    return LABEL_W + share * PLOT_W


def svg(rows, title: str) -> str:
    bars = [(row, d) for row in rows if (d := distance(row)) is not None]
    height = TOP + ROW_H * max(len(bars), 1) + 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        '<text x="10" y="42" fill="#444">Each ratio against its target, log scale: 1 is the target; '
        "a bar ending left of it (green) meets it, right of it (red) misses it by that factor.</text>",
    ]
    bottom = TOP + ROW_H * len(bars)
    for tick in (0.1, 0.2, 0.5, 1, 2, 5, 10):
        x = _x(tick)
        stroke = ' stroke="#222" stroke-width="2"' if tick == 1 else ' stroke="#ccc"'
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 8}" x2="{x:.1f}" y2="{bottom}"{stroke}/>')
        label = "target" if tick == 1 else f"{tick:g}×"
        out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#444">{label}</text>')
    if not bars:
        out.append(f'<text x="10" y="{TOP + 16}">No row of this run has a target on its ratio.</text>')
    for i, (row, d) in enumerate(bars):
        y = TOP + i * ROW_H
        met = d <= 1
        label = f"{row.benchmark.strip()}: {row.measure.strip()}"
        if len(label) > 76:
            label = label[:75] + "…"
        x0, x1 = _x(LOW), _x(d)
        colour = "#2e7d32" if met else "#c62828"
        out += [
            f'<text x="10" y="{y + 16}">{escape(label)}</text>',
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" height="{ROW_H - 10}" fill="{colour}"/>',
            f'<text x="{_x(HIGH) + 6:.1f}" y="{y + 16}">{row.ratio:.2f} ({escape(row.target.strip())})'
            f"{'' if met else ' NO'}</text>",
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def rows_of_table(text: str) -> list[Row]:
    """The rows of a table printed by `python -m bench` (the lines with a ratio)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if len(cells) != 7 or cells[0] == "benchmark":
            continue
        try:
            ratio = float(cells[4]) if cells[4] else None
        except ValueError:
            continue
        met = {"yes": True, "NO": False}.get(cells[6])
        rows.append(Row(cells[0], cells[1], cells[2], cells[3], ratio, cells[5], met))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        sys.exit("usage: python -m bench.plot TABLE OUT.svg [TITLE]  (TABLE: a table printed by python -m bench)")
    title = argv[2] if len(argv) == 3 else f"align-workflow benchmarks (redrawn from {argv[0]})"
    with open(argv[0], encoding="utf-8") as f:
        rows = rows_of_table(f.read())
    with open(argv[1], "w", encoding="utf-8") as f:
        f.write(svg(rows, title))


if __name__ == "__main__":
    main()
