"""Read models shared by the REST API and the web pages: customer lists, one customer's
exposure and history, and portfolio aggregates. Everything respects what a user may see."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    case,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from riskdesk.api.deps import restrict_customers
from riskdesk.domain.money import FxTable, MissingRate
from riskdesk.store.customers import customer_dict
from riskdesk.store.models import (
    AuditEntry,
    Base,
    Contract,
    CreditNote,
    Customer,
    FxRate,
    Invoice,
    Order,
    Payment,
    PaymentAllocation,
    User,
)
from riskdesk.store.types import Amount, utcnow

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
"""Ageing buckets by days past due; ``current`` is not yet due."""
OVERDUE_BUCKETS = BUCKETS[1:]
SORTABLE = ("id", "name", "external_id", "industry", "region", "owner", "status", "created_at")
SORT_PATTERN = r"^-?(" + "|".join(SORTABLE) + r")$"
CLOSED_INVOICE = ("paid", "cancelled", "written_off")
UNINVOICED_ORDER = ("open", "shipped")
ZERO = Decimal("0.00")


def exact(value: Any) -> Any:
    """Decimals (money, rates) as strings, recursively: JSON numbers would be floats."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [exact(v) for v in value]
    return value


def today() -> date:
    return utcnow().date()


# --------------------------------------------------------------------------- customers list


def _ratings_table() -> Table | None:
    """The ratings table when the assess stage provides one."""
    table = Base.metadata.tables.get("ratings")
    if table is None or not {"customer_id", "status", "final_grade"} <= set(table.c.keys()):
        return None
    return table


def rating_grade(value: str) -> int | None:
    """A grade from ``"4"`` or a master-scale label such as ``"BBB"``; None if unknown."""
    value = value.strip()
    if value.isdigit():
        grade = int(value)
        return grade if 1 <= grade <= 10 else None
    try:
        from riskdesk.assess.scale import grade_info

        for g in range(1, 11):
            if grade_info(g).label.lower() == value.lower():
                return g
    except Exception:  # noqa: S110 - the scale is optional here
        pass
    return None


@dataclass
class CustomerFilter:
    industry: str | None = None
    region: str | None = None
    owner: str | None = None
    status: str | None = None
    rating: str | None = None
    q: str | None = None


def customer_select(user: User, f: CustomerFilter) -> Select[Any]:
    """``select(Customer)`` filtered by ``f`` and by what ``user`` may see."""
    stmt = restrict_customers(select(Customer), user)
    for col, val in (
        (Customer.industry, f.industry),
        (Customer.region, f.region),
        (Customer.owner, f.owner),
        (Customer.status, f.status),
    ):
        if val:
            stmt = stmt.where(col == val)
    if f.q:
        pattern = "%" + f.q.strip().lower().replace("%", r"\%").replace("_", r"\_") + "%"
        stmt = stmt.where(
            or_(
                func.lower(Customer.name).like(pattern, escape="\\"),
                func.lower(Customer.external_id).like(pattern, escape="\\"),
            )
        )
    if f.rating:
        ratings = _ratings_table()
        if ratings is not None:
            grade = rating_grade(f.rating)
            ids = select(ratings.c.customer_id).where(
                ratings.c.status == "approved", ratings.c.final_grade == (grade or -1)
            )
            stmt = stmt.where(Customer.id.in_(ids))
    return stmt


def order_by(stmt: Select[Any], sort: str) -> Select[Any]:
    desc = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in SORTABLE:
        raise ValueError(f"cannot sort by {name!r}")
    col = getattr(Customer, name)
    return stmt.order_by(col.desc() if desc else col.asc(), Customer.id.asc())


def list_customers(
    session: Session,
    user: User,
    f: CustomerFilter,
    sort: str = "name",
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Customer]]:
    stmt = customer_select(user, f)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(session.scalars(order_by(stmt, sort).limit(limit).offset(offset)))
    return total, rows


def current_grades(session: Session, customer_ids: list[int]) -> dict[int, int]:
    """The approved grade of each customer that has one (empty without a ratings table)."""
    ratings = _ratings_table()
    if ratings is None or not customer_ids:
        return {}
    rows = session.execute(
        select(ratings.c.customer_id, ratings.c.final_grade)
        .where(ratings.c.customer_id.in_(customer_ids), ratings.c.status == "approved")
        .order_by(ratings.c.id)
    )
    return {int(cid): int(g) for cid, g in rows}


