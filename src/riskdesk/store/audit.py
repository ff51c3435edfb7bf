"""The append-only, hash-chained audit log.

Every change and decision is written with :func:`record` inside the same transaction as the
change itself. Each entry's ``hash`` is SHA-256 over its canonical content plus the previous
entry's hash, so editing or deleting any row breaks the chain from there on (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from riskdesk.store.models import AuditEntry
from riskdesk.store.types import utcnow

GENESIS = "0" * 64


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return value


def _digest(entry: AuditEntry) -> str:
    ts = entry.ts
    payload = {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f") if ts else None,
        "actor": entry.actor,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "before": entry.before,
        "after": entry.after,
        "reason": entry.reason,
        "prev": entry.prev_hash,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_TAIL_HASH = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AuditEntry:
    """Append one entry (in the caller's transaction) and return it.

    On PostgreSQL an advisory transaction lock serialises chain writers; SQLite has one
    writer anyway.
    """
    if session.get_bind().dialect.name == "postgresql":
        # one chain writer at a time; released at commit/rollback
        session.execute(text("SELECT pg_advisory_xact_lock(7243901)"))
    # only the previous hash is needed: a one-column Core read, not an ORM row
    tail_hash = session.scalar(_TAIL_HASH)
    now = utcnow()
    entry = AuditEntry(
        ts=now,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=_jsonable(before),
        after=_jsonable(after),
        reason=reason,
        prev_hash=tail_hash or GENESIS,
        hash="",
    )
    entry.hash = _digest(entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_id: int | None = None
    problem: str | None = None


def verify(session: Session) -> VerifyResult:
    """Walk the chain from the first entry; report the first row whose hash does not match."""
    prev = GENESIS
    n = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000):
        n += 1
        if entry.prev_hash != prev:
            return VerifyResult(False, n, entry.id, "previous-hash link broken (row removed?)")
        if _digest(entry) != entry.hash:
            return VerifyResult(False, n, entry.id, "content does not match its hash (row edited)")
        prev = entry.hash
    return VerifyResult(True, n)
