"""One step of the real-time monitor, on plain data: apply the event to the book, bring its
running totals (the features) to the event's day, evaluate the rules. The store calls this per
event; dry runs call it over the stored history without touching any table."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from riskdesk.domain.isotime import iso_date
from riskdesk.monitor.events import Event, EventError, parse_event
from riskdesk.monitor.rules import Engine, Hit
from riskdesk.monitor.state import (
    FxFn,
    StateError,
    apply_event,
    book_date,
    same_currency_only,
)
from riskdesk.monitor.tally import Tally

_AMOUNT_DATE = {
    "order.placed": "order_date",
    "order.changed": "order_date",
    "invoice.issued": "issue_date",
    "payment.received": "payment_date",
    "credit_note.issued": "issue_date",
}


_SCOPE_FIELDS = (
    "currency",
    "score",
    "clause",
    "code",
    "value",
    "disputed",
    "invoice_id",
    "order_id",
)


class _ScopeReader:
    """How to read one payload model's scope fields: their names (in ``_SCOPE_FIELDS``
    order), one ``attrgetter`` for all of them (asking a pydantic model for an attribute it
    does not have is slow, so only fields the model has are read), and whether it has
    ``amount`` / ``currency`` and which date field dates its amount."""

    __slots__ = ("names", "get", "amount", "currency")

    def __init__(self, model: type) -> None:
        have = getattr(model, "model_fields", {})
        self.names = tuple(k for k in _SCOPE_FIELDS if k in have)
        self.amount = "amount" in have
        self.currency = "currency" in have
        if not self.names:
            self.get: Callable[[Any], tuple[Any, ...]] = lambda p: ()
        elif len(self.names) == 1:
            one = operator.attrgetter(self.names[0])
            self.get = lambda p: (one(p),)
        else:
            self.get = operator.attrgetter(*self.names)


_READERS: dict[type, _ScopeReader] = {}


@dataclass(slots=True)
class Step:
    """What one event (or clock tick) did to one customer."""

    features: dict[str, float]
    hits: list[tuple[Hit, dict[str, Any]]] = field(default_factory=list)
    """Each rule hit with the event scope it fired on (for the alert's evidence)."""
    tally: Tally | None = None
    """The book's running totals after the step (pass them to the next step)."""


def event_scope(ev: Event, book: dict[str, Any], fx: FxFn) -> dict[str, Any]:
    """The ``event.*`` fields rules can read (the values ``model_dump(exclude_none=True)``
    gives, read from the payload's attributes)."""
    p = ev.payload
    rd = _READERS.get(type(p))
    if rd is None:
        rd = _READERS[type(p)] = _ScopeReader(type(p))
    out: dict[str, Any] = {"type": ev.type}
    for k, v in zip(rd.names, rd.get(p), strict=True):
        if v is not None:
            out[k] = v
    amount = p.amount if rd.amount else None  # type: ignore[attr-defined]
    if amount is not None:
        famt = float(amount)
        out["amount"] = famt
        bcur = book["cur"]
        cur = (p.currency if rd.currency else None) or bcur  # type: ignore[attr-defined]
        if cur == bcur:
            out["amount_ccy"] = famt * 1.0
        else:
            day_field = _AMOUNT_DATE.get(ev.type)
            on = (getattr(p, day_field) if day_field else None) or ev.event_time.date()
            try:
                out["amount_ccy"] = famt * float(fx(cur, bcur, on))
            except LookupError:
                pass
    return out


def _tick_hits(
    engine: Engine | None,
    prev: dict[str, float],
    crossings: list[dict[str, Any]],
    state: dict[str, float],
    customer: dict[str, Any],
    rating: dict[str, Any],
) -> list[tuple[Hit, dict[str, Any]]]:
    if engine is None:
        return []
    out: list[tuple[Hit, dict[str, Any]]] = []
    scopes: list[dict[str, Any]] = [{"type": "clock.tick"}]
    scopes += [{"type": "invoice.overdue", **c} for c in crossings]
    for ev in scopes:
        out += [(h, ev) for h in engine.evaluate_parts((state, prev, ev, customer, rating))]
    return out


def _tally_of(book: dict[str, Any], tally: Tally | None) -> Tally:
    if tally is None:
        return Tally(book)
    if tally.book is not book:
        raise ValueError("the tally is of another book")
    return tally


def step_event(
    book: dict[str, Any],
    ev: Event,
    prev: dict[str, float] | None,
    engine: Engine | None,
    *,
    fx: FxFn = same_currency_only,
    customer: dict[str, Any] | None = None,
    rating: dict[str, Any] | None = None,
    tally: Tally | None = None,
) -> Step:
    """Apply ``ev`` to ``book`` (in place), bring its running totals to the event's day (or
    keep the book's date for a late event) and evaluate the rules.

    ``prev`` is the feature dict stored after the previous step (None for a new customer).
    ``tally`` holds the book's running totals (kept current in place; pass the
    :attr:`Step.tally` of the previous step, or None to build it from the book — that walks
    the book once). Raises :class:`riskdesk.monitor.state.StateError` before changing
    anything when the event cannot be applied.
    """
    customer = customer or {}
    rating = rating or {}
    day = ev.event_time.date()
    tl = _tally_of(book, tally)
    escope = event_scope(ev, book, fx)
    invoices, orders = apply_event(book, ev, fx)  # raises before mutating
    hits: list[tuple[Hit, dict[str, Any]]] = []
    if tl.t is None:  # the book's first date
        book["asof"] = iso_date(day)
        tl.start(day)
        state = tl.features()
        prev = prev or state
    else:
        t0 = tl.t
        crossings = tl.advance(day, invoices, orders)
        if tl.t > t0:  # a later day: the book's date moves with it
            book["asof"] = iso_date(day)
        state = tl.features()
        if crossings:  # time passed invoices over an overdue mark: a tick first
            hits += _tick_hits(engine, prev or state, crossings, state, customer, rating)
            prev = state
    if engine is not None:
        found = engine.evaluate_parts((state, prev or state, escope, customer, rating))
        if found:
            hits += [(h, escope) for h in found]
    return Step(state, hits, tl)


def step_clock(
    book: dict[str, Any],
    as_of: date,
    prev: dict[str, float] | None,
    engine: Engine | None,
    *,
    customer: dict[str, Any] | None = None,
    rating: dict[str, Any] | None = None,
    tally: Tally | None = None,
) -> Step | None:
    """Age ``book`` to ``as_of``; None when its clock is already there."""
    current = book_date(book)
    if current is not None and as_of <= current:
        return None
    tl = _tally_of(book, tally)
    if tl.t is None:
        book["asof"] = as_of.isoformat()
        tl.start(as_of)
        state = tl.features()
        crossings: list[dict[str, Any]] = []
    else:
        if prev is None:
            prev = tl.features()
        crossings = tl.advance(as_of)
        book["asof"] = as_of.isoformat()
        state = tl.features()
    hits = _tick_hits(engine, prev or state, crossings, state, customer or {}, rating or {})
    return Step(state, hits, tl)


@dataclass(slots=True)
class Replay:
    """A customer's book rebuilt from its stored events, one at a time (:meth:`add`, in
    event-time order, then :meth:`finish`), with no rules: what the real-time state would be
    had these events come alone."""

    book: dict[str, Any]
    fx: FxFn = same_currency_only
    customer: dict[str, Any] | None = None
    features: dict[str, float] | None = None
    """The running totals after the last step (None while no event could be applied)."""
    tally: Tally | None = None
    applied: int = 0
    skipped: list[tuple[str | None, str]] = field(default_factory=list)
    """Events left out, as (event id, reason): bodies that are not valid events any more
    (stored before a check that now refuses them) and events the book refuses."""

    def add(self, body: Any) -> None:
        """Apply one stored event body (a raw mapping). An event that is not valid or that
        the book refuses is skipped with its reason; any other fault (a bug in the core) is
        raised, with the book perhaps half changed."""
        try:
            ev = parse_event(body)
        except EventError as exc:
            eid = body.get("event_id") if isinstance(body, dict) else None
            self.skipped.append((eid if isinstance(eid, str) else None, str(exc)))
            return
        try:
            st = step_event(
                self.book,
                ev,
                self.features,
                None,
                fx=self.fx,
                customer=self.customer,
                tally=self.tally,
            )
        except StateError as exc:
            self.skipped.append((ev.event_id, str(exc)))
            return
        self.features, self.tally = st.features, st.tally
        self.applied += 1

    def finish(self, as_of: date | None) -> None:
        """Age the book to ``as_of`` when that is later than its last event's day, as the
        clock would have done (nothing when no event was applied)."""
        if as_of is None or not self.applied:
            return
        aged = step_clock(
            self.book, as_of, self.features, None, customer=self.customer, tally=self.tally
        )
        if aged is not None:
            self.features, self.tally = aged.features, aged.tally
