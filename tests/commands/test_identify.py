"""``riskdesk identify`` end to end through the CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select
from tests.seed import customer_with_invoice
from typer.testing import CliRunner

from riskdesk.cli import app
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import RiskEventRow, RiskSourceRow

runner = CliRunner()
AS_OF = date(2026, 6, 30)


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
            issue=AS_OF - timedelta(days=70),
            due=AS_OF - timedelta(days=40),
            amount="900",
        )
    eng.dispose()


def count(url: str, model: type) -> int:
    eng = make_engine(url)
    with session_scope(eng) as s:
        n = s.scalar(select(func.count()).select_from(model)) or 0
    eng.dispose()
    return n


def test_identify_summarises_and_events_lists_them(db_url: str) -> None:
    seed(db_url)
    code, out = rd(db_url, "identify", "--as-of", AS_OF.isoformat())
    assert code == 0
    assert (out["opened"], out["still_open"], out["closed"]) == (1, 0, 0)
    assert out["by_source"] == {"credit": {"opened": 1, "still_open": 0, "closed": 0}}
    code, again = rd(db_url, "identify", "--as-of", AS_OF.isoformat())
    assert again["opened"] == 0 and again["still_open"] == 1
    code, ev = rd(db_url, "identify", "events", "--customer", "K1", "--open")
    assert code == 0 and ev["total"] == 1
    e = ev["events"][0]
    assert e["manifestation"] == "credit.overdue_31_60" and e["evidence"]["invoice"] == "I1"
    code, none = rd(db_url, "identify", "events", "--closed")
    assert none["total"] == 0


def test_bad_input_fails_cleanly_and_changes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url)
    code, out = rd(sqlite_url, "identify", "--as-of", "30/06/2026")
    assert code == 2 and "YYYY-MM-DD" in out["error"]
    bad = tmp_path / "cfg.json"
    bad.write_text('{"credit": {"no_such": 1}}')
    code, out = rd(sqlite_url, "identify", "--as-of", AS_OF.isoformat(), "--config", str(bad))
    assert code == 2 and "invalid configuration" in out["error"]
    code, out = rd(sqlite_url, "identify", "events", "--customer", "NOPE")
    assert code == 1
    assert count(sqlite_url, RiskEventRow) == 0


def test_config_file_overrides_thresholds(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url)
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"credit": {"min_overdue_amount": 1000}}')
    code, out = rd(sqlite_url, "identify", "--as-of", AS_OF.isoformat(), "--config", str(cfg))
    assert code == 0 and out["opened"] == 0
    code, out = rd(sqlite_url, "identify", "config", "save", str(cfg))
    assert code == 0 and out["effective"]["credit"]["min_overdue_amount"] == 1000
    code, shown = rd(sqlite_url, "identify", "config", "show")
    assert shown["stored"] == {"credit": {"min_overdue_amount": 1000}}


def test_sources_import_json_and_csv_and_reject_bad_files_whole(
    sqlite_url: str, tmp_path: Path
) -> None:
    good = tmp_path / "s.json"
    good.write_text(
        json.dumps(
            [
                {
                    "code": "supply",
                    "name_en": "Supply",
                    "name_zh": "供应",
                    "manifestations": [
                        {"code": "supply.late", "name_en": "Late", "name_zh": "迟到"}
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    code, out = rd(sqlite_url, "identify", "sources", "import", str(good))
    assert code == 0 and out["created"] == 1 and out["manifestations"] == 1
    bad = tmp_path / "s.csv"
    bad.write_text(
        "source_code,source_name_en,source_name_zh,manifestation_code,manifestation_name_en,"
        "manifestation_name_zh,severity\n"
        "people,People,人员,people.leave,Key person leaves,关键人员离职,high\n"
        "people,People,人员,people.x,X,叉,dreadful\n",
        encoding="utf-8",
    )
    code, out = rd(sqlite_url, "identify", "sources", "import", str(bad))
    assert code == 1 and out["errors"] == [
        {"line": 3, "column": "severity", "reason": out["errors"][0]["reason"]}
    ]
    assert count(sqlite_url, RiskSourceRow) == 1  # nothing of the bad file was stored
    code, listed = rd(sqlite_url, "identify", "sources", "list")
    codes = [s["code"] for s in listed["sources"]]
    assert {"market", "credit", "contract", "demand", "supply"} <= set(codes)
    assert "people" not in codes


def test_evaluate_needs_ground_truth(sqlite_url: str) -> None:
    seed(sqlite_url)
    code, out = rd(sqlite_url, "identify", "--evaluate")
    assert code == 1 and "demo_truth" in out["error"]
