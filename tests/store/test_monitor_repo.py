"""Monitor repository on both databases: atomic intake, duplicates, rule publication, dedup."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from riskdesk.store import monitor_repo as repo
from riskdesk.store.audit import verify
from riskdesk.store.db import session_scope
from riskdesk.store.models import Alert, AuditEntry, Case, ProcessedEvent, RuleSet


def _ev(
    eid: str, kind: str, cust: str = "K", day: str = "2026-01-05", **payload: object
) -> dict[str, object]:
    return {
        "event_id": eid,
        "type": kind,
        "event_time": f"{day}T10:00:00Z",
        "customer_id": cust,
        "payload": payload,
    }


def test_a_failed_transaction_records_no_event(engine: Engine) -> None:
    try:
        with session_scope(engine) as s:
            res = repo.ingest(s, [_ev("z1", "contract.breached", clause="x")])
            assert res.accepted == 1
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 0
        res = repo.ingest(s, [_ev("z1", "contract.breached", clause="x")])
        assert (res.accepted, res.duplicates) == (1, 0)  # the retry is not a duplicate


def test_repeated_hits_update_one_alert_and_one_case(engine: Engine) -> None:
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("b1", "contract.breached", clause="x")])
    with session_scope(engine) as s:
        repo.ingest(
            s,
            [
                _ev("b2", "contract.breached", clause="y"),
                _ev("b3", "invoice.disputed", invoice_id="I1"),
            ],
        )
    with session_scope(engine) as s:
        alerts = list(s.scalars(select(Alert).order_by(Alert.id)))
        assert [(a.rule_id, a.hits) for a in alerts] == [
            ("contract_breach", 2),
            ("dispute_opened", 1),
        ]
        assert len({a.case_id for a in alerts}) == 1
        assert s.scalar(select(func.count()).select_from(Case)) == 1
        assert verify(s).ok
        actions = set(s.scalars(select(AuditEntry.action)))
        assert {"alert.raise", "case.open"} <= actions


def test_publishing_swaps_the_version_used_by_intake(engine: Engine) -> None:
    rules = {
        "rules": [
            {
                "id": "every_order",
                "severity": "low",
                "title": {"en": "o", "zh": "订"},
                "playbook": {"en": "p", "zh": "处"},
                "when": {"field": "event.type", "op": "==", "value": "order.placed"},
            }
        ]
    }
    order = dict(order_id="O1", order_date="2026-01-05", amount="1.00", currency="EUR")
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("o1", "order.placed", **order)])
        draft = repo.draft_rule_set(s, rules, actor="t")
        assert repo.published_engine(s).version == 1  # type: ignore[union-attr]
    with session_scope(engine) as s:
        repo.publish_rule_set(s, draft.version, actor="t")
        statuses = dict(s.execute(select(RuleSet.version, RuleSet.status)).tuples().all())
        assert statuses == {1: "retired", 2: "published"}
    with session_scope(engine) as s:
        res = repo.ingest(s, [_ev("o2", "order.placed", cust="K2", **dict(order, order_id="O2"))])
        assert res.rule_set_version == 2 and res.alerts_new == 1


def test_rules_can_read_the_rating_in_force(engine: Engine) -> None:
    from datetime import date

    from riskdesk.store.models import Customer, Rating
    from riskdesk.store.types import utcnow

    rules = {
        "rules": [
            {
                "id": "weak_grade_order",
                "severity": "medium",
                "title": {"en": "Order from a weak grade", "zh": "低评级客户下单"},
                "playbook": {"en": "Check the limit.", "zh": "核对额度。"},
                "events": ["order.placed"],
                "when": {"field": "rating.grade", "op": ">=", "value": 8},
            }
        ]
    }
    with session_scope(engine) as s:
        for ext, grade in (("G3", 3), ("G9", 9)):
            c = Customer(external_id=ext, name=ext, currency="EUR")
            s.add(c)
            s.flush()
            s.add(
                Rating(
                    customer_id=c.id,
                    status="approved",
                    base_source="manual",
                    base_grade=grade,
                    final_grade=grade,
                    final_pd=0.01 * grade,
                    valid_until=date(2099, 1, 1),
                    proposed_by="t",
                    approved_at=utcnow(),
                )
            )
        repo.publish_rule_set(s, repo.draft_rule_set(s, rules, actor="t").version, actor="t")
    order = dict(order_date="2026-01-05", amount="1.00", currency="EUR")
    with session_scope(engine) as s:
        repo.ingest(
            s,
            [
                _ev("g1", "order.placed", cust="G3", order_id="X1", **order),
                _ev("g2", "order.placed", cust="G9", order_id="X2", **order),
            ],
        )
        fired = {(a.customer_ref, a.rule_id) for a in s.scalars(select(Alert))}
    assert fired == {("G9", "weak_grade_order")}
    with session_scope(engine) as s:  # a dry run over the history reads the ratings too
        dry = repo.dry_run(s, rules)
    assert (dry["alerts"], dry["by_customer"]) == (1, {"G9": ["weak_grade_order"]})


def test_intake_reads_the_same_rating_in_force_as_the_rating_store(engine: Engine) -> None:
    """The intake's plain read of ratings gives what ``current_ratings`` gives: the latest
    approved rating, an expired override falling back to the grade without it, nothing for a
    customer without an approved rating."""
    from datetime import timedelta

    from riskdesk.store import ratings
    from riskdesk.store.models import Customer
    from riskdesk.store.types import utcnow

    today = utcnow().date()
    with session_scope(engine) as s:
        ids = {}
        for ext in ("R1", "R2", "R3", "R4"):
            c = Customer(external_id=ext, name=ext, currency="EUR")
            s.add(c)
            s.flush()
            ids[ext] = c.id
        plans = [
            ("R1", 2, {}),
            ("R1", 6, {}),  # supersedes the grade 2
            ("R2", 4, {"override_notches": 2, "override_expires": today}),  # expires today
            ("R3", 5, {"override_notches": 1, "override_expires": today + timedelta(days=9)}),
        ]
        for ext, grade, over in plans:
            r = ratings.propose_rating(
                s,
                ids[ext],
                base=ratings.BaseGrade("manual", grade),
                proposed_by="ana",
                on=today - timedelta(days=1),
                override_reason="test" if over else None,
                **over,
            )
            ratings.approve_rating(s, r.id, approver="rita", approver_role="risk_manager")
        ratings.propose_rating(  # proposed only: not in force
            s, ids["R4"], base=ratings.BaseGrade("manual", 9), proposed_by="ana"
        )
        customers = repo._customers(s, sorted(ids))
        got = repo._ratings(s, customers.values())
        want = {
            cid: {"grade": r.grade, "pd": r.pd}
            for cid, r in ratings.current_ratings(s, list(ids.values()), today).items()
        }
    assert got == want
    assert set(got) == {ids["R1"], ids["R2"], ids["R3"]}
    assert got[ids["R1"]]["grade"] == 6
    assert got[ids["R2"]]["grade"] == 4  # the override has expired
    assert got[ids["R3"]]["grade"] == 6  # the override is still in force


def _inv(eid: str, inv: str, amount: str, cust: str = "K", day: str = "2026-01-05") -> dict:
    return _ev(
        eid,
        "invoice.issued",
        cust=cust,
        day=day,
        invoice_id=inv,
        issue_date=day,
        due_date="2026-02-04",
        amount=amount,
        currency="EUR",
    )


def _balance(engine: Engine, ref: str = "K") -> float:
    with session_scope(engine) as s:
        return float(repo.customer_state(s, ref)["features"]["open_invoice_balance"])  # type: ignore[index]


def test_books_kept_in_memory_follow_the_database(engine: Engine) -> None:
    """The intake's in-memory books: a rolled-back batch leaves no trace in them, and a state
    row written by someone else (another process, a restore) is read again, not overwritten
    with the cached copy."""
    from riskdesk.store.models import CustomerState

    with session_scope(engine) as s:
        repo.ingest(s, [_inv("c1", "I1", "100.00")])
    assert _balance(engine) == 100.0
    # a batch that fails after the intake: its change must not survive in memory either
    try:
        with session_scope(engine) as s:
            repo.ingest(s, [_inv("c2", "I2", "50.00")])
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("c3", "I3", "1.00")])
    assert _balance(engine) == 101.0  # not 151: I2 was rolled back
    # another writer changes the stored book (new stamp): the next batch starts from it
    with session_scope(engine) as s:
        row = s.get(CustomerState, "K")
        assert row is not None and row.stamp is not None
        book = dict(row.book)
        book["inv"] = {k: v for k, v in book["inv"].items() if k != "I1"}
        row.book = book
        row.stamp = 12345
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("c4", "I4", "10.00")])
    assert _balance(engine) == 11.0  # I3 + I4; the cached copy still had I1
    # the cache also survives a database emptied and refilled under the same URL
    with session_scope(engine) as s:
        s.query(CustomerState).delete()
        s.query(ProcessedEvent).delete()
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("c5", "I5", "7.00")])
    assert _balance(engine) == 7.0
    # two batches in one transaction see each other's books
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("c6", "I6", "1.00")])
        repo.ingest(s, [_inv("c7", "I7", "2.00")])
    assert _balance(engine) == 10.0
    repo.clear_book_cache()
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("c8", "I8", "5.00")])
    assert _balance(engine) == 15.0


def test_sqlite_writer_turn_is_held_only_until_the_transaction_ends(sqlite_url: str) -> None:
    """Intake processes on one SQLite file take turns on ``<db>.intake-lock`` for their write
    phase; the turn is released on commit and on rollback."""
    import fcntl
    import os

    from riskdesk.store.db import make_engine

    engine = make_engine(sqlite_url)
    lock_path = sqlite_url.removeprefix("sqlite:///") + ".intake-lock"

    def free() -> bool:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    try:
        with session_scope(engine) as s:
            repo.ensure_default_rules(s)  # (a transaction that wrote before takes no turn)
        with session_scope(engine) as s:
            repo.ingest(s, [_inv("t1", "I1", "10.00")])
            assert not free()  # held during the write phase
        assert free()
        try:
            with session_scope(engine) as s:
                repo.ingest(s, [_inv("t2", "I2", "10.00")])
                raise RuntimeError("crash before commit")
        except RuntimeError:
            pass
        assert free()
    finally:
        engine.dispose()


def test_default_assignee_prefers_first_active_analyst_then_risk_manager(engine: Engine) -> None:
    from riskdesk.store.models import User

    with session_scope(engine) as s:
        assert repo._default_assignee(s, None) is None
        s.add_all(
            [
                User(username="viewer1", role="viewer"),
                User(username="rm1", role="risk_manager"),
                User(username="rm0", role="risk_manager", active=False),
            ]
        )
        s.flush()
        assert repo._default_assignee(s, None) == "rm1"
        s.add_all(
            [
                User(username="an_off", role="analyst", active=False),
                User(username="an1", role="analyst"),
                User(username="an2", role="analyst"),
            ]
        )
        s.flush()
        assert repo._default_assignee(s, None) == "an1"


def test_new_alerts_and_cases_get_their_own_ids(engine: Engine) -> None:
    """The ids given back for a batch's new alerts and cases (RETURNING on PostgreSQL, a
    read-back on SQLite) are the stored ones: links and the audit entries name the right rows,
    also next to alerts and cases from an earlier batch."""
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("e0", "contract.breached", cust="C2", clause="x")])
    batch = [_ev(f"e{i}", "contract.breached", cust=f"C{i % 5}", clause="x") for i in range(1, 9)]
    batch += [_ev(f"d{i}", "invoice.disputed", cust=f"C{4 - i}", invoice_id="I") for i in range(3)]
    with session_scope(engine) as s:
        res = repo.ingest(s, batch)
        assert res.accepted == 11
    with session_scope(engine) as s:
        alerts = list(s.scalars(select(Alert)))
        cases = {c.id: c for c in s.scalars(select(Case))}
        assert len(alerts) == 8 and len(cases) == 5  # 5 breach + 3 dispute alerts, 1 case each
        for a in alerts:
            assert cases[a.case_id].customer_ref == a.customer_ref
        by_key = {(a.customer_ref, a.rule_id): a.id for a in alerts}
        raised = list(
            s.scalars(
                select(AuditEntry).where(AuditEntry.action == "alert.raise").order_by(AuditEntry.id)
            )
        )
        logged = [x for e in raised for x in e.after["alerts"]]
        assert len(logged) == 8
        for x in logged:
            assert by_key[(x["customer"], x["rule"])] == x["id"]
            assert cases[x["case"]].customer_ref == x["customer"]
        opened = [
            x
            for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "case.open"))
            for x in e.after["cases"]
        ]
        assert {x["id"]: x["customer"] for x in opened} == {
            cid: c.customer_ref for cid, c in cases.items()
        }
        assert raised[-1].entity_id == str(raised[-1].after["alerts"][0]["id"])
        assert verify(s).ok


def _publish_order_points(engine: Engine) -> None:
    """Rules where any order scores 45 points (medium) and one over 1,000 another 30 (high)."""
    rule = {"title": {"en": "t", "zh": "标"}, "playbook": {"en": "p", "zh": "处"}}
    rules = {
        "thresholds": {"medium": 40, "high": 70},
        "rules": [
            {
                "id": "any_order",
                "points": 45,
                **rule,
                "events": ["order.placed"],
                "when": {"field": "event.type", "op": "==", "value": "order.placed"},
            },
            {
                "id": "big_order",
                "points": 30,
                **rule,
                "events": ["order.placed"],
                "when": {"field": "event.amount", "op": ">", "value": 1000},
            },
        ],
    }
    with session_scope(engine) as s:
        repo.publish_rule_set(s, repo.draft_rule_set(s, rules, actor="t").version, actor="t")


def _order(eid: str, amount: str, cust: str = "K") -> dict[str, object]:
    return _ev(
        eid,
        "order.placed",
        cust=cust,
        order_id=eid,
        order_date="2026-01-05",
        amount=amount,
        currency="EUR",
    )


def test_a_points_alert_raised_to_a_higher_severity_keeps_it(engine: Engine) -> None:
    """A later, stronger hit of an open alert updates its severity (and the case's); a weaker
    one after it leaves the severity as it is while the other columns still change."""
    _publish_order_points(engine)
    order = _order
    seen = []
    stamps = []
    for eid, amount in (("p1", "10.00"), ("p2", "5000.00"), ("p3", "20.00")):
        with session_scope(engine) as s:
            repo.ingest(s, [order(eid, amount)])
        with session_scope(engine) as s:
            (a,) = s.scalars(select(Alert))
            case = s.get(Case, a.case_id)
            assert case is not None
            amount = (a.details or {}).get("event", {}).get("amount")
            seen.append((a.rule_id, a.severity, a.hits, a.event_id, amount, case.severity))
            stamps.append((a.first_seen, a.last_seen))
    assert seen == [
        ("points_total", "medium", 1, "p1", 10.0, "medium"),
        ("points_total", "high", 2, "p2", 5000.0, "high"),
        ("points_total", "high", 3, "p3", 20.0, "high"),
    ]
    assert len({f for f, _ in stamps}) == 1  # first seen stays, last seen moves on
    assert stamps[0][1] < stamps[1][1] < stamps[2][1]


def test_the_state_takes_the_customer_id_once_the_customer_exists(engine: Engine) -> None:
    from riskdesk.store.models import Customer, CustomerState

    def state_customer() -> int | None:
        with session_scope(engine) as s:
            row = s.get(CustomerState, "LATE")
            assert row is not None
            return row.customer_id

    with session_scope(engine) as s:
        repo.ingest(s, [_ev("l1", "contract.breached", cust="LATE", clause="x")])
    assert state_customer() is None
    with session_scope(engine) as s:
        c = Customer(external_id="LATE", name="Late", currency="EUR")
        s.add(c)
        s.flush()
        cid = c.id
    # the book comes from this process's cache: the stored customer id must still be written
    for eid in ("l2", "l3"):
        with session_scope(engine) as s:
            repo.ingest(s, [_ev(eid, "contract.breached", cust="LATE", clause="y")])
        assert state_customer() == cid


def test_a_batch_counts_the_notifications_it_queued(engine: Engine) -> None:
    """Callers send notifications only after a batch that queued some: alerts with no
    subscription to hear them queue none; a subscription queues one per new alert at or above
    its severity (a digest subscription none)."""
    from riskdesk.store.models import Delivery

    with session_scope(engine) as s:
        res = repo.ingest(s, [_ev("n1", "contract.breached", cust="N1", clause="x")])
        assert (res.alerts_new, res.notifications) == (1, 0)
    with session_scope(engine) as s:
        repo.add_subscription(s, "webhook", "http://127.0.0.1:9/hook", min_severity="low")
        repo.add_subscription(s, "email", "risk@example.com", min_severity="low", digest=True)
    with session_scope(engine) as s:
        res = repo.ingest(
            s,
            [
                _ev("n2", "contract.breached", cust="N2", clause="x"),
                _ev("n3", "invoice.disputed", cust="N2", invoice_id="I9"),
                _ev("n4", "contract.breached", cust="N1", clause="y"),  # an update, no new alert
            ],
        )
        assert (res.alerts_new, res.notifications) == (2, 2)
        assert s.scalar(select(func.count()).select_from(Delivery)) == 2


def _alert_reads(monkeypatch: Any) -> list[str]:
    """The intake's reads of open alerts, cases and snoozes from now on (their SQL; not the
    read-back of new ids on SQLite)."""
    reads: list[str] = []
    real = repo._Raw.select_in

    def spy(self: Any, sql: str, items: Any, **kw: Any) -> Any:
        if "hits, case_id" in sql or "escalation_level" in sql or "monitor_snoozes" in sql:
            reads.append(sql)
        return real(self, sql, items, **kw)

    monkeypatch.setattr(repo._Raw, "select_in", spy)
    return reads


def test_open_alerts_and_cases_are_read_once_then_kept_with_the_book(
    engine: Engine, monkeypatch: Any
) -> None:
    """A customer's open alerts, case and snoozes are read by its first batch with a hit; later
    batches of this process use what it kept (valid under the state's stamp), with the same
    result as reading them; a write by another process (a new stamp) makes it read them
    again."""
    from riskdesk.store.models import CustomerState

    reads = _alert_reads(monkeypatch)
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("k1", "contract.breached", clause="x")])
    first = len(reads)
    assert first >= 1
    for i in range(2, 5):
        with session_scope(engine) as s:
            repo.ingest(s, [_ev(f"k{i}", "contract.breached", clause="x")])
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("k5", "invoice.disputed", invoice_id="I1")])
    assert len(reads) == first  # nothing read again
    with session_scope(engine) as s:
        alerts = {a.rule_id: a.hits for a in s.scalars(select(Alert))}
        assert alerts == {"contract_breach": 4, "dispute_opened": 1}
        assert s.scalar(select(func.count()).select_from(Case)) == 1
        row = s.get(CustomerState, "K")
        assert row is not None
        row.stamp = 777  # as another process's write leaves it
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("k6", "contract.breached", clause="x")])
    assert len(reads) > first
    with session_scope(engine) as s:
        assert s.scalar(select(Alert.hits).where(Alert.rule_id == "contract_breach")) == 5


def test_case_actions_and_snoozes_reach_an_intake_that_kept_the_alerts(engine: Engine) -> None:
    """Resolving, acknowledging and snoozing give the customer's state a new stamp, so an
    intake process that kept the customer's alerts and case reads them again: after a
    resolution a new hit opens a new alert and case (not one more hit on the closed one); a
    snooze is honoured at once; an acknowledged case keeps its SLA when the severity rises."""
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("r1", "contract.breached", clause="x")])
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("r2", "contract.breached", clause="x")])  # kept from here on
        (case_id,) = s.scalars(select(Case.id))
    with session_scope(engine) as s:
        repo.resolve_case(s, case_id, "confirmed_risk", actor="t")
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("r3", "contract.breached", clause="x")])
    with session_scope(engine) as s:
        rows = [(a.status, a.hits) for a in s.scalars(select(Alert).order_by(Alert.id))]
        assert rows == [("closed", 2), ("open", 1)]
        assert s.scalar(select(func.count()).select_from(Case)) == 2
    with session_scope(engine) as s:
        repo.snooze(s, "K", "contract_breach", date(2099, 1, 1), "known issue", actor="t")
    with session_scope(engine) as s:
        res = repo.ingest(s, [_ev("r4", "contract.breached", clause="x")])
        assert (res.alerts_new, res.alerts_updated) == (0, 0)

    # an acknowledged case's SLA stays as it is when a stronger hit raises its severity
    _publish_order_points(engine)
    with session_scope(engine) as s:
        repo.ingest(s, [_order("o1", "10.00", cust="A")])
    with session_scope(engine) as s:
        repo.ingest(s, [_order("o2", "20.00", cust="A")])  # kept from here on
        (case,) = s.scalars(select(Case).where(Case.customer_ref == "A"))
        sla = case.sla_due_at
    with session_scope(engine) as s:
        repo.acknowledge_case(s, case.id, actor="t")
    with session_scope(engine) as s:
        repo.ingest(s, [_order("o3", "5000.00", cust="A")])
    with session_scope(engine) as s:
        after = s.get(Case, case.id)
        assert after is not None
        assert (after.status, after.severity) == ("acknowledged", "high")
        assert after.sla_due_at == sla  # an open case's would have been brought forward


def _generic_plan(conn: Any, sql: str, types: str, args: str) -> str:
    """The plan PostgreSQL caches for ``sql`` once prepared (its generic plan), as text."""
    n = iter(range(1, 20))
    conn.exec_driver_sql(
        f"PREPARE probe ({types}) AS " + re.sub(r"%[sb]", lambda _: f"${next(n)}", sql)
    )
    try:
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE probe ({args})").all()
        return "\n".join(r[0] for r in rows)
    finally:
        conn.exec_driver_sql("DEALLOCATE probe")


def test_intake_plans_stay_on_the_indexes_of_a_new_postgres_database(engine: Engine) -> None:
    """A new database's tables are small, so PostgreSQL's cached (generic) plans for the
    intake's statements would scan them whole for good: the state UPDATE hash-joined every
    state row (locking in table order, not key order), the duplicate check read every event.
    The intake plans its statements on the indexes, and gives the settings back after."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plan cache")
    with engine.connect() as c:
        c.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        update = (
            "timestamptz, text[], int8[], int4[], date[], text[], text[], text[], float8[], "
            "float8[], float8[], int4[], int8[]",
            "now(), '{a}', '{1}', '{1}', '{2026-01-01}', '{x}', '{NULL}', '{x}', '{0}', '{0}', "
            "'{0}', '{1}', '{2}'",
        )
        alerts = (
            "int4[], timestamptz[], text[], text[], text[], int4[]",
            "'{1}', '{2026-01-01}', '{e}', '{x}', '{low}', '{1}'",
        )
        seen = ("text[]", "'{a,b}'")
        # what the planner does by itself on the empty tables (the reason for the settings)
        assert "Seq Scan" in _generic_plan(c, repo._STATE_UPDATE_FROM_ARRAYS, *update)
        assert "Seq Scan" in _generic_plan(c, repo._ALERTS_UPDATE_FROM_ARRAYS, *alerts)
        c.exec_driver_sql(repo._PG_INDEX_PLANS)
        # rows joined in array order (key order: the lock order of every writer) on the index
        for sql, args, index in (
            (repo._STATE_UPDATE_FROM_ARRAYS, update, "pk_monitor_customer_state"),
            (repo._ALERTS_UPDATE_FROM_ARRAYS, alerts, "pk_monitor_alerts"),
        ):
            plan = _generic_plan(c, sql, *args)
            assert "Nested Loop" in plan and f"Index Scan using {index}" in plan, plan
            assert "Seq Scan" not in plan and "Hash" not in plan, plan
        dup = "SELECT event_id FROM monitor_events WHERE event_id = ANY(%s)"
        assert "Seq Scan" not in _generic_plan(c, dup, *seen)
        c.rollback()
    with session_scope(engine) as s:

        def settings() -> list[Any]:
            return [s.execute(text(f"SHOW {g}")).scalar() for g in repo._PG_PLAN_SETTINGS]

        before = settings()
        assert before[:3] == ["on", "on", "on"]
        repo.ingest(s, [_ev("g1", "contract.breached", clause="x")])
        assert settings() == before  # back to the defaults after the batch
        repo.clock_tick(s, date(2026, 3, 1))  # runs the intake's statements, the same way
        assert settings() == before


