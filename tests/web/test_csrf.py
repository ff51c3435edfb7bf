"""CSRF protection and the body limit on a logged-in browser session, through the whole app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from riskdesk.config import get_settings

GOOD = "external_id,name,country\nW1,Wuhan Pumps,CN\n"


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)  # an included router (FastAPI ≥ 0.16x)
        if inner is not None and not inner.prefix.startswith("/api"):
            yield from _routes(inner.routes)


def _form_posts(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every POST route of the app outside the API, with its path parameters filled in."""
    paths = {
        re.sub(r"\{[^}]+\}", "1", route.path)
        for route in _routes(app.routes)
        if "POST" in route.methods and not route.path.startswith("/api/")
    }
    return sorted(paths)


def test_every_form_post_refuses_a_missing_or_wrong_token(web, login):
    token = login("root")
    paths = _form_posts(web.app)
    assert {"/login", "/logout", "/language", "/imports", "/admin/users"} <= set(paths)
    assert {p.split("/")[1] for p in paths} >= {"admin", "control", "monitor", "rating"}
    for path in paths:
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token + "x"}):
            r = web.post(path, data=data, follow_redirects=False)
            assert r.status_code == 403, (path, data)
        r = web.post(
            path,
            data={"csrf_token": "forged"},
            files={"file": ("a.csv", b"a\n", "text/csv")},
            follow_redirects=False,
        )
        assert r.status_code == 403, path
        r = web.post(path, headers={"X-CSRF-Token": "forged"}, follow_redirects=False)
        assert r.status_code == 403, path


def test_the_upload_may_carry_the_token_in_the_header_instead_of_the_form(web, login):
    token = login("rita")
    r = web.post(
        "/imports",
        data={"kind": "customers"},
        files={"file": ("k.csv", GOOD.encode(), "text/csv")},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200, r.text
    assert '<div id="count-inserted"><strong>1</strong>new</div>' in r.text


@pytest.fixture
def one_mib(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RISKDESK_IMPORT_MAX_UPLOAD_MB", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_cookie_session_api_upload_over_the_limit_is_a_413_problem(web, login, one_mib):
    token = login("rita")
    big = "external_id,name\n" + "X,y\n" * 400_000
    r = web.post(
        "/api/v1/imports/customers",
        files={"file": ("k.csv", big.encode(), "text/csv")},
        headers={"X-CSRF-Token": token, "accept": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert "larger than the limit of 1 MiB" in r.json()["detail"]


def test_the_zh_error_page_names_the_limit(web, login, one_mib):
    token = login("bob")  # bob reads Chinese
    big = "external_id,name\n" + "X,y\n" * 400_000
    r = web.post(
        "/imports",
        data={"kind": "customers", "csrf_token": token},
        files={"file": ("k.csv", big.encode(), "text/csv")},
    )
    assert r.status_code == 413
    assert "文件超过 1 MiB" in r.text and "内容过大" in r.text
