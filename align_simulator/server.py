"""The HTTP server: routing, auth, faults, Idempotency-Key, the request log, and `serve()`.

One request goes through: find the route (404/405) → `/_sim/` controls are answered
directly (loopback only) → otherwise pick a fault, add the configured latency, answer
the fault or drop the connection when the fault says so → check the bearer token →
replay the stored answer for its Idempotency-Key, or do the work and keep the answer →
log it → answer (late, or not at all, for the `*_after_commit` faults).

Stdlib `ThreadingHTTPServer`: one thread per connection, HTTP/1.1 keep-alive. Nothing
here imports Django, so `python -m align_simulator` runs alone.
"""

import json
import logging
import os
import re
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import blobs, controls, routes
from .config import Config
from .faults import FaultBook
from .idempotency import IdempotencyStore
from .outbox import Outbox
from .previews import preview_png
from .progress import AlignProgress
from .store import Store, utc_now_iso
from .wire import ApiError, Request, Response, error_response, fingerprint, new_request_id

log = logging.getLogger("align_simulator")

REDACTED_FIELDS = {"firstName", "lastName", "dateOfBirth", "email", "phone", "address", "client_secret"}


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # "PUT /orders/{caseId}/accept" is `"PUT " + template`
    handler: object
    auth: str = "bearer"  # bearer | none | control
    idempotent: bool = False  # honours Idempotency-Key
    errors: str = "envelope"  # envelope | vault: the shape of its error bodies

    @property
    def name(self):
        return f"{self.method} {self.template}"

    @property
    def pattern(self):
        regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[A-Za-z0-9_.-]+?)", re.escape(self.template))
        return re.compile(f"^{regex}$")


def preview(sim, req):
    return Response(200, preview_png(req.path_args["planId"]), content_type="image/png")


ROUTES = (
    Route("POST", "/auth/token", routes.issue_token, auth="none"),
    Route("POST", "/patients", routes.create_patient, idempotent=True),
    Route("POST", "/orders", routes.create_order, idempotent=True),
    Route("POST", "/assets/upload", routes.upload_assets, idempotent=True),
    Route("PUT", "/orders/{caseId}/accept", routes.accept_clincheck, idempotent=True),
    Route("PUT", "/orders/{caseId}/modify", routes.request_modification, idempotent=True),
    Route("GET", "/orders/{caseId}", routes.read_case),
    Route("POST", "/v1/vaults/{vault_id}/blobs", blobs.put_blob, auth="none", errors="vault"),
    Route("GET", "/v1/vaults/{vault_id}/blobs/{blob_id}", blobs.get_blob, auth="none", errors="vault"),
    Route("GET", "/previews/{planId}.png", preview, auth="none"),
    Route("POST", "/_sim/reset", controls.reset, auth="control"),
    Route("GET", "/_sim/state", controls.state, auth="control"),
    Route("GET", "/_sim/requests", controls.request_log, auth="control"),
    Route("GET", "/_sim/faults", controls.list_faults, auth="control"),
    Route("POST", "/_sim/faults", controls.add_fault, auth="control"),
    Route("DELETE", "/_sim/faults", controls.clear_faults, auth="control"),
    Route("GET", "/_sim/config", controls.show_config, auth="control"),
    Route("POST", "/_sim/config", controls.change_config, auth="control"),
    Route("POST", "/_sim/cases/{caseId}/emit", controls.emit, auth="control"),
    Route("POST", "/_sim/cases/{caseId}/adopt", controls.adopt, auth="control"),
    Route("POST", "/_sim/tokens/revoke", controls.revoke_tokens, auth="control"),
    Route("POST", "/_sim/tokens/expire", controls.expire_tokens, auth="control"),
)
COMPILED = [(route, route.pattern) for route in ROUTES]


def find_route(method, path):
    allowed = []
    for route, pattern in COMPILED:
        match = pattern.match(path)
        if match:
            if route.method == method:
                return route, match.groupdict()
            allowed.append(route.method)
    if allowed:
        raise ApiError(
            405,
            "REQUEST.METHOD_NOT_ALLOWED",
            f"{method} is not allowed here",
            {"allowed": allowed},
            headers={"Allow": ", ".join(allowed)},
        )
    raise ApiError(404, "ROUTE.NOT_FOUND", f"no route {method} {path}")


@dataclass
class Reply:
    response: Response | None
    fault: object = None
    replayed: bool = False

    @property
    def drop_now(self):
        return self.fault is not None and self.fault.mode == "reset"

    @property
    def after(self):
        return self.fault.mode if self.fault and self.fault.mode.endswith("_after_commit") else None


def render_error(route, error, request_id):
    if route is not None and route.errors == "vault":
        return Response(error.status, blobs.vault_error_body(error), dict(error.headers))
    return error_response(error, request_id)


