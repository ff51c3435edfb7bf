"""The customer state reducer on plain data: order independence, paid dates, ageing, FX."""

from __future__ import annotations

import copy
import itertools
import math
import random
from datetime import date, timedelta
from typing import Any

import pytest

from riskdesk.monitor.events import EventError, parse_event
from riskdesk.monitor.processor import step_clock, step_event
from riskdesk.monitor.state import (
    CORE_FEATURES,
    StateError,
    apply_event,
    features,
    new_book,
    same_currency_only,
    settle,
)


def _ev(eid: str, kind: str, day: str, **payload: Any):  # type: ignore[no-untyped-def]
    return parse_event(
        {
            "event_id": eid,
            "type": kind,
            "event_time": f"{day}T10:00:00Z",
            "customer_id": "C",
            "payload": payload,
        }
    )


INV = _ev(
    "1",
    "invoice.issued",
    "2026-01-01",
    invoice_id="I",
    issue_date="2026-01-01",
    due_date="2026-01-31",
    amount="1000.00",
    currency="EUR",
)
PAY1 = _ev(
    "2",
    "payment.received",
    "2026-02-10",
    payment_id="P1",
    payment_date="2026-02-10",
    amount="600.00",
    currency="EUR",
    allocations=[{"invoice_id": "I", "amount": "600.00"}],
)
PAY2 = _ev(
    "3",
    "payment.received",
    "2026-03-02",
    payment_id="P2",
    payment_date="2026-03-02",
    amount="400.00",
    currency="EUR",
    allocations=[{"invoice_id": "I", "amount": "400.00"}],
)
CN = _ev(
    "4",
    "credit_note.issued",
    "2026-01-20",
    credit_note_id="N",
    invoice_id="I",
    issue_date="2026-01-20",
    amount="100.00",
    currency="EUR",
)


def _replay(events: list[Any], on: date) -> dict[str, float]:
    book = new_book("EUR")
    for e in events:
        apply_event(book, e)
        settle(book, e.event_time.date())
    settle(book, on)
    return features(book, on)


def test_every_arrival_order_gives_the_same_state() -> None:
    on = date(2026, 3, 15)
    results = [_replay(list(p), on) for p in itertools.permutations([INV, PAY1, PAY2, CN])]
    first = results[0]
    for r in results[1:]:
        assert r.keys() == first.keys()
        for k in r:
            assert (math.isnan(r[k]) and math.isnan(first[k])) or r[k] == pytest.approx(first[k])
    # 1000 − 100 credit note: paid when 600 + 400 ≥ 900 … on 2026-03-02 (30 days after due)
    assert first["open_invoice_balance"] == 0.0
    assert first["dbt_wavg_paid_180d"] == 30.0


def test_partial_payment_leaves_an_overdue_balance_that_ages() -> None:
    book = new_book("EUR")
    for e in (INV, PAY1):
        apply_event(book, e)
    f = features(book, date(2026, 2, 15))
    assert (f["open_invoice_balance"], f["overdue_1_30"], f["max_days_overdue"]) == (
        400.0,
        400.0,
        15.0,
    )
    f = features(book, date(2026, 4, 5))
    assert (f["overdue_1_30"], f["overdue_61_90"], f["max_days_overdue"]) == (0.0, 400.0, 64.0)
    assert math.isnan(f["dbt_wavg_paid_180d"])


def test_clock_raises_overdue_crossings_without_any_event() -> None:
    book = new_book("EUR")
    step_event(book, INV, None, None)
    st = step_clock(book, date(2026, 3, 5), None, None)  # 33 days past due
    assert st is not None and st.features["overdue_31_60"] == 1000.0
    from riskdesk.monitor.state import overdue_crossings

    book2 = new_book("EUR")
    apply_event(book2, INV)
    marks = overdue_crossings(book2, date(2026, 2, 1), date(2026, 5, 5))
    assert [m["days_overdue"] for m in marks] == [91.0]  # the worst mark passed
    assert step_clock(book, date(2026, 3, 1), None, None) is None  # never backwards


