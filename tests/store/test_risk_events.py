"""The risk-event lifecycle on SQLite and PostgreSQL, from the database tables through the step."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from riskdesk.analytics.steps.identify import run_identification
from riskdesk.identify.catalogue import parse_sources_json
from riskdesk.store.audit import verify
from riskdesk.store.db import session_scope
from riskdesk.store.models import (
    AuditEntry,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    RiskEventHistory,
    RiskEventRow,
)
from riskdesk.store.risk_events import (
    EventFilter,
    SourceConflict,
    event_history,
    list_events,
    list_sources,
    load_config,
    save_config,
    upsert_sources,
)

AS_OF = date(2026, 6, 30)


def _seed(engine: Engine) -> tuple[int, int, int]:
    with session_scope(engine) as s:
        c = Customer(external_id="C1", name="Acme", currency="EUR")
        s.add(c)
        s.flush()
        invs = []
        for ext, due, amount in (("I1", 45, "1000"), ("I2", 10, "500")):
            i = Invoice(
                external_id=ext,
                customer_id=c.id,
                issue_date=AS_OF - timedelta(days=due + 30),
                due_date=AS_OF - timedelta(days=due),
                amount=Decimal(amount),
                currency="EUR",
            )
            s.add(i)
            s.flush()
            invs.append(i.id)
        return c.id, invs[0], invs[1]


def _pay(engine: Engine, customer: int, invoice: int, on: date, amount: str) -> None:
    with session_scope(engine) as s:
        p = Payment(
            external_id=f"P{invoice}-{on}",
            customer_id=customer,
            payment_date=on,
            amount=Decimal(amount),
            currency="EUR",
        )
        s.add(p)
        s.flush()
        s.add(PaymentAllocation(payment_id=p.id, invoice_id=invoice, amount=Decimal(amount)))


def _open_keys(engine: Engine) -> set[tuple[str, str]]:
    with session_scope(engine) as s:
        rows = s.execute(
            select(RiskEventRow.manifestation, RiskEventRow.subject).where(
                RiskEventRow.closed_on.is_(None)
            )
        ).all()
    return {(m, sub) for m, sub in rows}


def test_rerunning_the_same_date_creates_no_duplicates(engine: Engine) -> None:
    _, i1, i2 = _seed(engine)
    first = run_identification(engine, AS_OF)
    assert first["opened"] == 2 and first["by_source"]["credit"]["opened"] == 2
    again = run_identification(engine, AS_OF)
    assert (again["opened"], again["still_open"], again["closed"]) == (0, 2, 0)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(RiskEventRow)) == 2
    assert _open_keys(engine) == {
        ("credit.overdue_31_60", f"invoice:{i1}"),
        ("credit.overdue_1_30", f"invoice:{i2}"),
    }


def test_an_event_closes_when_the_invoice_is_paid_and_history_is_kept(engine: Engine) -> None:
    c, i1, i2 = _seed(engine)
    run_identification(engine, AS_OF)
    _pay(engine, c, i2, AS_OF + timedelta(days=3), "500")
    later = AS_OF + timedelta(days=5)
    res = run_identification(engine, later)
    assert res["closed"] == 1 and res["by_source"]["credit"]["closed"] == 1
    assert _open_keys(engine) == {("credit.overdue_31_60", f"invoice:{i1}")}
    with session_scope(engine) as s:
        total, closed = list_events(s, EventFilter(open=False))
        assert total == 1 and closed[0].subject == f"invoice:{i2}"
        assert closed[0].closed_on == later and closed[0].first_seen == date(2026, 6, 21)
        assert [h["change"] for h in event_history(s, closed[0].id)] == ["opened", "closed"]
        # the run is in the audit log and the chain still verifies
        runs = s.scalars(select(AuditEntry).where(AuditEntry.action == "identify.run")).all()
        assert len(runs) == 2 and verify(s).ok


def test_an_invoice_moving_to_the_next_bucket_closes_one_event_and_opens_the_next(
    engine: Engine,
) -> None:
    _, i1, _ = _seed(engine)
    run_identification(engine, AS_OF)
    res = run_identification(engine, AS_OF + timedelta(days=20))  # I1: 45 → 65 days overdue
    assert ("credit.overdue_61_90", f"invoice:{i1}") in _open_keys(engine)
    assert ("credit.overdue_31_60", f"invoice:{i1}") not in _open_keys(engine)
    assert res["opened"] >= 1 and res["closed"] >= 1


def test_rerunning_an_earlier_date_leaves_later_events_alone(engine: Engine) -> None:
    _seed(engine)
    run_identification(engine, AS_OF)
    res = run_identification(engine, AS_OF - timedelta(days=60))  # nothing was due then
    assert res["closed"] == 0 and len(_open_keys(engine)) == 2


def test_one_open_event_per_key_is_enforced_by_the_database(engine: Engine) -> None:
    c, _, _ = _seed(engine)
    row = {
        "customer_id": c,
        "source": "credit",
        "manifestation": "credit.default",
        "subject": "customer",
        "severity": "critical",
        "first_seen": AS_OF,
        "opened_on": AS_OF,
        "last_seen": AS_OF,
        "evidence": {},
    }
    with session_scope(engine) as s:
        s.add(RiskEventRow(**row))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(RiskEventRow(**row))
    with session_scope(engine) as s:  # a closed one with the same key is fine (history)
        s.add(RiskEventRow(**{**row, "closed_on": AS_OF}))


def test_event_filters_severity_customer_and_history_rows(engine: Engine) -> None:
    c, _, _ = _seed(engine)
    run_identification(engine, AS_OF)
    with session_scope(engine) as s:
        total, _ = list_events(s, EventFilter(customer_id=c, source="credit"))
        assert total == 2
        assert list_events(s, EventFilter(min_severity="medium"))[0] == 0
        assert list_events(s, EventFilter(manifestation="credit.overdue_1_30"))[0] == 1
        assert list_events(s, EventFilter(customer_id=c + 99))[0] == 0
        assert s.scalar(select(func.count()).select_from(RiskEventHistory)) == 2


def test_user_sources_are_upserted_and_listed_after_the_builtins(engine: Engine) -> None:
    defs = parse_sources_json(
        '[{"code": "supply", "name_en": "Supply", "name_zh": "供应", "manifestations": '
        '[{"code": "supply.late", "name_en": "Late", "name_zh": "迟", "severity": "low"}]}]'
    )
    with session_scope(engine) as s:
        assert upsert_sources(s, defs) == {"created": 1, "updated": 0}
    with session_scope(engine) as s:
        assert upsert_sources(s, defs) == {"created": 0, "updated": 1}
        sources = list_sources(s)
    assert [x["code"] for x in sources][-1] == "supply"
    assert sources[-1]["manifestations"][0]["code"] == "supply.late"
    assert not sources[-1]["builtin"] and sources[0]["builtin"]
    other = parse_sources_json(
        '[{"code": "other", "name_en": "O", "name_zh": "O", "manifestations": '
        '[{"code": "supply.late", "name_en": "L", "name_zh": "L"}]}]'
    )
    with pytest.raises(SourceConflict), session_scope(engine) as s:
        upsert_sources(s, other)


def test_stored_thresholds_are_used_by_later_runs(engine: Engine) -> None:
    _seed(engine)
    with session_scope(engine) as s:
        save_config(s, {"credit": {"min_overdue_amount": 600}})
    with session_scope(engine) as s:
        assert load_config(s).credit.min_overdue_amount == 600
        assert load_config(s, {"credit": {"min_overdue_amount": 5}}).credit.min_overdue_amount == 5
    res = run_identification(engine, AS_OF)
    assert res["opened"] == 1  # the 500 invoice is now below the threshold
