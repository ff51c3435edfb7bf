"""Seed for the service tests (loaded by tests/seed.py as ``PORTFOLIO``): a small hand-built portfolio, users of every role and their API tokens.

Ageing is checked as of ``AS_OF`` = 2026-06-30. Customer C001 (owner alice) has:
open invoices 1000 (due later: current), 500 − 200 paid = 300 (20 days late: 1–30),
800 − 100 credit note = 700 (90 days late: 61–90), 400 (149 days late: 90+), one paid invoice,
an open order of 600 and an invoiced order of 1000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import (
    Contract,
    CreditNote,
    Customer,
    FxRate,
    Invoice,
    Order,
    Payment,
    PaymentAllocation,
    User,
)
from riskdesk.store.users import create_token, hash_password

AS_OF = date(2026, 6, 30)
PASSWORD = "correct-horse-battery"


@lru_cache(maxsize=1)
def password_hash() -> str:
    """argon2 is slow on purpose: hash the shared test password once per test session."""
    return hash_password(PASSWORD)


@dataclass
class Portfolio:
    url: str
    tokens: dict[str, str]
    ids: dict[str, int]


def seed(url: str, as_of: date = AS_OF) -> Portfolio:
    """Seed ``url``; invoice and order dates are placed relative to ``as_of``."""

    def ago(days: int) -> date:
        return as_of - timedelta(days=days)

    eng = make_engine(url)
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    with session_scope(eng) as s:
        for name, role, lang in (
            ("root", "admin", "en"),
            ("rita", "risk_manager", None),
            ("alice", "sales", None),
            ("bob", "sales", "zh"),
            ("audrey", "auditor", None),
        ):
            s.add(
                User(
                    username=name,
                    role=role,
                    password_hash=password_hash(),
                    language=lang,
                    full_name=name.title(),
                )
            )
            s.flush()
            tokens[name] = create_token(s, name, name="test").token
        customers = [
            ("C001", "Acme Tools GmbH", "machinery", "North", "alice", "EUR", "active"),
            ("C002", "Beta Retail SA", "retail", "South", "bob", "EUR", "active"),
            ("C003", "长城五金有限公司", "machinery", "East", "alice", "CNY", "active"),
            ("C004", "Delta Foods Ltd", "food", "North", "bob", "EUR", "blocked"),
        ]
        for ext, name, ind, reg, owner, cur, status in customers:
            c = Customer(
                external_id=ext,
                name=name,
                industry=ind,
                region=reg,
                owner=owner,
                currency=cur,
                status=status,
            )
            s.add(c)
            s.flush()
            ids[ext] = c.id
        s.add(FxRate(rate_date=ago(365), base="EUR", quote="CNY", rate=Decimal("7.8")))
        s.add(
            Contract(
                external_id="K001",
                customer_id=ids["C001"],
                start_date=ago(540),
                payment_terms_days=30,
                clauses=["retention_of_title"],
            )
        )

        def inv(ext: str, cust: str, due: date, amount: str, cur: str = "EUR", **kw: object) -> int:
            i = Invoice(
                external_id=ext,
                customer_id=ids[cust],
                issue_date=due - timedelta(days=30),
                due_date=due,
                amount=Decimal(amount),
                currency=cur,
                **kw,
            )
            s.add(i)
            s.flush()
            return i.id

        inv("I1", "C001", ago(-15), "1000.00")
        i2 = inv("I2", "C001", ago(20), "500.00", status="partially_paid")
        i3 = inv("I3", "C001", ago(90), "800.00")
        inv("I4", "C001", ago(149), "400.00")
        i5 = inv("I5", "C001", ago(171), "250.00", status="paid")
        inv("I6", "C003", ago(60), "10000.00", cur="CNY")
        inv("I7", "C002", ago(1), "300.00")
        p = Payment(
            external_id="P1",
            customer_id=ids["C001"],
            payment_date=ago(10),
            amount=Decimal("450.00"),
            currency="EUR",
        )
        s.add(p)
        s.flush()
        s.add(PaymentAllocation(payment_id=p.id, invoice_id=i2, amount=Decimal("200.00")))
        s.add(PaymentAllocation(payment_id=p.id, invoice_id=i5, amount=Decimal("250.00")))
        s.add(
            CreditNote(
                external_id="CN1",
                customer_id=ids["C001"],
                invoice_id=i3,
                issue_date=ago(76),
                amount=Decimal("100.00"),
                currency="EUR",
            )
        )
        s.add(
            Order(
                external_id="O1",
                customer_id=ids["C001"],
                order_date=ago(5),
                amount=Decimal("600.00"),
                currency="EUR",
                status="open",
            )
        )
        s.add(
            Order(
                external_id="O2",
                customer_id=ids["C001"],
                order_date=ago(60),
                amount=Decimal("1000.00"),
                currency="EUR",
                status="invoiced",
            )
        )
    eng.dispose()
    return Portfolio(url, tokens, ids)
