from datetime import date
from decimal import Decimal

import pytest

from riskdesk.control.exposure import (
    CoverDoc,
    InvoiceDoc,
    OrderDoc,
    ReservationDoc,
    bucket_for,
    combine,
    compute_exposure,
)
from riskdesk.domain.money import FxTable, MissingRate

D = Decimal

ON = date(2026, 6, 30)


def fx() -> FxTable:
    return FxTable(
        [(date(2026, 6, 1), "USD", "EUR", D("0.9")), (date(2026, 6, 20), "USD", "EUR", D("0.8"))]
    )


def test_buckets_by_days_past_due() -> None:
    assert [bucket_for(d) for d in (-5, 0, 1, 30, 31, 60, 61, 90, 91)] == [
        "current",
        "current",
        "overdue_1_30",
        "overdue_1_30",
        "overdue_31_60",
        "overdue_31_60",
        "overdue_61_90",
        "overdue_61_90",
        "overdue_90_plus",
    ]


def test_exposure_adds_orders_invoice_balances_and_reservations_with_documents() -> None:
    e = compute_exposure(
        currency="EUR",
        as_of=ON,
        fx=fx(),
        orders=[
            OrderDoc(1, D("100"), "EUR", "open"),
            OrderDoc(2, D("50"), "EUR", "shipped"),
            OrderDoc(3, D("999"), "EUR", "invoiced"),
        ],
        invoices=[
            InvoiceDoc(10, D("300"), "EUR", date(2026, 7, 15), paid=D("100")),
            InvoiceDoc(11, D("200"), "EUR", date(2026, 6, 10), credited=D("20")),
            InvoiceDoc(12, D("80"), "EUR", date(2026, 2, 1)),
            InvoiceDoc(13, D("70"), "EUR", date(2026, 2, 1), paid=D("70")),
        ],
        reservations=[ReservationDoc(20, D("25"), "EUR")],
    )
    c = e.components
    assert c["open_orders"].amount == D("100") and c["open_orders"].docs == [1]
    assert c["shipped_not_invoiced"].docs == [2]
    assert c["current"].amount == D("200.00") and c["current"].docs == [10]
    assert c["overdue_1_30"].amount == D("180.00") and c["overdue_1_30"].docs == [11]
    assert c["overdue_90_plus"].docs == [12]
    assert 13 not in sum((f.docs for f in c.values()), [])
    assert e.gross == D("635.00")
    assert e.overdue == D("260.00")
    assert e.max_days_overdue == (ON - date(2026, 2, 1)).days


def test_foreign_currency_uses_latest_rate_on_or_before_the_date() -> None:
    e = compute_exposure(
        currency="EUR", as_of=ON, fx=fx(), orders=[OrderDoc(1, D("100"), "USD", "open")]
    )
    assert e.gross == D("80.00")
    e2 = compute_exposure(
        currency="EUR",
        as_of=date(2026, 6, 10),
        fx=fx(),
        orders=[OrderDoc(1, D("100"), "USD", "open")],
    )
    assert e2.gross == D("90.00")
    with pytest.raises(MissingRate):
        compute_exposure(
            currency="EUR", as_of=ON, fx=fx(), orders=[OrderDoc(1, D("1"), "GBP", "open")]
        )


def test_only_configured_components_count() -> None:
    e = compute_exposure(
        currency="EUR",
        as_of=ON,
        fx=fx(),
        orders=[OrderDoc(1, D("100"), "EUR", "open")],
        invoices=[InvoiceDoc(2, D("40"), "EUR", date(2026, 7, 1))],
        counted=["current"],
    )
    assert e.gross == D("40.00")
    with pytest.raises(ValueError):
        compute_exposure(currency="EUR", as_of=ON, fx=fx(), counted=["nonsense"])


def test_guarantee_covers_first_then_insurance_covers_its_share() -> None:
    e = compute_exposure(
        currency="EUR",
        as_of=ON,
        fx=fx(),
        orders=[OrderDoc(1, D("1000"), "EUR", "open")],
        covers=[
            CoverDoc(7, "insurance", D("500"), "EUR", D("0.9")),
            CoverDoc(8, "guarantee", D("200"), "EUR"),
        ],
    )
    assert e.guaranteed.amount == D("200.00") and e.guaranteed.docs == [8]
    assert e.insured.amount == D("450.00") and e.insured.docs == [7]
    assert e.net == D("350.00")
    gross, covered, net = e.after(D("100"))
    assert (gross, covered, net) == (D("1100.00"), D("650.00"), D("450.00"))


def test_unallocated_credit_notes_reduce_exposure_and_group_adds_members() -> None:
    a = compute_exposure(
        currency="EUR",
        as_of=ON,
        fx=fx(),
        orders=[OrderDoc(1, D("100"), "EUR", "open")],
        unallocated_credits=[ReservationDoc(5, D("30"), "EUR")],
    )
    b = compute_exposure(
        currency="EUR",
        as_of=ON,
        fx=fx(),
        invoices=[InvoiceDoc(2, D("50"), "EUR", date(2026, 5, 1))],
    )
    assert a.gross == D("70.00")
    g = combine([a, b])
    assert g.gross == D("120.00")
    assert g.components["overdue_31_60"].docs == [2]
    assert g.max_days_overdue == 60
