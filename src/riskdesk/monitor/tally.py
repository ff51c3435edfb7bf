"""The running totals of a customer book: the state features updated per event, not recomputed.

:func:`riskdesk.monitor.state.features` recomputes the features from every open item of a book.
A :class:`Tally` keeps them as running totals instead, next to the book, and an event changes
only the items it names: an invoice (issued, paid, credited, disputed) or an order. For each
item the tally remembers what it added to the totals; when the item changes, that share is
taken out and the new one put in. Time moves items too — an invoice enters the next overdue
bucket, an order leaves the 90-day window, a paid invoice the 180-day one, a document dated in
the future starts to count — so each item also has its next *wake-up day*, kept in a heap:
moving the clock re-derives just the items whose day came. The oldest overdue invoice and the
last order come from heaps as well (stale entries are dropped when they reach the top).

So an event costs O(1) item derivations plus O(log n) heap steps, n the customer's open items,
and a clock step costs one derivation per item whose wake-up day passed (each invoice has at
most four bucket days, one settlement and one expiry in its life). The work never depends on
the history or the size of the book; only building a tally for a book read from the database
walks the book once.

Money is summed in integer millionths (amounts in a book are rounded to 6 decimals), so the
totals are exact: no drift however many events pass, a balance that returns to nothing is
exactly 0, and "changed since last time" rules never fire on rounding noise. Each feature
equals the recomputed one up to the float rounding of the recomputation's own sums.
"""

from __future__ import annotations

import heapq
import math
from datetime import date
from typing import Any

from riskdesk.monitor.state import EPS, OVERDUE_MARKS, _paid_date, book_date

_U = 1_000_000
"""Money is counted in millionths of the book's currency."""

_INV, _ORD = 0, 1
"""The kinds of item in the wake-up heap (invoices, open or paid, and orders)."""


def _counted(docs: list[list[Any]], t: int, nxt: int | None) -> tuple[float, int | None]:
    """The sum of the documents ``[day, amount, ref]`` dated up to day ``t`` (added in order,
    as ``sum`` does), and the earliest later day of one, if before ``nxt``."""
    total = 0.0
    for d, a, _ in docs:
        if d <= t:
            total += a
        elif nxt is None or d < nxt:
            nxt = d
    return total, nxt


