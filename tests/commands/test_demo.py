"""``riskdesk demo`` end to end through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from riskdesk.cli import app
from riskdesk.store.audit import verify
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import (
    Contract,
    Customer,
    DemoTruth,
    Invoice,
    Order,
    Payment,
    User,
)
from riskdesk.store.users import authenticate

runner = CliRunner()


def _count(url: str, model) -> int:
    eng = make_engine(url)
    try:
        with session_scope(eng) as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        eng.dispose()


def test_demo_builds_a_portfolio_prints_counts_and_refuses_a_second_load(db_url):
    args = ["--db", db_url, "demo", "--case", "manufacturer", "--customers", "200"]
    r = runner.invoke(app, [*args, "--no-serve", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["case"] == "manufacturer" and out["seed"] == 7
    counts = out["counts"]
    for key, model in [
        ("customers", Customer),
        ("contracts", Contract),
        ("orders", Order),
        ("invoices", Invoice),
        ("payments", Payment),
    ]:
        assert counts[key] == _count(db_url, model) > 0, key
    assert counts["customers"] == 200 == _count(db_url, DemoTruth)
    assert 0 < out["defaults"] < 200
    assert isinstance(out["steps"], dict)
    assert "failed_steps" not in out

    eng = make_engine(db_url)
    try:
        with session_scope(eng) as s:
            assert (
                s.scalar(
                    select(func.count()).select_from(Customer).where(Customer.status == "defaulted")
                )
                == out["defaults"]
            )
            demo = authenticate(s, out["login"]["username"], out["login"]["password"])
            assert demo is not None and demo.role == "admin"
            owners = set(s.scalars(select(Customer.owner).distinct()))
            sales = {u.username for u in s.scalars(select(User).where(User.role == "sales"))}
            assert owners <= sales
            assert verify(s).ok
    finally:
        eng.dispose()

    again = runner.invoke(app, [*args, "--seed", "8", "--no-serve", "--json"])
    assert again.exit_code != 0
    assert "--reset" in json.loads(again.stdout)["error"]
    assert _count(db_url, Customer) == 200
    assert _count(db_url, Order) == counts["orders"]


def test_reset_replaces_the_portfolio_and_keeps_users(db_url):
    first = runner.invoke(
        app, ["demo", "--db", db_url, "--customers", "60", "--no-cycle", "--no-serve", "--json"]
    )
    assert first.exit_code == 0, first.output
    users = _count(db_url, User)
    r = runner.invoke(
        app,
        [
            "demo",
            "--db",
            db_url,
            "--case",
            "retailer",
            "--customers",
            "80",
            "--seed",
            "3",
            "--reset",
            "--no-cycle",
            "--no-serve",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["case"] == "retailer"
    assert _count(db_url, Customer) == 80
    assert _count(db_url, Order) == out["counts"]["orders"]
    assert _count(db_url, User) >= users
    eng = make_engine(db_url)
    try:
        with session_scope(eng) as s:
            assert s.scalar(select(func.min(Customer.id))) == 1
            assert all(x.startswith("RC") for x in s.scalars(select(Customer.external_id)))
            assert verify(s).ok
    finally:
        eng.dispose()


def test_bad_input_is_refused_and_changes_nothing(sqlite_url):
    for extra in (["--case", "bakery"], ["--as-of", "2026-13-01"], ["--customers", "0"]):
        r = runner.invoke(app, ["--db", sqlite_url, "demo", *extra, "--no-serve", "--json"])
        assert r.exit_code != 0, extra
        assert json.loads(r.stdout)["ok"] is False
    assert _count(sqlite_url, Customer) == 0
