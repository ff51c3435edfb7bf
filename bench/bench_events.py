"""Event intake benchmark: sustained events/s from intake to evaluated rules, p50/p99 latency.

    .venv/bin/python bench/bench_events.py [--events 50000] [--customers 2000] [--batch 500]
        [--db sqlite|postgresql|both] [--via direct,http,nats] [--procs 1] [--rate 0]

* ``direct``: ``monitor_repo.ingest`` batch by batch (one transaction each) — the core path.
  With ``--procs N``: N processes, each taking the customers of its share of the partitions.
* ``http``: ``POST /api/v1/events`` batches to ``riskdesk serve --workers N`` on 127.0.0.1
  from N client processes (one per partition share, so one customer's events are never in
  flight twice); each client encodes its batches before the clock starts. ``--http-conn
  pinned`` (default): one kept-alive connection per client, reconnected until the server
  process holding it is that client's own (read from /proc), so each process serves one share
  of the customers; ``keep``: one kept-alive connection per client wherever the kernel puts
  it (the server's workers rebalance them, as for any client); ``close``: a new connection
  per request (any process, any customer).
* ``nats``: the worker (``run_worker``; commit, then ack), N processes with ``--procs N``,
  each over its share of the partitions. ``--rate 0``: the events are published first and the
  workers drain the backlog (throughput; "latency" is then the time per batch). ``--rate R``:
  published at R events/s while the workers run; latency per event = commit of its batch −
  its publish. The load generator publishes pre-encoded messages with core NATS publishes
  (the stream stores them; ``Nats-Msg-Id`` header kept) and a flush every 10 ms.
  ``--per-message K``: K events of one partition per message (a JSON array, a producer's
  batch); the headline figures are K = 1. ``--stub-ingest``: the workers skip the intake,
  so the figures are those of the NATS path alone (fetch, decode, ack; server; publisher).

Latency: for ``direct`` the time of the batch (validation → state update → rules → commit),
for ``http`` the round trip of the request carrying the event (same, plus HTTP), for ``nats``
see above. Each run prints events/s (wall), p50/p99 in ms, and the CPU seconds of the intake
processes (``cpu_s``; for ``http`` the server's process tree, from /proc) with events per
CPU-second; ``nats`` runs also give the CPU microseconds per event of the workers, of
nats-server (from /proc: everything the server did meanwhile, other clients included) and of
the publisher (``--rate`` only), so the intake's cost shows apart from the load generator's.
PostgreSQL runs also give the server's CPU microseconds per event (``pg_server_us_per_event``,
from /proc: every PostgreSQL process, other clients included).
Loopback only; the databases are fresh (SQLite temp file; PostgreSQL database
``riskdesk_bench_monitor``). The timed events are 30 per customer over 300 days (``--days``),
so the customers' books stay small (a few open invoices and orders); ``--history H`` first ingests H
events per customer over the 180 days before them (untimed), so every customer starts with
the book of an active one (orders of the last 90 days, invoices paid in the last 180, some
left open), read from the database when the timed run first meets it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
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
import orjson
from sqlalchemy import text

from riskdesk.store.db import make_engine, migrate, session_scope
from riskdesk.store.models import Customer

PG_ADMIN = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
NATS = "nats://127.0.0.1:4222"


def make_events(
    n_events: int,
    n_customers: int,
    seed: int = 1,
    *,
    start: date = date(2026, 1, 1),
    days: int = 300,
    tag: str = "",
) -> list[dict[str, Any]]:
    """``n_events`` events of ``n_customers`` customers spread over ``days`` days from
    ``start`` (ids ``b<tag><n>``, documents ``O<tag><n>`` …)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    open_inv: dict[int, list[tuple[str, str]]] = {}
    n = 0
    while len(out) < n_events:
        c = rng.randrange(n_customers)
        cust = f"B{c:06d}"
        day = start + timedelta(days=len(out) * days // n_events)
        ts = f"{day.isoformat()}T{rng.randrange(24):02d}:00:00Z"
        n += 1
        i = f"{tag}{n}"
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


HISTORY_DAYS = 180


def history_events(per_customer: int, n_customers: int) -> list[dict[str, Any]]:
    """``per_customer`` events per customer over the 180 days before the timed events (the
    same mix): orders of the last 90 days, invoices paid in the last 180 and a few left open,
    as an active customer's book holds them."""
    start = date(2026, 1, 1) - timedelta(days=HISTORY_DAYS)
    return make_events(
        per_customer * n_customers, n_customers, seed=2, start=start, days=HISTORY_DAYS, tag="h"
    )


def load_history(url: str, events: list[dict[str, Any]]) -> None:
    """Ingest the history before the clock starts (one process, batches of 500)."""
    if not events:
        return
    from riskdesk.store import monitor_repo

    eng = make_engine(url)
    t0 = time.perf_counter()
    for i in range(0, len(events), 500):
        with session_scope(eng) as s:
            res = monitor_repo.ingest(s, events[i : i + 500])
            assert not res.rejected, res.rejected[:3]
    secs = time.perf_counter() - t0
    with eng.connect() as c:
        if eng.dialect.name == "postgresql":  # statistics, as autovacuum would gather them
            c.execute(text("ANALYZE"))
            c.commit()
        # the stored books the timed run starts from: the whole book (its settled invoices
        # are stored apart, in ``paid``) and the settled invoices, in characters of JSON
        book, paid = c.execute(
            text(
                "SELECT avg(length(book) + coalesce(length(paid), 0)), "
                "avg(coalesce(length(paid), 0)) FROM monitor_customer_state"
            )
        ).one()
    eng.dispose()
    print(
        f"history: {len(events)} events loaded in {secs:.1f} s; books of {float(book):,.0f} "
        f"characters on average, {float(paid):,.0f} of them settled invoices"
    )


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
    from riskdesk.store.monitor_repo import ensure_default_rules

    with session_scope(eng) as s:
        ensure_default_rules(s)  # before several intake processes start
        s.add_all(
            Customer(external_id=f"B{c:06d}", name=f"Bench {c}", currency="EUR")
            for c in range(n_customers)
        )
    if kind != "sqlite":
        # the customers' planner statistics, as a database in use has them (autovacuum
        # gathers them a while after a bulk load): without, PostgreSQL's generic plan for the
        # intake's prepared `external_id = ANY($1)` read of a batch's customers scanned the
        # whole table (≈ 4 ms a batch at 2,000 customers). The monitor's own tables are left
        # as they are: analysed while still empty, their generic plans would scan them too
        with eng.connect() as c:
            c.execute(text("ANALYZE customers"))
            c.commit()
    eng.dispose()
    return url


def _summary(
    name: str,
    n: int,
    secs: float,
    lat: list[float],
    batch: int,
    cpu: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    lat_ms = sorted(x * 1000 for x in lat)
    p = lambda q: lat_ms[min(len(lat_ms) - 1, int(q * len(lat_ms)))]  # noqa: E731
    out: dict[str, Any] = {
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
    out.update(extra)
    out["loadavg"] = open("/proc/loadavg").read().split()[0]
    print(out, flush=True)
    return out


def _groups(events: list[dict[str, Any]], procs: int) -> list[list[dict[str, Any]]]:
    """The events split by the NATS partitions of their customers into ``procs`` shares."""
    from riskdesk.connectors.events import partition_of, split_partitions

    share = {p: i for i, g in enumerate(split_partitions(procs)) for p in g}
    out: list[list[dict[str, Any]]] = [[] for _ in range(max(share.values()) + 1)]
    for e in events:
        out[share[partition_of(e["customer_id"])]].append(e)
    return out


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    kids: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(parts[1]), []).append(int(d))
        cpu[int(d)] = (int(parts[11]) + int(parts[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += kids.get(p, [])
    return total


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _pids_named(comm: str) -> list[int]:
    """The local processes whose command name is ``comm``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == comm:
                        out.append(int(d))
            except OSError:
                continue
    return out


def _nats_server_pids() -> list[int]:
    """The local nats-server processes (their CPU is reported separately)."""
    return _pids_named("nats-server")


def _pg_server_cpu() -> float:
    """CPU seconds of the local PostgreSQL server so far: its live processes (user + system)
    and, through the postmaster's counts of its reaped children, the backends that have
    exited (a run's connections may close before its end is measured)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = set(_pids_named("postgres"))
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(parts[11]) + int(parts[12])
        if int(parts[1]) not in pids:  # the postmaster: its waited-for children too
            total += int(parts[13]) + int(parts[14])
    return total / tick


def _with_pg_cpu(url: str, n: int, cpu0: float | None) -> dict[str, Any]:
    """The PostgreSQL server's CPU microseconds per event since ``cpu0`` (PostgreSQL runs)."""
    if cpu0 is None:
        return {}
    return {"pg_server_us_per_event": round((_pg_server_cpu() - cpu0) / n * 1e6, 1)}


def _direct_child(url: str, events: list[dict[str, Any]], batch: int, go: Any, q: Any) -> None:
    from riskdesk.connectors.events import tune_gc_for_worker
    from riskdesk.store import monitor_repo

    tune_gc_for_worker()  # as the dedicated intake processes do (worker, events ingest)
    eng = make_engine(url)
    lat: list[float] = []
    go.wait()
    t0 = time.time()
    c0 = time.process_time()
    try:
        for i in range(0, len(events), batch):
            b0 = time.perf_counter()
            with session_scope(eng) as s:
                res = monitor_repo.ingest(s, events[i : i + batch])
                assert not res.rejected, res.rejected[:3]
            lat.append(time.perf_counter() - b0)
    except Exception as exc:  # report it instead of leaving the parent waiting
        q.put({"error": repr(exc)})
        return
    q.put({"lat": lat, "cpu": time.process_time() - c0, "t0": t0, "t1": time.time()})
    eng.dispose()


def _run_children(target: Any, args_per_child: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=target, args=(*a, go, q)) for a in args_per_child]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let them import
    go.set()
    out = [q.get() for _ in procs]
    for p in procs:
        p.join()
    bad = [r["error"] for r in out if "error" in r]
    if bad:
        raise RuntimeError(bad[0])
    return out


def run_direct(
    url: str, events: list[dict[str, Any]], batch: int, procs: int = 1
) -> dict[str, Any]:
    pg0 = _pg_server_cpu() if url.startswith("postgresql") else None
    res = _run_children(_direct_child, [(url, g, batch) for g in _groups(events, procs)])
    secs = max(r["t1"] for r in res) - min(r["t0"] for r in res)
    lat = [x for r in res for x in r["lat"]]
    cpu = sum(r["cpu"] for r in res)
    return _summary(
        f"direct/{url.split(':')[0]}",
        len(events),
        secs,
        lat,
        batch,
        cpu,
        procs=procs,
        **_with_pg_cpu(url, len(events), pg0),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_pid_of(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server end of the loopback connection from
    ``client_port`` (its socket inode in /proc/net/tcp, then the process's fds)."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if (
                int(cols[1].split(":")[1], 16) == server_port
                and int(cols[2].split(":")[1], 16) == client_port
            ):
                inode = cols[9]
    if inode is None:
        return None
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def _http_child(
    port: int,
    token: str,
    events: list[dict[str, Any]],
    batch: int,
    conn: str,
    pin: tuple[int, list[int]] | None,
    go: Any,
    q: Any,
) -> None:
    bodies = [orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if conn == "close":
        # a new connection per request: the kernel spreads the requests over the server
        # processes (and every process then sees every customer)
        headers["Connection"] = "close"
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=headers)
    for _ in range(200):
        r = client.get("/api/v1/rules")
        r.raise_for_status()
        if conn in ("close", "keep") or pin is None:
            break
        # pinned: reconnect until this client's kept-alive connection is served by its own
        # server process (both clients' connections could land on one uvicorn process: seen
        # 9 vs 3 CPU s per process and 4,509 vs 6,464 events/s between runs)
        try:
            local = r.extensions["network_stream"].get_extra_info("client_addr")[1]
        except OSError:  # the server closed it (its workers rebalance connections)
            local = None
        if local is not None and _server_pid_of(port, local, pin[1]) == pin[0]:
            break
        client.close()
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers=headers)
    else:
        q.put({"error": "could not reach the server process this client is pinned to"})
        return
    lat: list[float] = []
    go.wait()
    t0 = time.time()
    try:
        for body in bodies:
            b0 = time.perf_counter()
            r = client.post("/api/v1/events", content=body)
            r.raise_for_status()
            lat.append(time.perf_counter() - b0)
    except Exception as exc:
        q.put({"error": repr(exc)})
        return
    q.put({"lat": lat, "t0": t0, "t1": time.time()})


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


def _server_workers(pid: int, n: int) -> list[int]:
    """The uvicorn worker processes of the server ``pid`` (itself when it serves alone)."""
    if n <= 1:
        return [pid]
    for _ in range(100):
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = sorted(int(x) for x in f.read().split())
        # not multiprocessing's resource tracker
        kids = [k for k in kids if "--multiprocessing-fork" in _cmdline(k)]
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise RuntimeError("the server's worker processes did not start")


def _wait_serving(port: int, workers: list[int]) -> None:
    """Until each server process has answered a request (a worker still starting would leave
    the first seconds of the run to the others)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while seen != set(workers) and time.monotonic() < deadline:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            r = c.get("/api/v1/health")
            try:
                local = r.extensions["network_stream"].get_extra_info("client_addr")[1]
            except OSError:
                continue
            pid = _server_pid_of(port, local, workers)
            if pid is not None:
                seen.add(pid)


def run_http(
    url: str,
    events: list[dict[str, Any]],
    batch: int,
    procs: int = 1,
    conn: str = "pinned",
) -> dict[str, Any]:
    from riskdesk.store.users import add_user, create_token

    eng = make_engine(url)
    with session_scope(eng) as s:
        name = f"bench{uuid.uuid4().hex[:6]}"
        add_user(s, name, "risk_manager", "bench-password")
        token = create_token(s, name).token
    eng.dispose()
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "riskdesk")
    server = subprocess.Popen(
        [exe, "--db", url, "serve", "--port", str(port), "--workers", str(procs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # uvicorn's access log
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            for _ in range(600):
                try:
                    c.get("/api/v1/health")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
        time.sleep(1.0)
        cpu0 = _tree_cpu(server.pid)
        pg0 = _pg_server_cpu() if url.startswith("postgresql") else None
        workers = _server_workers(server.pid, procs)
        _wait_serving(port, workers)
        res = _run_children(
            _http_child,
            [
                (port, token, g, batch, conn, (workers[i % len(workers)], workers))
                for i, g in enumerate(_groups(events, procs))
            ],
        )
        cpu = _tree_cpu(server.pid) - cpu0
        pg_cpu = _with_pg_cpu(url, len(events), pg0)
    finally:
        server.terminate()
        server.wait(20)
    secs = max(r["t1"] for r in res) - min(r["t0"] for r in res)
    lat = [x for r in res for x in r["lat"]]
    return _summary(
        f"http/{url.split(':')[0]}",
        len(events),
        secs,
        lat,
        batch,
        cpu,
        procs=procs,
        conn=conn,
        **pg_cpu,
    )


def _nats_child(
    url: str,
    stream: str,
    prefix: str,
    tag: str,
    group: list[int],
    n: int,
    batch: int,
    min_batch: int,
    stub_ingest: bool,
    go: Any,
    q: Any,
) -> None:
    from riskdesk.connectors import events as ev

    ev.tune_gc_for_worker()  # as riskdesk worker does
    if stub_ingest:  # the NATS path alone: every event counted as accepted, nothing stored
        from riskdesk.store import monitor_repo

        def no_intake(_session: Any, raws: list[Any], **_kw: Any) -> Any:
            return monitor_repo.IngestResult(accepted=len(raws))

        monitor_repo.ingest = no_intake  # type: ignore[assignment]
    eng = make_engine(url)
    commits: list[tuple[float, float, list[str]]] = []
    last = [0.0]

    def on_batch(stats: Any) -> None:
        now = time.time()
        commits.append((now, now - last[0], list(stats.last_ids)))
        last[0] = now

    go.wait()
    last[0] = time.time()
    t0 = last[0]
    c0 = time.process_time()
    stats = asyncio.run(
        ev.run_worker(
            eng,
            NATS,
            stream=stream,
            prefix=prefix,
            durable=f"b{tag}",
            batch=batch,
            min_batch=min_batch,
            tick_seconds=0,
            max_events=n,
            notify=False,
            on_batch=on_batch,
            partitions=group if len(group) < ev.DEFAULT_PARTITIONS else None,  # all: one consumer
        )
    )
    q.put(
        {
            "commits": commits,
            "cpu": time.process_time() - c0,
            "t0": t0,
            "accepted": stats.accepted,
        }
    )
    eng.dispose()


Encoded = list[tuple[str, bytes, dict[str, str], list[str], bytes]]
"""Per message: subject, JSON body, headers, event ids, and the whole HPUB protocol frame."""


def _encode_for_nats(events: list[dict[str, Any]], prefix: str, per_message: int) -> Encoded:
    """Each message's subject, JSON body, ``Nats-Msg-Id`` header, event ids and protocol frame,
    made before the clock starts (the load generator should cost as little as a real
    producer's send)."""
    from riskdesk.connectors.events import DEFAULT_PARTITIONS, encode_messages

    out = []
    for subject, body, msg_id in encode_messages(events, prefix, DEFAULT_PARTITIONS, per_message):
        ids = [msg_id] if per_message == 1 else [e["event_id"] for e in orjson.loads(body)]
        hdr = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id.encode()
        frame = b"HPUB %s %d %d\r\n%s%s\r\n" % (
            subject.encode(),
            len(hdr),
            len(hdr) + len(body),
            hdr,
            body,
        )
        out.append((subject, body, {"Nats-Msg-Id": msg_id}, ids, frame))
    return out


class _RawPublisher:
    """The load generator's connection when ``--publisher raw``: writes pre-encoded HPUB frames
    (the NATS protocol, headers included) on one socket, a chunk per write, and ``flush`` is a
    PING answered by PONG, as in nats-py. It costs ≈ 1 µs per message instead of nats-py's
    ≈ 5–7 (a producer in Go or Rust costs about that too); what the server receives is the
    same."""

    def __init__(self) -> None:
        self._pongs: asyncio.Queue[bytes] = asyncio.Queue()

    async def connect(self, url: str) -> None:
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        self._r, self._w = await asyncio.open_connection(host, int(port))
        await self._r.readline()  # INFO
        opts = {"verbose": False, "pedantic": False, "headers": True, "lang": "bench"}
        self._w.write(b"CONNECT " + orjson.dumps(opts) + b"\r\n")
        self._reader = asyncio.create_task(self._read())
        await self.flush()

    async def _read(self) -> None:
        while line := await self._r.readline():
            if line.startswith(b"PING"):
                self._w.write(b"PONG\r\n")
            elif line.startswith((b"PONG", b"-ERR")):
                self._pongs.put_nowait(line)

    def write(self, frames: list[bytes]) -> None:
        self._w.write(b"".join(frames))

    async def flush(self) -> None:
        self._w.write(b"PING\r\n")
        line = await asyncio.wait_for(self._pongs.get(), 10)
        if not line.startswith(b"PONG"):
            raise RuntimeError(f"NATS refused the load generator's publish: {line!r}")

    async def close(self) -> None:
        self._reader.cancel()
        self._w.close()


async def _publish_paced(
    msgs: Encoded, stream: str, rate: float, publisher: str = "raw"
) -> list[tuple[int, float]]:
    """Publish ``msgs`` at ``rate`` events per second, a chunk every 10 ms, with nats-py
    (``publisher="client"``) or pre-encoded frames on a plain socket (``"raw"``); returns the
    first message and the wall-clock start of each chunk."""
    import nats

    nc = await nats.connect(NATS)
    js = nc.jetstream()
    raw = _RawPublisher() if publisher == "raw" else None
    if raw:
        await raw.connect(NATS)
    per_chunk = max(1, int(rate / 100))  # events per chunk: 100 chunks per second
    starts: list[tuple[int, float]] = []  # (first message, wall-clock start) of each chunk
    t0 = time.perf_counter()
    i = events = 0
    while i < len(msgs):
        due = t0 + events / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        starts.append((i, time.time()))
        # plain NATS publishes into the stream's subjects (the stream stores them, and drops a
        # repeated Nats-Msg-Id; no per-message PubAck round trip, which cost the publisher more
        # CPU than the intake)
        first, in_chunk = i, 0
        while i < len(msgs) and in_chunk < per_chunk:
            in_chunk += len(msgs[i][3])
            i += 1
        if raw:
            raw.write([m[4] for m in msgs[first:i]])
            await raw.flush()
        else:
            for subject, body, headers, _, _ in msgs[first:i]:
                await nc.publish(subject, body, headers=headers)
            await nc.flush()
        events += in_chunk
    await js.stream_info(stream)  # everything stored before we stop
    if raw:
        await raw.close()
    await nc.close()
    return starts


def _sent_times(msgs: Encoded, starts: list[tuple[int, float]]) -> dict[str, float]:
    """Each event's publish time: the start of the chunk its message went out in."""
    sent: dict[str, float] = {}
    bounds = [*(s[0] for s in starts[1:]), len(msgs)]
    for (first, at), end in zip(starts, bounds, strict=True):
        for m in msgs[first:end]:
            sent.update(dict.fromkeys(m[3], at))
    return sent


def run_nats(
    url: str,
    events: list[dict[str, Any]],
    batch: int,
    procs: int = 1,
    rate: float = 0,
    min_batch: int = 20,
    per_message: int = 1,
    publisher: str = "raw",
    stub_ingest: bool = False,
) -> dict[str, Any]:
    from riskdesk.connectors import events as ev
    from riskdesk.connectors.events import split_partitions

    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"RDBENCH_{tag}", f"rdbench.{tag}"
    groups = split_partitions(procs)
    shares = _groups(events, procs)
    if not rate:
        asyncio.run(ev.publish(NATS, events, stream=stream, prefix=prefix, per_message=per_message))
    else:
        asyncio.run(ev.publish(NATS, [], stream=stream, prefix=prefix))  # create the stream
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    go = ctx.Event()
    kids = [
        ctx.Process(
            target=_nats_child,
            args=(url, stream, prefix, tag, g, len(sh), batch, min_batch, stub_ingest, go, q),
        )
        for g, sh in zip(groups, shares, strict=True)
    ]
    sent: dict[str, float] = {}
    nats_pids = _nats_server_pids()
    encoded = _encode_for_nats(events, prefix, per_message) if rate else []
    pub_cpu = 0.0
    try:
        for k in kids:
            k.start()
        time.sleep(2.0)
        nats0 = sum(_proc_cpu(p) for p in nats_pids)
        pg0 = _pg_server_cpu() if url.startswith("postgresql") else None
        go.set()
        t_pub = time.time()
        if rate:
            c0 = time.process_time()
            starts = asyncio.run(_publish_paced(encoded, stream, rate, publisher))
            pub_cpu = time.process_time() - c0
            sent = _sent_times(encoded, starts)
        res = [q.get() for _ in kids]
        nats_cpu = sum(_proc_cpu(p) for p in nats_pids) - nats0
        pg_cpu = _with_pg_cpu(url, len(events), pg0)
        for k in kids:
            k.join()
    finally:
        asyncio.run(ev.delete_stream(NATS, stream))
    accepted = sum(r["accepted"] for r in res)
    assert accepted == len(events), accepted
    end = max(c[0] for r in res for c in r["commits"])
    cpu = sum(r["cpu"] for r in res)
    steady: dict[str, Any] = {}
    if rate:
        lat = [t - sent[i] for r in res for t, _, ids in r["commits"] for i in ids if i in sent]
        secs = end - t_pub
        kind = "per event: publish -> commit"
        # the workers start cold (their first batches load the books of the customers they
        # meet), which builds a backlog; also the latency of the events published after 2 s
        warm = sorted(
            (t - sent[i]) * 1000
            for r in res
            for t, _, ids in r["commits"]
            for i in ids
            if i in sent and sent[i] >= t_pub + 2.0
        )
        if warm:
            steady = {
                "after_2s_p50_ms": round(warm[len(warm) // 2], 1),
                "after_2s_p99_ms": round(warm[min(len(warm) - 1, int(0.99 * len(warm)))], 1),
            }
    else:
        lat = [d for r in res for _, d, _ in r["commits"]]
        secs = end - min(r["t0"] for r in res)
        kind = "per batch (backlog drain)"
    return _summary(
        f"nats/{url.split(':')[0]}",
        len(events),
        secs,
        lat,
        batch,
        cpu,
        procs=procs,
        rate=rate or None,
        min_batch=min_batch,
        per_message=per_message,
        publisher=publisher if rate else None,
        stub_ingest=stub_ingest or None,
        latency=kind,
        **steady,
        # the workers' transactions: small batches at moderate rates cost CPU per event
        batches=sum(len(r["commits"]) for r in res),
        # CPU microseconds per event of each party (the nats-server figure counts everything
        # the server did meanwhile, other clients included)
        worker_us_per_event=round(cpu * 1e6 / len(events), 1),
        nats_server_us_per_event=round(nats_cpu * 1e6 / len(events), 1) if nats_pids else None,
        publisher_us_per_event=round(pub_cpu * 1e6 / len(events), 1) if rate else None,
        **pg_cpu,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--db", default="both")
    ap.add_argument("--via", default="direct,http,nats")
    ap.add_argument("--procs", type=int, default=1, help="intake processes (and HTTP clients)")
    ap.add_argument("--rate", type=float, default=0, help="NATS: publish at this rate (0: first)")
    ap.add_argument("--min-batch", type=int, default=20, help="NATS: the worker's smallest fetch")
    ap.add_argument(
        "--per-message",
        type=int,
        default=1,
        help="NATS: events per message (>1: JSON arrays of one partition's events, a "
        "producer's batch; the headline figures are 1)",
    )
    ap.add_argument(
        "--http-conn",
        choices=["pinned", "keep", "close"],
        default="pinned",
        help="HTTP: one kept-alive connection per client, each served by its own server "
        "process (pinned) or wherever the server balances it (keep), or a new connection per "
        "request (close)",
    )
    ap.add_argument(
        "--publisher",
        choices=["raw", "client"],
        default="raw",
        help="NATS --rate: the load generator writes pre-encoded protocol frames on a socket "
        "(raw) or publishes with nats-py (client)",
    )
    ap.add_argument(
        "--stub-ingest",
        action="store_true",
        help="NATS: the workers skip the intake (each event counted as accepted, nothing "
        "stored), to measure the NATS path alone (worker, server, publisher)",
    )
    ap.add_argument(
        "--history",
        type=int,
        default=0,
        help="events per customer ingested before the timed run, over the 180 days before "
        "it (customers with a book: orders, paid and open invoices); 0: none",
    )
    ap.add_argument(
        "--days",
        type=int,
        default=300,
        help="the days the timed events span (default 300: with 30 events per customer each "
        "event also moves its customer's book about 10 days on; 30: one event per customer a "
        "day, as daily traffic does)",
    )
    a = ap.parse_args()
    events = make_events(a.events, a.customers, days=a.days)
    history = history_events(a.history, a.customers) if a.history else []
    kinds = ["sqlite", "postgresql"] if a.db == "both" else [a.db]
    for kind in kinds:
        for via in a.via.split(","):
            url = fresh_db(kind, a.customers)
            load_history(url, history)
            if via == "direct":
                run_direct(url, events, a.batch, a.procs)
            elif via == "http":
                run_http(url, events, a.batch, a.procs, a.http_conn)
            else:
                run_nats(
                    url,
                    events,
                    a.batch,
                    a.procs,
                    a.rate,
                    a.min_batch,
                    a.per_message,
                    a.publisher,
                    a.stub_ingest,
                )


if __name__ == "__main__":
    main()
