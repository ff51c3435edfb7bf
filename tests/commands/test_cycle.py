from typer.testing import CliRunner

from riskdesk.cli import app


def test_cycle_rejects_a_bad_date_with_exit_2(sqlite_url: str) -> None:
    res = CliRunner().invoke(app, ["--db", sqlite_url, "cycle", "--as-of", "2026-13-01", "--json"])
    assert res.exit_code == 2
    assert "YYYY-MM-DD" in res.stdout


def test_cycle_refuses_unknown_steps(sqlite_url: str) -> None:
    res = CliRunner().invoke(app, ["--db", sqlite_url, "cycle", "--only", "nonsense", "--json"])
    assert res.exit_code == 2
    assert "unknown step" in res.stdout