def test_a_fault_on_one_customers_book_refuses_its_events_and_keeps_the_rest(
    engine: Engine, monkeypatch: Any
) -> None:
    """An unexpected error of the monitor core on one customer's book (a bug, a book it cannot
    read) refuses that customer's events of the batch, also those it had already applied, and
    stores nothing of them; the other customers' events are stored. Once the fault is gone the
    same events are accepted (they were not recorded as processed)."""
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("f0", "I0", "5.00", "BAD")])
    real = repo.step_event
    calls = {"BAD": 0}

    def faulty(book: Any, ev: Any, *a: Any, **kw: Any) -> Any:
        if ev.customer_id == "BAD":
            calls["BAD"] += 1
            if calls["BAD"] == 2:
                raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'float'")
        return real(book, ev, *a, **kw)

    monkeypatch.setattr(repo, "step_event", faulty)
    batch = [
        _inv("f1", "I1", "10.00", "BAD"),
        _inv("g1", "J1", "20.00", "GOOD"),
        _inv("f2", "I2", "30.00", "BAD"),
        _inv("f3", "I3", "40.00", "BAD"),
        _inv("g2", "J2", "1.00", "GOOD"),
    ]
    with session_scope(engine) as s:
        res = repo.ingest(s, batch)
    assert (res.accepted, res.duplicates) == (2, 0)
    assert [(r["index"], r["event_id"]) for r in res.rejected] == [(0, "f1"), (2, "f2"), (3, "f3")]
    assert all("customer 'BAD'" in r["reason"] and "TypeError" in r["reason"] for r in res.rejected)
    assert _balance(engine, "GOOD") == 21.0
    assert _balance(engine, "BAD") == 5.0  # as before the batch: f1 was applied, not stored
    monkeypatch.setattr(repo, "step_event", real)
    with session_scope(engine) as s:
        res = repo.ingest(s, batch)
    assert (res.accepted, res.duplicates, res.rejected) == (3, 2, [])
    assert _balance(engine, "BAD") == 85.0


