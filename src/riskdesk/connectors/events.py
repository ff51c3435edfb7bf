"""Event sources: JSON Lines files and a NATS JetStream stream (publisher and worker).

Subjects are ``<prefix>.<partition>`` with the partition a stable hash of the customer id, so
all events of one customer go to one subject and stay in order. The worker pulls batches with
a durable consumer, applies each batch in one database transaction and acknowledges the
messages only after the commit: a crash before the ack redelivers them, and the idempotent
intake reports them as duplicates. Delivery is therefore at least once, effect exactly once.

A worker may consume only some partitions (``partitions``): several workers, each with its own
durable consumer over a disjoint set of partitions, use several cores, and each customer is
still handled by one worker, in order (which also keeps that worker's in-memory books valid).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from riskdesk.store import monitor_repo
from riskdesk.store.db import session_scope

DEFAULT_STREAM = "RISKDESK_EVENTS"
DEFAULT_PREFIX = "riskdesk.events"
DEFAULT_PARTITIONS = 8


# --------------------------------------------------------------------------- files


@dataclass
class JsonlLine:
    line: int
    event: Any = None
    error: str | None = None


def read_jsonl(path: Path) -> Iterator[JsonlLine]:
    """Each non-blank line of a JSON Lines file, parsed (or with the JSON error)."""
    with path.open(encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                yield JsonlLine(n, json.loads(text))
            except json.JSONDecodeError as exc:
                yield JsonlLine(n, None, f"not valid JSON: {exc.msg} (column {exc.colno})")


FILE_BATCH_ATTEMPTS = 3
"""How often ``ingest_file`` sends a batch refused as stale before giving up."""


def ingest_file(
    engine: Engine,
    path: Path,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
    actor: str = "events ingest",
) -> dict[str, Any]:
    """Ingest a JSONL file batch by batch (one transaction per batch). Bad lines are listed
    with their line number; good events are applied, duplicates reported."""
    total = monitor_repo.IngestResult()
    bad: list[dict[str, Any]] = []
    buf: list[JsonlLine] = []

    def flush() -> None:
        if not buf:
            return
        for attempt in range(FILE_BATCH_ATTEMPTS):
            try:
                with session_scope(engine) as s:
                    res = monitor_repo.ingest(s, [x.event for x in buf], actor=actor)
                break
            except monitor_repo.StaleStateError:
                # other writers kept changing these customers and nothing was stored: the
                # same batch is sent again after a pause (intake is idempotent)
                if attempt + 1 == FILE_BATCH_ATTEMPTS:
                    raise
                time.sleep(0.2 * (attempt + 1))
        for r in res.rejected:
            r["line"] = buf[r.pop("index")].line
        total.add(res)
        if progress:
            progress(len(buf))
        buf.clear()

    for item in read_jsonl(path):
        if item.error is not None:
            bad.append({"line": item.line, "event_id": None, "reason": item.error})
            if progress:
                progress(1)
            continue
        buf.append(item)
        if len(buf) >= batch:
            flush()
    flush()
    total.rejected = bad + total.rejected
    out = total.as_dict()
    out["rejections"] = sorted(out["rejections"], key=lambda r: r.get("line", 0))
    return out


# --------------------------------------------------------------------------- NATS


def partition_of(customer_id: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """A stable partition for a customer (CRC-32, the same in every process)."""
    return zlib.crc32(customer_id.encode()) % partitions


def parse_partitions(spec: str, partitions: int = DEFAULT_PARTITIONS) -> list[int]:
    """``"0-3"``, ``"0,2,5"`` or ``"1,4-6"`` → sorted partition numbers (each < ``partitions``)."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"bad partition list {spec!r}: use e.g. 0-3 or 0,2,5") from None
        if a > b or a < 0 or b >= partitions:
            raise ValueError(f"partitions are 0 to {partitions - 1}; got {part!r}")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError("no partition given")
    return sorted(out)


