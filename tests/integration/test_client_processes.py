"""Sixteen processes, one Redis, the simulator: the token is fetched once.

Each process is a spawned Python with Django set up against the same REDIS_URL; they
all call the simulator at the same moment (a barrier). The simulator counts the work
it really did (`effects.tokens`) and logs every request it received. The token route
answers slowly (an injected latency) so the processes really do overlap; without the
shared lock every one of them asks for its own token.
"""

import pytest
from django.core.cache import cache

from align_workflow.align.client import Align, AlignRejected
from bench.client_processes import ClientProcesses

PROCESSES = 16
CASE_ID = 1  # unknown to the simulator: every call that gets past auth answers 404
SLOW_MS = 300

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class LazyProcesses:
    """Spawned on first use (only when Redis and the simulator are there), closed after the module."""

    def __init__(self):
        self.processes = None

    def get(self):
        if self.processes is None:
            self.processes = ClientProcesses(PROCESSES)
        return self.processes

    def close(self):
        if self.processes is not None:
            self.processes.close()


@pytest.fixture(scope="module")
def lazy_processes():
    holder = LazyProcesses()
    yield holder
    holder.close()


@pytest.fixture
def processes(require_redis, simulator, lazy_processes):
    assert hasattr(cache, "lock"), "with REDIS_URL the cache is django-redis"
    cache.clear()
    # Slow answers keep every process inside the race: the first token (or the first
    # 401 and the refresh after it) is still on its way when the last process starts.
    simulator.fault(route="POST /auth/token", mode="latency", latency_ms=SLOW_MS)
    simulator.fault(route="GET /orders/{caseId}", mode="latency", latency_ms=SLOW_MS)
    return lazy_processes.get()


def token_requests(simulator):
    return [r for r in simulator.requests() if r["route"] == "POST /auth/token"]


def api_statuses(simulator):
    return [r["status"] for r in simulator.requests() if r["route"] == "GET /orders/{caseId}"]


@pytest.mark.parametrize("share_token_lock", [True, False], ids=["shared-lock", "no-lock-negative-control"])
def test_processes_starting_with_an_empty_cache_make_one_token_request(processes, simulator, share_token_lock):
    results = processes.read_case_together(simulator.url, CASE_ID, share_token_lock=share_token_lock)

    assert {r["outcome"] for r in results} == {"ORDER.NOT_FOUND"}  # every process got past auth
    tokens = simulator.state()["effects"]["tokens"]
    assert len(token_requests(simulator)) == tokens
    assert api_statuses(simulator) == [404] * PROCESSES
    print(f"\n{PROCESSES} processes, empty cache, share_token_lock={share_token_lock}: {tokens} token request(s)")
    if share_token_lock:
        assert tokens == 1
    else:
        assert tokens > 1


@pytest.mark.parametrize("share_token_lock", [True, False], ids=["shared-lock", "no-lock-negative-control"])
def test_processes_refused_a_revoked_token_fetch_one_new_token(processes, simulator, share_token_lock):
    with pytest.raises(AlignRejected):
        Align(simulator.url).get_case(CASE_ID)  # 404: caches a token in Redis on the way
    assert simulator.state()["effects"]["tokens"] == 1
    simulator.revoke_tokens()

    results = processes.read_case_together(simulator.url, CASE_ID, share_token_lock=share_token_lock)

    assert {r["outcome"] for r in results} == {"ORDER.NOT_FOUND"}
    # Every process was refused once with the revoked token, then got through with a new one.
    assert [r["requests"][0][2] for r in results] == [401] * PROCESSES
    assert sorted(api_statuses(simulator)) == [401] * PROCESSES + [404] * (PROCESSES + 1)
    new_tokens = simulator.state()["effects"]["tokens"] - 1
    print(f"\n{PROCESSES} processes hit a 401, share_token_lock={share_token_lock}: {new_tokens} new token request(s)")
    if share_token_lock:
        assert new_tokens == 1
    else:
        assert new_tokens > 1