def test_the_clock_ages_the_other_customers_when_one_book_fails(
    engine: Engine, monkeypatch: Any
) -> None:
    """A fault of the monitor core on one customer's book leaves that customer as it was and
    lists it; the clock ages the others (a worker's clock does not fail on it every tick)."""
    from riskdesk.store.models import CustomerState

    with session_scope(engine) as s:
        repo.ingest(s, [_inv("a1", "I1", "5.00", "A"), _inv("b1", "J1", "7.00", "B")])
    real = repo.step_clock

    def faulty(book: Any, *a: Any, **kw: Any) -> Any:
        if "I1" in book["inv"]:
            raise TypeError("a book it cannot read")
        return real(book, *a, **kw)

    monkeypatch.setattr(repo, "step_clock", faulty)
    with session_scope(engine) as s:
        out = repo.clock_tick(s, date(2026, 3, 20))
    assert out["customers_failed"] == ["A"] and out["customers_aged"] == 1
    with session_scope(engine) as s:
        days = {r.customer_ref: r.as_of for r in s.scalars(select(CustomerState))}
    assert days == {"A": date(2026, 1, 5), "B": date(2026, 3, 20)}


def test_event_times_are_stored_as_sqlalchemy_stores_them_and_sort_in_time_order(
    engine: Engine,
) -> None:
    """The intake writes event times itself (not through SQLAlchemy): the stored values read
    back as the same instants and sort in time order, a year before 1000 included (SQLite
    keeps them as text, which sorted "999-…" after "2026-…")."""
    from sqlalchemy import select

    from riskdesk.store.models.monitor import ProcessedEvent

    with session_scope(engine) as s:
        res = repo.ingest(
            s,
            [
                _ev("t1", "contract.breached", day="2026-01-05", clause="x"),
                _ev("t2", "contract.breached", day="0999-03-01", clause="x"),
                _ev("t3", "contract.breached", day="1999-12-31", clause="x"),
            ],
        )
        assert res.accepted == 3
    with session_scope(engine) as s:
        rows = s.execute(select(ProcessedEvent.event_id, ProcessedEvent.event_time)).all()
        in_order = s.scalars(select(ProcessedEvent.event_id).order_by(ProcessedEvent.event_time))
        assert list(in_order) == ["t2", "t3", "t1"]
    times = {eid: (t if t.tzinfo else t.replace(tzinfo=UTC)) for eid, t in rows}
    assert times["t2"] == datetime(999, 3, 1, 10, tzinfo=UTC)
    assert times["t1"] == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_a_batch_whose_events_are_all_rejected_stores_nothing_and_raises_nothing(
    engine: Engine,
) -> None:
    """Events that pass validation but cannot be applied (an invoice in a currency with no FX
    rate) are rejected; when that is every event of the batch, nothing is written and the
    batch still answers (on PostgreSQL the events' INSERT over arrays failed on no rows)."""
    with session_scope(engine) as s:
        assert repo.ingest(s, [_inv("u0", "IU0", "10.00")]).accepted == 1  # a EUR book
    usd = _inv("u1", "IU1", "10.00")
    usd["payload"]["currency"] = "USD"  # type: ignore[index]
    with session_scope(engine) as s:
        res = repo.ingest(s, [usd])
        assert (res.accepted, len(res.rejected)) == (0, 1)
        assert "USD" in res.rejected[0]["reason"]
    with session_scope(engine) as s:
        assert repo.ingest(s, [_inv("u2", "IU2", "10.00")]).accepted == 1
        state = repo.customer_state(s, "K")
        assert state is not None and state["events"] == 2


