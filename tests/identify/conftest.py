"""A small hand-built portfolio builder for detector tests (frames shaped like load_frames)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from riskdesk.analytics.frames import Frames

COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    "customers": (
        [
            "customer_id",
            "external_id",
            "name",
            "parent_id",
            "group_code",
            "industry",
            "region",
            "country",
            "currency",
            "revenue",
            "employees",
            "founded_on",
            "market_share",
            "owner",
            "status",
            "created_at",
        ],
        ["founded_on", "created_at"],
    ),
    "contracts": (
        [
            "contract_id",
            "external_id",
            "customer_id",
            "start_date",
            "end_date",
            "payment_terms_days",
            "min_volume_amount",
            "min_volume_currency",
            "min_volume_period",
            "status",
        ],
        ["start_date", "end_date"],
    ),
    "orders": (
        [
            "order_id",
            "external_id",
            "customer_id",
            "contract_id",
            "order_date",
            "amount",
            "currency",
            "status",
            "shipped_date",
        ],
        ["order_date", "shipped_date"],
    ),
    "invoices": (
        [
            "invoice_id",
            "external_id",
            "customer_id",
            "order_id",
            "issue_date",
            "due_date",
            "amount",
            "currency",
            "disputed",
            "status",
        ],
        ["issue_date", "due_date"],
    ),
    "payments": (
        ["payment_id", "external_id", "customer_id", "payment_date", "amount", "currency"],
        ["payment_date"],
    ),
    "allocations": (
        ["allocation_id", "payment_id", "invoice_id", "amount", "payment_date", "customer_id"],
        ["payment_date"],
    ),
    "credit_notes": (
        [
            "credit_note_id",
            "external_id",
            "customer_id",
            "invoice_id",
            "issue_date",
            "amount",
            "currency",
        ],
        ["issue_date"],
    ),
    "market_indicators": (["code", "industry", "region", "period_date", "value"], ["period_date"]),
    "external_signals": (
        ["signal_id", "customer_id", "kind", "signal_date", "value", "source", "description"],
        ["signal_date"],
    ),
    "fx_rates": (["rate_date", "base", "quote", "rate"], ["rate_date"]),
}
FLOATS = {"amount", "value", "rate", "min_volume_amount", "revenue", "market_share"}


class Book:
    """Add records with plain Python values; ``frames()`` gives what load_frames would."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {k: [] for k in COLUMNS}
        self._ids: dict[str, int] = {}

    def _next(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def customer(
        self, currency: str = "EUR", industry: str | None = None, region: str | None = None
    ) -> int:
        cid = self._next("customer")
        self.rows["customers"].append(
            {
                "customer_id": cid,
                "external_id": f"C{cid}",
                "name": f"Customer {cid}",
                "currency": currency,
                "industry": industry,
                "region": region,
                "status": "active",
            }
        )
        return cid

    def invoice(
        self,
        customer: int,
        issue: date,
        due: date,
        amount: float,
        currency: str = "EUR",
        disputed: bool = False,
    ) -> int:
        iid = self._next("invoice")
        self.rows["invoices"].append(
            {
                "invoice_id": iid,
                "external_id": f"I{iid}",
                "customer_id": customer,
                "issue_date": issue,
                "due_date": due,
                "amount": amount,
                "currency": currency,
                "disputed": disputed,
                "status": "open",
            }
        )
        return iid

    def pay(
        self, customer: int, on: date, allocations: dict[int, float], currency: str = "EUR"
    ) -> int:
        pid = self._next("payment")
        self.rows["payments"].append(
            {
                "payment_id": pid,
                "external_id": f"P{pid}",
                "customer_id": customer,
                "payment_date": on,
                "amount": sum(allocations.values()),
                "currency": currency,
            }
        )
        for inv, amt in allocations.items():
            self.rows["allocations"].append(
                {
                    "allocation_id": self._next("alloc"),
                    "payment_id": pid,
                    "invoice_id": inv,
                    "amount": amt,
                    "payment_date": on,
                    "customer_id": customer,
                }
            )
        return pid

    def credit_note(
        self, customer: int, invoice: int | None, on: date, amount: float, currency: str = "EUR"
    ) -> int:
        nid = self._next("cn")
        self.rows["credit_notes"].append(
            {
                "credit_note_id": nid,
                "external_id": f"CN{nid}",
                "customer_id": customer,
                "invoice_id": invoice,
                "issue_date": on,
                "amount": amount,
                "currency": currency,
            }
        )
        return nid

    def order(
        self,
        customer: int,
        on: date,
        amount: float,
        currency: str = "EUR",
        status: str = "invoiced",
    ) -> int:
        oid = self._next("order")
        self.rows["orders"].append(
            {
                "order_id": oid,
                "external_id": f"O{oid}",
                "customer_id": customer,
                "order_date": on,
                "amount": amount,
                "currency": currency,
                "status": status,
            }
        )
        return oid

    def contract(
        self,
        customer: int,
        start: date,
        end: date | None = None,
        min_volume: float | None = None,
        period: str | None = None,
        currency: str | None = None,
    ) -> int:
        kid = self._next("contract")
        self.rows["contracts"].append(
            {
                "contract_id": kid,
                "external_id": f"K{kid}",
                "customer_id": customer,
                "start_date": start,
                "end_date": end,
                "payment_terms_days": 30,
                "min_volume_amount": min_volume,
                "min_volume_currency": currency,
                "min_volume_period": period,
                "status": "active",
            }
        )
        return kid

    def signal(self, customer: int, kind: str, on: date, value: float | None = None) -> int:
        sid = self._next("signal")
        self.rows["external_signals"].append(
            {
                "signal_id": sid,
                "customer_id": customer,
                "kind": kind,
                "signal_date": on,
                "value": value,
                "source": "test",
                "description": f"{kind} {sid}",
            }
        )
        return sid

    def index(
        self,
        code: str,
        on: date,
        value: float,
        industry: str | None = None,
        region: str | None = None,
    ) -> None:
        self.rows["market_indicators"].append(
            {
                "code": code,
                "industry": industry,
                "region": region,
                "period_date": on,
                "value": value,
            }
        )

    def fx(self, on: date, base: str, quote: str, rate: float) -> None:
        self.rows["fx_rates"].append({"rate_date": on, "base": base, "quote": quote, "rate": rate})

    def frames(self) -> Frames:
        out = {}
        for name, (cols, dates) in COLUMNS.items():
            df = pd.DataFrame(self.rows[name], columns=cols)
            for c in cols:
                if c in dates:
                    df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
                elif c in FLOATS:
                    df[c] = pd.to_numeric(df[c]).astype("float64")
                elif c == "disputed":
                    df[c] = df[c].astype(bool)
                elif (
                    c.endswith("_id")
                    and c not in ("external_id", "parent_id", "contract_id", "order_id")
                    and len(df)
                ):
                    df[c] = df[c].astype("int64")
            out[name] = df
        return Frames(**out)


@pytest.fixture
def book() -> Book:
    return Book()
