"""Fixtures for the web tests: the seeded portfolio and a logged-in browser-like client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from tests.seed import PORTFOLIO, cheap_argon2

from riskdesk.api.app import create_app

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


SEED = PORTFOLIO


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


@pytest.fixture
def portfolio(db_url: str):  # type: ignore[no-untyped-def]
    from riskdesk.store.types import utcnow

    # the pages age invoices as of today
    return SEED.seed(db_url, as_of=utcnow().date())


@pytest.fixture
def web(portfolio) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(portfolio.url), headers=HTML) as c:
        yield c


@pytest.fixture
def login(web: TestClient) -> Callable[[str], str]:
    """Log ``user`` in on the web client; returns the session's CSRF token."""

    def do(user: str) -> str:
        token = csrf_of(web.get("/login").text)
        r = web.post(
            "/login",
            data={"username": user, "password": SEED.PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return csrf_of(web.get("/").text)

    return do
