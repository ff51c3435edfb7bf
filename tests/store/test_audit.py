from sqlalchemy import Engine, select, update

from riskdesk.store.audit import record, verify
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
