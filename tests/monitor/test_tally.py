"""The running totals against the definition: the same book, the same features, the same
overdue crossings, whatever the dates; an event's cost does not grow with the book; money
sums exactly."""

from __future__ import annotations

import copy
import random
from datetime import date
from typing import Any

from riskdesk.monitor.processor import step_event
from riskdesk.monitor.state import (
    FEATURES,
    apply_event,
    features,
    new_book,
    overdue_crossings,
    settle,
)
from riskdesk.monitor.tally import Tally

from .test_state import _ev, _same


def _random_book(rng: random.Random, base: int) -> dict[str, Any]:
    """A book with open, partly and fully paid, disputed and future invoices, credit notes,
    old and recent paid invoices, and cancelled, old and future orders."""
    book = new_book("EUR")
    for k in range(rng.randint(0, 10)):
        issue = base + rng.randint(0, 200)
        amount = rng.choice((100.0, 250.5, 0.0, 1e-3, round(rng.uniform(1, 5e4), 2)))
        book["inv"][f"I{k}"] = [issue, issue + rng.choice((0, 30, 60)), amount, rng.random() < 0.2]
        if rng.random() < 0.5:
            book["al"][f"I{k}"] = [
                [
                    issue + rng.randint(0, 150),
                    rng.choice((amount, amount / 2, max(amount - 0.004, 0.0))),
                    p,
                ]
                for p in ("P1", "P2")[: rng.randint(1, 2)]
            ]
        if rng.random() < 0.2:
            book["cn"][f"I{k}"] = [[issue + rng.randint(0, 150), amount / 4, "N"]]
    for k in range(rng.randint(0, 6)):
        paid = base + rng.randint(-100, 250)
        book["paid"][f"X{k}"] = [paid, paid - rng.randint(-20, 60), 80.0 * k, paid - 40, 0, [], []]
    for k in range(rng.randint(0, 8)):
        book["ord"][f"O{k}"] = [base + rng.randint(-50, 250), 10.0 * k, int(rng.random() < 0.2)]
    book["last_order"] = rng.choice((None, base - 120))
    book["bureau"] = rng.choice((None, 512.0))
    return book


def _random_event(rng: random.Random, book: dict[str, Any], n: int, day: date) -> Any:
    """An event of ``day`` about the book's items, its documents dated up to 60 days either
    side of it (so some count only from a later day)."""
    doc = date.fromordinal(day.toordinal() + rng.randint(-60, 60)).isoformat()
    d = day.isoformat()
    invoices = list(book["inv"]) + list(book["paid"]) or ["I-new"]
    r = rng.random()
    if r < 0.35:
        return _ev(
            f"e{n}",
            "payment.received",
            d,
            payment_id=f"P{n}",
            payment_date=doc,
            amount="50.00",
            currency="EUR",
            allocations=[
                {"invoice_id": rng.choice(invoices), "amount": rng.choice(("50.00", "1.00"))}
            ],
        )
    if r < 0.5:
        return _ev(
            f"e{n}",
            "credit_note.issued",
            d,
            credit_note_id=f"N{n}",
            invoice_id=rng.choice(invoices),
            issue_date=doc,
            amount="20.00",
            currency="EUR",
        )
    if r < 0.7:
        due = date.fromordinal(date.fromisoformat(doc).toordinal() + rng.choice((0, 30)))
        return _ev(
            f"e{n}",
            "invoice.issued",
            d,
            invoice_id=f"J{n}",
            issue_date=doc,
            due_date=due.isoformat(),
            amount=rng.choice(("100.00", "0.01", "7300.25")),
            currency="EUR",
        )
    if r < 0.8:
        return _ev(f"e{n}", "invoice.disputed", d, invoice_id=rng.choice(invoices), disputed=True)
    orders = list(book["ord"]) or ["O-new"]
    if r < 0.9:
        return _ev(
            f"e{n}",
            "order.placed",
            d,
            order_id=f"Q{n}",
            order_date=doc,
            amount="12.50",
            currency="EUR",
        )
    if r < 0.95:
        return _ev(f"e{n}", "order.cancelled", d, order_id=rng.choice(orders))
    return _ev(f"e{n}", "order.changed", d, order_id=rng.choice(orders), amount="99.00")


def _check(tally: Tally, book: dict[str, Any], ref: dict[str, Any], t: int) -> None:
    assert book == ref
    assert _same(tally.features(), features(ref, date.fromordinal(t)), FEATURES)


