"""Loading a generated portfolio: blocks, all-or-nothing, what --reset wipes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import func, select

from riskdesk.demo.generator import generate, generate_parts
from riskdesk.demo.load import business_tables, load_portfolio
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer, Invoice, Order, PaymentAllocation


def test_parts_continue_ids_and_keep_references_consistent():
    p = generate("retailer", 130, seed=4, block_size=50)
    f = {k: t.to_pandas() for k, t in p.tables.items()}
    for name in ("customers", "orders", "invoices", "payments", "payment_allocations"):
        ids = f[name]["id"]
        assert ids.is_unique and ids.min() == 1 and ids.max() == len(ids), name
    customers = set(f["customers"]["id"])
    assert set(f["orders"]["customer_id"]) <= customers
    assert set(f["customers"]["parent_id"].dropna().astype(int)) <= customers
    pay_cust = f["payments"].set_index("id")["customer_id"]
    inv_cust = f["invoices"].set_index("id")["customer_id"]
    a = f["payment_allocations"]
    assert (
        pay_cust.loc[a["payment_id"]].to_numpy() == inv_cust.loc[a["invoice_id"]].to_numpy()
    ).all()
    # a group never spans two blocks' codes: each code has exactly one head
    members = f["customers"].dropna(subset=["group_code"])
    heads = members[members["parent_id"].isna()].groupby("group_code").size()
    assert (heads == 1).all()
    # market data comes once
    assert len(f["market_indicators"]) == len(
        generate("retailer", 10, seed=4).tables["market_indicators"]
    )
    parts = list(generate_parts("retailer", 130, seed=4, block_size=50))
    assert [q.tables["customers"].num_rows for q in parts] == [50, 50, 30]


def test_a_broken_portfolio_loads_nothing(engine):
    p = generate("manufacturer", 40, seed=2)
    orders = p.tables["orders"]
    bad = pc.if_else(
        pa.array([i == 0 for i in range(orders.num_rows)]), 9_999, orders.column("customer_id")
    )
    p.tables["orders"] = orders.set_column(
        orders.schema.get_field_index("customer_id"), "customer_id", bad
    )
    with pytest.raises(Exception):  # noqa: B017 - foreign key violation (driver-specific)
        load_portfolio(engine, p)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


def test_load_then_reset_replaces_everything(engine):
    first = generate("manufacturer", 30, seed=1)
    counts = load_portfolio(engine, first)
    assert counts["customers"] == 30
    second = generate("manufacturer", 20, seed=2, block_size=8)
    load_portfolio(engine, generate_parts("manufacturer", 20, seed=2, block_size=8), reset=True)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 20
        assert s.scalar(select(func.count()).select_from(Order)) == second.tables["orders"].num_rows
        assert (
            s.scalar(select(func.count()).select_from(Invoice))
            == second.tables["invoices"].num_rows
        )
        assert (
            s.scalar(select(func.count()).select_from(PaymentAllocation))
            == second.tables["payment_allocations"].num_rows
        )
    with engine.connect() as conn:
        names = business_tables(conn)
    assert {"customers", "invoices", "payment_allocations", "demo_truth", "fx_rates"} <= set(names)
    assert not {"users", "audit_log", "api_tokens", "app_settings", "alembic_version"} & set(names)
    assert names.index("payment_allocations") < names.index("payments") < names.index("customers")


def test_indexes_are_back_after_a_load(engine):
    from sqlalchemy import inspect

    def index_names() -> set[str]:
        insp = inspect(engine)
        return {
            ix["name"] or ""
            for table in ("orders", "invoices", "payments", "external_signals")
            for ix in insp.get_indexes(table)
        }

    before = index_names()
    assert "ix_orders_customer_date" in before
    load_portfolio(engine, generate("manufacturer", 25, seed=9))
    assert index_names() == before
