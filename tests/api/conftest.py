"""Fixtures for the API tests: a seeded database on SQLite and PostgreSQL, a client, tokens."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from riskdesk.api.app import create_app


def load_seed() -> ModuleType:
    """tests/api/portfolio_seed.py (tests are not a package, so load it by path)."""
    name = "riskdesk_service_portfolio_seed"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "api" / "portfolio_seed.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with minimal cost parameters: same code path, a fraction of the CPU time."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr("riskdesk.store.users._hasher", cheap)


SEED = load_seed()


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
