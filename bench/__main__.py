"""`make bench`: run every benchmark on a throwaway database and print one table.

python -m bench            # full sizes
python -m bench --scale 0.01 --only engine
"""

import argparse
import importlib
import os
import sys
import time

BENCHMARKS = [
    "engine_overhead",
    "flow_overhead",
    "scale_out",
    "batch_accept",
    "portal",
    "token_lock",
    "events_ingest",
    "metrics",
]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (0.01 for a smoke run)")
    parser.add_argument("--only", default="", help="run only benchmarks whose name contains this")
    parser.add_argument("--svg", default="", help="also draw each ratio against its target into this SVG file")
    args = parser.parse_args(argv)

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from .report import print_table

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    vendor = connection.vendor
    rows = []
    try:
        for name in BENCHMARKS:
            if args.only and args.only not in name:
                continue
            module = importlib.import_module(f"bench.{name}")
            rows.extend(module.run(scale=args.scale))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    sys.stdout.write(f"\nalign-workflow benchmarks (database: {vendor}, scale {args.scale})\n\n")
    print_table(rows, sys.stdout)
    if args.svg:
        from .plot import svg  # why: only a run that draws needs it

        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(args.svg, "w", encoding="utf-8") as out:
            out.write(svg(rows, f"align-workflow benchmarks, {when} ({vendor}, scale {args.scale})"))
        sys.stdout.write(f"\nThe figures drawn: {args.svg}\n")
    return rows


if __name__ == "__main__":
    main()
