"""Write a generated portfolio into the database (bulk), wipe business tables, demo users."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, func, select, text
from sqlalchemy.orm import Session

from riskdesk.demo.generator import LOAD_ORDER, Portfolio
from riskdesk.store.audit import record
from riskdesk.store.bulk import bulk_load, create_indexes, drop_secondary_indexes
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer, User
from riskdesk.store.users import add_user, get_user

DEMO_USER = "demo"
DEMO_PASSWORD = "riskdesk-demo"  # noqa: S105 - the documented password of the demo login
ACTOR = "riskdesk demo"
_ROOTS = ("customers", "market_indicators", "fx_rates")


def customer_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Customer)) or 0)


def business_tables(conn: Connection) -> list[str]:
    """Customers, market data and every table that refers to them (directly or not).

    Listed children first, so deleting in this order never breaks a foreign key. Users, API
    tokens, the audit log, settings and tables unrelated to customers are not business tables.
    """
    meta = MetaData()
    meta.reflect(conn)
    wanted = {t for t in _ROOTS if t in meta.tables}
    grew = True
    while grew:
        grew = False
        for table in meta.tables.values():
            if table.name in wanted:
                continue
            if any(fk.column.table.name in wanted for fk in table.foreign_keys):
                wanted.add(table.name)
                grew = True
    return [t.name for t in reversed(meta.sorted_tables) if t.name in wanted]


def wipe(conn: Connection) -> list[str]:
    """Delete every row of the business tables (in the caller's transaction)."""
    names = business_tables(conn)
    if not names:
        return names
    if conn.dialect.name == "postgresql":
        conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY"))
    else:
        for name in names:
            conn.execute(text(f'DELETE FROM "{name}"'))
    return names


def load_portfolio(
    engine: Engine,
    portfolio: Portfolio | Iterable[Portfolio],
    *,
    reset: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write a portfolio (or its parts, one after the other) in one transaction.

    Returns rows per table. With ``reset`` the business tables are emptied first, in the same
    transaction, so a failure leaves the database as it was. Parts from
    :func:`riskdesk.demo.generator.generate_parts` are consumed one at a time, so memory
    stays bounded by one part. On SQLite the secondary indexes of the loaded tables are
    dropped for the load and built once at the end.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Per-row foreign key checks halve SQLite's insert rate; the whole load is checked
            # once with foreign_key_check before commit instead. (Outside a transaction.)
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                return _load(conn, portfolio, reset, progress, check_fks=sqlite)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _load(
    conn: Connection,
    portfolio: Portfolio | Iterable[Portfolio],
    reset: bool,
    progress: Callable[[str, int], None] | None,
    check_fks: bool,
) -> dict[str, int]:
    parts: Iterable[Portfolio] = [portfolio] if isinstance(portfolio, Portfolio) else portfolio
    counts: dict[str, int] = dict.fromkeys(LOAD_ORDER, 0)
    case, seed, as_of = "", 0, None
    wiped = wipe(conn) if reset else []
    indexes: list[str] = []
    for name in LOAD_ORDER:
        indexes += drop_secondary_indexes(conn, name)
    for part in parts:
        case, seed, as_of = part.case, part.seed, part.as_of
        for name in LOAD_ORDER:
            rows = bulk_load(conn, name, part.tables[name], rebuild_indexes=False)
            counts[name] += rows
            if progress is not None:
                progress(name, rows)
    create_indexes(conn, indexes)
    if conn.dialect.name == "postgresql":
        # Fresh statistics, so the planner uses the indexes even where autovacuum is off.
        for name in LOAD_ORDER:
            conn.exec_driver_sql(f'ANALYZE "{name}"')
    if check_fks:
        for name in LOAD_ORDER:
            bad = conn.exec_driver_sql(f'PRAGMA foreign_key_check("{name}")').first()
            if bad is not None:
                raise ValueError(f"{name}: row {bad[1]} refers to a missing {bad[2]} row")
    session = Session(bind=conn)
    if reset:
        record(
            session,
            actor=ACTOR,
            action="demo.reset",
            entity="database",
            after={"tables": wiped},
            reason="riskdesk demo --reset",
        )
    record(
        session,
        actor=ACTOR,
        action="demo.load",
        entity="portfolio",
        entity_id=case,
        after={"seed": seed, "as_of": as_of, "counts": counts},
        reason="synthetic demo portfolio",
    )
    session.flush()
    session.close()
    return counts


def ensure_demo_users(
    engine: Engine, owners: list[str], password: str = DEMO_PASSWORD
) -> dict[str, Any]:
    """The ``demo`` admin and one ``sales`` user per owner; existing users are left alone."""
    created: list[str] = []
    existing: list[str] = []
    shared_hash: str | None = None  # one argon2 hash for the shared demo password
    with session_scope(engine) as s:
        for name, role in [(DEMO_USER, "admin"), *((o, "sales") for o in owners)]:
            if get_user(s, name) is not None:
                existing.append(name)
                continue
            if shared_hash is None:
                user, _ = add_user(s, name, role, password, full_name=name, actor=ACTOR)
                shared_hash = user.password_hash
            else:
                user = User(username=name, role=role, full_name=name, password_hash=shared_hash)
                s.add(user)
                s.flush()
                record(
                    s,
                    actor=ACTOR,
                    action="user.add",
                    entity="user",
                    entity_id=user.id,
                    after={"username": name, "role": role},
                )
            created.append(name)
    return {
        "username": DEMO_USER,
        "password": password,
        "role": "admin",
        "sales_users": owners,
        "created": created,
        "existing": existing,
    }
