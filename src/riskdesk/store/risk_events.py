"""Risk events repository: the open/close lifecycle, queries, the user catalogue, stored config.

:func:`sync_events` takes the events found for one date and makes the table agree: an event
found again updates the open row with the same key (customer, manifestation, subject) — so
running twice creates no duplicates — a new one opens, and an open one not found any more
closes on that date. Every change is kept in ``risk_event_history``; the run is audited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.orm import Session

from riskdesk.domain.events import SEVERITY_RANK
from riskdesk.identify.catalogue import BUILTIN_SOURCES, SourceDef
from riskdesk.identify.config import SETTINGS_KEY, IdentifyConfig
from riskdesk.store.audit import record
from riskdesk.store.models import (
    Customer,
    RiskEventHistory,
    RiskEventRow,
    RiskManifestationRow,
    RiskSourceRow,
    Setting,
)
from riskdesk.store.types import utcnow

KEY = ["customer_id", "manifestation", "subject"]
CHUNK = 5000


@dataclass
class SyncResult:
    as_of: date
    opened: int = 0
    still_open: int = 0
    closed: int = 0
    severity_changed: int = 0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return d


def _count(by: dict[str, dict[str, int]], sources: pd.Series, what: str) -> None:
    for src, n in sources.value_counts().items():
        by.setdefault(str(src), {"opened": 0, "still_open": 0, "closed": 0})[what] += int(n)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def sync_events(
    session: Session, events: pd.DataFrame, as_of: date, *, actor: str = "system"
) -> SyncResult:
    """Open, update and close events so the table reflects ``events`` found on ``as_of``.

    Events opened after ``as_of`` (a later run) are left alone, so re-running an earlier
    date does not close them.
    """
    res = SyncResult(as_of)
    found = events.drop_duplicates(KEY).copy()
    found["customer_id"] = found["customer_id"].astype("int64")
    stmt = select(
        RiskEventRow.id,
        RiskEventRow.customer_id,
        RiskEventRow.manifestation,
        RiskEventRow.subject,
        RiskEventRow.source,
        RiskEventRow.severity,
        RiskEventRow.opened_on,
        RiskEventRow.last_seen,
    ).where(RiskEventRow.closed_on.is_(None), RiskEventRow.opened_on <= as_of)
    current = pd.DataFrame(
        session.execute(stmt).all(),
        columns=[
            "id",
            "customer_id",
            "manifestation",
            "subject",
            "source_db",
            "severity_db",
            "opened_on",
            "last_seen",
        ],
    )
    current = current.astype({"customer_id": "int64", "id": "int64"})
    m = found.merge(current, on=KEY, how="outer", indicator=True)
    now = utcnow()
    history: list[dict[str, Any]] = []

    # opened
    new = m[m["_merge"] == "left_only"]
    if len(new):
        first = pd.to_datetime(new["first_seen"]).dt.date
        rows: list[dict[str, Any]] = [
            {
                "customer_id": int(r["customer_id"]),
                "source": r["source"],
                "manifestation": r["manifestation"],
                "subject": r["subject"],
                "severity": r["severity"],
                "first_seen": min(f, as_of),
                "opened_on": as_of,
                "last_seen": as_of,
                "evidence": r["evidence"] or {},
                "created_at": now,
                "updated_at": now,
            }
            for r, f in zip(_records(new), first, strict=True)
        ]
        for part in _chunks(rows):
            ids = session.scalars(
                insert(RiskEventRow).returning(RiskEventRow.id, sort_by_parameter_order=True),
                part,
            ).all()
            history.extend(
                {
                    "event_id": i,
                    "on_date": as_of,
                    "change": "opened",
                    "severity": r["severity"],
                    "detail": None,
                    "at": now,
                }
                for i, r in zip(ids, part, strict=True)
            )
        res.opened = len(rows)
        _count(res.by_source, new["source"], "opened")

    # found again
    both = m[m["_merge"] == "both"]
    if len(both):
        changed = both["severity"] != both["severity_db"]
        fresh = pd.to_datetime(both["last_seen"]).dt.date <= as_of
        upd: list[dict[str, Any]] = [
            {
                "id": int(r["id"]),
                "severity": r["severity"] if ok else r["severity_db"],
                "last_seen": as_of if ok else r["last_seen"],
                "evidence": r["evidence"] or {},
                "updated_at": now,
            }
            for r, ok in zip(_records(both), fresh, strict=True)
        ]
        for part in _chunks(upd):
            session.execute(update(RiskEventRow), part)
        sev = both[changed & fresh]
        history.extend(
            {
                "event_id": int(r["id"]),
                "on_date": as_of,
                "change": "severity",
                "severity": r["severity"],
                "detail": {"from": r["severity_db"]},
                "at": now,
            }
            for r in _records(sev)
        )
        res.still_open = len(both)
        res.severity_changed = len(sev)
        _count(res.by_source, both["source"], "still_open")

    # cleared
    gone = m[m["_merge"] == "right_only"]
    if len(gone):
        for part in _chunks(
            [{"id": int(i), "closed_on": as_of, "updated_at": now} for i in gone["id"]]
        ):
            session.execute(update(RiskEventRow), part)
        history.extend(
            {
                "event_id": int(r["id"]),
                "on_date": as_of,
                "change": "closed",
                "severity": r["severity_db"],
                "detail": None,
                "at": now,
            }
            for r in _records(gone)
        )
        res.closed = len(gone)
        _count(res.by_source, gone["source_db"], "closed")

    for part in _chunks(history):
        session.execute(insert(RiskEventHistory), part)
    record(
        session,
        actor=actor,
        action="identify.run",
        entity="risk_events",
        entity_id=as_of.isoformat(),
        after=res.as_dict(),
        reason="risk identification",
    )
    return res


# --- queries -----------------------------------------------------------------------------


def event_dict(e: RiskEventRow) -> dict[str, Any]:
    return {
        "id": e.id,
        "customer_id": e.customer_id,
        "source": e.source,
        "manifestation": e.manifestation,
        "subject": e.subject,
        "severity": e.severity,
        "first_seen": e.first_seen.isoformat(),
        "opened_on": e.opened_on.isoformat(),
        "last_seen": e.last_seen.isoformat(),
        "closed_on": e.closed_on.isoformat() if e.closed_on else None,
        "open": e.closed_on is None,
        "evidence": e.evidence,
    }


@dataclass
class EventFilter:
    customer_id: int | None = None
    customer_ids: list[int] | None = None
    source: str | None = None
    manifestation: str | None = None
    severity: str | None = None
    min_severity: str | None = None
    open: bool | None = None
    date_from: date | None = None
    date_to: date | None = None
    owner: str | None = None  # only customers of this sales owner


def _filtered(f: EventFilter) -> Select[Any]:
    q = select(RiskEventRow)
    if f.customer_id is not None:
        q = q.where(RiskEventRow.customer_id == f.customer_id)
    if f.customer_ids is not None:
        q = q.where(RiskEventRow.customer_id.in_(f.customer_ids))
    if f.owner is not None:
        q = q.where(
            RiskEventRow.customer_id.in_(select(Customer.id).where(Customer.owner == f.owner))
        )
    if f.source:
        q = q.where(RiskEventRow.source == f.source)
    if f.manifestation:
        q = q.where(RiskEventRow.manifestation == f.manifestation)
    if f.severity:
        q = q.where(RiskEventRow.severity == f.severity)
    if f.min_severity:
        allowed = [s for s, r in SEVERITY_RANK.items() if r >= SEVERITY_RANK[f.min_severity]]
        q = q.where(RiskEventRow.severity.in_(allowed))
    if f.open is True:
        q = q.where(RiskEventRow.closed_on.is_(None))
    elif f.open is False:
        q = q.where(RiskEventRow.closed_on.is_not(None))
    # date range: events alive at some point in [date_from, date_to]
    if f.date_to is not None:
        q = q.where(RiskEventRow.opened_on <= f.date_to)
    if f.date_from is not None:
        q = q.where((RiskEventRow.closed_on.is_(None)) | (RiskEventRow.closed_on >= f.date_from))
    return q


def list_events(
    session: Session, f: EventFilter, *, limit: int = 100, offset: int = 0
) -> tuple[int, list[RiskEventRow]]:
    """Events matching ``f`` (newest first) and the total count."""
    q = _filtered(f)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(RiskEventRow.opened_on.desc(), RiskEventRow.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(rows)


def event_history(session: Session, event_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RiskEventHistory)
        .where(RiskEventHistory.event_id == event_id)
        .order_by(RiskEventHistory.id)
    ).all()
    return [
        {
            "on_date": h.on_date.isoformat(),
            "change": h.change,
            "severity": h.severity,
            "detail": h.detail,
        }
        for h in rows
    ]


def open_counts_by_source(
    session: Session, customer_ids: list[int] | None = None
) -> dict[str, int]:
    q = select(RiskEventRow.source, func.count()).where(RiskEventRow.closed_on.is_(None))
    if customer_ids is not None:
        q = q.where(RiskEventRow.customer_id.in_(customer_ids))
    return {str(s): int(n) for s, n in session.execute(q.group_by(RiskEventRow.source)).all()}


def open_counts_by_source_severity(
    session: Session, owner: str | None = None
) -> list[tuple[str, str, int]]:
    """(source, severity, count) of open events; only ``owner``'s customers when given."""
    q = select(RiskEventRow.source, RiskEventRow.severity, func.count()).where(
        RiskEventRow.closed_on.is_(None)
    )
    if owner is not None:
        q = q.where(
            RiskEventRow.customer_id.in_(select(Customer.id).where(Customer.owner == owner))
        )
    rows = session.execute(q.group_by(RiskEventRow.source, RiskEventRow.severity)).all()
    return [(str(s), str(v), int(n)) for s, v, n in rows]


