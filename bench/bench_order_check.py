"""Latency of the HTTP order check at a fixed request rate; prints p50/p95/p99.

    .venv/bin/python bench/bench_order_check.py                 # demo DB of 1000 customers
    .venv/bin/python bench/bench_order_check.py --db sqlite:////tmp/demo.db --rate 200 --seconds 20

Builds a demo database with ``riskdesk demo`` (unless ``--db`` points at one that already has
customers), starts uvicorn on 127.0.0.1 in a subprocess, and sends ``POST /api/v1/orders/check``
at a fixed rate (open loop: latency is measured from each request's *scheduled* send time, so
queueing delay counts). Loopback only; the loop is bounded by ``rate × seconds`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import select

from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer
from riskdesk.store.users import add_user, create_token, get_user

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_demo(url: str, customers: int) -> None:
    eng = make_engine(url)
    try:
        with session_scope(eng) as s:
            n = len(s.scalars(select(Customer.id).limit(1)).all())
    except Exception:
        n = 0
    eng.dispose()
    if n:
        return
    print(f"building a demo portfolio of {customers} customers …", flush=True)
    subprocess.run(
        [
            str(VENV_BIN / "riskdesk"),
            "--db",
            url,
            "demo",
            "--customers",
            str(customers),
            "--no-serve",
            "--json",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def token_and_customers(url: str) -> tuple[str, list[int]]:
    eng = make_engine(url)
    with session_scope(eng) as s:
        if get_user(s, "bench") is None:
            add_user(s, "bench", "risk_manager", "bench-password-1")
        token = create_token(s, "bench", name="bench").token
        ids = list(s.scalars(select(Customer.id).where(Customer.status == "active")))
    eng.dispose()
    return token, ids


def wait_up(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not come up")


async def load(
    base: str, token: str, ids: list[int], rate: float, seconds: float, as_of: str | None, seed: int
) -> tuple[list[float], Counter[str], int]:
    rnd = random.Random(seed)
    total = int(rate * seconds)
    lat: list[float] = []
    decisions: Counter[str] = Counter()
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:
        gate = asyncio.Semaphore(64)

        async def one(i: int, scheduled: float) -> None:
            nonlocal errors
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {
                "customer_id": rnd.choice(ids),
                "amount": f"{rnd.randint(10, 5000)}.00",
                "currency": "EUR",
                "order_ref": f"bench-{seed}-{i}",
            }
            if as_of:
                body["as_of"] = as_of
            try:
                async with gate:  # at most 64 in flight; the rest wait here, in order
                    r = await client.post("/api/v1/orders/check", json=body)
                done = time.perf_counter()
                if r.status_code != 200:
                    errors += 1
                    return
                decisions[r.json()["decision"]] += 1
                lat.append((done - scheduled) * 1000)
            except httpx.HTTPError:
                errors += 1

        # warm-up (not measured)
        for i in range(20):
            await client.post(
                "/api/v1/orders/check",
                json={"customer_id": ids[i % len(ids)], "amount": "1.00", "currency": "EUR"},
            )
        start = time.perf_counter() + 0.2
        tasks = [asyncio.create_task(one(i, start + i / rate)) for i in range(total)]
        # bounded: whatever has not answered 30 s after the last send counts as a timeout
        _done, pending = await asyncio.wait(tasks, timeout=seconds + 30.0)
        for t in pending:
            t.cancel()
        errors += len(pending)
    return lat, decisions, errors


async def closed_loop(
    base: str, token: str, ids: list[int], n: int, as_of: str | None, seed: int
) -> list[float]:
    """``n`` requests one after another: the service time of one check, without queueing."""
    rnd = random.Random(seed + 1)
    out: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for i in range(n):
            body = {
                "customer_id": rnd.choice(ids),
                "amount": f"{rnd.randint(10, 5000)}.00",
                "currency": "EUR",
                "order_ref": f"closed-{seed}-{i}",
            }
            if as_of:
                body["as_of"] = as_of
            t = time.perf_counter()
            r = await client.post("/api/v1/orders/check", json=body)
            if r.status_code == 200:
                out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def _sigterm(*_: object) -> None:
    raise SystemExit(143)


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a fresh demo SQLite file)")
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--as-of", default="2026-09-30", help="order date sent with each check")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument(
        "--closed",
        type=int,
        default=300,
        help="first send this many requests one at a time (service time)",
    )
    args = ap.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench_demo.db'}"
    ensure_demo(url, args.customers)
    token, ids = token_and_customers(url)
    port = free_port()
    env = {**os.environ, "RISKDESK_DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "riskdesk.api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(args.workers),
        ],
        env=env,
        cwd=str(ROOT),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base)
        closed = asyncio.run(closed_loop(base, token, ids, args.closed, args.as_of, args.seed))
        lat, decisions, errors = asyncio.run(
            load(base, token, ids, args.rate, args.seconds, args.as_of, args.seed)
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    out = {
        "requests": len(lat) + errors,
        "errors_or_timeouts": errors,
        "rate": args.rate,
        "seconds": args.seconds,
        "customers": len(ids),
        "p50_ms": round(pct(lat, 50), 2),
        "p95_ms": round(pct(lat, 95), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(max(lat, default=float("nan")), 2),
        "decisions": dict(decisions),
        "database": url.split(":")[0],
        "service_ms": {
            "p50": round(pct(closed, 50), 2),
            "p99": round(pct(closed, 99), 2),
            "n": len(closed),
        },
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    print(
        f"p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms  p99 {out['p99_ms']} ms  "
        f"(target p99 ≤ 20 ms at {args.rate:.0f} req/s)"
    )


if __name__ == "__main__":
    main()
