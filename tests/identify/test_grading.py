"""Severity design: market context, bureau drops graded by size, level and persistence, and
escalation when independent symptoms coincide (see detectors.grade)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from riskdesk.identify.config import IdentifyConfig
from riskdesk.identify.detectors import detect_all, detect_external

AS_OF = date(2026, 6, 30)


def ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


def severity(ev: pd.DataFrame, customer: int, manifestation: str) -> str:
    hit = ev[(ev["customer_id"] == customer) & (ev["manifestation"] == manifestation)]
    assert len(hit) == 1, hit
    return str(hit.iloc[0]["severity"])


def steel_downturn(book) -> None:  # type: ignore[no-untyped-def]
    for m, v in enumerate([100, 100, 98, 95, 90, 85, 80, 75]):  # -25 %: medium for the index
        book.index("STEEL", ago(210 - 30 * m), v, industry="steel")


def test_a_market_drop_alone_is_low_and_with_late_payments_it_is_medium(book) -> None:
    clean, late = book.customer(industry="steel"), book.customer(industry="steel")
    book.invoice(clean, ago(10), ago(-20), 1000)
    book.invoice(late, ago(10), ago(-20), 1000)
    for d in (40, 50):  # two invoices 31-60 days overdue: a customer-level symptom
        book.invoice(late, ago(d + 30), ago(d), 800)
    steel_downturn(book)
    ev = detect_all(book.frames(), AS_OF)
    assert severity(ev, clean, "market.index_drop") == "low"
    assert severity(ev, late, "market.index_drop") == "medium"
    graded = ev[(ev["customer_id"] == clean) & (ev["manifestation"] == "market.index_drop")]
    assert graded.iloc[0]["evidence"]["graded"].startswith("context")


def test_a_market_drop_keeps_its_severity_for_a_material_exposure(book) -> None:
    big, small = book.customer(industry="steel"), book.customer(industry="steel")
    book.invoice(big, ago(10), ago(-20), 2_000_000)
    book.invoice(small, ago(10), ago(-20), 1000)
    steel_downturn(book)
    ev = detect_all(book.frames(), AS_OF)
    assert severity(ev, big, "market.index_drop") == "medium"
    assert severity(ev, small, "market.index_drop") == "low"
    everyone = IdentifyConfig.merged({"market": {"material_exposure": 0}})
    ev = detect_all(book.frames(), AS_OF, everyone)
    assert severity(ev, small, "market.index_drop") == "medium"


def test_material_exposure_is_measured_in_the_exposure_currency(book) -> None:
    cny = book.customer(currency="CNY", industry="steel")
    book.invoice(cny, ago(10), ago(-20), 2_000_000, currency="CNY")  # ~250,000 EUR
    book.fx(ago(100), "EUR", "CNY", 8.0)
    steel_downturn(book)
    assert severity(detect_all(book.frames(), AS_OF), cny, "market.index_drop") == "low"
    in_cny = IdentifyConfig.merged({"market": {"exposure_currency": "CNY"}})
    assert severity(detect_all(book.frames(), AS_OF, in_cny), cny, "market.index_drop") == "medium"


def test_bureau_drop_is_graded_by_size_level_and_persistence(book) -> None:
    dip = book.customer()  # one reading 20 % down at a good level: low until confirmed
    confirmed = book.customer()  # the same fall seen twice running: medium
    risky = book.customer()  # one reading, but down into the risk band: medium at once
    noise = book.customer()  # 5 points at 80: nothing
    collapse = book.customer()  # confirmed and down more than 30 %: high
    series = {
        dip: [80, 80, 80, 80, 64],
        confirmed: [80, 80, 80, 64, 64],
        risky: [62, 62, 62, 62, 48],
        noise: [80, 80, 80, 80, 75],
        collapse: [80, 80, 80, 50, 50],
    }
    for c, values in series.items():
        for k, v in enumerate(values):
            book.signal(c, "bureau_score", ago(300 - 60 * k), v)
    ev = detect_external(book.frames(), AS_OF)
    assert severity(ev, dip, "external.bureau_drop") == "low"
    assert severity(ev, confirmed, "external.bureau_drop") == "medium"
    assert severity(ev, risky, "external.bureau_drop") == "medium"
    assert severity(ev, collapse, "external.bureau_drop") == "high"
    assert noise not in set(ev["customer_id"])
    e = ev[ev["customer_id"] == confirmed].iloc[0]["evidence"]
    assert e["persistent"] is True and e["at_risk_level"] is False
    once = IdentifyConfig.merged({"external": {"bureau_persistence": 1}})
    assert severity(detect_external(book.frames(), AS_OF, once), dip, "external.bureau_drop") == (
        "medium"
    )


def test_a_small_fall_in_points_is_not_a_bureau_drop(book) -> None:
    c = book.customer()
    for k, v in enumerate([20, 20, 20, 16, 16]):  # 20 % but 4 points
        book.signal(c, "bureau_score", ago(300 - 60 * k), v)
    assert detect_external(book.frames(), AS_OF).empty
    loose = IdentifyConfig.merged({"external": {"bureau_min_points": 3}})
    assert severity(detect_external(book.frames(), AS_OF, loose), c, "external.bureau_drop") == (
        "medium"  # at 16 it is in the risk band anyway
    )


def test_symptoms_from_several_independent_sources_escalate(book) -> None:
    many, two = book.customer(), book.customer()
    for c in (many, two):
        for k, v in enumerate([80, 80, 80, 80, 64]):  # unconfirmed bureau dip: low
            book.signal(c, "bureau_score", ago(300 - 60 * k), v)
        paid_late = book.invoice(c, ago(90), ago(60), 1000)  # credit: partial payment (low)
        book.pay(c, ago(30), {paid_late: 400})
    for k in range(20):  # demand: silent for 5 months after regular monthly orders
        book.order(many, ago(150 + 30 * k), 1000)
    ev = detect_all(book.frames(), AS_OF)
    assert severity(ev, many, "external.bureau_drop") == "medium"
    assert severity(ev, many, "demand.silent") == "medium"
    assert severity(ev, two, "external.bureau_drop") == "low"
    assert severity(ev, two, "credit.partial_payment") == "low"
    stricter = IdentifyConfig.merged({"combine": {"escalate_sources": 4}})
    ev = detect_all(book.frames(), AS_OF, stricter)
    assert severity(ev, many, "external.bureau_drop") == "low"


def test_unknown_context_severity_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown severity"):
        IdentifyConfig.merged({"market": {"context_severity": "mild"}})


def test_a_demand_collapse_is_medium_only_when_seen_two_months_running(book) -> None:
    lumpy, gone = book.customer(), book.customer()
    for c in (lumpy, gone):
        for k in range(18):  # monthly orders from July 2024 to December 2025
            month = date(2024 + (6 + k) // 12, (6 + k) % 12 + 1, 5)
            big = c == lumpy and month == date(2025, 12, 5)
            book.order(c, month, 12000 if big else 2000)
    ev = detect_all(book.frames(), AS_OF)
    # both ordered nothing this half-year; the lumpy one had pre-ordered in December, so its
    # window ending a month ago was no drop yet: one reading, low
    assert severity(ev, gone, "demand.volume_drop") == "medium"
    assert severity(ev, lumpy, "demand.volume_drop") == "low"
    once = IdentifyConfig.merged({"demand": {"persistence_days": 0}})
    assert severity(detect_all(book.frames(), AS_OF, once), lumpy, "demand.volume_drop") == "medium"
