"""``riskdesk orders check``, ``limits``, ``holds``, ``tasks`` and ``control`` end to end."""

from __future__ import annotations

import json
from datetime import date, timedelta

from tests.seed import customer_with_invoice
from typer.testing import CliRunner

from riskdesk.cli import app
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import AuditEntry, OrderCheck
from riskdesk.store.users import add_user

runner = CliRunner()
TODAY = date.today()


def rd(url: str, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = runner.invoke(app, ["--db", url, *args, "--json"])
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, r.stdout  # exactly one JSON object
    return r.exit_code, json.loads(lines[0])


def seed(url: str) -> None:
    eng = make_engine(url)
    with session_scope(eng) as s:
        customer_with_invoice(
            s,
            external_id="K1",
            name="Kappa",
            owner="sam",
            issue=TODAY - timedelta(days=40),
            due=TODAY - timedelta(days=10),
            amount="100",
        )
        add_user(s, "ann", "analyst", "password123")
        add_user(s, "rita", "risk_manager", "password123")
        add_user(s, "sam", "sales", "password123")
    eng.dispose()


def test_order_check_cli_from_no_limit_to_release(sqlite_url: str) -> None:
    seed(sqlite_url)
    code, out = rd(
        sqlite_url, "orders", "check", "K1", "50", "EUR", "--ref", "SO-1", "--placed-by", "sam"
    )
    assert code == 0 and out["decision"] == "hold"
    assert {r["code"] for r in out["reasons"]} >= {"no_limit", "unrated", "overdue_days"}
    code, out = rd(
        sqlite_url, "limits", "set", "K1", "10000", "EUR", "--by", "rita", "--reason", "first limit"
    )
    assert code == 0 and out["amount"] == "10000.00"
    code, shown = rd(sqlite_url, "limits", "show", "K1")
    assert shown["used"] == "100.00" and shown["headroom"] == "9900.00"
    assert shown["exposure"]["components"]["overdue_1_30"]["docs"] == [1]
    code, holds = rd(sqlite_url, "holds", "list")
    (h,) = holds["holds"]
    code, err = rd(
        sqlite_url, "holds", "release", str(h["id"]), "--by", "sam", "--reason", "please"
    )
    assert code == 3 and err["ok"] is False
    code, out = rd(
        sqlite_url, "holds", "release", str(h["id"]), "--by", "rita", "--reason", "limit now set"
    )
    assert code == 0 and out["status"] == "released"
    code, tasks = rd(sqlite_url, "tasks", "list", "--owner", "sam")
    assert [t["kind"] for t in tasks["tasks"]] == ["notify"]


def test_bad_input_is_a_clear_error_and_changes_nothing(sqlite_url: str) -> None:
    seed(sqlite_url)
    for args in (("K1", "12x", "EUR"), ("K1", "10", "EURO"), ("NOPE", "10", "EUR")):
        code, out = rd(sqlite_url, "orders", "check", *args)
        assert code == 2 and out["ok"] is False and out["error"]
    code, out = rd(sqlite_url, "orders", "check", "K1", "10", "EUR", "--as-of", "30/11/2026")
    assert code == 2
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        assert s.query(OrderCheck).count() == 0
    eng.dispose()


def test_limit_request_maker_checker_cli(sqlite_url: str) -> None:
    seed(sqlite_url)
    rd(sqlite_url, "limits", "set", "K1", "1000", "EUR", "--by", "rita", "--reason", "start")
    code, req = rd(
        sqlite_url, "limits", "request", "K1", "500000", "--by", "ann", "--reason", "big order book"
    )
    assert code == 0 and req["needs_risk_manager"] is True
    code, out = rd(
        sqlite_url, "limits", "approve", str(req["id"]), "--by", "ann", "--reason", "mine"
    )
    assert code == 3 and "own request" in out["error"]
    code, out = rd(
        sqlite_url,
        "limits",
        "approve",
        str(req["id"]),
        "--by",
        "rita",
        "--reason",
        "board approved",
    )
    assert code == 0 and out["status"] == "approved"
    code, hist = rd(sqlite_url, "limits", "history", "K1")
    assert [h["amount"] for h in hist["history"]] == ["500000.00", "1000.00"]
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        acts = {a.action for a in s.query(AuditEntry)}
        assert {"limit.request", "limit.request.approved"} <= acts
    eng.dispose()


def test_control_run_is_idempotent_and_reports_a_summary(sqlite_url: str) -> None:
    seed(sqlite_url)
    code, pol = rd(
        sqlite_url,
        "insurance",
        "add-policy",
        "Atradius",
        "P-9",
        "EUR",
        "0.9",
        "--by",
        "rita",
        "--valid-from",
        (TODAY - timedelta(days=90)).isoformat(),
    )
    assert code == 0
    code, _ = rd(
        sqlite_url,
        "insurance",
        "buyer-limit",
        str(pol["id"]),
        "K1",
        "5000",
        "--by",
        "rita",
        "--valid-from",
        (TODAY - timedelta(days=90)).isoformat(),
    )
    assert code == 0
    code, first = rd(sqlite_url, "control")
    assert code == 0 and first["insurer_tasks"] == 1
    code, again = rd(sqlite_url, "control")
    assert again["insurer_tasks"] == 0
    code, ins = rd(sqlite_url, "insurance", "show")
    (b,) = ins["buyers"]
    assert b["insured"] == "90.00" and b["uninsured"] == "10.00"
    code, conc = rd(sqlite_url, "control", "concentration")
    assert conc["dimensions"]["customer"]["hhi"] == 1.0
