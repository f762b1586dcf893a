"""The contract's routes (sections 2 and 3): tokens, patients, orders, assets, ClinCheck, read back.

Each route is a function `(sim, request) -> dict | Response` that raises `ApiError` for
an answer in the error envelope. Checks run in the order: malformed input (400), unknown
patient or case (404), body/path disagreement (400), business rules (422), conflicts
(409); the work itself is done, and counted in `effects`, inside one hold of the store
lock, so concurrent requests cannot lose or double it.
"""

import hmac
import time
import uuid
from datetime import datetime

import requests

from .previews import is_readable_image
from .store import Case, Patient
from .wire import ApiError, as_case_id, basic_credentials, invalid_field, missing_fields, require

PATIENT_FIELDS = ("caseId", "mrn", "firstName", "lastName", "dateOfBirth", "gender", "email", "phone", "address")
ADDRESS_FIELDS = ("line1", "city", "state", "zip", "country")  # line2 is optional
GENDERS = ("M", "F")
ORDER_FIELDS = ("caseId", "pId", "mrn", "orderType", "treatmentOption", "chiefConcern")
TREATMENT_OPTIONS = ("BOTH_ARCHES", "UPPER_ONLY", "LOWER_ONLY")
MIN_STL_ASSETS = 2
APP_RETRY_AFTER_S = 5


# --- auth (section 2) ---------------------------------------------------------------


def issue_token(sim, req):
    params = dict(req.params)
    basic = basic_credentials(req)
    if basic:  # RFC 6749 also allows the client to authenticate with HTTP Basic
        params.setdefault("client_id", basic[0])
        params.setdefault("client_secret", basic[1])
    grant_type, client_id, client_secret = require(params, ("grant_type", "client_id", "client_secret"))
    if grant_type != "client_credentials":
        raise ApiError(
            400, "AUTH.UNSUPPORTED_GRANT_TYPE", "grant_type must be client_credentials", {"grant_type": grant_type}
        )
    config = sim.config
    if not (
        hmac.compare_digest(str(client_id), config.client_id)
        and hmac.compare_digest(str(client_secret), config.client_secret)
    ):
        raise ApiError(401, "AUTH.INVALID_CLIENT", "unknown client or wrong secret")
    token = sim.store.issue_token(config.token_ttl)
    return {"access_token": token.value, "token_type": "Bearer", "expires_in": max(int(config.token_ttl), 0)}


def check_bearer(sim, req):
    """401 AUTH.TOKEN_INVALID for a missing, unknown or revoked token, AUTH.TOKEN_EXPIRED for an old one."""
    scheme, _, value = req.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "AUTH.TOKEN_INVALID", "missing bearer token", headers=challenge)
    with sim.store.lock:
        token = sim.store.tokens.get(value.strip())
    if token is None or token.revoked:
        raise ApiError(401, "AUTH.TOKEN_INVALID", "unknown or revoked token", headers=challenge)
    if token.expires_at <= time.time():
        raise ApiError(401, "AUTH.TOKEN_EXPIRED", "the token has expired", headers=challenge)


# --- patients and orders --------------------------------------------------------------


def create_patient(sim, req):
    params = req.params
    require(params, PATIENT_FIELDS)
    case_id = as_case_id(params["caseId"])
    address = params["address"]
    if not isinstance(address, dict):
        raise invalid_field("address", "address must be an object with line1, line2, city, state, zip, country")
    missing = [f"address.{f}" for f in ADDRESS_FIELDS if not str(address.get(f) or "").strip()]
    if missing:
        raise missing_fields(missing)
    try:
        datetime.strptime(str(params["dateOfBirth"]), "%Y-%m-%d")
    except ValueError:
        raise invalid_field("dateOfBirth", "dateOfBirth must be a date as YYYY-MM-DD") from None
    gender = str(params["gender"]).strip()
    if gender not in GENDERS:
        raise ApiError(
            422,
            "PATIENT.INVALID_GENDER",
            "Align requires the gender M or F",
            {"field": "gender", "allowed": list(GENDERS)},
        )
    mrn = str(params["mrn"]).strip()
    store = sim.store
    with store.lock:
        patient = store.patients.get(mrn)
        created = patient is None
        if created:
            patient = Patient(
                p_id=f"P{store.next_id('patient'):07d}",
                mrn=mrn,
                first_name=params["firstName"],
                last_name=params["lastName"],
                date_of_birth=params["dateOfBirth"],
                gender=gender,
                email=params["email"],
                phone=params["phone"],
                address={k: address.get(k, "") for k in ("line1", "line2", *ADDRESS_FIELDS[1:])},
                case_ids=[],
            )
            store.patients[mrn] = patient
        if case_id not in patient.case_ids:
            patient.case_ids.append(case_id)
        store.effects["patients"] += 1
        return {"pId": patient.p_id, "mrn": patient.mrn, "created": created}


