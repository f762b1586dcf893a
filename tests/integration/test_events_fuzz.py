"""200 generated deliveries that are forged or malformed: every one is answered 4xx and
not a single row is written anywhere."""

import base64
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from states import align_case as wf
from tests.support.deliveries import encode, make_event, post, row_counts, svix_headers
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

DELIVERIES = 200
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-align-service-secret-123").decode()

# The required fields of each event (contract section 5), and what kind of value each takes.
FIELDS = {
    "sales_order.created": {
        "caseId": "int",
        "mrn": "str",
        "pId": "str",
        "salesOrderNumber": "str",
        "orderKind": "choice",
        "orderType": "str",
        "createdAt": "datetime",
    },
    "treatment_plan.submitted": {
        "caseId": "int",
        "mrn": "str",
        "treatmentPlanId": "str",
        "version": "int",
        "stages": "object",
        "stages.upper": "int",
        "stages.lower": "int",
        "attachments": "bool",
        "ipr": "bool",
        "notes": "str",
        "assets": "list",
        "assets.0.url": "str",
        "assets.0.sha256": "str",
        "assets.0.size": "int",
        "assets.0.kind": "choice",
    },
    "case.status_changed": {
        "caseId": "int",
        "mrn": "str",
        "status": "choice",
        "shipment.carrier": "str",
        "shipment.trackingNumber": "str",
        "shipment.shippedAt": "datetime",
    },
}
ENVELOPE = {"type": "choice", "event_id": "str", "occurred_at": "datetime", "data": "object"}

# Values that are never acceptable for a field of that kind (null included: these fields are required).
WRONG = {
    "int": [None, "12", True, 1.5, [], {}, -1, 2**40],
    "str": [None, 12345, True, [], {"a": 1}],
    "bool": [None, "false", 0, 1, [], "true"],
    "datetime": [None, "yesterday", 1700000000, "2026-13-01T00:00:00Z", "2026-03-01T12:00:00", []],
    "choice": [None, "NOT_A_KNOWN_VALUE", 7, [], ""],
    "object": [None, "x", [], 3],
    "list": [None, "x", {}, 3, [1, 2]],
}


def _walk(container, path):
    *parents, last = path.split(".")
    for key in parents:
        container = container[int(key)] if isinstance(container, list) else container[key]
    return container, (int(last) if isinstance(container, list) else last)


def _set(payload, path, value):
    container, key = _walk(payload, path)
    container[key] = value


def _delete(payload, path):
    container, key = _walk(payload, path)
    del container[key]


def _full_path(payload, field):
    return field if field in ENVELOPE else f"data.{field}"


