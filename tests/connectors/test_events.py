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
from typing import Any

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
    run_worker,
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


def _worker(engine: Engine, stream: str, prefix: str, durable: str, **kw: Any) -> Any:
    """``run_worker`` on the test's own stream, without the clock, notifications or log."""
    return run_worker(
        engine,
        NATS,
        stream=stream,
        prefix=prefix,
        durable=durable,
        tick_seconds=0,
        notify=False,
        log=lambda _m: None,
        **kw,
    )


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
    g = AdaptiveFetch(batch=250, min_batch=20, max_wait=0.05, min_wait=0.01)
    g.update(30, 0.001)
    assert g.wait == 0.01  # a quick batch: the next one gathers for at least min_wait
    g.update(30, 0.03)
    assert g.wait == 0.03


def test_a_message_holds_one_event_or_an_array_of_events() -> None:
    msgs = [b'{"event_id": "a"}', b'[{"event_id": "b"}, {"event_id": "c"}]', b"[]"]
    msgs += [b"{broken", b"\xff", b"[1]"]
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
            cmd + ["--stop-when-idle", "3", "--min-wait", "0.002", "--json"],
            capture_output=True,
            text=True,
            timeout=180,
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
        stats = asyncio.run(_worker(engine, stream, prefix, f"w{tag}", batch=50, stop_when_idle=3))
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
            # batch: fewer than a fetch's events, so several transactions per fetch
            _worker(engine, stream, prefix, durable, batch=20, stop_when_idle=2)
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


def test_a_fetch_takes_about_a_batch_of_events_when_messages_carry_arrays(
    engine: Engine,
) -> None:
    """``batch`` counts events: when messages carry a producer's batch of events, a fetch
    takes about ``batch`` events' worth of messages (as many as the last batch's messages
    held per message), not ``batch`` messages — ten times the events, acknowledged only once
    all of them were committed, which made each event wait for the whole fetch."""
    _need_nats()

    hist = _history_module()
    h = hist.make_history(seed=43, n_customers=16)
    total = len(h.events)
    hist.write_customers(engine, h)
    tag, stream, prefix = _new_stream()
    asyncio.run(publish(NATS, h.events, stream=stream, prefix=prefix, per_message=10))
    sizes: list[int] = []
    try:
        stats = asyncio.run(
            _worker(
                engine,
                stream,
                prefix,
                f"w{tag}",
                batch=20,
                min_batch=20,
                stop_when_idle=2,
                on_batch=lambda st: sizes.append(len(st.last_ids)),
            )
        )
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert (stats.accepted, stats.duplicates, stats.rejected) == (total, 0, 0)
    assert sum(sizes) == total and len(sizes) >= 6, sizes
    # the first fetch knows no message sizes yet (up to 20 messages); the later ones ask for
    # about two messages of up to 10 events (more when the last batch held short ones, the
    # tail of a partition)
    assert max(sizes[1:]) <= 40, sizes


def test_an_event_with_a_nul_character_is_rejected_and_the_worker_goes_on(engine: Engine) -> None:
    """A message whose event holds a NUL character (which PostgreSQL cannot store) is rejected
    as that event and acknowledged; the others are applied. Before, the batch's write failed
    on PostgreSQL and took the worker down, on every redelivery."""
    _need_nats()

    hist = _history_module()
    h = hist.make_history(seed=43, n_customers=4)
    hist.write_customers(engine, h)
    good = h.events[:30]
    bad = {**good[0], "event_id": "nul\x00id"}
    tag, stream, prefix = _new_stream()
    assert asyncio.run(publish(NATS, [bad, *good], stream=stream, prefix=prefix)) == 31
    try:
        stats = asyncio.run(_worker(engine, stream, prefix, f"w{tag}", batch=50, stop_when_idle=2))
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert (stats.accepted, stats.duplicates, stats.rejected) == (30, 0, 1)
    assert _processed(engine) == 30


