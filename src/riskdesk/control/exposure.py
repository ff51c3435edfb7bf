"""Exposure: what a customer (or a group of related companies) owes us or will owe us.

Pure logic on plain data. Every figure is an exact ``Decimal`` in the target (limit) currency,
converted with dated FX rates, and carries the ids of the documents behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from riskdesk.domain.money import CENT, FxTable

ZERO = Decimal("0")

BUCKETS = ("current", "overdue_1_30", "overdue_31_60", "overdue_61_90", "overdue_90_plus")
"""Ageing buckets of open invoices (days past due)."""

COMPONENTS = ("open_orders", "shipped_not_invoiced", "reserved", *BUCKETS)
"""Everything that can count towards exposure; which ones count is configuration."""


@dataclass(frozen=True, slots=True)
class OrderDoc:
    id: int
    amount: Decimal
    currency: str
    status: str  # open | shipped | invoiced | cancelled


@dataclass(frozen=True, slots=True)
class InvoiceDoc:
    """An invoice with what has been paid (allocations) and credited (credit notes) on it."""

    id: int
    amount: Decimal
    currency: str
    due_date: date
    paid: Decimal = ZERO
    credited: Decimal = ZERO
    status: str = "open"

    @property
    def balance(self) -> Decimal:
        return self.amount - self.paid - self.credited


@dataclass(frozen=True, slots=True)
class ReservationDoc:
    """Headroom held by an approved order that is not invoiced yet (in its own currency)."""

    id: int
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class CoverDoc:
    """Collateral: an insured buyer limit (``cover_pct`` < 1) or a guarantee / LC (1)."""

    id: int
    kind: str  # insurance | guarantee | letter_of_credit
    amount: Decimal
    currency: str
    cover_pct: Decimal = Decimal("1")


@dataclass
class Figure:
    """One exposure figure and the documents behind it."""

    amount: Decimal = ZERO
    docs: list[int] = field(default_factory=list)

    def add(self, amount: Decimal, doc: int) -> None:
        self.amount += amount
        self.docs.append(doc)

    def as_dict(self) -> dict[str, object]:
        return {"amount": self.amount.quantize(CENT), "docs": list(self.docs)}


@dataclass
class Exposure:
    """Exposure of one customer or group in ``currency`` on ``as_of``."""

    currency: str
    as_of: date
    components: dict[str, Figure]
    counted: tuple[str, ...]
    insured: Figure = field(default_factory=Figure)
    guaranteed: Figure = field(default_factory=Figure)
    unallocated_credit: Figure = field(default_factory=Figure)
    max_days_overdue: int = 0
    covers: list[Cover] = field(default_factory=list)

    @property
    def gross(self) -> Decimal:
        """Sum of the counted components less unallocated credit notes (never below 0)."""
        total = sum((self.components[c].amount for c in self.counted), ZERO)
        return max(ZERO, total - self.unallocated_credit.amount).quantize(CENT)

    @property
    def covered(self) -> Decimal:
        return (self.insured.amount + self.guaranteed.amount).quantize(CENT)

    @property
    def net(self) -> Decimal:
        """Gross exposure minus what insurance and guarantees/LCs cover."""
        return max(ZERO, self.gross - self.covered).quantize(CENT)

    @property
    def uninsured(self) -> Decimal:
        return self.net

    @property
    def overdue(self) -> Decimal:
        return sum((self.components[b].amount for b in BUCKETS[1:]), ZERO).quantize(CENT)

    def after(self, amount: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        """(gross, covered, net) if a new order of ``amount`` is added (single customer)."""
        gross = self.gross + amount
        ins, gua = apply_cover(gross, self.covers)
        covered = ins.amount + gua.amount
        return gross, covered, max(ZERO, gross - covered)

    def as_dict(self) -> dict[str, object]:
        return {
            "currency": self.currency,
            "as_of": self.as_of,
            "gross": self.gross,
            "insured": self.insured.as_dict(),
            "guaranteed": self.guaranteed.as_dict(),
            "covered": self.covered,
            "net": self.net,
            "overdue": self.overdue,
            "max_days_overdue": self.max_days_overdue,
            "unallocated_credit": self.unallocated_credit.as_dict(),
            "counted": list(self.counted),
            "components": {k: v.as_dict() for k, v in self.components.items()},
        }


def bucket_for(days_past_due: int) -> str:
    """The ageing bucket of an invoice ``days_past_due`` days after its due date."""
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "overdue_1_30"
    if days_past_due <= 60:
        return "overdue_31_60"
    if days_past_due <= 90:
        return "overdue_61_90"
    return "overdue_90_plus"


def compute_exposure(
    *,
    currency: str,
    as_of: date,
    fx: FxTable,
    orders: Iterable[OrderDoc] = (),
    invoices: Iterable[InvoiceDoc] = (),
    reservations: Iterable[ReservationDoc] = (),
    unallocated_credits: Iterable[ReservationDoc] = (),
    covers: Sequence[CoverDoc] = (),
    counted: Sequence[str] = COMPONENTS,
) -> Exposure:
    """Exposure in ``currency`` on ``as_of``; amounts converted at the rate of ``as_of``.

    Open orders and shipped-not-invoiced orders count at their amount; open invoices at their
    balance after payments and credit notes, by ageing bucket. ``covers`` reduce exposure:
    an insured buyer limit covers ``cover_pct`` of the exposure up to its amount; guarantees and
    letters of credit cover up to their amount.
    """
    unknown = set(counted) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown exposure components: {sorted(unknown)}")
    comps = {c: Figure() for c in COMPONENTS}

    def conv(amount: Decimal, ccy: str) -> Decimal:
        return amount * fx.rate(ccy, currency, as_of)

    for o in orders:
        if o.status == "open":
            comps["open_orders"].add(conv(o.amount, o.currency), o.id)
        elif o.status == "shipped":
            comps["shipped_not_invoiced"].add(conv(o.amount, o.currency), o.id)
    max_days = 0
    for inv in invoices:
        if inv.status in ("paid", "cancelled", "written_off"):
            continue
        bal = inv.balance
        if bal <= 0:
            continue
        days = (as_of - inv.due_date).days
        b = bucket_for(days)
        if b != "current":
            max_days = max(max_days, days)
        comps[b].add(conv(bal, inv.currency), inv.id)
    for r in reservations:
        comps["reserved"].add(conv(r.amount, r.currency), r.id)
    credit = Figure()
    for c in unallocated_credits:
        credit.add(conv(c.amount, c.currency), c.id)
    for f in comps.values():
        f.amount = f.amount.quantize(CENT)
    credit.amount = credit.amount.quantize(CENT)
    exp = Exposure(currency, as_of, comps, tuple(counted), unallocated_credit=credit)
    exp.covers = [Cover(c.id, c.kind, conv(c.amount, c.currency), c.cover_pct) for c in covers]
    exp.max_days_overdue = max_days
    exp.insured, exp.guaranteed = apply_cover(exp.gross, exp.covers)
    return exp


@dataclass(frozen=True, slots=True)
class Cover:
    """A cover already converted to the exposure currency."""

    id: int
    kind: str
    cap: Decimal
    cover_pct: Decimal


def apply_cover(gross: Decimal, covers: Sequence[Cover]) -> tuple[Figure, Figure]:
    """Split ``gross`` into (insured, guaranteed) parts.

    Guarantees and letters of credit cover first and in full up to their amount; insurance then
    covers ``cover_pct`` of what is left up to its insured limit.
    """
    remaining = gross
    insured, guaranteed = Figure(), Figure()
    for cov in sorted(covers, key=lambda c: c.kind == "insurance"):
        if remaining <= 0:
            break
        part = (min(remaining, cov.cap) * cov.cover_pct).quantize(CENT)
        if part <= 0:
            continue
        (insured if cov.kind == "insurance" else guaranteed).add(part, cov.id)
        remaining -= part
    return insured, guaranteed


def group_key(customer_id: int, parent_id: int | None, group_code: str | None) -> str:
    """The key of the group a customer belongs to: its ``group_code``, else its parent's id."""
    if group_code:
        return f"code:{group_code}"
    return f"parent:{parent_id if parent_id is not None else customer_id}"


def combine(exposures: Sequence[Exposure]) -> Exposure:
    """Add up the exposures of a group's members (same currency and date)."""
    if not exposures:
        raise ValueError("nothing to combine")
    first = exposures[0]
    comps = {c: Figure() for c in COMPONENTS}
    out = Exposure(first.currency, first.as_of, comps, first.counted)
    for e in exposures:
        if e.currency != first.currency:
            raise ValueError("exposures in different currencies")
        for k, f in e.components.items():
            comps[k].amount += f.amount
            comps[k].docs.extend(f.docs)
        for mine, theirs in (
            (out.insured, e.insured),
            (out.guaranteed, e.guaranteed),
            (out.unallocated_credit, e.unallocated_credit),
        ):
            mine.amount += theirs.amount
            mine.docs.extend(theirs.docs)
        out.max_days_overdue = max(out.max_days_overdue, e.max_days_overdue)
        out.covers.extend(e.covers)
    return out