def split_partitions(n: int, partitions: int = DEFAULT_PARTITIONS) -> list[list[int]]:
    """``partitions`` partition numbers dealt round-robin into ``n`` non-empty groups."""
    n = max(1, min(n, partitions))
    return [list(range(i, partitions, n)) for i in range(n)]


def subject_for(
    customer_id: str, prefix: str = DEFAULT_PREFIX, partitions: int = DEFAULT_PARTITIONS
) -> str:
    return f"{prefix}.{partition_of(customer_id, partitions)}"


async def ensure_stream(js: Any, stream: str, prefix: str) -> None:
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"])


async def publish(
    url: str,
    events: list[dict[str, Any]],
    *,
    stream: str = DEFAULT_STREAM,
    prefix: str = DEFAULT_PREFIX,
    partitions: int = DEFAULT_PARTITIONS,
    window: int = 500,
    per_message: int = 1,
) -> int:
    """Publish events to JetStream (``Nats-Msg-Id`` = event id, so the server drops a
    re-publish within its duplicate window). Returns the number of events published.

    ``per_message`` > 1: up to that many events of one partition per message, as a JSON array
    (a producer's batch; ``Nats-Msg-Id`` = a hash of its event ids). The worker's cost per
    message (fetch, acknowledgement, the server's storage and delivery) is then shared by the
    events of the message."""
    import nats

    msgs = list(encode_messages(events, prefix, partitions, max(1, per_message)))
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream, prefix)
        for i in range(0, len(msgs), window):
            acks = [
                js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
                for subject, body, msg_id in msgs[i : i + window]
            ]
            await asyncio.gather(*acks)
        return len(events)
    finally:
        await nc.close()


def encode_messages(
    events: list[dict[str, Any]], prefix: str, partitions: int, per_message: int
) -> Iterator[tuple[str, bytes, str]]:
    """(subject, body, message id) of each message ``publish`` sends."""
    if per_message == 1:
        for e in events:
            subject = subject_for(str(e.get("customer_id", "")), prefix, partitions)
            yield subject, orjson.dumps(e), str(e.get("event_id", ""))
        return
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        subject = subject_for(str(e.get("customer_id", "")), prefix, partitions)
        group = by_subject.setdefault(subject, [])
        group.append(e)
        if len(group) == per_message:
            yield subject, orjson.dumps(group), _group_id(group)
            group.clear()
    for subject, group in by_subject.items():
        if group:
            yield subject, orjson.dumps(group), _group_id(group)


def _group_id(group: list[dict[str, Any]]) -> str:
    ids = "\0".join(str(e.get("event_id", "")) for e in group)
    return "batch-" + hashlib.blake2b(ids.encode(), digest_size=16).hexdigest()


async def delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


