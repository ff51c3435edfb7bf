"""The monitor CLI: idempotent ingest, rule versions, alerts and cases, clock — both databases."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from riskdesk.cli import app
from riskdesk.store.db import make_engine
from riskdesk.store.models import AuditEntry, CustomerState, ProcessedEvent

runner = CliRunner()


def _ev(eid: str, kind: str, day: str, cust: str, **payload: object) -> dict[str, object]:
    return {
        "event_id": eid,
        "type": kind,
        "event_time": f"{day}T10:00:00Z",
        "customer_id": cust,
        "payload": payload,
    }


STREAM = [
    _ev(
        "e1",
        "invoice.issued",
        "2026-01-05",
        "K1",
        invoice_id="I1",
        issue_date="2026-01-05",
        due_date="2026-02-04",
        amount="1000.00",
        currency="EUR",
    ),
    _ev(
        "e2",
        "invoice.issued",
        "2026-01-06",
        "K1",
        invoice_id="I2",
        issue_date="2026-01-06",
        due_date="2026-02-05",
        amount="500.00",
        currency="EUR",
    ),
    _ev(
        "e3",
        "payment.received",
        "2026-02-01",
        "K1",
        payment_id="P1",
        payment_date="2026-02-01",
        amount="400.00",
        currency="EUR",
        allocations=[{"invoice_id": "I1", "amount": "400.00"}],
    ),
    _ev(
        "e4",
        "order.placed",
        "2026-02-02",
        "K2",
        order_id="O1",
        order_date="2026-02-02",
        amount="700.00",
        currency="EUR",
    ),
]


def _run(db: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--db", db, *args])


def _write(path: Path, events: list[dict[str, object]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + extra, encoding="utf-8")
    return path


def _state(db: str) -> dict[str, object]:
    eng = make_engine(db)
    try:
        with eng.connect() as c:
            rows = c.execute(
                select(
                    CustomerState.customer_ref, CustomerState.features, CustomerState.events_count
                )
            ).all()
            n = c.scalar(select(func.count()).select_from(ProcessedEvent))
            audit = c.scalar(select(func.count()).select_from(AuditEntry))
    finally:
        eng.dispose()
    return {
        "states": sorted((r[0], json.dumps(r[1], sort_keys=True), r[2]) for r in rows),
        "events": n,
        "audit": audit,
    }


def test_replaying_a_file_changes_nothing_and_reports_duplicates(
    db_url: str, tmp_path: Path
) -> None:
    f = _write(tmp_path / "ev.jsonl", STREAM)
    first = _run(db_url, "events", "ingest", str(f), "--json")
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (4, 0, 0)
    before = _state(db_url)
    again = _run(db_url, "events", "ingest", str(f), "--json")
    assert again.exit_code == 0
    out2 = json.loads(again.stdout)
    assert (out2["accepted"], out2["duplicates"]) == (0, 4)
    assert _state(db_url) == before
    state = json.loads(_run(db_url, "events", "state", "K1", "--json").stdout)
    assert state["features"]["open_invoice_balance"] == 1100.0
    assert state["events"] == 3


def test_a_duplicate_inside_one_file_counts_once(db_url: str, tmp_path: Path) -> None:
    f = _write(tmp_path / "ev.jsonl", STREAM[:3] + [STREAM[2]])
    out = json.loads(_run(db_url, "events", "ingest", str(f), "--json").stdout)
    assert (out["accepted"], out["duplicates"]) == (3, 1)
    st = json.loads(_run(db_url, "events", "state", "K1", "--json").stdout)
    assert st["features"]["open_invoice_balance"] == 1100.0


def test_bad_lines_are_listed_with_line_and_reason_and_good_ones_applied(
    db_url: str, tmp_path: Path
) -> None:
    bad_amount = _ev(
        "b1",
        "order.placed",
        "2026-02-02",
        "K3",
        order_id="O9",
        order_date="2026-02-02",
        amount=12.5,
        currency="EUR",
    )
    f = _write(tmp_path / "ev.jsonl", [STREAM[0], bad_amount], extra="{not json\n")
    r = _run(db_url, "events", "ingest", str(f), "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["accepted"] == 1 and out["rejected"] == 2
    lines = {x["line"]: x["reason"] for x in out["rejections"]}
    assert "float" in lines[2] and "amount" in lines[2]
    assert "JSON" in lines[3]
    assert _state(db_url)["events"] == 1


def test_missing_file_fails_cleanly(db_url: str, tmp_path: Path) -> None:
    r = _run(db_url, "events", "ingest", str(tmp_path / "nope.jsonl"), "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["ok"] is False


def test_rule_versions_draft_dry_run_publish(db_url: str, tmp_path: Path) -> None:
    _run(db_url, "events", "ingest", str(_write(tmp_path / "ev.jsonl", STREAM)), "--json")
    listed = json.loads(_run(db_url, "rules", "list", "--json").stdout)["rule_sets"]
    assert [(r["version"], r["status"]) for r in listed] == [(1, "published")]
    rules = {
        "thresholds": {},
        "rules": [
            {
                "id": "any_open_balance",
                "severity": "low",
                "title": {"en": "Has open invoices", "zh": "有未结发票"},
                "playbook": {"en": "Nothing to do.", "zh": "无需处理。"},
                "when": {"field": "state.open_invoice_balance", "op": ">", "value": 0},
            }
        ],
    }
    bad = dict(
        rules, rules=[dict(rules["rules"][0], when={"field": "state.x", "op": ">", "value": 1})]
    )
    r = _run(db_url, "rules", "draft", str(_write_json(tmp_path / "bad.json", bad)), "--json")
    assert r.exit_code == 1 and "unknown field 'state.x'" in json.loads(r.stdout)["error"]
    r = _run(db_url, "rules", "draft", str(_write_json(tmp_path / "r.json", rules)), "--json")
    assert r.exit_code == 0, r.output
    version = json.loads(r.stdout)["version"]
    dry = json.loads(_run(db_url, "rules", "dry-run", str(version), "--json").stdout)
    assert dry["events"] == 4
    assert dry["by_rule"] == {"any_open_balance": 1}
    assert list(dry["by_customer"]) == ["K1"]
    pub = _run(db_url, "rules", "publish", str(version), "--reason", "test", "--json")
    assert pub.exit_code == 0, pub.output
    listed = json.loads(_run(db_url, "rules", "list", "--json").stdout)["rule_sets"]
    assert [(r["version"], r["status"]) for r in listed] == [(1, "retired"), (2, "published")]
    assert listed[1]["dry_run"]["by_rule"] == {"any_open_balance": 1}  # kept with the version
    assert _run(db_url, "rules", "dry-run", "99", "--json").exit_code == 1
    # the new version is used by the next batch
    nxt = [
        _ev(
            "e9",
            "invoice.issued",
            "2026-02-03",
            "K2",
            invoice_id="I9",
            issue_date="2026-02-03",
            due_date="2026-03-05",
            amount="10.00",
            currency="EUR",
        )
    ]
    _run(db_url, "events", "ingest", str(_write(tmp_path / "n.jsonl", nxt)), "--json")
    alerts = json.loads(_run(db_url, "alerts", "list", "--customer", "K2", "--json").stdout)[
        "alerts"
    ]
    assert [(a["rule"], a["title"]) for a in alerts] == [("any_open_balance", "Has open invoices")]


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_clock_ages_the_portfolio_and_cases_follow_their_life_cycle(
    db_url: str, tmp_path: Path
) -> None:
    _run(db_url, "events", "ingest", str(_write(tmp_path / "ev.jsonl", STREAM)), "--json")
    tick = json.loads(_run(db_url, "clock", "tick", "--as-of", "2026-03-10", "--json").stdout)
    assert tick["customers_aged"] == 2
    # I1 (600 open) and I2 (500) became 31+ days overdue on 2026-03-07 without any event
    alerts = json.loads(_run(db_url, "alerts", "list", "--customer", "K1", "--json").stdout)[
        "alerts"
    ]
    assert "overdue_31" in {a["rule"] for a in alerts}
    st = json.loads(_run(db_url, "events", "state", "K1", "--json").stdout)
    assert st["features"]["overdue_31_60"] == 1100.0
    case_id = alerts[0]["case_id"]
    assert {a["case_id"] for a in alerts} == {case_id}  # one case per customer
    r = _run(db_url, "cases", "resolve", str(case_id), "--outcome", "maybe", "--json")
    assert r.exit_code == 1 and "outcome" in json.loads(r.stdout)["error"]
    assert (
        json.loads(_run(db_url, "cases", "ack", str(case_id), "--json").stdout)["status"]
        == "acknowledged"
    )
    assert _run(db_url, "cases", "ack", str(case_id), "--json").exit_code == 1
    _run(db_url, "cases", "comment", str(case_id), "called the customer", "--json")
    res = _run(db_url, "cases", "resolve", str(case_id), "--outcome", "confirmed_risk", "--json")
    assert json.loads(res.stdout)["outcome"] == "confirmed_risk"
    shown = json.loads(_run(db_url, "cases", "show", str(case_id), "--lang", "zh", "--json").stdout)
    assert shown["comments"][0]["body"] == "called the customer"
    assert all(a["status"] == "closed" for a in shown["alerts"])
    assert "overdue_31" in shown["playbooks"] and shown["playbooks"]["overdue_31"]["zh"]
    # a replayed tick is a no-op
    again = json.loads(_run(db_url, "clock", "tick", "--as-of", "2026-03-10", "--json").stdout)
    assert again["customers_aged"] == 0


def test_snooze_silences_a_rule_for_one_customer(db_url: str, tmp_path: Path) -> None:
    _run(db_url, "events", "ingest", str(_write(tmp_path / "ev.jsonl", STREAM)), "--json")
    r = _run(
        db_url,
        "alerts",
        "snooze",
        "K1",
        "overdue_31",
        "--until",
        "2099-01-01",
        "--reason",
        "payment plan agreed",
        "--json",
    )
    assert r.exit_code == 0, r.output
    _run(db_url, "clock", "tick", "--as-of", "2026-03-10", "--json")
    alerts = json.loads(_run(db_url, "alerts", "list", "--customer", "K1", "--json").stdout)[
        "alerts"
    ]
    assert "overdue_31" not in {a["rule"] for a in alerts}
    r = _run(
        db_url, "alerts", "snooze", "K1", "overdue_31", "--until", "2099-01-01", "--reason", " "
    )
    assert r.exit_code == 1


def test_rebuild_repairs_a_broken_state_from_the_stored_events(db_url: str, tmp_path: Path) -> None:
    """A book the intake cannot read (an amount lost, as books written before amounts were
    checked) refuses every new event of its customer. ``events rebuild`` replays the stored
    events instead — leaving out one stored before that check, with its reason — and the
    customer's events are taken again; the other customers are left as they were."""
    from datetime import UTC, datetime

    import orjson
    from sqlalchemy import text

    from riskdesk.store.db import session_scope

    f = _write(tmp_path / "ev.jsonl", STREAM)
    assert _run(db_url, "events", "ingest", str(f), "--json").exit_code == 0
    eng = make_engine(db_url)
    try:
        with session_scope(eng) as s:  # stored before amounts were checked
            s.add(
                ProcessedEvent(
                    event_id="old1",
                    customer_ref="K1",
                    event_type="invoice.issued",
                    event_time=datetime(2026, 1, 7, 10, tzinfo=UTC),
                    received_at=datetime(2026, 1, 7, 10, tzinfo=UTC),
                    body={
                        **_ev("old1", "invoice.issued", "2026-01-07", "K1", invoice_id="I9"),
                        "payload": {
                            "invoice_id": "I9",
                            "issue_date": "2026-01-07",
                            "due_date": "2026-02-06",
                            "amount": None,
                            "currency": "EUR",
                        },
                    },
                )
            )
        with eng.begin() as c:
            book = orjson.loads(
                c.execute(
                    text("SELECT book FROM monitor_customer_state WHERE customer_ref = 'K1'")
                ).scalar_one()
            )
            book["inv"]["I9"] = [book["inv"]["I1"][0], book["inv"]["I1"][1], None, 0]
            c.execute(
                text(
                    "UPDATE monitor_customer_state SET book = :b, stamp = 5 WHERE customer_ref = 'K1'"
                ),
                {"b": orjson.dumps(book).decode()},
            )
            k2 = c.execute(
                text("SELECT stamp FROM monitor_customer_state WHERE customer_ref = 'K2'")
            ).scalar_one()
    finally:
        eng.dispose()
    late = _ev("e9", "bureau_score.changed", "2026-02-10", "K1", score=600)
    g = _write(tmp_path / "late.jsonl", [late])
    refused = json.loads(_run(db_url, "events", "ingest", str(g), "--json").stdout)
    reason = refused["rejections"][0]["reason"]
    assert refused["rejected"] == 1 and "could not be applied" in reason
    assert "riskdesk events rebuild K1" in reason  # the way out, named

    assert _run(db_url, "events", "rebuild", "--json").exit_code == 2  # no customer named
    unknown = _run(db_url, "events", "rebuild", "K1", "NOPE", "--json")
    assert unknown.exit_code == 1 and "'NOPE'" in json.loads(unknown.stdout)["error"]
    res = _run(db_url, "events", "rebuild", "K1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["customers"], out["applied"], out["skipped"], out["changed"]) == (1, 3, 1, 0)
    assert out["skipped_events"][0]["event_id"] == "old1"
    assert "amount" in out["skipped_events"][0]["reason"]

    again = json.loads(_run(db_url, "events", "ingest", str(g), "--json").stdout)
    assert (again["accepted"], again["rejected"]) == (1, 0)
    st = json.loads(_run(db_url, "events", "state", "K1", "--json").stdout)
    assert st["features"]["open_invoice_balance"] == 1100.0 and st["events"] == 4
    eng = make_engine(db_url)
    try:
        with eng.connect() as c:
            assert (
                c.execute(
                    text("SELECT stamp FROM monitor_customer_state WHERE customer_ref = 'K2'")
                ).scalar_one()
                == k2
            )
            actions = list(c.scalars(select(AuditEntry.action)))
    finally:
        eng.dispose()
    assert actions.count("monitor.rebuild") == 1  # the refused tries wrote nothing
    every = json.loads(_run(db_url, "events", "rebuild", "--all", "--json").stdout)
    assert (every["customers"], every["applied"], every["changed"]) == (2, 5, 0)


def test_notify_lists_and_stops_subscriptions(db_url: str) -> None:
    made = _run(
        db_url,
        "notify",
        "subscribe",
        "--channel",
        "webhook",
        "--target",
        "https://h.example/x",
        "--json",
    )
    assert made.exit_code == 0, made.output
    sub = json.loads(made.stdout)
    assert len(sub["secret"]) == 64
    listed = json.loads(_run(db_url, "notify", "list", "--json").stdout)["items"]
    assert [(x["id"], x["active"]) for x in listed] == [(sub["id"], True)]
    assert all("secret" not in x for x in listed)
    assert _run(db_url, "notify", "list", "--user", "nobody", "--json").exit_code == 1
    stopped = json.loads(_run(db_url, "notify", "stop", str(sub["id"]), "--json").stdout)
    assert stopped["active"] is False
    assert _run(db_url, "notify", "stop", "999", "--json").exit_code == 1
