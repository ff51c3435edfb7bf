"""Latency of the HTTP order check at a fixed request rate; prints p50/p95/p99.

    .venv/bin/python bench/bench_order_check.py                 # demo DB of 1000 customers
    .venv/bin/python bench/bench_order_check.py --db sqlite:////tmp/demo.db --rate 200 --seconds 20

Builds a demo database with ``riskdesk demo`` (unless ``--db`` points at one that already has
customers), starts uvicorn on 127.0.0.1 in a subprocess, and sends ``POST /api/v1/orders/check``
at a fixed rate (open loop: latency is measured from each request's *scheduled* send time, so
queueing delay counts). Loopback only; the loop is bounded by ``rate × seconds`` requests.

The client is a small keep-alive HTTP/1.1 client on asyncio streams (uvloop when installed), so
that on a 2-core machine it takes little CPU from the server; it reports its own CPU per
request. The server's CPU seconds (process and worker children, from /proc) are reported per
check for both phases. The server runs with ``--no-access-log`` (``riskdesk serve`` logs
access by default) and ``--http/--loop auto``, i.e. httptools and uvloop (``uvicorn[standard]``).
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
from typing import Any, cast

import httpx
from sqlalchemy import select, text

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


def reset_checks(url: str) -> int:
    """Delete the order checks (and their reservations) of earlier runs of this benchmark, so
    every run starts from the same books; on PostgreSQL also VACUUM ANALYZE those two tables."""
    eng = make_engine(url)
    with eng.begin() as c:
        mine = "SELECT id FROM control_order_checks WHERE checked_by = 'bench'"
        c.execute(text(f"DELETE FROM control_reservations WHERE order_check_id IN ({mine})"))
        n = c.execute(text("DELETE FROM control_order_checks WHERE checked_by = 'bench'")).rowcount
    if eng.dialect.name == "postgresql":
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE control_reservations"))
            c.execute(text("VACUUM ANALYZE control_order_checks"))
    eng.dispose()
    return int(n or 0)


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


class RawClient:
    """A small HTTP/1.1 keep-alive client on asyncio streams (the benchmark's own cost must stay
    well below the server's on a 2-core box; httpx costs about as much CPU as one check)."""

    def __init__(self, host: str, port: int, token: str, max_connections: int = 64) -> None:
        self.host, self.port, self.max = host, port, max_connections
        self.head = (
            "POST /api/v1/orders/check HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def _take(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection and whether it was idle in the pool (True) or opened now (False)."""
        async with self.freed:
            while not self.idle and self.opened >= self.max:
                await self.freed.wait()
            if self.idle:
                return self.idle.pop(), True
            self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port), False
        except OSError:
            async with self.freed:
                self.opened -= 1
                self.freed.notify()
            raise

    async def _give(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        async with self.freed:
            if conn is None:
                self.opened -= 1
            else:
                self.idle.append(conn)
            self.freed.notify()

    async def post(self, body: dict[str, object]) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        request = self.head + str(len(data)).encode() + b"\r\n\r\n" + data
        conn, reused = await self._take()
        while True:
            try:
                conn[1].write(request)
                head = await conn[0].readuntil(b"\r\n\r\n")
                break
            except (OSError, asyncio.IncompleteReadError) as exc:
                conn[1].close()
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                if not reused or partial:
                    await self._give(None)
                    raise
                # the server closed an idle keep-alive connection before reading the request
                # (uvicorn's keep-alive timeout): send it once more on a fresh connection
                reused = False
                conn = await asyncio.open_connection(self.host, self.port)
        try:
            reader = conn[0]
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
        except BaseException:
            conn[1].close()
            await self._give(None)
            raise
        await self._give(conn)
        return status, payload

    async def close(self) -> None:
        for _r, w in self.idle:
            w.close()
        self.idle.clear()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] is the parent pid; utime, stime are fields[11], fields[12]
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _body(rnd: random.Random, ids: list[int], ref: str, as_of: str | None) -> dict[str, object]:
    body: dict[str, object] = {
        "customer_id": rnd.choice(ids),
        "amount": f"{rnd.randint(10, 5000)}.00",
        "currency": "EUR",
        "order_ref": ref,
    }
    if as_of:
        body["as_of"] = as_of
    return body


async def load(
    client: RawClient,
    ids: list[int],
    rate: float,
    seconds: float,
    as_of: str | None,
    seed: int,
) -> tuple[list[float], Counter[str], int]:
    """Open loop: request ``i`` is due at ``start + i / rate`` whatever happened before, and its
    latency counts from that scheduled time (queueing in the client or the server counts)."""
    rnd = random.Random(seed)
    total = int(rate * seconds)
    lat: list[float] = []
    decisions: Counter[str] = Counter()
    errors = 0

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            status, payload = await client.post(_body(rnd, ids, f"bench-{seed}-{i}", as_of))
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors += 1
            decisions[f"error: {type(exc).__name__}"] += 1
            return
        done = time.perf_counter()
        if status != 200:
            errors += 1
            decisions[f"error: HTTP {status} {payload[:200].decode(errors='replace')}"] += 1
            return
        decisions[json.loads(payload)["decision"]] += 1
        lat.append((done - scheduled) * 1000)

    start = time.perf_counter() + 0.2
    tasks = [asyncio.create_task(one(i, start + i / rate)) for i in range(total)]
    # bounded: whatever has not answered 30 s after the last send counts as a timeout
    _done, pending = await asyncio.wait(tasks, timeout=seconds + 30.0)
    for t in pending:
        t.cancel()
    errors += len(pending)
    return lat, decisions, errors


async def closed_loop(
    client: RawClient, ids: list[int], n: int, as_of: str | None, seed: int
) -> list[float]:
    """``n`` requests one after another: the service time of one check, without queueing."""
    rnd = random.Random(seed + 1)
    out: list[float] = []
    for i in range(n):
        body = _body(rnd, ids, f"closed-{seed}-{i}", as_of)
        t = time.perf_counter()
        status, _payload = await client.post(body)
        if status == 200:
            out.append((time.perf_counter() - t) * 1000)
    return out


async def run_phases(
    port: int, token: str, ids: list[int], args: argparse.Namespace, server_pid: int
) -> dict[str, object]:
    client = RawClient("127.0.0.1", port, token)
    try:
        for i in range(20):  # warm-up (not measured)
            await client.post(
                {"customer_id": ids[i % len(ids)], "amount": "1.00", "currency": "EUR"}
            )
        cpu0 = tree_cpu_seconds(server_pid)
        closed = await closed_loop(client, ids, args.closed, args.as_of, args.seed)
        cpu1, ccpu1 = tree_cpu_seconds(server_pid), time.process_time()
        lat, decisions, errors = await load(
            client, ids, args.rate, args.seconds, args.as_of, args.seed
        )
        cpu2, ccpu2 = tree_cpu_seconds(server_pid), time.process_time()
    finally:
        await client.close()
    n_open = max(1, len(lat) + errors)
    return {
        "closed": closed,
        "lat": lat,
        "decisions": decisions,
        "errors": errors,
        "server_cpu_ms_per_check_closed": round((cpu1 - cpu0) * 1000 / max(1, len(closed)), 2),
        "server_cpu_ms_per_check_open": round((cpu2 - cpu1) * 1000 / n_open, 2),
        "client_cpu_ms_per_check_open": round((ccpu2 - ccpu1) * 1000 / n_open, 3),
    }


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def _run(coro: Any) -> Any:
    """Run the client on uvloop when it is installed (cheaper per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


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
        "--http", default="auto", help="uvicorn --http (auto: httptools when installed)"
    )
    ap.add_argument("--loop", default="auto", help="uvicorn --loop (auto: uvloop when installed)")
    ap.add_argument(
        "--reset-checks",
        action="store_true",
        help="first delete the checks and reservations of earlier runs (same books every run)",
    )
    ap.add_argument(
        "--access-log",
        action="store_true",
        help="keep uvicorn's access log on (riskdesk serve's default; off here by default)",
    )
    ap.add_argument(
        "--closed",
        type=int,
        default=300,
        help="first send this many requests one at a time (service time)",
    )
    args = ap.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench_demo.db'}"
    ensure_demo(url, args.customers)
    if args.reset_checks:
        print(f"deleted {reset_checks(url)} order checks of earlier runs", file=sys.stderr)
    token, ids = token_and_customers(url)
    port = free_port()
    env = {**os.environ, "RISKDESK_DATABASE_URL": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "riskdesk.web.server:create_server_app",  # what `riskdesk serve` runs
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "info" if args.access_log else "warning",
            "--access-log" if args.access_log else "--no-access-log",
            "--workers",
            str(args.workers),
            "--http",
            args.http,
            "--loop",
            args.loop,
        ],
        env=env,
        cwd=str(ROOT),
        # the access log (one line per request at --log-level info) is written, then dropped
        stdout=subprocess.DEVNULL if args.access_log else None,
        stderr=subprocess.DEVNULL if args.access_log else None,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base)
        res = _run(run_phases(port, token, ids, args, server.pid))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    closed = cast(list[float], res["closed"])
    lat = cast(list[float], res["lat"])
    errors = cast(int, res["errors"])
    decisions = cast(Counter[str], res["decisions"])
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
        "server_cpu_ms_per_check": {
            "one_at_a_time": res["server_cpu_ms_per_check_closed"],
            "open_loop": res["server_cpu_ms_per_check_open"],
        },
        "client_cpu_ms_per_check": res["client_cpu_ms_per_check_open"],
        "server": f"uvicorn --http {args.http} --loop {args.loop} --workers {args.workers}"
        + (" (access log on)" if args.access_log else ""),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    print(
        f"p50 {out['p50_ms']} ms  p95 {out['p95_ms']} ms  p99 {out['p99_ms']} ms  "
        f"(target p99 ≤ 20 ms at {args.rate:.0f} req/s)"
    )


if __name__ == "__main__":
    main()