def _state_columns(engine: Engine, ref: str) -> tuple[dict[str, Any], str | None]:
    """The stored ``book`` (decoded) and ``paid`` (as text) of a state row."""
    import orjson

    with engine.connect() as c:
        book, paid = c.execute(
            text("SELECT book, paid FROM monitor_customer_state WHERE customer_ref = :r"),
            {"r": ref},
        ).one()
    return orjson.loads(book), paid


def _pay(eid: str, inv: str, amount: str, day: str) -> dict[str, object]:
    return _ev(
        eid,
        "payment.received",
        day=day,
        payment_id=f"P-{eid}",
        payment_date=day,
        amount=amount,
        currency="EUR",
        allocations=[{"invoice_id": inv, "amount": amount}],
    )


def test_the_settled_invoices_are_stored_apart_and_the_book_reads_back_whole(
    engine: Engine,
) -> None:
    """A book's settled invoices (its ``paid`` section) are kept in a column of their own,
    rewritten only when they change; read back (by a process without the book in memory, and
    by the clock) the book is the whole one, and an event that leaves them as they were keeps
    the stored ones."""
    with session_scope(engine) as s:
        repo.ingest(s, [_inv("p1", "I1", "100.00"), _inv("p2", "I2", "50.00")])
        repo.ingest(s, [_pay("p3", "I1", "100.00", "2026-01-20")])
    book, paid = _state_columns(engine, "K")
    assert "paid" not in book and set(book["inv"]) == {"I2"}
    assert paid is not None and set(json_loads(paid)) == {"I1"}
    # the same section stored in another spelling (stamp kept: the intake's copy stays
    # valid): a write that leaves the section as it was must not write it again
    respelled = json.dumps(json_loads(paid), indent=1)
    with engine.begin() as c:
        c.execute(text("UPDATE monitor_customer_state SET paid = :p"), {"p": respelled})
    with session_scope(engine) as s:
        repo.ingest(s, [_ev("p4", "bureau_score.changed", day="2026-01-21", score=700)])
    book2, paid2 = _state_columns(engine, "K")
    assert paid2 == respelled and book2["bureau"] == 700.0
    whole = {**book2, "paid": json_loads(paid2)}
    repo.clear_book_cache()  # as another process: the book is read from the row
    with session_scope(engine) as s:
        repo.ingest(s, [_pay("p5", "I2", "50.00", "2026-01-25")])
    book3, paid3 = _state_columns(engine, "K")
    assert set(json_loads(paid3)) == {"I1", "I2"} and book3["inv"] == {}
    assert json_loads(paid3)["I1"] == whole["paid"]["I1"]
    with session_scope(engine) as s:
        assert repo.features_at(s, "K", date(2026, 3, 1))["open_invoice_balance"] == 0.0  # type: ignore[index]
        repo.clock_tick(s, date(2026, 3, 1))
    book4, paid4 = _state_columns(engine, "K")
    assert book4["asof"] == "2026-03-01" and set(json_loads(paid4)) == {"I1", "I2"}


