"""Engines, sessions and migrations. SQLite (default, one file) and PostgreSQL behave alike."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


WAL_AUTOCHECKPOINT = 50_000
"""SQLite WAL pages after which a committing connection checkpoints itself (SQLite's default:
1000). The WAL is normally checkpointed by the process's background checkpointer (see
:class:`_Checkpointer`) long before that; this is the fallback when none runs."""

CHECKPOINT_INTERVAL = 1.0
"""Seconds between the background checkpoints of an SQLite database that had commits."""


def _wal(cur: Any) -> None:
    """Put the database in WAL mode (kept in the file: a database already in it is left
    alone). Switching takes an exclusive lock, and SQLite answers "database is locked" at once,
    busy timeout or not, while another connection holds a lock: processes starting together on
    a new database (``serve --workers N``, two workers) failed so while one of them created the
    tables. The switch is tried again for up to 30 s."""
    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + 30.0
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    _wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    # a committing connection checkpoints only as a fallback: the copy of the WAL into the
    # database and its fsync (tens of ms on a busy disk) are done by the background
    # checkpointer, off the path of the transaction that happened to cross the threshold (an
    # intake batch that did it took ≈ 25 ms longer: p99 49-54 ms at batch 100; 37-42 with the
    # copy in the background; 27-29 with no checkpoint at all during the run)
    cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
    cur.close()


class _Checkpointer:
    """Checkpoints the WAL of the SQLite databases this process commits to, from one daemon
    thread: :data:`CHECKPOINT_INTERVAL` seconds after a commit, ``PRAGMA
    wal_checkpoint(PASSIVE)`` on a connection of its own (it copies what no reader still
    needs and never blocks readers or writers). The sqlite3 module releases the GIL while
    SQLite copies and syncs, so the process's own work goes on meanwhile. The thread waits
    without waking while nothing was committed."""

    _lock = threading.Lock()
    _dirty: set[str] = set()
    _wake = threading.Event()
    _thread: threading.Thread | None = None
    runs: dict[str, int] = {}
    """Checkpoints done per database file (for tests and diagnostics)."""

    @classmethod
    def committed(cls, path: str) -> None:
        if path not in cls._dirty or cls._thread is None:
            with cls._lock:
                cls._dirty.add(path)
                if cls._thread is None or not cls._thread.is_alive():
                    cls._thread = threading.Thread(
                        target=cls._run, name="sqlite-checkpoint", daemon=True
                    )
                    cls._thread.start()
        if not cls._wake.is_set():
            cls._wake.set()

    @classmethod
    def _run(cls) -> None:
        while True:
            cls._wake.wait()
            time.sleep(CHECKPOINT_INTERVAL)  # gather the commits of the interval
            with cls._lock:
                cls._wake.clear()
                todo, cls._dirty = cls._dirty, set()
            for path in todo:
                try:  # read-write, never create: the file may be gone (a test's tmp dir)
                    conn = sqlite3.connect(
                        f"file:{quote(path)}?mode=rw", uri=True, timeout=0, check_same_thread=False
                    )
                except sqlite3.Error:
                    continue
                try:
                    cls._checkpoint(conn, path)
                    cls.runs[path] = cls.runs.get(path, 0) + 1
                except sqlite3.Error:
                    pass  # busy or gone: the next round (or the fallback) does it
                finally:
                    conn.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection, path: str) -> None:
        # the copy without any lock. Under a steady load writers append meanwhile and
        # readers keep snapshots, so the WAL is seldom wholly copied and cannot start over
        # from the top: it would keep growing. Once it passes WAL_RESTART_BYTES, the
        # checkpoint is finished holding the intake processes' writer turn (see
        # monitor_repo) and waits briefly for readers (RESTART), so the next writer starts
        # the WAL over. That pause comes once per WAL_RESTART_BYTES written (intake writers
        # wait for it, and it waits up to 200 ms for a reader's snapshot to end)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        try:
            size = os.path.getsize(path + "-wal")
        except OSError:
            return
        if size < WAL_RESTART_BYTES:
            return
        fd = take_file_lock(path + INTAKE_LOCK_SUFFIX, TURN_WAIT_CHECKPOINT)
        try:
            conn.execute("PRAGMA busy_timeout=200")
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            if fd is not None:
                os.close(fd)


WAL_RESTART_BYTES = 64 * 1024 * 1024
"""WAL size from which the checkpointer makes it start over (see :class:`_Checkpointer`)."""

INTAKE_LOCK_SUFFIX = ".intake-lock"
"""Next to an SQLite database file, the advisory lock whose holder is the one intake writer
of the moment (taken by :mod:`riskdesk.store.monitor_repo` for a batch's write phase and by
the checkpointer for the end of a checkpoint)."""

TURN_WAIT_CHECKPOINT = 2.0
"""Seconds the checkpointer waits for the writer turn before it finishes without it."""


def take_file_lock(path: str, wait: float) -> int | None:
    """An exclusive ``flock`` on ``path`` (created if missing), polled every 0.5 ms for at
    most ``wait`` seconds: the open descriptor (closing it releases the lock), or None when
    the lock could not be had in time or advisory locks are not available here."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except (ImportError, OSError):
        return None
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.0005)
        except OSError:
            os.close(fd)
            return None


def sqlite_file(url: Any) -> str | None:
    """The absolute path of an SQLite database file (None for another database, an
    in-memory one or a ``file:`` URI)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    db = u.database
    if u.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return os.path.abspath(db)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        if ":memory:" not in url and url not in ("sqlite://", "sqlite+pysqlite://"):
            # enough connections for the web server's worker threads (40), so a burst queues
            # on SQLite's write lock instead of failing on the pool
            kwargs.setdefault("pool_size", 20)
            kwargs.setdefault("max_overflow", 30)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        path = sqlite_file(url)
        if path is not None:
            event.listen(engine, "commit", lambda _conn: _Checkpointer.committed(path))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 30)
    return create_engine(url, **kwargs)


@lru_cache(maxsize=16)
def engine_for(url: str) -> Engine:
    """A process-wide engine per URL."""
    return make_engine(url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = Session(bind=engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


MIGRATE_LOCK = 0x7269736B6D696772
"""PostgreSQL advisory lock key (``"riskmigr"``) that serialises :func:`migrate` runs."""


def migrate(url: str, engine: Engine | None = None) -> None:
    """Create or upgrade the schema to the newest revision (all heads).

    Runs are serialised, so processes starting together on a new database (the workers of
    ``serve --workers N``, two ``riskdesk worker`` processes) do not both create the tables:
    the first to take the database's lock migrates, the others wait for it and then find the
    schema current. PostgreSQL: a transaction-level advisory lock (its DDL is transactional,
    the lock is released with the commit). SQLite: the migration runs in one ``BEGIN
    IMMEDIATE`` transaction (the write lock taken before Alembic reads the version; waiting
    is bounded by the busy timeout, 30 s)."""
    cfg = alembic_config(url)
    eng = engine or engine_for(normalise_url(url))
    with eng.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
        elif conn.dialect.name == "sqlite":
            # pysqlite begins a transaction itself only before DML: Alembic's DDL would run
            # in autocommit mode, one statement at a time
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def is_current(engine: Engine) -> bool:
    """True when the database is at every migration head."""
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(script.get_heads())
