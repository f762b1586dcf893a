"""The one thread pool of align_batch and align_retry_due: results in the items' order,
each reported once as it finishes, Ctrl-C reported with what finished, and the worker
threads' database connections closed at the end."""

import threading

import pytest

from align_workflow.workflow import pool


@pytest.mark.parametrize("workers", [1, 4])
def test_results_come_back_in_the_items_order_and_each_is_reported_once(workers):
    seen, threads = [], set()

    def double(item):
        threads.add(threading.current_thread().name)
        return item * 2

    results = pool.run_each(
        double,
        [3, 1, 2],
        workers=workers,
        name="test-pool",
        on_result=lambda index, result: seen.append((index, result)),
    )
    assert results == [6, 2, 4]
    assert sorted(seen) == [(0, 6), (1, 2), (2, 4)]
    assert all(name.startswith("test-pool") for name in threads) == (workers > 1)


@pytest.mark.parametrize("workers", [1, 3])
def test_ctrl_c_reports_what_finished(workers):
    """Ctrl-C reaches the thread that runs the pool (here: while it reports the second result)."""
    reported = []

    def report(index, result):
        reported.append(index)
        if len(reported) == 2:
            raise KeyboardInterrupt

    with pytest.raises(pool.Interrupted) as stopped:
        pool.run_each(lambda item: item, ["a", "b", "c", "d"], workers=workers, name="t", on_result=report)
    done = stopped.value.done
    assert len(done) >= 2 and set(done.values()) <= {"a", "b", "c", "d"}
    assert all(done[index] == "abcd"[index] for index in done)
    if workers == 1:
        assert done == {0: "a", 1: "b"}  # the items not started were not run


@pytest.mark.django_db(transaction=True)
def test_the_worker_threads_connections_are_closed_at_the_end(require_postgres):
    from django.db import connection

    def backend(item):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    pids = set(pool.run_each(backend, range(8), workers=3, name="t"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
        assert cursor.fetchone()[0] == 0
    assert 1 <= len(pids) <= 3  # one connection per thread, kept from one item to the next