class _FakeConnection:
    """What the fast parser and the puller's writes use of a nats-py connection."""

    def __init__(self) -> None:
        from nats.protocol.parser import Parser

        self._ps = Parser(self)
        self.slow: list[tuple[int, bytes, bytes, bytes, bytes | None]] = []
        self.pings = 0
        self.sent: list[bytes] = []
        self.requests: list[tuple[str, bytes, str]] = []
        self.is_closed = False
        self._flush_queue: asyncio.Queue[Any] | None = None

        self.callbacks: dict[int, Any] = {}  # sid -> subscription callback

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None
    ) -> None:
        """As nats-py's: a message for a subscription with a callback becomes a ``Msg`` with
        its headers parsed, handed to the callback; others are recorded."""
        from nats.aio.client import Client
        from nats.aio.msg import Msg

        cb = self.callbacks.get(sid)
        if cb is None:
            self.slow.append((sid, bytes(subject), bytes(reply), data, hdr))
            return
        headers = await Client._process_headers(self, hdr)  # type: ignore[arg-type]
        await cb(Msg(self, bytes(subject).decode(), bytes(reply).decode(), data, headers))

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        from nats.aio.client import Client

        return Client._parse_header_lines(raw)

    async def _error_cb(self, exc: Exception) -> None:
        raise exc

    async def _process_ping(self) -> None:
        self.pings += 1

    async def publish(self, subject: str, payload: bytes, reply: str) -> None:
        self.requests.append((subject, payload, reply))

    async def _send_command(self, cmd: bytes) -> None:
        self.sent.append(cmd)

    async def _flush_pending(self) -> None:
        pass


def _hmsg(subject: bytes, sid: int, reply: bytes, hdr: bytes, body: bytes) -> bytes:
    head = b"HMSG %s %d %s%d %d\r\n" % (
        subject,
        sid,
        reply + b" " if reply else b"",
        len(hdr),
        len(hdr) + len(body),
    )
    return head + hdr + body + b"\r\n"


def test_the_fast_parser_hands_over_its_subscriptions_messages_and_leaves_the_rest() -> None:
    from nats.errors import ProtocolError

    from riskdesk.connectors.events import _install_fast_parser, _via_msg

    nc = _FakeConnection()
    got: list[tuple[bytes, bytes | None, bytes]] = []

    def on_msg(reply: bytes, status: bytes | None, body: bytes) -> None:
        got.append((reply, status, body))

    # what nats-py's own parser meets (here: after a PING in the same read) reaches the same
    # handler through the subscription's callback
    nc.callbacks[7] = _via_msg(on_msg)
    parser = _install_fast_parser(nc, {7: on_msg})
    stored = b"NATS/1.0\r\nNats-Msg-Id: e1\r\n\r\n"
    stream = b"".join(
        [
            _hmsg(b"ev.3", 7, b"$JS.ACK.S.C.1.1.1.1.0", stored, b'{"event_id":"e1"}'),
            b"MSG ev.3 7 $JS.ACK.S.C.1.2.2.1.0 2\r\n{}\r\n",  # a message without headers
            _hmsg(b"_INBOX.x.0", 7, b"", b"NATS/1.0 404 No Messages\r\n\r\n", b""),
            _hmsg(b"other", 9, b"rep", stored, b"[1]"),  # another subscription's
            b"PING\r\n",  # left to nats-py's parser, with what follows in the same read
            _hmsg(b"ev.3", 7, b"$JS.ACK.S.C.1.3.3.1.0", stored, b'{"event_id":"e3"}'),
        ]
    )

    async def feed(parts: list[bytes]) -> None:
        for part in parts:
            await parser.parse(part)

    # whole, then cut at every tenth byte (messages split across reads)
    for parts in ([stream], [stream[i : i + 10] for i in range(0, len(stream), 10)]):
        got.clear()
        nc.slow.clear()
        asyncio.run(feed(parts))
        assert [(r, st) for r, st, _ in got] == [
            (b"$JS.ACK.S.C.1.1.1.1.0", None),
            (b"$JS.ACK.S.C.1.2.2.1.0", None),
            (b"", b"404"),
            (b"$JS.ACK.S.C.1.3.3.1.0", None),
        ]
        assert [b for _, _, b in got] == [b'{"event_id":"e1"}', b"{}", b"", b'{"event_id":"e3"}']
        assert nc.slow == [(9, b"other", b"rep", b"[1]", stored)]
        assert not parser.buf
    assert nc.pings == 2
    with pytest.raises(ProtocolError):
        asyncio.run(parser.parse(b"HMSG ev.3 7 x y\r\n"))


