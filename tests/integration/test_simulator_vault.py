"""Contract section 4 against the simulator process: the TrueVault-style blob API."""

import uuid

import requests

VAULT = str(uuid.uuid4())
KEY = ("demo-vault-key", "")


def test_store_and_read_back_a_blob(simulator):
    stored = requests.post(
        f"{simulator.url}/v1/vaults/{VAULT}/blobs",
        auth=KEY,
        files={"file": ("shot.png", b"\x89PNG-bytes", "image/png")},
        timeout=5,
    )
    assert stored.status_code == 200
    body = stored.json()
    assert body["result"] == "success" and uuid.UUID(body["blob_id"]) and body["transaction_id"]
    read = requests.get(f"{simulator.url}/v1/vaults/{VAULT}/blobs/{body['blob_id']}", auth=KEY, timeout=5)
    assert read.status_code == 200
    assert read.content == b"\x89PNG-bytes"
    assert read.headers["Content-Type"] == "image/png"
    assert simulator.state()["effects"]["blobs"] == 1


def vault_error(response):
    body = response.json()
    assert set(body) == {"result", "error", "transaction_id"} and body["result"] == "error", body
    assert set(body["error"]) == {"message", "type"}
    return body["error"]["type"]


def test_vault_errors_have_the_vault_shape(simulator):
    base = f"{simulator.url}/v1/vaults/{VAULT}/blobs"
    no_auth = requests.post(base, files={"file": ("a", b"x")}, timeout=5)
    assert no_auth.status_code == 401 and vault_error(no_auth) == "AUTH.UNAUTHORIZED"
    wrong_key = requests.get(f"{base}/{uuid.uuid4()}", auth=("other-key", ""), timeout=5)
    assert wrong_key.status_code == 401
    missing = requests.get(f"{base}/{uuid.uuid4()}", auth=KEY, timeout=5)
    assert missing.status_code == 404 and vault_error(missing) == "BLOB.NOT_FOUND"
    no_file = requests.post(base, auth=KEY, files={"other": ("a", b"x")}, timeout=5)
    assert no_file.status_code == 400 and vault_error(no_file) == "REQUEST.MISSING_FILE"
    bad_vault = requests.get(f"{simulator.url}/v1/vaults/not-a-vault/blobs/{uuid.uuid4()}", auth=KEY, timeout=5)
    assert bad_vault.status_code == 404 and vault_error(bad_vault) == "VAULT.NOT_FOUND"


def test_a_fault_on_the_vault_answers_in_the_vault_shape(simulator):
    simulator.fault(route="POST /v1/vaults/{vault_id}/blobs", status=503, count=1)
    response = requests.post(
        f"{simulator.url}/v1/vaults/{VAULT}/blobs", auth=KEY, files={"file": ("a", b"x")}, timeout=5
    )
    assert response.status_code == 503 and vault_error(response) == "SERVICE.UNAVAILABLE"
