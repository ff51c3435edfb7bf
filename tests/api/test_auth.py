"""Authentication, roles and problem+json errors."""

from __future__ import annotations

import pytest


def test_no_token_is_401_problem_json(client):
    r = client.get("/api/v1/customers")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 401 and body["title"]
    assert r.headers.get("www-authenticate") == "Bearer"


def test_unknown_token_is_401(client):
    r = client.get("/api/v1/users/me", headers={"Authorization": "Bearer rdk_not-a-real-token"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


def test_token_identifies_its_user(client, as_user):
    r = client.get("/api/v1/users/me", headers=as_user("alice"))
    assert r.status_code == 200
    assert r.json()["username"] == "alice" and r.json()["role"] == "sales"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/users", {"username": "mallory", "role": "admin"}),
        ("post", "/api/v1/tokens", {"name": "x"}),
        ("post", "/api/v1/users/1/deactivate", None),
    ],
)
def test_auditor_cannot_change_anything(client, as_user, method, path, body):
    r = client.request(method.upper(), path, headers=as_user("audrey"), json=body)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")


def test_auditor_reads_customers_and_the_audit_log(client, as_user):
    h = as_user("audrey")
    assert client.get("/api/v1/customers", headers=h).json()["total"] == 4
    r = client.get("/api/v1/audit", headers=h)
    assert r.status_code == 200
    actions = {e["action"] for e in r.json()["items"]}
    assert "token.create" in actions
    v = client.get("/api/v1/audit/verify", headers=h).json()
    assert v["ok"] is True and v["checked"] >= 5


def test_audit_log_is_closed_to_sales_and_analysts(client, as_user):
    assert client.get("/api/v1/audit", headers=as_user("alice")).status_code == 403
    assert client.get("/api/v1/audit", headers=as_user("rita")).status_code == 403
    assert client.get("/api/v1/audit", headers=as_user("root")).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "password_hash"}, "sort"),
        ({"sort": "name;drop table customers"}, "sort"),
    ],
)
def test_bad_list_params_are_422_naming_the_field(client, as_user, params, field):
    r = client.get("/api/v1/customers", params=params, headers=as_user("rita"))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field
    assert any(e["field"] == field for e in r.json()["errors"])


def test_bad_path_and_date_params_are_422(client, as_user, portfolio):
    h = as_user("rita")
    r = client.get("/api/v1/customers/abc", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "customer_id"
    cid = portfolio.ids["C001"]
    r = client.get(f"/api/v1/customers/{cid}", params={"as_of": "30/06/2026"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "as_of"
    r = client.get(
        "/api/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=as_user("root")
    )
    assert r.status_code == 422 and r.json()["field"] == "since"


def test_unknown_path_and_method_are_problem_json(client, as_user):
    r = client.get("/api/v1/nothing-here", headers=as_user("rita"))
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.delete("/api/v1/customers", headers=as_user("rita"))
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")


def test_malformed_json_body_is_422_not_500(client, as_user):
    r = client.post(
        "/api/v1/users",
        content=b"{not json",
        headers={**as_user("root"), "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_openapi_document_lists_the_endpoints(client):
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/users/me",
        "/api/v1/audit/verify",
    ):
        assert path in spec["paths"]
