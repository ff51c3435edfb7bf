"""The customer state reducer on plain data: order independence, paid dates, ageing, FX."""

from __future__ import annotations

import copy
import itertools
import math
from datetime import date
from typing import Any

import pytest

from riskdesk.monitor.events import EventError, parse_event
from riskdesk.monitor.processor import step_clock, step_event
from riskdesk.monitor.state import StateError, apply_event, features, new_book, settle


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


def test_cancelled_orders_do_not_count() -> None:
    book = new_book("EUR")
    apply_event(
        book,
        _ev(
            "o1",
            "order.placed",
            "2026-01-10",
            order_id="O1",
            order_date="2026-01-10",
            amount="50.00",
            currency="EUR",
        ),
    )
    apply_event(
        book,
        _ev(
            "o2",
            "order.placed",
            "2026-01-20",
            order_id="O2",
            order_date="2026-01-20",
            amount="70.00",
            currency="EUR",
        ),
    )
    apply_event(book, _ev("o3", "order.cancelled", "2026-01-21", order_id="O2"))
    f = features(book, date(2026, 1, 30))
    assert (f["orders_count_90d"], f["orders_amount_90d"], f["days_since_last_order"]) == (
        1.0,
        50.0,
        20.0,
    )


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