def test_a_book_stored_whole_before_is_read_and_then_stored_apart(engine: Engine) -> None:
    """Rows written before the ``paid`` column hold the settled invoices in the book (the
    column NULL): they are read as they are and moved to the column at the next write."""
    import orjson

    with session_scope(engine) as s:
        repo.ingest(s, [_inv("q1", "I1", "100.00"), _pay("q2", "I1", "100.00", "2026-01-20")])
    book, paid = _state_columns(engine, "K")
    old = {**book, "paid": json_loads(paid)}  # as the intake wrote it before
    with engine.begin() as c:
        c.execute(
            text("UPDATE monitor_customer_state SET book = :b, paid = NULL, stamp = 7"),
            {"b": orjson.dumps(old).decode()},
        )
    repo.clear_book_cache()
    with session_scope(engine) as s:
        st = repo.features_at(s, "K", date(2026, 1, 25))
        assert st is not None and st["open_invoice_balance"] == 0.0
        repo.ingest(s, [_inv("q3", "I2", "30.00", day="2026-01-26")])
    book2, paid2 = _state_columns(engine, "K")
    assert "paid" not in book2 and set(json_loads(paid2)) == {"I1"}
    assert set(book2["inv"]) == {"I2"}
    assert _balance(engine) == 30.0


def json_loads(text_: str | None) -> Any:
    import orjson

    assert text_ is not None
    return orjson.loads(text_)