def facet_values(session: Session, user: User) -> dict[str, list[str]]:
    """Distinct industries, regions, owners and statuses among the visible customers."""
    out: dict[str, list[str]] = {}
    for name in ("industry", "region", "owner", "status"):
        col = getattr(Customer, name)
        stmt = restrict_customers(select(col).distinct(), user).where(col.is_not(None))
        out[name] = sorted(str(v) for v in session.scalars(stmt))
    return out


# --------------------------------------------------------------------------- invoices & exposure


def _balance_parts() -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
    """Paid, credited and balance of ``Invoice`` as correlated sub-queries (index lookups on
    ``payment_allocations.invoice_id`` and ``credit_notes.invoice_id``)."""
    paid = (
        select(func.coalesce(func.sum(PaymentAllocation.amount), literal(0)))
        .where(PaymentAllocation.invoice_id == Invoice.id)
        .correlate(Invoice)
        .scalar_subquery()
    )
    credited = (
        select(func.coalesce(func.sum(CreditNote.amount), literal(0)))
        .where(CreditNote.invoice_id == Invoice.id)
        .correlate(Invoice)
        .scalar_subquery()
    )
    return paid, credited, Invoice.amount - paid - credited


def bucket_expr(as_of: date) -> ColumnElement[str]:
    """The ageing bucket of ``Invoice.due_date`` on ``as_of`` (portable date comparisons)."""
    return case(
        (Invoice.due_date >= as_of, "current"),
        (Invoice.due_date >= as_of - timedelta(days=30), "1-30"),
        (Invoice.due_date >= as_of - timedelta(days=60), "31-60"),
        (Invoice.due_date >= as_of - timedelta(days=90), "61-90"),
        else_="90+",
    )


def open_invoices(
    session: Session, customer_id: int, as_of: date, limit: int = 500
) -> list[dict[str, Any]]:
    """The customer's open invoices with their balance after allocations and credit notes."""
    paid, credited, balance = _balance_parts()
    stmt = (
        select(
            Invoice,
            type_coerce(paid, Amount).label("paid"),
            type_coerce(credited, Amount).label("credited"),
            type_coerce(balance, Amount).label("balance"),
        )
        .where(Invoice.customer_id == customer_id, Invoice.status.not_in(CLOSED_INVOICE))
        .where(balance > 0.004)
        .order_by(Invoice.due_date, Invoice.id)
        .limit(limit)
    )
    out = []
    for inv, paid_amount, credited_amount, bal in session.execute(stmt):
        days = (as_of - inv.due_date).days
        out.append(
            {
                "id": inv.id,
                "external_id": inv.external_id,
                "issue_date": inv.issue_date,
                "due_date": inv.due_date,
                "currency": inv.currency,
                "amount": inv.amount,
                "paid": paid_amount,
                "credited": credited_amount,
                "balance": bal,
                "days_overdue": max(days, 0),
                "bucket": _bucket(days),
                "disputed": bool(inv.disputed),
                "status": inv.status,
            }
        )
    return out


def _bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


def _q(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


@dataclass
class Exposure:
    """Exposure in one currency."""

    currency: str
    open_orders: Decimal = ZERO
    open_invoices: Decimal = ZERO
    ageing: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, ZERO))

    @property
    def overdue(self) -> Decimal:
        return sum((self.ageing[b] for b in OVERDUE_BUCKETS), ZERO)

    @property
    def total(self) -> Decimal:
        return self.open_orders + self.open_invoices

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "open_orders": self.open_orders,
            "open_invoices": self.open_invoices,
            "overdue": self.overdue,
            "total": self.total,
            "ageing": dict(self.ageing),
        }


