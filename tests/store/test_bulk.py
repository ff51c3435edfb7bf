"""Bulk loading: rows read back through the ORM exactly as if the ORM had written them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import select

from riskdesk.store.bulk import BulkLoadError, bulk_load
from riskdesk.store.db import session_scope
from riskdesk.store.models import Contract, Customer, Invoice


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "external_id": ["C1", "C2", "C3"],
            "name": ["Alpha GmbH", "Beta 有限公司", 'Gamma, "quoted" Inc.'],
            # 3's parent is 1; 1's parent is 3's sibling loaded later in the same batch
            "parent_id": pd.array([2, None, 1], dtype="Int64"),
            "group_code": ["G1", "G1", None],
            "currency": ["EUR", "CNY", "USD"],
            "revenue": [1234567.891, None, 0.1 + 0.2],
            "founded_on": pd.to_datetime(["1999-12-31", "2020-02-29", None]),
        }
    )


def test_loaded_rows_read_back_through_the_orm(engine):
    assert bulk_load(engine, "customers", _customers()) == 3
    with session_scope(engine) as s:
        rows = {c.id: c for c in s.scalars(select(Customer))}
    assert rows[1].name == "Alpha GmbH" and rows[1].parent_id == 2
    assert rows[2].name == "Beta 有限公司" and rows[2].parent_id is None
    assert rows[3].name == 'Gamma, "quoted" Inc.' and rows[3].group_code is None
    assert rows[1].revenue == Decimal("1234567.89")
    assert rows[2].revenue is None
    assert rows[3].revenue == Decimal("0.30")
    assert rows[1].founded_on == date(1999, 12, 31)
    assert rows[3].founded_on is None
    # defaults of the model fill the columns the data leaves out
    assert rows[1].status == "active"
    assert rows[1].created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - rows[1].created_at).total_seconds()) < 600


def test_json_booleans_and_arrow_input(engine):
    bulk_load(engine, "customers", _customers())
    contracts = pa.table(
        {
            "id": [10, 11],
            "external_id": ["K10", "K11"],
            "customer_id": [1, 2],
            "start_date": pa.array([date(2024, 1, 1), date(2024, 6, 30)]),
            "payment_terms_days": [30, 60],
            "clauses": ['["guarantee", "minimum_volume"]', "[]"],
        }
    )
    bulk_load(engine, "contracts", contracts)
    invoices = pd.DataFrame(
        {
            "id": [5],
            "external_id": ["I5"],
            "customer_id": [1],
            "issue_date": [pd.Timestamp("2024-02-01")],
            "due_date": [pd.Timestamp("2024-03-02")],
            "amount": [99.999],
            "currency": ["EUR"],
            "disputed": [True],
        }
    )
    bulk_load(engine, "invoices", invoices)
    with session_scope(engine) as s:
        k = s.get(Contract, 10)
        assert k is not None and k.clauses == ["guarantee", "minimum_volume"]
        assert s.get(Contract, 11).clauses == []
        inv = s.get(Invoice, 5)
        assert inv.disputed is True and inv.amount == Decimal("100.00")
        assert inv.due_date == date(2024, 3, 2)


def test_orm_inserts_continue_after_explicit_ids(engine):
    bulk_load(engine, "customers", _customers())
    with session_scope(engine) as s:
        c = Customer(external_id="NEW", name="Delta", currency="EUR")
        s.add(c)
        s.flush()
        assert c.id == 4


def test_bad_data_is_refused_and_nothing_is_written(engine):
    bad = _customers().assign(shoe_size=[1, 2, 3])
    with pytest.raises(BulkLoadError, match="shoe_size"):
        bulk_load(engine, "customers", bad)
    with pytest.raises(BulkLoadError, match="name"):
        bulk_load(engine, "customers", _customers().drop(columns=["name"]))
    with pytest.raises(BulkLoadError, match="unknown table"):
        bulk_load(engine, "no_such_table", _customers())
    dup = pd.concat([_customers(), _customers().iloc[:1]])
    with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error
        bulk_load(engine, "customers", dup)
    with session_scope(engine) as s:
        assert s.scalars(select(Customer)).first() is None