def create_order(sim, req):
    params = req.params
    require(params, ORDER_FIELDS)
    case_id = as_case_id(params["caseId"])
    if params["orderType"] != "IAS":
        raise ApiError(
            422,
            "ORDER.UNSUPPORTED_TYPE",
            "only the primary order type IAS can be created",
            {"field": "orderType", "allowed": ["IAS"]},
        )
    if params["treatmentOption"] not in TREATMENT_OPTIONS:
        raise ApiError(
            422,
            "ORDER.INVALID_TREATMENT_OPTION",
            "unknown treatment option",
            {"field": "treatmentOption", "allowed": list(TREATMENT_OPTIONS)},
        )
    p_id, mrn = str(params["pId"]), str(params["mrn"]).strip()
    store = sim.store
    with store.lock:
        patient = store.patient_by_p_id(p_id)
        if patient is None:
            raise ApiError(404, "PATIENT.NOT_FOUND", "no patient with this pId", {"pId": p_id})
        if patient.mrn != mrn:
            raise mismatch("mrn", "mrn does not match the patient")
        if case_id in store.cases:
            raise ApiError(
                409,
                "ORDER.ALREADY_EXISTS",
                "an IAS order already exists for this case",
                {"caseId": case_id, "orderType": "IAS"},
            )
        case = Case(
            case_id=case_id,
            p_id=p_id,
            mrn=mrn,
            order_type="IAS",
            treatment_option=params["treatmentOption"],
            chief_concern=params["chiefConcern"],
        )
        case.status_history.append({"status": case.status, "previousStatus": None, "at": case.created_at})
        store.cases[case_id] = case
        store.effects["orders"] += 1
        return {"caseId": case_id, "pId": p_id, "orderType": "IAS", "status": case.status}


def mismatch(field, message):
    return ApiError(400, "REQUEST.MISMATCH", message, {"field": field})


def case_for(sim, case_id, mrn, p_id=None):
    """The case, 404 ORDER.NOT_FOUND when there is no order; 400 when mrn / pId disagree with it."""
    case = sim.store.cases.get(case_id)
    if case is None:
        raise ApiError(404, "ORDER.NOT_FOUND", "no order for this case", {"caseId": case_id})
    if str(mrn).strip() != case.mrn:
        raise mismatch("mrn", "mrn does not match the case")
    if p_id is not None and str(p_id) != case.p_id:
        raise mismatch("pId", "pId does not match the case")
    return case


def body_case_id(req):
    """For the routes with {caseId} in the path: the body's caseId must be the same."""
    path_case_id = as_case_id(req.path_args["caseId"])
    if as_case_id(req.params["caseId"]) != path_case_id:
        raise mismatch("caseId", "the body's caseId differs from the path's")
    return path_case_id


# --- assets -----------------------------------------------------------------------------


def upload_assets(sim, req):
    p_id, mrn, raw_case_id = require(req.params, ("pId", "mrn", "caseId"))
    case_id = as_case_id(raw_case_id)
    with sim.store.lock:
        case_for(sim, case_id, mrn, p_id)
    assets = fetch_asset_list(sim, case_id)
    resolved = [a for a in assets if isinstance(a, dict) and a.get("vault_id") and a.get("external_key")]
    stl = [a for a in resolved if str(a.get("kind", "")).upper().startswith("STL")]
    if len(stl) < MIN_STL_ASSETS:
        raise ApiError(
            422,
            "ASSETS.NOT_ENOUGH_STL",
            f"at least {MIN_STL_ASSETS} STL assets are needed",
            {"stl_assets": len(stl), "required": MIN_STL_ASSETS},
        )
    with sim.store.lock:
        case = case_for(sim, case_id, mrn, p_id)
        case.assets = [dict(a) for a in resolved]
        case.uploads += 1
        first_upload = case.uploads == 1
        sim.store.effects["uploads"] += 1
    if first_upload:
        sim.progress.after_upload(case_id)
    return {"caseId": case_id, "accepted": True, "assetCount": len(resolved)}


