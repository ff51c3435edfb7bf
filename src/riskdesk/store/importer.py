"""The database side of file import: references, idempotent upserts, one transaction.

:class:`Importer` takes typed row chunks (from :mod:`riskdesk.connectors.files`) one at a
time. Per chunk it checks duplicate keys against the keys seen earlier in the file, resolves
the user's codes to internal ids with one ``IN`` query per referenced table, compares each row
with the stored record of the same key (``inserted`` / ``updated`` / ``unchanged``) and writes
with SQLAlchemy Core ``executemany``. Once any error is known, it stops writing and only keeps
validating, so the caller can list every bad row and roll the whole transaction back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from riskdesk.connectors.import_schema import Chunk, Col, Kind, RowError, exceeds_payment
from riskdesk.store import audit
from riskdesk.store.models import (
    Contract,
    CreditNote,
    Customer,
    ExternalSignal,
    FxRate,
    Invoice,
    MarketIndicator,
    Order,
    Payment,
    PaymentAllocation,
)
from riskdesk.store.types import Amount

TABLES: dict[str, Table] = {
    "customers": Customer.__table__,  # type: ignore[dict-item]
    "contracts": Contract.__table__,  # type: ignore[dict-item]
    "orders": Order.__table__,  # type: ignore[dict-item]
    "invoices": Invoice.__table__,  # type: ignore[dict-item]
    "payments": Payment.__table__,  # type: ignore[dict-item]
    "allocations": PaymentAllocation.__table__,  # type: ignore[dict-item]
    "credit_notes": CreditNote.__table__,  # type: ignore[dict-item]
    "market_indicators": MarketIndicator.__table__,  # type: ignore[dict-item]
    "external_signals": ExternalSignal.__table__,  # type: ignore[dict-item]
    "fx_rates": FxRate.__table__,  # type: ignore[dict-item]
}

_REF_EXTRA: dict[str, tuple[str, ...]] = {
    "customers": (),
    "contracts": ("customer_id",),
    "orders": ("customer_id",),
    "invoices": ("customer_id", "currency"),
    "payments": ("customer_id", "currency", "amount"),
}
_SINGULAR = {
    "customers": "customer",
    "contracts": "contract",
    "orders": "order",
    "invoices": "invoice",
    "payments": "payment",
}
_ZH = {
    "customers": "客户",
    "contracts": "合同",
    "orders": "订单",
    "invoices": "发票",
    "payments": "付款",
}
"""The kinds a reference can name, in Chinese (for the reasons of bad rows)."""
IN_LIMIT = 5000
"""Most keys in one ``IN`` list (SQLite allows 32766 bound parameters)."""


@dataclass
class ImportResult:
    """What an import did (or, with errors, why nothing was done)."""

    kind: str
    file: str
    dry_run: bool = False
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def as_dict(self) -> dict[str, Any]:
        if self.ok:
            return {
                "ok": True,
                "kind": self.kind,
                "file": self.file,
                "dry_run": self.dry_run,
                "inserted": self.inserted,
                "updated": self.updated,
                "unchanged": self.unchanged,
                "rows": self.rows,
            }
        return {
            "ok": False,
            "kind": self.kind,
            "file": self.file,
            "rows": self.rows,
            "error_count": self.error_count,
            "errors_shown": len(self.errors),
            "errors": [e.as_dict() for e in self.errors],
        }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        if a is None or b is None:
            return a is b
        return Decimal(a) == Decimal(b)
    return bool(a == b)


def _batches(items: list[Any], n: int = IN_LIMIT) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Importer:
    """Validate and upsert one file's rows of one kind inside the caller's transaction."""

    def __init__(
        self, session: Session, kind: Kind, columns: list[Col], *, max_errors: int = 1000
    ) -> None:
        self.session = session
        self.conn = session.connection()
        self.kind = kind
        self.table = TABLES[kind.name]
        self.columns = columns
        self.names = {c.name for c in columns}
        self.refs = [c for c in columns if c.type == "ref"]
        # stored, non-reference columns present in the file
        self.plain = [c.name for c in columns if c.stored and c.type != "ref"]
        self.stored_refs = [c.name for c in self.refs if c.stored]
        self.max_errors = max_errors
        self.result = ImportResult(kind=kind.name, file="")
        self.seen: dict[Any, int] = {}
        self.deferred_parents: list[tuple[str, str, int]] = []
        self.touched_payments: dict[int, int] = {}
        self._resolved: dict[str, dict[str, Any]] = {}

    # -- errors -----------------------------------------------------------------------------

    @property
    def writing(self) -> bool:
        return self.result.error_count == 0

    def error(self, err: RowError) -> None:
        self.result.error_count += 1
        if len(self.result.errors) < self.max_errors:
            self.result.errors.append(err)

    # -- lookups ----------------------------------------------------------------------------

    def _lookup(self, kind: str, codes: Iterable[str]) -> dict[str, Any]:
        t = TABLES[kind]
        cols = [t.c.external_id, t.c.id, *(t.c[n] for n in _REF_EXTRA[kind])]
        out: dict[str, Any] = {}
        for part in _batches(list(set(codes))):
            for r in self.conn.execute(select(*cols).where(t.c.external_id.in_(part))):
                out[r.external_id] = r
        return out

    def _key_cols(self) -> list[Any]:
        return [self.table.c[k] for k in self.kind.key]

    def _existing(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], Any]:
        t = self.table
        key_cols = self._key_cols()
        cols = [t.c.id, *key_cols, *(t.c[n] for n in self.plain + self.stored_refs)]
        cols = list(dict.fromkeys(cols))
        out: dict[tuple[Any, ...], Any] = {}
        for part in _batches(keys):
            if len(key_cols) == 1:
                cond = key_cols[0].in_([k[0] for k in part])
            else:
                cond = tuple_(*key_cols).in_(part)
            for r in self.conn.execute(select(*cols).where(cond)):
                out[tuple(r._mapping[c.name] for c in key_cols)] = r
        return out

    # -- one chunk --------------------------------------------------------------------------

    def process(self, chunk: Chunk) -> None:
        """Check and (while the file is still clean) write one chunk."""
        self.result.rows += chunk.count
        for err in chunk.errors:
            self.error(err)
        kind = self.kind
        good: list[tuple[int, dict[str, Any]]] = []
        for line, v in chunk.rows:
            key = tuple(v[k] for k in kind.key) if len(kind.key) > 1 else v[kind.key[0]]
            first = self.seen.get(key)
            if first is not None:
                shown = " / ".join(str(v[k]) for k in kind.key)
                self.error(
                    RowError(
                        line,
                        kind.key[0],
                        shown,
                        f"duplicate key: already on line {first}",
                        f"键重复：已在第 {first} 行出现",
                    )
                )
                continue
            self.seen[key] = line
            good.append((line, v))

        resolved = {
            c.name: self._lookup(
                c.ref or "", (v[c.name] for _, v in good if v.get(c.name) is not None)
            )
            for c in self.refs
        }

        records: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for line, v in good:
            rec: dict[str, Any] = {n: v[n] for n in self.plain}
            hits: dict[str, Any] = {}
            bad = False
            for c in self.refs:
                code = v.get(c.name)
                if code is None:
                    hits[c.name] = None
                    continue
                hit = resolved[c.name].get(code)
                if hit is None:
                    if kind.name == "customers":
                        # may be defined anywhere in this file: checked in finish()
                        self.deferred_parents.append((v["external_id"], code, line))
                        hits[c.name] = None
                        continue
                    ref = c.ref or ""
                    what, what_zh = _SINGULAR.get(ref, ref), _ZH.get(ref, ref)
                    self.error(
                        RowError(
                            line,
                            c.name,
                            code,
                            f"unknown {what} {code!r}: not in the database (import the {ref} "
                            "first)",
                            f"未知的{what_zh} {code!r}：数据库中没有（请先导入{what_zh}）",
                        )
                    )
                    bad = True
                    continue
                hits[c.name] = hit
            if bad or not self._consistent(line, v, hits):
                continue
            for n in self.stored_refs:
                rec[n] = hits[n].id if hits[n] is not None else None
            records.append((line, v, rec))

        if self.writing:
            self._resolved = resolved
            self._write(records)

    def _consistent(self, line: int, v: dict[str, Any], hits: dict[str, Any]) -> bool:
        """Referenced documents must belong to the same customer (and currency for payments)."""
        ok = True
        cust = hits.get("customer_id")
        owner_id = cust.id if cust is not None else None
        owner_code = v.get("customer_id")
        currency = v.get("currency")
        if self.kind.name == "allocations":
            pay = hits.get("payment_id")
            owner_id = pay.customer_id if pay is not None else None
            owner_code = v.get("payment_id")
            currency = pay.currency if pay is not None else None
        for c in self.refs:
            hit = hits.get(c.name)
            if c.name in ("customer_id", "parent_id", "payment_id") or hit is None:
                continue
            if owner_id is not None and hit.customer_id != owner_id:
                owner = "payments" if self.kind.name == "allocations" else "customers"
                self.error(
                    RowError(
                        line,
                        c.name,
                        v[c.name],
                        f"belongs to another customer than {_SINGULAR[owner]} {owner_code!r}",
                        f"与{_ZH[owner]} {owner_code!r} 不属于同一客户",
                    )
                )
                ok = False
            elif (
                c.ref == "invoices"
                and self.kind.name in ("payments", "allocations")
                and currency is not None
                and hit.currency != currency
            ):
                self.error(
                    RowError(
                        line,
                        c.name,
                        v[c.name],
                        f"invoice currency {hit.currency} differs from payment currency {currency}",
                        f"发票币种 {hit.currency} 与付款币种 {currency} 不同",
                    )
                )
                ok = False
        if self.kind.name == "allocations" and ok and hits.get("payment_id") is not None:
            pay = hits["payment_id"]
            if v["amount"] > pay.amount:
                self.error(RowError(line, "amount", str(v["amount"]), *exceeds_payment(pay.amount)))
                ok = False
        return ok

    # -- writing ----------------------------------------------------------------------------

    def _write(self, records: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        if not records:
            return
        kind = self.kind
        keys = [tuple(rec[k] for k in kind.key) for _, _, rec in records]
        existing = self._existing(keys)
        compare = self.plain + self.stored_refs
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        seen_rows: list[tuple[int, dict[str, Any], dict[str, Any], Any, bool]] = []
        for (line, v, rec), key in zip(records, keys, strict=True):
            old = existing.get(key)
            diff = True
            if old is None:
                inserts.append(rec)
            else:
                m = old._mapping
                diff = any(not _same(m[n], rec[n]) for n in compare)
                if kind.name == "customers" and v.get("parent_id") is not None:
                    diff = diff or rec["parent_id"] is None  # parent defined later in this file
                if diff:
                    updates.append({"_id": old.id, **{f"_v_{n}": rec[n] for n in compare}})
            seen_rows.append((line, v, rec, old, diff))
        t = self.table
        if inserts:
            self.conn.execute(insert(t), inserts)
        if updates:
            stmt = (
                update(t)
                .where(t.c.id == bindparam("_id"))
                .values({n: bindparam(f"_v_{n}") for n in compare})
            )
            self.conn.execute(stmt, updates)
        if kind.name == "payments":
            self._payment_allocations(seen_rows)
            return
        self.result.inserted += len(inserts)
        self.result.updated += len(updates)
        self.result.unchanged += len(records) - len(inserts) - len(updates)
        if kind.name == "allocations":
            for line, _, rec in records:
                self.touched_payments[rec["payment_id"]] = line

    def _payment_allocations(
        self, rows: list[tuple[int, dict[str, Any], dict[str, Any], Any, bool]]
    ) -> None:
        """Payments: store each row's optional one-invoice allocation and count the rows."""
        new_codes = [rec["external_id"] for _, _, rec, old, _ in rows if old is None]
        ids = {code: r.id for code, r in self._lookup("payments", new_codes).items()}
        invoices = self._resolved.get("invoice_id", {})
        alloc_rows: list[tuple[int, int, int, Decimal]] = []  # (line, payment, invoice, amount)
        for line, v, rec, old, _ in rows:
            pid = old.id if old is not None else ids[rec["external_id"]]
            if v.get("invoice_id") is not None:
                amount = v.get("allocated_amount") or v["amount"]
                alloc_rows.append((line, pid, invoices[v["invoice_id"]].id, amount))
        existing: dict[tuple[int, int], Any] = {}
        a = TABLES["allocations"]
        pairs = [(p, i) for _, p, i, _ in alloc_rows]
        for part in _batches(pairs):
            q = select(a.c.id, a.c.payment_id, a.c.invoice_id, a.c.amount).where(
                tuple_(a.c.payment_id, a.c.invoice_id).in_(part)
            )
            for r in self.conn.execute(q):
                existing[(r.payment_id, r.invoice_id)] = r
        alloc_changed: set[int] = set()
        ins: list[dict[str, Any]] = []
        upd: list[dict[str, Any]] = []
        for line, pid, iid, amount in alloc_rows:
            old = existing.get((pid, iid))
            self.touched_payments[pid] = line
            if old is None:
                ins.append({"payment_id": pid, "invoice_id": iid, "amount": amount})
                alloc_changed.add(pid)
            elif not _same(old.amount, amount):
                upd.append({"_id": old.id, "_v_amount": amount})
                alloc_changed.add(pid)
        if ins:
            self.conn.execute(insert(a), ins)
        if upd:
            self.conn.execute(
                update(a).where(a.c.id == bindparam("_id")).values(amount=bindparam("_v_amount")),
                upd,
            )
        for _, _, _, old, diff in rows:
            if old is None:
                self.result.inserted += 1
            elif diff or old.id in alloc_changed:
                self.result.updated += 1
            else:
                self.result.unchanged += 1

    # -- end of file ------------------------------------------------------------------------

    def finish(self) -> ImportResult:
        """Deferred parent links and payment totals; call once after the last chunk."""
        for _, parent, line in self.deferred_parents:
            if parent not in self.seen:
                self.error(
                    RowError(
                        line,
                        "parent_id",
                        parent,
                        f"unknown customer {parent!r}: neither in the database nor in this file",
                        f"未知客户 {parent!r}：数据库和本文件中都没有",
                    )
                )
        if self.writing and self.deferred_parents:
            t = self.table
            wanted = {p for _, p, _ in self.deferred_parents}
            ids = {code: r.id for code, r in self._lookup("customers", wanted).items()}
            self.conn.execute(
                update(t)
                .where(t.c.external_id == bindparam("_child"))
                .values(parent_id=bindparam("_parent")),
                [{"_child": c, "_parent": ids[p]} for c, p, _ in self.deferred_parents],
            )
        if self.writing and self.kind.name == "customers" and "parent_id" in self.names:
            self._check_parent_cycles()
        if self.writing and self.touched_payments:
            self._check_payment_totals()
        return self.result

    def _check_parent_cycles(self) -> None:
        """Parent links must form a forest: report each cycle once, at a line of this file."""
        t = self.table
        parent: dict[int, int] = {
            r.id: r.parent_id
            for r in self.conn.execute(
                select(t.c.id, t.c.parent_id).where(t.c.parent_id.is_not(None))
            )
        }
        state: dict[int, int] = {}  # 1 = on the current path, 2 = done
        for start in parent:
            if start in state:
                continue
            path: list[int] = []
            node: int | None = start
            while node is not None and node not in state:
                state[node] = 1
                path.append(node)
                node = parent.get(node)
            if node is not None and state[node] == 1:
                cycle = path[path.index(node) :]
                codes = dict(
                    self.conn.execute(
                        select(t.c.id, t.c.external_id).where(t.c.id.in_(cycle))
                    ).all()
                )
                names = [codes[i] for i in cycle]
                line = min((self.seen[c] for c in names if c in self.seen), default=0)
                self.error(
                    RowError(
                        line,
                        "parent_id",
                        names[0],
                        "parent links form a cycle: " + " → ".join([*names, names[0]]),
                        "上级关系形成循环：" + " → ".join([*names, names[0]]),
                    )
                )
            for n in path:
                state[n] = 2

    def _check_payment_totals(self) -> None:
        p, a = TABLES["payments"], TABLES["allocations"]
        total = func.sum(a.c.amount, type_=Amount)
        for part in _batches(sorted(self.touched_payments)):
            q = (
                select(p.c.id, p.c.external_id, p.c.amount, total.label("allocated"))
                .join(a, a.c.payment_id == p.c.id)
                .where(p.c.id.in_(part))
                .group_by(p.c.id, p.c.external_id, p.c.amount)
            )
            for r in self.conn.execute(q):
                if r.allocated is not None and r.allocated > r.amount:
                    self.error(
                        RowError(
                            self.touched_payments[r.id],
                            "amount",
                            r.external_id,
                            f"allocations of payment {r.external_id!r} total {r.allocated}, "
                            f"more than its amount {r.amount}",
                            f"付款 {r.external_id!r} 的核销合计 {r.allocated}，超过其金额 {r.amount}",
                        )
                    )


def import_chunks(
    session: Session,
    kind: Kind,
    columns: list[Col],
    chunks: Iterable[Chunk],
    *,
    file_name: str,
    actor: str,
    dry_run: bool = False,
    max_errors: int = 1000,
) -> ImportResult:
    """Run a whole import in ``session``'s transaction and write its audit entry.

    The caller commits when the result is ok and not a dry run, and rolls back otherwise.
    """
    imp = Importer(session, kind, columns, max_errors=max_errors)
    imp.result.file = file_name
    imp.result.dry_run = dry_run
    for chunk in chunks:
        imp.process(chunk)
    result = imp.finish()
    if result.ok:
        audit.record(
            session,
            actor=actor,
            action=f"import.{kind.name}",
            entity=kind.table,
            entity_id=file_name[-64:],
            after={
                "file": file_name,
                "rows": result.rows,
                "inserted": result.inserted,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "dry_run": dry_run,
            },
            reason=f"file import of {kind.name}",
        )
    return result
