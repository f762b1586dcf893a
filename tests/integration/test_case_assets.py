"""GET /api/align/cases/<caseId>/assets: what the service reads to find a case's STL files."""

import pytest

from align_workflow.cases.models import CaseAsset
from tests.support.factories import make_case

pytestmark = pytest.mark.django_db

TOKEN = "inbound-token-for-tests"


@pytest.fixture(autouse=True)
def inbound_token(settings):
    settings.ALIGN_INBOUND_TOKEN = TOKEN


def get(client, case_id, authorization=None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.get(f"/api/align/cases/{case_id}/assets", headers=headers)


def test_lists_the_current_stl_files_of_that_case_only(client):
    case = make_case(stl_files=3)
    removed = case.assets.filter(kind=CaseAsset.Kind.STL_UPPER).first()
    CaseAsset.objects.filter(pk=removed.pk).update(removed=True)
    CaseAsset.objects.create(case=case, kind=CaseAsset.Kind.PHOTO, filename="smile.jpg")
    CaseAsset.objects.create(case=case, kind=CaseAsset.Kind.PROVPREV, url="https://x.example/p.mp4")
    CaseAsset.objects.create(case=case, kind=CaseAsset.Kind.CCACCEPTSCREEN, vault_id="v", external_key="k")
    make_case(stl_files=2)  # another case's files

    response = get(client, case.pk, f"Bearer {TOKEN}")
    assert response.status_code == 200
    expected = [
        {
            "kind": a.kind,
            "vault_id": a.vault_id,
            "external_key": a.external_key,
            "filename": a.filename,
            "sha256": a.sha256,
        }
        for a in case.assets.filter(kind__in=CaseAsset.STL_KINDS, removed=False).order_by("kind", "created", "id")
    ]
    assert response.json() == expected
    assert len(expected) == 2
    assert removed.external_key not in response.content.decode()


def test_a_case_without_stl_files_has_an_empty_list(client):
    case = make_case(stl_files=0)
    assert get(client, case.pk, f"Bearer {TOKEN}").json() == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer wrong",
        TOKEN,
    ],
)
def test_without_the_right_token_401(client, authorization):
    case = make_case()
    response = get(client, case.pk, authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "AUTH.TOKEN_INVALID"
    assert "vault" not in response.content.decode()


def test_the_scheme_is_case_insensitive(client):
    case = make_case()
    assert get(client, case.pk, f"bearer {TOKEN}").status_code == 200


def test_an_unknown_case_is_404_but_only_after_the_token(client):
    assert get(client, 987654, f"Bearer {TOKEN}").status_code == 404
    assert get(client, 987654, "Bearer wrong").status_code == 401


def test_no_token_configured_refuses_everyone(client, settings):
    settings.ALIGN_INBOUND_TOKEN = ""
    case = make_case()
    assert get(client, case.pk, "Bearer ").status_code == 401
    assert get(client, case.pk, "Bearer x").status_code == 401


def test_the_token_is_compared_in_constant_time(client, monkeypatch):
    import hmac

    from align_workflow.integration import views

    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(views.hmac, "compare_digest", spy)
    case = make_case()
    assert get(client, case.pk, f"Bearer {TOKEN}").status_code == 200
    assert compared == [(TOKEN.encode(), TOKEN.encode())]


def test_only_get(client):
    case = make_case()
    response = client.post(f"/api/align/cases/{case.pk}/assets", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_are_a_json_405_even_without_a_csrf_token(method):
    """The service sends no CSRF token: a write method is a 405 in the error envelope,
    not the CSRF failure page."""
    from django.test import Client

    case = make_case(stl_files=2)
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)(
        f"/api/align/cases/{case.pk}/assets",
        data=b"{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "REQUEST.METHOD_NOT_ALLOWED"
    assert response["Allow"] == "GET, HEAD"
    assert case.assets.count() == 2
