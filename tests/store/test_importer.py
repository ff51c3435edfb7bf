"""The database side of import: references, idempotency, allocations, all-or-nothing."""

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from riskdesk.connectors.import_run import run_import
from riskdesk.connectors.import_schema import IMPORT_ORDER
from riskdesk.store.models import (
    AuditEntry,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(model)) or 0)


CUSTOMERS = "external_id,name\nC1,Alpha\nC2,Beta\n"
INVOICES = (
    "external_id,customer_id,issue_date,due_date,amount,currency\n"
    "I1,C1,2024-01-10,2024-02-09,1000.00,EUR\n"
    "I2,C1,2024-01-20,2024-02-19,500.00,EUR\n"
    "I3,C2,2024-01-20,2024-02-19,700.00,EUR\n"
)


def _base(engine: Engine, tmp_path: Path) -> None:
    assert run_import(engine, "customers", _csv(tmp_path, "c.csv", CUSTOMERS)).ok
    assert run_import(engine, "invoices", _csv(tmp_path, "i.csv", INVOICES)).ok


def test_all_example_templates_import_in_order_and_twice_changes_nothing(engine: Engine) -> None:
    first = {k: run_import(engine, k, EXAMPLES / f"{k}.csv", batch_size=2) for k in IMPORT_ORDER}
    for kind, res in first.items():
        assert res.ok, (kind, res.errors)
        assert res.inserted == res.rows > 0 and res.updated == res.unchanged == 0
    second = {k: run_import(engine, k, EXAMPLES / f"{k}.csv") for k in IMPORT_ORDER}
    for res in second.values():
        assert res.ok and res.inserted == res.updated == 0 and res.unchanged == res.rows
    with engine.connect() as c:
        actions = list(c.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        parent = c.scalar(
            select(Customer.external_id).where(
                Customer.id
                == select(Customer.parent_id)
                .where(Customer.external_id == "C001")
                .scalar_subquery()
            )
        )
    assert actions == [f"import.{k}" for k in IMPORT_ORDER] * 2
    assert parent == "C000"


def test_a_changed_row_is_updated_and_the_rest_left_unchanged(
    engine: Engine, tmp_path: Path
) -> None:
    _base(engine, tmp_path)
    changed = INVOICES.replace("500.00,EUR", "450.00,EUR")
    res = run_import(engine, "invoices", _csv(tmp_path, "i2.csv", changed))
    assert (res.inserted, res.updated, res.unchanged) == (0, 1, 2)
    with engine.connect() as c:
        amount = c.scalar(select(Invoice.amount).where(Invoice.external_id == "I2"))
    assert amount == Decimal("450.00")


def test_columns_missing_from_the_file_are_left_as_they_are(engine: Engine, tmp_path: Path) -> None:
    full = "external_id,name,industry\nC1,Alpha,retail\n"
    assert run_import(engine, "customers", _csv(tmp_path, "a.csv", full)).inserted == 1
    res = run_import(
        engine, "customers", _csv(tmp_path, "b.csv", "external_id,name\nC1,Alpha AG\n")
    )
    assert res.updated == 1
    with engine.connect() as c:
        row = c.execute(select(Customer.name, Customer.industry)).one()
    assert tuple(row) == ("Alpha AG", "retail")


def test_unknown_customer_reference_rejects_the_file(engine: Engine, tmp_path: Path) -> None:
    assert run_import(engine, "customers", _csv(tmp_path, "c.csv", CUSTOMERS)).ok
    bad = INVOICES + "I4,NOPE,2024-01-20,2024-02-19,5.00,EUR\n"
    res = run_import(engine, "invoices", _csv(tmp_path, "i.csv", bad), batch_size=2)
    assert not res.ok
    assert [(e.line, e.column, e.value) for e in res.errors] == [(5, "customer_id", "NOPE")]
    assert res.errors[0].reason_zh == "未知的客户 'NOPE'：数据库中没有（请先导入客户）"
    assert _count(engine, Invoice) == 0


def test_parent_may_come_later_in_the_same_file_but_must_exist(
    engine: Engine, tmp_path: Path
) -> None:
    text = "external_id,name,parent_id\nK1,Kid,P1\nK2,Kid 2,P1\nP1,Parent,\n"
    res = run_import(engine, "customers", _csv(tmp_path, "c.csv", text), batch_size=1)
    assert res.ok and res.inserted == 3
    with engine.connect() as c:
        pid = c.scalar(select(Customer.id).where(Customer.external_id == "P1"))
        kids = c.scalars(select(Customer.external_id).where(Customer.parent_id == pid)).all()
    assert sorted(kids) == ["K1", "K2"]
    orphan = "external_id,name,parent_id\nK3,Kid 3,GHOST\n"
    res = run_import(engine, "customers", _csv(tmp_path, "o.csv", orphan))
    assert [(e.line, e.column) for e in res.errors] == [(2, "parent_id")]


def test_split_and_partial_payments_are_stored_as_allocations(
    engine: Engine, tmp_path: Path
) -> None:
    _base(engine, tmp_path)
    payments = (
        "external_id,customer_id,payment_date,amount,currency,invoice_id,allocated_amount\n"
        "P1,C1,2024-02-01,1200.00,EUR,,\n"
        "P2,C2,2024-02-01,300.00,EUR,I3,\n"
    )
    assert run_import(engine, "payments", _csv(tmp_path, "p.csv", payments)).inserted == 2
    allocs = "payment_id,invoice_id,amount\nP1,I1,1000.00\nP1,I2,200.00\n"
    res = run_import(engine, "allocations", _csv(tmp_path, "a.csv", allocs))
    assert (res.inserted, res.updated, res.unchanged) == (2, 0, 0)
    with engine.connect() as c:
        rows = c.execute(
            select(Payment.external_id, Invoice.external_id, PaymentAllocation.amount)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .join(Invoice, Invoice.id == PaymentAllocation.invoice_id)
            .order_by(Payment.external_id, Invoice.external_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("P1", "I1", Decimal("1000.00")),
        ("P1", "I2", Decimal("200.00")),
        ("P2", "I3", Decimal("300.00")),  # partial: invoice I3 is 700.00
    ]
    changed = allocs.replace("200.00", "150.00")
    res = run_import(engine, "allocations", _csv(tmp_path, "a2.csv", changed))
    assert (res.inserted, res.updated, res.unchanged) == (0, 1, 1)


def test_allocations_may_not_exceed_the_payment_or_cross_customers(
    engine: Engine, tmp_path: Path
) -> None:
    _base(engine, tmp_path)
    payments = "external_id,customer_id,payment_date,amount,currency\nP1,C1,2024-02-01,600.00,EUR\n"
    assert run_import(engine, "payments", _csv(tmp_path, "p.csv", payments)).ok
    over = "payment_id,invoice_id,amount\nP1,I1,400.00\nP1,I2,300.00\n"
    res = run_import(engine, "allocations", _csv(tmp_path, "a.csv", over))
    assert not res.ok and [(e.line, e.column) for e in res.errors] == [(3, "amount")]
    assert res.errors[0].reason_zh == "付款 'P1' 的核销合计 700.00，超过其金额 600.00"
    cross = "payment_id,invoice_id,amount\nP1,I3,100.00\n"
    res = run_import(engine, "allocations", _csv(tmp_path, "b.csv", cross))
    assert not res.ok and [(e.line, e.column) for e in res.errors] == [(2, "invoice_id")]
    assert res.errors[0].reason_zh == "与付款 'P1' 不属于同一客户"
    assert _count(engine, PaymentAllocation) == 0


def test_dry_run_reports_counts_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = _csv(tmp_path, "c.csv", CUSTOMERS)
    res = run_import(engine, "customers", path, dry_run=True)
    assert res.ok and res.dry_run and res.inserted == 2
    assert _count(engine, Customer) == 0
    assert _count(engine, AuditEntry) == 0
    run_import(engine, "customers", path)
    res = run_import(
        engine, "customers", _csv(tmp_path, "d.csv", CUSTOMERS + "C3,Gamma\n"), dry_run=True
    )
    assert (res.inserted, res.unchanged) == (1, 2)
    assert _count(engine, Customer) == 2


def test_every_bad_row_is_counted_even_beyond_the_shown_list(
    engine: Engine, tmp_path: Path
) -> None:
    text = "external_id,name,employees\n" + "".join(f"C{i},n,many\n" for i in range(30))
    res = run_import(engine, "customers", _csv(tmp_path, "c.csv", text), batch_size=7, max_errors=5)
    assert res.error_count == 30 and len(res.errors) == 5
    assert _count(engine, Customer) == 0


@pytest.mark.parametrize("key_kind", ["fx_rates", "market_indicators"])
def test_composite_keys_are_idempotent(engine: Engine, tmp_path: Path, key_kind: str) -> None:
    path = Path(EXAMPLES / f"{key_kind}.csv")
    assert run_import(engine, key_kind, path).inserted == 3
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",2"
    res = run_import(engine, key_kind, _csv(tmp_path, "x.csv", "\n".join(lines) + "\n"))
    assert (res.inserted, res.updated, res.unchanged) == (0, 1, 2)


def test_parent_links_may_not_form_a_cycle(engine: Engine, tmp_path: Path) -> None:
    ok = "external_id,name,parent_id\nA,A,\nB,B,A\n"
    assert run_import(engine, "customers", _csv(tmp_path, "ok.csv", ok)).ok
    cyclic = "external_id,name,parent_id\nA,A,B\n"
    res = run_import(engine, "customers", _csv(tmp_path, "cyc.csv", cyclic))
    assert not res.ok
    assert [(e.line, e.column) for e in res.errors] == [(2, "parent_id")]
    assert "cycle" in res.errors[0].reason
    assert res.errors[0].reason_zh.startswith("上级关系形成循环：")
    with engine.connect() as c:
        assert c.scalar(select(Customer.parent_id).where(Customer.external_id == "A")) is None


def test_region_and_private_use_codes_are_not_countries(engine: Engine, tmp_path: Path) -> None:
    text = "external_id,name,country\nC1,Alpha,DE\nC2,Beta,EU\nC3,Gamma,ZZ\nC4,Kosovo Trade,XK\n"
    res = run_import(engine, "customers", _csv(tmp_path, "c.csv", text))
    assert not res.ok
    assert [(e.line, e.column, e.value) for e in res.errors] == [
        (3, "country", "EU"),
        (4, "country", "ZZ"),
    ]
    assert "European Union" in res.errors[0].reason and "Unknown Region" in res.errors[1].reason
    assert _count(engine, Customer) == 0


def test_an_import_on_postgresql_refreshes_the_tables_planner_statistics(
    engine: Engine, tmp_path: Path
) -> None:
    """After a committed import PostgreSQL knows the table's new size (ANALYZE), so plans
    prepared by long-lived processes are made again for it; SQLite has nothing to do."""
    from sqlalchemy import text

    rows = "".join(f"K{i:04d},Kunde {i},EUR\n" for i in range(300))
    res = run_import(
        engine, "customers", _csv(tmp_path, "k.csv", "external_id,name,currency\n" + rows)
    )
    assert res.ok and res.inserted == 300
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as c:
        analysed, tuples = c.execute(
            text(
                "SELECT s.last_analyze, c.reltuples FROM pg_stat_user_tables s "
                "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'customers'"
            )
        ).one()
    assert analysed is not None and tuples >= 300


def test_a_cell_with_a_nul_character_is_a_row_error_on_every_database(
    engine: Engine, tmp_path: Path
) -> None:
    """PostgreSQL cannot store a NUL character in text (the file failed with a database error
    naming no row), SQLite stored it: either way the cell is now refused with its line and
    column, and nothing of the file is written."""
    text = "external_id,name,country\nC1,Alpha,DE\nC2,Be\x00ta,DE\nC3,Gamma,D\x00E\n"
    res = run_import(engine, "customers", _csv(tmp_path, "c.csv", text))
    assert not res.ok
    assert [(e.line, e.column, e.value) for e in res.errors] == [
        (3, "name", "Be\x00ta"),
        (4, "country", "D\x00E"),
    ]
    assert all("NUL character" in e.reason for e in res.errors)
    assert _count(engine, Customer) == 0
