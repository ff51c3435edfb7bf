"""Seeders shared by the tests: ``from tests import seed``.

The suite runs with ``--import-mode=importlib`` and ``tests/`` has no ``__init__.py``: pytest
puts the rootdir on the import path, so ``tests`` is a namespace package and this module is
importable from every test file and conftest. (Test modules still cannot import each other.)

- :data:`PORTFOLIO` — ``tests/api/portfolio_seed.py``, the hand-built service portfolio with a
  user of every role and their API tokens (``PORTFOLIO.seed(url)``, ``AS_OF``, ``PASSWORD``).
- :func:`cheap_argon2` — argon2 at minimal cost for tests that log users in.
- :func:`customer_with_invoice` — one customer with one invoice, in an open session.
- :class:`WebhookReceiver` — a webhook endpoint on 127.0.0.1 that records what it is sent.
- :func:`api_event` — a raw event as a client posts it to ``/api/v1/events``.
- :class:`Book` / :func:`make_frames` — analytics frames (what ``load_frames`` returns) built
  from plain rows, for the stage packages' tests, which take frames and no database.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from riskdesk.analytics.frames import Frames
from riskdesk.store.models import Customer, Invoice

TESTS = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# the service portfolio (API, web, browser, analytics and assessment-service tests)

PORTFOLIO_MODULE = "riskdesk_service_portfolio_seed"
"""The one module name tests/api/portfolio_seed.py is loaded under (connectors/test_events.py
loads it by path under the same name), so every test shares one copy and its cached hash."""


def _load_portfolio() -> ModuleType:
    if PORTFOLIO_MODULE in sys.modules:
        return sys.modules[PORTFOLIO_MODULE]
    spec = importlib.util.spec_from_file_location(
        PORTFOLIO_MODULE, TESTS / "api" / "portfolio_seed.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[PORTFOLIO_MODULE] = mod
    spec.loader.exec_module(mod)
    return mod


PORTFOLIO = _load_portfolio()


def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with minimal cost parameters: same code path, a fraction of the CPU time."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr("riskdesk.store.users._hasher", cheap)


# ---------------------------------------------------------------------------------------------
# one customer, one invoice


def customer_with_invoice(
    s: Session,
    *,
    external_id: str,
    name: str,
    issue: date,
    due: date,
    amount: Decimal | int | str,
    currency: str = "EUR",
    owner: str | None = None,
    invoice_id: str = "I1",
) -> tuple[Customer, Invoice]:
    """Add a customer and one open invoice of theirs in ``currency`` to the session ``s``
    (flushed: both have their ids)."""
    c = Customer(external_id=external_id, name=name, currency=currency, owner=owner)
    s.add(c)
    s.flush()
    inv = Invoice(
        external_id=invoice_id,
        customer_id=c.id,
        issue_date=issue,
        due_date=due,
        amount=Decimal(str(amount)),
        currency=currency,
    )
    s.add(inv)
    s.flush()
    return c, inv


# ---------------------------------------------------------------------------------------------
# analytics frames from plain rows

FRAME_COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    # name: (columns in load_frames' order, date columns)
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


def make_frames(*, coerce: bool = False, **tables: list[dict[str, Any]]) -> Frames:
    """Frames with load_frames' columns from lists of row dicts (missing tables are empty,
    missing cells NaN/None). Dates become ``datetime64[ns]`` and ``disputed`` a bool (empty:
    False). ``coerce`` also makes amounts float64 and the ids that are never empty int64, as
    load_frames does."""
    unknown = set(tables) - set(FRAME_COLUMNS)
    if unknown:
        raise ValueError(f"no such frame: {', '.join(sorted(unknown))}")
    out = {}
    for name, (cols, dates) in FRAME_COLUMNS.items():
        df = pd.DataFrame(tables.get(name, []), columns=cols)
        for c in cols:
            if c in dates:
                df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
            elif c == "disputed":
                df[c] = df[c].fillna(False).astype(bool)
            elif coerce and c in FLOATS:
                df[c] = pd.to_numeric(df[c]).astype("float64")
            elif (
                coerce
                and c.endswith("_id")
                and c not in ("external_id", "parent_id", "contract_id", "order_id")
                and len(df)
            ):
                df[c] = df[c].astype("int64")
        out[name] = df
    return Frames(**out)


class Book:
    """Add records with plain Python values; ``frames()`` gives what load_frames would."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {k: [] for k in FRAME_COLUMNS}
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
        return make_frames(coerce=True, **self.rows)


def api_event(eid: str, kind: str, cust: str, **payload: Any) -> dict[str, Any]:
    """A raw event as a client posts it to ``/api/v1/events`` (event time 2026-06-01 10:00 UTC)."""
    return {
        "event_id": eid,
        "type": kind,
        "event_time": "2026-06-01T10:00:00Z",
        "customer_id": cust,
        "payload": payload,
    }


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that records requests (headers, body); can fail the
    first ``fail_next`` calls with 503. Call :meth:`close` when done."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.requests.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
