"""Control repository: exposure from the books, limits and their approval, order checks with
reservations (safe under concurrency), holds, insurance, concentration and control actions.

The business rules live in :mod:`riskdesk.control`; this module only reads and writes rows.
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Date,
    Engine,
    Table,
    and_,
    bindparam,
    exists,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from riskdesk.control import concentration as conc
from riskdesk.control.avoidance import (
    DEFAULT_POLICY,
    AvoidanceRule,
    ContractTerms,
    review_contract,
    rule_for,
)
from riskdesk.control.config import ControlConfig
from riskdesk.control.exposure import (
    CoverDoc,
    Exposure,
    InvoiceDoc,
    OrderDoc,
    ReservationDoc,
    combine,
    compute_exposure,
    group_key,
)
from riskdesk.control.insurance import InsuredBuyer, OverdueInvoice, PolicyTerms, insurer_tasks
from riskdesk.control.ladder import (
    CheckResult,
    ConcentrationInfo,
    LimitInfo,
    OrderContext,
    RatingInfo,
    check_order,
)
from riskdesk.control.limits import (
    ApprovalRefused,
    check_approval,
    needs_risk_manager,
    policy_limit,
)
from riskdesk.domain.money import FxTable, MissingRate, to_decimal
from riskdesk.store.audit import record
from riskdesk.store.customers import find_customer  # noqa: F401 - used as repo.find_customer
from riskdesk.store.models import (
    AvoidanceRuleRow,
    BlocklistEntry,
    Collateral,
    ConcentrationLimit,
    Contract,
    ControlAction,
    CreditLimit,
    Customer,
    InsurancePolicy,
    InsuredLimit,
    LimitRequest,
    Order,
    OrderCheck,
    Rating,
    Reservation,
    Setting,
    User,
)
from riskdesk.store.types import MAX_ID, Amount, Rate, utcnow

CONFIG_KEY = "control"
SNAPSHOT_KEY = "control.snapshot"


class ControlError(ValueError):
    """Bad input for a control operation (unknown customer, bad amount, wrong state …)."""


class UnknownCustomer(ControlError):
    """No such customer (or one the caller may not see): the API answers 404."""


# ------------------------------------------------------------------ configuration


def load_config(session: Session) -> ControlConfig:
    row = session.get(Setting, CONFIG_KEY)
    return ControlConfig.from_json(row.value if row is not None else None)


_SETTINGS = cast(Table, Setting.__table__)
_config_cache: list[tuple[Any, ControlConfig]] = []


def config_from(raw: Any) -> ControlConfig:
    """The :class:`ControlConfig` of a stored value (read with :func:`customer_row`), parsed
    once per distinct value (compared on every call, so a change applies at once)."""
    hit = _config_cache[0] if _config_cache else None
    if hit is not None and hit[0] == raw:
        return hit[1]
    cfg = ControlConfig.from_json(raw)
    _config_cache[:] = [(copy.deepcopy(raw), cfg)]
    return cfg


def save_config(session: Session, data: dict[str, Any], actor: str) -> ControlConfig:
    """Validate ``data`` (merged over the defaults) and store it; audited."""
    cfg = ControlConfig.from_json(data)
    row = session.get(Setting, CONFIG_KEY)
    before = row.value if row is not None else None
    if row is None:
        session.add(Setting(key=CONFIG_KEY, value=data))
    else:
        row.value = data
    record(
        session,
        actor=actor,
        action="control.config",
        entity="setting",
        entity_id=CONFIG_KEY,
        before=before,
        after=data,
    )
    return cfg


AVOIDANCE_CACHE_SECONDS = 60.0
_avoidance_cache: dict[str, tuple[float, list[AvoidanceRule]]] = {}


def cached_avoidance_table(session: Session) -> list[AvoidanceRule]:
    """:func:`avoidance_table`, re-read at most once a minute per database (order-check path)."""
    bind = session.get_bind()
    key = str(getattr(bind, "url", id(bind)))
    now = time.monotonic()
    hit = _avoidance_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    table = avoidance_table(session)
    _avoidance_cache[key] = (now + AVOIDANCE_CACHE_SECONDS, table)
    return table


def avoidance_table(session: Session) -> list[AvoidanceRule]:
    rows = session.scalars(select(AvoidanceRuleRow).order_by(AvoidanceRuleRow.grade_from)).all()
    if not rows:
        return list(DEFAULT_POLICY)
    return [
        AvoidanceRule(
            r.grade_from,
            r.grade_to,
            r.max_payment_terms_days,
            r.prepayment_share,
            r.guarantee_required,
            tuple(r.clauses or ()),
            r.order_decision,
        )
        for r in rows
    ]


# ------------------------------------------------------------------ look-ups


def _valid_id(i: int) -> bool:
    return 0 < i <= MAX_ID


@lru_cache(maxsize=1)
def _rating_sources() -> tuple[Any, Any]:
    """The rating and assessment look-ups if those stages are installed (resolved once)."""
    try:
        from riskdesk.store.ratings import current_rating
    except ImportError:
        current_rating = None  # type: ignore[assignment]
    try:
        from riskdesk.store import assessments  # type: ignore[attr-defined]

        latest = getattr(assessments, "latest_assessment", None)
    except ImportError:
        latest = None
    return current_rating, latest


def get_rating(session: Session, customer_id: int, on: date) -> RatingInfo | None:
    """The customer's current rating; falls back to the latest assessment, else unrated."""
    current_rating, _latest = _rating_sources()
    if current_rating is not None:
        r = _current_rating_core(session, customer_id, on)
        if r is not None:
            return RatingInfo(int(r.grade), float(r.pd), r.valid_until, "rating")
    return _assessment_rating(session, customer_id)


def _assessment_rating(session: Session, customer_id: int) -> RatingInfo | None:
    """The latest assessment's grade when there is no rating (if that stage is installed)."""
    latest_assessment = _rating_sources()[1]
    a = latest_assessment(session, customer_id) if latest_assessment is not None else None
    if a is not None and getattr(a, "grade", None) is not None:
        return RatingInfo(
            int(a.grade), getattr(a, "pd", None), getattr(a, "valid_until", None), "assessment"
        )
    return None


_RATINGS = cast(Table, Rating.__table__)
_RATING_COLS = (
    "id",
    "customer_id",
    "base_source",
    "base_grade",
    "base_pd",
    "qualitative_notches",
    "override_notches",
    "override_expires",
    "final_grade",
    "final_pd",
    "valid_until",
    "approved_at",
)
_RATING_SQL = (
    select(*(_RATINGS.c[n] for n in _RATING_COLS))
    .where(_RATINGS.c.customer_id == bindparam("cid"), _RATINGS.c.status == "approved")
    .order_by(_RATINGS.c.approved_at.desc(), _RATINGS.c.id.desc())
    .limit(1)
)


def _rating_from_head(session: Session, head: Any, on: date) -> RatingInfo | None:
    """:func:`get_rating` from the rating columns read with the customer (``customer_row``)."""
    if _rating_sources()[0] is not None and head.rating_id is not None:
        from riskdesk.store.ratings import _current_from_row

        row = SimpleNamespace(**{n: getattr(head, "rating_" + n) for n in _RATING_COLS})
        r = _current_from_row(row, on)  # type: ignore[arg-type]
        return RatingInfo(int(r.grade), float(r.pd), r.valid_until, "rating")
    return _assessment_rating(session, head.id)


def _current_rating_core(session: Session, customer_id: int, on: date) -> Any:
    """``ratings.current_rating`` read as one Core row (no ORM object, no ``inputs`` JSON);
    the effective grade is computed by the rating stage's own ``_current_from_row``."""
    from riskdesk.store.ratings import _current_from_row

    row = session.connection().execute(_RATING_SQL, {"cid": customer_id}).first()
    return _current_from_row(row, on) if row is not None else None  # type: ignore[arg-type]


FX_CACHE_SECONDS = 60.0
_fx_cache: dict[tuple[str, str, str, date], tuple[float, tuple[date, Decimal] | None]] = {}
_FX_SQL = text(
    "SELECT rate_date, rate FROM fx_rates WHERE base = :b AND quote = :q AND rate_date <= :on "
    "ORDER BY rate_date DESC LIMIT 1"
).bindparams(bindparam("on", type_=Date()))


def _latest_rate(session: Session, base: str, quote: str, on: date) -> tuple[date, Decimal] | None:
    """The latest rate of a pair on or before ``on``; cached for a minute per database."""
    bind = session.get_bind()
    key = (str(getattr(bind, "url", id(bind))), base, quote, on)
    now = time.monotonic()
    hit = _fx_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = session.connection().execute(_FX_SQL, {"b": base, "q": quote, "on": on}).first()
    val = None
    if row is not None:
        d = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0])[:10])
        val = (d, Decimal(str(row[1])))
    if len(_fx_cache) > 50_000:
        _fx_cache.clear()
    _fx_cache[key] = (now + FX_CACHE_SECONDS, val)
    return val


