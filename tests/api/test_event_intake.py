"""``POST /api/v1/events`` as ``riskdesk serve`` answers it (the intake fast path) and as the
declared endpoint does: the same answers, problems included, and notifications still sent."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.seed import WebhookReceiver, api_event

from riskdesk.api.app import create_app
from riskdesk.api.routers import monitor as monitor_router
from riskdesk.store import monitor_repo
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Delivery
from riskdesk.web.server import EventIntakeFastPath

URL = "/api/v1/events"
JSON = {"content-type": "application/json"}


_ev = api_event


BREACH_C2 = _ev("f1", "contract.breached", "C002", clause="minimum_volume")
ORDER_C1 = _ev(
    "f2",
    "order.placed",
    "C001",
    order_id="FO1",
    order_date="2026-06-01",
    amount="100.00",
    currency="EUR",
)


@pytest.fixture(params=["declared", "fast"])
def api(request: pytest.FixtureRequest, portfolio: Any) -> Iterator[TestClient]:
    """A client of the application as the tests build it, or with the fast path of ``serve``
    (without its process-wide GC tuning)."""
    app = create_app(portfolio.url)
    if request.param == "fast":
        app.add_middleware(EventIntakeFastPath)
    with TestClient(app) as c:
        yield c


def _problem(r: Any) -> dict[str, Any]:
    assert r.headers["content-type"] == "application/problem+json", r.headers
    return r.json()  # type: ignore[no-any-return]


def test_refused_batches_are_the_problems_of_the_declared_endpoint(api, as_user) -> None:  # type: ignore[no-untyped-def]
    rita = {**as_user("rita"), **JSON}
    r = api.post(URL, content=b"[{", headers=rita)
    assert r.status_code == 422
    assert _problem(r)["errors"] == [
        {"field": "2", "location": "body", "message": "JSON decode error"}
    ]
    for body, ctype in (
        (b'{"a": 1}', "application/json"),
        (b"null", "application/json"),
        (b"[]", "text/plain"),
    ):
        r = api.post(URL, content=body, headers={**as_user("rita"), "content-type": ctype})
        assert r.status_code == 422, body
        assert _problem(r)["detail"] == "body: Input should be a valid list"
    r = api.post(URL, content=b"", headers=rita)
    assert (r.status_code, _problem(r)["detail"]) == (422, "body: Field required")
    r = api.post(URL, content=b'["\xff"]', headers=rita)
    assert (r.status_code, _problem(r)["detail"]) == (400, "There was an error parsing the body")
    r = api.post(URL, content=json.dumps([{}] * 5001), headers=rita)
    assert (r.status_code, _problem(r)["title"]) == (413, "Batch too large")
    # who may send: a token is required, and one of the intake roles
    r = api.post(URL, content=b"[]", headers=JSON)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = api.post(URL, content=b"[]", headers={"Authorization": "Bearer rdk_nope", **JSON})
    assert r.status_code == 401 and "unknown" in _problem(r)["detail"]
    r = api.post(URL, content=b"[]", headers={**as_user("alice"), **JSON})  # sales
    assert r.status_code == 403 and "roles" in _problem(r)["detail"]
    r = api.post(URL, content=b"[]", headers={**as_user("audrey"), **JSON})  # auditor
    assert (r.status_code, _problem(r)["detail"]) == (403, "the auditor role is read-only")
    # undecodable JSON is refused before the token is looked at, as FastAPI decodes first
    assert api.post(URL, content=b"[{", headers=JSON).status_code == 422


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(  # type: ignore[no-untyped-def]
    api, as_user, monkeypatch
) -> None:
    """413 for a body larger than MAX_BODY_BYTES, declared (Content-Length) or streamed
    (chunked), and nothing of it stored; a body within the limit is taken as before."""
    batch = json.dumps([_ev(f"big{i}", "contract.breached", "C001", clause="x") for i in range(20)])
    monkeypatch.setattr(monitor_router, "MAX_BODY_BYTES", len(batch) - 1)
    rita = {**as_user("rita"), **JSON}
    r = api.post(URL, content=batch, headers=rita)
    assert r.status_code == 413
    assert "smaller batches" in _problem(r)["detail"]

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(batch), 100):
            yield batch[i : i + 100].encode()

    r = api.post(URL, content=chunks(), headers=rita)
    assert r.status_code == 413
    monkeypatch.setattr(monitor_router, "MAX_BODY_BYTES", len(batch))
    r = api.post(URL, content=chunks(), headers=rita)
    assert r.status_code == 200 and r.json()["accepted"] == 20, r.text


def test_a_batch_is_answered_alike_with_what_python_json_reads(api, as_user) -> None:  # type: ignore[no-untyped-def]
    h = {**as_user("rita"), **JSON}
    r = api.post(URL, content=json.dumps([BREACH_C2, ORDER_C1, 7]), headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": 1,
        "rejections": [{"index": 2, "event_id": None, "reason": "an event must be a JSON object"}],
        "alerts_new": 1,
        "alerts_updated": 0,
        "rule_set_version": 1,
    }
    again = api.post(URL, content=json.dumps([BREACH_C2]), headers=h).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    # NaN and integers beyond 64 bits are read as Python's json reads them (not refused)
    r = api.post(URL, content=b'[NaN, {"event_id": 123456789012345678901234567890}]', headers=h)
    assert r.status_code == 200
    assert [x["event_id"] for x in r.json()["rejections"]] == [None, 123456789012345678901234567890]


def test_stale_states_are_a_503_to_resend_on_the_fast_path_too(api, as_user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def always_stale(*args: Any, **kwargs: Any) -> Any:
        raise monitor_repo._Conflict("written by another process")

    monkeypatch.setattr(monitor_repo, "_save_states", always_stale)
    h = {**as_user("rita"), **JSON}
    r = api.post(URL, content=json.dumps([ORDER_C1]), headers=h)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "send the same batch again" in _problem(r)["detail"]
    monkeypatch.undo()
    again = api.post(URL, content=json.dumps([ORDER_C1]), headers=h).json()
    assert (again["accepted"], again["duplicates"]) == (1, 0)


def test_an_intake_that_raises_an_alert_sends_its_notification(api, as_user, portfolio) -> None:  # type: ignore[no-untyped-def]
    hook = WebhookReceiver()
    eng = make_engine(portfolio.url)
    try:
        with session_scope(eng) as s:
            monitor_repo.add_subscription(s, "webhook", hook.url, min_severity="low")
        r = api.post(URL, content=json.dumps([BREACH_C2]), headers={**as_user("rita"), **JSON})
        assert r.json()["alerts_new"] == 1
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # sent off the request, right after it
            with session_scope(eng) as s:
                status = s.scalars(select(Delivery.status)).all()
            if status == ["sent"]:
                break
            time.sleep(0.05)
        assert status == ["sent"]
        bodies = [json.loads(body) for _, body in hook.requests]
        assert [(b["customer"], b["rule"]) for b in bodies] == [("C002", "contract_breach")]
    finally:
        hook.close()
        eng.dispose()


def test_alerts_raised_while_notifications_are_sent_are_sent_by_one_more_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many intakes raising alerts cost a few sends, not one each, and the last send starts
    after the last intake (nothing committed before it stays pending)."""
    import riskdesk.connectors.notify as notify

    starts: list[float] = []

    def slow_dispatch(engine: Any) -> dict[str, int]:
        starts.append(time.monotonic())
        time.sleep(0.05)
        return {}

    monkeypatch.setattr(notify, "dispatch_pending", slow_dispatch)
    monkeypatch.setattr(monitor_router, "NOTIFY_GAP", 0.05)
    sender = monitor_router._Notifier(engine=None)  # type: ignore[arg-type]

    async def kicks() -> float:
        at = 0.0
        for _ in range(20):
            at = time.monotonic()  # when the last intake asks for a send
            await sender.kick()
            time.sleep(0.01)
        return at

    import asyncio

    last_kick = asyncio.run(kicks())
    deadline = time.monotonic() + 5
    while sender._running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sender._running
    assert 2 <= len(starts) <= 5, starts
    assert starts[-1] >= last_kick  # the last send starts after the last intake asked


