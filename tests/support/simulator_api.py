"""Talking to the simulator over raw HTTP (`requests`), and a tiny stand-in app.

`Api` is a session with a bearer token and helpers that build valid contract bodies;
`FakeApp` is a stdlib HTTP server playing the app: it serves case asset lists and
records the events it receives (answering them with statuses a test chooses).
tests/integration/conftest.py makes them the `api` and `fake_app` fixtures.
"""

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

CASE_IDS = itertools.count(97_001)
STL_ASSETS = [
    {"kind": "STL_UPPER", "vault_id": "v-1", "external_key": "k-upper", "filename": "upper.stl", "sha256": "a" * 64},
    {"kind": "STL_LOWER", "vault_id": "v-1", "external_key": "k-lower", "filename": "lower.stl", "sha256": "b" * 64},
]


def patient_body(case_id, mrn=None, **changes):
    body = {
        "caseId": case_id,
        "mrn": mrn or f"MRN-{case_id}",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "dateOfBirth": "1990-04-01",
        "gender": "F",
        "email": "ada@example.org",
        "phone": "+1 555 0100",
        "address": {
            "line1": "1 Main St",
            "line2": "",
            "city": "Springfield",
            "state": "IL",
            "zip": "62701",
            "country": "US",
        },
    }
    body.update(changes)
    return body


class Api:
    """Raw contract calls with a bearer token; each returns the `requests` response."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()
        self.token = None

    def fresh(self):
        """Another session with the same token (one per thread in concurrency tests)."""
        other = Api(self.url)
        other.token = self.token
        return other

    def get_token(self):
        response = self.http.post(
            f"{self.url}/auth/token",
            data={"grant_type": "client_credentials", "client_id": "demo", "client_secret": "demo-secret"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        return self.token

    def call(self, method, path, json=None, key=None, timeout=10, **kwargs):
        headers = {"Authorization": f"Bearer {self.token or self.get_token()}"}
        if key:
            headers["Idempotency-Key"] = key
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, f"{self.url}{path}", json=json, headers=headers, timeout=timeout, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.call("POST", path, json, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.call("PUT", path, json, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    # --- a case through the contract ---------------------------------------------------

    def new_patient(self, case_id=None, **changes):
        case_id = case_id or next(CASE_IDS)
        response = self.post("/patients", patient_body(case_id, **changes))
        assert response.status_code == 200, response.text
        return case_id, response.json()

    def new_order(self, case_id=None, treatment_option="BOTH_ARCHES"):
        case_id, patient = self.new_patient(case_id)
        response = self.post(
            "/orders",
            {
                "caseId": case_id,
                "pId": patient["pId"],
                "mrn": patient["mrn"],
                "orderType": "IAS",
                "treatmentOption": treatment_option,
                "chiefConcern": "Straighten teeth",
            },
        )
        assert response.status_code == 200, response.text
        return case_id, patient

    def upload(self, case_id, patient, **kwargs):
        return self.post("/assets/upload", {"caseId": case_id, "pId": patient["pId"], "mrn": patient["mrn"]}, **kwargs)


def error_code(response):
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]


class FakeApp:
    """What the simulator sees of the app: asset lists in, events out."""

    def __init__(self):
        self.assets = {}  # case id -> list, or an int status to answer with
        self.event_statuses = []  # answers for the next events, then 200
        self.events = []  # (raw body bytes, headers dict, status answered)
        self.event_delay_s = 0  # how long each event POST takes to answer
        self.in_flight = 0  # event POSTs being answered now ...
        self.most_in_flight = 0  # ... and the most at once
        self.asset_requests = []  # headers of each asset list request
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self):
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = self.path.strip("/").split("/")  # api/align/cases/<id>/assets
                case_id = int(parts[3]) if len(parts) == 5 and parts[4] == "assets" else None
                with app.lock:
                    app.asset_requests.append(dict(self.headers))
                    listed = app.assets.get(case_id, 404)
                if isinstance(listed, int):
                    self._answer(listed, {"detail": "no such case"})
                else:
                    self._answer(200, listed)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with app.lock:
                    app.in_flight += 1
                    app.most_in_flight = max(app.most_in_flight, app.in_flight)
                time.sleep(app.event_delay_s)
                with app.lock:
                    app.in_flight -= 1
                    status = app.event_statuses.pop(0) if app.event_statuses else 200
                    app.events.append((raw, dict(self.headers), status))
                self._answer(status, {"ok": status == 200})

            def _answer(self, status, body):
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        return Handler

    def received(self, accepted_only=True):
        """Event bodies received (parsed), in arrival order."""
        with self.lock:
            return [json.loads(raw) for raw, _, status in self.events if status == 200 or not accepted_only]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
