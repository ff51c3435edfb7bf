"""Event sources: JSONL reading, NATS partitioning, and the worker crash test (SIGKILL mid-stream)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Engine, func, select

from riskdesk.analytics.frames import load_frames
from riskdesk.assess.features import CORE_STATE_FEATURES, core_state_features
from riskdesk.connectors.events import (
    AdaptiveFetch,
    decode_messages,
    delete_stream,
    durable_for,
    parse_partitions,
    partition_of,
    publish,
    read_jsonl,
    split_partitions,
)
from riskdesk.store import monitor_repo
from riskdesk.store.db import session_scope
from riskdesk.store.models import Customer, CustomerState, ProcessedEvent

NATS = os.environ.get("RISKDESK_TEST_NATS", "nats://127.0.0.1:4222")
RISKDESK = str(Path(sys.executable).with_name("riskdesk"))


def _history_module() -> ModuleType:
    name = "riskdesk_monitor_history"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "monitor" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _need_nats() -> None:
    """Skip when NATS is not running, but fail in CI, where the services must all be up."""
    if not _nats_up():
        if os.environ.get("RISKDESK_REQUIRE_SERVICES") == "1":
            pytest.fail("NATS is required in CI but not reachable on 127.0.0.1:4222")
        pytest.skip("NATS not reachable on 127.0.0.1:4222")


def _new_stream() -> tuple[str, str, str]:
    """A unique tag and the JetStream stream name and subject prefix of a test of its own."""
    tag = uuid.uuid4().hex[:10]
    return tag, f"RDTEST_{tag}", f"rdtest.{tag}"


def _nats_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=1):
            return True
    except OSError:
        return False


def test_partition_is_stable_and_spreads_customers() -> None:
    assert partition_of("MC0000001") == partition_of("MC0000001")
    parts = {partition_of(f"C{i}") for i in range(200)}
    assert parts == set(range(8))


def test_partition_lists_and_groups() -> None:
    assert parse_partitions("0-3") == [0, 1, 2, 3]
    assert parse_partitions("5, 1,3-4") == [1, 3, 4, 5]
    for bad in ("8", "3-1", "x", "", "-1"):
        with pytest.raises(ValueError):
            parse_partitions(bad)
    groups = split_partitions(3)
    assert sorted(p for g in groups for p in g) == list(range(8))  # disjoint and complete
    assert all(groups) and len(groups) == 3
    assert split_partitions(20) == [[p] for p in range(8)]
    assert durable_for("w", 4) == "w-p4"


def test_adaptive_fetch_grows_under_backlog_shrinks_when_idle_and_bounds_the_wait() -> None:
    f = AdaptiveFetch(batch=250, min_batch=20, max_wait=0.05)
    assert (f.size, f.wait) == (20, 0.05)  # a near-empty stream: small fetches
    sizes = []
    for _ in range(6):  # every fetch comes back full: a backlog builds
        f.update(f.size, 0.030)
        sizes.append(f.size)
    assert sizes == [40, 80, 160, 250, 250, 250]
    assert f.wait == 0.030  # once messages flow, wait about as long as the last batch took
    f.update(100, 0.2)  # neither full nor mostly empty: the size stays
    assert (f.size, f.wait) == (250, 0.05)  # the wait never exceeds max_wait
    f.update(10, 0.001)
    assert (f.size, f.wait) == (125, 0.002)  # mostly empty: halve; wait at least 2 ms
    for _ in range(10):
        f.update(0, 0.0)
    assert (f.size, f.wait) == (20, 0.05)  # idle: back to min_batch, poll every max_wait
    assert AdaptiveFetch(batch=10, min_batch=50, max_wait=0.05).size == 10  # min <= batch


def test_a_message_holds_one_event_or_an_array_of_events() -> None:
    class M:
        def __init__(self, data: bytes) -> None:
            self.data = data

    msgs = [M(b'{"event_id": "a"}'), M(b'[{"event_id": "b"}, {"event_id": "c"}]'), M(b"[]")]
    msgs += [M(b"{broken"), M(b"\xff"), M(b"[1]")]
    assert decode_messages(msgs) == [
        {"event_id": "a"},
        {"event_id": "b"},
        {"event_id": "c"},
        None,  # not JSON: rejected by intake as not an object
        None,  # not UTF-8
        1,  # an array's item that is no object is rejected as such too
    ]


def test_read_jsonl_reports_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text('{"a": 1}\n\n{broken\n', encoding="utf-8")
    items = list(read_jsonl(f))
    assert [(i.line, i.error is None) for i in items] == [(1, True), (3, False)]


def _processed(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)


@pytest.mark.slow
def test_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(
    engine: Engine, db_url: str
) -> None:
    _need_nats()
    hist = _history_module()
    h = hist.make_history(seed=23, n_customers=25)
    total = len(h.events)
    assert total > 400
    hist.write_customers(engine, h)
    hist.write_documents(engine, h.events)
    tag, stream, prefix = _new_stream()
    asyncio.run(publish(NATS, h.events, stream=stream, prefix=prefix))
    cmd = [
        RISKDESK,
        "--db",
        db_url,
        "worker",
        "--url",
        NATS,
        "--stream",
        stream,
        "--prefix",
        prefix,
        "--durable",
        f"w{tag}",
        "--batch",
        "10",
        "--tick-seconds",
        "0",
        "--ack-wait",
        "2",
    ]
    try:
        first = subprocess.Popen(
            cmd + ["--stop-when-idle", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while _processed(engine) < total // 4:
            assert first.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        done_at_kill = _processed(engine)
        assert 0 < done_at_kill < total  # really killed mid-stream
        second = subprocess.run(
            cmd + ["--stop-when-idle", "5", "--json"], capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stderr[-2000:]
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert _processed(engine) == total  # nothing lost
    with session_scope(engine) as s:
        counted = s.scalar(select(func.sum(CustomerState.events_count)))
        assert counted == total  # nothing applied twice
        monitor_repo.clock_tick(s, h.end)
    batch = core_state_features(load_frames(engine), h.end)
    with session_scope(engine) as s:
        ids = {c.external_id: c.id for c in s.scalars(select(Customer))}
        for row in s.scalars(select(CustomerState)):
            for name in CORE_STATE_FEATURES:
                want = float(batch.loc[ids[row.customer_ref], name])
                got = row.features[name]
                if math.isnan(want):
                    assert got is None, (row.customer_ref, name)
                else:
                    assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (row.customer_ref, name)


@pytest.mark.slow
def test_two_worker_processes_split_the_partitions_and_apply_everything_once(
    engine: Engine, db_url: str
) -> None:
    _need_nats()
    hist = _history_module()
    h = hist.make_history(seed=29, n_customers=20)
    total = len(h.events)
    hist.write_customers(engine, h)
    tag, stream, prefix = _new_stream()
    asyncio.run(publish(NATS, h.events, stream=stream, prefix=prefix))
    cmd = [RISKDESK, "--db", db_url, "worker", "--url", NATS, "--stream", stream]
    cmd += ["--prefix", prefix, "--durable", f"w{tag}", "--batch", "40", "--tick-seconds", "0"]
    try:
        run = subprocess.run(
            cmd + ["--processes", "2", "--stop-when-idle", "3", "--json"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        first = json.loads(run.stdout.strip().splitlines()[-1])
        assert (first["accepted"], first["duplicates"]) == (total, 0), first
        # replaying the stream through one all-partition consumer changes nothing
        again = subprocess.run(
            cmd + ["--stop-when-idle", "3", "--json"], capture_output=True, text=True, timeout=180
        )
        assert again.returncode == 0, again.stderr[-2000:]
        second = json.loads(again.stdout.strip().splitlines()[-1])
        assert (second["accepted"], second["duplicates"]) == (0, total), second
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert _processed(engine) == total
    with session_scope(engine) as s:
        assert s.scalar(select(func.sum(CustomerState.events_count))) == total


def test_a_batch_refused_as_stale_is_handed_back_and_applied_once_on_redelivery(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other writers kept changing the batch's customers (``StaleStateError``, nothing stored):
    the worker naks the messages instead of dying, JetStream redelivers them, and every event
    is applied exactly once."""
    _need_nats()
    from riskdesk.connectors.events import run_worker

    hist = _history_module()
    h = hist.make_history(seed=31, n_customers=5)
    total = len(h.events)
    hist.write_customers(engine, h)
    real = monitor_repo.ingest
    refused = {"n": 0}

    def stale_once(session, raws, **kw):  # type: ignore[no-untyped-def]
        if refused["n"] == 0:
            refused["n"] = len(raws)
            raise monitor_repo.StaleStateError("gave up after 5 tries (test)")
        return real(session, raws, **kw)

    monkeypatch.setattr(monitor_repo, "ingest", stale_once)
    tag, stream, prefix = _new_stream()
    asyncio.run(publish(NATS, h.events, stream=stream, prefix=prefix))
    try:
        stats = asyncio.run(
            run_worker(
                engine,
                NATS,
                stream=stream,
                prefix=prefix,
                durable=f"w{tag}",
                batch=50,
                tick_seconds=0,
                stop_when_idle=3,
                notify=False,
                log=lambda _m: None,
            )
        )
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert refused["n"] > 0 and stats.redelivered == refused["n"]
    assert (stats.accepted, stats.duplicates) == (total, 0)
    assert _processed(engine) == total
    with session_scope(engine) as s:
        assert s.scalar(select(func.sum(CustomerState.events_count))) == total


