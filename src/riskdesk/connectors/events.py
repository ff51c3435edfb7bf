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
) -> WorkerStats:
    """Consume the stream until stopped (or idle for ``stop_when_idle`` seconds).

    A message not acknowledged within ``ack_wait`` seconds (the worker died after fetching it)
    is delivered again. With ``partitions``, one durable consumer per partition
    (``<durable>-p<n>``) is used, over that partition's subject only.

    ``max_wait``: how long a fetch waits for its batch to fill once messages flow (and for the
    first message when none is waiting). A fetch returns what is already there at once; a
    short wait keeps the latency of a trickle low (a fetch waiting a full second to fill a
    batch of 500 was the worker's latency at low rates).

    The fetch size adapts (:class:`AdaptiveFetch`): from ``min_batch`` when the stream is
    near-empty, doubling while fetches come back full (a backlog) up to ``batch``; and once
    messages flow a fetch waits at most about as long as the previous batch took, so an event
    waits for about one batch (the running one) before its own."""
    import nats
    from nats.js.api import ConsumerConfig

    from riskdesk.connectors.notify import dispatch_pending

    say = log or (lambda m: print(m, file=sys.stderr))
    stats = WorkerStats()
    nc = await nats.connect(url, connect_timeout=10, max_reconnect_attempts=10)
    puller: _Puller | None = None
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
        puller = _Puller(nc, stream, [name for _, name in targets])
        await puller.start()
        last_msg = time.monotonic()
        last_tick = 0.0
        # with several consumers (one per partition), each is asked for its share of the batch
        # and the batch is what they all returned
        sizer = AdaptiveFetch(batch, min_batch, max_wait)
        while True:
            now = time.monotonic()
            if tick_seconds and now - last_tick >= tick_seconds:
                with session_scope(engine) as s:
                    monitor_repo.clock_tick(s, datetime.now(UTC).date(), actor="worker clock")
                stats.ticks += 1
                last_tick = now
            msgs = await puller.fetch(sizer.size, sizer.wait)
            if not msgs:
                sizer.update(0, 0.0)
                if stop_when_idle is not None and time.monotonic() - last_msg >= stop_when_idle:
                    break
                continue
            last_msg = busy0 = time.monotonic()
            raws = decode_messages(msgs)
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
                stats.redelivered += len(msgs)
                stats.accepted += res.accepted
                stats.duplicates += res.duplicates
                for m in msgs:
                    await m.nak(delay=0.2)
                continue
            # acknowledge only after the commit (one after the other: an ack only queues a
            # publish, and a task per message for a gather costs more than the acks)
            try:
                for m in msgs:
                    await m.ack()
            except TimeoutError:
                say("acknowledgement timed out; the batch will be redelivered (and skipped)")
            sizer.update(len(msgs), time.monotonic() - busy0)
            stats.last_ids = [r.get("event_id", "") if isinstance(r, dict) else "" for r in raws]
            stats.batches += 1
            stats.accepted += res.accepted
            stats.duplicates += res.duplicates
            stats.rejected += len(res.rejected)
            stats.alerts_new += res.alerts_new
            for r in res.rejected:
                say(f"rejected event {r.get('event_id')!r}: {r['reason']}")
            if notify and res.alerts_new:
                dispatch_pending(engine)
            if on_batch:
                on_batch(stats)
            if max_events is not None and stats.accepted + stats.duplicates >= max_events:
                break
    finally:
        if puller is not None:
            await puller.stop()
        await nc.close()
    return stats


def decode_messages(msgs: list[Any]) -> list[Any]:
    """The events of the messages, in order: a message holds one event (a JSON object) or a
    producer's batch (a JSON array of events, all of customers of the subject's partition).
    What is not JSON (or not UTF-8) becomes ``None``, which intake rejects as not an object."""
    raws: list[Any] = []
    for m in msgs:
        try:
            v = orjson.loads(m.data)
        except ValueError:
            v = None
        if type(v) is list:
            raws.extend(v)
        else:
            raws.append(v)
    return raws


@dataclass
class AdaptiveFetch:
    """Size and wait of the worker's next fetch.

    A fetch returns at once what is waiting (up to ``size``); only when nothing is waiting does
    it linger, until ``size`` messages arrived or ``wait`` passed. A fixed large size made
    every lingering fetch wait its full ``max_wait`` at moderate rates, and the events that
    arrived meanwhile waited that on top of the running batch and their own. So: the size
    starts at ``min_batch``, doubles after a full fetch (a backlog builds) up to ``batch`` and
    halves after a fetch less than a quarter full; once messages flow, ``wait`` is the time
    the previous batch took (at least 2 ms, at most ``max_wait``); after an empty fetch it is
    ``max_wait`` (an idle stream is polled every ``max_wait``)."""

    batch: int
    min_batch: int
    max_wait: float
    size: int = 0
    wait: float = 0.0

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
        self.wait = self.max_wait if got == 0 else min(self.max_wait, max(0.002, busy))


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


