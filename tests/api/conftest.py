"""Fixtures for the API tests: a seeded database on SQLite and PostgreSQL, a client, tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from tests.seed import PORTFOLIO, cheap_argon2

from riskdesk.api.app import create_app


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


SEED = PORTFOLIO


@pytest.fixture
def as_of() -> date:
    return SEED.AS_OF  # type: ignore[no-any-return]


@pytest.fixture
def password() -> str:
    return SEED.PASSWORD  # type: ignore[no-any-return]


@pytest.fixture
def portfolio(db_url: str):  # type: ignore[no-untyped-def]
    return SEED.seed(db_url)


@pytest.fixture
def client(portfolio) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(portfolio.url)) as c:
        yield c


@pytest.fixture
def as_user(portfolio) -> Callable[[str], dict[str, str]]:  # type: ignore[no-untyped-def]
    return lambda user: {"Authorization": f"Bearer {portfolio.tokens[user]}"}