def test_fx_conversion_uses_the_documents_date_and_refuses_missing_rates() -> None:
    usd = _ev(
        "9",
        "invoice.issued",
        "2026-01-01",
        invoice_id="U",
        issue_date="2026-01-01",
        due_date="2026-01-31",
        amount="100.00",
        currency="USD",
    )
    book = new_book("EUR")
    before = copy.deepcopy(book)
    with pytest.raises(StateError, match="USD/EUR"):
        apply_event(book, usd)
    assert book == before  # nothing half-applied
    apply_event(book, usd, lambda s, d, on: 0.9 if on == date(2026, 1, 1) else 99.0)
    assert features(book, date(2026, 1, 2))["open_invoice_balance"] == pytest.approx(90.0)


def _placed(eid: str, order_id: str, day: str, amount: str):  # type: ignore[no-untyped-def]
    return _ev(
        eid,
        "order.placed",
        day,
        order_id=order_id,
        order_date=day,
        amount=amount,
        currency="EUR",
    )


def test_cancelled_orders_do_not_count() -> None:
    book = new_book("EUR")
    apply_event(book, _placed("o1", "O1", "2026-01-10", "50.00"))
    apply_event(book, _placed("o2", "O2", "2026-01-20", "70.00"))
    apply_event(book, _ev("o3", "order.cancelled", "2026-01-21", order_id="O2"))
    f = features(book, date(2026, 1, 30))
    assert (f["orders_count_90d"], f["orders_amount_90d"], f["days_since_last_order"]) == (
        1.0,
        50.0,
        20.0,
    )


def test_a_cancellation_that_comes_before_its_order_still_cancels_it() -> None:
    """Events arrive out of order: an order's cancellation may come before the order. The
    order counts nowhere either way, in the book and in the running totals, and the
    cancellation of an order the book never saw leaves the book 90 days after its day."""
    placed = _placed("o1", "O1", "2026-01-10", "50.00")
    cancelled = _ev("o2", "order.cancelled", "2026-01-12", order_id="O1")
    on = date(2026, 1, 30)
    in_order = _replay([placed, cancelled], on)
    reversed_ = _replay([cancelled, placed], on)
    assert (reversed_["orders_count_90d"], reversed_["orders_amount_90d"]) == (0.0, 0.0)
    assert math.isnan(reversed_["days_since_last_order"])
    assert all(
        (math.isnan(v) and math.isnan(in_order[k])) or v == in_order[k]
        for k, v in reversed_.items()
    )
    book = new_book("EUR")
    st = step_event(book, cancelled, None, None)
    st = step_event(book, placed, st.features, None, tally=st.tally)
    assert st.features["orders_count_90d"] == 0.0 and book["ord"]["O1"][2] == 1
    lone = new_book("EUR")
    step_event(lone, cancelled, None, None)
    step_clock(lone, date(2026, 4, 13), None, None)  # 91 days on: gone
    assert lone["ord"] == {} and lone["last_order"] is None


def test_a_dispute_that_comes_before_its_invoice_still_disputes_it() -> None:
    """An invoice's dispute may come before the invoice (events out of order): the invoice
    comes disputed, as in arrival order, and a dispute of an invoice that never comes
    leaves the book 180 days on."""
    dispute = _ev("d1", "invoice.disputed", "2026-01-05", invoice_id="I")
    on = date(2026, 2, 10)
    in_order = _replay([INV, dispute], on)
    reversed_ = _replay([dispute, INV], on)
    assert (reversed_["disputed_balance"], reversed_["disputes_count"]) == (1000.0, 1.0)
    assert all(
        (math.isnan(v) and math.isnan(in_order[k])) or v == in_order[k]
        for k, v in reversed_.items()
    )
    book = new_book("EUR")
    st = step_event(book, dispute, None, None)
    st = step_event(book, INV, st.features, None, tally=st.tally)
    assert st.features["disputed_balance"] == 1000.0 and book["dsp"] == {}
    lone = new_book("EUR")
    step_event(lone, dispute, None, None)
    later = _ev("d2", "invoice.disputed", "2026-07-05", invoice_id="J")  # 181 days on
    step_event(lone, later, None, None)
    assert list(lone["dsp"]) == ["J"]