def test_ingest_file_sends_a_batch_refused_as_stale_again_and_gives_up_after_a_few_tries(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import riskdesk.connectors.events as ev_conn

    hist = _history_module()
    h = hist.make_history(seed=37, n_customers=3)
    hist.write_customers(engine, h)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in h.events), encoding="utf-8")
    real = monitor_repo.ingest
    calls = {"n": 0}

    def stale_first(session, raws, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise monitor_repo.StaleStateError("gave up after 5 tries (test)")
        return real(session, raws, **kw)

    monkeypatch.setattr(ev_conn.time, "sleep", lambda _s: None)
    monkeypatch.setattr(monitor_repo, "ingest", stale_first)
    out = ev_conn.ingest_file(engine, path, batch=10_000)
    assert (out["accepted"], out["duplicates"], calls["n"]) == (len(h.events), 0, 2)

    def always_stale(session, raws, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise monitor_repo.StaleStateError("gave up after 5 tries (test)")

    calls["n"] = 0
    monkeypatch.setattr(monitor_repo, "ingest", always_stale)
    with pytest.raises(monitor_repo.StaleStateError):
        ev_conn.ingest_file(engine, path, batch=10_000)
    assert calls["n"] == ev_conn.FILE_BATCH_ATTEMPTS
    assert _processed(engine) == len(h.events)  # the first run's events, nothing doubled


def test_events_published_several_per_message_are_applied_once(engine: Engine) -> None:
    """A producer's batch (a JSON array of one partition's events per message) is applied like
    the same events one per message; replaying the stream finds them all duplicates."""
    _need_nats()
    from riskdesk.connectors.events import run_worker

    hist = _history_module()
    h = hist.make_history(seed=41, n_customers=12)
    total = len(h.events)
    hist.write_customers(engine, h)
    tag, stream, prefix = _new_stream()
    assert (
        asyncio.run(publish(NATS, h.events, stream=stream, prefix=prefix, per_message=7)) == total
    )

    def consume(durable: str) -> tuple[int, int, int]:
        stats = asyncio.run(
            run_worker(
                engine,
                NATS,
                stream=stream,
                prefix=prefix,
                durable=durable,
                batch=20,  # fewer than a fetch's events: several transactions per fetch
                tick_seconds=0,
                stop_when_idle=2,
                notify=False,
                log=lambda _m: None,
            )
        )
        return stats.accepted, stats.duplicates, stats.rejected

    try:
        assert consume(f"w{tag}") == (total, 0, 0)
        assert consume(f"again{tag}") == (0, total, 0)
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert _processed(engine) == total
    with session_scope(engine) as s:
        assert s.scalar(select(func.sum(CustomerState.events_count))) == total