def fx_for(session: Session, currencies: Iterable[str], target: str, on: date) -> FxTable:
    """An FX table with the latest rate on or before ``on`` of each needed pair."""
    fx = FxTable()
    target = target.upper()
    for ccy in {c.upper() for c in currencies} - {target}:
        for base, quote in ((ccy, target), (target, ccy)):
            found = _latest_rate(session, base, quote, on)
            if found is not None:
                fx.add(found[0], base, quote, found[1])
                break
    return fx


# ------------------------------------------------------------------ exposure


@dataclass
class Docs:
    orders: list[OrderDoc]
    invoices: list[InvoiceDoc]
    reservations: list[ReservationDoc]
    credits: list[ReservationDoc]
    covers: list[CoverDoc]

    def currencies(self) -> set[str]:
        out = {d.currency for d in self.orders} | {d.currency for d in self.invoices}
        out |= {d.currency for d in self.reservations} | {d.currency for d in self.credits}
        return out | {d.currency for d in self.covers}


_OPEN_INV = "('paid', 'cancelled', 'written_off')"
_DOC_SQL = {
    "orders": (
        "SELECT id, customer_id, amount, currency, status FROM orders "
        "WHERE {ids} AND order_date <= :on AND status IN ('open', 'shipped')",
        {"amount": Amount()},
    ),
    "invoices": (
        "SELECT i.id, i.customer_id, i.amount, i.currency, i.due_date, i.status, "
        "a.amount AS paid FROM invoices i "
        "LEFT JOIN payment_allocations a ON a.invoice_id = i.id "
        "AND EXISTS (SELECT 1 FROM payments p WHERE p.id = a.payment_id "
        "AND p.payment_date <= :on) "
        f"WHERE {{ids_i}} AND i.issue_date <= :on AND i.status NOT IN {_OPEN_INV}",
        {"amount": Amount(), "paid": Amount(), "due_date": Date()},
    ),
    "credits": (
        "SELECT id, customer_id, invoice_id, amount, currency FROM credit_notes "
        "WHERE {ids} AND issue_date <= :on",
        {"amount": Amount()},
    ),
    "reservations": (
        "SELECT r.id, r.customer_id, r.amount, r.currency FROM control_reservations r "
        "WHERE {ids_r} AND r.status = 'active' AND r.expires_on >= :on AND NOT EXISTS "
        "(SELECT 1 FROM orders o WHERE o.external_id = r.order_ref "
        "AND o.customer_id = r.customer_id)",
        {"amount": Amount()},
    ),
    "covers": (
        "SELECT l.id, l.customer_id, 'insurance' AS kind, l.amount, l.currency, p.cover_pct "
        "FROM control_insured_limits l JOIN control_insurance_policies p ON p.id = l.policy_id "
        "WHERE {ids_l} AND l.status = 'active' AND p.status = 'active' AND l.valid_from <= :on "
        "AND (l.valid_until IS NULL OR l.valid_until >= :on) "
        "AND (p.valid_until IS NULL OR p.valid_until >= :on) "
        "UNION ALL SELECT c.id, c.customer_id, c.kind, c.amount, c.currency, NULL "
        "FROM control_collateral c WHERE {ids_c} AND c.status = 'active' "
        "AND c.valid_from <= :on AND (c.valid_until IS NULL OR c.valid_until >= :on)",
        {"amount": Amount(), "cover_pct": Rate()},
    ),
}


# The allocations of given invoices whose payment is dated on or before ``on``, in one round
# trip: the payment date is a scalar sub-query by primary key, which both databases run per
# allocation row (no join for the planner to turn into a scan of every payment).
_PAID_ALLOC_SQL = text(
    "SELECT a.invoice_id, a.amount FROM payment_allocations a WHERE a.invoice_id IN :inv "
    "AND (SELECT p.payment_date FROM payments p WHERE p.id = a.payment_id) <= :on"
).bindparams(bindparam("on", type_=Date()), bindparam("inv", expanding=True))


# One customer's (or group's) documents in one round trip: every branch is an index-bound read
# on ``customer_id``; the allocations follow by invoice id (see ``_PAID_ALLOC_SQL``).
_DOCS_UNION = (
    "SELECT 'o' AS k, id, customer_id, CAST(NULL AS INTEGER) AS ref, amount, currency, status, "
    "CAST(NULL AS DATE) AS due_date, CAST(NULL AS NUMERIC) AS pct FROM orders "
    "WHERE customer_id {ids} AND order_date <= :on AND status IN ('open', 'shipped') "
    "UNION ALL SELECT 'i', i.id, i.customer_id, NULL, i.amount, i.currency, i.status, "
    "i.due_date, NULL FROM invoices i "
    "WHERE i.customer_id {ids} AND i.issue_date <= :on AND i.status NOT IN {open_inv} "
    "UNION ALL SELECT 'c', id, customer_id, invoice_id, amount, currency, NULL, NULL, NULL "
    "FROM credit_notes WHERE customer_id {ids} AND issue_date <= :on "
    "UNION ALL SELECT 'r', r.id, r.customer_id, NULL, r.amount, r.currency, NULL, NULL, NULL "
    "FROM control_reservations r "
    "WHERE r.customer_id {ids} AND r.status = 'active' AND r.expires_on >= :on AND NOT EXISTS "
    "(SELECT 1 FROM orders o WHERE o.external_id = r.order_ref "
    "AND o.customer_id = r.customer_id) "
    "UNION ALL SELECT 'l', l.id, l.customer_id, NULL, l.amount, l.currency, 'insurance', NULL, "
    "p.cover_pct FROM control_insured_limits l "
    "JOIN control_insurance_policies p ON p.id = l.policy_id "
    "WHERE l.customer_id {ids} AND l.status = 'active' AND p.status = 'active' "
    "AND l.valid_from <= :on AND (l.valid_until IS NULL OR l.valid_until >= :on) "
    "AND (p.valid_until IS NULL OR p.valid_until >= :on) "
    "UNION ALL SELECT 'g', c.id, c.customer_id, NULL, c.amount, c.currency, c.kind, NULL, NULL "
    "FROM control_collateral c WHERE c.customer_id {ids} AND c.status = 'active' "
    "AND c.valid_from <= :on AND (c.valid_until IS NULL OR c.valid_until >= :on)"
)
_DOCS_UNION_SQL = text(_DOCS_UNION.format(ids="IN :ids", open_inv=_OPEN_INV)).bindparams(
    bindparam("on", type_=Date()), bindparam("ids", expanding=True)
)
# one customer (the usual case): a plain parameter, no IN-list expansion on every call
_DOCS_ONE_SQL = text(_DOCS_UNION.format(ids="= :cid", open_inv=_OPEN_INV)).bindparams(
    bindparam("on", type_=Date())
)


def _load_docs_for(session: Session, customer_ids: Sequence[int], on: date) -> dict[int, Docs]:
    """:func:`load_docs` for given customers: one UNION ALL statement, then allocations."""
    conn = session.connection()
    out: dict[int, Docs] = defaultdict(lambda: Docs([], [], [], [], []))
    credited: dict[int, Decimal] = defaultdict(Decimal)
    invs: dict[int, list[Any]] = {}
    covers: list[tuple[Any, ...]] = []
    rows = (
        conn.execute(_DOCS_ONE_SQL, {"cid": customer_ids[0], "on": on})
        if len(customer_ids) == 1
        else conn.execute(_DOCS_UNION_SQL, {"ids": list(customer_ids), "on": on})
    )
    for k, did, cid, ref, amount, ccy, status, due, pct in rows:
        if k == "o":
            out[cid].orders.append(OrderDoc(did, _money(amount), ccy, status))
        elif k == "i":
            invs[did] = [cid, _money(amount), ccy, _day(due), status, Decimal(0)]
        elif k == "c":
            if ref is None:
                out[cid].credits.append(ReservationDoc(did, _money(amount), ccy))
            else:
                credited[ref] += _money(amount)
        elif k == "r":
            out[cid].reservations.append(ReservationDoc(did, _money(amount), ccy))
        else:  # insurance ('l') and guarantees / letters of credit ('g'), in that order
            covers.append((k, cid, did, status, amount, ccy, pct))
    if invs:
        for iid, paid in conn.execute(_PAID_ALLOC_SQL, {"inv": list(invs), "on": on}):
            invs[iid][5] += _money(paid)
    for iid, (cid, amount, ccy, due, status, paid) in invs.items():
        out[cid].invoices.append(
            InvoiceDoc(iid, amount, ccy, due, paid, credited.get(iid, Decimal(0)), status)
        )
    for _k, cid, did, kind, amount, ccy, pct in sorted(covers, key=lambda c: c[0] != "l"):
        out[cid].covers.append(
            CoverDoc(did, kind, _money(amount), ccy, _rate(pct) if pct is not None else Decimal(1))
        )
    return out


@lru_cache(maxsize=1)
def _doc_statements() -> dict[str, Any]:
    """The whole-book document queries, built once (one customer or group: ``_DOCS_UNION``)."""
    out: dict[str, Any] = {}
    cond = dict.fromkeys(("ids", "ids_i", "ids_r", "ids_l", "ids_c"), "1 = 1")
    for name, (sql, types) in _DOC_SQL.items():
        stmt = text(sql.format(**cond)).bindparams(bindparam("on", type_=Date()))
        out[name] = (stmt, types)
    return out


