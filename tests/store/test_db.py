import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from riskdesk.store.db import is_current, session_scope
from riskdesk.store.models import AuditEntry, Customer, Invoice


def test_schema_is_at_every_migration_head(engine: Engine) -> None:
    assert is_current(engine)


def test_amounts_round_trip_as_exact_decimals(engine: Engine) -> None:
    with session_scope(engine) as s:
        c = Customer(external_id="C1", name="Acme 机械", currency="CNY")
        s.add(c)
        s.flush()
        s.add(
            Invoice(
                external_id="I1",
                customer_id=c.id,
                issue_date=date(2026, 1, 1),
                due_date=date(2026, 1, 31),
                amount=Decimal("12345678901.23"),
                currency="CNY",
            )
        )
    with session_scope(engine) as s:
        inv = s.scalars(select(Invoice)).one()
        assert inv.amount == Decimal("12345678901.23")
        assert s.scalars(select(Customer.name)).one() == "Acme 机械"


def test_timestamps_come_back_in_utc(engine: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    with session_scope(engine) as s:
        s.add(
            AuditEntry(
                ts=datetime(2026, 3, 1, 8, 0, tzinfo=shanghai),
                actor="a",
                action="x",
                entity="e",
                prev_hash="0" * 64,
                hash="1" * 64,
            )
        )
    with session_scope(engine) as s:
        ts = s.scalars(select(AuditEntry.ts)).one()
    assert ts == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert ts.tzinfo is not None


def test_sqlite_connections_checkpoint_the_wal_less_often(tmp_path: Path) -> None:
    from riskdesk.store.db import WAL_AUTOCHECKPOINT, make_engine

    eng = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with eng.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT
        assert WAL_AUTOCHECKPOINT > 1000
    eng.dispose()


def test_a_background_thread_checkpoints_the_wal_of_committed_sqlite_writes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Commits leave the copy of the WAL into the database file to the process's checkpoint
    thread (the committing connection's own checkpoint is only a fallback, far away); past
    WAL_RESTART_BYTES it also makes the WAL start over, so the file stops growing."""
    import time

    from sqlalchemy import text

    from riskdesk.store import db

    monkeypatch.setattr(db, "CHECKPOINT_INTERVAL", 0.05)
    monkeypatch.setattr(db, "WAL_RESTART_BYTES", 1)  # start over after every checkpoint
    path = tmp_path / "c.db"
    eng = db.make_engine(f"sqlite:///{path}")
    try:
        with eng.begin() as c:
            c.execute(text("CREATE TABLE t (x TEXT)"))
        before = path.stat().st_size
        for _ in range(3):
            with eng.begin() as c:  # ≈ 1.5 MB in the WAL: far below the fallback threshold
                c.execute(text("INSERT INTO t VALUES (:x)"), [{"x": "y" * 5000}] * 100)
        key = str(path.resolve())

        def checkpointed_after(runs: int) -> int:
            deadline = time.monotonic() + 10
            while db._Checkpointer.runs.get(key, 0) <= runs and time.monotonic() < deadline:
                time.sleep(0.02)
            return db._Checkpointer.runs.get(key, 0)

        runs = checkpointed_after(0)
        assert runs >= 1
        assert path.stat().st_size >= before + 1_500_000  # the rows are in the database file
        wal = path.with_name("c.db-wal")
        high = wal.stat().st_size
        for _ in range(5):  # the WAL was wholly copied and restarted: writers reuse it
            with eng.begin() as c:
                c.execute(text("INSERT INTO t VALUES ('z')"))
            runs = checkpointed_after(runs)
        assert wal.stat().st_size <= high
        with eng.connect() as c:
            assert c.execute(text("SELECT count(*) FROM t")).scalar() == 305
    finally:
        eng.dispose()


def _migrate_when_told(url: str, go: Any, out: Any) -> None:
    from riskdesk.store.db import make_engine, migrate

    eng = make_engine(url)
    go.wait()
    try:
        migrate(url, eng)
        out.put("ok")
    except Exception as exc:  # reported to the test
        out.put(f"{type(exc).__name__}: {exc}"[:300])
    finally:
        eng.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_migrating_a_new_database_together_all_succeed(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The workers of ``serve --workers N`` (or two ``riskdesk worker`` processes) start on a
    new database at once: one migrates, the others wait and find it current. Before, all but
    one failed creating tables that already existed ("table app_settings already exists")."""
    import multiprocessing as mp
    import os

    from sqlalchemy import text
    from tests.conftest import PG_ADMIN

    from riskdesk.store.db import make_engine

    if kind == "sqlite":
        url, admin, name = f"sqlite:///{tmp_path / 'new.db'}", None, ""
    else:
        if not request.getfixturevalue("pg_server"):
            pytest.skip("PostgreSQL not reachable")
        name = f"riskdesk_test_{os.getpid()}_migrate"
        admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_migrate_when_told, args=(url, go, out)) for _ in range(3)]
    try:
        for p in procs:
            p.start()
        time.sleep(3)  # (each has imported riskdesk and opened its engine by then)
        go.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert results == ["ok"] * 3
        eng = make_engine(url)
        try:
            assert is_current(eng)
        finally:
            eng.dispose()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_a_connection_to_a_new_database_waits_for_a_writer_before_switching_to_wal(
    tmp_path: Path,
) -> None:
    """The first connection of a process puts the database in WAL mode, which takes an
    exclusive lock. On a new database whose tables another process was creating it failed at
    once with "database is locked" (two processes starting together); it now waits for the
    writer and switches once it is done."""
    import sqlite3
    import threading

    from sqlalchemy import text

    from riskdesk.store.db import make_engine

    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE t (x INTEGER)")
    done = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    done.start()
    eng = make_engine(f"sqlite:///{path}")
    try:
        with eng.connect() as c:
            assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert c.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        done.join()
        writer.close()
        eng.dispose()
