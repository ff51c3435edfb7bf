"""CLI: riskdesk expert / ahp / rating."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from riskdesk.cli import app
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer, User

runner = CliRunner()


def _setup(url: str) -> None:
    eng = make_engine(url)
    with session_scope(eng) as s:
        s.add(Customer(external_id="ACME", name="Acme Trading"))
        # no passwords: the CLI needs only the users' roles (and argon2 is slow on purpose)
        s.add_all(
            [User(username="ana", role="analyst"), User(username="rita", role="risk_manager")]
        )
    eng.dispose()


def run(url: str, *args: str) -> tuple[int, dict]:
    res = runner.invoke(app, ["--db", url, *args, "--json"])
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stdout
    return res.exit_code, json.loads(lines[0])


def test_expert_assessments_and_matrix(db_url: str) -> None:
    _setup(db_url)
    for who, lik, imp in (("ana", 4, 5), ("bob", 5, 4)):
        code, out = run(
            db_url,
            "expert",
            "add",
            "ACME",
            "--source",
            "credit",
            "--likelihood",
            str(lik),
            "--impact",
            str(imp),
            "--assessor",
            who,
            "--comment",
            "two invoices 60 days late",
        )
        assert code == 0 and out["score"] == lik * imp
    code, m = run(db_url, "expert", "matrix", "ACME")
    assert code == 0
    assert m["consensus"][0]["likelihood"] == 4.5 and m["notches"] == 2
    assert m["grid"][4][3] == 1 and m["grid"][3][4] == 1
    code, pm = run(db_url, "expert", "matrix")
    assert code == 0 and pm["customers"] == 1


def test_bad_assessment_is_refused_and_nothing_is_written(sqlite_url: str) -> None:
    _setup(sqlite_url)
    code, out = run(
        sqlite_url,
        "expert",
        "add",
        "ACME",
        "--source",
        "credit",
        "--likelihood",
        "7",
        "--impact",
        "3",
        "--assessor",
        "ana",
    )
    assert code != 0
    code, out = run(
        sqlite_url,
        "expert",
        "add",
        "NOPE",
        "--source",
        "credit",
        "--likelihood",
        "3",
        "--impact",
        "3",
        "--assessor",
        "ana",
    )
    assert code == 1 and "no customer" in out["error"]
    code, out = run(sqlite_url, "expert", "list", "ACME")
    assert out["assessments"] == []


def test_ahp_weights_exit_2_with_the_conflicts_when_inconsistent(
    sqlite_url: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "criteria": ["pay", "size", "bureau"],
                "matrix": [[1, 3, 5], ["1/3", 1, 2], ["1/5", "1/2", 1]],
            }
        )
    )
    code, out = run(sqlite_url, "ahp", "weights", str(good), "--save", "credit-weights")
    assert code == 0 and out["consistent"] and out["saved_id"] >= 1
    assert out["weights"]["pay"] > out["weights"]["size"] > out["weights"]["bureau"]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"criteria": ["a", "b", "c"], "matrix": [[1, 9, "1/9"], ["1/9", 1, 9], [9, "1/9", 1]]}
        )
    )
    code, out = run(sqlite_url, "ahp", "weights", str(bad))
    assert code == 2
    assert out["ok"] is False and "inconsistent" in out["error"]
    assert out["conflicts"] and out["cr"] >= 0.1


def test_rating_propose_approve_show_history(db_url: str) -> None:
    _setup(db_url)
    code, out = run(
        db_url,
        "rating",
        "propose",
        "ACME",
        "--by",
        "ana",
        "--grade",
        "4",
        "--override",
        "1",
        "--on",
        "2026-11-30",
    )
    assert code == 1 and "reason" in out["error"]
    code, p = run(
        db_url,
        "rating",
        "propose",
        "ACME",
        "--by",
        "ana",
        "--grade",
        "4",
        "--override",
        "3",
        "--reason",
        "main buyer insolvent",
        "--expires",
        "2027-02-28",
        "--on",
        "2026-11-30",
    )
    assert code == 0 and p["status"] == "proposed" and p["final_grade"] == 7
    assert p["needs_risk_manager"]
    code, out = run(db_url, "rating", "approve", str(p["id"]), "--by", "ana")
    assert code == 1 and "proposer" in out["error"]
    code, a = run(db_url, "rating", "approve", str(p["id"]), "--by", "rita", "--reason", "ok")
    assert code == 0 and a["status"] == "approved" and a["approved_by"] == "rita"
    code, show = run(db_url, "rating", "show", "ACME", "--on", "2026-12-01")
    assert show["current"]["grade"] == 7
    code, show = run(db_url, "rating", "show", "ACME", "--on", "2027-03-01")
    assert show["current"]["grade"] == 4  # the override has expired
    code, hist = run(db_url, "rating", "history", "ACME")
    assert [r["id"] for r in hist["ratings"]] == [p["id"]]


def test_rating_propose_without_grade_uses_the_expert_scorecard(sqlite_url: str) -> None:
    _setup(sqlite_url)
    code, p = run(sqlite_url, "rating", "propose", "ACME", "--by", "ana")
    assert code == 0
    assert p["base_source"] in ("expert_scorecard", "model")
    assert 1 <= p["final_grade"] <= 10
