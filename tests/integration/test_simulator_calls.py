"""Contract sections 1 and 3 against the simulator process: every call's success and errors."""

import uuid

import requests

from tests.support.simulator_api import CASE_IDS, STL_ASSETS, error_code, patient_body

SCREENSHOT_REF = {"vault_id": str(uuid.uuid4()), "external_key": str(uuid.uuid4())}


# --- conventions -----------------------------------------------------------------------


def test_every_answer_is_json_even_unknown_routes_and_methods(simulator, api):
    assert error_code(api.get("/nowhere")) == "ROUTE.NOT_FOUND"
    wrong_method = api.call("DELETE", "/patients")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "REQUEST.METHOD_NOT_ALLOWED"
    malformed = api.post("/patients", data=b"{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and error_code(malformed) == "REQUEST.MALFORMED"
    assert malformed.json()["request_id"] == malformed.headers["X-Request-Id"]


def test_form_encoded_bodies_are_accepted(simulator, api):
    case_id = next(CASE_IDS)
    form = {
        "caseId": str(case_id),
        "mrn": "MRN-FORM",
        "firstName": "A",
        "lastName": "B",
        "dateOfBirth": "1990-01-02",
        "gender": "M",
        "email": "a@example.org",
        "phone": "1",
        "address[line1]": "1 Main",
        "address[line2]": "",
        "address[city]": "C",
        "address.state": "IL",
        "address.zip": "62701",
        "address[country]": "US",
    }
    response = api.post("/patients", data=form)
    assert response.status_code == 200, response.text
    assert simulator.state()["patients"][0]["address"]["state"] == "IL"


# --- patients ----------------------------------------------------------------------------


def test_create_patient_is_idempotent_per_mrn(simulator, api):
    case_id, first = api.new_patient()
    assert first["created"] is True and first["pId"].startswith("P") and len(first["pId"]) == 8
    again = api.post("/patients", patient_body(case_id + 1000, mrn=first["mrn"]))
    assert again.json() == {"pId": first["pId"], "mrn": first["mrn"], "created": False}
    state = simulator.state()
    assert len(state["patients"]) == 1
    assert state["patients"][0]["caseIds"] == [case_id, case_id + 1000]


def test_patient_gender_must_be_m_or_f(simulator, api):
    response = api.post("/patients", patient_body(next(CASE_IDS), gender="U"))
    assert response.status_code == 422
    assert error_code(response) == "PATIENT.INVALID_GENDER"
    assert simulator.state()["patients"] == []


def test_patient_missing_fields_are_400_and_named(simulator, api):
    body = patient_body(next(CASE_IDS))
    del body["email"]
    body["address"] = dict(body["address"], city="")
    response = api.post("/patients", body)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"] == ["email"]
    body["email"] = "x@example.org"
    response = api.post("/patients", body)
    assert response.json()["error"]["details"]["fields"] == ["address.city"]
    bad_date = api.post("/patients", patient_body(next(CASE_IDS), dateOfBirth="01/02/1990"))
    assert bad_date.status_code == 400 and error_code(bad_date) == "REQUEST.INVALID_FIELD"


# --- orders ----------------------------------------------------------------------------------


def order_body(case_id, patient, **changes):
    body = {
        "caseId": case_id,
        "pId": patient["pId"],
        "mrn": patient["mrn"],
        "orderType": "IAS",
        "treatmentOption": "BOTH_ARCHES",
        "chiefConcern": "Straighten teeth",
    }
    body.update(changes)
    return body


def test_create_order_and_its_errors(simulator, api):
    case_id, patient = api.new_patient()
    created = api.post("/orders", order_body(case_id, patient))
    assert created.status_code == 200
    assert created.json() == {"caseId": case_id, "pId": patient["pId"], "orderType": "IAS", "status": "RECEIVED"}

    twice = api.post("/orders", order_body(case_id, patient))
    assert twice.status_code == 409 and error_code(twice) == "ORDER.ALREADY_EXISTS"
    unknown = api.post("/orders", order_body(case_id, dict(patient, pId="P0000000")))
    assert unknown.status_code == 404 and error_code(unknown) == "PATIENT.NOT_FOUND"
    other_type = api.post("/orders", order_body(case_id, patient, orderType="ADDITIONAL_ALIGNERS"))
    assert other_type.status_code == 422 and error_code(other_type) == "ORDER.UNSUPPORTED_TYPE"
    option = api.post("/orders", order_body(case_id, patient, treatmentOption="ALL"))
    assert option.status_code == 422
    missing = api.post("/orders", {k: v for k, v in order_body(case_id, patient).items() if k != "chiefConcern"})
    assert missing.status_code == 400 and missing.json()["error"]["details"]["fields"] == ["chiefConcern"]
    wrong_mrn = api.post("/orders", order_body(next(CASE_IDS), patient, mrn="OTHER"))
    assert wrong_mrn.status_code == 400 and error_code(wrong_mrn) == "REQUEST.MISMATCH"
    assert simulator.state()["effects"]["orders"] == 1


# --- assets ----------------------------------------------------------------------------------


def test_upload_asks_the_app_for_the_asset_list(simulator, api, fake_app):
    case_id, patient = api.new_order()
    fake_app.assets[case_id] = STL_ASSETS + [{"kind": "PHOTO", "vault_id": "v", "external_key": "p"}]
    response = api.upload(case_id, patient)
    assert response.status_code == 200, response.text
    assert response.json() == {"caseId": case_id, "accepted": True, "assetCount": 3}
    assert fake_app.asset_requests[-1]["Authorization"] == "Bearer demo-inbound-token"
    assert simulator.state()["effects"]["uploads"] == 1


def test_upload_needs_two_stl_assets(simulator, api, fake_app):
    case_id, patient = api.new_order()
    fake_app.assets[case_id] = STL_ASSETS[:1] + [dict(STL_ASSETS[1], external_key="")]
    response = api.upload(case_id, patient)
    assert response.status_code == 422 and error_code(response) == "ASSETS.NOT_ENOUGH_STL"
    assert response.json()["error"]["details"]["stl_assets"] == 1
    assert simulator.state()["effects"]["uploads"] == 0


def test_upload_errors_without_an_order_or_with_other_ids(simulator, api, fake_app):
    case_id, patient = api.new_patient()
    no_order = api.upload(case_id, patient)
    assert no_order.status_code == 404 and error_code(no_order) == "ORDER.NOT_FOUND"
    case_id, patient = api.new_order()
    wrong_mrn = api.upload(case_id, dict(patient, mrn="OTHER"))
    assert wrong_mrn.status_code == 400 and error_code(wrong_mrn) == "REQUEST.MISMATCH"


def test_upload_is_503_with_retry_after_when_the_app_cannot_answer(simulator, api, fake_app):
    case_id, patient = api.new_order()
    fake_app.assets[case_id] = 500
    response = api.upload(case_id, patient)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert error_code(response) == "ASSETS.SOURCE_UNAVAILABLE"
    simulator.config(app_url="http://127.0.0.1:9")  # nothing listens there
    unreachable = api.upload(case_id, patient)
    assert unreachable.status_code == 503 and unreachable.headers["Retry-After"]
    assert simulator.state()["effects"]["uploads"] == 0


# --- ClinCheck ----------------------------------------------------------------------------------


def case_with_plan(simulator, api, fake_app):
    case_id, patient = api.new_order()
    fake_app.assets[case_id] = STL_ASSETS
    assert api.upload(case_id, patient).status_code == 200
    simulator.emit(case_id, "sales_order.created", orderKind="PRIMARY")
    simulator.emit(case_id, "treatment_plan.submitted")
    return case_id, patient


def test_accept_approves_the_pending_plan(simulator, api, fake_app):
    case_id, patient = case_with_plan(simulator, api, fake_app)
    body = {"caseId": case_id, "mrn": patient["mrn"], **SCREENSHOT_REF}
    response = api.put(f"/orders/{case_id}/accept", body)
    assert response.status_code == 200, response.text
    sales_order = simulator.state()["orders"][0]["salesOrders"][0]["salesOrderNumber"]
    assert response.json() == {"caseId": case_id, "status": "APPROVED", "salesOrderNumber": sales_order}
    again = api.put(f"/orders/{case_id}/accept", body)
    assert again.status_code == 409 and error_code(again) == "PLAN.NOT_PENDING"
    assert simulator.state()["effects"]["accepts"] == 1


def test_accept_errors(simulator, api, fake_app):
    case_id, patient = api.new_order()
    body = {"caseId": case_id, "mrn": patient["mrn"], **SCREENSHOT_REF}
    no_plan = api.put(f"/orders/{case_id}/accept", body)
    assert no_plan.status_code == 409 and error_code(no_plan) == "PLAN.NOT_PENDING"
    case_id, patient = case_with_plan(simulator, api, fake_app)
    body = {"caseId": case_id, "mrn": patient["mrn"], **SCREENSHOT_REF}
    nil = api.put(f"/orders/{case_id}/accept", dict(body, vault_id=str(uuid.UUID(int=0))))
    assert nil.status_code == 422 and error_code(nil) == "SCREENSHOT.INVALID_REFERENCE"
    garbage = api.put(f"/orders/{case_id}/accept", dict(body, external_key="not-a-uuid"))
    assert garbage.status_code == 422
    other_case = api.put(f"/orders/{case_id}/accept", dict(body, caseId=case_id + 1))
    assert other_case.status_code == 400 and error_code(other_case) == "REQUEST.MISMATCH"
    other_mrn = api.put(f"/orders/{case_id}/accept", dict(body, mrn="OTHER"))
    assert other_mrn.status_code == 400 and error_code(other_mrn) == "REQUEST.MISMATCH"
    unknown = api.put("/orders/1/accept", dict(body, caseId=1))
    assert unknown.status_code == 404
    missing = api.put(f"/orders/{case_id}/accept", {"caseId": case_id, "mrn": patient["mrn"]})
    assert missing.json()["error"]["details"]["fields"] == ["vault_id", "external_key"]
    assert simulator.state()["effects"]["accepts"] == 0


def test_accept_checks_a_screenshot_held_in_its_own_vault(simulator, api, fake_app):
    case_id, patient = case_with_plan(simulator, api, fake_app)
    vault_id = str(uuid.uuid4())
    stored = requests.post(
        f"{simulator.url}/v1/vaults/{vault_id}/blobs",
        auth=("demo-vault-key", ""),
        files={"file": ("shot.png", b"this is no image", "image/png")},
        timeout=5,
    )
    body = {"caseId": case_id, "mrn": patient["mrn"], "vault_id": vault_id, "external_key": stored.json()["blob_id"]}
    unreadable = api.put(f"/orders/{case_id}/accept", body)
    assert unreadable.status_code == 422 and error_code(unreadable) == "SCREENSHOT.UNREADABLE"

    preview = requests.get(simulator.state()["plans"][0]["assets"][0]["url"], timeout=5).content
    stored = requests.post(
        f"{simulator.url}/v1/vaults/{vault_id}/blobs",
        auth=("demo-vault-key", ""),
        files={"file": ("shot.png", preview, "image/png")},
        timeout=5,
    )
    readable = api.put(f"/orders/{case_id}/accept", dict(body, external_key=stored.json()["blob_id"]))
    assert readable.status_code == 200, readable.text
    assert simulator.state()["plans"][0]["screenshot"]["checked"] is True


def test_modify_asks_for_a_revision(simulator, api, fake_app):
    case_id, patient = case_with_plan(simulator, api, fake_app)
    body = {"caseId": case_id, "mrn": patient["mrn"], "comments": "Less IPR on the lower arch"}
    blank = api.put(f"/orders/{case_id}/modify", dict(body, comments="   "))
    assert blank.status_code == 400 and blank.json()["error"]["details"]["fields"] == ["comments"]
    response = api.put(f"/orders/{case_id}/modify", body)
    assert response.status_code == 200
    assert response.json() == {"caseId": case_id, "status": "MODIFICATION_REQUESTED"}
    again = api.put(f"/orders/{case_id}/modify", body)
    assert again.status_code == 409 and error_code(again) == "PLAN.NOT_PENDING"
    other_case = api.put(f"/orders/{case_id}/modify", dict(body, caseId=str(case_id + 1)))
    assert other_case.status_code == 400
    state = simulator.state()
    assert state["effects"]["modifies"] == 1
    assert state["plans"][0]["comments"] == "Less IPR on the lower arch"


# --- read back --------------------------------------------------------------------------------


def test_read_back_the_case(simulator, api, fake_app):
    case_id, patient = case_with_plan(simulator, api, fake_app)
    response = api.get(f"/orders/{case_id}")
    assert response.status_code == 200
    view = response.json()
    assert view["caseId"] == case_id and view["pId"] == patient["pId"] and view["status"] == "RECEIVED"
    assert [o["orderType"] for o in view["orders"]] == ["IAS"]
    assert [so["orderKind"] for so in view["salesOrders"]] == ["PRIMARY"]
    assert [p["version"] for p in view["plans"]] == [1]
    assert len(view["assets"]) == 2
    missing = api.get("/orders/424242")
    assert missing.status_code == 404 and error_code(missing) == "ORDER.NOT_FOUND"
    assert api.get("/orders/abc").status_code == 400
