"""Both vaults keep a blob and give it back by (vault_id, external_key)."""

import base64
import pickle
import uuid

import pytest
import requests
import responses
from responses import matchers

from align_workflow.align.vault import HttpVault, LocalVault, StoredBlob, VaultError, get_vault

VAULT_ID = "00000000-0000-4000-8000-00000000a119"
BASE = "http://vault.test"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.ALIGN_VAULT_ID = VAULT_ID
    return tmp_path


# --- choosing a vault -----------------------------------------------------------------


def test_local_is_the_default(settings, media_root):
    settings.ALIGN_VAULT_URL = "local"
    vault = get_vault()
    assert isinstance(vault, LocalVault)
    assert vault.root == media_root / "vault"


def test_a_url_means_the_blob_api(settings):
    settings.ALIGN_VAULT_URL = "https://vault.example.com/"
    settings.ALIGN_VAULT_API_KEY = "k"
    vault = get_vault()
    assert isinstance(vault, HttpVault)
    assert vault.base_url == "https://vault.example.com"
    assert (vault.vault_id, vault.api_key) == (settings.ALIGN_VAULT_ID, "k")


# --- LocalVault ----------------------------------------------------------------------


def test_local_round_trip(media_root):
    vault = LocalVault()
    blob = vault.put(PNG, filename="acceptance.png", content_type="image/png")

    assert isinstance(blob, StoredBlob)
    assert blob.vault_id == VAULT_ID
    assert str(uuid.UUID(blob.external_key)) == blob.external_key
    assert (media_root / "vault" / VAULT_ID / blob.external_key).read_bytes() == PNG
    # Another instance (another process) reads it back.
    assert LocalVault().get(blob.vault_id, blob.external_key) == PNG


def test_local_blobs_get_distinct_keys_and_leave_no_partial_files(media_root):
    vault = LocalVault()
    keys = {vault.put(b"x%d" % i, filename="a.png", content_type="image/png").external_key for i in range(5)}
    assert len(keys) == 5
    assert sorted(p.name for p in (media_root / "vault" / VAULT_ID).iterdir()) == sorted(keys)


@pytest.mark.parametrize(
    "vault_id, key, kind",
    [
        (VAULT_ID, str(uuid.uuid4()), "NOT_FOUND.BLOB"),
        ("another-vault", str(uuid.uuid4()), "NOT_FOUND.BLOB"),
        (VAULT_ID, "../../settings.py", "NOT_FOUND.BLOB"),
        ("../..", str(uuid.uuid4()), "NOT_FOUND.VAULT"),
        (VAULT_ID, "", "NOT_FOUND.BLOB"),
    ],
    ids=["unknown-blob", "unknown-vault", "path-in-key", "path-in-vault-id", "empty-key"],
)
def test_local_get_of_something_not_stored_is_a_vault_error(media_root, vault_id, key, kind):
    LocalVault().put(PNG, filename="a.png", content_type="image/png")
    with pytest.raises(VaultError) as caught:
        LocalVault().get(vault_id, key)
    assert (caught.value.type, caught.value.status, caught.value.retryable) == (kind, 404, False)


# --- HttpVault -----------------------------------------------------------------------


@pytest.fixture
def fake():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def http_vault():
    return HttpVault(BASE, VAULT_ID, "vault-api-key", connect_timeout=1, read_timeout=2)


BASIC = "Basic " + base64.b64encode(b"vault-api-key:").decode()


def test_http_put_sends_the_file_as_multipart_with_basic_auth(http_vault, fake):
    blob_id = str(uuid.uuid4())
    fake.post(
        f"{BASE}/v1/vaults/{VAULT_ID}/blobs",
        json={"result": "success", "blob_id": blob_id, "transaction_id": "t-1"},
        match=[matchers.header_matcher({"Authorization": BASIC})],
    )

    assert http_vault.put(PNG, filename="acceptance.png", content_type="image/png") == StoredBlob(VAULT_ID, blob_id)

    request = fake.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="acceptance.png"' in request.body
    assert b"Content-Type: image/png" in request.body
    assert PNG in request.body
    assert request.req_kwargs["timeout"] == (1.0, 2.0)


def test_http_get_returns_the_raw_bytes(http_vault, fake):
    blob_id = str(uuid.uuid4())
    fake.get(
        f"{BASE}/v1/vaults/{VAULT_ID}/blobs/{blob_id}",
        body=PNG,
        content_type="image/png",
        match=[matchers.header_matcher({"Authorization": BASIC})],
    )
    assert http_vault.get(VAULT_ID, blob_id) == PNG
    assert fake.calls[0].request.req_kwargs["timeout"] == (1.0, 2.0)


@pytest.mark.parametrize(
    "status, kind, retryable",
    [(404, "NOT_FOUND.BLOB", False), (401, "AUTH.INVALID_KEY", False), (503, "UNAVAILABLE", True)],
)
def test_http_error_envelope_becomes_a_vault_error(http_vault, fake, status, kind, retryable):
    blob_id = str(uuid.uuid4())
    fake.get(
        f"{BASE}/v1/vaults/{VAULT_ID}/blobs/{blob_id}",
        status=status,
        json={"result": "error", "error": {"message": "no such blob", "type": kind}, "transaction_id": "t-9"},
    )
    with pytest.raises(VaultError) as caught:
        http_vault.get(VAULT_ID, blob_id)
    error = caught.value
    assert (error.message, error.type, error.status, error.transaction_id, error.retryable) == (
        "no such blob",
        kind,
        status,
        "t-9",
        retryable,
    )


def test_http_error_without_an_envelope(http_vault, fake):
    fake.post(f"{BASE}/v1/vaults/{VAULT_ID}/blobs", status=502, body="<html>bad gateway</html>")
    with pytest.raises(VaultError) as caught:
        http_vault.put(PNG, filename="a.png", content_type="image/png")
    assert (caught.value.type, caught.value.status, caught.value.retryable) == ("HTTP_502", 502, True)


def test_http_success_without_a_blob_id_is_a_vault_error(http_vault, fake):
    fake.post(f"{BASE}/v1/vaults/{VAULT_ID}/blobs", json={"result": "success"})
    with pytest.raises(VaultError) as caught:
        http_vault.put(PNG, filename="a.png", content_type="image/png")
    assert caught.value.type == "INVALID_RESPONSE"


@pytest.mark.parametrize("exc, kind", [(requests.ReadTimeout(), "TIMEOUT"), (requests.ConnectionError(), "CONNECTION")])
def test_http_unreachable_is_a_retryable_vault_error(http_vault, fake, exc, kind):
    fake.post(f"{BASE}/v1/vaults/{VAULT_ID}/blobs", body=exc)
    with pytest.raises(VaultError) as caught:
        http_vault.put(PNG, filename="a.png", content_type="image/png")
    assert (caught.value.type, caught.value.status, caught.value.retryable) == (kind, None, True)


def test_http_get_refuses_ids_it_never_hands_out_without_a_request(http_vault, fake):
    with pytest.raises(VaultError):
        http_vault.get(VAULT_ID, "../../admin")
    assert len(fake.calls) == 0


def test_vault_errors_survive_pickling():
    copy = pickle.loads(pickle.dumps(VaultError("gone", type="NOT_FOUND.BLOB", status=404, transaction_id="t")))
    assert (copy.message, copy.type, copy.status, copy.transaction_id) == ("gone", "NOT_FOUND.BLOB", 404, "t")
