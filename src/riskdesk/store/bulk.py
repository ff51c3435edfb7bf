"""Fast bulk loading of a DataFrame or Arrow table into one of our tables.

``bulk_load(engine, "invoices", table)`` writes every row in large batches instead of one ORM
object at a time:

* **PostgreSQL**: the rows are written as CSV by Arrow's C++ writer and streamed through
  psycopg's ``COPY … FROM STDIN``; afterwards the table's id sequence is moved past the
  largest id (``setval``) so later ORM inserts do not collide with explicit ids.
* **SQLite**: the rows are converted column by column (Arrow casts, no per-value Python
  formatting) and written with ``executemany`` in one transaction.

Values are stored exactly as the ORM column types would store them (dates as ISO text and
booleans as 0/1 on SQLite, amounts rounded to cents, JSON as text), so the ORM reads bulk-loaded
rows back unchanged. Columns missing from the data that have a scalar or callable default in the
model (``created_at``, ``status`` …) get that default, evaluated once for the whole load.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import JSON, Boolean, Column, Connection, Date, Engine, Integer, Table, text

from riskdesk.store.models import Base
from riskdesk.store.types import Amount, Rate, UTCDateTime

CHUNK_ROWS = 200_000
SQLITE_CACHE_KIB = 512 * 1024  # page cache while loading (SQLite allocates it lazily)
REBUILD_INDEXES_ROWS = 200_000  # drop and rebuild secondary indexes for loads this big


class BulkLoadError(ValueError):
    """The data does not fit the table (unknown table or column, missing required column)."""


def _table(name: str) -> Table:
    table = Base.metadata.tables.get(name)
    if table is None:
        raise BulkLoadError(f"unknown table {name!r}")
    return table


def _to_arrow(data: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise BulkLoadError(f"expected a pandas DataFrame or an Arrow table, got {type(data).__name__}")


def _default_value(col: Column[Any]) -> Any:
    default = col.default
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    if getattr(default, "is_callable", False) and callable(arg):
        return arg(None)
    if getattr(default, "is_scalar", False):
        return arg
    return None


def _is_json(col: Column[Any]) -> bool:
    return isinstance(col.type, JSON)


def _constant(col: Column[Any], value: Any, n: int) -> pa.Array:
    if isinstance(col.type, UTCDateTime):
        return pa.repeat(pa.scalar(value, type=pa.timestamp("us", tz="UTC")), n)
    if _is_json(col):
        return pa.repeat(pa.scalar(json.dumps(value), type=pa.string()), n)
    return pa.repeat(pa.scalar(value), n)


def _normalise(col: Column[Any], arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Cast one column to the Arrow type that matches how the database stores it."""
    t = col.type
    if isinstance(t, UTCDateTime):
        if pa.types.is_timestamp(arr.type):
            if arr.type.tz is None:
                raise BulkLoadError(f"column {col.name!r}: naive timestamps are refused")
            return pc.cast(arr, pa.timestamp("us", tz="UTC"))
        if pa.types.is_date(arr.type):
            return pc.cast(pc.cast(arr, pa.timestamp("s")), pa.timestamp("us", tz="UTC"))
        raise BulkLoadError(f"column {col.name!r} needs timestamps, got {arr.type}")
    if isinstance(t, Date):
        if pa.types.is_timestamp(arr.type):
            return pc.cast(arr, pa.date32())
        if pa.types.is_date(arr.type):
            return pc.cast(arr, pa.date32())
        raise BulkLoadError(f"column {col.name!r} needs dates, got {arr.type}")
    if isinstance(t, Amount):
        return pc.round(pc.cast(arr, pa.float64()), 2)
    if isinstance(t, Rate):
        return pc.round(pc.cast(arr, pa.float64()), 8)
    if isinstance(t, Boolean):
        return pc.cast(arr, pa.bool_())
    if _is_json(col):
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return arr
        values = arr.to_pylist()
        return pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())
    if isinstance(t, Integer) and pa.types.is_floating(arr.type):
        return pc.cast(arr, pa.int64())
    return arr


def prepare(table_name: str, data: pd.DataFrame | pa.Table) -> tuple[Table, pa.Table]:
    """Check the data against the table and return it with database-ready Arrow types."""
    table = _table(table_name)
    tab = _to_arrow(data)
    unknown = [c for c in tab.column_names if c not in table.c]
    if unknown:
        raise BulkLoadError(f"table {table_name!r} has no column(s): {', '.join(unknown)}")
    n = tab.num_rows
    names: list[str] = []
    arrays: list[Any] = []
    for col in table.columns:
        if col.name in tab.column_names:
            arrays.append(_normalise(col, tab.column(col.name)))
        else:
            value = _default_value(col)
            if value is None:
                if not col.nullable and not (col.primary_key and col.autoincrement):
                    raise BulkLoadError(
                        f"table {table_name!r}: required column {col.name!r} is missing"
                    )
                continue
            arrays.append(_normalise(col, _constant(col, value, n)))
        names.append(col.name)
    return table, pa.table(dict(zip(names, arrays, strict=True)))


def _batches(tab: pa.Table, rows: int) -> Iterator[pa.Table]:
    for start in range(0, tab.num_rows, rows):
        yield tab.slice(start, rows)