@dataclass
class WorkerStats:
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts_new: int = 0
    ticks: int = 0
    redelivered: int = 0
    """Messages handed back (nak) because other writers kept changing their customers."""
    latencies_ms: list[float] = field(default_factory=list)
    last_ids: list[str] = field(default_factory=list)
    """Event ids of the last batch (for measuring latency)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "alerts_new": self.alerts_new,
            "ticks": self.ticks,
            "redelivered": self.redelivered,
        }


IDLE_SECONDS = 1.0
"""The longest a worker's fetch waits for a first message before the worker looks at its
clock (tick due, idle long enough to stop)."""


async def run_worker(
    engine: Engine,
    url: str,
    *,
    stream: str = DEFAULT_STREAM,
    prefix: str = DEFAULT_PREFIX,
    durable: str = "riskdesk-worker",
    batch: int = 500,
    ack_wait: float = 30.0,
    tick_seconds: float = 60.0,
    stop_when_idle: float | None = None,
    max_events: int | None = None,
    notify: bool = True,
    on_batch: Callable[[WorkerStats], None] | None = None,
    log: Callable[[str], None] | None = None,
    partitions: list[int] | None = None,
    max_wait: float = 0.05,
    min_batch: int = 20,
    min_wait: float = 0.01,
) -> WorkerStats:
    """Consume the stream until stopped (or idle for ``stop_when_idle`` seconds).

    A message not acknowledged within ``ack_wait`` seconds (the worker died after fetching it)
    is delivered again. With ``partitions``, one durable consumer per partition
    (``<durable>-p<n>``) is used, over that partition's subject only.

    Each consumer keeps a standing pull request (:class:`_Puller`), so the server sends
    messages as they are stored and an idle worker does not poll. A fetch returns up to
    ``batch`` events' worth of messages once ``size`` events' worth are held or the first held
    one was stored ``wait`` seconds ago (a message holding a producer's batch counts as many
    events as the last batch's messages held on average), so an event waits at most about
    ``wait`` for its batch to fill (the time
    stored is read from the message's acknowledgement subject: messages that arrived while
    the last batch ran are taken at once). When nothing comes for a while (at most a second)
    the fetch returns empty so the worker can tick or stop.

    The fetch size and wait adapt (:class:`AdaptiveFetch`): the size from ``min_batch`` when
    the stream is near-empty, doubling while fetches come back full (a backlog) up to
    ``batch``; the wait is about as long as the previous batch took, at least ``min_wait``
    and at most ``max_wait`` (``max_wait`` after an empty fetch). ``min_wait`` trades
    latency for CPU: a batch has a fixed cost (its transaction, the worker's wake-ups), so at
    moderate rates a floor of 10 ms instead of 2 ms gives fewer, larger batches (≈ 5-10 %
    less worker CPU per event at 5,000 events/s) for at most 8 ms more per event."""
    import nats
    from nats.js.api import ConsumerConfig

    from riskdesk.connectors.notify import dispatch_pending

    say = log or (lambda m: print(m, file=sys.stderr))
    stats = WorkerStats()
    puller: _Puller | None = None

    async def reconnected() -> None:
        if puller is not None:  # its requests may be lost with the old connection
            puller.reset()

    nc = await nats.connect(
        url, connect_timeout=10, max_reconnect_attempts=10, reconnected_cb=reconnected
    )
    try:
        js = nc.jetstream(timeout=15)
        for attempt in range(5):
            try:
                await ensure_stream(js, stream, prefix)
                # all partitions: one consumer over ``prefix.>``; some partitions: one
                # consumer per partition (``<durable>-p<n>``; one filter subject each, which
                # every JetStream server version supports)
                targets = (
                    [(f"{prefix}.>", durable)]
                    if not partitions
                    else [(f"{prefix}.{p}", durable_for(durable, p)) for p in partitions]
                )
                for subject, name in targets:
                    config = ConsumerConfig(ack_wait=ack_wait, max_ack_pending=max(batch * 4, 1000))
                    await _ensure_consumer(js, stream, subject, name, config)
                break
            except TimeoutError:
                if attempt == 4:
                    raise
                await asyncio.sleep(1 + attempt)
        # each consumer's standing request asks for its share of two batches (at least
        # ``min_batch``): enough to be held when the next fetch comes, not so many that
        # messages wait in the worker near ``ack_wait``
        ahead = max(min_batch, -(-2 * batch // len(targets)))
        puller = _Puller(nc, stream, [name for _, name in targets], ahead)
        await puller.start()
        last_msg = time.monotonic()
        last_tick = 0.0
        sizer = AdaptiveFetch(batch, min_batch, max_wait, min_wait=min(min_wait, max_wait))
        # events per message, as the last batch held them: a fetch asks for messages, and a
        # producer's batches (JSON arrays) carry several events each, so the counts in events
        # (``batch``, the sizer's) are turned into messages with it
        per_msg = 1.0
        while True:
            now = time.monotonic()
            if tick_seconds and now - last_tick >= tick_seconds:
                with session_scope(engine) as s:
                    monitor_repo.clock_tick(s, datetime.now(UTC).date(), actor="worker clock")
                stats.ticks += 1
                last_tick = now
            # nothing held: wait for the first message until the next tick or idle stop is
            # due (at most a second); only then does the fetch linger for more
            idle = IDLE_SECONDS
            if tick_seconds:
                idle = min(idle, last_tick + tick_seconds - now)
            if stop_when_idle is not None:
                idle = min(idle, last_msg + stop_when_idle - now)
            limit = max(1, int(batch / per_msg))
            want = min(limit, max(1, int(sizer.size / per_msg)))
            bodies, replies = await puller.fetch(want, sizer.wait, limit, max(idle, 0.001))
            if not bodies:
                sizer.update(0, 0.0)
                if stop_when_idle is not None and time.monotonic() - last_msg >= stop_when_idle:
                    break
                continue
            last_msg = busy0 = time.monotonic()
            raws = decode_messages(bodies)
            per_msg = max(1.0, len(raws) / len(bodies))
            res = monitor_repo.IngestResult()
            try:
                # a transaction per ``batch`` events (messages holding arrays can carry more)
                for i in range(0, len(raws), batch):
                    with session_scope(engine) as s:
                        res.add(monitor_repo.ingest(s, raws[i : i + batch], actor="worker"))
            except monitor_repo.StaleStateError as exc:
                # nothing of this transaction was stored: hand the messages back for
                # redelivery (idempotent intake: what an earlier one stored comes back as
                # duplicates)
                say(f"batch handed back for redelivery: {exc}")
                stats.redelivered += len(bodies)
                stats.accepted += res.accepted
                stats.duplicates += res.duplicates
                await puller.nak(replies, delay=0.2)
                continue
            # acknowledge only after the commit (all the batch's acks in one write)
            await puller.ack(replies)
            sizer.update(len(raws), time.monotonic() - busy0)
            stats.last_ids = [r.get("event_id", "") if isinstance(r, dict) else "" for r in raws]
            stats.batches += 1
            stats.accepted += res.accepted
            stats.duplicates += res.duplicates
            stats.rejected += len(res.rejected)
            stats.alerts_new += res.alerts_new
            for r in res.rejected:
                say(f"rejected event {r.get('event_id')!r}: {r['reason']}")
            if notify and res.notifications:  # only batches that queued some (a send reads
                dispatch_pending(engine)  # the table: ≈ 2-3 ms, most batches queue none)
            if on_batch:
                on_batch(stats)
            if max_events is not None and stats.accepted + stats.duplicates >= max_events:
                break
    finally:
        if puller is not None:
            await puller.stop()
        await nc.close()
    return stats


def decode_messages(bodies: list[bytes]) -> list[Any]:
    """The events of the messages (their bodies), in order: a message holds one event (a JSON
    object) or a producer's batch (a JSON array of events, all of customers of the subject's
    partition). What is not JSON (or not UTF-8) becomes ``None``, which intake rejects as not
    an object."""
    raws: list[Any] = []
    append, extend, loads = raws.append, raws.extend, orjson.loads
    for body in bodies:
        try:
            v = loads(body)
        except ValueError:
            v = None
        if type(v) is list:
            extend(v)
        else:
            append(v)
    return raws


@dataclass
class AdaptiveFetch:
    """Size and wait of the worker's next fetch.

    A fetch returns what is held once ``size`` messages are there or the first of them was
    stored ``wait`` seconds ago (:meth:`_Puller.fetch`). A fixed large size made every fetch
    wait its full ``max_wait`` at moderate rates, and the events that arrived meanwhile waited
    that on top of the running batch and their own. So: the size starts at ``min_batch``,
    doubles after a full fetch (a backlog builds) up to ``batch`` and halves after a fetch
    less than a quarter full; once messages flow, ``wait`` is the time the previous batch
    took (at least ``min_wait``, at most ``max_wait``); after an empty fetch it is
    ``max_wait`` (the first event after a quiet spell waits that long for company)."""

    batch: int
    min_batch: int
    max_wait: float
    size: int = 0
    wait: float = 0.0
    min_wait: float = 0.002

    def __post_init__(self) -> None:
        self.batch = max(1, self.batch)
        self.min_batch = max(1, min(self.min_batch, self.batch))
        self.size = self.min_batch
        self.wait = self.max_wait

    def update(self, got: int, busy: float) -> None:
        """After a fetch that returned ``got`` messages, whose batch took ``busy`` seconds."""
        if got >= self.size:
            self.size = min(self.batch, self.size * 2)
        elif got * 4 < self.size:
            self.size = max(self.min_batch, self.size // 2)
        self.wait = self.max_wait if got == 0 else min(self.max_wait, max(self.min_wait, busy))


_GC_TUNED = False


def tune_gc_for_worker() -> None:
    """Garbage collection settings for a dedicated intake process: what exists at start (code,
    settings) is frozen out of the collector, and young collections run every 20,000 new
    container objects instead of 700 (a batch makes and drops tens of thousands; the books are
    plain lists and dicts without cycles). Measured ≈ 10 % less CPU per event, and the p99 of
    a 250-event batch 160 → 55 ms: full collections over the in-memory books took ≈ 100 ms.
    Only for processes that do nothing else (``riskdesk worker``, ``riskdesk events ingest``),
    never from library code."""
    import gc

    global _GC_TUNED
    if _GC_TUNED:  # once per process
        return
    _GC_TUNED = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)


async def _ensure_consumer(js: Any, stream: str, subject: str, name: str, config: Any) -> None:
    """The durable pull consumer ``name`` over ``subject``, created with ``config`` when it
    does not exist (an existing one is used as it is, as ``pull_subscribe`` does)."""
    from nats.js.errors import NotFoundError

    try:
        await js.consumer_info(stream, name)
    except NotFoundError:
        config.name = config.durable_name = name
        config.filter_subject = subject
        await js.add_consumer(stream, config=config)


Handler = Callable[[bytes, bytes | None, bytes], None]
"""What a fast-parsed message is handed to: (reply subject, status or ``None``, body)."""


class _Puller:
    """Fetches from one worker's pull consumers through one inbox subscription per consumer.

    nats-py's ``PullSubscription.fetch`` costs a task, a uuid and an ``asyncio.wait_for`` per
    message, and even its plain subscriptions a ``Msg``, a queue hand-over and a callback task
    step per message. Here the pull requests are published directly (the JetStream API
    ``CONSUMER.MSG.NEXT``) with consumer ``i``'s replies going to ``<inbox>.<i>``, and the
    connection's protocol parser is replaced (:func:`_fast_parser_class`) by one that hands
    the messages of these subscriptions over as (reply subject, status, body) straight from
    the socket's bytes.

    Each consumer has one standing pull request for ``ahead`` messages that lasts
    ``REQUEST_SECONDS``: the server sends messages as they are stored, without a request per
    fetch (fetches that asked with ``no_wait`` and then lingered with a short ``expires``, as
    before, had nats-server answer several requests per batch: ≈ 70 µs of its CPU per event
    at a steady 5,000 events/s, ≈ 45 now). A new request replaces one that delivered its
    count or ended (408, 404, 409), and one that has lived ``RENEW_AT`` of its time — before
    it expires, as the 408 that should say so does not always come (nats-server 2.9.10 leaves
    it out now and then) — as long as fewer than ``limit`` messages are held.
    Acknowledgements (one protocol frame each) are written together. Messages never handed out are handed back
    (nak) on :meth:`stop`, so they are redelivered at once instead of after ``ack_wait``."""

    REQUEST_SECONDS = 5.0
    RENEW_AT = 0.7
    """The share of a request's time after which it is replaced (at the worker's next
    wake-up, at most a second later, so before it expires: one request stands at all times,
    with or without the server's 408 for it)."""

    def __init__(self, nc: Any, stream: str, consumers: list[str], ahead: int) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._nexts = [f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{c}" for c in consumers]
        n = len(consumers)
        self._ahead = max(1, ahead)
        self._left = [0] * n  # messages the open request may still deliver (<= 0: none open)
        self._ends = [0.0] * n  # when the open request is over at the latest
        self._bodies: list[bytes] = []
        self._replies: list[bytes] = []
        self._wake_at = sys.maxsize  # wake a waiting fetch when this many messages are held
        self._wake = asyncio.Event()
        self._error: Exception | None = None
        self._subs: list[Any] = []
        self._parser: Any = None

    async def start(self) -> None:
        # one subscription per consumer: a delivered message carries its stream subject, so
        # only the subscription tells whose it is
        handlers: dict[int, Handler] = {}
        for i in range(len(self._nexts)):
            on_msg = self._handler(i)
            sub = await self._nc.subscribe(f"{self._inbox}.{i}", cb=_via_msg(on_msg))
            self._subs.append(sub)
            handlers[sub._id] = on_msg
        self._parser = _install_fast_parser(self._nc, handlers)

    def reset(self) -> None:
        """Forget the open requests (after a reconnect: the server may have lost them)."""
        self._left[:] = [0] * len(self._left)
        self._wake.set()

    async def stop(self) -> None:
        # closing anyway: on an error, messages not handed back come back after ack_wait
        with contextlib.suppress(Exception):
            if self._parser is not None:
                self._parser.handlers.clear()
            for sub in self._subs:
                await sub.unsubscribe()
            replies = self._replies[:]
            self._bodies.clear()
            self._replies.clear()
            await self.nak(replies)
            await self._nc.flush(timeout=2)

    def _handler(self, i: int) -> Handler:
        bodies, replies, left = self._bodies, self._replies, self._left
        append_body, append_reply = bodies.append, replies.append

        def on_msg(reply: bytes, status: bytes | None, body: bytes) -> None:
            if status is None:
                append_body(body)
                append_reply(reply)
                left[i] -= 1
                if len(bodies) >= self._wake_at:
                    self._wake_at = sys.maxsize  # once (not for every message after)
                    self._wake.set()
            elif status != b"100":  # not an idle heartbeat (none are asked for)
                # 404 no messages, 408 the request expired, 409 a conflict (e.g. the consumer
                # was deleted): the request ended; other statuses are errors
                left[i] = 0
                if status not in (b"404", b"408", b"409"):
                    from nats.js.errors import APIError

                    self._error = APIError(code=int(status), description="pull request failed")
                self._wake.set()

        return on_msg

    async def _request(self, limit: int) -> None:
        """A new standing request for each consumer whose request is over, while fewer than
        ``limit`` messages are held."""
        now = time.monotonic()
        for i, nxt in enumerate(self._nexts):
            if (self._left[i] > 0 and now < self._ends[i]) or len(self._bodies) >= limit:
                continue
            self._left[i] = self._ahead
            # renewed before it expires: the 408 the server should send then may not come
            self._ends[i] = now + self.REQUEST_SECONDS * self.RENEW_AT
            req = b'{"batch":%d,"expires":%d}' % (self._ahead, int(self.REQUEST_SECONDS * 1e9))
            await self._nc.publish(nxt, req, reply=f"{self._inbox}.{i}")

    async def _until(self, n: int, end: float, limit: int) -> None:
        """Until ``n`` messages are held or the monotonic clock reaches ``end``."""
        while len(self._bodies) < n and self._error is None:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            self._wake_at = n
            try:
                async with asyncio.timeout(left):
                    await self._wake.wait()
            except TimeoutError:
                return
            finally:
                self._wake_at = sys.maxsize
            await self._request(limit)  # a request that ended is replaced at once

    async def fetch(
        self, size: int, wait: float, limit: int, idle: float
    ) -> tuple[list[bytes], list[bytes]]:
        """(bodies, reply subjects) of up to ``limit`` messages, once ``size`` are held or the
        first held one was stored ``wait`` seconds ago (at most ``wait`` from now: the
        server's clock may differ); when nothing comes within ``idle`` seconds, none."""
        self._raise()
        await self._request(limit)
        if not self._bodies:
            await self._until(1, time.monotonic() + idle, limit)
        if self._bodies and len(self._bodies) < size:
            await self._until(size, time.monotonic() + wait - self._age(), limit)
        self._raise()
        bodies, replies = self._bodies, self._replies
        k = min(limit, len(bodies))
        out = bodies[:k], replies[:k]
        del bodies[:k], replies[:k]
        return out

    def _age(self) -> float:
        """Seconds since the server stored the first held message (its acknowledgement
        subject carries the time); 0 when that cannot be read."""
        from nats.aio.msg import Msg
        from nats.errors import NotJSMessageError

        try:
            stored = Msg.Metadata._from_reply(self._replies[0].decode()).timestamp.timestamp()
        except (NotJSMessageError, ValueError, IndexError):
            return 0.0
        return max(0.0, time.time() - stored)

    async def ack(self, replies: list[bytes]) -> None:
        """Acknowledge messages by their reply subjects: one empty publish each, written
        together (what ``Msg.ack`` sends, without its publish call per message)."""
        if replies:
            await self._write(b"PUB " + b" 0\r\n\r\nPUB ".join(replies) + b" 0\r\n\r\n")

    async def nak(self, replies: list[bytes], delay: float = 0.0) -> None:
        """Hand messages back for redelivery (after ``delay`` seconds)."""
        if not replies:
            return
        body = b"-NAK" if not delay else b'-NAK {"delay":%d}' % int(delay * 1e9)
        tail = b" %d\r\n%s\r\n" % (len(body), body)
        await self._write(b"PUB " + (tail + b"PUB ").join(replies) + tail)

    async def _write(self, frames: bytes) -> None:
        # nats-py's own outgoing buffer and flusher (as its publish does), so frames written
        # during a reconnect are sent once it is back
        nc = self._nc
        if nc.is_closed:
            from nats.errors import ConnectionClosedError

            raise ConnectionClosedError
        await nc._send_command(frames)
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def _via_msg(on_msg: Handler) -> Callable[[Any], Awaitable[None]]:
    """A subscription callback for the messages nats-py's own parser hands over (the rare
    ones :class:`_FastParser` leaves to it): the same (reply, status, body) hand-over."""

    async def cb(msg: Any) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        on_msg(msg.reply.encode(), status.encode() if status else None, msg.data)

    return cb


def _install_fast_parser(nc: Any, handlers: dict[int, Handler]) -> Any:
    """Replace the protocol parser of a nats-py connection by :func:`_fast_parser_class`'s,
    handing the messages of the subscriptions in ``handlers`` (sid → handler) over."""
    old = nc._ps
    new = _fast_parser_class()(nc)
    new.handlers = handlers
    # what the old parser held (a partial line) carries over
    new.buf, new.state, new.needed = old.buf, old.state, old.needed
    new.header_needed, new.msg_arg = old.header_needed, old.msg_arg
    nc._ps = new
    return new


@functools.cache
def _fast_parser_class() -> type:
    """nats-py's protocol parser (``nats-py`` is pinned: this uses its ``Parser`` and
    ``Client._process_msg``), with the messages of the subscriptions in ``handlers`` read
    straight from the received bytes and handed over as (reply subject, status or ``None``,
    body): no regular expression, no ``Msg``, no header dictionary, no queue and task step,
    and the buffer cut once per read instead of once per message. Messages of other
    subscriptions go to ``Client._process_msg`` as nats-py's parser sends them; every other
    protocol line (PING, PONG, INFO, +OK, -ERR) is left to nats-py's parser, as is whatever
    follows it in the same read."""
    from nats.errors import ProtocolError
    from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

    class FastParser(Parser):  # type: ignore[misc]
        handlers: dict[int, Handler]

        async def parse(self, data: bytes = b"") -> None:
            if self.state != AWAITING_CONTROL_LINE:
                self.buf.extend(data)
                await super().parse()
                return
            b = bytes(self.buf) + data if self.buf else bytes(data)
            pos, size = 0, len(b)
            handlers = self.handlers
            while pos < size:
                if b.startswith(b"HMSG ", pos):
                    head = 5
                elif b.startswith(b"MSG ", pos):
                    head = 4
                else:
                    break
                eol = b.find(b"\r\n", pos)
                if eol < 0:
                    break
                args = b[pos + head : eol].split()
                try:
                    if head == 5:  # HMSG subject sid [reply] header-size total-size
                        if len(args) not in (4, 5):
                            raise ValueError
                        hlen, total = int(args[-2]), int(args[-1])
                        reply = args[2] if len(args) == 5 else b""
                        if not 0 <= hlen <= total:
                            raise ValueError
                    else:  # MSG subject sid [reply] size
                        if len(args) not in (3, 4):
                            raise ValueError
                        hlen, total = 0, int(args[-1])
                        reply = args[2] if len(args) == 4 else b""
                    sid = int(args[1])
                except ValueError:
                    raise ProtocolError("nats: malformed MSG") from None
                start = eol + 2
                stop = start + total
                if stop + 2 > size:
                    break  # the rest of the message is still to come
                pos = stop + 2
                handler = handlers.get(sid)
                if handler is None:
                    hdr = b[start : start + hlen] if hlen else None
                    await self.nc._process_msg(sid, args[0], reply, b[start + hlen : stop], hdr)
                elif hlen:
                    # "NATS/1.0\r\n..." for a message, "NATS/1.0 404 No Messages..." for a status
                    status = b[start + 9 : start + 12] if b[start + 8] == 32 else None
                    handler(reply, status, b[start + hlen : stop])
                else:
                    handler(reply, None, b[start:stop])
            self.buf = bytearray(b[pos:])
            if pos < size and not b.startswith((b"HMSG ", b"MSG "), pos):
                await super().parse()

    return FastParser


def durable_for(durable: str, partition: int) -> str:
    """The durable consumer of one partition when a worker takes only some partitions (each
    partition keeps its own position, so partitions can move between workers)."""
    return f"{durable}-p{partition}"


def _worker_process(db_url: str, nats_url: str, kwargs: dict[str, Any], out: Any) -> None:
    """One worker process of :func:`run_worker_processes` (its own engine and book cache)."""
    from riskdesk.store.db import make_engine

    tune_gc_for_worker()
    eng = make_engine(db_url)
    try:
        stats = asyncio.run(run_worker(eng, nats_url, **kwargs))
        out.put(stats.as_dict())
    except KeyboardInterrupt:
        out.put(None)
    finally:
        eng.dispose()


def run_worker_processes(
    db_url: str,
    nats_url: str,
    processes: int,
    *,
    durable: str = "riskdesk-worker",
    partitions: int = DEFAULT_PARTITIONS,
    tick_seconds: float = 60.0,
    **kwargs: Any,
) -> WorkerStats:
    """Run ``processes`` workers, each over its own group of partitions (dealt round-robin)
    with its own durable consumer; only the first one runs the clock. Returns the summed
    counts once all have stopped (``stop_when_idle`` / ``max_events`` apply per worker)."""
    import multiprocessing as mp

    from riskdesk.store.db import make_engine

    eng = make_engine(db_url)
    try:
        with session_scope(eng) as s:
            monitor_repo.ensure_default_rules(s)  # once, before the workers race to it
    finally:
        eng.dispose()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = []
    for i, group in enumerate(split_partitions(processes, partitions)):
        kw = dict(kwargs)
        kw.update(
            durable=durable,
            partitions=group,
            tick_seconds=tick_seconds if i == 0 else 0,
        )
        p = ctx.Process(target=_worker_process, args=(db_url, nats_url, kw, out), daemon=True)
        p.start()
        procs.append(p)
    total = WorkerStats()
    try:
        for _ in procs:
            d = out.get()
            if d:  # every count as_dict reports, redelivered included
                for k, v in d.items():
                    setattr(total, k, getattr(total, k) + int(v))
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    return total
