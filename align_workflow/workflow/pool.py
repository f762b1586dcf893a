"""One thread pool for running many cases at once (align_batch --concurrency,
align_retry_due --workers): each worker thread keeps its database connection from one
case to the next, and they are all closed when the run ends (see connections.py).
`run_each_in_processes` spreads the items over forked worker processes (align_batch
--processes), each running such a thread pool with its own connections, so that more
than one core does the Python work."""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed

from django.db import connections

from .connections import ThreadConnections

logger = logging.getLogger(__name__)


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


class WorkerStopped(Exception):
    """A worker process of `run_each_in_processes` ended without finishing its share
    (killed, out of memory): `done` holds the results that did come back (by index)."""

    def __init__(self, done, exitcodes):
        super().__init__(f"a worker process stopped (exit code {', '.join(map(str, exitcodes))})")
        self.done = done
        self.exitcodes = exitcodes


_NOT_RUN = object()  # an item a child did not start because the run was interrupted


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _child(share, fn, items, workers, name, results, stop, number):
    """In a forked worker process: its share of the items on `workers` threads, each
    result sent back as it comes. Ctrl-C is the parent's to handle: it sets `stop`, and
    the items not started yet are left alone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:

        def one(index):
            return _NOT_RUN if stop.is_set() else fn(items[index])

        def send(position, result):
            if result is not _NOT_RUN:
                results.put((share[position], result))

        run_each(one, share, workers=workers, name=f"{name}-p{number}", on_result=send)
    except BaseException:  # reported to the parent as its share not finished
        logger.exception("%s worker process %s stopped", name, number)
        results.put((None, (number, False)))
    else:
        results.put((None, (number, True)))
    finally:
        connections.close_all()


def run_each_in_processes(
    fn: Callable,
    items: Iterable,
    *,
    processes: int,
    workers: int,
    name: str,
    on_result: Callable[[int, object], None] | None = None,
) -> list:
    """`fn(item)` for every item in `processes` forked worker processes, each running its
    share (every processes-th item) on `workers` threads with its own database
    connections. `fn`'s results must pickle; `on_result(index, result)` is called in
    this process, one at a time, as they come back. Returns the results in the items'
    order. On KeyboardInterrupt, the items not started are left alone, the ones in
    flight finish, and Interrupted is raised with the results that came back; a worker
    process that dies raises WorkerStopped the same way once the others are done."""
    items = list(items)
    processes = max(1, min(processes, len(items)))
    if processes == 1:
        return run_each(fn, items, workers=workers, name=name, on_result=on_result)
    report = on_result or (lambda index, result: None)
    context = multiprocessing.get_context("fork")
    results_queue, stop = context.Queue(), context.Event()
    connections.close_all()  # a forked child must not share this process's connections
    children = [
        context.Process(
            target=_child,
            args=(list(range(number, len(items), processes)), fn, items, workers, name, results_queue, stop, number),
            name=f"{name}-p{number}",
            daemon=True,
        )
        for number in range(processes)
    ]
    for child in children:
        child.start()
    results: dict[int, object] = {}
    finished: dict[int, bool] = {}
    interrupted = False
    while len(finished) < len(children):
        try:
            try:
                index, result = results_queue.get(timeout=0.2)
            except queue.Empty:
                for number, child in enumerate(children):
                    if number not in finished and child.exitcode not in (None, 0):
                        finished[number] = False  # killed before it could say so
                continue
            if index is None:
                finished[result[0]] = result[1]
                continue
            results[index] = result
            report(index, result)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()  # the children start nothing more; what is in flight comes back
    for child in children:
        child.join()
    while True:  # anything still in the pipe from a child that died
        try:
            index, result = results_queue.get(timeout=0.05)
        except queue.Empty:
            break
        if index is not None and index not in results:
            results[index] = result
            report(index, result)
    results_queue.close()
    if interrupted:
        raise Interrupted(results)
    if len(results) < len(items):
        raise WorkerStopped(results, [c.exitcode for n, c in enumerate(children) if not finished.get(n)])
    return [results[i] for i in range(len(items))]