class Generator:
    def __init__(self, rng, case, other_case):
        self.rng, self.case, self.other_case = rng, case, other_case

    def valid(self):
        event_type = self.rng.choice(list(FIELDS))
        payload = make_event(event_type, self.case, event_id=f"evt_fuzz_{self.rng.getrandbits(64):016x}")
        return payload

    def signed(self, body, msg_id, **kw):
        return svix_headers(body, msg_id, **kw)

    # -- forged: the signature does not hold -----------------------------------------
    def other_secret(self, p):
        body = encode(p)
        return body, self.signed(body, p["event_id"], secret=OTHER_SECRET)

    def tampered_body(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        i = self.rng.randrange(len(body))
        flipped = bytes([body[i] ^ (1 << self.rng.randrange(7))])
        return body[:i] + flipped + body[i + 1 :], headers

    def tampered_field(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        p["data"]["caseId"] = self.other_case.pk
        p["data"]["mrn"] = self.other_case.patient.mrn
        return encode(p), headers

    def other_id(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        headers["webhook-id"] = p["event_id"] + "x"
        return body, headers

    def missing_headers(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        for name in self.rng.sample(sorted(headers), self.rng.randint(1, 3)):
            del headers[name]
        return body, headers

    def empty_header(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        headers[self.rng.choice(sorted(headers))] = self.rng.choice(["", " ", "  "])
        return body, headers

    def stale_or_future(self, p):
        body = encode(p)
        seconds = self.rng.choice([-1, 1]) * self.rng.randint(301, 10 * 24 * 3600)
        when = datetime.now(tz=UTC) + timedelta(seconds=seconds)
        return body, self.signed(body, p["event_id"], timestamp=when)

    def header_timestamp_not_signed_one(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + self.rng.choice([-7, -1, 1, 60]))
        return body, headers

    def garbage_signature(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        sig = headers["webhook-signature"][3:]
        headers["webhook-signature"] = self.rng.choice(
            [
                sig,  # no version
                "v0," + sig,
                "V1," + sig,
                "v1;" + sig,
                "v1, " + sig,
                "v1," + sig[::-1],
                "v1," + base64.b64encode(self.rng.randbytes(32)).decode(),
                "v1," + base64.b64encode(self.rng.randbytes(self.rng.randint(0, 64))).decode(),
                "v1,%%%%",
                "v1,,",
                ",",
                "v1",
                "v1," + sig[:-4],
                "v1," + "A" * 5000,
            ]
        )
        return body, headers

    def garbage_timestamp(self, p):
        body = encode(p)
        headers = self.signed(body, p["event_id"])
        headers["webhook-timestamp"] = self.rng.choice(
            ["abc", "1e10", "nan", "inf", "-5", "0x10", headers["webhook-timestamp"] + ".0", "9" * 40, "١٢٣"]
        )
        return body, headers

    # -- malformed: correctly signed, but not an acceptable event --------------------
    def _resigned(self, p, body=None):
        body = encode(p) if body is None else body
        return body, self.signed(body, p["event_id"])

    def missing_field(self, p):
        fields = [_full_path(p, f) for f in FIELDS[p["type"]]] + [f for f in ENVELOPE if f != "event_id"]
        if p["type"] == "case.status_changed":
            fields = [f for f in fields if not f.startswith("data.shipment")] + ["data.shipment"]
        _delete(p, self.rng.choice(fields))
        return self._resigned(p)

    def wrong_type(self, p):
        kinds = {**{_full_path(p, f): k for f, k in FIELDS[p["type"]].items()}, **ENVELOPE}
        kinds.pop("event_id")
        path = self.rng.choice(sorted(kinds))
        if path == "type":
            _set(p, path, self.rng.choice(["plan.deleted", "", 3, None, "SALES_ORDER.CREATED"]))
        else:
            _set(p, path, self.rng.choice(WRONG[kinds[path]]))
        return self._resigned(p)

    def out_of_range(self, p):
        p["type"] = "treatment_plan.submitted"
        p["data"] = make_event(p["type"], self.case)["data"]
        path, value = self.rng.choice(
            [
                ("data.stages.upper", 21),
                ("data.stages.lower", -1),
                ("data.version", 0),
                ("data.assets.0.size", -5),
                ("data.assets.0.sha256", "abc"),
                ("data.assets.0.url", "ftp://x/y"),
                ("data.salesOrderNumber", "S" * 41),
                ("data.notes", "n" * 5001),
                ("data.caseId", 0),
                ("data.caseId", 2**31),
                ("data.treatmentPlanId", " "),
            ]
        )
        _set(p, path, value)
        return self._resigned(p)

    def event_id_mismatch(self, p):
        body = encode(p)
        return body, self.signed(body, p["event_id"] + "-other")

    def unknown_case(self, p):
        p["data"]["caseId"] = 10**6 + self.rng.randrange(10**6)
        return self._resigned(p)

    def mrn_mismatch(self, p):
        p["data"]["mrn"] = self.rng.choice([self.other_case.patient.mrn, "", "MRN?", self.case.patient.mrn.lower()])
        return self._resigned(p)

    def not_json(self, p):
        body = encode(p)
        body = self.rng.choice(
            [
                body[: self.rng.randrange(1, len(body))],
                b"",
                b"null",
                b"[]",
                b'"event"',
                b"{" * 5000,
                body.replace(b"{", b"(", 1),
                b"\xef\xbb\xbf" + body,
                body + b"}",
                json.dumps(p).replace('"type"', "type").encode(),
            ]
        )
        return self._resigned(p, body)

    def unstorable(self, p):
        bad = self.rng.choice(["nul\x00byte", "\ud800lone", float("inf")])
        p["data"]["extra"] = {"nested": [bad]}
        body = json.dumps(p).encode()
        return self._resigned(p, body)

    def generators(self):
        return [
            self.other_secret,
            self.tampered_body,
            self.tampered_field,
            self.other_id,
            self.missing_headers,
            self.empty_header,
            self.stale_or_future,
            self.header_timestamp_not_signed_one,
            self.garbage_signature,
            self.garbage_timestamp,
            self.missing_field,
            self.wrong_type,
            self.out_of_range,
            self.event_id_mismatch,
            self.unknown_case,
            self.mrn_mismatch,
            self.not_json,
            self.unstorable,
        ]


def test_two_hundred_forged_or_malformed_deliveries_write_nothing(client):
    case = make_case(state=wf.ACCEPTED)
    other_case = make_case(state=wf.ACCEPTED)
    gen = Generator(random.Random(20260301), case, other_case)
    before = row_counts()

    answers = Counter()
    for i in range(DELIVERIES):
        make = gen.generators()[i % len(gen.generators())]
        body, headers = make(gen.valid())
        response = post(client, body, headers)
        assert 400 <= response.status_code < 500, (make.__name__, body[:300], headers, response.content)
        assert response.json()["error"]["code"], make.__name__
        answers[response.status_code] += 1

    assert row_counts() == before
    assert set(answers) == {400, 401, 404, 422}, answers
    assert sum(answers.values()) == DELIVERIES


def test_negative_control_the_same_deliveries_unmutated_are_accepted(client):
    case = make_case(state=wf.ACCEPTED)
    gen = Generator(random.Random(1), case, make_case())
    for _ in range(10):
        payload = gen.valid()
        body = encode(payload)
        assert post(client, body, svix_headers(body, payload["event_id"])).status_code == 200