def test_a_rebuild_leaves_a_customer_the_core_fails_on_and_rebuilds_the_others(
    engine: Engine, monkeypatch: Any
) -> None:
    """A fault of the monitor core on one customer's events (a bug) does not stop a rebuild:
    that customer is left as it was and listed, the others are rebuilt; a customer whose
    stored events are all no longer valid loses its state row."""
    from riskdesk.monitor import processor
    from riskdesk.store.models import CustomerState

    with session_scope(engine) as s:
        repo.ingest(s, [_inv("r1", "I1", "5.00", "A"), _inv("r2", "J1", "7.00", "B")])
        repo.ingest(s, [_inv("r3", "K1", "9.00", "C")])
    with engine.begin() as c:  # C's only event, as stored before amounts were checked
        body = json_loads(
            c.execute(text("SELECT body FROM monitor_events WHERE event_id = 'r3'")).scalar_one()
        )
        body["payload"]["amount"] = None
        c.execute(
            text("UPDATE monitor_events SET body = :b WHERE event_id = 'r3'"),
            {"b": json.dumps(body)},
        )
        stamps = dict(
            c.execute(text("SELECT customer_ref, stamp FROM monitor_customer_state")).all()
        )
    real = processor.step_event

    def faulty(book: Any, ev: Any, *a: Any, **kw: Any) -> Any:
        if ev.customer_id == "A":
            raise TypeError("a book it cannot read")
        return real(book, ev, *a, **kw)

    monkeypatch.setattr(processor, "step_event", faulty)
    with session_scope(engine) as s:
        out = repo.rebuild_states(s, actor="test")
    assert out["failed"] == [{"customer": "A", "reason": "TypeError: a book it cannot read"}]
    assert (out["customers"], out["removed_customers"], out["skipped"]) == (2, ["C"], 1)
    with session_scope(engine) as s:
        after = {r.customer_ref: r.stamp for r in s.scalars(select(CustomerState))}
    assert after["A"] == stamps["A"] and after["B"] != stamps["B"] and "C" not in after
    assert _balance(engine, "B") == 7.0


