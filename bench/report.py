"""Rows of the benchmark table and how they are printed."""

from dataclasses import dataclass


@dataclass
class Row:
    benchmark: str
    measure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def timed(fn, *args):
    import time

    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def print_table(rows, out):
    headers = ("benchmark", "measure", "value", "baseline", "ratio", "target", "met")
    cells = [
        (
            r.benchmark,
            r.measure,
            r.value,
            r.baseline,
            "" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out.write(line + "\n" + "-+-".join("-" * w for w in widths) + "\n")
    for c in cells:
        out.write(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + "\n")
