"""Control repository on SQLite and PostgreSQL: exposure from the books, the order check with
reservations (also under concurrency), holds, maker-checker on limits, insurer tasks."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from riskdesk.control.limits import ApprovalRefused
from riskdesk.store import control_repo as repo
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import (
    AuditEntry,
    ControlAction,
    CreditNote,
    Customer,
    FxRate,
    Invoice,
    Order,
    OrderCheck,
    Payment,
    PaymentAllocation,
    Reservation,
)
from riskdesk.store.users import add_user

D = Decimal

TODAY = date.today()


def customer(s, ext: str = "C1", **kw) -> Customer:
    c = Customer(external_id=ext, name=f"Customer {ext}", currency=kw.pop("currency", "EUR"), **kw)
    s.add(c)
    s.flush()
    return c


def rate(s, cid: int, grade: int, pd: float = 0.005, valid: date | None = None) -> None:
    from riskdesk.store.models import Rating

    s.add(
        Rating(
            customer_id=cid,
            status="approved",
            base_source="manual",
            base_grade=grade,
            base_pd=pd,
            final_grade=grade,
            final_pd=pd,
            valid_until=valid or TODAY + timedelta(days=300),
            proposed_by="x",
            approved_by="y",
            approved_at=repo.utcnow(),
        )
    )
    s.flush()


def insure(s, cid: int, amount: str, days: int, **policy: Any) -> None:
    """An Atradius policy (90 % cover) and an insured limit of ``amount`` for ``cid``, both
    valid since ``days`` days before TODAY."""
    since = TODAY - timedelta(days=days)
    pol = repo.add_policy(
        s,
        insurer="Atradius",
        policy_no="P-1",
        currency="EUR",
        cover_pct="0.9",
        actor="t",
        valid_from=since,
        **policy,
    )
    repo.set_insured_limit(
        s, policy_id=pol.id, customer_id=cid, amount=amount, actor="t", valid_from=since
    )


def rated_customer_with_limit(engine: Engine, limit: str = "1000", grade: int = 3) -> int:
    with session_scope(engine) as s:
        c = customer(s)
        rate(s, c.id, grade)
        repo.set_limit(
            s,
            customer_id=c.id,
            amount=limit,
            currency="EUR",
            actor="t",
            valid_until=TODAY + timedelta(days=365),
        )
        return c.id


def test_exposure_from_the_books_uses_balances_credit_notes_and_dated_fx(engine: Engine) -> None:
    with session_scope(engine) as s:
        c = customer(s)
        s.add(FxRate(rate_date=TODAY - timedelta(days=3), base="USD", quote="EUR", rate=D("0.5")))
        s.add(
            Order(
                external_id="O1",
                customer_id=c.id,
                order_date=TODAY,
                amount=D("100"),
                currency="USD",
                status="open",
            )
        )
        s.add(
            Order(
                external_id="O2",
                customer_id=c.id,
                order_date=TODAY,
                amount=D("70"),
                currency="EUR",
                status="invoiced",
            )
        )
        inv = Invoice(
            external_id="I1",
            customer_id=c.id,
            issue_date=TODAY - timedelta(days=50),
            due_date=TODAY - timedelta(days=40),
            amount=D("500"),
            currency="EUR",
        )
        s.add(inv)
        s.flush()
        p = Payment(
            external_id="P1", customer_id=c.id, payment_date=TODAY, amount=D("200"), currency="EUR"
        )
        s.add(p)
        s.flush()
        s.add(PaymentAllocation(payment_id=p.id, invoice_id=inv.id, amount=D("200")))
        s.add(
            CreditNote(
                external_id="CN1",
                customer_id=c.id,
                invoice_id=inv.id,
                issue_date=TODAY,
                amount=D("50"),
                currency="EUR",
            )
        )
        s.flush()
        e = repo.customer_exposure(s, c, TODAY, "EUR")
        assert e.components["open_orders"].amount == D("50.00")
        assert e.components["overdue_31_60"].amount == D("250.00")
        assert e.components["overdue_31_60"].docs == [inv.id]
        assert e.gross == D("300.00")


def test_order_check_passes_reserves_and_then_holds_over_limit(engine: Engine) -> None:
    cid = rated_customer_with_limit(engine, "1000")
    first = repo.run_order_check(engine, cid, "600", "EUR", order_ref="A", placed_by="sam")
    assert first["decision"] == "pass" and first["reservation_id"] is not None
    second = repo.run_order_check(engine, cid, "600", "EUR", order_ref="B", placed_by="sam")
    assert second["decision"] == "hold"
    assert [r["code"] for r in second["reasons"]] == ["over_limit"]
    assert second["reasons"][0]["figures"]["headroom"] == D("400.00")
    assert second["reservation_id"] is None
    with session_scope(engine) as s:
        assert [c.order_ref for c in repo.list_checks(s, status="held")] == ["B"]


def test_booked_order_is_not_counted_twice(engine: Engine) -> None:
    cid = rated_customer_with_limit(engine, "1000")
    repo.run_order_check(engine, cid, "600", "EUR", order_ref="A")
    with session_scope(engine) as s:
        s.add(
            Order(
                external_id="A",
                customer_id=cid,
                order_date=TODAY,
                amount=D("600"),
                currency="EUR",
                status="open",
            )
        )
    with session_scope(engine) as s:
        c = s.get(Customer, cid)
        assert repo.customer_exposure(s, c, TODAY).gross == D("600.00")
        s.execute(Order.__table__.update().values(status="invoiced"))
        assert repo.close_reservations(s, TODAY)["consumed"] == 1


def test_releasing_a_hold_needs_a_reason_is_audited_and_tells_the_seller(engine: Engine) -> None:
    cid = rated_customer_with_limit(engine, "100")
    held = repo.run_order_check(engine, cid, "150", "EUR", order_ref="X9", placed_by="sam")
    assert held["decision"] == "hold"
    with session_scope(engine) as s:
        add_user(s, "rita", "risk_manager", "password123")
        add_user(s, "sam", "sales", "password123")
    with session_scope(engine) as s, pytest.raises(repo.ControlError):
        repo.decide_hold(s, held["check_id"], actor="rita", release=True, reason=" ")
    with session_scope(engine) as s, pytest.raises(ApprovalRefused):
        repo.decide_hold(s, held["check_id"], actor="sam", release=True, reason="mine")
    with session_scope(engine) as s:
        repo.decide_hold(
            s, held["check_id"], actor="rita", release=True, reason="customer paid in advance"
        )
    with session_scope(engine) as s:
        chk = s.get(OrderCheck, held["check_id"])
        assert chk.status == "released" and chk.decided_by == "rita"
        assert s.scalar(select(func.count()).select_from(Reservation)) == 1
        note = s.scalars(select(ControlAction).where(ControlAction.kind == "notify")).one()
        assert note.owner == "sam" and "X9" in note.title
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "order.hold.release")).one()
        assert entry.reason == "customer paid in advance" and entry.actor == "rita"
    with session_scope(engine) as s, pytest.raises(repo.ControlError):
        repo.decide_hold(s, held["check_id"], actor="rita", release=False, reason="again")


def test_bad_input_changes_nothing(engine: Engine) -> None:
    cid = rated_customer_with_limit(engine)
    for args in (("-5", "EUR"), ("abc", "EUR"), ("10", "EURO"), ("1.234", "EUR")):
        with pytest.raises(repo.ControlError):
            repo.run_order_check(engine, cid, *args)
    with pytest.raises(repo.ControlError):
        repo.run_order_check(engine, "NOPE", "10", "EUR")
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(OrderCheck)) == 0


def test_blocklist_unrated_and_missing_fx_reasons_from_the_store(engine: Engine) -> None:
    with session_scope(engine) as s:
        c = customer(s, "B1", legal_id="LEI-1")
        repo.set_limit(s, customer_id=c.id, amount="1000", currency="EUR", actor="t")
        from riskdesk.store.models import BlocklistEntry

        s.add(BlocklistEntry(legal_id="LEI-1", reason="fraud case", added_by="t"))
        cid = c.id
    out = repo.run_order_check(engine, cid, "10", "GBP")
    got = {r["code"] for r in out["reasons"]}
    assert {"blocklist", "unrated", "missing_fx_rate"} <= got
    assert out["decision"] == "stop"


def test_maker_checker_on_limit_requests(engine: Engine) -> None:
    cid = rated_customer_with_limit(engine, "50000")
    with session_scope(engine) as s:
        for name, role in (("ann", "analyst"), ("bob", "analyst"), ("rita", "risk_manager")):
            add_user(s, name, role, "password123")
        small = repo.request_limit(
            s,
            customer_id=cid,
            amount="80000",
            currency="EUR",
            requested_by="ann",
            reason="more volume",
        )
        big = repo.request_limit(
            s,
            customer_id=cid,
            amount="500000",
            currency="EUR",
            requested_by="ann",
            reason="new plant",
        )
        assert big.needs_risk_manager and not small.needs_risk_manager
        ids = small.id, big.id
    with session_scope(engine) as s, pytest.raises(ApprovalRefused, match="own request"):
        repo.decide_request(s, ids[0], approver="ann", approve=True, reason="ok")
    with session_scope(engine) as s, pytest.raises(ApprovalRefused, match="risk_manager"):
        repo.decide_request(s, ids[1], approver="bob", approve=True, reason="ok")
    with session_scope(engine) as s:
        assert repo.current_limit(s, cid).amount == D("50000.00")
        repo.decide_request(s, ids[0], approver="bob", approve=True, reason="volume is real")
        assert repo.current_limit(s, cid).amount == D("80000.00")
        repo.decide_request(s, ids[1], approver="rita", approve=True, reason="board ok")
    with session_scope(engine) as s:
        hist = repo.limit_history(s, cid)
        assert [h.amount for h in hist] == [D("500000.00"), D("80000.00"), D("50000.00")]
        assert [h.status for h in hist] == ["active", "superseded", "superseded"]
        actions = set(s.scalars(select(AuditEntry.action)))
        assert {"limit.request", "limit.request.approved", "limit.set"} <= actions


def test_control_run_creates_insurer_deadline_tasks_once(engine: Engine) -> None:
    with session_scope(engine) as s:
        c = customer(s, owner="sam")
        insure(s, c.id, "1000", 100, report_overdue_days=60)
        s.add(
            Invoice(
                external_id="I1",
                customer_id=c.id,
                issue_date=TODAY - timedelta(days=60),
                due_date=TODAY - timedelta(days=20),
                amount=D("400"),
                currency="EUR",
            )
        )
        cid = c.id
    out = repo.run_control(engine, TODAY)
    assert out["insurer_tasks"] == 1
    assert repo.run_control(engine, TODAY)["insurer_tasks"] == 0
    with session_scope(engine) as s:
        (t,) = repo.list_actions(s, customer_id=cid)
        assert t.kind == "report_to_insurer" and t.owner == "sam"
        assert t.due_date == TODAY + timedelta(days=30)  # deadline (due + 60) less 10 days
        e = repo.customer_exposure(s, s.get(Customer, cid), TODAY, "EUR")
        assert e.insured.amount == D("360.00") and e.net == D("40.00")


def test_control_run_gives_policy_limits_and_flags_concentration(engine: Engine) -> None:
    with session_scope(engine) as s:
        big = customer(s, "BIG", revenue=D("1000000"), industry="steel")
        small = customer(s, "SMALL", revenue=D("1000000"), industry="food")
        manual = customer(s, "MAN", revenue=D("1000000"))
        for c in (big, small, manual):
            rate(s, c.id, 3, 0.004)
        repo.set_limit(s, customer_id=manual.id, amount="5", currency="EUR", actor="t")
        for c, amt in ((big, "900"), (small, "100")):
            s.add(
                Order(
                    external_id=f"O{c.id}",
                    customer_id=c.id,
                    order_date=TODAY,
                    amount=D(amt),
                    currency="EUR",
                    status="open",
                )
            )
        repo.add_concentration_limit(s, dimension="customer", max_share="0.5", actor="t")
        ids = big.id, manual.id
    out = repo.run_control(engine, TODAY)
    assert out["policy_limits"] == 2 and out["concentration_breaches"] == 1
    with session_scope(engine) as s:
        assert repo.current_limit(s, ids[0]).amount == D("80000.00")
        assert repo.current_limit(s, ids[1]).amount == D("5.00")
        (esc,) = repo.list_actions(s, customer_id=ids[0])
        assert esc.kind == "escalate" and esc.cause_type == "concentration"
    # the snapshot now lets the order check see the concentration
    chk = repo.run_order_check(engine, ids[0], "100", "EUR")
    assert "concentration" in {r["code"] for r in chk["reasons"]}


@pytest.mark.slow
def test_parallel_checks_never_hand_out_more_headroom_than_there_is(db_url: str) -> None:
    """20 threads, each with its own engine and connection (as separate processes would be):
    the database lock alone (FOR UPDATE / BEGIN IMMEDIATE) keeps the headroom safe."""
    setup = make_engine(db_url)
    engines = [
        make_engine(db_url, pool_size=1) if not db_url.startswith("sqlite") else make_engine(db_url)
        for _ in range(20)
    ]
    try:
        cid = rated_customer_with_limit(setup, "1000")
        results: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(20)

        def worker(i: int) -> None:
            try:
                barrier.wait()
                out = repo.run_order_check(engines[i], cid, "150", "EUR", order_ref=f"R{i}")
                results.append(out["decision"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        # 150 × 6 = 900 fits in 1000 (the 6th pushes past 80 % → watch, still approved)
        approved = [d for d in results if d in ("pass", "watch")]
        assert len(approved) == 6 and results.count("hold") == 14
        with session_scope(setup) as s:
            n, total = s.execute(
                select(func.count(), func.sum(Reservation.amount)).where(
                    Reservation.status == "active"
                )
            ).one()
            assert n == 6 and D(str(total)) <= D("1000")
    finally:
        for e in engines:
            e.dispose()
        setup.dispose()


def test_group_limit_counts_every_member(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = customer(s, "GA", group_code="ACME")
        b = customer(s, "GB", group_code="ACME")
        for c in (a, b):
            rate(s, c.id, 3)
            repo.set_limit(s, customer_id=c.id, amount="1000", currency="EUR", actor="t")
        repo.set_limit(
            s,
            customer_id=None,
            group="code:ACME",
            amount="1200",
            currency="EUR",
            actor="t",
            reason="group cap",
        )
        s.add(
            Order(
                external_id="OB",
                customer_id=b.id,
                order_date=TODAY,
                amount=D("900"),
                currency="EUR",
                status="open",
            )
        )
        ids = a.id, b.id
    out = repo.run_order_check(engine, ids[0], "400", "EUR")
    (reason,) = out["reasons"]
    assert reason["code"] == "group_over_limit" and out["decision"] == "hold"
    assert reason["figures"]["group_exposure_after"] == D("1300.00")
    assert repo.run_order_check(engine, ids[0], "200", "EUR")["decision"] == "pass"


def test_ids_out_of_range_are_unknown_not_errors(engine: Engine) -> None:
    huge = 2**40
    with pytest.raises(repo.ControlError, match="no customer"):
        repo.run_order_check(engine, str(huge), "1", "EUR")
    with session_scope(engine) as s:
        for call in (
            lambda: repo.decide_hold(s, huge, actor="x", release=True, reason="r"),
            lambda: repo.decide_request(s, huge, approver="x", approve=True, reason="r"),
            lambda: repo.close_action(s, huge, actor="x"),
        ):
            with pytest.raises(repo.ControlError):
                call()


def test_one_customer_document_read_matches_the_batch_read(engine: Engine) -> None:
    """The order check's single UNION read gives the same documents as the batch read."""
    with session_scope(engine) as s:
        c = customer(s)
        other = customer(s, "C2")
        for cust in (c, other):
            for n, status in enumerate(("open", "shipped", "invoiced", "cancelled")):
                s.add(
                    Order(
                        external_id=f"O{cust.id}-{n}",
                        customer_id=cust.id,
                        order_date=TODAY - timedelta(days=n),
                        amount=D("100.10") + n,
                        currency="EUR",
                        status=status,
                    )
                )
        invs = []
        for n in range(3):
            inv = Invoice(
                external_id=f"I{n}",
                customer_id=c.id,
                issue_date=TODAY - timedelta(days=60 - n),
                due_date=TODAY - timedelta(days=30 - 20 * n),
                amount=D("500.05"),
                currency="EUR",
            )
            s.add(inv)
            invs.append(inv)
        s.flush()
        early = Payment(
            external_id="P1",
            customer_id=c.id,
            payment_date=TODAY - timedelta(days=5),
            amount=D("300"),
            currency="EUR",
        )
        late = Payment(
            external_id="P2",
            customer_id=c.id,
            payment_date=TODAY + timedelta(days=5),
            amount=D("100"),
            currency="EUR",
        )
        s.add_all([early, late])
        s.flush()
        s.add(PaymentAllocation(payment_id=early.id, invoice_id=invs[0].id, amount=D("200.01")))
        s.add(PaymentAllocation(payment_id=early.id, invoice_id=invs[1].id, amount=D("99.99")))
        s.add(PaymentAllocation(payment_id=late.id, invoice_id=invs[1].id, amount=D("100")))
        s.add(
            CreditNote(
                external_id="CN1",
                customer_id=c.id,
                invoice_id=invs[2].id,
                issue_date=TODAY,
                amount=D("50"),
                currency="EUR",
            )
        )
        s.add(
            CreditNote(
                external_id="CN2", customer_id=c.id, issue_date=TODAY, amount=D("7"), currency="EUR"
            )
        )
        insure(s, c.id, "400", 10)
        repo.add_collateral(
            s,
            customer_id=c.id,
            kind="guarantee",
            amount="150",
            currency="EUR",
            actor="t",
            valid_from=TODAY - timedelta(days=10),
        )
        cid = c.id
        rate(s, cid, 2)
        repo.set_limit(s, customer_id=cid, amount="100000", currency="EUR", actor="t")
    out = repo.run_order_check(engine, cid, "10", "EUR", order_ref="NEW-1")
    assert out["reservation_id"] is not None, out["decision"]
    with session_scope(engine) as s:
        for on in (TODAY - timedelta(days=3), TODAY, TODAY + timedelta(days=10)):
            one = repo.load_docs(s, [cid], on)[cid]
            every = repo.load_docs(s, None, on)[cid]
            for name in ("orders", "invoices", "reservations", "credits", "covers"):
                mine, theirs = getattr(one, name), getattr(every, name)
                assert sorted(mine, key=lambda d: d.id) == sorted(theirs, key=lambda d: d.id), name
            assert one.covers == every.covers  # guarantees before insurance or not: same order
            assert [r.id for r in one.reservations] == [out["reservation_id"]]
        e = repo.customer_exposure(s, s.get(Customer, cid), TODAY, "EUR")
        assert e.components["reserved"].amount == D("10.00")
        assert e.insured.amount > 0 and e.guaranteed.amount == D("150.00")