def _exposure_rows(
    session: Session, as_of: date, customer_id: int | None = None, user: User | None = None
) -> tuple[list[tuple[str | None, str, str, Decimal]], list[tuple[str, Decimal]]]:
    """Open invoice balances by (industry, currency, ageing bucket) and uninvoiced orders by
    currency, for one customer or for every customer ``user`` may see."""
    _, _, balance = _balance_parts()
    bucket = bucket_expr(as_of)
    inv_stmt = (
        select(
            Customer.industry,
            Invoice.currency,
            bucket.label("bucket"),
            type_coerce(func.sum(balance), Amount),
        )
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.status.not_in(CLOSED_INVOICE), balance > 0.004)
        .group_by(Customer.industry, Invoice.currency, bucket)
    )
    ord_stmt = (
        select(Order.currency, type_coerce(func.sum(Order.amount), Amount))
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.status.in_(UNINVOICED_ORDER))
        .group_by(Order.currency)
    )
    if customer_id is not None:
        inv_stmt = inv_stmt.where(Invoice.customer_id == customer_id)
        ord_stmt = ord_stmt.where(Order.customer_id == customer_id)
    if user is not None:
        inv_stmt = restrict_customers(inv_stmt, user)
        ord_stmt = restrict_customers(ord_stmt, user)
    inv = [(ind, cur, b, _q(a)) for ind, cur, b, a in session.execute(inv_stmt)]
    orders = [(cur, _q(a)) for cur, a in session.execute(ord_stmt)]
    return inv, orders


def _by_currency(
    inv: list[tuple[str | None, str, str, Decimal]], orders: list[tuple[str, Decimal]]
) -> dict[str, Exposure]:
    out: dict[str, Exposure] = {}
    for _, cur, b, amount in inv:
        e = out.setdefault(cur, Exposure(cur))
        e.ageing[b] = _q(e.ageing[b] + amount)
        e.open_invoices = _q(e.open_invoices + amount)
    for cur, amount in orders:
        e = out.setdefault(cur, Exposure(cur))
        e.open_orders = _q(e.open_orders + amount)
    return out


def fx_table(session: Session, on: date) -> FxTable:
    """The latest FX rate of every currency pair on or before ``on``."""
    latest = (
        select(FxRate.base, FxRate.quote, func.max(FxRate.rate_date).label("d"))
        .where(FxRate.rate_date <= on)
        .group_by(FxRate.base, FxRate.quote)
        .subquery()
    )
    rows = session.execute(
        select(FxRate.rate_date, FxRate.base, FxRate.quote, FxRate.rate).join(
            latest,
            (FxRate.base == latest.c.base)
            & (FxRate.quote == latest.c.quote)
            & (FxRate.rate_date == latest.c.d),
        )
    )
    return FxTable([(d, b, q, r) for d, b, q, r in rows])


def converted(
    exposures: dict[str, Exposure], to: str, on: date, fx: FxTable
) -> tuple[Exposure, list[str]]:
    """All exposures converted to ``to`` with the rates known on ``on``; lists the currencies
    that could not be converted (no rate) — they are left out of the total."""
    total = Exposure(to)
    missing: list[str] = []
    for cur, e in exposures.items():
        try:
            rate = fx.rate(cur, to, on)
        except MissingRate:
            missing.append(cur)
            continue
        total.open_orders = _q(total.open_orders + e.open_orders * rate)
        total.open_invoices = _q(total.open_invoices + e.open_invoices * rate)
        for b in BUCKETS:
            total.ageing[b] = _q(total.ageing[b] + e.ageing[b] * rate)
    return total, sorted(missing)


def customer_exposure(session: Session, customer: Customer, as_of: date) -> dict[str, Any]:
    """Exposure summary of one customer: per currency, and in its own currency."""
    by_cur = _by_currency(*_exposure_rows(session, as_of, customer_id=customer.id))
    total, missing = converted(by_cur, customer.currency, as_of, fx_table(session, as_of))
    return {
        "as_of": as_of,
        "currency": customer.currency,
        **total.as_dict(),
        "unconverted_currencies": missing,
        "by_currency": [e.as_dict() for e in sorted(by_cur.values(), key=lambda e: e.currency)],
    }


# --------------------------------------------------------------------------- one customer


