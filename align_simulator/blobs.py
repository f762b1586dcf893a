"""The vault's blob API (contract section 4), TrueVault style.

`POST /v1/vaults/{vault_id}/blobs` (multipart field `file`) stores the bytes and answers
`{"result": "success", "blob_id": "<uuid>", "transaction_id": "..."}`;
`GET /v1/vaults/{vault_id}/blobs/{blob_id}` answers the raw bytes. HTTP Basic auth with
the API key (`vault_api_key`) as user name and an empty password. Any UUID names a
vault (a vault exists once it is used). Errors take the vault's own shape, which the
server renders for these routes:
`{"result": "error", "error": {"message", "type"}, "transaction_id"}`.
"""

import hmac
import uuid
from email.parser import BytesParser
from email.policy import HTTP

from .store import Blob
from .wire import ApiError, Response, basic_credentials


def new_transaction_id():
    return str(uuid.uuid4())


def vault_error_body(error):
    return {
        "result": "error",
        "error": {"message": error.message, "type": error.code},
        "transaction_id": new_transaction_id(),
    }


def check_api_key(sim, req):
    credentials = basic_credentials(req)
    if credentials is None or not hmac.compare_digest(credentials[0], sim.config.vault_api_key):
        raise ApiError(
            401,
            "AUTH.UNAUTHORIZED",
            "HTTP Basic auth with the vault API key is required",
            headers={"WWW-Authenticate": 'Basic realm="vault"'},
        )


def vault_uuid(req, name):
    try:
        return str(uuid.UUID(req.path_args[name]))
    except ValueError:
        kind = "VAULT" if name == "vault_id" else "BLOB"
        raise ApiError(404, f"{kind}.NOT_FOUND", f"no such {name.split('_')[0]}") from None


def put_blob(sim, req):
    check_api_key(sim, req)
    vault_id = vault_uuid(req, "vault_id")
    upload = multipart_file(req)
    if upload is None:
        raise ApiError(400, "REQUEST.MISSING_FILE", "a multipart/form-data field named file is required")
    data, filename, content_type = upload
    blob = Blob(vault_id=vault_id, blob_id=str(uuid.uuid4()), data=data, filename=filename, content_type=content_type)
    with sim.store.lock:
        sim.store.blobs[(vault_id, blob.blob_id)] = blob
        sim.store.effects["blobs"] += 1
    return {"result": "success", "blob_id": blob.blob_id, "transaction_id": new_transaction_id()}


def get_blob(sim, req):
    check_api_key(sim, req)
    key = (vault_uuid(req, "vault_id"), vault_uuid(req, "blob_id"))
    with sim.store.lock:
        blob = sim.store.blobs.get(key)
    if blob is None:
        raise ApiError(404, "BLOB.NOT_FOUND", "no such blob in this vault")
    return Response(200, blob.data, content_type=blob.content_type or "application/octet-stream")


def multipart_file(req):
    """(bytes, filename, content type) of the `file` field, or None."""
    if req.content_type != "multipart/form-data":
        return None
    head = f"Content-Type: {req.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + req.raw_body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            data = part.get_payload(decode=True) or b""
            return data, part.get_filename() or "", part.get_content_type()
    return None