def test_rating_read_with_the_customer_matches_current_rating(engine: Engine) -> None:
    """The order check reads the rating with the customer row; same answer as get_rating and
    the rating stage's current_rating (incl. an override that has expired)."""
    from riskdesk.store.models import Rating
    from riskdesk.store.ratings import current_rating

    with session_scope(engine) as s:
        plain, overridden, expired, unrated = (customer(s, f"R{i}") for i in range(4))
        rate(s, plain.id, 4, pd=0.01)
        rate(s, plain.id, 6, pd=0.03)  # a later approval wins
        for c, expires in ((overridden, TODAY + timedelta(days=5)), (expired, TODAY)):
            s.add(
                Rating(
                    customer_id=c.id,
                    status="approved",
                    base_source="manual",
                    base_grade=5,
                    base_pd=0.02,
                    override_notches=2,
                    override_expires=expires,
                    final_grade=7,
                    final_pd=0.08,
                    valid_until=TODAY + timedelta(days=100),
                    proposed_by="x",
                    approved_by="y",
                    approved_at=repo.utcnow(),
                )
            )
        s.flush()
        ids = [plain.id, overridden.id, expired.id, unrated.id]
    with session_scope(engine) as s:
        conn = s.connection()
        for on in (TODAY - timedelta(days=1), TODAY + timedelta(days=1)):
            for cid in ids:
                head = repo.customer_row(conn, cid)
                mine = repo._rating_from_head(s, head, on)
                assert mine == repo.get_rating(s, cid, on)
                ref = current_rating(s, cid, on)
                if ref is None:
                    assert mine is None
                else:
                    assert mine is not None and (mine.grade, mine.pd) == (ref.grade, ref.pd)
        grades = [repo._rating_from_head(s, repo.customer_row(conn, c), TODAY) for c in ids]
        assert [g.grade if g else None for g in grades][0] == 6