class Tally:
    """The running totals of ``book`` at its date (``book["asof"]``); see the module text.

    Build one with ``Tally(book)`` (walks the book once), then let
    :func:`riskdesk.monitor.processor.step_event` / ``step_clock`` keep it current. Anything
    else that changes the book must build a new one."""

    __slots__ = (
        "book",
        "t",
        "open_",
        "paid",
        "orders",
        "wake",
        "oldest",
        "latest",
        "open_u",
        "disputed_u",
        "buckets_u",
        "n_open",
        "n90",
        "amt90_u",
        "dbt_num",
        "dbt_den",
        "derived",
    )

    def __init__(self, book: dict[str, Any]) -> None:
        self.book = book
        day = book_date(book)
        self.t: int | None = day.toordinal() if day is not None else None
        # per item, what it added to the totals and its next wake-up day (see _invoice,
        # _add_paid, _order)
        self.open_: dict[str, tuple[int, int, bool, bool, int, int | None]] = {}
        self.paid: dict[str, tuple[int, int, int]] = {}
        self.orders: dict[str, tuple[bool, int, int, bool, int | None]] = {}
        # heaps of tuples (of atomic values: the garbage collector stops tracking them)
        self.wake: list[tuple[int, int, str]] = []  # (day, kind, id)
        self.oldest: list[tuple[int, str]] = []  # (due, invoice id) of open invoices above EPS
        self.latest: list[tuple[int, str]] = []  # (−date, order id) of orders that count
        self.open_u = self.disputed_u = self.n_open = 0
        self.buckets_u = [0, 0, 0, 0, 0]  # index 0 (not yet due) unused
        self.n90 = self.amt90_u = 0
        self.dbt_num = self.dbt_den = 0
        self.derived = 0
        """Items derived so far (what a step cost; the tests read it)."""
        if self.t is not None:
            self._derive_all()

    # ------------------------------------------------------------------ moving the book

    def start(self, day: date) -> None:
        """Give a book that had no date its first one (its items are derived at it)."""
        assert self.t is None
        self.t = day.toordinal()
        self._derive_all()

    def advance(
        self, day: date, invoices: list[str] | None = None, orders: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Bring the totals to ``day`` (never backwards) after an event that changed the
        ``invoices`` and ``orders`` named; returns the overdue crossings between the tally's
        previous date and ``day`` (as :func:`riskdesk.monitor.state.overdue_crossings`),
        oldest due date first."""
        t0 = self.t
        assert t0 is not None
        t1 = day.toordinal()
        if t1 < t0:
            t1 = t0
        self.t = t1
        wake = self.wake
        if wake and wake[0][0] <= t1:  # items whose day came (an item named twice: once)
            inv = dict.fromkeys(invoices or ())
            ords = dict.fromkeys(orders or ())
            open_, paid, recs = self.open_, self.paid, self.orders
            while wake and wake[0][0] <= t1:
                when, kind, key = heapq.heappop(wake)
                # an entry whose day is no longer its item's next one is stale (the item was
                # derived since, or is gone): nothing of it changes that day
                if kind == _INV:
                    rec = open_.get(key)
                    if rec is not None:
                        if rec[5] == when:
                            inv[key] = None
                    elif (prec := paid.get(key)) is not None and prec[2] == when:
                        inv[key] = None
                elif (orec := recs.get(key)) is not None and orec[4] == when:
                    ords[key] = None
            invoices, orders = list(inv), list(ords)
            if len(wake) > 4 * (len(self.open_) + len(self.paid) + len(self.orders)) + 64:
                self._rebuild_wake()
        crossings: list[dict[str, Any]] = []
        since = t0 if t1 > t0 else None
        if invoices:
            for key in invoices:
                self._invoice(key, since, crossings)
        if orders:
            for key in orders:
                self._order(key)
        if len(crossings) > 1:
            crossings.sort(key=lambda c: (c["due_date"], c["invoice_id"]))
        return crossings

    def _derive_all(self) -> None:
        book = self.book
        for key in list(book["inv"]) + list(book["paid"]):
            self._invoice(key, None, None)
        for key in list(book["ord"]):
            self._order(key)

    # ------------------------------------------------------------------ the features

    def features(self) -> dict[str, float]:
        """The state features at the tally's date (same names and definitions as
        :func:`riskdesk.monitor.state.features`)."""
        t = self.t
        assert t is not None
        book = self.book
        b = self.buckets_u
        oldest = self._oldest_due()
        last = self._last_order()
        bureau = book["bureau"]
        return {
            "open_invoice_balance": self.open_u / _U,
            "overdue_balance": (b[1] + b[2] + b[3] + b[4]) / _U,
            "overdue_1_30": b[1] / _U,
            "overdue_31_60": b[2] / _U,
            "overdue_61_90": b[3] / _U,
            "overdue_90_plus": b[4] / _U,
            "max_days_overdue": float(max(0, t - oldest)) if oldest is not None else 0.0,
            "orders_count_90d": float(self.n90),
            "orders_amount_90d": self.amt90_u / _U,
            "days_since_last_order": float(t - last) if last is not None else math.nan,
            "dbt_wavg_paid_180d": self.dbt_num / self.dbt_den if self.dbt_den > 0 else math.nan,
            "open_invoices": float(self.n_open),
            "disputed_balance": self.disputed_u / _U,
            "disputes_count": float(book["disputes"]),
            "breaches_count": float(book["breaches"]),
            "bureau_score": math.nan if bureau is None else float(bureau),
        }

    def _oldest_due(self) -> int | None:
        heap, recs = self.oldest, self.open_
        while heap:
            due, key = heap[0]
            rec = recs.get(key)
            if rec is not None and rec[2] and rec[4] == due:
                return int(due)
            heapq.heappop(heap)
        return None

    def _last_order(self) -> int | None:
        heap, recs = self.latest, self.orders
        best = self.book["last_order"]  # orders that left the 90-day window
        while heap:
            neg, key = heap[0]
            rec = recs.get(key)
            if rec is not None and rec[0] and rec[2] == -neg:
                return -neg if best is None or -neg > best else best
            heapq.heappop(heap)
        return best

    # ------------------------------------------------------------------ invoices

    def _invoice(self, key: str, since: int | None, crossings: list[dict[str, Any]] | None) -> None:
        """Re-derive invoice ``key`` (open, paid or gone) at the tally's date; settle it when
        it is paid by then (as :func:`riskdesk.monitor.state.settle`), and note its overdue
        crossings since ``since``."""
        self.derived += 1
        old = self.open_.pop(key, None)
        if old is not None:
            c, bucket, big, disp, _, _ = old
            if c:
                self.open_u -= c
                if disp:
                    self.disputed_u -= c
                if bucket:
                    self.buckets_u[bucket] -= c
            if big:
                self.n_open -= 1
        oldp = self.paid.pop(key, None) if self.paid else None
        if oldp is not None:
            self.dbt_num -= oldp[0]
            self.dbt_den -= oldp[1]
        book = self.book
        row = book["inv"].get(key)
        if row is None:
            if key in book["paid"]:
                self._add_paid(key, oldp)
            return
        t = self.t
        assert t is not None
        issue, due, amount, disputed = row[0], row[1], row[2], row[3]
        al, cn = book["al"], book["cn"]
        alst = al.get(key) if al else None
        clst = cn.get(key) if cn else None
        if issue > t:  # not issued yet at the tally's date: it counts from its issue day
            self.open_[key] = (0, 0, False, False, due, issue)
            if old is None or old[5] != issue:
                heapq.heappush(self.wake, (issue, _INV, key))
            return
        # the balance as the recomputation takes it (the same float operations in order);
        # ``nxt``: the first later day a document of it starts to count
        bal = amount
        nxt: int | None = None
        if alst:
            paid, nxt = _counted(alst, t, nxt)
            bal = bal - paid
        if clst:
            credited, nxt = _counted(clst, t, nxt)
            bal = bal - credited
        dpd = t - due
        big = bal > EPS
        if big and since is not None and crossings is not None and dpd >= 31 and since - due < 91:
            marks = [m for m in OVERDUE_MARKS if since - due < m <= dpd]
            if marks:
                crossings.append(
                    {
                        "invoice_id": key,
                        "days_overdue": float(max(marks)),
                        "balance": round(bal, 2),
                        "due_date": date.fromordinal(due).isoformat(),
                    }
                )
        if alst and bal <= EPS + 1e-6:  # (an invoice well above EPS is not paid by now)
            pd_ = _paid_date(amount, alst, clst or [], t)
            if pd_ is not None:  # paid by the tally's date: settle it
                del book["inv"][key]
                book["paid"][key] = [
                    pd_,
                    due,
                    amount,
                    issue,
                    disputed,
                    al.pop(key),
                    cn.pop(key, []),
                    *row[4:],  # the dispute flag's version, if one is kept
                ]
                self._add_paid(key, oldp)
                return
        if bal > 0.0:
            c = round(bal * _U)
            if dpd < 1:
                bucket = 0
                m = due + 1
            elif dpd <= 30:
                bucket = 1
                m = due + 31
            elif dpd <= 60:
                bucket = 2
                m = due + 61
            elif dpd <= 90:
                bucket = 3
                m = due + 91
            else:
                bucket = 4
                m = 0
            if m and (nxt is None or m < nxt):  # the next bucket day, while its money counts
                nxt = m
            self.open_u += c
            if bucket:
                self.buckets_u[bucket] += c
            disp = bool(disputed)
            if disp:
                self.disputed_u += c
        else:
            c = bucket = 0
            disp = bool(disputed)
        self.open_[key] = (c, bucket, big, disp, due, nxt)
        if big:
            self.n_open += 1
            if old is None or not old[2] or old[4] != due:
                heapq.heappush(self.oldest, (due, key))
                if len(self.oldest) > 2 * len(self.open_) + 64:
                    self.oldest = [(r[4], k) for k, r in self.open_.items() if r[2]]
                    heapq.heapify(self.oldest)
        if nxt is not None and (old is None or old[5] != nxt):
            heapq.heappush(self.wake, (nxt, _INV, key))

    def _add_paid(self, key: str, old: tuple[int, int, int] | None) -> None:
        """A paid invoice counts in the 180-day payment behaviour until 180 days after its
        paid date, then leaves the book (as :func:`riskdesk.monitor.state.settle`)."""
        book = self.book
        t = self.t
        assert t is not None
        rec = book["paid"][key]
        paid_d, due, amount = rec[0], rec[1], rec[2]
        if paid_d <= t - 180:
            del book["paid"][key]
            return
        if paid_d <= t:
            w = round(max(amount, 0.0) * _U)
            num = max(0, paid_d - due) * w
            self.dbt_num += num
            self.dbt_den += w
            nxt = paid_d + 180
        else:  # (a paid date is never after the date it was settled at; kept for safety)
            num = w = 0
            nxt = paid_d
        self.paid[key] = (num, w, nxt)
        if old is None or old[2] != nxt:
            heapq.heappush(self.wake, (nxt, _INV, key))

    # ------------------------------------------------------------------ orders

    def _order(self, key: str) -> None:
        """Re-derive order ``key`` at the tally's date: it counts in the 90-day window from its
        date on and leaves the book 90 days later (as :func:`riskdesk.monitor.state.settle`,
        which keeps its date as ``last_order``)."""
        self.derived += 1
        old = self.orders.pop(key, None)
        if old is not None and old[0]:
            self.n90 -= 1
            self.amt90_u -= old[1]
        book = self.book
        row = book["ord"].get(key)
        if row is None:
            return
        t = self.t
        assert t is not None
        d, amt, cancelled = row[0], row[1], row[2]
        if d <= t - 90:
            del book["ord"][key]
            if not cancelled and (book["last_order"] is None or d > book["last_order"]):
                book["last_order"] = d
            return
        counts = not cancelled and d <= t
        amt_u = round(amt * _U) if counts else 0
        nxt = d if d > t else d + 90
        self.orders[key] = (counts, amt_u, d, bool(cancelled), nxt)
        if counts:
            self.n90 += 1
            self.amt90_u += amt_u
            if old is None or not old[0] or old[2] != d:
                heapq.heappush(self.latest, (-d, key))
                if len(self.latest) > 2 * len(self.orders) + 64:
                    self.latest = [(-r[2], k) for k, r in self.orders.items() if r[0]]
                    heapq.heapify(self.latest)
        if old is None or old[4] != nxt:
            heapq.heappush(self.wake, (nxt, _ORD, key))

    def _rebuild_wake(self) -> None:
        wake = [(r[5], _INV, k) for k, r in self.open_.items() if r[5] is not None]
        wake += [(r[2], _INV, k) for k, r in self.paid.items()]
        wake += [(r[4], _ORD, k) for k, r in self.orders.items() if r[4] is not None]
        heapq.heapify(wake)
        self.wake = wake
