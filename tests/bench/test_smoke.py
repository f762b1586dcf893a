"""The benchmarks at tiny sizes, so they cannot rot. Timings are not checked here."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from django.conf import settings


def test_benchmarks_run_at_tiny_sizes(tmp_path):
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        env["DATABASE_URL"] = "sqlite:///:memory:"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.01", "--svg", str(tmp_path / "figures.svg")],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    drawn = ET.parse(tmp_path / "figures.svg").getroot()  # the picture of the run (make bench: bench/figures.svg)
    assert drawn.tag == "{http://www.w3.org/2000/svg}svg"
    assert any("1 engine" in (t.text or "") for t in drawn.iter("{http://www.w3.org/2000/svg}text"))
    assert "1 engine" in result.stdout
    assert "vs django-fsm-2" in result.stdout
    portal = [line for line in result.stdout.splitlines() if line.startswith("5 portal")]
    assert len(portal) == 10, result.stdout
    # The number of queries must not depend on the number of cases, even at tiny sizes.
    assert all(line.rstrip().endswith("yes") for line in portal if ": queries," in line), result.stdout
    # The support analytics: the same number of queries with 100 times the cases.
    analytics = [line for line in result.stdout.splitlines() if line.startswith("8 metrics")]
    assert len(analytics) == 4, result.stdout
    assert all(line.rstrip().endswith("yes") for line in analytics if ": queries," in line), result.stdout
    # Several processes with a cold cache: one token request between them (Redis at BENCH_REDIS_URL).
    token = [line for line in result.stdout.splitlines() if line.startswith("6 token")]
    if token and "not run" in token[0]:  # no Redis there: allowed outside CI only
        assert os.environ.get("CI") != "true", result.stdout
    else:
        assert len(token) == 2 and "token requests" in token[0] and token[0].rstrip().endswith("yes"), result.stdout
    measured = db["ENGINE"] == "django.db.backends.postgresql"
    # Signed events through a real gunicorn process: the burst must be stored exactly once.
    events = [line for line in result.stdout.splitlines() if line.startswith("7 events")]
    assert events, result.stdout
    if measured:
        assert len(events) == 4 and "bare endpoint" in events[0], result.stdout
        assert "0 lost, 0 doubled" in events[3] and events[3].rstrip().endswith("yes"), result.stdout
    for figure, measure in (
        ("2 flow", "eligible -> shipping, inline"),
        ("3 scale-out", "Celery (8 threads)"),
        ("4 batch", "align_batch --processes 2 --concurrency 8"),
    ):
        rows = [line for line in result.stdout.splitlines() if line.startswith(figure)]
        assert rows, f"no {figure} row:\n{result.stdout}"
        if measured:
            assert any(measure in line for line in rows), result.stdout
