"""Shared fixtures.

``db_url`` is parametrised over SQLite and PostgreSQL: a test that takes it runs on both.
Each test gets an empty, fully migrated database. PostgreSQL is 127.0.0.1:5432 (trust auth);
set ``RISKDESK_TEST_PG`` to point elsewhere. When PostgreSQL cannot be reached the PostgreSQL
variants are skipped, unless ``RISKDESK_REQUIRE_SERVICES=1`` (CI sets it), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from riskdesk.store.db import make_engine, migrate
from riskdesk.store.models import Base

PG_ADMIN = os.environ.get("RISKDESK_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _pg_available() -> bool:
    try:
        eng = make_engine(PG_ADMIN, pool_size=1)
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> bool:
    ok = _pg_available()
    if not ok and os.environ.get("RISKDESK_REQUIRE_SERVICES") == "1":
        pytest.fail(
            "PostgreSQL is required (RISKDESK_REQUIRE_SERVICES=1, set by .ci/run) but not reachable"
        )
    return ok


def _drop_stale_databases(conn: Connection) -> None:
    """Drop test databases left behind by runs whose process is gone (killed runs)."""
    rows = conn.execute(
        text("SELECT datname FROM pg_database WHERE datname LIKE 'riskdesk_test_%'")
    )
    for (dbname,) in rows.fetchall():
        pid = dbname.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_template(pg_server: bool, worker_id: str) -> Iterator[str | None]:
    """A migrated PostgreSQL database of this test worker's own."""
    if not pg_server:
        yield None
        return
    name = f"riskdesk_test_{os.getpid()}_{worker_id}".replace("-", "_")
    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as c:
        _drop_stale_databases(c)
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    eng = make_engine(url)
    migrate(url, eng)
    eng.dispose()
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    eng = make_engine(url)
    migrate(url, eng)
    with eng.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


def _truncate_pg(url: str) -> None:
    eng = make_engine(url, pool_size=1)
    tables = [t.name for t in Base.metadata.sorted_tables]
    with eng.begin() as c:
        existing = {
            r[0]
            for r in c.execute(text("select tablename from pg_tables where schemaname='public'"))
        }
        names = ", ".join(f'"{t}"' for t in tables if t in existing)
        if names:
            c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """An empty, migrated database URL; the test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "riskdesk.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_template")
    if url is None:
        pytest.skip("PostgreSQL not reachable")
    _truncate_pg(url)
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated SQLite database (for tests that need only one backend)."""
    path = tmp_path / "riskdesk.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
