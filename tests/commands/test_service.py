"""``riskdesk user``, ``token`` and ``audit`` through the CLI."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from tests.seed import cheap_argon2
from typer.testing import CliRunner

from riskdesk.api.app import create_app
from riskdesk.cli import app
from riskdesk.store.db import make_engine

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


def cli(db_url: str, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--db", db_url, *args])


def test_token_create_json_prints_a_token_that_works_against_the_api(db_url):
    r = cli(db_url, "user", "add", "rita", "--role", "risk_manager", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["role"] == "risk_manager" and created["password"]
    r = cli(db_url, "token", "create", "rita", "--name", "ci", "--json")
    assert r.exit_code == 0, r.output
    token = json.loads(r.stdout)["token"]
    with TestClient(create_app(db_url)) as client:
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["username"] == "rita"


def test_user_add_rejects_bad_role_and_duplicates_without_changes(db_url):
    r = cli(db_url, "user", "add", "x", "--role", "wizard", "--json")
    assert r.exit_code != 0 and "unknown role" in json.loads(r.stdout)["error"]
    assert cli(db_url, "user", "add", "x", "--role", "sales").exit_code == 0
    r = cli(db_url, "user", "add", "x", "--role", "sales")
    assert r.exit_code != 0
    users = json.loads(cli(db_url, "user", "list", "--json").stdout)["users"]
    assert [u["username"] for u in users] == ["x"]
    r = cli(db_url, "token", "create", "nobody", "--json")
    assert r.exit_code != 0


def test_audit_verify_detects_a_tampered_row_and_names_it(db_url):
    for name in ("a1", "a2", "a3"):
        assert cli(db_url, "user", "add", name, "--role", "analyst").exit_code == 0
    ok = cli(db_url, "audit", "verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    entries = json.loads(cli(db_url, "audit", "list", "--json").stdout)["entries"]
    victim = next(e for e in entries if e["after"]["username"] == "a2")
    eng = make_engine(db_url)
    with eng.begin() as c:
        c.execute(
            text("UPDATE audit_log SET actor = :a WHERE id = :i"),
            {"a": "mallory", "i": victim["id"]},
        )
    eng.dispose()
    bad = cli(db_url, "audit", "verify", "--json")
    assert bad.exit_code != 0
    out = json.loads(bad.stdout)
    assert out["ok"] is False and out["bad_id"] == victim["id"]
    human = cli(db_url, "audit", "verify")
    assert human.exit_code != 0 and str(victim["id"]) in human.output


def test_audit_list_filters_by_action(db_url):
    cli(db_url, "user", "add", "u1", "--role", "sales")
    cli(db_url, "token", "create", "u1")
    entries = json.loads(cli(db_url, "audit", "list", "--action", "token.create", "--json").stdout)
    assert [e["action"] for e in entries["entries"]] == ["token.create"]


def test_serve_processes_build_the_app_with_the_gc_tuning_of_intake_processes(tmp_path):
    # in a fresh interpreter: the tuning is process-wide (freeze + thresholds)
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    code = (
        "import gc, sys\n"
        "from riskdesk.web.server import create_server_app\n"
        "before = gc.get_threshold()\n"
        "app = create_server_app(sys.argv[1])\n"
        "print(before, gc.get_threshold(), gc.get_freeze_count() > 0, type(app).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")[-2]
    assert out == "(700, 10, 10) (20000, 20, 50) True FastAPI", out
