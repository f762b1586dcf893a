"""The token shared through Redis (django-redis), as in production.

Threads against fake responses here; separate processes against the simulator in
test_client_processes.py."""

import json
import threading
import time

import pytest
import responses

from align_workflow.align.client import Align
from tests.support.threads import together

BASE = "http://align.test"
TOKEN_URL = f"{BASE}/auth/token"


@pytest.fixture
def redis_cache(require_redis):
    from django.core.cache import caches

    cache = caches["default"]
    assert hasattr(cache, "lock"), "REDIS_URL set, so the cache is django-redis with locks"
    return cache


def _fake_service(rsps, delay=0.2):
    issued = []
    guard = threading.Lock()

    def token(request):
        time.sleep(delay)
        with guard:
            issued.append(1)
            n = len(issued)
        return 200, {}, json.dumps({"access_token": f"tok-{n}", "expires_in": 3600})

    rsps.add_callback("POST", TOKEN_URL, callback=token)
    rsps.get(f"{BASE}/orders/7", json={"caseId": 7})
    return issued


@pytest.mark.redis
@pytest.mark.parametrize("share_token_lock, expect_one", [(True, True), (False, False)], ids=["locked", "unlocked"])
def test_clients_sharing_redis_make_one_token_request(redis_cache, share_token_lock, expect_one):
    class ClientUnderTest(Align):
        pass

    ClientUnderTest.share_token_lock = share_token_lock
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        issued = _fake_service(rsps)
        # One client per thread, as separate processes would each have their own.
        together(lambda: ClientUnderTest(BASE, cache=redis_cache).get_case(7))
    if expect_one:
        assert len(issued) == 1
        assert redis_cache.get(Align(BASE).token_cache_key) == "tok-1"
        assert redis_cache.ttl(Align(BASE).token_cache_key) in range(3530, 3541)
    else:
        assert len(issued) > 1  # the negative control: without the lock every client asks