def customer_events(session: Session, customer_id: int) -> list[RiskEventRow]:
    return list(
        session.scalars(
            select(RiskEventRow)
            .where(RiskEventRow.customer_id == customer_id)
            .order_by(RiskEventRow.first_seen, RiskEventRow.id)
        ).all()
    )


# --- catalogue ---------------------------------------------------------------------------


def list_sources(session: Session) -> list[dict[str, Any]]:
    """Built-in and user-defined sources with their manifestations."""
    out: list[dict[str, Any]] = []
    for s in BUILTIN_SOURCES:
        out.append(
            {
                "code": s.code,
                "name_en": s.name_en,
                "name_zh": s.name_zh,
                "description_en": s.description_en,
                "description_zh": s.description_zh,
                "builtin": True,
                "manifestations": [
                    {
                        "code": m.code,
                        "name_en": m.name_en,
                        "name_zh": m.name_zh,
                        "description_en": m.description_en,
                        "description_zh": m.description_zh,
                        "severity": m.severity,
                    }
                    for m in s.manifestations
                ],
            }
        )
    mans: dict[int, list[dict[str, Any]]] = {}
    for m in session.scalars(select(RiskManifestationRow).order_by(RiskManifestationRow.code)):
        mans.setdefault(m.source_id, []).append(
            {
                "code": m.code,
                "name_en": m.name_en,
                "name_zh": m.name_zh,
                "description_en": m.description_en or "",
                "description_zh": m.description_zh or "",
                "severity": m.severity,
            }
        )
    for r in session.scalars(select(RiskSourceRow).order_by(RiskSourceRow.code)):
        out.append(
            {
                "code": r.code,
                "name_en": r.name_en,
                "name_zh": r.name_zh,
                "description_en": r.description_en or "",
                "description_zh": r.description_zh or "",
                "builtin": False,
                "manifestations": mans.get(r.id, []),
            }
        )
    return out