_CENT = Decimal("0.01")


def _money(v: Any) -> Decimal:
    """A NUMERIC(18,2) value as exact Decimal (SQLite hands back floats, PostgreSQL Decimals)."""
    return (v if isinstance(v, Decimal) else Decimal(str(v))).quantize(_CENT)


def _rate(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _day(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def _typed(row: Any, types: dict[str, Any], dialect: Any) -> dict[str, Any]:
    d = dict(zip(row._fields, row, strict=True))
    for k, t in types.items():
        v = d.get(k)
        if v is None:
            continue
        if isinstance(t, Date):
            d[k] = _day(v)
        elif isinstance(t, Rate):
            d[k] = _rate(v)
        else:
            d[k] = _money(v)
    return d


def load_docs(session: Session, customer_ids: Sequence[int] | None, on: date) -> dict[int, Docs]:
    """The documents behind the exposure of ``customer_ids`` (all customers when None).

    Plain SQL built once per process (this is the order check's hot path); amounts come back
    as exact ``Decimal`` and payments count only when dated on or before ``on``.
    """
    if customer_ids is not None:
        return _load_docs_for(session, customer_ids, on)
    conn = session.connection()
    dialect = conn.dialect
    stmts = _doc_statements()
    params: dict[str, Any] = {"on": on}
    out: dict[int, Docs] = defaultdict(lambda: Docs([], [], [], [], []))

    def rows(name: str) -> Iterator[dict[str, Any]]:
        stmt, types = stmts[name]
        for r in conn.execute(stmt, params):
            yield _typed(r, types, dialect)

    for r in rows("orders"):
        out[r["customer_id"]].orders.append(
            OrderDoc(r["id"], r["amount"], r["currency"], r["status"])
        )
    credited: dict[int, Decimal] = defaultdict(Decimal)
    for r in rows("credits"):
        if r["invoice_id"] is None:
            out[r["customer_id"]].credits.append(
                ReservationDoc(r["id"], r["amount"], r["currency"])
            )
        else:
            credited[r["invoice_id"]] += r["amount"]
    invs: dict[int, dict[str, Any]] = {}
    for r in rows("invoices"):
        inv = invs.get(r["id"])
        if inv is None:
            inv = invs[r["id"]] = {**r, "paid_sum": Decimal(0)}
        if r["paid"] is not None:
            inv["paid_sum"] += r["paid"]
    for iid, r in invs.items():
        out[r["customer_id"]].invoices.append(
            InvoiceDoc(
                iid,
                r["amount"],
                r["currency"],
                r["due_date"],
                r["paid_sum"],
                credited.get(iid, Decimal(0)),
                r["status"],
            )
        )
    for r in rows("reservations"):
        out[r["customer_id"]].reservations.append(
            ReservationDoc(r["id"], r["amount"], r["currency"])
        )
    for r in rows("covers"):
        pct = r["cover_pct"] if r["cover_pct"] is not None else Decimal(1)
        out[r["customer_id"]].covers.append(
            CoverDoc(r["id"], r["kind"], r["amount"], r["currency"], pct)
        )
    return out


def exposure_of(docs: Docs, currency: str, on: date, fx: FxTable, cfg: ControlConfig) -> Exposure:
    return compute_exposure(
        currency=currency,
        as_of=on,
        fx=fx,
        orders=docs.orders,
        invoices=docs.invoices,
        reservations=docs.reservations,
        unallocated_credits=docs.credits,
        covers=docs.covers,
        counted=cfg.counted,
    )


def customer_exposure(
    session: Session,
    customer: Customer,
    on: date,
    currency: str | None = None,
    cfg: ControlConfig | None = None,
) -> Exposure:
    """One customer's exposure in ``currency`` (default: its limit's, else its own)."""
    cfg = cfg or load_config(session)
    if currency is None:
        lim = current_limit(session, customer.id, on)
        currency = lim.currency if lim is not None else customer.currency
    docs = load_docs(session, [customer.id], on)[customer.id]
    fx = fx_for(session, docs.currencies(), currency, on)
    return exposure_of(docs, currency, on, fx, cfg)


def group_of(session: Session, customer: Customer) -> tuple[str, list[int]]:
    """The group key of ``customer`` and the ids of every member (itself included)."""
    key = group_key(customer.id, customer.parent_id, customer.group_code)
    if customer.group_code:
        ids = list(
            session.scalars(select(Customer.id).where(Customer.group_code == customer.group_code))
        )
    else:
        root = customer.parent_id if customer.parent_id is not None else customer.id
        ids = list(
            session.scalars(
                select(Customer.id).where(or_(Customer.id == root, Customer.parent_id == root))
            )
        )
    return key, sorted(set(ids) | {customer.id})


def group_exposure(
    session: Session, customer: Customer, on: date, currency: str, cfg: ControlConfig
) -> tuple[str, Exposure]:
    key, ids = group_of(session, customer)
    docs = load_docs(session, ids, on)
    cur: set[str] = set()
    for d in docs.values():
        cur |= d.currencies()
    fx = fx_for(session, cur, currency, on)
    exps = [exposure_of(docs[i], currency, on, fx, cfg) for i in ids]
    return key, combine(exps)


# ------------------------------------------------------------------ limits


def limit_dict(lim: CreditLimit) -> dict[str, Any]:
    return {
        "id": lim.id,
        "customer_id": lim.customer_id,
        "group_key": lim.group_key,
        "amount": lim.amount,
        "currency": lim.currency,
        "valid_from": lim.valid_from,
        "valid_until": lim.valid_until,
        "source": lim.source,
        "status": lim.status,
        "sub_limits": lim.sub_limits,
        "basis": lim.basis,
        "created_by": lim.created_by,
        "reason": lim.reason,
        "created_at": lim.created_at,
        "superseded_at": lim.superseded_at,
    }


def current_limit(
    session: Session, customer_id: int, on: date | None = None, *, lock: bool = False
) -> CreditLimit | None:
    """The active limit of a customer (``lock``: ``SELECT … FOR UPDATE`` on PostgreSQL)."""
    q = (
        select(CreditLimit)
        .where(CreditLimit.customer_id == customer_id, CreditLimit.status == "active")
        .order_by(CreditLimit.id.desc())
        .limit(1)
    )
    if lock:
        q = q.with_for_update()
    return session.scalar(q)


def current_group_limit(session: Session, key: str, *, lock: bool = False) -> CreditLimit | None:
    q = (
        select(CreditLimit)
        .where(
            CreditLimit.group_key == key,
            CreditLimit.customer_id.is_(None),
            CreditLimit.status == "active",
        )
        .order_by(CreditLimit.id.desc())
        .limit(1)
    )
    if lock:
        q = q.with_for_update()
    return session.scalar(q)


def limit_history(session: Session, customer_id: int) -> list[CreditLimit]:
    return list(
        session.scalars(
            select(CreditLimit)
            .where(CreditLimit.customer_id == customer_id)
            .order_by(CreditLimit.id.desc())
        )
    )


def _currency(code: str) -> str:
    code = (code or "").strip().upper()
    if len(code) != 3 or not (code.isascii() and code.isalpha()):
        raise ControlError(f"not an ISO currency code: {code!r}")
    return code


MAX_AMOUNT = Decimal("1e13")
"""Amounts are NUMERIC(18,2) and exact on SQLite below 10^13 (docs/architecture.md)."""


def _amount(value: Any, *, positive: bool = False) -> Decimal:
    try:
        d = to_decimal(value)
    except ValueError as exc:
        raise ControlError(str(exc)) from exc
    if d < 0 or (positive and d == 0):
        raise ControlError(f"amount must be {'positive' if positive else 'zero or more'}: {value}")
    if d >= MAX_AMOUNT:
        raise ControlError(f"amount too large (at most {MAX_AMOUNT - Decimal('0.01')}): {value}")
    if d != d.quantize(Decimal("0.01")):
        raise ControlError(f"amount has more than two decimals: {value}")
    return d.quantize(Decimal("0.01"))


def set_limit(
    session: Session,
    *,
    customer_id: int | None,
    amount: Any,
    currency: str,
    actor: str,
    source: str = "manual",
    valid_until: date | None = None,
    valid_from: date | None = None,
    reason: str | None = None,
    sub_limits: dict[str, Any] | None = None,
    basis: dict[str, Any] | None = None,
    group: str | None = None,
) -> CreditLimit:
    """Put a new limit in force (the previous one becomes history); audited."""
    amt = _amount(amount)
    ccy = _currency(currency)
    subs = {k: str(_amount(v)) for k, v in (sub_limits or {}).items()}
    if customer_id is None and not group:
        raise ControlError("a limit needs a customer or a group")
    old = (
        current_limit(session, customer_id)
        if customer_id is not None
        else current_group_limit(session, str(group))
    )
    now = utcnow()
    if old is not None:
        old.status = "superseded"
        old.superseded_at = now
    lim = CreditLimit(
        customer_id=customer_id,
        group_key=group,
        amount=amt,
        currency=ccy,
        valid_from=valid_from or now.date(),
        valid_until=valid_until,
        source=source,
        status="active",
        sub_limits=subs or None,
        basis=basis,
        created_by=actor,
        reason=reason,
    )
    session.add(lim)
    session.flush()
    record(
        session,
        actor=actor,
        action="limit.set",
        entity="credit_limit",
        entity_id=customer_id if customer_id is not None else group,
        before=limit_dict(old) if old else None,
        after=limit_dict(lim),
        reason=reason,
    )
    return lim


def request_limit(
    session: Session,
    *,
    customer_id: int,
    amount: Any,
    currency: str | None,
    requested_by: str,
    reason: str,
    valid_until: date | None = None,
) -> LimitRequest:
    """Ask for a new limit; someone else approves it (maker-checker)."""
    if not reason or not reason.strip():
        raise ControlError("a limit request needs a reason")
    if session.get(Customer, customer_id) is None:
        raise ControlError(f"no customer {customer_id}")
    cfg = load_config(session)
    cur = current_limit(session, customer_id)
    ccy = _currency(currency or (cur.currency if cur else cfg.limits.currency))
    if cur is not None and cur.currency != ccy:
        raise ControlError(f"the current limit is in {cur.currency}; request in that currency")
    amt = _amount(amount)
    current = cur.amount if cur else Decimal("0")
    req = LimitRequest(
        customer_id=customer_id,
        current_amount=current,
        requested_amount=amt,
        currency=ccy,
        valid_until=valid_until,
        requested_by=requested_by,
        reason=reason.strip(),
        needs_risk_manager=needs_risk_manager(cfg.approval, current, amt),
        status="pending",
    )
    session.add(req)
    session.flush()
    record(
        session,
        actor=requested_by,
        action="limit.request",
        entity="limit_request",
        entity_id=req.id,
        after=request_dict(req),
        reason=reason,
    )
    return req


def request_dict(r: LimitRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "customer_id": r.customer_id,
        "current_amount": r.current_amount,
        "requested_amount": r.requested_amount,
        "currency": r.currency,
        "valid_until": r.valid_until,
        "requested_by": r.requested_by,
        "reason": r.reason,
        "needs_risk_manager": r.needs_risk_manager,
        "status": r.status,
        "decided_by": r.decided_by,
        "decided_at": r.decided_at,
        "decision_reason": r.decision_reason,
        "limit_id": r.limit_id,
        "created_at": r.created_at,
    }


def _user(session: Session, username: str) -> User:
    u = session.scalar(select(User).where(User.username == username))
    if u is None or not u.active:
        raise ControlError(f"no active user {username!r}")
    return u


def decide_request(
    session: Session, request_id: int, *, approver: str, approve: bool, reason: str
) -> LimitRequest:
    """Approve (the new limit goes into force) or reject a pending request; audited.

    Raises :class:`ApprovalRefused` for self-approval or a large increase without a
    risk_manager.
    """
    if not reason or not reason.strip():
        raise ControlError("a decision needs a reason")
    req = (
        session.get(LimitRequest, request_id, with_for_update=True)
        if _valid_id(request_id)
        else None
    )
    if req is None:
        raise ControlError(f"no limit request {request_id}")
    if req.status != "pending":
        raise ControlError(f"request {request_id} is {req.status}, not pending")
    user = _user(session, approver)
    cfg = load_config(session)
    before = request_dict(req)
    if approve:
        check_approval(
            cfg.approval,
            requester=req.requested_by,
            approver=approver,
            approver_role=user.role,
            current=req.current_amount,
            requested=req.requested_amount,
        )
        lim = set_limit(
            session,
            customer_id=req.customer_id,
            amount=req.requested_amount,
            currency=req.currency,
            actor=approver,
            source="request",
            valid_until=req.valid_until,
            reason=f"request {req.id} by {req.requested_by}: {req.reason}",
        )
        req.limit_id = lim.id
    elif req.requested_by == approver:
        pass  # withdrawing one's own request is allowed
    elif user.role not in cfg.approval.approver_roles:
        raise ApprovalRefused(f"role {user.role!r} cannot decide limit requests")
    req.status = "approved" if approve else "rejected"
    req.decided_by = approver
    req.decided_at = utcnow()
    req.decision_reason = reason.strip()
    session.flush()
    record(
        session,
        actor=approver,
        action=f"limit.request.{req.status}",
        entity="limit_request",
        entity_id=req.id,
        before=before,
        after=request_dict(req),
        reason=reason,
    )
    return req


# ------------------------------------------------------------------ order check


def check_dict(c: OrderCheck) -> dict[str, Any]:
    return {
        "id": c.id,
        "customer_id": c.customer_id,
        "order_ref": c.order_ref,
        "placed_by": c.placed_by,
        "amount": c.amount,
        "currency": c.currency,
        "amount_limit_ccy": c.amount_limit_ccy,
        "limit_currency": c.limit_currency,
        "decision": c.decision,
        "status": c.status,
        "reasons": c.reasons,
        "figures": c.figures,
        "checked_by": c.checked_by,
        "decided_by": c.decided_by,
        "decided_at": c.decided_at,
        "decision_reason": c.decision_reason,
        "created_at": c.created_at,
    }


_STATUS = {
    "pass": "approved",
    "watch": "approved",
    "hold": "held",
    "prepayment_only": "prepayment",
    "stop": "stopped",
}


_process_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_process_locks_guard = threading.Lock()


def _process_lock(engine: Engine) -> AbstractContextManager[Any]:
    """On SQLite, checks through one engine queue on a mutex before ``BEGIN IMMEDIATE``.

    SQLite's busy handler waits with sleeps of up to 100 ms; queueing in-process hands the
    write lock over without them. Other engines and processes still meet at
    ``BEGIN IMMEDIATE``, which is what keeps them safe.
    """
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _process_locks_guard:
        lock = _process_locks.get(engine)
        if lock is None:
            lock = _process_locks[engine] = threading.Lock()
    return lock


def _lock(session: Session) -> None:
    """Serialise checks: SQLite takes the write lock now (``BEGIN IMMEDIATE``)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def snapshot(session: Session) -> dict[str, Any] | None:
    """The portfolio figures of the last control run (totals, HHI, Lorenz curve)."""
    return _snapshot(session)


def _snapshot(session: Session) -> dict[str, Any] | None:
    row = session.get(Setting, SNAPSHOT_KEY)
    return row.value if row is not None else None


_CUSTOMERS = cast(Table, Customer.__table__)
_CUSTOMER_COLS = [
    _CUSTOMERS.c[n]
    for n in (
        "id",
        "external_id",
        "parent_id",
        "group_code",
        "legal_id",
        "industry",
        "region",
        "country",
        "currency",
        "owner",
        "status",
    )
]
_BLOCKLIST = cast(Table, BlocklistEntry.__table__)
_CONC = cast(Table, ConcentrationLimit.__table__)


def _blocklist_reason(customer_id: Any, legal_id: Any) -> Any:
    """The first active blocklist reason for a customer id or its legal id."""
    return (
        select(_BLOCKLIST.c.reason)
        .where(
            _BLOCKLIST.c.active.is_(True),
            or_(
                _BLOCKLIST.c.customer_id == customer_id,
                and_(_BLOCKLIST.c.legal_id.is_not(None), _BLOCKLIST.c.legal_id == legal_id),
            ),
        )
        .limit(1)
    )


# The customer row carries what the check needs besides it, in the same round trip: the stored
# control configuration, the blocklist reason (by customer or legal id) and whether any
# concentration rule is active.
_HEAD_EXTRA = (
    select(_SETTINGS.c.value)
    .where(_SETTINGS.c.key == CONFIG_KEY)
    .scalar_subquery()
    .label("config_value"),
    _blocklist_reason(_CUSTOMERS.c.id, _CUSTOMERS.c.legal_id)
    .scalar_subquery()
    .label("blocklisted"),
    exists(select(_CONC.c.id).where(_CONC.c.active.is_(True))).label("has_rules"),
)
# ... and the customer's current rating row (``ratings.current_rating``: the latest approved)
_CUR_RATING = _RATINGS.alias("cur_rating")
_HEAD_FROM = _CUSTOMERS.outerjoin(
    _CUR_RATING,
    _CUR_RATING.c.id
    == select(_RATINGS.c.id)
    .where(_RATINGS.c.customer_id == _CUSTOMERS.c.id, _RATINGS.c.status == "approved")
    .order_by(_RATINGS.c.approved_at.desc(), _RATINGS.c.id.desc())
    .limit(1)
    .correlate(_CUSTOMERS)
    .scalar_subquery(),
)
_HEAD_RATING = tuple(_CUR_RATING.c[n].label("rating_" + n) for n in _RATING_COLS)
_CUSTOMER_BY_ID = (
    select(*_CUSTOMER_COLS, *_HEAD_EXTRA, *_HEAD_RATING)
    .select_from(_HEAD_FROM)
    .where(_CUSTOMERS.c.id == bindparam("id"))
)
_CUSTOMER_BY_CODE = (
    select(*_CUSTOMER_COLS, *_HEAD_EXTRA, *_HEAD_RATING)
    .select_from(_HEAD_FROM)
    .where(_CUSTOMERS.c.external_id == bindparam("code"))
)


def customer_row(conn: Connection, key: str | int) -> Any:
    """:func:`find_customer` as one light Core row: the columns the order check needs, plus
    ``config_value``, ``blocklisted`` and ``has_rules`` (see ``_HEAD_EXTRA``)."""
    if isinstance(key, int):
        return conn.execute(_CUSTOMER_BY_ID, {"id": key}).first() if _valid_id(key) else None
    row = conn.execute(_CUSTOMER_BY_CODE, {"code": key}).first()
    if row is None and key.isdigit() and _valid_id(int(key)):
        row = conn.execute(_CUSTOMER_BY_ID, {"id": int(key)}).first()
    return row


_LIMITS = cast(Table, CreditLimit.__table__)
_LIMITS_SQL = (
    select(
        _LIMITS.c.id,
        _LIMITS.c.customer_id,
        _LIMITS.c.amount,
        _LIMITS.c.currency,
        _LIMITS.c.valid_until,
        _LIMITS.c.sub_limits,
    )
    .where(
        _LIMITS.c.status == "active",
        or_(
            _LIMITS.c.customer_id == bindparam("cid"),
            and_(_LIMITS.c.customer_id.is_(None), _LIMITS.c.group_key == bindparam("key")),
        ),
    )
    .order_by(_LIMITS.c.id)
)
_LIMITS_SQL_LOCKED = _LIMITS_SQL.with_for_update()
_BLOCK_SQL = _blocklist_reason(bindparam("cid"), bindparam("legal"))
_CONC_SQL = select(_CONC.c.dimension, _CONC.c.key, _CONC.c.max_share).where(
    _CONC.c.active.is_(True)
)


def evaluate_order(
    session: Session,
    customer: Any,
    amount: Decimal,
    currency: str,
    on: date,
    cfg: ControlConfig,
    *,
    lock: bool = False,
) -> tuple[CheckResult, dict[str, Any], Decimal | None, str]:
    """Gather the context of an order and run the ladder (no writes).

    ``customer`` is a :class:`Customer` or a :func:`customer_row`. Every read is a Core
    statement built once per process (this is the order check's hot path)."""
    conn = session.connection()
    key = group_key(customer.id, customer.parent_id, customer.group_code)
    lim = glim = None
    for row in conn.execute(
        _LIMITS_SQL_LOCKED if lock else _LIMITS_SQL, {"cid": customer.id, "key": key}
    ):
        if row.customer_id is not None:
            lim = row  # the newest active one wins
        else:
            glim = row
    lim_ccy = lim.currency if lim is not None else cfg.limits.currency
    ids = group_of(session, customer)[1] if glim is not None else [customer.id]
    docs = load_docs(session, ids, on)
    mine = docs[customer.id]
    cur = {currency}
    for d in docs.values():
        cur |= d.currencies()
    fx = fx_for(session, cur, lim_ccy, on)
    missing: str | None = None
    try:
        amount_lc: Decimal | None = (amount * fx.rate(currency, lim_ccy, on)).quantize(
            Decimal("0.01")
        )
        exp: Exposure | None = exposure_of(mine, lim_ccy, on, fx, cfg)
        gexp = (
            combine([exposure_of(docs[i], lim_ccy, on, fx, cfg) for i in ids])
            if glim is not None and len(ids) >= 1
            else None
        )
    except MissingRate as exc:
        missing, amount_lc, exp, gexp = str(exc), None, None, None
    head = getattr(customer, "_fields", ())
    if "rating_id" in head:  # read with the customer row (customer_row)
        rating = _rating_from_head(session, customer, on)
    else:
        rating = get_rating(session, customer.id, on)
    if "blocklisted" in head:  # read with the customer row (customer_row)
        block = customer.blocklisted
    else:
        block = conn.execute(_BLOCK_SQL, {"cid": customer.id, "legal": customer.legal_id}).scalar()
    avoid = rule_for(rating.grade if rating else None, cached_avoidance_table(session))
    conc_info: list[ConcentrationInfo] = []
    # The rules first: the snapshot is a large JSON document (Lorenz curve …) and is only
    # read and parsed when some concentration rule is in force.
    rules = conn.execute(_CONC_SQL).all() if "has_rules" not in head or customer.has_rules else []
    snap = _snapshot(session) if rules else None
    if (
        snap
        and rules
        and amount_lc is not None
        and exp is not None
        and snap.get("currency") == lim_ccy
    ):
        total = Decimal(snap["total"])
        attrs = {
            "customer": str(customer.id),
            "group": key,
            "industry": customer.industry,
            "region": customer.region,
            "country": customer.country,
        }
        for r in rules:
            k = attrs.get(r.dimension)
            if k is None or (r.key is not None and r.key != k):
                continue
            if r.dimension == "customer":
                key_total = exp.net if cfg.limit_basis == "net" else exp.gross
            else:
                key_total = Decimal(snap.get("by", {}).get(r.dimension, {}).get(k, "0"))
            conc_info.append(
                ConcentrationInfo(
                    r.dimension, k, conc.share_after(key_total, total, amount_lc), r.max_share
                )
            )
    ctx = OrderContext(
        as_of=on,
        amount=amount_lc if amount_lc is not None else amount,
        currency=lim_ccy,
        exposure=exp,
        limit=LimitInfo(
            lim.id,
            lim.amount,
            lim.currency,
            lim.valid_until,
            {k: Decimal(v) for k, v in (lim.sub_limits or {}).items()},
        )
        if lim is not None
        else None,
        rating=rating,
        customer_status=customer.status,
        blocklisted=block,
        avoidance=avoid,
        group_exposure=gexp,
        group_limit=LimitInfo(glim.id, glim.amount, glim.currency) if glim is not None else None,
        concentration=conc_info,
        basis=cfg.limit_basis,
        missing_fx=missing,
    )
    result = check_order(ctx, cfg.ladder)
    figures: dict[str, Any] = {
        "limit": lim.amount if lim is not None else None,
        "limit_currency": lim_ccy,
        "exposure": exp.as_dict() if exp is not None else None,
        "exposure_after": result.exposure_after,
        "headroom_before": result.headroom_before,
        "rating": {
            "grade": rating.grade,
            "pd": rating.pd,
            "valid_until": rating.valid_until,
            "source": rating.source,
        }
        if rating
        else None,
        "group": key,
    }
    return result, figures, amount_lc, lim_ccy


_CHECKS = cast(Table, OrderCheck.__table__)
_RESERVATIONS = cast(Table, Reservation.__table__)
_INSERT_CHECK = insert(_CHECKS).returning(_CHECKS.c.id)
_INSERT_RESERVATION = insert(_RESERVATIONS).returning(_RESERVATIONS.c.id)
_CHECK_COLS = (
    "customer_id",
    "order_ref",
    "placed_by",
    "amount",
    "currency",
    "amount_limit_ccy",
    "limit_currency",
    "decision",
    "reasons",
    "figures",
    "status",
    "checked_by",
    "created_at",
)
_RESERVATION_COLS = (
    "customer_id",
    "order_ref",
    "amount",
    "currency",
    "status",
    "expires_on",
    "created_at",
)
# PostgreSQL: the check and its reservation in one round trip (a data-modifying CTE; the
# reservation's foreign key is checked at the end of the statement, when the check exists).
_NEW_CHECK = (
    insert(_CHECKS)
    .values({k: bindparam("c_" + k, type_=_CHECKS.c[k].type) for k in _CHECK_COLS})
    .returning(_CHECKS.c.id)
    .cte("new_check")
)
_INSERT_CHECK_AND_RESERVATION = (
    insert(_RESERVATIONS)
    .from_select(
        ["order_check_id", *_RESERVATION_COLS],
        select(
            _NEW_CHECK.c.id,
            *(bindparam("r_" + k, type_=_RESERVATIONS.c[k].type) for k in _RESERVATION_COLS),
        ),
    )
    .returning(_RESERVATIONS.c.order_check_id, _RESERVATIONS.c.id)
)


def run_order_check(
    engine: Engine,
    customer: str | int,
    amount: Any,
    currency: str,
    *,
    order_ref: str | None = None,
    placed_by: str | None = None,
    checked_by: str | None = None,
    on: date | None = None,
    record_check: bool = True,
    visible_to: str | None = None,
) -> dict[str, Any]:
    """Check one order in its own transaction and record it.

    ``visible_to``: a sales user's name; a customer owned by someone else is reported as
    unknown (:class:`UnknownCustomer`), as the API does for customers a user may not see.

    The transaction first takes the customer's lock (PostgreSQL: its limit rows
    ``FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE``), so concurrent checks see each other's
    reservations and never hand out more headroom than there is. An approved order (pass /
    watch) reserves its amount; a hold goes to the approval queue.
    """
    amt = _amount(amount, positive=True)
    ccy = _currency(currency)
    on = on or utcnow().date()
    with _process_lock(engine), Session(engine, expire_on_commit=False) as s:
        _lock(s)
        try:
            conn = s.connection()
            c = customer_row(conn, customer)
            if c is None or (visible_to is not None and c.owner != visible_to):
                raise UnknownCustomer(f"no customer {customer!r}")
            cfg = config_from(c.config_value)
            result, figures, amount_lc, lim_ccy = evaluate_order(s, c, amt, ccy, on, cfg, lock=True)
            out = {
                **result.as_dict(),
                "customer_id": c.id,
                "customer": c.external_id,
                "amount": amt,
                "currency": ccy,
                "amount_limit_ccy": amount_lc,
                "limit_currency": lim_ccy,
                "order_ref": order_ref,
                "figures": figures,
                "check_id": None,
                "reservation_id": None,
            }
            if record_check:
                # Core INSERT … RETURNING: no ORM unit of work on the hot path
                now = utcnow()
                chk = {
                    "customer_id": c.id,
                    "order_ref": order_ref,
                    "placed_by": placed_by,
                    "amount": amt,
                    "currency": ccy,
                    "amount_limit_ccy": amount_lc,
                    "limit_currency": lim_ccy,
                    "decision": result.decision,
                    "reasons": jsonable(out["reasons"]),
                    "figures": jsonable({k: v for k, v in figures.items() if k != "exposure"}),
                    "status": _STATUS[result.decision],
                    "checked_by": checked_by,
                    "created_at": now,
                }
                res = (
                    {
                        "customer_id": c.id,
                        "order_ref": order_ref,
                        "amount": amount_lc,
                        "currency": lim_ccy,
                        "status": "active",
                        "expires_on": on + timedelta(days=cfg.ladder.reservation_days),
                        "created_at": now,
                    }
                    if result.reserves and amount_lc is not None
                    else None
                )
                if res is not None and conn.dialect.name == "postgresql":
                    params = {"c_" + k: v for k, v in chk.items()}
                    params.update({"r_" + k: v for k, v in res.items()})
                    row = conn.execute(_INSERT_CHECK_AND_RESERVATION, params).one()
                    out["check_id"], out["reservation_id"] = row[0], row[1]
                else:
                    out["check_id"] = conn.execute(_INSERT_CHECK, chk).scalar_one()
                    if res is not None:
                        out["reservation_id"] = conn.execute(
                            _INSERT_RESERVATION, {"order_check_id": out["check_id"], **res}
                        ).scalar_one()
            s.commit()
        except BaseException:
            s.rollback()
            raise
    return out


def _reserve(
    s: Session, chk: OrderCheck, amount: Decimal, ccy: str, on: date, cfg: ControlConfig
) -> Reservation:
    res = Reservation(
        order_check_id=chk.id,
        customer_id=chk.customer_id,
        order_ref=chk.order_ref,
        amount=amount,
        currency=ccy,
        status="active",
        expires_on=on + timedelta(days=cfg.ladder.reservation_days),
    )
    s.add(res)
    s.flush()
    return res


def jsonable(v: Any) -> Any:
    """Decimals as exact strings, dates as ISO strings (money never becomes a float)."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, date | datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def list_checks(
    session: Session, status: str | None = None, customer_id: int | None = None, limit: int = 100
) -> list[OrderCheck]:
    q = select(OrderCheck)
    if status is not None:
        q = q.where(OrderCheck.status == status)
    if customer_id is not None:
        q = q.where(OrderCheck.customer_id == customer_id)
    return list(session.scalars(q.order_by(OrderCheck.id.desc()).limit(limit)))


def decide_hold(
    session: Session,
    check_id: int,
    *,
    actor: str,
    release: bool,
    reason: str,
    on: date | None = None,
) -> OrderCheck:
    """Release (the order is approved and reserves its headroom) or reject a held order.

    A documented decision: reason required, audited, and the person who placed the order is
    notified (a ``notify`` control action for them).
    """
    if not reason or not reason.strip():
        raise ControlError("releasing or rejecting a hold needs a reason")
    chk = session.get(OrderCheck, check_id, with_for_update=True) if _valid_id(check_id) else None
    if chk is None:
        raise ControlError(f"no order check {check_id}")
    if chk.status != "held":
        raise ControlError(f"order check {check_id} is {chk.status}, not held")
    user = _user(session, actor)
    cfg = load_config(session)
    if user.role not in cfg.approval.hold_release_roles:
        raise ApprovalRefused(f"role {user.role!r} cannot release or reject holds")
    if chk.placed_by is not None and chk.placed_by == actor:
        raise ApprovalRefused("the person who placed the order cannot decide its hold")
    before = check_dict(chk)
    chk.status = "released" if release else "rejected"
    chk.decided_by = actor
    chk.decided_at = utcnow()
    chk.decision_reason = reason.strip()
    on = on or utcnow().date()
    if release and chk.amount_limit_ccy is not None and chk.limit_currency:
        _reserve(session, chk, chk.amount_limit_ccy, chk.limit_currency, on, cfg)
    verb_en = "released" if release else "rejected"
    verb_zh = "已放行" if release else "已拒绝"
    ref = chk.order_ref or f"#{chk.id}"
    if chk.placed_by:
        add_action(
            session,
            customer_id=chk.customer_id,
            kind="notify",
            owner=chk.placed_by,
            title=f"Order {ref} {verb_en} by {actor}: {reason.strip()}",
            title_zh=f"订单 {ref} {verb_zh}（{actor}）：{reason.strip()}",
            created_by=actor,
            origin="policy",
            cause_type="order_check",
            cause_id=str(chk.id),
            due_date=on,
            dedup_key=f"notify-hold:{chk.id}",
        )
    session.flush()
    record(
        session,
        actor=actor,
        action=f"order.hold.{'release' if release else 'reject'}",
        entity="order_check",
        entity_id=chk.id,
        before=before,
        after=check_dict(chk),
        reason=reason,
    )
    return chk


def close_reservations(session: Session, on: date) -> dict[str, int]:
    """Consume reservations whose order is invoiced, cancel those whose order is cancelled,
    expire the rest past their date."""
    now = utcnow()
    counts = {"consumed": 0, "cancelled": 0, "expired": 0}
    rows = session.execute(
        select(Reservation.id, Order.status)
        .join(
            Order,
            and_(
                Order.external_id == Reservation.order_ref,
                Order.customer_id == Reservation.customer_id,
            ),
        )
        .where(Reservation.status == "active", Order.status.in_(("invoiced", "cancelled")))
    ).all()
    for rid, status in rows:
        new = "consumed" if status == "invoiced" else "cancelled"
        session.execute(
            update(Reservation).where(Reservation.id == rid).values(status=new, closed_at=now)
        )
        counts[new] += 1
    res = session.execute(
        update(Reservation)
        .where(Reservation.status == "active", Reservation.expires_on < on)
        .values(status="expired", closed_at=now)
    )
    counts["expired"] = int(getattr(res, "rowcount", 0) or 0)
    return counts


# ------------------------------------------------------------------ control actions


KINDS = (
    "reduce_limit",
    "ask_prepayment",
    "renegotiate_terms",
    "stop_deliveries",
    "take_insurance",
    "report_to_insurer",
    "escalate",
    "notify",
    "review_limit",
)


def action_dict(a: ControlAction) -> dict[str, Any]:
    return {
        "id": a.id,
        "customer_id": a.customer_id,
        "kind": a.kind,
        "title": a.title,
        "title_zh": a.title_zh,
        "owner": a.owner,
        "due_date": a.due_date,
        "status": a.status,
        "created_by": a.created_by,
        "origin": a.origin,
        "cause_type": a.cause_type,
        "cause_id": a.cause_id,
        "details": a.details,
        "created_at": a.created_at,
        "closed_at": a.closed_at,
        "closed_by": a.closed_by,
    }


def add_action(
    session: Session,
    *,
    kind: str,
    title: str,
    created_by: str,
    customer_id: int | None = None,
    owner: str | None = None,
    due_date: date | None = None,
    title_zh: str | None = None,
    origin: str = "manual",
    cause_type: str | None = None,
    cause_id: str | None = None,
    details: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> ControlAction | None:
    """Create a task (``None`` when one with the same ``dedup_key`` exists already)."""
    if kind not in KINDS:
        raise ControlError(f"unknown action kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if not title.strip():
        raise ControlError("a task needs a title")
    if (
        dedup_key is not None
        and session.scalar(select(ControlAction.id).where(ControlAction.dedup_key == dedup_key))
        is not None
    ):
        return None
    a = ControlAction(
        customer_id=customer_id,
        kind=kind,
        title=title.strip(),
        title_zh=title_zh,
        owner=owner,
        due_date=due_date,
        status="open",
        created_by=created_by,
        origin=origin,
        cause_type=cause_type,
        cause_id=cause_id,
        details=jsonable(details) if details else None,
        dedup_key=dedup_key,
    )
    session.add(a)
    session.flush()
    record(
        session,
        actor=created_by,
        action="control.action.add",
        entity="control_action",
        entity_id=a.id,
        after=action_dict(a),
    )
    return a


def close_action(
    session: Session, action_id: int, *, actor: str, status: str = "done", reason: str | None = None
) -> ControlAction:
    if status not in ("done", "cancelled"):
        raise ControlError("a task is closed as done or cancelled")
    a = session.get(ControlAction, action_id) if _valid_id(action_id) else None
    if a is None:
        raise ControlError(f"no task {action_id}")
    if a.status != "open":
        raise ControlError(f"task {action_id} is {a.status} already")
    before = action_dict(a)
    a.status, a.closed_at, a.closed_by = status, utcnow(), actor
    session.flush()
    record(
        session,
        actor=actor,
        action=f"control.action.{status}",
        entity="control_action",
        entity_id=a.id,
        before=before,
        after=action_dict(a),
        reason=reason,
    )
    return a


def list_actions(
    session: Session,
    *,
    status: str | None = "open",
    owner: str | None = None,
    customer_id: int | None = None,
    limit: int = 200,
) -> list[ControlAction]:
    q = select(ControlAction)
    if status:
        q = q.where(ControlAction.status == status)
    if owner:
        q = q.where(ControlAction.owner == owner)
    if customer_id is not None:
        q = q.where(ControlAction.customer_id == customer_id)
    return list(session.scalars(q.order_by(ControlAction.due_date, ControlAction.id).limit(limit)))


# ------------------------------------------------------------------ insurance


def add_policy(
    session: Session,
    *,
    insurer: str,
    policy_no: str,
    currency: str,
    cover_pct: Any,
    actor: str,
    report_overdue_days: int = 60,
    deductible: Any = "0",
    valid_from: date,
    valid_until: date | None = None,
    max_credit_days: int | None = None,
) -> InsurancePolicy:
    pct = to_decimal(cover_pct)
    if not Decimal(0) < pct <= Decimal(1):
        raise ControlError("cover_pct must be in (0, 1], e.g. 0.9 for 90 %")
    if report_overdue_days <= 0:
        raise ControlError("report_overdue_days must be positive")
    if session.scalar(select(InsurancePolicy.id).where(InsurancePolicy.policy_no == policy_no)):
        raise ControlError(f"policy {policy_no!r} exists already")
    p = InsurancePolicy(
        insurer=insurer,
        policy_no=policy_no,
        currency=_currency(currency),
        cover_pct=pct,
        deductible=_amount(deductible),
        report_overdue_days=report_overdue_days,
        valid_from=valid_from,
        valid_until=valid_until,
        max_credit_days=max_credit_days,
    )
    session.add(p)
    session.flush()
    record(
        session,
        actor=actor,
        action="insurance.policy.add",
        entity="insurance_policy",
        entity_id=p.id,
        after={"insurer": insurer, "policy_no": policy_no, "cover_pct": str(pct)},
    )
    return p


def set_insured_limit(
    session: Session,
    *,
    policy_id: int,
    customer_id: int,
    amount: Any,
    actor: str,
    valid_from: date,
    valid_until: date | None = None,
    currency: str | None = None,
) -> InsuredLimit:
    pol = session.get(InsurancePolicy, policy_id) if _valid_id(policy_id) else None
    if pol is None:
        raise ControlError(f"no insurance policy {policy_id}")
    if session.get(Customer, customer_id) is None:
        raise ControlError(f"no customer {customer_id}")
    for old in session.scalars(
        select(InsuredLimit).where(
            InsuredLimit.policy_id == policy_id,
            InsuredLimit.customer_id == customer_id,
            InsuredLimit.status == "active",
        )
    ):
        old.status = "superseded"
    il = InsuredLimit(
        policy_id=policy_id,
        customer_id=customer_id,
        amount=_amount(amount),
        currency=_currency(currency or pol.currency),
        valid_from=valid_from,
        valid_until=valid_until,
        status="active",
    )
    session.add(il)
    session.flush()
    record(
        session,
        actor=actor,
        action="insurance.buyer_limit.set",
        entity="insured_limit",
        entity_id=il.id,
        after={
            "policy_id": policy_id,
            "customer_id": customer_id,
            "amount": il.amount,
            "currency": il.currency,
        },
    )
    return il


def add_collateral(
    session: Session,
    *,
    customer_id: int,
    kind: str,
    amount: Any,
    currency: str,
    actor: str,
    valid_from: date,
    valid_until: date | None = None,
    issuer: str | None = None,
    reference: str | None = None,
) -> Collateral:
    if kind not in ("guarantee", "letter_of_credit"):
        raise ControlError("collateral kind is guarantee or letter_of_credit")
    col = Collateral(
        customer_id=customer_id,
        kind=kind,
        amount=_amount(amount),
        currency=_currency(currency),
        valid_from=valid_from,
        valid_until=valid_until,
        issuer=issuer,
        reference=reference,
    )
    session.add(col)
    session.flush()
    record(
        session,
        actor=actor,
        action="collateral.add",
        entity="collateral",
        entity_id=col.id,
        after={
            "customer_id": customer_id,
            "kind": kind,
            "amount": col.amount,
            "currency": col.currency,
        },
    )
    return col


def insurance_overview(session: Session, on: date) -> list[dict[str, Any]]:
    """Insured buyers with their insured and uninsured exposure (in the insured currency)."""
    cfg = load_config(session)
    out: list[dict[str, Any]] = []
    rows = session.execute(
        select(InsuredLimit, InsurancePolicy, Customer)
        .join(InsurancePolicy, InsurancePolicy.id == InsuredLimit.policy_id)
        .join(Customer, Customer.id == InsuredLimit.customer_id)
        .where(InsuredLimit.status == "active")
        .order_by(Customer.external_id)
    ).all()
    for il, pol, c in rows:
        try:
            e = customer_exposure(session, c, on, il.currency, cfg)
        except MissingRate:
            continue
        out.append(
            {
                "customer_id": c.id,
                "customer": c.external_id,
                "name": c.name,
                "insurer": pol.insurer,
                "policy_no": pol.policy_no,
                "cover_pct": pol.cover_pct,
                "insured_limit": il.amount,
                "currency": il.currency,
                "valid_until": il.valid_until,
                "report_overdue_days": pol.report_overdue_days,
                "gross": e.gross,
                "insured": e.insured.amount,
                "guaranteed": e.guaranteed.amount,
                "uninsured": e.net,
                "overdue": e.overdue,
                "max_days_overdue": e.max_days_overdue,
            }
        )
    return out


def insurer_deadline_tasks(
    session: Session, on: date, cfg: ControlConfig, actor: str = "control"
) -> int:
    """Create report-to-insurer and renewal tasks; returns how many were new."""
    pols = session.scalars(select(InsurancePolicy).where(InsurancePolicy.status == "active")).all()
    if not pols:
        return 0
    terms = [PolicyTerms(p.id, p.insurer, p.report_overdue_days, p.valid_until) for p in pols]
    buyers = [
        InsuredBuyer(il.customer_id, il.policy_id, il.id, il.valid_until)
        for il in session.scalars(select(InsuredLimit).where(InsuredLimit.status == "active"))
    ]
    ids = sorted({b.customer_id for b in buyers})
    docs = load_docs(session, ids, on) if ids else {}
    overdue = [
        OverdueInvoice(inv.id, cid, inv.due_date)
        for cid, d in docs.items()
        for inv in d.invoices
        if inv.balance > 0 and inv.due_date < on
    ]
    new = 0
    owners = (
        dict(session.execute(select(Customer.id, Customer.owner).where(Customer.id.in_(ids))).all())
        if ids
        else {}
    )
    for t in insurer_tasks(buyers, terms, overdue, on, cfg.insurer_task_lead_days):
        a = add_action(
            session,
            customer_id=t.customer_id,
            kind=t.kind,
            title=t.title_en,
            title_zh=t.title_zh,
            owner=owners.get(t.customer_id),
            due_date=t.due_date,
            created_by=actor,
            origin="policy",
            cause_type="insurance",
            cause_id=str(t.cause_id),
            dedup_key=t.dedup_key,
            details={"deadline": t.deadline, "late": t.late},
        )
        new += a is not None
    return new


# ------------------------------------------------------------------ concentration


def portfolio_rows(
    session: Session,
    on: date,
    cfg: ControlConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[conc.ExposureRow]:
    """Every customer's exposure (limit basis) in the portfolio currency."""
    ccy = cfg.limits.currency
    docs = load_docs(session, None, on)
    cur: set[str] = set()
    for d in docs.values():
        cur |= d.currencies()
    fx = fx_for(session, cur, ccy, on)
    custs = (
        {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(list(docs))))}
        if docs
        else {}
    )
    rows: list[conc.ExposureRow] = []
    n = len(docs)
    for i, (cid, d) in enumerate(docs.items()):
        c = custs.get(cid)
        if c is None:
            continue
        try:
            e = exposure_of(d, ccy, on, fx, cfg)
        except MissingRate:
            continue
        amt = e.net if cfg.limit_basis == "net" else e.gross
        rows.append(
            conc.ExposureRow(
                cid,
                amt,
                group_key(c.id, c.parent_id, c.group_code),
                c.industry,
                c.region,
                c.country,
            )
        )
        if progress is not None and i % 500 == 0:
            progress(i, n)
    return rows


def concentration_report(
    session: Session,
    on: date,
    cfg: ControlConfig | None = None,
    rows: list[conc.ExposureRow] | None = None,
) -> dict[str, Any]:
    cfg = cfg or load_config(session)
    rows = rows if rows is not None else portfolio_rows(session, on, cfg)
    rules = [
        conc.ConcentrationRule(r.id, r.dimension, r.key, r.max_share)
        for r in session.scalars(
            select(ConcentrationLimit).where(ConcentrationLimit.active.is_(True))
        )
    ]
    dims = {d: conc.concentration(rows, d) for d in conc.DIMENSIONS}
    return {
        "as_of": on,
        "currency": cfg.limits.currency,
        "dimensions": dims,
        "breaches": conc.breaches(rows, rules),
    }


def store_snapshot(
    session: Session, on: date, cfg: ControlConfig, rows: list[conc.ExposureRow]
) -> None:
    """Portfolio totals the order check uses for concentration (O(1) per check)."""
    total = sum((r.amount for r in rows if r.amount > 0), Decimal(0))
    by = {
        d: {k: str(v) for k, v in conc.totals_by(rows, d).items()}
        for d in ("group", "industry", "region", "country")
    }
    cust = conc.concentration(rows, "customer")
    value = {
        "as_of": on.isoformat(),
        "currency": cfg.limits.currency,
        "total": str(total),
        "by": by,
        "customer": {
            "hhi": cust.hhi,
            "gini": cust.gini,
            "top_n_share": {str(k): str(v) for k, v in cust.top_n_share.items()},
            "lorenz_x": cust.lorenz_x,
            "lorenz_y": cust.lorenz_y,
            "customers": len([r for r in rows if r.amount > 0]),
        },
    }
    row = session.get(Setting, SNAPSHOT_KEY)
    if row is None:
        session.add(Setting(key=SNAPSHOT_KEY, value=value))
    else:
        row.value = value


def add_concentration_limit(
    session: Session, *, dimension: str, max_share: Any, actor: str, key: str | None = None
) -> ConcentrationLimit:
    if dimension not in conc.DIMENSIONS:
        raise ControlError(f"dimension must be one of {', '.join(conc.DIMENSIONS)}")
    share = to_decimal(max_share)
    if not Decimal(0) < share <= Decimal(1):
        raise ControlError("max_share must be in (0, 1]")
    row = ConcentrationLimit(dimension=dimension, key=key, max_share=share, active=True)
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="concentration.limit.add",
        entity="concentration_limit",
        entity_id=row.id,
        after={"dimension": dimension, "key": key, "max_share": share},
    )
    return row


