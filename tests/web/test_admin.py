"""The users and API tokens page (admin only), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import ApiToken, AuditEntry, User
from riskdesk.store.users import authenticate


def _db(url: str, fn):  # type: ignore[no-untyped-def]
    eng = make_engine(url)
    try:
        with session_scope(eng) as s:
            out = fn(s)
            s.expunge_all()
            return out
    finally:
        eng.dispose()


def _user(url: str, name: str) -> User:
    return _db(url, lambda s: s.scalar(select(User).where(User.username == name)))  # type: ignore[no-any-return]


def _audit(url: str, action: str) -> list[AuditEntry]:
    return _db(  # type: ignore[no-any-return]
        url,
        lambda s: list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        ),
    )


def _secret(html: str) -> str:
    m = re.search(r'<code class="secret" id="secret-value">([^<]+)</code>', html)
    assert m, "no one-time secret on the page"
    return m.group(1)


@pytest.mark.parametrize("user", ["rita", "alice", "audrey"])
def test_only_admins_see_the_page_and_its_menu_entry(web, login, user):
    csrf = login(user)
    assert 'href="/admin/users"' not in web.get("/").text
    assert web.get("/admin/users").status_code == 403
    r = web.post("/admin/users", data={"username": "x", "role": "admin", "csrf_token": csrf})
    assert r.status_code == 403


def test_admin_sees_users_with_role_status_and_last_login(web, login, portfolio):
    login("root")
    html = web.get("/admin/users").text
    assert 'href="/admin/users"' in html
    for name in ("root", "rita", "alice", "bob", "audrey"):
        assert f'id="user-{name}"' in html
    row = html.split('id="user-root"')[1].split("</tr>")[0]
    assert "Never" not in row and "never" not in row.split("</td>")[3]  # just logged in
    bob = html.split('id="user-bob"')[1].split("</tr>")[0]
    assert bob.split("<td>")[4].startswith("never")  # bob never logged in
    assert _audit(portfolio.url, "user.login")[-1].actor == "root"
    zh = web.get("/admin/users?lang=zh").text
    assert "用户与 API 令牌" in zh and "最近登录" in zh and "风险经理" in zh


def test_creating_a_user_shows_the_generated_password_once(web, login, portfolio):
    csrf = login("root")
    r = web.post(
        "/admin/users",
        data={
            "username": "wang.li",
            "full_name": "王丽",
            "role": "analyst",
            "language": "zh",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    password = _secret(r.text)
    assert len(password) >= 12
    user = _user(portfolio.url, "wang.li")
    assert (user.role, user.full_name, user.language, user.active) == (
        "analyst",
        "王丽",
        "zh",
        True,
    )
    assert user.password_hash and password not in user.password_hash
    assert _db(portfolio.url, lambda s: authenticate(s, "wang.li", password)) is not None
    entry = _audit(portfolio.url, "user.add")[-1]
    assert entry.actor == "root" and entry.after == {"username": "wang.li", "role": "analyst"}
    assert password not in web.get("/admin/users").text  # never again


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"username": "rita", "role": "analyst"}, "User rita exists already."),
        ({"username": "bad name!", "role": "analyst"}, "A user name has 1 to 64"),
        ({"username": "王丽", "role": "analyst"}, "A user name has 1 to 64"),
        ({"username": "newbie", "role": "emperor"}, "Unknown role."),
    ],
)
def test_bad_new_users_are_refused_with_a_message_and_nothing_written(
    web, login, portfolio, form, message
):
    csrf = login("root")
    before = len(_audit(portfolio.url, "user.add"))
    r = web.post("/admin/users", data={**form, "csrf_token": csrf})
    assert r.status_code == 422
    assert message in r.text and 'id="secret-box"' not in r.text
    assert f'value="{form["username"]}"' in r.text.replace("&#34;", '"')  # the form keeps input
    assert len(_audit(portfolio.url, "user.add")) == before


def test_changing_a_role_is_audited(web, login, portfolio):
    csrf = login("root")
    alice = _user(portfolio.url, "alice")
    r = web.post(
        f"/admin/users/{alice.id}/role",
        data={"role": "risk_manager", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=role"
    assert _user(portfolio.url, "alice").role == "risk_manager"
    entry = _audit(portfolio.url, "user.role")[-1]
    assert (entry.actor, entry.entity_id) == ("root", str(alice.id))
    assert entry.before == {"role": "sales"} and entry.after == {"role": "risk_manager"}
    assert "Role changed." in web.get("/admin/users?done=role").text
    bad = web.post(f"/admin/users/{alice.id}/role", data={"role": "king", "csrf_token": csrf})
    assert bad.status_code == 422


def test_an_admin_cannot_demote_or_deactivate_themselves(web, login, portfolio):
    csrf = login("root")
    me = _user(portfolio.url, "root")
    r = web.post(f"/admin/users/{me.id}/role", data={"role": "sales", "csrf_token": csrf})
    assert r.status_code == 409 and "another administrator" in r.text
    r = web.post(f"/admin/users/{me.id}/active", data={"active": "false", "csrf_token": csrf})
    assert r.status_code == 409
    assert _user(portfolio.url, "root").role == "admin" and _user(portfolio.url, "root").active
    assert (
        web.post("/admin/users/999999/role", data={"role": "sales", "csrf_token": csrf}).status_code
        == 404
    )


def test_deactivating_stops_login_and_tokens_and_reactivating_restores(web, login, portfolio):
    csrf = login("root")
    bob = _user(portfolio.url, "bob")
    bearer = {"Authorization": f"Bearer {portfolio.tokens['bob']}", "accept": "application/json"}
    assert web.get("/api/v1/users/me", headers=bearer).status_code == 200
    r = web.post(f"/admin/users/{bob.id}/active", data={"active": "false", "csrf_token": csrf})
    assert r.status_code == 200 and "User deactivated" in r.text
    assert not _user(portfolio.url, "bob").active
    assert web.get("/api/v1/users/me", headers=bearer).status_code == 401
    html = web.get("/admin/users").text
    assert html.split('id="user-bob"')[1].startswith(' class="inactive"')
    r = web.post(f"/admin/users/{bob.id}/active", data={"active": "true", "csrf_token": csrf})
    assert "User reactivated." in r.text
    assert web.get("/api/v1/users/me", headers=bearer).status_code == 200
    actions = [(e.action, e.after) for e in _audit(portfolio.url, "user.deactivate")] + [
        (e.action, e.after) for e in _audit(portfolio.url, "user.reactivate")
    ]
    assert actions == [
        ("user.deactivate", {"active": False}),
        ("user.reactivate", {"active": True}),
    ]


def test_issuing_a_token_shows_it_once_and_keeps_only_its_hash(web, login, portfolio):
    csrf = login("root")
    alice = _user(portfolio.url, "alice")
    r = web.post(f"/admin/users/{alice.id}/tokens", data={"name": "crm sync", "csrf_token": csrf})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    token = _secret(r.text)
    assert token.startswith("rdk_")
    rows = _db(
        portfolio.url,
        lambda s: list(s.scalars(select(ApiToken).where(ApiToken.name == "crm sync"))),
    )
    assert len(rows) == 1 and rows[0].user_id == alice.id
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0].prefix == token[:10] and token not in (rows[0].prefix, rows[0].token_hash)
    me = web.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "alice"
    entry = _audit(portfolio.url, "token.create")[-1]
    assert entry.actor == "root" and entry.after["name"] == "crm sync"
    page = web.get("/admin/users").text
    assert token not in page and f"{token[:10]}…" in page
    # the token's use shows on the page
    assert "never" not in page.split('id="user-alice"')[1].split("</tr>")[0].split("<td>")[5]


def test_revoking_a_token_stops_it_at_once(web, login, portfolio):
    csrf = login("root")
    tok = _db(
        portfolio.url,
        lambda s: s.scalar(
            select(ApiToken).join(User, User.id == ApiToken.user_id).where(User.username == "rita")
        ),
    )
    bearer = {"Authorization": f"Bearer {portfolio.tokens['rita']}", "accept": "application/json"}
    assert web.get("/api/v1/users/me", headers=bearer).status_code == 200
    r = web.post(
        f"/admin/tokens/{tok.id}/revoke", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert web.get("/api/v1/users/me", headers=bearer).status_code == 401
    entry = _audit(portfolio.url, "token.revoke")[-1]
    assert entry.actor == "root" and entry.after["token_id"] == tok.id and entry.after["revoked"]
    # revoking again changes nothing and writes no second entry
    web.post(f"/admin/tokens/{tok.id}/revoke", data={"csrf_token": csrf})
    assert len(_audit(portfolio.url, "token.revoke")) == 1
    html = web.get("/admin/users").text
    assert "Revoked" in html.split(f'id="token-{tok.id}"')[1].split("</tr>")[0]


def test_a_deactivated_user_gets_no_token(web, login, portfolio):
    csrf = login("root")
    bob = _user(portfolio.url, "bob")
    web.post(f"/admin/users/{bob.id}/active", data={"active": "false", "csrf_token": csrf})
    r = web.post(f"/admin/users/{bob.id}/tokens", data={"csrf_token": csrf})
    assert r.status_code == 409


def test_forms_without_the_csrf_token_are_refused(web, login, portfolio):
    login("root")
    alice = _user(portfolio.url, "alice")
    r = web.post(f"/admin/users/{alice.id}/role", data={"role": "admin"})
    assert r.status_code == 403
    assert _user(portfolio.url, "alice").role == "sales"


@pytest.mark.parametrize("template", ["admin/users.html", "imports/imports.html"])
def test_every_text_of_the_page_exists_in_english_and_chinese(template):
    from pathlib import Path

    import riskdesk.web as web_pkg
    from riskdesk.web.i18n import catalogue

    source = (Path(web_pkg.__file__).parent / "templates" / template).read_text(encoding="utf-8")
    keys = set(re.findall(r"t\('([a-z_.]+)'", source))
    keys |= {f"admin.done.{d}" for d in ("role", "deactivated", "reactivated", "revoked")}
    keys |= {"admin.secret.password", "admin.secret.token"}
    assert len(keys) > 20
    for key in keys:
        if key.endswith("."):
            continue  # a prefix completed at run time (role., imports.kind. …)
        entry = catalogue().get(key)
        assert entry and entry.get("en") and entry.get("zh"), key