class AlignSimulator:
    """State, config, faults, Align's progress and the HTTP server, wired together."""

    def __init__(self, host="127.0.0.1", port=8765, public_url=None, **config):
        self.config = Config(**config)
        self.store = Store()
        self.idempotency = IdempotencyStore()
        self.faults = FaultBook()
        self.httpd = SimulatorHTTPServer((host, port), SimulatorRequestHandler, self)
        bound_host, bound_port = self.httpd.server_address[:2]
        shown_host = "127.0.0.1" if bound_host in ("0.0.0.0", "::") else bound_host
        self.url = (public_url or f"http://{shown_host}:{bound_port}").rstrip("/")
        self.outbox = Outbox(self.store, self.config)
        self.progress = AlignProgress(self.store, self.config, self.outbox, self.url)
        self._thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    def reset(self):
        self.config.reset()
        self.store.reset()
        self.idempotency.reset()
        self.faults.clear()
        self.progress.reset()
        self.outbox.reset()

    def start(self):
        """Serve on a background thread (for embedding); `stop()` ends it."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="align-sim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.progress.stop()
        self.outbox.stop()
        if self._thread:
            self._thread.join(5)

    # --- one request ----------------------------------------------------------------

    def serve(self, req):
        """Answer one request; never raises."""
        route = None
        try:
            route, req.path_args = find_route(req.method, req.path)
            req.route = route.name
            if route.auth == "control":
                controls.require_loopback(req)
                return Reply(self._call(route, req))
            return self._serve_contract(route, req)
        except ApiError as error:
            return Reply(render_error(route, error, req.request_id))

    def _serve_contract(self, route, req):
        fault = self.faults.pick(route.name, f"{req.method} {req.path}")
        latency_ms = self.config.latency_ms + (fault.latency_ms if fault and fault.mode == "latency" else 0)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if fault and fault.mode == "status":
            retry = {"Retry-After": str(fault.retry_after)} if fault.status in (429, 503) else {}
            error = ApiError(fault.status, fault.code, fault.message, {"fault": fault.id}, headers=retry)
            return Reply(render_error(route, error, req.request_id), fault)
        if fault and fault.mode == "reset":
            return Reply(None, fault)
        if route.auth == "bearer":
            routes.check_bearer(self, req)
        key = req.headers.get("idempotency-key", "").strip() if route.idempotent else ""
        if not key:
            return Reply(self._work(route, req), fault)
        params_print = fingerprint(req.method, req.path, req.params)
        with self.idempotency.exclusive(key, enabled=self.config.idempotency_lock):
            replay = self.idempotency.replay(key, params_print, self.config.idempotency_ttl_s)
            if replay is not None:
                return Reply(replay, fault, replayed=True)
            response = self._work(route, req)
            self.idempotency.keep(key, params_print, route.name, response)
            return Reply(response, fault)

    def _work(self, route, req):
        if route.idempotent and self.config.work_ms:
            time.sleep(self.config.work_ms / 1000)
        return self._call(route, req)

    def _call(self, route, req):
        try:
            result = route.handler(self, req)
        except ApiError as error:
            return render_error(route, error, req.request_id)
        return result if isinstance(result, Response) else Response(200, result)

    def log_request(self, req, outcome, started):
        response = outcome.response
        self.store.log_request(
            {
                "at": utc_now_iso(),
                "method": req.method,
                "path": req.path,
                "route": req.route or None,
                "status": response.status if response and not outcome.drop_now else None,
                "request_id": req.request_id,
                "idempotency_key": req.headers.get("idempotency-key"),
                "replayed": outcome.replayed,
                "fault": outcome.fault.to_json() if outcome.fault else None,
                "delivery": "dropped"
                if outcome.drop_now or outcome.after == "reset_after_commit"
                else "late"
                if outcome.after
                else "answered",
                "authorization": req.headers.get("authorization", " ").split(" ")[0].lower() or None,
                "content_type": req.content_type or None,
                "body": redacted_body(req),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
        log.info(
            "%s %s %s %s",
            req.method,
            req.path,
            response.status if response and not outcome.drop_now else "dropped",
            req.request_id,
        )


def redacted_body(req):
    """The parsed body with personal fields and secrets replaced; None when not JSON / form."""
    if req.content_type not in ("application/json", "application/x-www-form-urlencoded", ""):
        return None
    try:
        params = req.params
    except ApiError:
        return None
    return {k: "[redacted]" if k in REDACTED_FIELDS else v for k, v in params.items()}


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many clients connecting at once must queue, not be refused

    def __init__(self, address, handler, simulator):
        self.simulator = simulator
        super().__init__(address, handler)


class SimulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AlignSimulator/1.0"
    disable_nagle_algorithm = True  # headers and body are two writes; don't wait for delayed ACKs

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _handle(self):
        started = time.monotonic()
        sim = self.server.simulator
        url = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=self._read_body(),
            client_ip=self.client_address[0],
        )
        outcome = sim.serve(req)
        if not req.path.startswith("/_sim/"):
            sim.log_request(req, outcome, started)
        if outcome.drop_now:
            self._drop_connection()
            return
        if outcome.after == "timeout_after_commit":
            time.sleep(outcome.fault.seconds)  # the work is done and kept; the client gives up
        if outcome.after == "reset_after_commit":
            self._drop_connection()
            return
        self._send(outcome.response, req.request_id)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response, request_id):
        payload = response.payload()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Request-Id", request_id)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. timeout_after_commit)

    def _drop_connection(self):
        """Close without answering; linger 0 makes it a TCP reset."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def send_error(self, code, message=None, explain=None):
        """Malformed HTTP (bad request line, huge headers): still a JSON envelope."""
        self.close_connection = True
        error = ApiError(code, f"HTTP.{code}", message or self.responses.get(code, ("error",))[0])
        body = json.dumps(error_response(error, new_request_id()).body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # requests are logged by AlignSimulator.log_request, without their bodies


def serve(host="127.0.0.1", port=8765, public_url=None, announce=print, parent_pid=None, **config):
    """Run until SIGINT / SIGTERM (or until `parent_pid` is gone); returns after a clean stop."""
    simulator = AlignSimulator(host, port, public_url, **config)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        simulator.start()
        announce(
            f"Align simulator listening on {simulator.url} "
            f"(app: {simulator.config.app_url or '-'}, events: {simulator.config.callback_base_url or '-'})"
        )
        while not stop.wait(0.5):
            if parent_pid and not parent_alive(parent_pid):
                break
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return simulator


def parent_alive(pid):
    """Our parent is still the process that started us (a test session that died hands us to init)."""
    return os.getppid() == pid