def record_breach(session: Session, b: conc.Breach, on: date, actor: str) -> bool:
    """A risk event when the identify stage's store offers one, else an escalation task."""
    title = (
        f"Concentration limit breached: {b.dimension} '{b.key}' holds "
        f"{(b.share * 100).quantize(Decimal('0.1'))}% (max {(b.max_share * 100).quantize(Decimal('0.1'))}%)"
    )
    title_zh = (
        f"集中度超限：{b.dimension}“{b.key}”占 {(b.share * 100).quantize(Decimal('0.1'))}%"
        f"（上限 {(b.max_share * 100).quantize(Decimal('0.1'))}%）"
    )
    a = add_action(
        session,
        kind="escalate",
        title=title,
        title_zh=title_zh,
        created_by=actor,
        customer_id=int(b.key) if b.dimension == "customer" and b.key.isdigit() else None,
        due_date=on + timedelta(days=7),
        origin="policy",
        cause_type="concentration",
        cause_id=str(b.rule_id),
        details={
            "dimension": b.dimension,
            "key": b.key,
            "share": b.share,
            "max_share": b.max_share,
        },
        dedup_key=f"concentration:{b.rule_id}:{b.key}:{on.isoformat()[:7]}",
    )
    return a is not None


# ------------------------------------------------------------------ policies over the portfolio


