"""One thread pool for running many cases at once (align_batch --concurrency,
align_retry_due --workers): each worker thread keeps its database connection from one
case to the next, and they are all closed when the run ends (see connections.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed

from .connections import ThreadConnections


class Interrupted(Exception):
    """Ctrl-C during `run_each`: `done` holds the results of the items that finished
    (by index); the items not started were cancelled."""

    def __init__(self, done):
        super().__init__("interrupted")
        self.done = done


def run_each(
    fn: Callable, items: Iterable, *, workers: int, name: str, on_result: Callable[[int, object], None] | None = None
) -> list:
    """`fn(item)` for every item, up to `workers` at a time in threads, in the order
    they finish (`on_result(index, result)`, called in this thread, one at a time).
    Returns the results in the items' order. With one worker or one item, runs here.
    On KeyboardInterrupt, waits for the items in flight and raises Interrupted."""
    items = list(items)
    report = on_result or (lambda index, result: None)
    results: dict[int, object] = {}
    if workers <= 1 or len(items) <= 1:
        try:
            for index, item in enumerate(items):
                results[index] = fn(item)
                report(index, results[index])
        except KeyboardInterrupt:
            raise Interrupted(results) from None
        return [results[i] for i in range(len(items))]

    held = ThreadConnections()

    def in_thread(item):
        try:
            return fn(item)
        finally:
            held.keep()  # the thread's connection serves its next item (closed below)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    futures = {}
    try:
        futures = {pool.submit(in_thread, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            report(index, results[index])
    except KeyboardInterrupt:
        pool.shutdown(wait=True, cancel_futures=True)
        for future, index in futures.items():
            if index not in results and future.done() and not future.cancelled() and future.exception() is None:
                results[index] = future.result()
                report(index, results[index])
        raise Interrupted(results) from None
    finally:
        pool.shutdown(wait=True)
        held.close_all()
    return [results[i] for i in range(len(items))]
