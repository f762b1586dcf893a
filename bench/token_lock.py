"""Figure 6: 32 processes with a cold shared cache make one token request between them.

32 spawned processes, each with Django set up as in production (the cache is Redis
through django-redis, here the database BENCH_REDIS_URL, default
database 11 on REDIS_URL's server), wait at a barrier and then each makes one authenticated call
(GET /orders/{id}) through the Align client against the simulator running as a real
process (align_simulator.launch). The simulator counts the token
requests it answered. The token route answers after 300 ms (an injected latency), so
every process is still inside the race when the first token arrives.

The baseline, in the same run and against the same simulator and processes: the same
calls with the client's shared token lock switched off (`share_token_lock = False`),
that is a client that fetches a token whenever its cache look-up misses.

A first round, not counted, lets every process finish starting. The processes are
bench/client_processes.py's, which the test suite's 16-process test also uses. Only the
token and lock keys the client writes are deleted from the Redis database, before and
after each round.
"""

import statistics
import time

from django.conf import settings

from .report import Row

PROCESSES = 32
CASE_ID = 1  # unknown to the simulator: a call that gets past auth answers 404
SLOW_MS = 300
TOKEN_ROUTE = "POST /auth/token"
KEYS = "*align:token*"  # the client's token and token-lock keys (django-redis adds its prefix)


def _redis_url():
    return settings.BENCH_REDIS_URL


def _forget_tokens(redis):
    keys = list(redis.scan_iter(match=KEYS))
    if keys:
        redis.delete(*keys)


def _round(processes, simulator, redis, share_token_lock):
    """One cold start of every process at once: (token requests, seconds for all calls)."""
    _forget_tokens(redis)
    simulator.reset()
    simulator.fault(route=TOKEN_ROUTE, mode="latency", latency_ms=SLOW_MS)
    start = time.perf_counter()
    results = processes.read_case_together(simulator.url, CASE_ID, share_token_lock=share_token_lock)
    elapsed = time.perf_counter() - start
    outcomes = {r["outcome"] for r in results}
    if outcomes != {"ORDER.NOT_FOUND"}:  # every call must have got past auth
        raise RuntimeError(f"unexpected outcomes {outcomes}")
    tokens = simulator.state()["effects"]["tokens"]
    logged = sum(1 for r in simulator.requests() if r["route"] == TOKEN_ROUTE)
    if logged != tokens:
        raise RuntimeError(f"the simulator logged {logged} token requests but counted {tokens}")
    _forget_tokens(redis)
    return tokens, elapsed


def run(scale=1.0):
    import redis as redis_py

    from align_simulator.launch import start_simulator

    from .client_processes import ClientProcesses

    n = max(4, int(PROCESSES * scale))
    rounds = 3 if scale >= 0.1 else 1
    url = _redis_url()
    redis = redis_py.Redis.from_url(url)
    try:
        redis.ping()
    except redis_py.RedisError as error:
        return [Row("6 token", f"{n} processes, cold cache: not run", f"no Redis at {url}: {error}")]

    simulator = start_simulator()
    processes = None
    try:
        env = {"REDIS_URL": url, "DJANGO_SETTINGS_MODULE": "align_workflow.settings"}
        processes = ClientProcesses(n, env=env)
        _round(processes, simulator, redis, share_token_lock=True)  # warm-up: every process has started
        locked, naive = [], []
        for r in range(rounds):  # alternating which goes first
            for share_token_lock in (True, False) if r % 2 == 0 else (False, True):
                result = _round(processes, simulator, redis, share_token_lock=share_token_lock)
                (locked if share_token_lock else naive).append(result)
    finally:
        if processes is not None:
            processes.close()
        simulator.stop()
        _forget_tokens(redis)
        redis.close()

    most = max(t for t, _ in locked)
    naive_tokens = [t for t, _ in naive]
    naive_median = statistics.median(naive_tokens)
    shown = lambda counts: " / ".join(str(t) for t in counts)  # noqa: E731
    ms = lambda times: f"{statistics.median(times) * 1000:.0f} ms"  # noqa: E731
    return [
        Row(
            "6 token",
            f"{n} processes, cold cache: token requests, {rounds} round{'s' if rounds > 1 else ''}",
            shown(t for t, _ in locked),
            f"{shown(naive_tokens)} without the lock",
            most / naive_median,
            "1 per round",
            all(t == 1 for t, _ in locked),
        ),
        Row(
            "6 token",
            f"{n} processes, cold cache: all {n} calls done, median",
            ms([s for _, s in locked]),
            f"{ms([s for _, s in naive])} without the lock",
            statistics.median(s for _, s in locked) / statistics.median(s for _, s in naive),
            "report",
        ),
    ]
