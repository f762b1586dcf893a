"""The Align client and the HTTP vault keep their connection alive between calls (one
session per thread, align/http.py), counted by a local HTTP/1.1 server."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache.backends.locmem import LocMemCache

from align_workflow.align import http
from align_workflow.align.client import Align
from align_workflow.align.vault import HttpVault

BLOB_ID = str(uuid.uuid4())


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.requests = []
        self.close_next = False
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self):
        self._answer()

    do_POST = do_PUT = do_GET

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.headers.get("Cookie")))
            close, self.server.close_next = self.server.close_next, False
        if self.path == "/auth/token":
            body = {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
        elif self.path.startswith("/v1/vaults/"):
            body = {"blob_id": BLOB_ID}
        else:
            body = {"caseId": 1, "pId": "P1", "status": "RECEIVED", "orders": [], "salesOrders": [], "plans": []}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", f"seen={len(self.server.requests)}; Path=/")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def fresh_thread_session():
    # Each test starts with a session of its own, as a new thread would.
    http._local.__dict__.clear()
    yield
    http._local.__dict__.clear()


def client(server, cache=None):
    return Align(server.url, "demo", "demo-secret", cache=cache or LocMemCache(f"conn-{uuid.uuid4()}", {}))


def test_calls_from_one_thread_share_one_connection(server, settings):
    """Every effect makes its own Align() (align_effects.align_client): the connection is
    still the same one."""
    from align_workflow.workflow.align_effects import align_client

    settings.ALIGN_SERVICE_URL = server.url
    for _ in range(4):
        assert align_client().get_case(1).p_id == "P1"
    assert [path for _, path, _ in server.requests] == ["/auth/token"] + ["/orders/1"] * 4
    assert server.connections == 1


def test_each_thread_has_its_own_connection(server):
    align = client(server)
    align.get_case(1)

    def twice():
        align.get_case(1)
        align.get_case(1)

    workers = [threading.Thread(target=twice) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert server.connections == 3


def test_no_cookie_is_sent_back(server):
    align = client(server)
    align.get_case(1)
    align.get_case(1)
    assert [cookie for _, _, cookie in server.requests] == [None, None, None]


def test_a_connection_the_server_closed_is_replaced(server):
    align = client(server)
    align.get_case(1)
    server.close_next = True
    align.get_case(1)  # answered, then closed by the server
    align.get_case(1)
    assert len(server.requests) == 4
    assert server.connections == 2


def test_an_injected_session_is_used_as_given(server):
    import requests

    class Counting(requests.Session):
        sent = 0

        def request(self, *args, **kwargs):
            Counting.sent += 1
            return super().request(*args, **kwargs)

    align = Align(server.url, "demo", "demo-secret", cache=LocMemCache(f"conn-{uuid.uuid4()}", {}), session=Counting())
    align.get_case(1)
    assert Counting.sent == 2  # the token and the call


def test_the_vault_reuses_the_connection_too(server):
    vault = HttpVault(server.url, vault_id="vault-1", api_key="key")
    stored = vault.put(b"jpeg", filename="a.jpg", content_type="image/jpeg")
    assert stored.external_key == BLOB_ID
    vault.get("vault-1", BLOB_ID)
    client(server).get_case(1)  # the client shares the thread's session with the vault
    assert server.connections == 1