def test_acks_and_naks_are_written_together_one_frame_per_message() -> None:
    from riskdesk.connectors.events import _Puller

    nc = _FakeConnection()
    nc.new_inbox = lambda: "_INBOX.t"  # type: ignore[attr-defined]
    puller = _Puller(nc, "S", ["c"], ahead=10)
    asyncio.run(puller.ack([b"$JS.ACK.a", b"$JS.ACK.b"]))
    asyncio.run(puller.ack([]))
    asyncio.run(puller.nak([b"$JS.ACK.c"], delay=0.2))
    asyncio.run(puller.nak([b"$JS.ACK.d"]))
    assert nc.sent == [
        b"PUB $JS.ACK.a 0\r\n\r\nPUB $JS.ACK.b 0\r\n\r\n",  # what Msg.ack sends
        b'PUB $JS.ACK.c 24\r\n-NAK {"delay":200000000}\r\n',
        b"PUB $JS.ACK.d 4\r\n-NAK\r\n",
    ]
    nc.is_closed = True
    from nats.errors import ConnectionClosedError

    with pytest.raises(ConnectionClosedError):
        asyncio.run(puller.ack([b"$JS.ACK.e"]))


def test_a_running_worker_takes_events_as_they_come_and_renews_its_pull_requests(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events published while the worker runs (a trickle, with pauses longer than a pull
    request lasts) are all applied once, each soon after its publish: the standing pull
    requests deliver them as they are stored and are renewed when they expire."""
    _need_nats()
    from riskdesk.connectors import events as ev

    # requests of 0.3 s, renewed after 0.21 s at the worker's next wake-up (the pauses are
    # longer, so some expire first: with or without the server's 408, a new one follows)
    monkeypatch.setattr(ev._Puller, "REQUEST_SECONDS", 0.3)
    hist = _history_module()
    h = hist.make_history(seed=43, n_customers=6)
    events = h.events[:120]
    hist.write_customers(engine, h)
    tag, stream, prefix = _new_stream()
    asyncio.run(publish(NATS, [], stream=stream, prefix=prefix))  # the stream, empty
    sent: dict[str, float] = {}
    applied: dict[str, float] = {}

    def on_batch(stats: ev.WorkerStats) -> None:
        now = time.monotonic()
        applied.update(dict.fromkeys(stats.last_ids, now))

    async def producer() -> None:
        import nats

        nc = await nats.connect(NATS)
        try:
            js = nc.jetstream()
            for i in range(0, len(events), 20):
                await asyncio.sleep(0.8 if i in (40, 80) else 0.05)  # longer than a request
                for e in events[i : i + 20]:
                    sent[e["event_id"]] = time.monotonic()
                    subject = ev.subject_for(e["customer_id"], prefix)
                    await js.publish(subject, json.dumps(e).encode())
        finally:
            await nc.close()

    async def both() -> ev.WorkerStats:
        worker = asyncio.ensure_future(
            _worker(
                engine,
                stream,
                prefix,
                f"w{tag}",
                batch=50,
                max_events=len(events),
                on_batch=on_batch,
            )
        )
        await producer()
        return await asyncio.wait_for(worker, 60)

    try:
        stats = asyncio.run(both())
    finally:
        asyncio.run(delete_stream(NATS, stream))
    assert (stats.accepted, stats.duplicates, stats.redelivered) == (len(events), 0, 0)
    assert set(applied) == set(sent)
    # no event waited for a new request after one expired
    assert max(applied[i] - sent[i] for i in sent) < 3.0
    assert _processed(engine) == len(events)


def test_each_consumer_keeps_one_standing_pull_request_renewed_when_it_is_over() -> None:
    from riskdesk.connectors.events import _Puller

    nc = _FakeConnection()
    nc.new_inbox = lambda: "_INBOX.t"  # type: ignore[attr-defined]
    puller = _Puller(nc, "S", ["c0", "c1"], ahead=3)
    handlers = [puller._handler(0), puller._handler(1)]
    asyncio.run(puller._request(limit=10))
    req = b'{"batch":3,"expires":%d}' % int(puller.REQUEST_SECONDS * 1e9)
    assert nc.requests == [
        ("$JS.API.CONSUMER.MSG.NEXT.S.c0", req, "_INBOX.t.0"),
        ("$JS.API.CONSUMER.MSG.NEXT.S.c1", req, "_INBOX.t.1"),
    ]
    nc.requests.clear()
    handlers[0](b"r1", None, b"{}")
    handlers[0](b"r2", None, b"{}")
    handlers[1](b"", b"100", b"")  # a heartbeat ends nothing
    asyncio.run(puller._request(limit=10))
    assert nc.requests == []  # both still open
    handlers[0](b"r3", None, b"{}")  # c0's request delivered its count
    handlers[1](b"", b"408", b"")  # c1's expired
    asyncio.run(puller._request(limit=10))
    assert [r[0][-2:] for r in nc.requests] == ["c0", "c1"]
    nc.requests.clear()
    puller.reset()  # after a reconnect
    asyncio.run(puller._request(limit=3))  # three messages held already: none asked for
    assert nc.requests == []
    bodies, replies = asyncio.run(puller.fetch(size=1, wait=0.01, limit=2, idle=0.01))
    assert (bodies, replies) == ([b"{}", b"{}"], [b"r1", b"r2"])  # at once, up to limit
    assert nc.requests == []
    bodies, replies = asyncio.run(puller.fetch(size=1, wait=0.01, limit=2, idle=0.01))
    assert (bodies, replies) == ([b"{}"], [b"r3"])
    assert len(nc.requests) == 2  # fewer than the limit held again: both asked anew
    puller.REQUEST_SECONDS = 0.5  # type: ignore[misc]
    puller.reset()
    asyncio.run(puller._request(limit=10))
    nc.requests.clear()
    asyncio.run(puller._request(limit=10))
    assert nc.requests == []  # just asked: still standing
    time.sleep(0.4)
    asyncio.run(puller._request(limit=10))
    assert len(nc.requests) == 2  # 70 % of their time passed: asked anew, before they expire
    handlers[1](b"", b"503", b"")
    with pytest.raises(Exception, match="pull request failed"):
        asyncio.run(puller.fetch(size=1, wait=0.01, limit=2, idle=0.01))


def test_a_fetch_takes_what_was_stored_a_while_ago_at_once_and_lingers_for_fresh_messages() -> None:
    """The first held message's store time (in its acknowledgement subject) decides: stored
    ``wait`` ago or earlier (it arrived while the last batch ran), the fetch returns at once;
    just stored, the fetch waits up to ``wait`` for company (or until ``size`` are held)."""
    from riskdesk.connectors.events import _Puller

    nc = _FakeConnection()
    nc.new_inbox = lambda: "_INBOX.t"  # type: ignore[attr-defined]
    puller = _Puller(nc, "S", ["c"], ahead=100)
    on_msg = puller._handler(0)

    def reply(stored: float, seq: int) -> bytes:
        return b"$JS.ACK.S.c.1.%d.%d.%d.0" % (seq, seq, int(stored * 1e9))

    async def run() -> list[tuple[int, float]]:
        out = []
        on_msg(reply(time.time() - 0.5, 1), None, b"{}")  # stored half a second ago
        t = time.monotonic()
        bodies, _ = await puller.fetch(size=50, wait=0.2, limit=100, idle=1.0)
        out.append((len(bodies), time.monotonic() - t))
        on_msg(reply(time.time(), 2), None, b"{}")  # just stored
        asyncio.get_running_loop().call_later(0.05, on_msg, reply(time.time(), 3), None, b"{}")
        t = time.monotonic()
        bodies, _ = await puller.fetch(size=50, wait=0.2, limit=100, idle=1.0)
        out.append((len(bodies), time.monotonic() - t))
        for seq in range(4, 7):
            on_msg(reply(time.time(), seq), None, b"{}")
        t = time.monotonic()
        bodies, _ = await puller.fetch(size=3, wait=0.2, limit=100, idle=1.0)
        out.append((len(bodies), time.monotonic() - t))
        t = time.monotonic()
        bodies, _ = await puller.fetch(size=3, wait=0.2, limit=100, idle=0.1)
        out.append((len(bodies), time.monotonic() - t))
        return out

    (n1, t1), (n2, t2), (n3, t3), (n4, t4) = asyncio.run(run())
    assert n1 == 1 and t1 < 0.1  # at once
    assert n2 == 2 and 0.15 < t2 < 0.4  # lingered for the wait, taking the later one too
    assert n3 == 3 and t3 < 0.1  # size held: at once
    assert n4 == 0 and 0.08 < t4 < 0.4  # nothing within idle: none
