"""Each detector on small hand-built histories (see tests/seed.py: Book)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from riskdesk.identify.config import IdentifyConfig
from riskdesk.identify.detectors import (
    EVENT_COLUMNS,
    detect_all,
    detect_contract_breaches,
    detect_default,
    detect_demand_changes,
    detect_external,
    detect_market,
    detect_overdue,
    detect_partial_payments,
    detect_payment_worsening,
    to_events,
)

AS_OF = date(2026, 6, 30)


def ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


def rows(df: pd.DataFrame, manifestation: str) -> pd.DataFrame:
    return df[df["manifestation"] == manifestation]


def test_overdue_invoice_lands_in_its_ageing_bucket_with_evidence(book) -> None:
    c = book.customer()
    i_current = book.invoice(c, ago(20), ago(-10), 1000)
    i_20 = book.invoice(c, ago(50), ago(20), 300)
    i_75 = book.invoice(c, ago(105), ago(75), 400)
    ev = detect_overdue(book.frames(), AS_OF)
    by_subject = ev.set_index("subject")
    assert f"invoice:{i_current}" not in by_subject.index
    assert by_subject.loc[f"invoice:{i_20}", "manifestation"] == "credit.overdue_1_30"
    assert by_subject.loc[f"invoice:{i_75}", "manifestation"] == "credit.overdue_61_90"
    e = by_subject.loc[f"invoice:{i_75}", "evidence"]
    assert e["invoice_id"] == i_75 and e["days_overdue"] == 75 and e["balance"] == 400.0
    # first seen: the day the invoice entered its bucket
    assert by_subject.loc[f"invoice:{i_75}", "first_seen"] == pd.Timestamp(ago(75) + timedelta(61))
    assert list(ev.columns) == EVENT_COLUMNS


def test_partial_payments_spread_over_several_invoices_and_a_credit_note(book) -> None:
    c = book.customer()
    a = book.invoice(c, ago(100), ago(70), 500)
    b = book.invoice(c, ago(95), ago(65), 300)
    d = book.invoice(c, ago(90), ago(60), 200)
    # one payment settles a, part of b and part of d; a credit note settles the rest of d
    book.pay(c, ago(40), {a: 500, b: 100, d: 120})
    book.credit_note(c, d, ago(30), 80)
    f = book.frames()
    ev = detect_overdue(f, AS_OF)
    subjects = set(ev["subject"])
    assert f"invoice:{a}" not in subjects and f"invoice:{d}" not in subjects
    row = ev[ev["subject"] == f"invoice:{b}"].iloc[0]
    assert row["evidence"]["balance"] == 200.0
    partial = detect_partial_payments(f, AS_OF)
    assert set(partial["subject"]) == {f"invoice:{b}"}
    assert partial.iloc[0]["evidence"]["paid"] == 100.0


def test_a_payment_after_the_as_of_date_is_not_seen(book) -> None:
    c = book.customer()
    i = book.invoice(c, ago(70), ago(40), 1000)
    book.pay(c, ago(-5), {i: 1000})
    f = book.frames()
    assert set(detect_overdue(f, AS_OF)["subject"]) == {f"invoice:{i}"}
    assert detect_overdue(f, ago(-6)).empty


def test_invoice_in_another_currency_is_converted_with_the_rate_on_or_before_the_date(book) -> None:
    c = book.customer(currency="EUR")
    i = book.invoice(c, ago(60), ago(30), 1080, currency="USD")
    book.fx(ago(400), "EUR", "USD", 1.2)
    book.fx(ago(10), "EUR", "USD", 1.08)  # the newest rate on or before as_of
    book.fx(ago(-5), "EUR", "USD", 2.0)  # after as_of: not used
    ev = detect_overdue(book.frames(), AS_OF)
    e = ev[ev["subject"] == f"invoice:{i}"].iloc[0]["evidence"]
    assert e["currency"] == "USD" and e["customer_currency"] == "EUR"
    assert abs(e["balance_customer_currency"] - 1000.0) < 0.01


def test_small_overdue_balances_are_ignored_and_two_serious_invoices_escalate(book) -> None:
    c = book.customer()
    tiny = book.invoice(c, ago(80), ago(50), 10)
    one = book.invoice(c, ago(80), ago(45), 1000)
    ev = detect_overdue(book.frames(), AS_OF)
    assert f"invoice:{tiny}" not in set(ev["subject"])
    assert ev.set_index("subject").loc[f"invoice:{one}", "severity"] == "low"
    two = book.invoice(c, ago(90), ago(70), 800)
    ev = detect_overdue(book.frames(), AS_OF).set_index("subject")
    assert ev.loc[f"invoice:{one}", "severity"] == "medium"  # 31–60 raised: a pattern
    assert ev.loc[f"invoice:{two}", "severity"] == "medium"


def test_default_needs_a_material_amount_90_plus_days_overdue_or_a_bankruptcy(book) -> None:
    small = book.customer()
    book.invoice(small, ago(150), ago(120), 500)
    big = book.invoice(book.customer(), ago(150), ago(120), 5000)
    bankrupt = book.customer()
    sig = book.signal(bankrupt, "bankruptcy", ago(3))
    ev = detect_default(book.frames(), AS_OF).set_index("customer_id")
    assert small not in ev.index
    assert ev.loc[2, "severity"] == "critical" and ev.loc[2, "evidence"]["invoice_ids"] == [big]
    assert ev.loc[bankrupt, "evidence"]["signal_ids"] == [sig]
    assert ev.loc[bankrupt, "first_seen"] == pd.Timestamp(ago(3))


def _monthly_invoices(book, c: int, months: int, late_days_fn) -> None:
    for k in range(months, 0, -1):
        due = ago(30 * k)
        i = book.invoice(c, due - timedelta(30), due, 1000)
        late = late_days_fn(k)
        if due + timedelta(late) <= AS_OF:
            book.pay(c, due + timedelta(late), {i: 1000})


def test_payment_behaviour_worsening_against_the_customers_own_history(book) -> None:
    worse = book.customer()
    _monthly_invoices(book, worse, 14, lambda k: 2 if k > 3 else 45)
    steady = book.customer()
    _monthly_invoices(book, steady, 14, lambda k: 40)  # always late, but not worse
    ev = detect_payment_worsening(book.frames(), AS_OF)
    assert set(ev["customer_id"]) == {worse}
    e = ev.iloc[0]["evidence"]
    assert e["history_mean_days_beyond_terms"] == 2.0 and e["recent_mean_days_beyond_terms"] > 30
    assert ev.iloc[0]["severity"] == "medium"


def test_payment_terms_broken_repeatedly_and_disputes_piling_up(book) -> None:
    c = book.customer()
    _monthly_invoices(book, c, 6, lambda k: 40)
    d = book.customer()
    book.invoice(d, ago(20), ago(-10), 500, disputed=True)
    book.invoice(d, ago(25), ago(-5), 700, disputed=True)
    one = book.customer()
    book.invoice(one, ago(20), ago(-10), 500, disputed=True)
    ev = detect_contract_breaches(book.frames(), AS_OF)
    terms = rows(ev, "contract.terms_broken")
    assert set(terms["customer_id"]) == {c}
    assert terms.iloc[0]["evidence"]["broken_invoices"] >= 3
    disputes = rows(ev, "contract.disputes")
    assert set(disputes["customer_id"]) == {d}
    assert disputes.iloc[0]["evidence"]["disputed_balance"] == 1200.0


def test_minimum_volume_missed_in_the_last_completed_period_in_the_contracts_currency(book) -> None:
    short = book.customer()
    k = book.contract(short, date(2025, 1, 1), min_volume=10000, period="month", currency="EUR")
    book.order(short, date(2026, 5, 10), 3000)
    ok = book.customer(currency="USD")
    book.contract(ok, date(2025, 1, 1), min_volume=1000, period="month", currency="EUR")
    book.order(ok, date(2026, 5, 20), 1200, currency="USD")  # 1200 USD = 1000 EUR at 1.2
    book.fx(date(2026, 1, 1), "EUR", "USD", 1.2)
    ev = rows(detect_contract_breaches(book.frames(), AS_OF), "contract.min_volume_missed")
    assert set(ev["customer_id"]) == {short}
    e = ev.iloc[0]["evidence"]
    assert e["contract_id"] == k and e["period"] == "2026-05" and e["ordered"] == 3000.0
    assert ev.iloc[0]["severity"] == "low"  # 70 % short; medium from 75 %


def test_contract_expiring_without_renewal(book) -> None:
    lone = book.customer()
    k = book.contract(lone, date(2025, 1, 1), end=ago(-30))
    renewed = book.customer()
    book.contract(renewed, date(2025, 1, 1), end=ago(-30))
    book.contract(renewed, ago(-30), end=ago(-400))
    ev = rows(detect_contract_breaches(book.frames(), AS_OF), "contract.expiring")
    assert list(ev["subject"]) == [f"contract:{k}"]
    assert ev.iloc[0]["evidence"]["days_left"] == 30


def _orders_monthly(book, c: int, start: date, months: int, amount_fn, per_month: int = 3) -> None:
    for m in range(months):
        month = (pd.Timestamp(start) + pd.DateOffset(months=m)).date()
        for j in range(per_month):
            book.order(c, month + timedelta(days=3 + 8 * j), amount_fn(month))


def test_seasonal_dip_is_not_a_demand_drop_but_a_real_collapse_is(book) -> None:
    def seasonal(month: date) -> float:
        return 300.0 if month.month in (1, 2, 3, 4, 5, 6) else 3000.0  # quiet first half-year

    season = book.customer()
    _orders_monthly(book, season, date(2024, 7, 1), 24, seasonal)
    collapse = book.customer()
    _orders_monthly(
        book, collapse, date(2024, 7, 1), 24, lambda m: 2000.0 if m < date(2026, 1, 1) else 0.0
    )
    f = book.frames()
    f.orders = f.orders[f.orders["amount"] > 0]
    ev = rows(detect_demand_changes(f, AS_OF), "demand.volume_drop")
    assert set(ev["customer_id"]) == {collapse}
    e = ev.iloc[0]["evidence"]
    assert e["recent_amount"] == 0.0 and e["baseline_orders"] >= 6
    assert ev.iloc[0]["severity"] == "medium"


def test_silent_customer_and_a_customer_with_one_order(book) -> None:
    regular = book.customer()
    for k in range(12):
        book.order(regular, ago(200 - 10 * k), 100)  # every 10 days, last one 90 days ago
    single = book.customer()
    book.order(single, ago(300), 100)
    ev = rows(detect_demand_changes(book.frames(), AS_OF), "demand.silent")
    assert set(ev["customer_id"]) == {regular}
    assert ev.iloc[0]["evidence"]["usual_interval_days"] == 10.0


def test_unusual_order_spike(book) -> None:
    c = book.customer()
    for k in range(12):
        book.order(c, ago(60 + 30 * k), 1000)
    for k in range(6):
        book.order(c, ago(2 + 4 * k), 3000)
    calm = book.customer()
    for k in range(14):
        book.order(calm, ago(5 + 30 * k), 1000)
    ev = rows(detect_demand_changes(book.frames(), AS_OF), "demand.spike")
    assert set(ev["customer_id"]) == {c}
    assert ev.iloc[0]["evidence"]["factor"] > 3


def test_market_index_drop_reaches_every_exposed_customer_in_the_industry(book) -> None:
    exposed = [book.customer(industry="steel"), book.customer(industry="steel")]
    paid_up = book.customer(industry="steel")
    other = book.customer(industry="food")
    for c in [*exposed, other]:
        book.invoice(c, ago(10), ago(-20), 1000)
    for m, v in enumerate([100, 100, 98, 95, 90, 85, 80, 75]):
        book.index("STEEL", ago(210 - 30 * m), v, industry="steel")
        book.index("FOOD", ago(210 - 30 * m), 100 + m, industry="food")
    ev = detect_market(book.frames(), AS_OF)
    assert set(ev["customer_id"]) == set(exposed)
    assert set(ev["subject"]) == {"index:STEEL"} and paid_up not in set(ev["customer_id"])
    e = ev.iloc[0]["evidence"]
    assert e["change"] == -0.25 and e["exposure"] == 1000.0
    assert set(ev["severity"]) == {"medium"}


def test_bureau_score_drop_and_legal_events(book) -> None:
    c = book.customer()
    for k, v in enumerate([70, 72, 71, 50]):
        book.signal(c, "bureau_score", ago(270 - 90 * k), v)
    stable = book.customer()
    for k, v in enumerate([70, 72, 71, 69]):
        book.signal(stable, "bureau_score", ago(270 - 90 * k), v)
    sued = book.customer()
    s = book.signal(sued, "legal_event", ago(10))
    book.signal(sued, "legal_event", ago(400))  # too old to count
    ev = detect_external(book.frames(), AS_OF)
    bureau = rows(ev, "external.bureau_drop")
    assert set(bureau["customer_id"]) == {c}
    assert bureau.iloc[0]["evidence"]["reference_score"] == 71.0
    assert bureau.iloc[0]["severity"] == "medium"
    legal = rows(ev, "external.legal_event")
    assert list(legal["subject"]) == [f"signal:{s}"] and legal.iloc[0]["severity"] == "high"


def test_detect_all_gives_unique_keys_and_risk_events(book) -> None:
    c = book.customer()
    book.invoice(c, ago(200), ago(170), 5000)
    book.signal(c, "write_off", ago(5))
    ev = detect_all(book.frames(), AS_OF)
    assert not ev.duplicated(["customer_id", "manifestation", "subject"]).any()
    events = to_events(ev)
    kinds = {e.manifestation for e in events}
    assert {"credit.overdue_90_plus", "credit.default"} <= kinds
    assert all(e.key[0] == c for e in events)


def test_thresholds_come_from_the_configuration(book) -> None:
    c = book.customer()
    book.invoice(c, ago(200), ago(170), 800)
    strict = IdentifyConfig.merged({"credit": {"default_min_amount": 500}})
    assert detect_default(book.frames(), AS_OF).empty
    assert len(detect_default(book.frames(), AS_OF, strict)) == 1


def test_empty_portfolio_gives_no_events(book) -> None:
    assert detect_all(book.frames(), AS_OF).empty