def contract_dict(c: Contract) -> dict[str, Any]:
    return {
        "id": c.id,
        "external_id": c.external_id,
        "start_date": c.start_date,
        "end_date": c.end_date,
        "payment_terms_days": c.payment_terms_days,
        "credit_terms": c.credit_terms,
        "min_volume_amount": c.min_volume_amount,
        "min_volume_currency": c.min_volume_currency,
        "min_volume_period": c.min_volume_period,
        "clauses": list(c.clauses or []),
        "status": c.status,
    }


def customer_history(session: Session, customer_id: int, limit: int = 10) -> dict[str, Any]:
    """Recent orders, invoices, payments and the audit entries about the customer."""
    orders = session.scalars(
        select(Order)
        .where(Order.customer_id == customer_id)
        .order_by(Order.order_date.desc(), Order.id.desc())
        .limit(limit)
    )
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.customer_id == customer_id)
        .order_by(Invoice.issue_date.desc(), Invoice.id.desc())
        .limit(limit)
    )
    payments = session.scalars(
        select(Payment)
        .where(Payment.customer_id == customer_id)
        .order_by(Payment.payment_date.desc(), Payment.id.desc())
        .limit(limit)
    )
    audit = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "customer", AuditEntry.entity_id == str(customer_id))
        .order_by(AuditEntry.id.desc())
        .limit(2 * limit)
    )
    return {
        "orders": [
            {
                "id": o.id,
                "external_id": o.external_id,
                "order_date": o.order_date,
                "amount": o.amount,
                "currency": o.currency,
                "status": o.status,
            }
            for o in orders
        ],
        "invoices": [
            {
                "id": i.id,
                "external_id": i.external_id,
                "issue_date": i.issue_date,
                "due_date": i.due_date,
                "amount": i.amount,
                "currency": i.currency,
                "status": i.status,
            }
            for i in invoices
        ],
        "payments": [
            {
                "id": p.id,
                "external_id": p.external_id,
                "payment_date": p.payment_date,
                "amount": p.amount,
                "currency": p.currency,
                "method": p.method,
            }
            for p in payments
        ],
        "audit": [audit_dict(e) for e in audit],
    }


def customer_detail(session: Session, customer: Customer, as_of: date) -> dict[str, Any]:
    contracts = session.scalars(
        select(Contract).where(Contract.customer_id == customer.id).order_by(Contract.start_date)
    )
    grade = current_grades(session, [customer.id]).get(customer.id)
    return {
        **customer_dict(customer),
        "rating": grade,
        "contracts": [contract_dict(c) for c in contracts],
        "open_invoices": open_invoices(session, customer.id, as_of),
        "exposure": customer_exposure(session, customer, as_of),
        "history": customer_history(session, customer.id),
    }


def audit_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "ts": e.ts,
        "actor": e.actor,
        "action": e.action,
        "entity": e.entity,
        "entity_id": e.entity_id,
        "before": e.before,
        "after": e.after,
        "reason": e.reason,
        "hash": e.hash,
    }


# --------------------------------------------------------------------------- portfolio


def portfolio(session: Session, user: User, as_of: date, base_currency: str) -> dict[str, Any]:
    """Counts by industry/region/status, exposure and ageing over the user's customers."""

    def counts(col: Any) -> list[tuple[str | None, int]]:
        stmt = restrict_customers(
            select(col, func.count()).group_by(col).order_by(func.count().desc(), col), user
        )
        return [(k, int(n)) for k, n in session.execute(stmt)]

    inv, orders = _exposure_rows(session, as_of, user=user)
    fx = fx_table(session, as_of)
    total, missing = converted(_by_currency(inv, orders), base_currency, as_of, fx)
    by_status = counts(Customer.status)
    by_industry: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for industry, cur, _, amount in inv:
        try:
            by_industry[industry or ""] += amount * fx.rate(cur, base_currency, as_of)
        except MissingRate:
            continue
    return {
        "as_of": as_of,
        "customers": sum(n for _, n in by_status),
        "by_industry": counts(Customer.industry),
        "by_region": counts(Customer.region),
        "by_status": by_status,
        "exposure": total.as_dict(),
        "unconverted_currencies": missing,
        "exposure_by_industry": sorted(
            ((k, _q(v)) for k, v in by_industry.items()), key=lambda kv: -kv[1]
        ),
    }