class SourceConflict(ValueError):
    """A manifestation code already belongs to another source."""


def upsert_sources(
    session: Session, defs: list[SourceDef], *, actor: str = "system"
) -> dict[str, int]:
    """Create or update user-defined sources and their manifestations (keyed by code)."""
    created = updated = 0
    for d in defs:
        row = session.scalar(select(RiskSourceRow).where(RiskSourceRow.code == d.code))
        before = None
        if row is None:
            row = RiskSourceRow(code=d.code, name_en=d.name_en, name_zh=d.name_zh)
            session.add(row)
            created += 1
        else:
            before = {"name_en": row.name_en, "name_zh": row.name_zh}
            updated += 1
        row.name_en, row.name_zh = d.name_en, d.name_zh
        row.description_en, row.description_zh = d.description_en, d.description_zh
        session.flush()
        for md in d.manifestations:
            m = session.scalar(
                select(RiskManifestationRow).where(RiskManifestationRow.code == md.code)
            )
            if m is None:
                m = RiskManifestationRow(code=md.code, source_id=row.id)
                session.add(m)
            elif m.source_id != row.id:
                raise SourceConflict(f"manifestation {md.code!r} already belongs to another source")
            m.name_en, m.name_zh = md.name_en, md.name_zh
            m.description_en, m.description_zh = md.description_en, md.description_zh
            m.severity = md.severity
        session.flush()
        record(
            session,
            actor=actor,
            action="risk_source.upsert",
            entity="risk_source",
            entity_id=d.code,
            before=before,
            after=d.model_dump(),
        )
    return {"created": created, "updated": updated}


# --- configuration -----------------------------------------------------------------------


def stored_config(session: Session) -> dict[str, Any] | None:
    row = session.get(Setting, SETTINGS_KEY)
    return row.value if row is not None else None


def load_config(session: Session, override: dict[str, Any] | None = None) -> IdentifyConfig:
    """Defaults, then the stored overrides, then ``override``."""
    return IdentifyConfig.merged(stored_config(session), override)


def save_config(
    session: Session, values: dict[str, Any], *, actor: str = "system"
) -> IdentifyConfig:
    """Store overrides (validated) as the new defaults."""
    cfg = IdentifyConfig.merged(values)
    before = stored_config(session)
    row = session.get(Setting, SETTINGS_KEY)
    if row is None:
        session.add(Setting(key=SETTINGS_KEY, value=values))
    else:
        row.value = values
    record(
        session,
        actor=actor,
        action="identify.config",
        entity="setting",
        entity_id=SETTINGS_KEY,
        before=before,
        after=values,
    )
    return cfg


__all__ = [
    "EventFilter",
    "SourceConflict",
    "SyncResult",
    "customer_events",
    "event_dict",
    "event_history",
    "list_events",
    "list_sources",
    "load_config",
    "open_counts_by_source",
    "save_config",
    "stored_config",
    "sync_events",
    "upsert_sources",
]