def _mixed_history(rng: random.Random) -> list[Any]:
    """One customer's orders (some cancelled, some changed: amount, date or both, in several
    events), invoices (some disputed and cleared again, some paid in part or in full, before
    or after their disputes) and bureau scores."""
    out: list[Any] = []
    n = 0
    d0 = date(2026, 1, 1)

    def add(kind: str, day: date, **payload: Any) -> None:
        nonlocal n
        n += 1
        out.append(_ev(f"m{n}", kind, day.isoformat(), **payload))

    for k in range(rng.randint(2, 6)):
        d = d0 + timedelta(days=rng.randint(0, 60))
        oid, iid = f"O{k}", f"I{k}"
        amt = rng.randint(100, 999)
        add(
            "order.placed",
            d,
            order_id=oid,
            order_date=d.isoformat(),
            amount=f"{amt}.00",
            currency="EUR",
        )
        r = rng.random()
        if r < 0.3:
            add("order.cancelled", d + timedelta(days=1), order_id=oid)
        elif r < 0.7:
            add(
                "order.changed",
                d + timedelta(days=2),
                order_id=oid,
                amount=f"{rng.randint(1, 999)}.00",
                currency="EUR",
            )
            moved = (d + timedelta(days=rng.randint(-5, 5))).isoformat()
            add("order.changed", d + timedelta(days=3), order_id=oid, order_date=moved)
            if rng.random() < 0.5:
                add(
                    "order.changed",
                    d + timedelta(days=4),
                    order_id=oid,
                    order_date=moved,
                    amount=f"{rng.randint(1, 999)}.00",
                    currency="EUR",
                )
        issue = d + timedelta(days=3)
        add(
            "invoice.issued",
            issue,
            invoice_id=iid,
            issue_date=issue.isoformat(),
            due_date=(issue + timedelta(days=30)).isoformat(),
            amount=f"{amt}.00",
            currency="EUR",
        )
        if rng.random() < 0.5:
            on = d + timedelta(days=rng.choice((10, 30)))  # before or after the payment
            add("invoice.disputed", on, invoice_id=iid)
            if rng.random() < 0.5:
                add("invoice.disputed", on + timedelta(days=10), invoice_id=iid, disputed=False)
        if rng.random() < 0.6:
            # paid in part or in full: a dispute then comes before or after the settlement
            part = amt if rng.random() < 0.5 else rng.randint(1, amt)
            add(
                "payment.received",
                d + timedelta(days=25),
                payment_id=f"P{k}",
                payment_date=(d + timedelta(days=25)).isoformat(),
                amount=f"{part}.00",
                currency="EUR",
                allocations=[{"invoice_id": iid, "amount": f"{part}.00"}],
            )
            if rng.random() < 0.3:  # a credit note reopens a settled invoice
                add(
                    "credit_note.issued",
                    d + timedelta(days=35),
                    credit_note_id=f"CN{k}",
                    invoice_id=iid,
                    issue_date=(d + timedelta(days=35)).isoformat(),
                    amount="50.00",
                    currency="EUR",
                )
    for _ in range(rng.randint(1, 3)):
        add(
            "bureau_score.changed",
            d0 + timedelta(days=rng.randint(0, 90)),
            score=rng.randint(300, 900),
        )
    return out


def _steps(events: list[Any], on: date) -> dict[str, float]:
    book = new_book("EUR")
    feats: dict[str, float] | None = None
    tally = None
    for e in events:
        st = step_event(book, e, feats, None, tally=tally)
        feats, tally = st.features, st.tally
    aged = step_clock(book, on, feats, None, tally=tally)
    assert aged is not None
    return aged.features