def test_a_dry_run_counts_what_the_clock_raised_after_the_last_event(engine: Engine) -> None:
    """Time alone raises alerts (an invoice passing 31 days overdue with no event): a dry run
    ages the replayed books to the clock's date, as the clock aged the live states, so it
    counts those alerts too."""
    from riskdesk.monitor.rules import default_rule_set

    with session_scope(engine) as s:
        repo.ingest(s, [_inv("t1", "I1", "100.00")])  # due 2026-02-04
        repo.clock_tick(s, date(2026, 3, 10))
        live = {(a.customer_ref, a.rule_id) for a in s.scalars(select(Alert))}
    assert ("K", "overdue_31") in live
    with session_scope(engine) as s:
        dry = repo.dry_run(s, default_rule_set())
    assert set(dry["by_customer"]["K"]) == {r for _, r in live}


def test_a_rebuild_of_more_customers_than_one_lookup_takes_gives_the_same_states(
    engine: Engine,
) -> None:
    """More customers than one lookup of their rows takes (``CHUNK``): the replay starts them
    in several rounds while it reads the events (on PostgreSQL from a server-side cursor, with
    the lookups on the same connection), and every state comes out as the intake kept it."""
    n = repo.CHUNK + 50
    events = [_inv(f"w{i}", f"I{i}", f"{i % 97 + 1}.00", f"W{i:05d}") for i in range(n)]
    events += [_inv(f"x{i}", f"J{i}", "2.00", f"W{i:05d}", day="2026-01-06") for i in range(n)]
    with session_scope(engine) as s:
        repo.ingest(s, events)
    with session_scope(engine) as s:
        seen: list[int] = []
        out = repo.rebuild_states(s, actor="test", progress=seen.append)
    assert (out["customers"], out["applied"], out["changed"], out["failed"]) == (n, 2 * n, 0, [])
    assert sum(seen) == 2 * n
    assert _balance(engine, "W00010") == 13.0


