"""``riskdesk import`` through the real CLI, on SQLite and PostgreSQL."""

import json
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from riskdesk.cli import app
from riskdesk.store.db import make_engine
from riskdesk.store.models import AuditEntry, Customer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD = (
    "external_id,name,country,revenue,founded_on,status\n"
    "C1,Alpha,DE,1000.00,2001-02-03,active\n"
    "C2,Beta,CN,2500.50,2010/05/06,inactive\n"
)
# three broken rows (lines 3, 5 and 6) among good ones
BROKEN = (
    "external_id,name,country,revenue,founded_on,status\n"
    "C1,Alpha renamed,DE,1000.00,2001-02-03,active\n"
    "C3,Gamma,DE,12.3.4,2001-02-03,active\n"
    "C4,Delta,FR,10.00,2001-02-03,active\n"
    "C5,,DE,10.00,2001-02-03,active\n"
    "C6,Zeta,DE,10.00,2001-02-30,active\n"
)


def _run(db_url: str, *args: str):
    return CliRunner().invoke(app, ["--db", db_url, "import", *args])


def _snapshot(db_url: str) -> tuple[list[tuple[str, str]], int]:
    eng = make_engine(db_url)
    try:
        with eng.connect() as c:
            names = [
                tuple(r)
                for r in c.execute(
                    select(Customer.external_id, Customer.name).order_by(Customer.external_id)
                )
            ]
            audits = int(c.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    finally:
        eng.dispose()
    return names, audits


def test_a_file_with_three_bad_rows_exits_2_lists_them_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    good, broken = tmp_path / "good.csv", tmp_path / "broken.csv"
    good.write_text(GOOD)
    broken.write_text(BROKEN)
    assert _run(db_url, "customers", str(good), "--json").exit_code == 0
    before = _snapshot(db_url)

    res = _run(db_url, "customers", str(broken), "--json")
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    assert out["ok"] is False and out["error_count"] == 3
    assert [(e["line"], e["column"], e["value"]) for e in out["errors"]] == [
        (3, "revenue", "12.3.4"),
        (5, "name", ""),
        (6, "founded_on", "2001-02-30"),
    ]
    assert all(e["reason"] for e in out["errors"])
    assert _snapshot(db_url) == before

    human = _run(db_url, "customers", str(broken))
    assert human.exit_code == 2
    for text in ("12.3.4", "revenue", "founded_on", "2001-02-30"):
        assert text in human.stdout
    assert _snapshot(db_url) == before


def test_importing_the_same_file_twice_reports_everything_unchanged(
    db_url: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    first = json.loads(_run(db_url, "customers", str(good), "--json").stdout)
    second = json.loads(_run(db_url, "customers", str(good), "--json").stdout)
    assert first == {**first, "ok": True, "inserted": 2, "updated": 0, "unchanged": 0, "rows": 2}
    assert second == {**second, "ok": True, "inserted": 0, "updated": 0, "unchanged": 2, "rows": 2}
    names, audits = _snapshot(db_url)
    assert names == [("C1", "Alpha"), ("C2", "Beta")] and audits == 2


def test_dry_run_counts_but_writes_nothing(db_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    res = _run(db_url, "customers", str(good), "--dry-run", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["inserted"] == 2
    assert _snapshot(db_url) == ([], 0)


def test_the_xlsx_template_imports_like_the_csv_one(db_url: str) -> None:
    res = _run(db_url, "customers", str(EXAMPLES / "customers.xlsx"), "--json")
    assert res.exit_code == 0, res.stdout
    assert json.loads(res.stdout)["inserted"] == 4
    again = json.loads(_run(db_url, "customers", str(EXAMPLES / "customers.csv"), "--json").stdout)
    assert (again["unchanged"], again["updated"]) == (4, 0)


def test_unknown_kind_and_missing_file_are_clear_errors(sqlite_url: str, tmp_path: Path) -> None:
    res = _run(sqlite_url, "widgets", str(EXAMPLES / "customers.csv"), "--json")
    assert res.exit_code == 1 and "unknown kind" in json.loads(res.stdout)["error"]
    res = _run(sqlite_url, "customers", str(tmp_path / "nope.csv"), "--json")
    assert res.exit_code == 1 and "no such file" in json.loads(res.stdout)["error"]
    unreadable = tmp_path / "x.xlsx"
    unreadable.write_bytes(b"PK\x03\x04 not really a workbook")
    res = _run(sqlite_url, "customers", str(unreadable), "--json")
    assert res.exit_code == 2 and json.loads(res.stdout)["ok"] is False
