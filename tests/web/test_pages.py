"""Server-rendered pages: login, CSRF, sessions, visibility, language."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from riskdesk.config import get_settings
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import User


def user_language(url: str, name: str) -> str | None:
    eng = make_engine(url)
    with session_scope(eng) as s:
        lang = s.scalar(select(User.language).where(User.username == name))
    eng.dispose()
    return lang


def test_pages_redirect_to_login_when_not_logged_in(web):
    r = web.get("/customers?q=x", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2Fcustomers%3Fq%3Dx")


def test_login_sets_a_signed_httponly_lax_cookie(web, portfolio):
    page = web.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    bad = web.post(
        "/login", data={"username": "root", "password": "wrong-password", "csrf_token": token}
    )
    assert bad.status_code == 401
    assert "Wrong user name or password" in bad.text
    r = web.post(
        "/login",
        data={"username": "root", "password": "correct-horse-battery", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert web.get("/").status_code == 200


def test_cookie_is_secure_when_configured(portfolio, monkeypatch):
    from fastapi.testclient import TestClient

    from riskdesk.api.app import create_app

    monkeypatch.setenv("RISKDESK_COOKIE_SECURE", "true")
    get_settings.cache_clear()
    try:
        with TestClient(create_app(portfolio.url), base_url="https://testserver") as c:
            r = c.get("/login")
            assert "secure" in r.headers["set-cookie"].lower()
    finally:
        get_settings.cache_clear()


def test_form_post_without_csrf_token_is_refused(web, login, portfolio):
    token = login("bob")
    r = web.post("/language", data={"lang": "en"}, follow_redirects=False)
    assert r.status_code == 403
    assert user_language(portfolio.url, "bob") == "zh"  # nothing changed
    r = web.post("/language", data={"lang": "en", "csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    r = web.post("/language", data={"lang": "en", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert user_language(portfolio.url, "bob") == "en"
    assert web.post("/logout", follow_redirects=False).status_code == 403


def test_login_form_without_csrf_token_is_refused(web):
    web.get("/login")
    r = web.post("/login", data={"username": "root", "password": "correct-horse-battery"})
    assert r.status_code == 403


def test_sales_user_pages_show_only_own_customers(web, login, portfolio):
    login("alice")
    listing = web.get("/customers").text
    assert "Acme Tools GmbH" in listing and "Beta Retail SA" not in listing
    assert web.get(f"/customers/{portfolio.ids['C002']}").status_code == 404
    assert web.get(f"/customers/{portfolio.ids['C001']}").status_code == 200
    dash = web.get("/").text
    assert "your customers only" in dash
    assert web.get("/audit").status_code == 403


def test_customer_page_shows_exposure_and_invoices(web, login, portfolio):
    login("rita")
    r = web.get(f"/customers/{portfolio.ids['C001']}")
    assert r.status_code == 200
    html = r.text
    for text in ("Acme Tools GmbH", "Open invoices", "K001", "€3,000.00", "€1,400.00"):
        assert text in html
    assert 'class="plotly-graph-div' in html


def test_language_follows_accept_language_then_the_users_choice(web, login):
    zh = web.get("/login", headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in zh.text and "用户名" in zh.text
    en = web.get("/login", headers={"accept-language": "de-DE,en;q=0.5"})
    assert '<html lang="en">' in en.text
    login("bob")  # bob chose Chinese earlier: it wins over the browser
    page = web.get("/customers", headers={"accept-language": "en-US"})
    assert "客户列表" in page.text


def test_login_next_parameter_cannot_redirect_off_site(web):
    page = web.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = web.post(
        "/login",
        data={
            "username": "root",
            "password": "correct-horse-battery",
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


@pytest.mark.parametrize("path", ["/customers?limit=0", "/customers?sort=secret", "/customers/x"])
def test_bad_page_parameters_are_4xx_pages_not_500(web, login, path):
    login("root")
    r = web.get(path)
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"]


def test_plotly_js_is_served_locally(web):

    from riskdesk.api.app import plotly_js_path

    r = web.get("/static/plotly.min.js")
    assert r.status_code == 200
    assert r.content == plotly_js_path().read_bytes()
    assert r.text.startswith("/**") and "plotly.js" in r.text[:200]


def test_api_calls_with_the_session_cookie_need_the_csrf_header(web, login):
    token = login("rita")
    assert web.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    r = web.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.json()["user"] == "rita"
    # reading needs no token
    assert web.get("/api/v1/users/me").json()["username"] == "rita"
