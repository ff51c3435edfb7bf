"""The real-time customer state: a compact book per customer and the features derived from it.

The book keeps what the core features need and nothing more (amounts in the customer's
currency, dates as ordinals so the book is plain JSON):

* ``inv``: invoices not yet fully paid ``{id: [issue, due, amount, disputed]}``;
* ``al`` / ``cn``: allocations and credit notes per invoice ``{id: [[date, amount, ref], …]}``;
* ``paid``: invoices fully paid, kept while they matter for the 180-day payment behaviour
  ``{id: [paid_date, due, amount, issue, disputed, allocations, credit notes]}``;
* ``ord``: orders of the last 90 days ``{id: [date, amount, cancelled]}`` and ``last_order``;
* ``dsp`` (only once needed): disputes of invoices the book does not hold yet (events arrive
  out of order) ``{id: [date, disputed]}``, taken up when the invoice comes, dropped after
  180 days;
* a few signals (bureau score, disputes, contract breaches, market indices).

Applying an event touches one customer's book. :func:`features` recomputes the aggregates
from the open items; it is the definition, exactly that of
:func:`riskdesk.assess.features.core_state_features` (the shared feature contract), and the
result does not depend on the order events arrive in. The intake does not recompute: it keeps
the same aggregates as running totals next to the book (:mod:`riskdesk.monitor.tally`), so an
event costs the same whatever the size of the book.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from riskdesk.monitor.events import (
    BureauScoreChanged,
    ContractBreached,
    CreditNoteIssued,
    CustomerChanged,
    Event,
    InvoiceDisputed,
    InvoiceIssued,
    MarketIndexUpdated,
    OrderCancelled,
    OrderChanged,
    OrderPlaced,
    PaymentReceived,
)

EPS = 0.005
OVERDUE_MARKS = (31, 61, 91)
"""Days past due at which an invoice enters the next bucket; the clock raises an event."""

CORE_FEATURES: tuple[str, ...] = (
    "open_invoice_balance",
    "overdue_balance",
    "overdue_1_30",
    "overdue_31_60",
    "overdue_61_90",
    "overdue_90_plus",
    "max_days_overdue",
    "orders_count_90d",
    "orders_amount_90d",
    "days_since_last_order",
    "dbt_wavg_paid_180d",
)
EXTRA_FEATURES: tuple[str, ...] = (
    "open_invoices",
    "disputed_balance",
    "disputes_count",
    "breaches_count",
    "bureau_score",
)
FEATURES: tuple[str, ...] = CORE_FEATURES + EXTRA_FEATURES

FxFn = Callable[[str, str, date], float]
"""``fx(document_currency, customer_currency, on)`` → rate; raises LookupError when unknown."""


def same_currency_only(src: str, dst: str, on: date) -> float:
    if src == dst:
        return 1.0
    raise LookupError(f"no {src}/{dst} rate on or before {on.isoformat()}")


def new_book(currency: str) -> dict[str, Any]:
    return {
        "cur": currency.upper(),
        "asof": None,
        "inv": {},
        "al": {},
        "cn": {},
        "paid": {},
        "ord": {},
        "last_order": None,
        "bureau": None,
        "disputes": 0,
        "breaches": 0,
        "market": {},
    }


class StateError(ValueError):
    """An event that cannot be applied to the state (e.g. no FX rate); nothing was changed."""


_Q6 = Decimal("0.000001")


def _conv(fx: FxFn, amount: Any, src: str, dst: str, on: date) -> float:
    if src == dst:
        # the common case: an amount in the customer's currency with at most 6 decimals below
        # 10⁹ is its own float rounded to 6 decimals (the float is within 10⁻⁷ of it), so the
        # rounding is skipped; anything else takes the general path below
        try:
            if type(amount) is Decimal and amount.adjusted() < 9 and amount == amount.quantize(_Q6):
                return float(amount)
        except InvalidOperation:
            pass
        rate = 1.0
    else:
        try:
            rate = float(fx(src, dst, on))
        except LookupError as exc:
            raise StateError(str(exc)) from None
    return round(float(amount) * rate, 6)


Changed = tuple[list[str] | None, list[str] | None]
"""The invoices and the orders (their ids; None: none) an event may have changed in a book."""
_NOTHING: Changed = (None, None)


def apply_event(book: dict[str, Any], ev: Event, fx: FxFn = same_currency_only) -> Changed:
    """Apply one validated event to ``book`` in place; returns the invoices and orders it may
    have changed (for the running totals). Raises :class:`StateError` first, before changing
    anything, when the event cannot be applied."""
    p = ev.payload
    handler = _APPLY.get(type(p))
    if handler is None:
        handler = next((h for cls, h in _APPLY.items() if isinstance(p, cls)), None)
        if handler is None:
            return _NOTHING
    return handler(book, p, fx, ev.event_time.date())


def _order_placed(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    amt = _conv(fx, p.amount, p.currency, book["cur"], p.order_date)
    old = book["ord"].get(p.order_id)
    # cancelled already: its cancellation came first (late or out of order), and stays
    cancelled = 1 if old is not None and old[2] else 0
    book["ord"][p.order_id] = [p.order_date.toordinal(), amt, cancelled]
    return None, [p.order_id]


def _order_changed(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    cur = book["cur"]
    old = book["ord"].get(p.order_id)
    if old is None:
        if p.order_date is None or p.amount is None or p.currency is None:
            # an order outside the 90-day window (or unknown): nothing to update
            return _NOTHING
        old = [p.order_date.toordinal(), 0.0, 0]
    d = p.order_date or date.fromordinal(old[0])
    amt = old[1] if p.amount is None else _conv(fx, p.amount, p.currency or cur, cur, d)
    book["ord"][p.order_id] = [d.toordinal(), amt, old[2]]
    return None, [p.order_id]


def _order_cancelled(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    row = book["ord"].get(p.order_id)
    if row is None:
        # an order the book does not hold: placed more than 90 days ago (dropped), or not
        # come yet (events arrive out of order). Its cancellation is kept, dated on its day
        # (it counts nowhere and leaves the book 90 days later), so an order placement
        # arriving after it finds the order cancelled.
        book["ord"][p.order_id] = [day.toordinal(), 0.0, 1]
    else:
        row[2] = 1
    return None, [p.order_id]


def _invoice_issued(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    amt = _conv(fx, p.amount, p.currency, book["cur"], p.issue_date)
    if p.invoice_id in book["paid"]:
        return _NOTHING
    old = book["inv"].get(p.invoice_id)
    disputed = old[3] if old else 0
    if old is None and (early := book.get("dsp")) and p.invoice_id in early:
        # its dispute came first (late or out of order): the invoice comes disputed
        disputed = early.pop(p.invoice_id)[1]
        book["disputes"] += disputed
    book["inv"][p.invoice_id] = [
        p.issue_date.toordinal(),
        p.due_date.toordinal(),
        amt,
        disputed,
    ]
    return [p.invoice_id], None


def _payment_received(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    cur = book["cur"]
    amts = [
        (a.invoice_id, _conv(fx, a.amount, p.currency, cur, p.payment_date)) for a in p.allocations
    ]
    pay_day = p.payment_date.toordinal()
    for inv_id, amt in amts:
        _reopen(book, inv_id)
        lst = book["al"].setdefault(inv_id, [])
        if not any(x[2] == p.payment_id for x in lst):
            lst.append([pay_day, amt, p.payment_id])
    return [inv_id for inv_id, _ in amts], None


def _credit_note_issued(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    amt = _conv(fx, p.amount, p.currency, book["cur"], p.issue_date)
    _reopen(book, p.invoice_id)
    lst = book["cn"].setdefault(p.invoice_id, [])
    if not any(x[2] == p.credit_note_id for x in lst):
        lst.append([p.issue_date.toordinal(), amt, p.credit_note_id])
    return [p.invoice_id], None


def _invoice_disputed(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    row = book["inv"].get(p.invoice_id)
    if row is None:
        if p.invoice_id not in book["paid"]:  # (a settled invoice's dispute is not counted)
            # an invoice not come yet (events arrive out of order), or settled and dropped
            # long ago: the dispute is kept for it a while, and taken up if it comes
            early = book.setdefault("dsp", {})
            t = day.toordinal()
            for inv_id in [k for k, v in early.items() if v[0] <= t - 180]:
                del early[inv_id]
            early[p.invoice_id] = [t, 1 if p.disputed else 0]
        return _NOTHING
    was = row[3]
    row[3] = 1 if p.disputed else 0
    book["disputes"] += row[3] - was
    return [p.invoice_id], None


def _contract_breached(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    book["breaches"] += 1
    return _NOTHING


def _bureau_score_changed(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    book["bureau"] = float(p.score)
    return _NOTHING


def _market_index_updated(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    book["market"][p.code] = float(p.value)
    return _NOTHING


def _customer_changed(book: dict[str, Any], p: Any, fx: FxFn, day: date) -> Changed:
    cur = book["cur"]
    if p.currency and p.currency != cur and not book["inv"] and not book["ord"]:
        book["cur"] = p.currency
    return _NOTHING


_APPLY: dict[type, Callable[[dict[str, Any], Any, FxFn, date], Changed]] = {
    OrderPlaced: _order_placed,
    OrderChanged: _order_changed,
    OrderCancelled: _order_cancelled,
    InvoiceIssued: _invoice_issued,
    PaymentReceived: _payment_received,
    CreditNoteIssued: _credit_note_issued,
    InvoiceDisputed: _invoice_disputed,
    ContractBreached: _contract_breached,
    BureauScoreChanged: _bureau_score_changed,
    MarketIndexUpdated: _market_index_updated,
    CustomerChanged: _customer_changed,
}
"""What each payload model does to a book (looked up by the payload's class)."""


def _reopen(book: dict[str, Any], inv_id: str) -> None:
    """A late allocation or credit note for an invoice already settled: put it back among the
    open items so its paid date is recomputed from all its documents."""
    rec = book["paid"].pop(inv_id, None)
    if rec is None:
        return
    _, due, amount, issue, disputed, allocs, cns = rec
    book["inv"][inv_id] = [issue, due, amount, disputed]
    book["al"][inv_id] = allocs
    book["cn"][inv_id] = cns


def _paid_date(amount: float, allocs: list[list[Any]], cns: list[list[Any]], t: int) -> int | None:
    """Day (ordinal) at which the running balance first drops to ≤ EPS (allocations only
    close an invoice; credit notes issued on or before that day count)."""
    if not allocs:
        return None
    if len(allocs) == 1 and not cns:  # one payment, no credit note: the same sums, inline
        d, a, _ = allocs[0]
        return d if d <= t and amount - (0.0 + (0.0 + a)) - 0 <= EPS else None
    days: dict[int, float] = {}
    for d, a, _ in allocs:
        if d <= t:
            days[d] = days.get(d, 0.0) + a
    cum = 0.0
    for d in sorted(days):
        cum += days[d]
        credited = sum(c[1] for c in cns if c[0] <= d)
        if amount - cum - credited <= EPS:
            return d
    return None


def features(book: dict[str, Any], as_of: date) -> dict[str, float]:
    """The state features at ``as_of`` recomputed from the book's items (same definitions as
    the batch features). This is the definition; the intake keeps the same numbers as running
    totals (:class:`riskdesk.monitor.tally.Tally`) and the tests hold the two together."""
    t = as_of.toordinal()
    open_bal = overdue = b1 = b2 = b3 = b4 = disputed_bal = 0.0
    max_dpd = 0
    n_open = 0
    al, cn = book["al"], book["cn"]
    for inv_id, (issue, due, amount, disp) in book["inv"].items():
        if issue > t:
            continue
        bal = amount
        alst = al.get(inv_id)
        if alst:
            bal = bal - sum(a[1] for a in alst if a[0] <= t)
        clst = cn.get(inv_id)
        if clst:
            bal = bal - sum(c[1] for c in clst if c[0] <= t)
        if bal <= 0.0:
            continue
        open_bal += bal
        dpd = t - due
        if bal > EPS:
            n_open += 1
            if dpd > max_dpd:
                max_dpd = dpd
        if disp:
            disputed_bal += bal
        if dpd >= 1:
            overdue += bal
            if dpd <= 30:
                b1 += bal
            elif dpd <= 60:
                b2 += bal
            elif dpd <= 90:
                b3 += bal
            else:
                b4 += bal
    lo90 = t - 90
    n90 = 0
    amt90 = 0.0
    last = book["last_order"]
    for d, amt, cancelled in book["ord"].values():
        if cancelled or d > t:
            continue
        if d > lo90:
            n90 += 1
            amt90 += amt
        if last is None or d > last:
            last = d
    num = den = 0.0
    lo180 = t - 180
    for rec in book["paid"].values():
        paid_d = rec[0]
        if lo180 < paid_d <= t:
            w = max(rec[2], 0.0)
            num += max(0, paid_d - rec[1]) * w
            den += w
    bureau = book["bureau"]
    return {
        "open_invoice_balance": open_bal,
        "overdue_balance": overdue,
        "overdue_1_30": b1,
        "overdue_31_60": b2,
        "overdue_61_90": b3,
        "overdue_90_plus": b4,
        "max_days_overdue": float(max_dpd),
        "orders_count_90d": float(n90),
        "orders_amount_90d": amt90,
        "days_since_last_order": float(t - last) if last is not None else math.nan,
        "dbt_wavg_paid_180d": num / den if den > 0 else math.nan,
        "open_invoices": float(n_open),
        "disputed_balance": disputed_bal,
        "disputes_count": float(book["disputes"]),
        "breaches_count": float(book["breaches"]),
        "bureau_score": math.nan if bureau is None else float(bureau),
    }


def settle(book: dict[str, Any], as_of: date) -> bool:
    """Move invoices fully paid by ``as_of`` to ``paid`` and drop what no longer matters
    (paid more than 180 days ago, orders older than 90 days). Call with a date that never
    goes backwards. Returns whether an invoice moved: only that changes the features at
    ``as_of`` (what is dropped no longer counts in them)."""
    t = as_of.toordinal()
    inv, al, paid = book["inv"], book["al"], book["paid"]
    moved = False
    if al:  # only an invoice with allocations can be paid
        cn = book["cn"]
        for inv_id in [k for k in inv if k in al]:
            issue, due, amount, disputed = inv[inv_id]
            if issue > t:
                continue
            pd_ = _paid_date(amount, al[inv_id], cn.get(inv_id, []), t)
            if pd_ is not None:
                paid[inv_id] = [pd_, due, amount, issue, disputed, al[inv_id], cn.get(inv_id, [])]
                del inv[inv_id]
                al.pop(inv_id, None)
                cn.pop(inv_id, None)
                moved = True
    if paid:
        lo180 = t - 180
        for inv_id in [k for k, v in paid.items() if v[0] <= lo180]:
            del paid[inv_id]
    orders = book["ord"]
    if orders:
        lo90 = t - 90
        for oid in [k for k, v in orders.items() if v[0] <= lo90]:
            d, _, cancelled = orders.pop(oid)
            if not cancelled and (book["last_order"] is None or d > book["last_order"]):
                book["last_order"] = d
    return moved


def overdue_crossings(
    book: dict[str, Any], before: date | None, after: date
) -> list[dict[str, Any]]:
    """Invoices that passed 31, 61 or 91 days past due between ``before`` and ``after``
    while still open: the events time alone raises."""
    if before is None or after <= before:
        return []
    t0, t1 = before.toordinal(), after.toordinal()
    out: list[dict[str, Any]] = []
    al, cn = book["al"], book["cn"]
    # a mark can lie between the dates only when t1 − due ≥ the first mark and t0 − due < the
    # last one: due dates outside (lo, hi] are skipped at once (the common case)
    lo, hi = t0 - OVERDUE_MARKS[-1], t1 - OVERDUE_MARKS[0]
    for inv_id, row in book["inv"].items():
        due = row[1]
        if due > hi or due <= lo or row[0] > t1:
            continue
        amount = row[2]
        d0, d1 = t0 - due, t1 - due
        marks = [m for m in OVERDUE_MARKS if d0 < m <= d1]
        if not marks:
            continue
        bal = (
            amount
            - sum(a[1] for a in al.get(inv_id, ()) if a[0] <= t1)
            - sum(c[1] for c in cn.get(inv_id, ()) if c[0] <= t1)
        )
        if bal > EPS:
            out.append(
                {
                    "invoice_id": inv_id,
                    "days_overdue": float(max(marks)),
                    "balance": round(bal, 2),
                    "due_date": date.fromordinal(due).isoformat(),
                }
            )
    return out


def book_date(book: dict[str, Any]) -> date | None:
    asof = book.get("asof")
    return _day(asof) if asof else None


_DAYS: dict[str, date] = {}


def _day(iso: str) -> date:
    """``date.fromisoformat`` remembered (a book's date is read several times per event)."""
    d = _DAYS.get(iso)
    if d is None:
        d = date.fromisoformat(iso)
        if len(_DAYS) >= 10_000:
            _DAYS.clear()
        _DAYS[iso] = d
    return d


def dates_in(day: date, days: int) -> date:
    return day + timedelta(days=days)
