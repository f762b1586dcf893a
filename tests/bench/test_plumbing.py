"""Where a benchmark run puts its database and its Redis databases, and the SVG of its figures."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from django.conf import settings

from bench.plot import distance, rows_of_table, svg
from bench.report import Row

SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.DATABASES['default']['TEST']['NAME'], s.BENCH_REDIS_URL, s.BENCH_CELERY_BROKER_URL]))"
)


def _bench_places(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    clean.update(DJANGO_SETTINGS_MODULE="bench.settings", **env)
    out = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=settings.BASE_DIR, env=clean, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_bench_follows_database_url_and_redis_url():
    places = _bench_places(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/clone7", REDIS_URL="redis://10.1.2.3:6390/1"
    )
    assert places == ["bench_clone7", "redis://10.1.2.3:6390/11", "redis://10.1.2.3:6390/9"]


def test_explicit_bench_places_win():
    places = _bench_places(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/clone7",
        REDIS_URL="redis://10.1.2.3:6390/1",
        BENCH_DB_NAME="mine",
        BENCH_REDIS_URL="redis://127.0.0.1:6401/3",
        BENCH_CELERY_BROKER_URL="redis://127.0.0.1:6401/4",
    )
    assert places == ["mine", "redis://127.0.0.1:6401/3", "redis://127.0.0.1:6401/4"]


ROWS = [
    Row("2 flow", "300 cases", "8.7 cases/s", "77.3 bare", 8.84, "<= 2.0", False),
    Row("3 scale-out", "48 cases, Celery", "9.5 s", "29.1 s", 3.08, ">= 6", False),
    Row("5 portal", "search 'ez'", "14.1 ms", "9.4 ms", 1.49, "<= 1.5", True),
    Row("6 token", "token requests", "1 / 1 / 1", "32", 0.03, "1 per round", True),
    Row("2 flow", "time per case", "114 ms", "12.9 ms", 8.84, "report", None),
]


def test_the_distance_to_the_target_is_one_on_it_and_above_one_when_missed():
    assert round(distance(ROWS[0]), 2) == 4.42
    assert round(distance(ROWS[1]), 2) == 1.95  # a lower bound: target / ratio
    assert distance(ROWS[2]) < 1
    assert distance(ROWS[3]) is None and distance(ROWS[4]) is None  # no bound on the ratio


def test_the_svg_has_one_bar_per_bounded_ratio_coloured_by_met():
    root = ET.fromstring(svg(ROWS, "test run"))
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("fill") != "white"]
    assert [b.get("fill") for b in bars] == ["#c62828", "#c62828", "#2e7d32"]
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "3.08 (>= 6) NO" in texts and "1.49 (<= 1.5)" in texts


def test_a_printed_table_is_read_back():
    table = (
        "benchmark | measure | value | baseline | ratio | target | met\n"
        "----------+---------+-------+----------+-------+--------+----\n"
        "5 portal  | search 'ez': median | 14.1 ms | 9.4 ms | 1.49  | <= 1.5 | yes\n"
        "6 token   | calls done | 823 ms | 358 ms | 2.30  | report |    \n"
    )
    rows = rows_of_table(table)
    assert [(r.measure, r.ratio, r.target, r.met) for r in rows] == [
        ("search 'ez': median", 1.49, "<= 1.5", True),
        ("calls done", 2.3, "report", None),
    ]