@pytest.mark.parametrize("seed", range(40))
def test_the_state_does_not_depend_on_the_order_events_arrive_in(seed: int) -> None:
    """Whatever order a customer's events arrive in, the state is the one they give in
    event-time order: a change of an order that came before the order, an older change after
    a newer one, a dispute and its clearing the wrong way round, an older bureau score after
    a newer one change nothing of what later events set."""
    rng = random.Random(seed)
    events = _mixed_history(rng)
    on = date(2026, 4, 30)
    want = _steps(sorted(events, key=lambda e: (e.event_time, e.event_id)), on)
    for _ in range(6):
        rng.shuffle(events)
        got = _steps(events, on)
        assert _same(got, want, tuple(want)), (seed, events)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {
                "event_id": "x",
                "type": "order.exploded",
                "event_time": "2026-01-01T00:00:00Z",
                "customer_id": "C",
                "payload": {},
            },
            "type",
        ),
        (
            {
                "event_id": "x",
                "type": "order.placed",
                "event_time": "2026-01-01T00:00:00",
                "customer_id": "C",
                "payload": {},
            },
            "timezone",
        ),
        (
            {
                "event_id": "x",
                "type": "order.cancelled",
                "event_time": "2026-01-01T00:00:00Z",
                "customer_id": "C",
                "payload": {"order_id": "O", "sql": "drop"},
            },
            "payload.sql",
        ),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(raw: Any, message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_event(raw)


# ------------------------------------------------- the step path against a recompute from scratch


def _stream(seed: int, n: int = 400) -> list[Any]:
    """A varied event stream of one customer: orders (changed, cancelled), invoices, partial,
    multi-invoice, repeated and late payments, credit notes on open and paid invoices
    (reopening them), disputes on and off, bureau scores, breaches; event times mostly moving
    forward, some arriving late (out of order) by up to 60 days."""
    rng = random.Random(seed)
    start = date(2026, 1, 1)
    invoices: list[tuple[str, int]] = []
    orders: list[str] = []
    out: list[Any] = []
    for i in range(n):
        day = start + timedelta(days=i * 400 // n)
        if rng.random() < 0.15:
            day -= timedelta(days=rng.randint(1, 60))  # late
        d = day.isoformat()
        amount = f"{rng.randint(1, 9000)}.{rng.randint(0, 99):02d}"
        r = rng.random()
        if not invoices:
            r = 0.3  # the first invoice
        if r < 0.2:
            oid = f"O{i}"
            orders.append(oid)
            out.append(
                _ev(
                    f"e{i}",
                    "order.placed",
                    d,
                    order_id=oid,
                    order_date=d,
                    amount=amount,
                    currency="EUR",
                )
            )
        elif r < 0.25 and orders:
            out.append(
                _ev(
                    f"e{i}",
                    "order.changed",
                    d,
                    order_id=rng.choice(orders),
                    amount=amount,
                    currency="EUR",
                )
            )
        elif r < 0.28 and orders:
            out.append(_ev(f"e{i}", "order.cancelled", d, order_id=rng.choice(orders)))
        elif r < 0.5 or not invoices:
            cents = rng.randint(100, 900000)
            inv = f"I{i}"
            invoices.append((inv, cents))
            due = (day + timedelta(days=rng.choice((0, 14, 30, 60)))).isoformat()
            out.append(
                _ev(
                    f"e{i}",
                    "invoice.issued",
                    d,
                    invoice_id=inv,
                    issue_date=d,
                    due_date=due,
                    amount=f"{cents / 100:.2f}",
                    currency="EUR",
                )
            )
        elif r < 0.78:
            pid = f"P{rng.randint(0, i)}" if rng.random() < 0.1 else f"P{i}"  # some repeated
            allocs = []
            for inv, cents in rng.sample(invoices, min(len(invoices), rng.choice((1, 1, 1, 2)))):
                part = cents if rng.random() < 0.6 else rng.randint(1, cents)
                allocs.append({"invoice_id": inv, "amount": f"{part / 100:.2f}"})
            total = sum(int(a["amount"].replace(".", "")) for a in allocs)
            out.append(
                _ev(
                    f"e{i}",
                    "payment.received",
                    d,
                    payment_id=pid,
                    payment_date=d,
                    amount=f"{total / 100:.2f}",
                    currency="EUR",
                    allocations=allocs,
                )
            )
        elif r < 0.86:
            inv, cents = rng.choice(invoices)
            out.append(
                _ev(
                    f"e{i}",
                    "credit_note.issued",
                    d,
                    credit_note_id=f"N{i}",
                    invoice_id=inv,
                    issue_date=d,
                    amount=f"{rng.randint(1, cents) / 100:.2f}",
                    currency="EUR",
                )
            )
        elif r < 0.92:
            out.append(
                _ev(
                    f"e{i}",
                    "invoice.disputed",
                    d,
                    invoice_id=rng.choice(invoices)[0],
                    disputed=rng.random() < 0.7,
                )
            )
        elif r < 0.97:
            out.append(_ev(f"e{i}", "bureau_score.changed", d, score=rng.randint(200, 900)))
        else:
            out.append(_ev(f"e{i}", "contract.breached", d, clause="minimum_volume"))
    return out


def _same(got: dict[str, float], want: dict[str, float], names: tuple[str, ...]) -> bool:
    for k in names:
        g, w = got[k], want[k]
        if math.isnan(w) or math.isnan(g):
            assert math.isnan(w) and math.isnan(g), k
        else:
            assert g == pytest.approx(w, rel=1e-12, abs=1e-6), k
    return True


@pytest.mark.parametrize("seed", range(4))
def test_each_step_equals_a_recompute_from_scratch(seed: int) -> None:
    """After every event the stepped book is the book the definition gives (each event
    applied, then settled at the book's date), the stepped features (running totals) are
    those recomputed from it, and its core features (the batch contract) equal those of a
    fresh book holding the same events, settled once at the same date. (Disputes count only
    on invoices still open when they arrive, so the dispute features depend on the arrival
    order by design.)"""
    from riskdesk.monitor.rules import Engine, default_rule_set
    from riskdesk.monitor.state import FEATURES, book_date

    engine = Engine.from_json(default_rule_set())
    events = _stream(seed)
    book = new_book("EUR")
    ref = new_book("EUR")
    prev = tally = None
    paid_seen = reopened = 0
    for i, ev in enumerate(events):
        was_paid = set(book["paid"])
        st = step_event(book, ev, prev, engine, tally=tally)
        prev, tally = st.features, st.tally
        reopened += bool(was_paid - set(book["paid"]) - {None})
        paid_seen += bool(book["paid"])
        as_of = book_date(book)
        assert as_of is not None
        apply_event(ref, ev)
        ref["asof"] = as_of.isoformat()
        settle(ref, as_of)
        assert book == ref
        assert _same(st.features, features(book, as_of), FEATURES)
        fresh = new_book("EUR")
        for e in events[: i + 1]:
            apply_event(fresh, e)
        settle(fresh, as_of)
        assert _same(st.features, features(fresh, as_of), CORE_FEATURES)
    assert paid_seen > 100 and reopened > 5


def test_the_one_payment_shortcut_of_the_paid_date_is_the_general_rule() -> None:
    from riskdesk.monitor.state import EPS, _paid_date

    rng = random.Random(1)
    t = 740_000
    for _ in range(20_000):
        amount = rng.choice((round(rng.uniform(0, 1e6), 2), 100.0, 0.0, 1e-3))
        a = rng.choice((amount, amount - EPS, amount - 0.01, amount + 0.01, amount / 2, 0.0))
        d = t + rng.choice((-30, -1, 0, 0, 1))
        far_note = [[t + 10**6, 5.0, "N"]]  # forces the general path, counts for nothing
        want = _paid_date(amount, [[d, a, "P"]], far_note, t)
        assert _paid_date(amount, [[d, a, "P"]], [], t) == want


def test_amounts_in_the_customers_currency_convert_like_the_general_rule() -> None:
    from decimal import Decimal

    from riskdesk.monitor.state import _conv

    rng = random.Random(2)
    on = date(2026, 1, 1)
    for _ in range(20_000):
        digits = rng.choice((0, 2, 2, 6, 7, 9))
        mag = rng.choice((1, 1000, 10**6, 10**8, 999_999_999, 10**9, 10**12))
        d = Decimal(rng.randint(0, mag * 10**digits)).scaleb(-digits)
        assert _conv(same_currency_only, d, "EUR", "EUR", on) == round(float(d) * 1.0, 6)


def test_overdue_crossings_are_the_marks_passed_by_open_invoices() -> None:
    from riskdesk.monitor.state import EPS, OVERDUE_MARKS, overdue_crossings

    rng = random.Random(4)
    base = date(2026, 1, 1).toordinal()
    for _ in range(300):
        book = new_book("EUR")
        for k in range(rng.randint(0, 12)):
            issue = base + rng.randint(0, 200)
            book["inv"][f"I{k}"] = [issue, issue + rng.choice((0, 30, 60)), 100.0, 0]
            if rng.random() < 0.4:
                book["al"][f"I{k}"] = [
                    [issue + rng.randint(0, 150), rng.choice((40.0, 100.0)), "P"]
                ]
        t0 = base + rng.randint(0, 300)
        t1 = t0 + rng.choice((0, 1, 5, 30, 90, 200))
        want = []
        for inv_id, (issue, due, amount, _) in book["inv"].items():
            marks = [m for m in OVERDUE_MARKS if t0 - due < m <= t1 - due]
            paid = sum(a[1] for a in book["al"].get(inv_id, ()) if a[0] <= t1)
            if issue <= t1 and marks and amount - paid > EPS:
                want.append((inv_id, float(max(marks)), round(amount - paid, 2)))
        got = overdue_crossings(book, date.fromordinal(t0), date.fromordinal(t1))
        assert [(c["invoice_id"], c["days_overdue"], c["balance"]) for c in got] == want