def test_the_running_totals_are_the_definition_at_every_date() -> None:
    """Random books (future documents, paid and expiring items) built into a tally, then
    moved on by events and clock steps of 0 to 200 days: after every step the book is the one
    ``settle`` gives, the features those ``features`` recomputes, and the overdue crossings
    those ``overdue_crossings`` finds (oldest due date first)."""
    rng = random.Random(8)
    base = date(2026, 1, 1).toordinal()
    seen = {"crossings": 0, "settled": 0, "expired": 0, "late documents": 0}
    n = 0
    for _ in range(600):
        book = _random_book(rng, base)
        t = base + rng.randint(0, 300)
        book["asof"] = date.fromordinal(t).isoformat()
        ref = copy.deepcopy(book)
        settle(ref, date.fromordinal(t))
        tally = Tally(book)
        _check(tally, book, ref, t)
        for _ in range(rng.randint(1, 6)):
            t1 = t + rng.choice((0, 0, 1, 5, 30, 90, 200))
            day = date.fromordinal(t1)
            before = (len(ref["paid"]), len(ref["ord"]) + len(ref["paid"]))
            crossings: list[dict[str, Any]] = []
            if rng.random() < 0.6:
                n += 1
                ev = _random_event(rng, ref, n, day)
                apply_event(ref, ev)
                seen["late documents"] += any(
                    isinstance(v, str) and len(v) == 10 and v > day.isoformat()
                    for v in ev.payload.model_dump(mode="json").values()
                )
                step_event(book, ev, None, None, tally=tally)
            else:
                crossings = overdue_crossings(ref, date.fromordinal(t), day)
                got = tally.advance(day)
                assert got == sorted(crossings, key=lambda c: (c["due_date"], c["invoice_id"]))
                book["asof"] = date.fromordinal(max(t, t1)).isoformat()
            ref["asof"] = max(date.fromordinal(t), day).isoformat()
            settle(ref, date.fromordinal(max(t, t1)))
            t = max(t, t1)
            _check(tally, book, ref, t)
            seen["crossings"] += bool(crossings)
            seen["settled"] += len(ref["paid"]) > before[0]
            seen["expired"] += len(ref["ord"]) + len(ref["paid"]) < before[1]
    assert min(seen.values()) > 20, seen


def test_the_crossings_are_those_of_the_definition() -> None:
    rng = random.Random(4)
    base = date(2026, 1, 1).toordinal()
    seen = 0
    for _ in range(1500):
        book = _random_book(rng, base)
        t0 = base + rng.randint(0, 300)
        book["asof"] = date.fromordinal(t0).isoformat()
        settle(book, date.fromordinal(t0))
        ref = copy.deepcopy(book)
        tally = Tally(book)
        t1 = t0 + rng.choice((1, 5, 30, 31, 61, 90, 200))
        got = tally.advance(date.fromordinal(t1))
        want = overdue_crossings(ref, date.fromordinal(t0), date.fromordinal(t1))
        assert got == sorted(want, key=lambda c: (c["due_date"], c["invoice_id"]))
        seen += bool(want)
    assert seen > 100


def _big_book(n: int, t: int) -> dict[str, Any]:
    """``n`` open invoices (due dates spread over 400 days), ``n`` // 4 orders and paid
    invoices."""
    book = new_book("EUR")
    book["asof"] = date.fromordinal(t).isoformat()
    for k in range(n):
        issue = t - 300 + k % 400
        book["inv"][f"I{k}"] = [issue, issue + 30, 100.0 + k, 0]
    for k in range(n // 4):
        book["ord"][f"O{k}"] = [t - k % 80, 10.0, 0]
        book["paid"][f"X{k}"] = [t - k % 170, t - 200, 5.0, t - 230, 0, [], []]
    return book


def test_an_event_costs_the_same_whatever_the_size_of_the_book() -> None:
    """The number of items an event makes the tally derive does not grow with the book: the
    running totals are updated, not recomputed."""
    t = date(2026, 6, 1).toordinal()
    day = date.fromordinal(t).isoformat()
    costs = {}
    for n in (8, 4000):
        book = _big_book(n, t)
        tally = Tally(book)
        assert tally.derived >= n  # building walks the book once
        cost = []
        for ev in (
            _ev(
                "p",
                "payment.received",
                day,
                payment_id="P",
                payment_date=day,
                amount="5",
                currency="EUR",
                allocations=[{"invoice_id": "I3", "amount": "5"}],
            ),
            _ev("o", "order.placed", day, order_id="Q", order_date=day, amount="9", currency="EUR"),
            _ev("b", "bureau_score.changed", day, score=420),
        ):
            tally.derived = 0
            st = step_event(book, ev, None, None, tally=tally)
            cost.append(tally.derived)
            assert _same(st.features, features(book, date.fromordinal(t)), FEATURES)
        costs[n] = cost
    assert costs[8] == costs[4000] == [1, 1, 0]


def test_money_is_summed_exactly() -> None:
    """A balance credited away in parts is exactly nothing in the running totals, where a
    float recomputation leaves a residue: a "changed since last time" rule never fires on
    rounding noise."""
    day = "2026-03-01"
    book = new_book("EUR")
    tally = None
    prev = None
    events = [
        _ev(
            "i",
            "invoice.issued",
            day,
            invoice_id="I",
            issue_date=day,
            due_date=day,
            amount="0.07",
            currency="EUR",
        ),
    ] + [
        _ev(
            f"n{k}",
            "credit_note.issued",
            day,
            credit_note_id=f"N{k}",
            invoice_id="I",
            issue_date=day,
            amount=a,
            currency="EUR",
        )
        for k, a in enumerate(("0.03", "0.03", "0.01"))
    ]
    for ev in events:
        st = step_event(book, ev, prev, None, tally=tally)
        prev, tally = st.features, st.tally
    assert prev is not None
    assert features(book, date(2026, 3, 1))["open_invoice_balance"] > 0.0  # float residue
    assert prev["open_invoice_balance"] == 0.0
    assert prev["open_invoices"] == 0.0
