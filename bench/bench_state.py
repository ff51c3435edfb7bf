"""The cost of one event on the customer state, by the size of the customer's book.

For customers with 4 to 2,000 open invoices, a stream of invoices, payments, disputes and
orders (ten a day, see ``_stream``) is stepped through the intake's running totals (``step_event`` with its
``Tally``), and the same stream through the definition (apply the event, settle the book,
recompute every feature from the open items): CPU µs per event for each, no rules, no
database. The running totals should cost the same at every size; the recomputation grows
with the book. Then the book at the end: its size (its JSON, the book decoded from it, and a
tally built on it, measured with tracemalloc) and its items.

    .venv/bin/python bench/bench_state.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from datetime import date, timedelta
from typing import Any

import orjson

from riskdesk.monitor.events import Event, parse_event
from riskdesk.monitor.processor import step_event
from riskdesk.monitor.state import apply_event, features, new_book, settle
from riskdesk.monitor.tally import Tally

START = date(2026, 1, 1)
EVENTS = 3_000


def _ev(n: int, kind: str, day: date, **payload: Any) -> Event:
    return parse_event(
        {
            "event_id": f"e{n}",
            "type": kind,
            "event_time": f"{day.isoformat()}T10:00:00Z",
            "customer_id": "C",
            "payload": payload,
        }
    )


def _book(n_open: int) -> dict[str, Any]:
    """A book on ``START`` with ``n_open`` open invoices due over the past and next 60 days."""
    book = new_book("EUR")
    t = START.toordinal()
    for k in range(n_open):
        issue = t - 90 + k % 120
        book["inv"][f"B{k}"] = [issue, issue + 30, 1000.0 + k, 0]
    book["asof"] = START.isoformat()
    return book


def _stream(n_open: int) -> list[Event]:
    """Per 10 events: 3 new invoices, 3 payments in full of invoices issued 3 days before, 2
    disputes raised or lifted on the old invoices, 2 orders; one day passes every 10 events,
    so the book keeps its size (old invoices age through the buckets, orders enter and leave
    the 90-day window, paid invoices the 180-day one)."""
    out: list[Event] = []
    for n in range(EVENTS):
        day = START + timedelta(days=n // 10)
        d = day.isoformat()
        r = n % 10
        if r < 3 or n < 30:
            due = (day + timedelta(days=30)).isoformat()
            out.append(
                _ev(
                    n,
                    "invoice.issued",
                    day,
                    invoice_id=f"I{n}",
                    issue_date=d,
                    due_date=due,
                    amount="250.00",
                    currency="EUR",
                )
            )
        elif r < 6:
            inv = f"I{n - 33}"
            out.append(
                _ev(
                    n,
                    "payment.received",
                    day,
                    payment_id=f"P{n}",
                    payment_date=d,
                    amount="250.00",
                    currency="EUR",
                    allocations=[{"invoice_id": inv, "amount": "250.00"}],
                )
            )
        elif r < 8:
            inv = f"B{(n * 7) % n_open}"
            out.append(_ev(n, "invoice.disputed", day, invoice_id=inv, disputed=r == 6))
        else:
            out.append(
                _ev(
                    n,
                    "order.placed",
                    day,
                    order_id=f"O{n}",
                    order_date=d,
                    amount="99.00",
                    currency="EUR",
                )
            )
    return out


def _running_totals(n_open: int, events: list[Event]) -> tuple[float, dict[str, Any]]:
    book = _book(n_open)
    tally = None
    prev = None
    t0 = time.process_time()
    for ev in events:
        st = step_event(book, ev, prev, None, tally=tally)
        prev, tally = st.features, st.tally
    return (time.process_time() - t0) / len(events) * 1e6, book


def _memory(book: dict[str, Any]) -> tuple[int, int, int]:
    """Bytes of the book's JSON, of the book decoded from it, and of a tally built on it."""
    raw = orjson.dumps(book)
    tracemalloc.start()
    decoded = orjson.loads(raw)
    book_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracemalloc.start()
    tally = Tally(decoded)
    tally_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del tally
    return len(raw), book_bytes, tally_bytes


def _recompute(n_open: int, events: list[Event]) -> float:
    book = _book(n_open)
    t0 = time.process_time()
    for ev in events:
        apply_event(book, ev)
        day = max(ev.event_time.date(), date.fromisoformat(book["asof"]))
        book["asof"] = day.isoformat()
        settle(book, day)
        features(book, day)
    return (time.process_time() - t0) / len(events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two book sizes, 1,000 events")
    a = ap.parse_args()
    global EVENTS
    sizes = (4, 2000) if a.quick else (4, 20, 100, 500, 2000)
    if a.quick:
        EVENTS = 1_000
    gc.collect()
    print(
        f"{'open invoices':>14} {'running totals µs/event':>24} {'recompute µs/event':>20}"
        f" {'book JSON kB':>13} {'book in memory MB':>18} {'tally MB':>9}"
        f" {'items: open / paid / orders':>28}"
    )
    for n_open in sizes:
        events = _stream(n_open)
        runs = [_running_totals(n_open, events) for _ in range(3)]
        tot = min(r[0] for r in runs)
        rec = min(_recompute(n_open, events) for _ in range(3))
        book = runs[0][1]
        js, mem_book, mem_tally = _memory(book)
        items = f"{len(book['inv'])} / {len(book['paid'])} / {len(book['ord'])}"
        print(
            f"{n_open:>14} {tot:>24.1f} {rec:>20.1f} {js / 1e3:>13.1f} {mem_book / 1e6:>18.2f}"
            f" {mem_tally / 1e6:>9.2f} {items:>28}"
        )


if __name__ == "__main__":
    main()
