"""Event intake benchmark: sustained events/s from intake to evaluated rules, p50/p99 latency.

    .venv/bin/python bench/bench_events.py [--events 50000] [--customers 2000] [--batch 500]
        [--db sqlite|postgresql|both] [--via direct,http,nats]

* ``direct``: ``monitor_repo.ingest`` batch by batch (one transaction each) — the core path.
* ``http``: ``POST /api/v1/events`` batches to a uvicorn server on 127.0.0.1 (one client).
* ``nats``: events published to a fresh JetStream stream first, then consumed by the worker
  (``run_worker``; commit, then ack).

Latency is per batch (validation → state update → rules → commit, plus the HTTP round trip
for ``http``): an event waits at most its batch's time once it is taken. Loopback only; the
databases are fresh (SQLite temp file; PostgreSQL database ``riskdesk_bench_monitor``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from riskdesk.store.db import make_engine, migrate, session_scope
from riskdesk.store.models import Customer

PG_ADMIN = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
NATS = "nats://127.0.0.1:4222"


def make_events(n_events: int, n_customers: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = date(2026, 1, 1)
    out: list[dict[str, Any]] = []
    open_inv: dict[int, list[tuple[str, str]]] = {}
    i = 0
    while len(out) < n_events:
        c = rng.randrange(n_customers)
        cust = f"B{c:06d}"
        day = start + timedelta(days=len(out) * 300 // n_events)
        ts = f"{day.isoformat()}T{rng.randrange(24):02d}:00:00Z"
        i += 1
        r = rng.random()
        if r < 0.35:
            amt = f"{rng.randint(100, 50000)}.00"
            out.append(
                {
                    "event_id": f"b{i}",
                    "type": "order.placed",
                    "event_time": ts,
                    "customer_id": cust,
                    "payload": {
                        "order_id": f"O{i}",
                        "order_date": day.isoformat(),
                        "amount": amt,
                        "currency": "EUR",
                    },
                }
            )
        elif r < 0.70:
            amt = f"{rng.randint(100, 50000)}.00"
            inv = f"I{i}"
            open_inv.setdefault(c, []).append((inv, amt))
            out.append(
                {
                    "event_id": f"b{i}",
                    "type": "invoice.issued",
                    "event_time": ts,
                    "customer_id": cust,
                    "payload": {
                        "invoice_id": inv,
                        "issue_date": day.isoformat(),
                        "due_date": (day + timedelta(days=30)).isoformat(),
                        "amount": amt,
                        "currency": "EUR",
                    },
                }
            )
        elif open_inv.get(c):
            inv, amt = open_inv[c].pop(0)
            out.append(
                {
                    "event_id": f"b{i}",
                    "type": "payment.received",
                    "event_time": ts,
                    "customer_id": cust,
                    "payload": {
                        "payment_id": f"P{i}",
                        "payment_date": day.isoformat(),
                        "amount": amt,
                        "currency": "EUR",
                        "allocations": [{"invoice_id": inv, "amount": amt}],
                    },
                }
            )
        else:
            out.append(
                {
                    "event_id": f"b{i}",
                    "type": "bureau_score.changed",
                    "event_time": ts,
                    "customer_id": cust,
                    "payload": {"score": rng.randint(650, 800)},
                }
            )
    return out


def fresh_db(kind: str, n_customers: int) -> str:
    if kind == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/bench_events.db"
    else:
        admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
        with admin.connect() as c:
            c.execute(text('DROP DATABASE IF EXISTS "riskdesk_bench_monitor" WITH (FORCE)'))
            c.execute(text('CREATE DATABASE "riskdesk_bench_monitor"'))
        admin.dispose()
        url = "postgresql+psycopg://root@127.0.0.1:5432/riskdesk_bench_monitor"
    eng = make_engine(url)
    migrate(url, eng)
    with session_scope(eng) as s:
        s.add_all(
            Customer(external_id=f"B{c:06d}", name=f"Bench {c}", currency="EUR")
            for c in range(n_customers)
        )
    eng.dispose()
    return url


def _summary(
    name: str, n: int, secs: float, lat: list[float], batch: int, cpu: float | None = None
) -> dict[str, Any]:
    lat_ms = sorted(x * 1000 for x in lat)
    p = lambda q: lat_ms[min(len(lat_ms) - 1, int(q * len(lat_ms)))]  # noqa: E731
    out = {
        "run": name,
        "events": n,
        "seconds": round(secs, 2),
        "events_per_s": round(n / secs),
        "batch": batch,
        "p50_ms": round(p(0.50), 1),
        "p99_ms": round(p(0.99), 1),
        "mean_ms": round(statistics.fmean(lat_ms), 1),
    }
    if cpu is not None:
        out["cpu_s"] = round(cpu, 2)
        out["events_per_cpu_s"] = round(n / cpu)
    print(out, flush=True)
    return out


def run_direct(url: str, events: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    from riskdesk.store import monitor_repo

    eng = make_engine(url)
    lat: list[float] = []
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(0, len(events), batch):
        b0 = time.perf_counter()
        with session_scope(eng) as s:
            res = monitor_repo.ingest(s, events[i : i + batch])
            assert not res.rejected, res.rejected[:3]
        lat.append(time.perf_counter() - b0)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    eng.dispose()
    return _summary(f"direct/{url.split(':')[0]}", len(events), secs, lat, batch, cpu)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_http(url: str, events: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    from riskdesk.store.users import add_user, create_token

    eng = make_engine(url)
    with session_scope(eng) as s:
        name = f"bench{uuid.uuid4().hex[:6]}"
        add_user(s, name, "risk_manager", "bench-password")
        token = create_token(s, name).token
    eng.dispose()
    port = _free_port()
    code = (
        "import uvicorn; from riskdesk.api.app import create_app; "
        f"uvicorn.run(create_app({url!r}), host='127.0.0.1', port={port}, log_level='warning')"
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        )
        for _ in range(600):
            try:
                client.get("/api/v1/rules")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        lat: list[float] = []
        t0 = time.perf_counter()
        for i in range(0, len(events), batch):
            b0 = time.perf_counter()
            r = client.post("/api/v1/events", json=events[i : i + batch])
            r.raise_for_status()
            lat.append(time.perf_counter() - b0)
        secs = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(10)
    return _summary(f"http/{url.split(':')[0]}", len(events), secs, lat, batch)


def run_nats(url: str, events: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    from riskdesk.connectors import events as ev

    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"RDBENCH_{tag}", f"rdbench.{tag}"
    asyncio.run(ev.publish(NATS, events, stream=stream, prefix=prefix))
    eng = make_engine(url)
    lat: list[float] = []
    last = [time.perf_counter()]

    def on_batch(_: Any) -> None:
        now = time.perf_counter()
        lat.append(now - last[0])
        last[0] = now

    try:
        t0 = time.perf_counter()
        last[0] = t0
        stats = asyncio.run(
            ev.run_worker(
                eng,
                NATS,
                stream=stream,
                prefix=prefix,
                durable=f"b{tag}",
                batch=batch,
                tick_seconds=0,
                max_events=len(events),
                notify=False,
                on_batch=on_batch,
            )
        )
        secs = time.perf_counter() - t0
    finally:
        asyncio.run(ev.delete_stream(NATS, stream))
        eng.dispose()
    assert stats.accepted == len(events), stats.as_dict()
    return _summary(f"nats/{url.split(':')[0]}", len(events), secs, lat, batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--db", default="both")
    ap.add_argument("--via", default="direct,http,nats")
    a = ap.parse_args()
    events = make_events(a.events, a.customers)
    kinds = ["sqlite", "postgresql"] if a.db == "both" else [a.db]
    runners = {"direct": run_direct, "http": run_http, "nats": run_nats}
    for kind in kinds:
        for via in a.via.split(","):
            url = fresh_db(kind, a.customers)
            runners[via](url, events, a.batch)


if __name__ == "__main__":
    main()
