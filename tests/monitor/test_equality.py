"""The real-time state equals the batch features (one definition per feature)."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import Engine, select

from riskdesk.analytics.frames import load_frames
from riskdesk.assess.features import CORE_STATE_FEATURES, core_state_features
from riskdesk.monitor.state import CORE_FEATURES
from riskdesk.store import monitor_repo
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer, CustomerState

from .conftest import History, make_history, write_customers, write_documents


def _replay(engine: Engine, h: History, batch: int) -> None:
    for i in range(0, len(h.events), batch):
        with session_scope(engine) as s:
            res = monitor_repo.ingest(s, h.events[i : i + batch])
            assert res.rejected == []
    with session_scope(engine) as s:
        monitor_repo.clock_tick(s, h.end)


def _compare(engine: Engine, h: History) -> int:
    batch = core_state_features(load_frames(engine), h.end)
    with session_scope(engine) as s:
        ids = {c.external_id: c.id for c in s.scalars(select(Customer))}
        states = {r.customer_ref: r for r in s.scalars(select(CustomerState))}
    checked = 0
    for ref, cid in ids.items():
        row = states[ref]
        assert row.as_of == h.end
        for name in CORE_STATE_FEATURES:
            want = float(batch.loc[cid, name])
            got = row.features[name]
            got = math.nan if got is None else float(got)
            if math.isnan(want):
                assert math.isnan(got), (ref, name, got)
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (ref, name, got, want)
            checked += 1
    return checked


def test_core_feature_names_match_the_shared_contract() -> None:
    assert tuple(CORE_FEATURES) == tuple(CORE_STATE_FEATURES)


def test_state_after_replay_equals_batch_features(engine: Engine) -> None:
    h = make_history(seed=11, n_customers=12)
    write_customers(engine, h)
    write_documents(engine, h.events)
    _replay(engine, h, batch=37)
    checked = _compare(engine, h)
    assert checked == 12 * len(CORE_STATE_FEATURES)
    # the history exercises what matters: overdue money, paid invoices, FX
    frame = core_state_features(load_frames(engine), h.end)
    assert (frame["overdue_balance"] > 0).any()
    assert frame["dbt_wavg_paid_180d"].notna().any()


@pytest.mark.parametrize("seed", [5, 23])  # 23: order cancellations that come first
def test_arrival_order_does_not_change_the_state(engine: Engine, seed: int) -> None:
    h = make_history(seed=seed, n_customers=6)
    write_customers(engine, h)
    write_documents(engine, h.events)
    h.events.reverse()  # every event late and out of order
    _replay(engine, h, batch=500)
    _compare(engine, h)


def test_batch_step_replays_the_core_records_into_the_same_state(engine: Engine) -> None:
    from riskdesk.analytics.steps.monitor import run

    h = make_history(seed=17, n_customers=8)
    write_customers(engine, h)
    write_documents(engine, h.events)
    first = run(engine, h.end)
    assert first["rejected"] == 0 and first["accepted"] == first["events"] > 0
    _compare(engine, h)
    again = run(engine, h.end)
    assert (again["accepted"], again["duplicates"]) == (0, first["events"])


def test_a_rebuild_from_the_stored_events_gives_the_same_state(engine: Engine) -> None:
    """Rebuilding every state from the stored events (late and out of order at intake) gives
    the state the intake kept (nothing reported changed); states broken afterwards (books
    emptied, features wrong) are rebuilt to the batch features again."""
    from sqlalchemy import func, text

    from riskdesk.store.models import Alert

    h = make_history(seed=23, n_customers=8)
    write_customers(engine, h)
    write_documents(engine, h.events)
    h.events.reverse()
    _replay(engine, h, batch=50)
    with session_scope(engine) as s:
        alerts = s.execute(select(func.count(), func.sum(Alert.hits))).one()
        before = {r.customer_ref: r.stamp for r in s.scalars(select(CustomerState))}
        out = monitor_repo.rebuild_states(s, actor="test")
    assert (out["customers"], out["changed"], out["removed"], out["skipped"]) == (8, 0, 0, 0)
    assert out["applied"] == out["events"] == len(h.events)
    _compare(engine, h)
    with session_scope(engine) as s:  # written for its customer, as the intake writes it
        ids = {c.external_id: c.id for c in s.scalars(select(Customer))}
        assert {r.customer_ref: r.customer_id for r in s.scalars(select(CustomerState))} == ids
    with engine.begin() as c:
        c.execute(
            text(
                "UPDATE monitor_customer_state SET book = :b, paid = NULL, features = :f "
                "WHERE customer_ref IN ('C000', 'C003')"
            ),
            {"b": '{"cur": "EUR", "inv": {}, "ord": {}}', "f": '{"overdue_balance": -1}'},
        )
    monitor_repo.clear_book_cache()
    with session_scope(engine) as s:
        out = monitor_repo.rebuild_states(s, ["C000", "C003"], actor="test")
        after = {r.customer_ref: r.stamp for r in s.scalars(select(CustomerState))}
        # no alert raised or changed: the events were judged when they came
        assert s.execute(select(func.count(), func.sum(Alert.hits))).one() == alerts
    assert out["customers"] == 2 and out["changed_customers"] == ["C000", "C003"]
    _compare(engine, h)
    assert {k for k in after if after[k] != before[k]} == set(before)  # new stamps, all