def test_a_sales_users_subscriptions_hear_only_about_their_own_customers(engine: Engine) -> None:
    """Notifications follow what a user may see: a sales user's subscription (each alert,
    the escalation of a case, the daily digest) carries those of the customers that user
    owns, nobody else's; a risk manager's carries every customer's."""
    from datetime import timedelta

    from riskdesk.connectors.notify import queue_digests
    from riskdesk.store.models import Customer, Delivery, Subscription, User
    from riskdesk.store.types import utcnow

    with session_scope(engine) as s:
        s.add_all(
            [
                User(username="sam", role="sales"),
                User(username="rm", role="risk_manager"),
                Customer(external_id="OWN", name="Own", currency="EUR", owner="sam"),
                Customer(external_id="OTHER", name="Other", currency="EUR", owner="someone"),
            ]
        )
        s.flush()
        for user in ("sam", "rm"):
            for digest in (False, True):
                repo.add_subscription(
                    s, "email", f"{user}@example.com", min_severity="low", user=user, digest=digest
                )
    since = utcnow() - timedelta(minutes=1)
    with session_scope(engine) as s:
        repo.ingest(
            s,
            [
                _ev("s1", "contract.breached", cust="OWN", clause="x"),
                _ev("s2", "contract.breached", cust="OTHER", clause="x"),
            ],
        )
    assert queue_digests(engine, since) == 2
    with session_scope(engine) as s:
        targets = {sub.id: (sub.target, sub.digest) for sub in s.scalars(select(Subscription))}
        sent: dict[tuple[str, bool], list[str]] = {}
        for d in s.scalars(select(Delivery).order_by(Delivery.id)):
            customers = (
                [a["customer"] for a in d.payload["alerts"]]
                if d.payload.get("kind") == "digest"
                else [d.payload["customer"]]
            )
            sent.setdefault(targets[d.subscription_id], []).extend(customers)
    assert sent == {
        ("sam@example.com", False): ["OWN"],
        ("rm@example.com", False): ["OWN", "OTHER"],
        ("sam@example.com", True): ["OWN"],
        ("rm@example.com", True): ["OWN", "OTHER"],
    }
    # both cases still unacknowledged after their SLA: the clock escalates them
    with session_scope(engine) as s:
        out = repo.clock_tick(s, date(2026, 1, 6), now=utcnow() + timedelta(days=2))
    assert out["cases_escalated"] == 2
    with session_scope(engine) as s:
        escalations = sorted(
            (targets[d.subscription_id][0], d.payload["customer"])
            for d in s.scalars(select(Delivery))
            if d.payload.get("kind") == "escalation"
        )
    assert escalations == [
        ("rm@example.com", "OTHER"),
        ("rm@example.com", "OWN"),
        ("sam@example.com", "OWN"),
    ]
