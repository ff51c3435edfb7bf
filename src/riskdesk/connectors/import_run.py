"""Run one file import end to end: read in chunks, validate, upsert, all in one transaction."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from riskdesk.config import get_settings
from riskdesk.connectors.files import ImportFile
from riskdesk.connectors.import_schema import Chunk
from riskdesk.store.importer import ImportResult, import_chunks


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk import (the CLI uses this).

    Each chunk creates thousands of short-lived row objects; the collector would otherwise
    walk the whole heap over and over (about 20 % of the CPU time of a large import).
    Reference counting still frees everything; the collector runs once at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


Progress = Callable[[int, int], None]
"""Called after each chunk with (position, total) in the source's unit (bytes or rows)."""


def run_import(
    engine: Engine,
    kind: str,
    path: str | Path,
    *,
    dry_run: bool = False,
    actor: str = "cli",
    batch_size: int | None = None,
    progress: Progress | None = None,
    max_errors: int = 1000,
    on_open: Callable[[ImportFile], None] | None = None,
) -> ImportResult:
    """Import ``path`` as ``kind``; nothing is written unless every row is valid.

    Raises :class:`~riskdesk.connectors.files.FileFormatError` for a file that cannot be read
    at all, ``FileNotFoundError`` for a missing one, ``KeyError`` for an unknown kind.
    """
    size = batch_size or get_settings().import_batch_size
    if size < 1:
        raise ValueError("batch size must be at least 1")
    with ImportFile(path, kind) as f:
        if on_open is not None:
            on_open(f)
        name = f.path.name
        if f.header_errors:
            return ImportResult(
                kind=f.kind.name,
                file=name,
                dry_run=dry_run,
                error_count=len(f.header_errors),
                errors=f.header_errors[:max_errors],
            )

        def chunks() -> Iterator[Chunk]:
            for chunk in f.chunks(size):
                yield chunk
                if progress is not None:
                    progress(f.position(), f.total)

        with engine.connect() as conn:
            restore = _enlarge_sqlite_cache(conn)
            try:
                with Session(bind=conn, expire_on_commit=False) as session:
                    try:
                        result = import_chunks(
                            session,
                            f.kind,
                            f.layout.present,
                            chunks(),
                            file_name=name,
                            actor=actor,
                            dry_run=dry_run,
                            max_errors=max_errors,
                        )
                        if result.ok and not dry_run:
                            session.commit()
                            _analyze(conn, f.kind.table, result)
                        else:
                            session.rollback()
                    except BaseException:
                        session.rollback()
                        raise
            finally:
                restore()
    return result


def _analyze(conn: Connection, table: str, result: ImportResult) -> None:
    """On PostgreSQL, refresh the planner's statistics of the table an import changed.
    Autovacuum does it a while later; until then statements prepared by long-lived processes
    (the event intake's read of a batch's customers by ``external_id = ANY(...)``) keep a
    generic plan made for the old size, a scan of the whole table after a large first import."""
    if conn.dialect.name != "postgresql" or not (result.inserted or result.updated):
        return
    conn.exec_driver_sql(f'ANALYZE "{table}"')
    conn.commit()


SQLITE_IMPORT_CACHE_KIB = 256 * 1024


def _enlarge_sqlite_cache(conn: Connection) -> Callable[[], None]:
    """Give SQLite a large page cache for the import (index inserts stay in memory).

    Returns the function that restores the connection's previous setting.
    """
    if conn.dialect.name != "sqlite":
        return lambda: None
    previous = int(conn.exec_driver_sql("PRAGMA cache_size").scalar() or -2000)
    conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
    conn.commit()

    def restore() -> None:
        if not conn.closed and not conn.invalidated:
            conn.exec_driver_sql(f"PRAGMA cache_size={previous}")
            conn.commit()

    return restore
