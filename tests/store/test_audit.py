import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from riskdesk.store.audit import _digest, record, verify
from riskdesk.store.db import session_scope
from riskdesk.store.models import AuditEntry


def test_untouched_chain_verifies(engine: Engine) -> None:
    with session_scope(engine) as s:
        for i in range(3):
            record(
                s,
                actor="ann",
                action="limit.set",
                entity="customer",
                entity_id=i,
                before={"limit": "100"},
                after={"limit": "200"},
                reason="review",
            )
    with session_scope(engine) as s:
        res = verify(s)
    assert res.ok and res.checked == 3


def test_edited_row_is_named(engine: Engine) -> None:
    with session_scope(engine) as s:
        ids = [record(s, actor="ann", action="x", entity="e", entity_id=i).id for i in range(3)]
    with session_scope(engine) as s:
        s.execute(update(AuditEntry).where(AuditEntry.id == ids[1]).values(reason="forged"))
    with session_scope(engine) as s:
        res = verify(s)
    assert not res.ok and res.bad_id == ids[1]


def test_deleted_row_breaks_the_chain(engine: Engine) -> None:
    with session_scope(engine) as s:
        ids = [record(s, actor="ann", action="x", entity="e", entity_id=i).id for i in range(3)]
    with session_scope(engine) as s:
        s.delete(s.get(AuditEntry, ids[1]))
    with session_scope(engine) as s:
        res = verify(s)
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.id == ids[2])) == ids[2]
    assert not res.ok and res.bad_id == ids[2]


def test_record_many_chains_like_record(engine: Engine) -> None:
    from riskdesk.store.audit import AuditItem, record_many

    with session_scope(engine) as s:
        record(s, actor="ann", action="first", entity="e", entity_id=0)
        got = record_many(
            s,
            [
                AuditItem(
                    actor="bob", action="case.open", entity="case", entity_id=7, after={"count": 1}
                ),
                AuditItem(
                    actor="bob",
                    action="alert.raise",
                    entity="alert",
                    entity_id=9,
                    after={"count": 2},
                ),
            ],
        )
        assert record_many(s, []) == []
        record(s, actor="ann", action="last", entity="e", entity_id=1)
    with session_scope(engine) as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert [r.action for r in rows] == ["first", "case.open", "alert.raise", "last"]
        assert [r.id for r in rows[1:3]] == [g.id for g in got]
        assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
        assert rows[2].after == {"count": 2} and rows[1].entity_id == "7"
        res = verify(s)
    assert res.ok and res.checked == 4


def test_append_many_writes_what_record_many_writes(engine: Engine) -> None:
    """The intake's plain-SQL append stores the entries the ORM path stores (read back
    equal, chained, verifiable), with text, nulls, nested JSON and non-ASCII text."""
    from riskdesk.store.audit import AuditItem, append_many, record_many

    items = [
        AuditItem(actor="bob", action="case.open", entity="case", entity_id=7, after={"n": 1}),
        AuditItem(
            actor="bob",
            action="alert.raise",
            entity="alert",
            entity_id=None,
            before={"x": [1, 2.5, None, "逾期"]},
            after={"alerts": [{"id": 3, "rule": "r"}], "count": 1},
            reason="批量",
        ),
    ]
    cols = ("actor", "action", "entity", "entity_id", "before", "after", "reason")
    with session_scope(engine) as s:
        record_many(s, items)
        append_many(s, items)
        append_many(s, [])
        record(s, actor="ann", action="last", entity="e", entity_id=1)
    with session_scope(engine) as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert [r.action for r in rows] == ["case.open", "alert.raise"] * 2 + ["last"]
        orm, plain = rows[0:2], rows[2:4]
        for a, b in zip(orm, plain, strict=True):
            assert [getattr(a, c) for c in cols] == [getattr(b, c) for c in cols]
            assert b.ts.tzinfo is not None and abs((b.ts - a.ts).total_seconds()) < 60
        assert plain[0].prev_hash == orm[1].hash and rows[4].prev_hash == plain[1].hash
        assert verify(s).ok


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    before=_JSON,
    after=_JSON,
    reason=st.none() | st.text(),
    entity_id=st.none() | st.text(max_size=8),
)
def test_the_digest_is_the_sha256_of_the_whole_entry_encoded_canonically(
    before: Any, after: Any, reason: str | None, entity_id: str | None
) -> None:
    """The digest written out field by field (so that the intake encodes its documents once)
    is the one of the dictionary of the entry's fields encoded whole, as every stored chain
    was made."""
    entry = AuditEntry(
        ts=datetime(2026, 12, 1, 3, 4, 5, 6, tzinfo=UTC),
        actor="ann",
        action="alert.raise",
        entity="alert",
        entity_id=entity_id,
        before=before,
        after=after,
        reason=reason,
        prev_hash="ab" * 32,
    )
    payload = {
        "ts": "2026-12-01T03:04:05.000006",
        "actor": "ann",
        "action": "alert.raise",
        "entity": "alert",
        "entity_id": entity_id,
        "before": before,
        "after": after,
        "reason": reason,
        "prev": "ab" * 32,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert _digest(entry) == hashlib.sha256(blob.encode()).hexdigest()
