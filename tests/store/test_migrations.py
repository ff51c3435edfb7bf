import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from riskdesk.store.db import alembic_config, is_current
from riskdesk.store.models import Base


def test_migrations_create_exactly_the_tables_and_columns_of_the_models(engine: Engine) -> None:
    assert is_current(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    structural = [
        d
        for d in diff
        if isinstance(d, tuple)
        and d[0] in ("add_table", "remove_table", "add_column", "remove_column")
    ]
    assert structural == []


def _index_names(engine: Engine, table: str) -> set[str]:
    return {ix["name"] for ix in inspect(engine).get_indexes(table) if ix["name"]}


def test_migrations_create_the_indexes_of_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    assert [d for d in diff if isinstance(d, tuple) and d[0] in ("add_index", "remove_index")] == []


def _migrate(engine: Engine, revision: str) -> None:
    """Downgrade (or, with "heads", upgrade) the test database to ``revision``."""
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        if revision == "heads":
            command.upgrade(cfg, "heads")
        else:
            command.downgrade(cfg, revision)
    engine.dispose()


def test_lean_monitor_indexes_migration_is_reversible(engine: Engine) -> None:
    dropped = {
        "monitor_events": {"ix_monitor_events_customer_ref"},
        "monitor_alerts": {"ix_monitor_alerts_customer_ref", "ix_monitor_alerts_rule_id"},
    }
    try:
        _migrate(engine, "0003_control_open_docs")
        for table, names in dropped.items():
            assert names <= _index_names(engine, table)
    finally:
        _migrate(engine, "heads")
    assert is_current(engine)
    for table, names in dropped.items():
        assert not names & _index_names(engine, table)
    # what the intake's open-alert read still has: an index led by customer_ref
    assert "ix_monitor_alerts_open" in _index_names(engine, "monitor_alerts")


def test_state_json_migration_is_reversible(engine: Engine) -> None:
    """On PostgreSQL the state's book and features and the events' bodies are ``text`` (0006;
    ``json`` after a downgrade to 0005, ``jsonb`` before 0005), with the stored documents kept
    and read back alike; SQLite keeps its JSON text."""
    from sqlalchemy import text

    from riskdesk.store import monitor_repo
    from riskdesk.store.db import session_scope

    def kinds() -> dict[str, str]:
        insp = inspect(engine)
        cols = insp.get_columns("monitor_customer_state") + insp.get_columns("monitor_events")
        wanted = ("book", "features", "body")
        return {c["name"]: str(c["type"]).lower() for c in cols if c["name"] in wanted}

    ev = {
        "event_id": "j1",
        "type": "invoice.issued",
        "event_time": "2026-01-05T10:00:00Z",
        "customer_id": "J",
        "payload": {
            "invoice_id": "I1",
            "issue_date": "2026-01-05",
            "due_date": "2026-02-04",
            "amount": "12.50",
            "currency": "EUR",
        },
    }
    with session_scope(engine) as s:
        monitor_repo.ingest(s, [ev])
        before = monitor_repo.customer_state(s, "J")
    pg = engine.dialect.name == "postgresql"
    if pg:
        assert kinds() == {"book": "text", "features": "text", "body": "text"}
    else:
        assert kinds() == {"book": "json", "features": "json", "body": "json"}  # JSON text
    for older, kind in (
        ("0005_monitor_state_json", "json"),
        ("0004_monitor_lean_indexes", "jsonb"),
    ):
        try:
            _migrate(engine, older)
            if pg:
                assert kinds() == {"book": kind, "features": kind, "body": kind}
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM monitor_customer_state")).scalar()
                assert n == 1
                assert conn.execute(text("SELECT count(*) FROM monitor_events")).scalar() == 1
        finally:
            _migrate(engine, "heads")
        assert is_current(engine)
        monitor_repo.clear_book_cache()
        with session_scope(engine) as s:
            assert monitor_repo.customer_state(s, "J") == before
        if pg:
            assert kinds() == {"book": "text", "features": "text", "body": "text"}


def test_the_state_book_is_compressed_with_lz4_on_postgresql(engine: Engine) -> None:
    """The intake rewrites a book with every event; PostgreSQL compresses books of a few KB
    (a customer with a history), and its default compression (pglz) cost more than half of the
    server's CPU per event. Where the server has LZ4 the book column uses it (0007), and a
    downgrade gives it back the default; the stored book reads back alike."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores the book uncompressed")
    from sqlalchemy import text

    from riskdesk.store import monitor_repo
    from riskdesk.store.db import session_scope

    def compression() -> str:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text(
                        "SELECT attcompression FROM pg_attribute WHERE attrelid = "
                        "'monitor_customer_state'::regclass AND attname = 'book'"
                    )
                ).scalar()
            )

    with engine.connect() as conn:
        lz4 = conn.execute(
            text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'"
            )
        ).scalar()
    # a book of 40 open invoices (about 3 KB: compressed when stored)
    events = [
        {
            "event_id": f"z{i}",
            "type": "invoice.issued",
            "event_time": "2026-01-05T10:00:00Z",
            "customer_id": "Z",
            "payload": {
                "invoice_id": f"INV-2026-{i:05d}",
                "issue_date": "2026-01-05",
                "due_date": "2026-02-04",
                "amount": f"{1000 + i}.50",
                "currency": "EUR",
            },
        }
        for i in range(40)
    ]
    with session_scope(engine) as s:
        assert monitor_repo.ingest(s, events).accepted == 40
        before = monitor_repo.customer_state(s, "Z")
    assert compression() == ("l" if lz4 else "")
    if lz4:
        with engine.connect() as conn:
            method = conn.execute(
                text("SELECT pg_column_compression(book) FROM monitor_customer_state")
            ).scalar()
        assert method == "lz4"
    try:
        _migrate(engine, "0006_monitor_docs_text")
        assert compression() == ""
    finally:
        _migrate(engine, "heads")
    assert is_current(engine)
    monitor_repo.clear_book_cache()
    with session_scope(engine) as s:
        assert monitor_repo.customer_state(s, "Z") == before


def test_the_paid_column_migration_puts_the_settled_invoices_back_on_downgrade(
    engine: Engine,
) -> None:
    """0008 keeps a book's settled invoices in a column of their own; a downgrade puts them
    back into every book, and after the upgrade the intake reads those books whole."""
    import orjson
    from sqlalchemy import text

    from riskdesk.store import monitor_repo
    from riskdesk.store.db import session_scope

    def ev(eid: str, kind: str, day: str, **payload: object) -> dict[str, object]:
        return {
            "event_id": eid,
            "type": kind,
            "event_time": f"{day}T10:00:00Z",
            "customer_id": "P",
            "payload": payload,
        }

    events = [
        ev("m1", "invoice.issued", "2026-01-05", invoice_id="I1", issue_date="2026-01-05",
           due_date="2026-02-04", amount="80.00", currency="EUR"),
        ev("m2", "payment.received", "2026-01-20", payment_id="P1", payment_date="2026-01-20",
           amount="80.00", currency="EUR", allocations=[{"invoice_id": "I1", "amount": "80.00"}]),
    ]  # fmt: skip
    with session_scope(engine) as s:
        assert monitor_repo.ingest(s, events).accepted == 2
        before = monitor_repo.customer_state(s, "P")
    try:
        _migrate(engine, "0007_monitor_book_lz4")
        with engine.connect() as conn:
            book = conn.execute(text("SELECT book FROM monitor_customer_state")).scalar()
        assert set(orjson.loads(book)["paid"]) == {"I1"}
    finally:
        _migrate(engine, "heads")
    assert is_current(engine)
    monitor_repo.clear_book_cache()
    with session_scope(engine) as s:
        assert monitor_repo.customer_state(s, "P") == before
        res = monitor_repo.ingest(s, [ev("m3", "bureau_score.changed", "2026-01-21", score=650)])
        assert res.accepted == 1
    with engine.connect() as conn:
        book, paid = conn.execute(text("SELECT book, paid FROM monitor_customer_state")).one()
    assert "paid" not in orjson.loads(book) and set(orjson.loads(paid)) == {"I1"}