def apply_policy_limits(
    session: Session, on: date, cfg: ControlConfig, actor: str = "control"
) -> int:
    """Give customers without a manual/request limit a policy limit (or refresh it)."""
    n = 0
    manual = set(
        session.scalars(
            select(CreditLimit.customer_id).where(
                CreditLimit.status == "active", CreditLimit.source.in_(("manual", "request"))
            )
        )
    )
    existing = {
        lim.customer_id: lim
        for lim in session.scalars(
            select(CreditLimit).where(
                CreditLimit.status == "active", CreditLimit.source == "policy"
            )
        )
    }
    fx_cache: dict[str, FxTable] = {}
    for c in session.scalars(select(Customer).where(Customer.status == "active")):
        if c.id in manual:
            continue
        rating = get_rating(session, c.id, on)
        revenue = c.revenue
        if revenue is not None and c.currency != cfg.limits.currency:
            fx = fx_cache.setdefault(
                c.currency, fx_for(session, [c.currency], cfg.limits.currency, on)
            )
            try:
                revenue = revenue * fx.rate(c.currency, cfg.limits.currency, on)
            except MissingRate:
                revenue = None
        pl = policy_limit(
            cfg.limits,
            grade=rating.grade if rating else None,
            pd=rating.pd if rating else None,
            revenue=revenue,
        )
        old = existing.get(c.id)
        if (
            old is not None
            and old.amount == pl.amount
            and old.currency == pl.currency
            and (old.valid_until is None or old.valid_until >= on)
        ):
            continue
        set_limit(
            session,
            customer_id=c.id,
            amount=pl.amount,
            currency=pl.currency,
            actor=actor,
            source="policy",
            valid_from=on,
            valid_until=on + timedelta(days=cfg.limits.valid_days),
            reason="limit policy",
            basis=pl.basis,
        )
        n += 1
    return n


