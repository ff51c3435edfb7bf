"""A small, seeded trade-credit history: customers, FX rates and the event stream for it,
plus a writer that puts the same documents into the core tables for the batch features."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from riskdesk.store.db import session_scope
from riskdesk.store.models import (
    CreditNote,
    Customer,
    FxRate,
    Invoice,
    Order,
    Payment,
    PaymentAllocation,
)


@dataclass
class History:
    customers: list[tuple[str, str]]  # external id, currency
    fx: list[tuple[date, str, str, Decimal]]
    events: list[dict[str, Any]] = field(default_factory=list)
    end: date = date(2025, 12, 31)


def _ts(d: date, hour: int = 12) -> str:
    return f"{d.isoformat()}T{hour:02d}:00:00Z"


def make_history(seed: int = 7, n_customers: int = 10, start: date = date(2025, 1, 1)) -> History:
    rng = random.Random(seed)
    fx = []
    d = start - timedelta(days=10)
    while d <= start + timedelta(days=400):
        fx.append((d, "USD", "EUR", Decimal(str(round(0.85 + rng.random() * 0.1, 6)))))
        d += timedelta(days=20)
    h = History([(f"C{i:03d}", "EUR" if i % 3 else "USD") for i in range(n_customers)], fx)
    h.end = start + timedelta(days=330)
    seq = 0

    def ev(kind: str, day: date, cust: str, payload: dict[str, Any]) -> None:
        nonlocal seq
        seq += 1
        h.events.append(
            {
                "event_id": f"ev-{seed}-{seq:06d}",
                "type": kind,
                "event_time": _ts(day, 8 + seq % 10),
                "customer_id": cust,
                "payload": payload,
            }
        )

    for cust, ccy in h.customers:
        for k in range(rng.randint(4, 14)):
            day = start + timedelta(days=rng.randint(0, 320))
            doc_ccy = ccy if rng.random() < 0.75 else ("USD" if ccy == "EUR" else "EUR")
            amount = Decimal(rng.randint(200, 20000)) + Decimal(rng.randint(0, 99)) / 100
            oid = f"{cust}-O{k}"
            ev(
                "order.placed",
                day,
                cust,
                {
                    "order_id": oid,
                    "order_date": day.isoformat(),
                    "amount": str(amount),
                    "currency": doc_ccy,
                },
            )
            if rng.random() < 0.12:
                ev("order.cancelled", day + timedelta(days=1), cust, {"order_id": oid})
                continue
            if rng.random() < 0.15:
                continue  # not invoiced yet
            issue = day + timedelta(days=rng.randint(0, 5))
            due = issue + timedelta(days=rng.choice([30, 45, 60]))
            iid = f"{cust}-I{k}"
            ev(
                "invoice.issued",
                issue,
                cust,
                {
                    "invoice_id": iid,
                    "issue_date": issue.isoformat(),
                    "due_date": due.isoformat(),
                    "amount": str(amount),
                    "currency": doc_ccy,
                    "order_id": oid,
                },
            )
            left = amount
            if rng.random() < 0.15:
                cn = (amount * Decimal("0.2")).quantize(Decimal("0.01"))
                cnd = issue + timedelta(days=rng.randint(1, 20))
                ev(
                    "credit_note.issued",
                    cnd,
                    cust,
                    {
                        "credit_note_id": f"{iid}-CN",
                        "invoice_id": iid,
                        "issue_date": cnd.isoformat(),
                        "amount": str(cn),
                        "currency": doc_ccy,
                    },
                )
                left -= cn
            n_pay = rng.choice([0, 1, 1, 1, 2, 2])
            for j in range(n_pay):
                pay_day = due + timedelta(days=rng.randint(-25, 70))
                if pay_day < issue:
                    pay_day = issue + timedelta(days=1)
                part = (
                    left
                    if (j == n_pay - 1 and rng.random() < 0.8)
                    else (left * Decimal("0.4")).quantize(Decimal("0.01"))
                )
                if part <= 0:
                    break
                left -= part
                ev(
                    "payment.received",
                    pay_day,
                    cust,
                    {
                        "payment_id": f"{iid}-P{j}",
                        "payment_date": pay_day.isoformat(),
                        "amount": str(part),
                        "currency": doc_ccy,
                        "allocations": [{"invoice_id": iid, "amount": str(part)}],
                    },
                )
    # arrival order: by event time, with local disorder (late and out-of-order events)
    h.events.sort(key=lambda e: e["event_time"])
    for i in range(len(h.events) - 1):
        if rng.random() < 0.25:
            h.events[i], h.events[i + 1] = h.events[i + 1], h.events[i]
    h.events = [e for e in h.events if e["event_time"][:10] <= h.end.isoformat()]
    return h


def write_customers(engine: Engine, h: History) -> None:
    with session_scope(engine) as s:
        for ext, ccy in h.customers:
            s.add(Customer(external_id=ext, name=f"Customer {ext}", currency=ccy, owner="sally"))
        for d, b, q, r in h.fx:
            s.add(FxRate(rate_date=d, base=b, quote=q, rate=r))


def write_documents(engine: Engine, events: list[dict[str, Any]]) -> None:
    """The same documents as core records, for the batch feature computation."""
    with session_scope(engine) as s:
        cust = {c.external_id: c.id for c in s.query(Customer)}
        orders: dict[str, Order] = {}
        invoices: dict[str, Invoice] = {}
        for e in sorted(
            events, key=lambda e: (e["type"] != "order.placed", e["type"] != "invoice.issued")
        ):
            p, cid = e["payload"], cust[e["customer_id"]]
            if e["type"] == "order.placed":
                o = Order(
                    external_id=p["order_id"],
                    customer_id=cid,
                    order_date=date.fromisoformat(p["order_date"]),
                    amount=Decimal(p["amount"]),
                    currency=p["currency"],
                    status="open",
                )
                s.add(o)
                orders[p["order_id"]] = o
            elif e["type"] == "order.cancelled":
                orders[p["order_id"]].status = "cancelled"
            elif e["type"] == "invoice.issued":
                inv = Invoice(
                    external_id=p["invoice_id"],
                    customer_id=cid,
                    issue_date=date.fromisoformat(p["issue_date"]),
                    due_date=date.fromisoformat(p["due_date"]),
                    amount=Decimal(p["amount"]),
                    currency=p["currency"],
                    status="open",
                )
                s.add(inv)
                invoices[p["invoice_id"]] = inv
        s.flush()
        for e in events:
            p, cid = e["payload"], cust[e["customer_id"]]
            if e["type"] == "payment.received":
                pay = Payment(
                    external_id=p["payment_id"],
                    customer_id=cid,
                    payment_date=date.fromisoformat(p["payment_date"]),
                    amount=Decimal(p["amount"]),
                    currency=p["currency"],
                )
                s.add(pay)
                s.flush()
                for a in p["allocations"]:
                    s.add(
                        PaymentAllocation(
                            payment_id=pay.id,
                            invoice_id=invoices[a["invoice_id"]].id,
                            amount=Decimal(a["amount"]),
                        )
                    )
            elif e["type"] == "credit_note.issued":
                s.add(
                    CreditNote(
                        external_id=p["credit_note_id"],
                        customer_id=cid,
                        invoice_id=invoices[p["invoice_id"]].id,
                        issue_date=date.fromisoformat(p["issue_date"]),
                        amount=Decimal(p["amount"]),
                        currency=p["currency"],
                    )
                )


@pytest.fixture
def history() -> History:
    return make_history()