def _sqlite_column(arr: pa.ChunkedArray | pa.Array) -> list[Any]:
    """One column as a Python list the sqlite3 driver accepts (numpy does the conversion)."""
    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        # format each distinct value once (timestamps are often one load-time constant)
        enc = pc.dictionary_encode(arr)
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        words = enc.dictionary
        if pa.types.is_timestamp(t):
            words = pc.strftime(pc.cast(words, pa.timestamp("us")), format="%Y-%m-%d %H:%M:%S")
        else:
            words = pc.cast(words, pa.string())
        arr = pc.take(words, enc.indices)
    elif pa.types.is_boolean(t):
        arr = pc.cast(arr, pa.int8())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count == 0:
        return list(arr.to_numpy(zero_copy_only=False).tolist())
    if pa.types.is_null(arr.type):
        return [None] * len(arr)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    filler: Any = "" if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else 0
    values = arr.fill_null(filler).to_numpy(zero_copy_only=False).astype(object)
    values[~valid] = None
    return list(values.tolist())


def drop_secondary_indexes(conn: Connection, table_name: str) -> list[str]:
    """Drop the table's plain indexes (not those of primary keys or unique constraints).

    Returns the DDL to recreate them with :func:`create_indexes`. A big load is faster without
    them: building each index once afterwards is cheaper than keeping it up to date row by row.
    SQLite and PostgreSQL; both drop and recreate inside the caller's transaction.
    """
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (table_name,),
        ).all()
    elif conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "JOIN pg_class c ON c.relname = i.indexname "
                "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname "
                "WHERE i.tablename = :t AND i.schemaname = current_schema() "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)"
            ),
            {"t": table_name},
        ).all()
    else:
        return []
    for name, _ in rows:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [str(ddl) for _, ddl in rows]


def create_indexes(conn: Connection, ddls: list[str]) -> None:
    """Recreate indexes dropped by :func:`drop_secondary_indexes`."""
    for ddl in ddls:
        conn.exec_driver_sql(ddl)


def _load_sqlite(
    conn: Connection, table: Table, tab: pa.Table, chunk_rows: int, rebuild: bool | None
) -> None:
    cols = ", ".join(f'"{c}"' for c in tab.column_names)
    marks = ", ".join("?" for _ in tab.column_names)
    sql = f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})'
    # a table may refer to itself (customers.parent_id): check foreign keys at commit
    conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size={-SQLITE_CACHE_KIB}")
    if rebuild is None:
        rebuild = tab.num_rows >= REBUILD_INDEXES_ROWS
    indexes = drop_secondary_indexes(conn, table.name) if rebuild else []
    cur = conn.connection.cursor()
    try:
        for batch in _batches(tab, chunk_rows):
            columns = [_sqlite_column(batch.column(i)) for i in range(batch.num_columns)]
            cur.executemany(sql, zip(*columns, strict=True))  # type: ignore[arg-type]
    finally:
        cur.close()
    create_indexes(conn, indexes)
    conn.exec_driver_sql(f"PRAGMA cache_size={int(cache or -2000)}")


def _load_postgresql(conn: Connection, table: Table, tab: pa.Table, chunk_rows: int) -> None:
    cols = ", ".join(f'"{c}"' for c in tab.column_names)
    options = pacsv.WriteOptions(include_header=False, batch_size=65_536)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv)') as copy:
            for batch in _batches(tab, chunk_rows):
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, options)
                copy.write(buf.getbuffer())
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and isinstance(pk[0].type, Integer):
        name = pk[0].name
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c), "
                f'COALESCE(MAX("{name}"), 1), MAX("{name}") IS NOT NULL) FROM "{table.name}"'
            ),
            {"t": table.name, "c": name},
        )


def bulk_load(
    target: Engine | Connection,
    table_name: str,
    data: pd.DataFrame | pa.Table,
    *,
    chunk_rows: int = CHUNK_ROWS,
    rebuild_indexes: bool | None = None,
) -> int:
    """Insert every row of ``data`` into ``table_name``; returns the number of rows.

    ``target`` is an engine (one transaction for this table) or a connection (the caller's
    transaction, so several tables can be loaded all-or-nothing). Column names must be the
    table's column names; explicit ids are kept. On SQLite, ``rebuild_indexes`` drops the
    table's secondary indexes for the load and rebuilds them after (default: when the load has
    ``REBUILD_INDEXES_ROWS`` rows or more); pass ``False`` when the caller manages them around
    several loads (:func:`drop_secondary_indexes`).
    """
    table, tab = prepare(table_name, data)
    if tab.num_rows == 0:
        return 0
    if isinstance(target, Engine):
        with target.begin() as conn:
            return bulk_load(
                conn, table_name, tab, chunk_rows=chunk_rows, rebuild_indexes=rebuild_indexes
            )
    conn = target
    if conn.dialect.name == "postgresql":
        _load_postgresql(conn, table, tab, chunk_rows)
    elif conn.dialect.name == "sqlite":
        _load_sqlite(conn, table, tab, chunk_rows, rebuild_indexes)
    else:  # pragma: no cover - other dialects: portable executemany through SQLAlchemy Core
        for batch in _batches(tab, chunk_rows):
            conn.execute(table.insert(), batch.to_pylist())
    return int(tab.num_rows)
