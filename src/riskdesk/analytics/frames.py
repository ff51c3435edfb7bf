"""Load the operational tables into pandas DataFrames for the batch stages.

Stage packages (identify, assess, control, monitor) take these frames and never touch the
database. Amounts become float64 here (analytics, not accounting); dates become
``datetime64[ns]``; ids stay integers. ``as_of`` drops what was not yet known on that date
(documents dated after it) so callers start point-in-time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

import pandas as pd
from sqlalchemy import Engine, text

_TABLES: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (select, date columns, amount columns)
    "customers": (
        "SELECT id AS customer_id, external_id, name, parent_id, group_code, industry, region, "
        "country, currency, revenue, employees, founded_on, market_share, owner, status, "
        "created_at FROM customers",
        ["founded_on", "created_at"],
        ["revenue", "market_share"],
    ),
    "contracts": (
        "SELECT id AS contract_id, external_id, customer_id, start_date, end_date, "
        "payment_terms_days, min_volume_amount, min_volume_currency, min_volume_period, "
        "status FROM contracts",
        ["start_date", "end_date"],
        ["min_volume_amount"],
    ),
    "orders": (
        "SELECT id AS order_id, external_id, customer_id, contract_id, order_date, amount, "
        "currency, status, shipped_date FROM orders",
        ["order_date", "shipped_date"],
        ["amount"],
    ),
    "invoices": (
        "SELECT id AS invoice_id, external_id, customer_id, order_id, issue_date, due_date, "
        "amount, currency, disputed, status FROM invoices",
        ["issue_date", "due_date"],
        ["amount"],
    ),
    "payments": (
        "SELECT id AS payment_id, external_id, customer_id, payment_date, amount, currency "
        "FROM payments",
        ["payment_date"],
        ["amount"],
    ),
    "allocations": (
        "SELECT a.id AS allocation_id, a.payment_id, a.invoice_id, a.amount, p.payment_date, "
        "p.customer_id FROM payment_allocations a JOIN payments p ON p.id = a.payment_id",
        ["payment_date"],
        ["amount"],
    ),
    "credit_notes": (
        "SELECT id AS credit_note_id, external_id, customer_id, invoice_id, issue_date, amount, "
        "currency FROM credit_notes",
        ["issue_date"],
        ["amount"],
    ),
    "market_indicators": (
        "SELECT code, industry, region, period_date, value FROM market_indicators",
        ["period_date"],
        ["value"],
    ),
    "external_signals": (
        "SELECT id AS signal_id, customer_id, kind, signal_date, value, source, description "
        "FROM external_signals",
        ["signal_date"],
        ["value"],
    ),
    "fx_rates": (
        "SELECT rate_date, base, quote, rate FROM fx_rates",
        ["rate_date"],
        ["rate"],
    ),
}

_KNOWN_ON: dict[str, str] = {
    "orders": "order_date",
    "invoices": "issue_date",
    "payments": "payment_date",
    "allocations": "payment_date",
    "credit_notes": "issue_date",
    "market_indicators": "period_date",
    "external_signals": "signal_date",
    "fx_rates": "rate_date",
    "contracts": "start_date",
}


@dataclass
class Frames:
    """The portfolio as DataFrames (one per table)."""

    customers: pd.DataFrame
    contracts: pd.DataFrame
    orders: pd.DataFrame
    invoices: pd.DataFrame
    payments: pd.DataFrame
    allocations: pd.DataFrame
    credit_notes: pd.DataFrame
    market_indicators: pd.DataFrame
    external_signals: pd.DataFrame
    fx_rates: pd.DataFrame

    def as_of(self, on: date) -> Frames:
        """Only what was known on ``on``: documents dated after it are dropped."""
        ts = pd.Timestamp(on)
        out = {}
        for f in fields(self):
            df = getattr(self, f.name)
            col = _KNOWN_ON.get(f.name)
            out[f.name] = df[df[col] <= ts] if col and len(df) else df
        return Frames(**out)


def _read(engine: Engine, sql: str, dates: list[str], amounts: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        df = pd.read_sql_query(text(sql), conn)
    for c in dates:
        df[c] = pd.to_datetime(df[c], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
    for c in amounts:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    if "disputed" in df:
        df["disputed"] = df["disputed"].astype(bool)
    return df


def load_frames(engine: Engine, tables: list[str] | None = None) -> Frames:
    """Read every table (or only ``tables``; the others come back empty with their columns)."""
    out: dict[str, pd.DataFrame] = {}
    for name, (sql, dates, amounts) in _TABLES.items():
        if tables is None or name in tables:
            out[name] = _read(engine, sql, dates, amounts)
        else:
            out[name] = _read(engine, sql + " WHERE 1 = 0", dates, amounts)
    return Frames(**out)
