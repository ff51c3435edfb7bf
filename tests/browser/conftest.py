"""A live riskdesk server (uvicorn in a thread, SQLite file, small seeded portfolio) and a
headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from tests.seed import PORTFOLIO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


SEED = PORTFOLIO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _more_customers(url: str, today: date) -> None:
    """A few more customers so the portfolio charts have something to show."""
    from riskdesk.store.db import make_engine, session_scope
    from riskdesk.store.models import Customer, Invoice

    eng = make_engine(url)
    rows = [
        ("C010", "Eastwind Logistics", "logistics", "East", "alice", 45, "2400.00"),
        ("C011", "Fuji Components KK", "electronics", "East", "bob", 75, "5200.00"),
        ("C012", "Granite Builders", "construction", "South", "bob", 10, "1800.00"),
        ("C013", "华南电子有限公司", "electronics", "South", "alice", 120, "3100.00"),
        ("C014", "Helios Energy", "energy", "West", "bob", -20, "6400.00"),
    ]
    with session_scope(eng) as s:
        for ext, name, ind, reg, owner, late, amount in rows:
            c = Customer(
                external_id=ext, name=name, industry=ind, region=reg, owner=owner, currency="EUR"
            )
            s.add(c)
            s.flush()
            due = today - timedelta(days=late)
            s.add(
                Invoice(
                    external_id=f"I-{ext}",
                    customer_id=c.id,
                    issue_date=due - timedelta(days=30),
                    due_date=due,
                    amount=Decimal(amount),
                    currency="EUR",
                )
            )
    eng.dispose()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    """The base URL of a running server over a seeded SQLite file."""
    import uvicorn

    from riskdesk.api.app import create_app
    from riskdesk.store.types import utcnow

    path = tmp_path_factory.mktemp("browser") / "riskdesk.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    today = utcnow().date()
    SEED.seed(url, as_of=today)
    _more_customers(url, today)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(url), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the riskdesk server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, locale="en-US", base_url=live_server
    )
    p = context.new_page()
    p.set_default_timeout(15000)
    yield p
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def password() -> str:
    return SEED.PASSWORD  # type: ignore[no-any-return]