class _Puller:
    """Fetches from one worker's pull consumers through one inbox subscription.

    nats-py's ``PullSubscription.fetch`` waits for every message with ``next_msg`` (a task, a
    uuid and an ``asyncio.wait_for`` per message: about half of the worker's CPU per message
    outside the intake). Here the pull requests are published directly (the JetStream API
    ``CONSUMER.MSG.NEXT``) with consumer ``i``'s replies going to ``<inbox>.<i>``, a callback
    per consumer's subscription files each message, and a fetch waits on one event until its requests
    have ended.

    A fetch first asks every consumer for what is waiting (``no_wait``: the server sends what
    it has, then ``404 No Messages`` if that was fewer than asked) and returns at once when
    anything came. Only when nothing was waiting does it send lingering requests (``expires``
    = ``wait``) and wait until ``size`` messages arrived or ``wait`` passed; a lingering request
    still open then keeps delivering, and its messages are returned by the next fetch (before
    asking that consumer again). Messages never handed out are handed back (nak) on
    :meth:`stop`, so they are redelivered at once instead of after ``ack_wait``."""

    NO_WAIT = 1
    LINGER = 2

    def __init__(self, nc: Any, stream: str, consumers: list[str]) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._nexts = [f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{c}" for c in consumers]
        n = len(consumers)
        self._got: list[list[Any]] = [[] for _ in range(n)]
        self._open = [0] * n  # 0, NO_WAIT or LINGER: a request whose end has not come
        self._left = [0] * n  # messages the open request may still deliver
        self._ends = [0.0] * n  # when an open request is over at the latest
        self._wake = asyncio.Event()
        self._error: Exception | None = None
        self._subs: list[Any] = []

    async def start(self) -> None:
        # one subscription per consumer: a delivered message carries its stream subject, so
        # only the subscription tells whose it is
        for i in range(len(self._nexts)):
            self._subs.append(await self._nc.subscribe(f"{self._inbox}.{i}", cb=self._on_msg_of(i)))

    async def stop(self) -> None:
        # closing anyway: on an error, messages not handed back come back after ack_wait
        with contextlib.suppress(Exception):
            for sub in self._subs:
                await sub.unsubscribe()
            for got in self._got:
                for m in got:
                    await m.nak()
            await self._nc.flush(timeout=2)
        self._got = [[] for _ in self._got]

    def _on_msg_of(self, i: int) -> Callable[[Any], Awaitable[None]]:
        async def on_msg(msg: Any) -> None:
            self._on_msg(i, msg)

        return on_msg

    def _on_msg(self, i: int, msg: Any) -> None:
        hdr = msg.headers
        status = hdr.get("Status") if hdr else None
        if status is None:
            self._got[i].append(msg)
            self._left[i] -= 1
            if self._left[i] <= 0:
                self._open[i] = 0
        elif status == "100":  # an idle heartbeat (none are asked for)
            return
        else:
            # 404 no messages (no_wait), 408 the request expired, 409 a conflict (e.g. the
            # consumer was deleted): the request ended; other statuses are errors
            self._open[i] = 0
            if status not in ("404", "408", "409"):
                from nats.js.errors import APIError

                self._error = APIError.from_msg(msg)
        self._wake.set()

    async def _until(self, done: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not done() and self._error is None:
            left = end - loop.time()
            if left <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(left):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _ask(self, i: int, n: int, kind: int, wait: float) -> None:
        self._open[i] = kind
        self._left[i] = n
        # a no_wait request ends with its last message or a 404 at once (1 s only guards a lost
        # reply); a lingering one is over when it expires: nats-server 2.9 does not always
        # send the 408 for an expired request, and waiting for it stalled a consumer for the
        # guard's full second (seen at 10,000 events/s). Should the server still hold it, its
        # messages are filed as any and returned by the next fetch.
        self._ends[i] = time.monotonic() + (wait + 0.002 if kind == self.LINGER else 1.0)
        if kind == self.NO_WAIT:
            req = b'{"batch":%d,"no_wait":true}' % n
        else:
            req = b'{"batch":%d,"expires":%d}' % (n, int(wait * 1e9))
        await self._nc.publish(self._nexts[i], req, reply=f"{self._inbox}.{i}")

    def _take(self) -> list[Any]:
        out = [m for got in self._got for m in got]
        for got in self._got:
            got.clear()
        return out

    async def fetch(self, size: int, wait: float) -> list[Any]:
        """Up to about ``size`` messages: those waiting at once, else the first ones within
        ``wait`` (more when a request still open from an earlier fetch delivered meanwhile)."""
        share = max(1, -(-size // len(self._nexts)))
        now = time.monotonic()
        for i, end in enumerate(self._ends):
            if self._open[i] and now > end:  # its end never came (e.g. a reconnect lost it)
                self._open[i] = 0
        for i, got in enumerate(self._got):
            if not self._open[i] and len(got) < share:
                await self._ask(i, share - len(got), self.NO_WAIT, wait)
        # the server answers a no_wait request at once; the timeout only guards a lost reply
        await self._until(lambda: self.NO_WAIT not in self._open, max(wait, 1.0))
        self._raise()
        if any(self._got):
            return self._take()
        for i in range(len(self._nexts)):
            if not self._open[i]:
                await self._ask(i, share, self.LINGER, wait)
        await self._until(
            lambda: sum(map(len, self._got)) >= size or not any(self._open), wait + 0.005
        )
        self._raise()
        return self._take()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


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
