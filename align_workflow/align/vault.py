"""The vault: where acceptance screenshots are kept, named by `vault_id` and `external_key`.

Align reads a ClinCheck acceptance screenshot from a TrueVault-style blob store; the app
stores the screenshot, keeps the two identifiers on the asset row and passes them with
the accept call. Two implementations with one interface:

    vault = get_vault()        # chosen by settings.ALIGN_VAULT_URL
    blob = vault.put(png_bytes, filename="acceptance.png", content_type="image/png")
    blob.vault_id, blob.external_key      # external_key is the blob id (a UUID)
    vault.get(blob.vault_id, blob.external_key) == png_bytes

- `LocalVault` ("local", the embedded default) keeps blobs in MEDIA_ROOT/vault/<vault_id>/<uuid>.
- `HttpVault` (a base URL) speaks the blob API: POST /v1/vaults/{vault_id}/blobs with a
  multipart `file`, GET /v1/vaults/{vault_id}/blobs/{blob_id}, HTTP Basic with the API
  key as user name and an empty password.

Both raise VaultError; nothing about a blob's content is logged.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

from .http import thread_session

logger = logging.getLogger(__name__)

__all__ = ["get_vault", "VaultError", "StoredBlob", "LocalVault", "HttpVault"]

_SAFE_VAULT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class StoredBlob:
    vault_id: str
    external_key: str  # the blob id, a UUID


class VaultError(Exception):
    """A blob could not be stored or read; keeps what the vault said."""

    def __init__(self, message, *, type="", status=None, transaction_id=None, retryable=False):
        super().__init__(message)
        self.message = message
        self.type = type
        self.status = status
        self.transaction_id = transaction_id
        self.retryable = retryable

    def __reduce__(self):
        return (
            _rebuild_vault_error,
            (self.message, self.type, self.status, self.transaction_id, self.retryable),
        )


def _rebuild_vault_error(message, type, status, transaction_id, retryable):
    return VaultError(message, type=type, status=status, transaction_id=transaction_id, retryable=retryable)


def get_vault():
    """The configured vault: LocalVault for "local", else HttpVault at that URL."""
    url = (settings.ALIGN_VAULT_URL or "local").strip()
    if url == "local":
        return LocalVault()
    return HttpVault(url)


def _checked_vault_id(vault_id):
    vault_id = str(vault_id)
    if not _SAFE_VAULT_ID.match(vault_id):
        raise VaultError(f"{vault_id!r} is not a vault id", type="NOT_FOUND.VAULT", status=404)
    return vault_id


def _checked_ids(vault_id, external_key):
    """Both identifiers end up in a path or URL: accept only the kind we hand out."""
    vault_id = _checked_vault_id(vault_id)
    try:
        blob_id = str(uuid.UUID(str(external_key)))
    except ValueError:
        raise VaultError(f"{external_key!r} is not a blob id", type="NOT_FOUND.BLOB", status=404) from None
    return vault_id, blob_id


class LocalVault:
    """Blobs in this app's own storage (the embedded default)."""

    def __init__(self, root=None, vault_id=None):
        self.root = Path(root if root is not None else Path(settings.MEDIA_ROOT) / "vault")
        self.vault_id = vault_id or settings.ALIGN_VAULT_ID

    def put(self, data: bytes, *, filename: str, content_type: str) -> StoredBlob:
        vault_id = _checked_vault_id(self.vault_id)
        blob_id = str(uuid.uuid4())
        folder = self.root / vault_id
        folder.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a blob.
        fd, partial = tempfile.mkstemp(dir=folder, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(bytes(data))
            os.replace(partial, folder / blob_id)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        logger.info("vault put local vault_id=%s blob_id=%s bytes=%d", vault_id, blob_id, len(data))
        return StoredBlob(vault_id=vault_id, external_key=blob_id)

    def get(self, vault_id: str, external_key: str) -> bytes:
        vault_id, blob_id = _checked_ids(vault_id, external_key)
        try:
            return (self.root / vault_id / blob_id).read_bytes()
        except FileNotFoundError:
            raise VaultError(
                f"blob {blob_id} not found in vault {vault_id}", type="NOT_FOUND.BLOB", status=404
            ) from None


class HttpVault:
    """A TrueVault-style blob API over HTTP (the simulator serves one too)."""

    def __init__(
        self, base_url=None, vault_id=None, api_key=None, *, connect_timeout=None, read_timeout=None, session=None
    ):
        self.base_url = (base_url or settings.ALIGN_VAULT_URL).rstrip("/")
        self.vault_id = vault_id or settings.ALIGN_VAULT_ID
        self.api_key = api_key if api_key is not None else settings.ALIGN_VAULT_API_KEY
        self.timeout = (
            float(connect_timeout if connect_timeout is not None else settings.ALIGN_CONNECT_TIMEOUT),
            float(read_timeout if read_timeout is not None else settings.ALIGN_READ_TIMEOUT),
        )
        self._session = session  # None: the thread's kept-alive session (align/http.py)

    @property
    def session(self):
        return self._session if self._session is not None else thread_session()

    def put(self, data: bytes, *, filename: str, content_type: str) -> StoredBlob:
        path = f"/v1/vaults/{_checked_vault_id(self.vault_id)}/blobs"
        response = self._request("POST", path, files={"file": (filename, bytes(data), content_type)})
        try:
            body = response.json()
            blob_id = str(uuid.UUID(str(body["blob_id"])))
        except (ValueError, KeyError, TypeError):
            raise VaultError(
                "the vault's answer has no usable blob_id", type="INVALID_RESPONSE", status=response.status_code
            ) from None
        return StoredBlob(vault_id=self.vault_id, external_key=blob_id)

    def get(self, vault_id: str, external_key: str) -> bytes:
        vault_id, blob_id = _checked_ids(vault_id, external_key)
        return self._request("GET", f"/v1/vaults/{vault_id}/blobs/{blob_id}").content

    def _request(self, method, path, **kwargs):
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.base_url + path, auth=(self.api_key, ""), timeout=self.timeout, **kwargs
            )
        except requests.Timeout as exc:
            self._log(method, path, None, started)
            raise VaultError(
                f"the vault did not answer in time ({type(exc).__name__})", type="TIMEOUT", retryable=True
            ) from exc
        except requests.RequestException as exc:
            self._log(method, path, None, started)
            raise VaultError(
                f"could not reach the vault ({type(exc).__name__})", type="CONNECTION", retryable=True
            ) from exc
        self._log(method, path, response.status_code, started)
        if response.status_code == 200:
            return response
        raise self._error(response)

    @staticmethod
    def _error(response):
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or f"HTTP {status}")
            kind = str(error.get("type") or f"HTTP_{status}")
        else:
            message, kind = f"HTTP {status} {response.reason or ''}".strip(), f"HTTP_{status}"
        return VaultError(
            message,
            type=kind,
            status=status,
            transaction_id=body.get("transaction_id") if isinstance(body, dict) else None,
            retryable=status == 429 or status >= 500,
        )

    @staticmethod
    def _log(method, path, status, started):
        logger.info(
            "vault %s %s status=%s latency_ms=%d",
            method,
            path,
            status if status is not None else "-",
            round((time.monotonic() - started) * 1000),
        )
