"""The real-time customer state: a compact book per customer and the features derived from it.

The book keeps what the core features need and nothing more (amounts in the customer's
currency, dates as ordinals so the book is plain JSON):

* ``inv``: invoices not yet fully paid ``{id: [issue, due, amount, disputed]}``, with the
  version of the dispute flag as a fifth item once a dispute event set it;
* ``al`` / ``cn``: allocations and credit notes per invoice ``{id: [[date, amount, ref], …]}``;
* ``paid``: invoices fully paid, kept while they matter for the 180-day payment behaviour
  ``{id: [paid_date, due, amount, issue, disputed, allocations, credit notes]}``, with the
  dispute flag's version as an eighth item once a dispute event set it;
* ``ord``: orders of the last 90 days ``{id: [date, amount, cancelled]}`` and
  ``last_order``; once a change set its date or amount, the order's row holds the version of
  the change as a fourth item (and a fifth, the amount's, when that is another);
* a few signals (bureau score, disputes, contract breaches, market indices), and ``sv``
  (only once needed) the versions of the bureau score and the market indices;
* ``dsp`` and ``och`` (only once needed): disputes and order changes of invoices and orders
  the book does not hold yet ``{id: [date, …, version]}``, taken up when the document
  comes, dropped after 180 and 90 days.

Events arrive late and out of order. A fact that a later event can replace (an order's date
and amount, a dispute flag, a bureau score, an index value) keeps the *version* of the event
that set it — its event time in microseconds and its id, ``"<18 digits>|<id>"``, which sort
as (event time, event id) — and an event older than that version changes nothing of it, so
the book does not depend on the order events arrive in. Books written before versions were
kept have none: any event replaces such a fact, as it did then.

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
from datetime import UTC, date, datetime, timedelta
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
    return handler(book, p, fx, ev)


_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def version(ev: Event) -> str:
    """The event's version: its event time in microseconds since the year 1 (18 digits,
    zero-padded) and its id; versions sort as (event time, event id), the order a replay
    applies events in."""
    d = ev.event_time - _EPOCH
    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    return f"{us:018d}|{ev.event_id}"


def _newer(v: str, old: Any) -> bool:
    """Whether version ``v`` replaces a fact set at version ``old`` (None: no version kept)."""
    return old is None or v > old


def _drop_older(early: dict[str, list[Any]], t: int, days: int) -> None:
    """Drop the entries of ``early`` dated ``days`` or more before day ``t``."""
    for key in [k for k, v in early.items() if v[0] <= t - days]:
        del early[key]


def _order_row(old: list[Any] | None) -> tuple[int | None, float, int, Any, Any]:
    """An order row's date, amount, cancelled flag and the versions of date and amount."""
    if old is None:
        return None, 0.0, 0, None, None
    vd = old[3] if len(old) > 3 else None
    return old[0], old[1], old[2], vd, old[4] if len(old) > 4 else vd


def _set_order(
    book: dict[str, Any], oid: str, d: int, amt: float, cancelled: int, vd: Any, va: Any
) -> None:
    row: list[Any] = [d, amt, cancelled]
    if vd is not None or va is not None:
        row.append(vd)
        if va != vd:
            row.append(va)
    book["ord"][oid] = row