def test_the_openapi_document_describes_the_batch(api) -> None:  # type: ignore[no-untyped-def]
    op = api.get("/openapi.json").json()["paths"][URL]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert (schema["type"], schema["maxItems"]) == ("array", monitor_router.MAX_BATCH)


def _established(port: int, pid: int) -> int:
    """Established TCP connections of process ``pid`` on the server side of ``port``."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port and cols[3] == "01":
                inodes.add(f"socket:[{cols[9]}]")
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
        except OSError:
            continue
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc")
def test_serve_workers_balance_kept_alive_connections(sqlite_url: str) -> None:
    """Four clients, each with one kept-alive connection, to ``serve --workers 2``: however
    the kernel hands the connections out, after a few requests each worker holds two, and
    every request is answered."""
    import subprocess
    import sys
    from pathlib import Path

    from riskdesk.store.users import add_user, create_token

    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        add_user(s, "feeder", "analyst", "feeder-password")
        token = create_token(s, "feeder").token
    eng.dispose()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exe = str(Path(sys.executable).with_name("riskdesk"))
    server = subprocess.Popen(
        [exe, "--db", sqlite_url, "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    headers = {"Authorization": f"Bearer {token}", **JSON}
    try:
        spreads: list[list[int]] = []  # per round, once both workers serve
        deadline = time.monotonic() + 120
        while len(spreads) < 3 and time.monotonic() < deadline:
            with open(f"/proc/{server.pid}/task/{server.pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
            workers = [k for k in kids if "fork" in Path(f"/proc/{k}/cmdline").read_text()]
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(4)]
            try:
                # rounds of one request per client until a whole round keeps every connection
                # (a surplus connection is closed after its answer and the client reconnects
                # on its next request: counted before that, a worker would seem one short)
                for _ in range(16):
                    closed = False
                    for c in clients:
                        r = c.post(URL, content=b"[]", headers=headers)
                        assert r.status_code == 200
                        closed |= r.headers.get("connection", "").lower() == "close"
                    if not closed:
                        break
                spread = sorted(_established(port, w) for w in workers)
            except httpx.TransportError:
                spread = []  # not listening yet
                time.sleep(0.5)
            finally:
                for c in clients:
                    c.close()
            if spreads or (len(spread) == 2 and spread[0] > 0):  # both workers serve
                spreads.append(spread)
        # every round ends balanced: no worker holds more than one connection above the other
        # (2 + 2; now and then a client is between two connections when counted, 1 + 2). The
        # kernel alone leaves 1 + 3 or 0 + 4 in at least one of three rounds about 19 times
        # in 20
        assert all(len(sp) == 2 and sp[1] - sp[0] <= 1 for sp in spreads), spreads
        assert len(spreads) == 3 and sum(map(sum, spreads)) >= 11, spreads
    finally:
        server.terminate()
        server.wait(30)


def test_text_no_database_stores_is_refused_per_event(api, as_user) -> None:  # type: ignore[no-untyped-def]
    """A NUL character or a lone surrogate in an event's text is refused for that event with
    the reason; the rest of the batch is stored. (PostgreSQL refused the whole batch at the
    write with a 500, and a NATS message carrying one failed every redelivery.)"""
    h = {**as_user("rita"), **JSON}
    nul_id = _ev("n1\x00", "contract.breached", "C001", clause="x")
    nul_customer = _ev("n2", "contract.breached", "C0\x0001", clause="x")
    nul_text = _ev("n3", "contract.breached", "C001", clause="x", description="a\x00b")
    surrogate = b'{"event_id": "n4", "type": "contract.breached", "event_time": '
    surrogate += b'"2026-06-01T10:00:00Z", "customer_id": "C001", "payload": {"clause": "\\ud800"}}'
    body = json.dumps([nul_id, nul_customer, nul_text, BREACH_C2]).encode()
    body = body[:-1] + b", " + surrogate + b"]"
    r = api.post(URL, content=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["rejected"]) == (1, 4)
    reasons = {x["index"]: x["reason"] for x in out["rejections"]}
    assert "event_id" in reasons[0] and "NUL character" in reasons[0]
    assert "customer_id" in reasons[1] and "NUL character" in reasons[1]
    assert "payload.description" in reasons[2] and "NUL character" in reasons[2]
    assert "payload.clause" in reasons[4] and "unicode" in reasons[4]  # pydantic refuses it
    # the refused ones can be sent again once mended; the accepted one is a duplicate
    mended = _ev("n3", "contract.breached", "C001", clause="x", description="ab")
    again = api.post(URL, content=json.dumps([mended, BREACH_C2]), headers=h).json()
    assert (again["accepted"], again["duplicates"]) == (1, 1)
