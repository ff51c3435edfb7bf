"""Ratings repository on SQLite and PostgreSQL: history, approval rules, current rating."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select

from riskdesk.assess.rating import RatingError
from riskdesk.store import ratings as repo
from riskdesk.store.audit import verify
from riskdesk.store.db import session_scope
from riskdesk.store.models import AuditEntry, Customer

TODAY = date(2026, 11, 30)


def _customer(engine: Engine, code: str = "C1") -> int:
    with session_scope(engine) as s:
        c = Customer(external_id=code, name=f"Customer {code}")
        s.add(c)
        s.flush()
        return c.id


def test_current_rating_is_none_until_a_rating_is_approved(engine: Engine) -> None:
    cid = _customer(engine)
    with session_scope(engine) as s:
        r = repo.propose_rating(
            s, cid, base=repo.BaseGrade("manual", 5, 0.03), proposed_by="ana", on=TODAY
        )
        assert repo.current_rating(s, cid, TODAY) is None
        repo.approve_rating(s, r.id, approver="rita", approver_role="risk_manager", reason="ok")
    with session_scope(engine) as s:
        cur = repo.current_rating(s, cid, TODAY)
        assert cur is not None
        assert (cur.grade, cur.pd, cur.status) == (5, 0.03, "current")
        # grade 5 is a medium-risk grade: due for review in 6 months
        assert cur.valid_until == date(2027, 5, 30)
        assert repo.current_rating(s, cid, date(2027, 6, 1)).status == "review_due"  # type: ignore[union-attr]


def test_history_keeps_every_decision_newest_first(engine: Engine) -> None:
    cid = _customer(engine)
    with session_scope(engine) as s:
        first = repo.propose_rating(
            s, cid, base=repo.BaseGrade("manual", 3), proposed_by="ana", on=TODAY
        )
        repo.approve_rating(s, first.id, approver="rita", approver_role="risk_manager")
        second = repo.propose_rating(
            s, cid, base=repo.BaseGrade("manual", 6), proposed_by="ana", on=TODAY
        )
        repo.approve_rating(s, second.id, approver="bob", approver_role="analyst")
    with session_scope(engine) as s:
        hist = repo.rating_history(s, cid)
        assert [(r.id, r.status) for r in hist] == [
            (second.id, "approved"),
            (first.id, "superseded"),
        ]
        assert repo.current_rating(s, cid, TODAY).grade == 6  # type: ignore[union-attr]
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == "rating").order_by(AuditEntry.id)
        ).all()
        assert actions == ["rating.propose", "rating.approve"] * 2
        assert verify(s).ok


def test_proposer_cannot_approve_their_own_rating(engine: Engine) -> None:
    cid = _customer(engine)
    with session_scope(engine) as s:
        r = repo.propose_rating(
            s, cid, base=repo.BaseGrade("manual", 4), proposed_by="rita", on=TODAY
        )
        with pytest.raises(RatingError, match="proposer"):
            repo.approve_rating(s, r.id, approver="rita", approver_role="risk_manager")
        assert r.status == "proposed"


def test_override_beyond_cap_needs_a_risk_manager(engine: Engine) -> None:
    cid = _customer(engine)
    with session_scope(engine) as s:
        r = repo.propose_rating(
            s,
            cid,
            base=repo.BaseGrade("manual", 3),
            proposed_by="ana",
            on=TODAY,
            override_notches=3,
            override_reason="lost its biggest customer",
            override_expires=TODAY + timedelta(days=90),
        )
        assert r.final_grade == 6 and r.needs_risk_manager
        with pytest.raises(RatingError, match="risk manager"):
            repo.approve_rating(s, r.id, approver="bob", approver_role="analyst")
        repo.approve_rating(s, r.id, approver="rita", approver_role="risk_manager", reason="agreed")
        assert repo.current_rating(s, cid, TODAY).grade == 6  # type: ignore[union-attr]
        # after the override's expiry the rating falls back to the grade without it
        after = repo.current_rating(s, cid, TODAY + timedelta(days=91))
        assert after is not None and after.grade == 3 and not after.override_active


def test_expert_consensus_notches_the_proposal(engine: Engine) -> None:
    cid = _customer(engine)
    with session_scope(engine) as s:
        for who, lik, imp in (("ana", 5, 4), ("bob", 4, 5), ("eve", 5, 5)):
            repo.add_assessment(s, cid, source="credit", likelihood=lik, impact=imp, assessor=who)
        m = repo.customer_matrix(s, cid)
        assert m["consensus"][0]["likelihood"] == 5 and m["consensus"][0]["impact"] == 5
        assert sum(map(sum, m["grid"])) == 3
        r = repo.propose_rating(
            s,
            cid,
            base=repo.BaseGrade("model", 4, 0.01, "v1"),
            proposed_by="system",
            on=TODAY,
            auto_approve=True,
        )
        assert (r.qualitative_notches, r.final_grade, r.status) == (2, 6, "approved")
        assert sorted(r.assessments_used) == sorted(
            a.id for a in repo.list_assessments(s, cid, active_only=True)
        )


def test_reassessment_replaces_the_assessors_earlier_judgement(engine: Engine) -> None:
    cid = _customer(engine)
    with session_scope(engine) as s:
        repo.add_assessment(s, cid, source="market", likelihood=2, impact=2, assessor="ana")
        repo.add_assessment(s, cid, source="market", likelihood=4, impact=3, assessor="ana")
        active = repo.list_assessments(s, cid, active_only=True)
        assert [(a.likelihood, a.impact) for a in active] == [(4, 3)]
        assert len(repo.list_assessments(s, cid)) == 2
        pm = repo.portfolio_matrix(s)
        assert pm["grid"][2][3] == 1 and pm["points"] == 1


def test_batch_step_rates_every_customer_once_and_reruns_are_idempotent(engine: Engine) -> None:
    from riskdesk.analytics.steps import rating as step

    a, b = _customer(engine, "A"), _customer(engine, "B")
    first = step.run(engine, TODAY)
    assert (first["customers"], first["proposed"], first["approved"]) == (2, 2, 2)
    again = step.run(engine, TODAY)
    assert (again["proposed"], again["unchanged"]) == (0, 2)
    with session_scope(engine) as s:
        cur = repo.current_rating(s, a, TODAY)
        assert cur is not None and cur.base_source in ("expert_scorecard", "model")
        # new expert judgements change the inputs: only that customer is re-rated
        for who in ("ana", "bob"):
            repo.add_assessment(s, b, source="contract", likelihood=5, impact=4, assessor=who)
    third = step.run(engine, TODAY)
    assert (third["proposed"], third["unchanged"]) == (1, 1)
    with session_scope(engine) as s:
        hist = repo.rating_history(s, b)
        assert [r.status for r in hist] == ["approved", "superseded"]
        assert hist[0].final_grade == min(10, hist[1].final_grade + 2)


def test_delphi_rounds_are_persisted_until_consensus(engine: Engine) -> None:
    from riskdesk.assess.delphi import CONVERGED, OPEN
    from riskdesk.assess.expert import Judgement

    cid = _customer(engine)
    with session_scope(engine) as s:
        study = repo.delphi_start(s, cid, "demand", actor="lead", threshold=1.0).study
        for who, lik, imp in (("ana", 1, 2), ("bob", 3, 3), ("eve", 5, 4)):
            repo.delphi_answer(s, study, Judgement("demand", lik, imp, who, f"note {who}"))
    with session_scope(engine) as s:
        st = repo.delphi_close(s, study, actor="lead")
        assert st.status == OPEN and st.round_no == 2
        assert repo.list_assessments(s, cid) == []  # nothing final yet
    with session_scope(engine) as s:
        for who in ("ana", "bob", "eve"):
            repo.delphi_answer(s, study, Judgement("demand", 3, 3, who))
        st = repo.delphi_close(s, study, actor="lead")
        assert st.status == CONVERGED
    with session_scope(engine) as s:
        rounds = repo.delphi_rounds(s, study)
        assert [r.state for r in rounds] == ["closed", CONVERGED]
        assert rounds[0].summary is not None and rounds[0].summary["spread"] == 2.0
        active = repo.list_assessments(s, cid, active_only=True)
        assert sorted(a.assessor for a in active) == ["ana", "bob", "eve"]
        assert {a.delphi_round_id for a in active} == {rounds[1].id}


def test_the_quantitative_assessment_is_the_base_when_present(engine: Engine) -> None:
    assess_models = pytest.importorskip("riskdesk.store.models.assess")
    from riskdesk.analytics.steps import rating as step

    cid = _customer(engine)
    with session_scope(engine) as s:
        s.add(
            assess_models.Assessment(
                customer_id=cid,
                as_of=TODAY,
                model_version="pd-v7",
                score=512.0,
                pd=0.011,
                grade=4,
                reasons=[],
                ead=0,
                lgd=0.45,
                el=0,
                currency="EUR",
            )
        )
    out = step.run(engine, TODAY)
    assert out["from_model"] == 1
    with session_scope(engine) as s:
        r = repo.rating_history(s, cid)[0]
        assert (r.base_source, r.model_version, r.base_grade, r.final_pd) == (
            "model",
            "pd-v7",
            4,
            0.011,
        )


def test_ahp_weights_named_expert_scorecard_feed_the_batch_scorecard(engine: Engine) -> None:
    from riskdesk.analytics.steps import rating as step
    from riskdesk.assess import ahp

    assert step.configured_scorecard(engine).weights()["tenure_years"] > 0
    crit = ["max_days_overdue", "bureau_score"]
    m = [[1, 3], [1 / 3, 1]]
    with session_scope(engine) as s:
        repo.save_weight_set(s, "expert_scorecard", crit, m, ahp.weights(m, crit), actor="lead")
    w = step.configured_scorecard(engine).weights()
    assert w["max_days_overdue"] == pytest.approx(0.75)
    assert w["bureau_score"] == pytest.approx(0.25)
    assert w["tenure_years"] == 0.0


def test_current_ratings_in_bulk_match_the_single_lookup(engine: Engine) -> None:
    a, b, c = _customer(engine, "A"), _customer(engine, "B"), _customer(engine, "C")
    with session_scope(engine) as s:
        for cid, grade in ((a, 2), (b, 8), (a, 3)):
            r = repo.propose_rating(
                s, cid, base=repo.BaseGrade("manual", grade), proposed_by="ana", on=TODAY
            )
            repo.approve_rating(s, r.id, approver="rita", approver_role="risk_manager")
    with session_scope(engine) as s:
        bulk = repo.current_ratings(s, [a, b, c], TODAY)
        assert set(bulk) == {a, b}
        assert bulk[a] == repo.current_rating(s, a, TODAY) and bulk[a].grade == 3
        assert bulk[b].grade == 8 and bulk[b].valid_until == date(2027, 2, 28)
        assert repo.current_ratings(s, [], TODAY) == {}
