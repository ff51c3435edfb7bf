"""Users and tokens through the API; every change lands in the audit log."""

from __future__ import annotations


def test_admin_creates_user_whose_password_works_and_is_audited(client, as_user):
    h = as_user("root")
    r = client.post("/api/v1/users", headers=h, json={"username": "carol", "role": "analyst"})
    assert r.status_code == 201
    created = r.json()
    assert created["role"] == "analyst" and len(created["password"]) >= 12
    names = [u["username"] for u in client.get("/api/v1/users", headers=h).json()]
    assert "carol" in names
    # the generated password logs in on the web
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    login = client.post(
        "/login",
        data={"username": "carol", "password": created["password"], "csrf_token": token},
        follow_redirects=False,
    )
    assert login.status_code == 303
    audit = client.get("/api/v1/audit", params={"action": "user.add"}, headers=h).json()
    assert any(e["after"]["username"] == "carol" and e["actor"] == "root" for e in audit["items"])


def test_duplicate_user_is_409_and_bad_role_is_422(client, as_user):
    h = as_user("root")
    r = client.post("/api/v1/users", headers=h, json={"username": "alice", "role": "sales"})
    assert r.status_code == 409 and r.json()["field"] == "username"
    r = client.post("/api/v1/users", headers=h, json={"username": "dan", "role": "superuser"})
    assert r.status_code == 422 and r.json()["field"] == "role"


def test_only_admin_manages_users(client, as_user):
    for who in ("rita", "alice"):
        assert client.get("/api/v1/users", headers=as_user(who)).status_code == 403
        r = client.post(
            "/api/v1/users", headers=as_user(who), json={"username": "x", "role": "sales"}
        )
        assert r.status_code == 403


def test_deactivated_user_token_stops_working(client, as_user):
    me = client.get("/api/v1/users/me", headers=as_user("alice")).json()
    r = client.post(f"/api/v1/users/{me['id']}/deactivate", headers=as_user("root"))
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/api/v1/users/me", headers=as_user("alice")).status_code == 401
    audit = client.get(
        "/api/v1/audit", params={"action": "user.deactivate"}, headers=as_user("root")
    )
    assert audit.json()["items"][0]["entity_id"] == str(me["id"])


def test_admin_cannot_deactivate_itself(client, as_user):
    me = client.get("/api/v1/users/me", headers=as_user("root")).json()
    assert (
        client.post(f"/api/v1/users/{me['id']}/deactivate", headers=as_user("root")).status_code
        == 409
    )


def test_user_creates_own_token_shown_once_and_usable(client, as_user):
    r = client.post("/api/v1/tokens", headers=as_user("rita"), json={"name": "laptop"})
    assert r.status_code == 201
    token = r.json()["token"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "rita"
    # never readable again: no endpoint returns it
    audit = client.get("/api/v1/audit", headers=as_user("root")).text
    assert token not in audit
