"""Contract section 2 against the simulator process: tokens, expiry, revocation, bearer checks."""

import time

import requests

from tests.support.simulator_api import error_code

GOOD = {"grant_type": "client_credentials", "client_id": "demo", "client_secret": "demo-secret"}


def test_token_from_form_and_from_json(simulator):
    form = requests.post(f"{simulator.url}/auth/token", data=GOOD, timeout=5)
    as_json = requests.post(f"{simulator.url}/auth/token", json=GOOD, timeout=5)
    for response in (form, as_json):
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert body["access_token"]
    assert form.json()["access_token"] != as_json.json()["access_token"]
    assert simulator.state()["effects"]["tokens"] == 2


def test_wrong_secret_is_401_invalid_client(simulator):
    response = requests.post(f"{simulator.url}/auth/token", data=dict(GOOD, client_secret="nope"), timeout=5)
    assert response.status_code == 401
    assert error_code(response) == "AUTH.INVALID_CLIENT"
    assert simulator.state()["effects"]["tokens"] == 0


def test_missing_field_and_wrong_grant_are_400(simulator):
    missing = requests.post(f"{simulator.url}/auth/token", data={"client_id": "demo"}, timeout=5)
    assert missing.status_code == 400
    assert error_code(missing) == "REQUEST.MISSING_FIELD"
    assert missing.json()["error"]["details"]["fields"] == ["grant_type", "client_secret"]
    grant = requests.post(f"{simulator.url}/auth/token", data=dict(GOOD, grant_type="password"), timeout=5)
    assert grant.status_code == 400
    assert error_code(grant) == "AUTH.UNSUPPORTED_GRANT_TYPE"


def test_routes_need_a_bearer_token(simulator, api):
    no_token = requests.get(f"{simulator.url}/orders/1", timeout=5)
    assert no_token.status_code == 401
    assert error_code(no_token) == "AUTH.TOKEN_INVALID"
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = requests.get(f"{simulator.url}/orders/1", headers={"Authorization": "Bearer made-up"}, timeout=5)
    assert error_code(unknown) == "AUTH.TOKEN_INVALID"
    known = api.get("/orders/1")
    assert known.status_code == 404  # past auth: the case is unknown


def test_token_expires_after_token_ttl(simulator, api):
    simulator.config(token_ttl=0.3)
    assert api.get("/orders/1").status_code == 404
    time.sleep(0.4)
    expired = api.get("/orders/1")
    assert expired.status_code == 401
    assert error_code(expired) == "AUTH.TOKEN_EXPIRED"


def test_revoked_and_expired_tokens_are_refused(simulator, api):
    api.get_token()
    assert simulator.revoke_tokens() == {"revoked": 1}
    assert error_code(api.get("/orders/1")) == "AUTH.TOKEN_INVALID"
    api.get_token()
    assert simulator.expire_tokens() == {"expired": 1}
    assert error_code(api.get("/orders/1")) == "AUTH.TOKEN_EXPIRED"
    api.get_token()
    assert api.get("/orders/1").status_code == 404
    assert simulator.state()["effects"]["tokens"] == 3