def fetch_asset_list(sim, case_id):
    """Ask the app which files belong to the case; 503 with Retry-After when it cannot answer."""
    config = sim.config

    def unavailable(message, **details):
        return ApiError(
            503, "ASSETS.SOURCE_UNAVAILABLE", message, details, headers={"Retry-After": str(APP_RETRY_AFTER_S)}
        )

    if not config.app_url:
        raise unavailable("no app_url is configured to read the case's assets from")
    url = f"{config.app_url}/api/align/cases/{case_id}/assets"
    try:
        response = requests.get(
            url,
            timeout=config.app_timeout_s,
            headers={"Authorization": f"Bearer {config.inbound_token}", "Accept": "application/json"},
        )
    except requests.RequestException as exc:
        raise unavailable("the app could not be reached for the asset list", reason=type(exc).__name__) from None
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        raise unavailable("the app did not give the asset list", app_status=response.status_code)
    try:
        assets = response.json()
    except ValueError:
        raise unavailable("the app's asset list is not JSON") from None
    if isinstance(assets, dict):
        assets = assets.get("assets")
    if not isinstance(assets, list):
        raise unavailable("the app's asset list is not a list")
    return assets


# --- ClinCheck ------------------------------------------------------------------------------


def accept_clincheck(sim, req):
    _, mrn, vault_id, external_key = require(req.params, ("caseId", "mrn", "vault_id", "external_key"))
    case_id = body_case_id(req)
    with sim.store.lock:
        case = case_for(sim, case_id, mrn)
        vault_uuid = screenshot_uuid("vault_id", vault_id)
        blob_uuid = screenshot_uuid("external_key", external_key)
        plan = pending_plan_of(case, case_id)
        blob = sim.store.blobs.get((vault_uuid, blob_uuid))
        if blob is not None and not is_readable_image(blob.data):
            raise ApiError(
                422,
                "SCREENSHOT.UNREADABLE",
                "the acceptance screenshot is not a readable PNG or JPEG",
                {"vault_id": vault_uuid, "external_key": blob_uuid},
            )
        plan.status = "APPROVED"
        plan.screenshot = {"vault_id": vault_uuid, "external_key": blob_uuid, "checked": blob is not None}
        case.move_to("APPROVED")
        sim.store.effects["accepts"] += 1
        sales_order_number = case.primary_sales_order_number
    sim.progress.after_accept(case_id)
    return {"caseId": case_id, "status": "APPROVED", "salesOrderNumber": sales_order_number}


def pending_plan_of(case, case_id):
    """The plan waiting for the provider's decision; 409 when there is none."""
    if case.pending_plan is None:
        raise ApiError(
            409,
            "PLAN.NOT_PENDING",
            "no ClinCheck plan is waiting for a decision",
            {"caseId": case_id, "status": case.status},
        )
    return case.pending_plan


def screenshot_uuid(field, value):
    try:
        parsed = uuid.UUID(str(value).strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.int == 0:
        raise ApiError(
            422, "SCREENSHOT.INVALID_REFERENCE", f"{field} must be a UUID other than the nil UUID", {"field": field}
        )
    return str(parsed)


def request_modification(sim, req):
    _, mrn, comments = require(req.params, ("caseId", "mrn", "comments"))
    case_id = body_case_id(req)
    with sim.store.lock:
        case = case_for(sim, case_id, mrn)
        plan = pending_plan_of(case, case_id)
        plan.status = "MODIFICATION_REQUESTED"
        plan.comments = str(comments).strip()
        case.move_to("MODIFICATION_REQUESTED")
        sim.store.effects["modifies"] += 1
    sim.progress.after_modify(case_id)
    return {"caseId": case_id, "status": "MODIFICATION_REQUESTED"}


# --- read back ------------------------------------------------------------------------------


def read_case(sim, req):
    case_id = as_case_id(req.path_args["caseId"])
    with sim.store.lock:
        case = sim.store.cases.get(case_id)
        if case is None:
            raise ApiError(404, "ORDER.NOT_FOUND", "no order for this case", {"caseId": case_id})
        return case.to_json()