def _order_placed(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    cur = book["cur"]
    amt = _conv(fx, p.amount, p.currency, cur, p.order_date)
    d0, amt0, cancelled, vd, va = _order_row(book["ord"].get(p.order_id))
    # what the book holds already came first (late or out of order): a cancellation stays,
    # and so do a date or an amount a change set (a change is the later word: the placement
    # keeps no version, any change replaces what it set)
    d, amt = (p.order_date.toordinal() if vd is None else d0), (amt if va is None else amt0)
    new_vd, new_va = vd, va
    assert d is not None
    early = book.get("och")
    held = early.get(p.order_id) if early else None
    if held is not None:  # changes that came before the order
        _, ed, ea = held
        if ed is not None and _newer(ed[1], new_vd):
            d, new_vd = date.fromisoformat(ed[0]).toordinal(), ed[1]
        if ea is not None and _newer(ea[2], new_va):
            amt, new_va = _conv(fx, Decimal(ea[0]), ea[1] or cur, cur, date.fromordinal(d)), ea[2]
        del book["och"][p.order_id]  # (only now: a refused conversion changes nothing)
    _set_order(book, p.order_id, d, amt, cancelled, new_vd, new_va)
    return None, [p.order_id]


def _order_changed(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    cur = book["cur"]
    v = version(ev)
    old = book["ord"].get(p.order_id)
    if old is None:
        if p.order_date is None or p.amount is None or p.currency is None:
            # an order the book does not hold (placed more than 90 days ago, or not come
            # yet) and a change that does not say all of it: kept a while, and taken up if
            # the order comes
            early = book.setdefault("och", {})
            t = ev.event_time.date().toordinal()
            _drop_older(early, t, 90)
            _, ed, ea = early.get(p.order_id) or (t, None, None)
            if p.order_date is not None and (ed is None or _newer(v, ed[1])):
                ed = [p.order_date.isoformat(), v]
            if p.amount is not None and (ea is None or _newer(v, ea[2])):
                ea = [str(p.amount), p.currency, v]
            early[p.order_id] = [t, ed, ea]
            return _NOTHING
        d = p.order_date.toordinal()
        amt = _conv(fx, p.amount, p.currency, cur, p.order_date)
        _set_order(book, p.order_id, d, amt, 0, v, v)
        return None, [p.order_id]
    d0, amt0, cancelled, vd, va = _order_row(old)
    assert d0 is not None
    d, new_vd = (p.order_date.toordinal(), v) if p.order_date and _newer(v, vd) else (d0, vd)
    if p.amount is not None and _newer(v, va):
        amt, new_va = _conv(fx, p.amount, p.currency or cur, cur, date.fromordinal(d)), v
    else:
        amt, new_va = amt0, va
    _set_order(book, p.order_id, d, amt, cancelled, new_vd, new_va)
    return None, [p.order_id]


def _order_cancelled(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    row = book["ord"].get(p.order_id)
    if row is None:
        # an order the book does not hold: placed more than 90 days ago (dropped), or not
        # come yet (events arrive out of order). Its cancellation is kept, dated on its day
        # (it counts nowhere and leaves the book 90 days later), so an order placement
        # arriving after it finds the order cancelled.
        book["ord"][p.order_id] = [ev.event_time.date().toordinal(), 0.0, 1]
    else:
        row[2] = 1
    return None, [p.order_id]


def _invoice_issued(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    amt = _conv(fx, p.amount, p.currency, book["cur"], p.issue_date)
    if p.invoice_id in book["paid"]:
        return _NOTHING
    old = book["inv"].get(p.invoice_id)
    disputed = old[3] if old else 0
    dv = old[4] if old and len(old) > 4 else None  # the dispute flag's version
    if old is None and (early := book.get("dsp")) and p.invoice_id in early:
        # its dispute came first (late or out of order): the invoice comes disputed
        _, disputed, dv = early.pop(p.invoice_id)
        book["disputes"] += disputed
    row = [p.issue_date.toordinal(), p.due_date.toordinal(), amt, disputed]
    if dv is not None:
        row.append(dv)
    book["inv"][p.invoice_id] = row
    return [p.invoice_id], None


def _payment_received(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
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


def _credit_note_issued(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    amt = _conv(fx, p.amount, p.currency, book["cur"], p.issue_date)
    _reopen(book, p.invoice_id)
    lst = book["cn"].setdefault(p.invoice_id, [])
    if not any(x[2] == p.credit_note_id for x in lst):
        lst.append([p.issue_date.toordinal(), amt, p.credit_note_id])
    return [p.invoice_id], None


def _invoice_disputed(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    v = version(ev)
    flag = 1 if p.disputed else 0
    row = book["inv"].get(p.invoice_id)
    at = 4  # where the flag's version is kept: after an open invoice's four items
    if row is None:
        row = book["paid"].get(p.invoice_id)
        if row is None:
            # an invoice not come yet (events arrive out of order), or settled and dropped
            # long ago: the dispute is kept for it a while, and taken up if it comes
            early = book.setdefault("dsp", {})
            t = ev.event_time.date().toordinal()
            _drop_older(early, t, 180)
            held = early.get(p.invoice_id)
            if held is None or _newer(v, held[2]):
                early[p.invoice_id] = [t, flag, v]
            return _NOTHING
        # settled: its flag counts as an open invoice's does (whether the payment that
        # settled it came before or after the dispute)
        at = 7
    if not _newer(v, row[at] if len(row) > at else None):
        return _NOTHING  # a later dispute event came first
    flag_at = 3 if at == 4 else 4
    was = row[flag_at]
    row[flag_at] = flag
    if len(row) > at:
        row[at] = v
    else:
        row.append(v)
    book["disputes"] += flag - was
    return [p.invoice_id], None


def _contract_breached(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    book["breaches"] += 1
    return _NOTHING


def _signal(book: dict[str, Any], key: str, ev: Event) -> bool:
    """Whether ``ev`` replaces the signal ``key`` (bureau score, a market index): it is not
    older than the event that set it. Its version is then kept."""
    v = version(ev)
    sv = book.get("sv")
    if sv is not None and not _newer(v, sv.get(key)):
        return False
    (sv if sv is not None else book.setdefault("sv", {}))[key] = v
    return True


def _bureau_score_changed(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    if _signal(book, "bureau", ev):
        book["bureau"] = float(p.score)
    return _NOTHING


def _market_index_updated(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    if _signal(book, f"m:{p.code}", ev):
        book["market"][p.code] = float(p.value)
    return _NOTHING


def _customer_changed(book: dict[str, Any], p: Any, fx: FxFn, ev: Event) -> Changed:
    cur = book["cur"]
    if p.currency and p.currency != cur and not book["inv"] and not book["ord"]:
        book["cur"] = p.currency
    return _NOTHING


_APPLY: dict[type, Callable[[dict[str, Any], Any, FxFn, Event], Changed]] = {
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
    # [paid_date, due, amount, issue, disputed, allocations, credit notes(, flag version)]
    book["inv"][inv_id] = [rec[3], rec[1], rec[2], rec[4], *rec[7:]]
    book["al"][inv_id] = rec[5]
    book["cn"][inv_id] = rec[6]


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
    for inv_id, row in book["inv"].items():
        issue, due, amount, disp = row[0], row[1], row[2], row[3]
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
    for row in book["ord"].values():
        d, amt, cancelled = row[0], row[1], row[2]
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
            row = inv[inv_id]
            issue, due, amount, disputed = row[0], row[1], row[2], row[3]
            if issue > t:
                continue
            pd_ = _paid_date(amount, al[inv_id], cn.get(inv_id, []), t)
            if pd_ is not None:
                paid[inv_id] = [pd_, due, amount, issue, disputed, al[inv_id], cn.get(inv_id, [])]
                paid[inv_id] += row[4:]  # the dispute flag's version, if one is kept
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
            row = orders.pop(oid)
            d, cancelled = row[0], row[2]
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
