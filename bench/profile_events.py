"""Where figure 7's time goes: one signed event through the app's `POST /api/align/events`
against the bare verify-and-store endpoint, in this process (Django's test client, no
HTTP server, no threads), under cProfile, on a throwaway bench database.

    python -m bench.profile_events            # 1,000 events per side, one case per ten
    python -m bench.profile_events 300 40     # events per side, functions listed
    python -m bench.profile_events 300 40 tottime   # sorted by time inside each function

Prints the statements and the CPU per event on each side, the app's statements for one
event, then the app's functions by cumulative time (cProfile's own overhead included).
"""

import cProfile
import io
import os
import pstats
import sys
import time


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    count = int(argv[0]) if argv else 1000
    listed = int(argv[1]) if len(argv) > 1 else 30
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings, setup_test_environment

    from . import events_ingest as fig7

    setup_test_environment()
    connection.settings_dict["TEST"]["NAME"] += "_profile"  # apart from a benchmark running meanwhile
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        with override_settings(ROOT_URLCONF="bench.urls", ALIGN_EVENTS_SECRET=fig7.SECRET, ALLOWED_HOSTS=["*"]):
            client = Client()
            cases = fig7._cases(max(1, count // 10))
            warm = fig7._events(cases, 20)
            for path in (fig7.EVENTS_PATH, fig7.BARE_PATH):
                for _id, body, headers in warm:
                    client.post(path, data=body, content_type="application/json", headers=headers)
            sides = {}

            def post_all(path, profile=None):
                deliveries = fig7._events(cases, count)
                cpu = time.process_time()
                if profile:
                    profile.enable()
                for _id, body, headers in deliveries:
                    answer = client.post(path, data=body, content_type="application/json", headers=headers)
                    if answer.status_code >= 300:
                        raise RuntimeError(f"{path}: {answer.status_code} {answer.content[:300]!r}")
                if profile:
                    profile.disable()
                return time.process_time() - cpu

            for name, path in (("bare", fig7.BARE_PATH), ("app", fig7.EVENTS_PATH)):
                with CaptureQueriesContext(connection) as queries:
                    cpu = post_all(path)  # timed without the profiler
                # Read now: every request starts by emptying the connection's query log.
                statements = len(queries) / count
                last = [q["sql"] for q in queries.captured_queries[-round(statements) :]]
                profile = cProfile.Profile()
                post_all(path, profile)  # the same number of new events again, profiled
                sides[name] = (cpu / count * 1000, statements, profile)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    for name, (ms, statements, _profile) in sides.items():
        print(f"{name:>4}: {ms:.2f} ms CPU per event in this process, {statements:.1f} statements per event")
    print(f"app / bare CPU: {sides['app'][0] / sides['bare'][0]:.2f}")
    print("\nThe app's statements for its last event:")
    for sql in last:
        print("  " + (sql if len(sql) <= 150 else sql[:147] + "..."))
    out = io.StringIO()
    pstats.Stats(sides["app"][2], stream=out).sort_stats(*(sys.argv[3:4] or ["cumulative"])).print_stats(listed)
    print(out.getvalue())


if __name__ == "__main__":
    main()