def contract_review(session: Session, on: date) -> list[dict[str, Any]]:
    """Active contracts whose terms are looser than the avoidance policy for the grade."""
    table = avoidance_table(session)
    out: list[dict[str, Any]] = []
    ratings: dict[int, RatingInfo | None] = {}
    for k in session.scalars(select(Contract).where(Contract.status == "active")):
        if k.customer_id not in ratings:
            ratings[k.customer_id] = get_rating(session, k.customer_id, on)
        r = ratings[k.customer_id]
        if r is None:
            continue
        rule = rule_for(r.grade, table)
        if rule is None:
            continue
        gap = review_contract(
            ContractTerms(k.id, k.customer_id, k.payment_terms_days, tuple(k.clauses or ())),
            r.grade,
            rule,
        )
        if gap is not None:
            out.append(
                {
                    "contract_id": k.id,
                    "contract": k.external_id,
                    "customer_id": k.customer_id,
                    "grade": r.grade,
                    "problems": gap.problems,
                }
            )
    return out


def run_control(
    engine: Engine,
    on: date,
    progress: Callable[[int, int, str], None] | None = None,
    actor: str = "control",
) -> dict[str, Any]:
    """Apply every control policy to the whole portfolio (the batch step)."""

    def tick(done: int, total: int, msg: str) -> None:
        if progress is not None:
            progress(done, total, msg)

    summary: dict[str, Any] = {"as_of": on}
    with Session(engine, expire_on_commit=False) as s, s.begin():
        cfg = load_config(s)
        tick(0, 5, "reservations")
        summary["reservations"] = close_reservations(s, on)
        tick(1, 5, "policy limits")
        summary["policy_limits"] = apply_policy_limits(s, on, cfg, actor)
        tick(2, 5, "insurer deadlines")
        summary["insurer_tasks"] = insurer_deadline_tasks(s, on, cfg, actor)
        tick(3, 5, "concentration")
        rows = portfolio_rows(s, on, cfg)
        store_snapshot(s, on, cfg, rows)
        rep = concentration_report(s, on, cfg, rows)
        summary["concentration_breaches"] = len(rep["breaches"])
        summary["breach_tasks"] = sum(record_breach(s, b, on, actor) for b in rep["breaches"])
        summary["hhi_customer"] = round(rep["dimensions"]["customer"].hhi, 6)
        tick(4, 5, "contract review")
        gaps = contract_review(s, on)
        summary["contracts_looser_than_policy"] = len(gaps)
        new_tasks = 0
        for g in gaps:
            a = add_action(
                s,
                customer_id=g["customer_id"],
                kind="renegotiate_terms",
                title=f"Contract {g['contract']} is looser than the policy for grade {g['grade']}",
                title_zh=f"合同 {g['contract']} 的条款宽于评级 {g['grade']} 的政策",
                created_by=actor,
                origin="policy",
                cause_type="contract",
                cause_id=str(g["contract_id"]),
                due_date=on + timedelta(days=30),
                details={"problems": g["problems"]},
                dedup_key=f"terms:{g['contract_id']}:{g['grade']}",
            )
            new_tasks += a is not None
        summary["terms_tasks"] = new_tasks
        tick(5, 5, "done")
    return summary
