"""Event sources: JSON Lines files and a NATS JetStream stream (publisher and worker).

Subjects are ``<prefix>.<partition>`` with the partition a stable hash of the customer id, so
all events of one customer go to one subject and stay in order. The worker pulls batches with
a durable consumer, applies each batch in one database transaction and acknowledges the
messages only after the commit: a crash before the ack redelivers them, and the idempotent
intake reports them as duplicates. Delivery is therefore at least once, effect exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
        with session_scope(engine) as s:
            res = monitor_repo.ingest(s, [x.event for x in buf], actor=actor)
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
) -> int:
    """Publish events to JetStream (``Nats-Msg-Id`` = event id, so the server drops a
    re-publish within its duplicate window). Returns the number published."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream, prefix)
        n = 0
        for i in range(0, len(events), window):
            chunk = events[i : i + window]
            acks = [
                js.publish(
                    subject_for(str(e.get("customer_id", "")), prefix, partitions),
                    json.dumps(e, separators=(",", ":")).encode(),
                    headers={"Nats-Msg-Id": str(e.get("event_id", ""))},
                )
                for e in chunk
            ]
            await asyncio.gather(*acks)
            n += len(chunk)
        return n
    finally:
        await nc.close()


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
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "alerts_new": self.alerts_new,
            "ticks": self.ticks,
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
) -> WorkerStats:
    """Consume the stream until stopped (or idle for ``stop_when_idle`` seconds).

    A message not acknowledged within ``ack_wait`` seconds (the worker died after fetching it)
    is delivered again."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import ConsumerConfig

    from riskdesk.connectors.notify import dispatch_pending

    say = log or (lambda m: print(m, file=sys.stderr))
    stats = WorkerStats()
    nc = await nats.connect(url, connect_timeout=10, max_reconnect_attempts=10)
    try:
        js = nc.jetstream(timeout=15)
        for attempt in range(5):
            try:
                await ensure_stream(js, stream, prefix)
                sub = await js.pull_subscribe(
                    f"{prefix}.>",
                    durable=durable,
                    stream=stream,
                    config=ConsumerConfig(ack_wait=ack_wait, max_ack_pending=max(batch * 4, 1000)),
                )
                break
            except TimeoutError:
                if attempt == 4:
                    raise
                await asyncio.sleep(1 + attempt)
        last_msg = time.monotonic()
        last_tick = 0.0
        while True:
            now = time.monotonic()
            if tick_seconds and now - last_tick >= tick_seconds:
                with session_scope(engine) as s:
                    monitor_repo.clock_tick(s, datetime.now(UTC).date(), actor="worker clock")
                stats.ticks += 1
                last_tick = now
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                msgs = []
            if not msgs:
                if stop_when_idle is not None and time.monotonic() - last_msg >= stop_when_idle:
                    break
                continue
            last_msg = time.monotonic()
            raws: list[Any] = []
            for m in msgs:
                try:
                    raws.append(json.loads(m.data))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raws.append(None)  # rejected by intake as not an object
            with session_scope(engine) as s:
                res = monitor_repo.ingest(s, raws, actor="worker")
            # acknowledge only after the commit
            try:
                await asyncio.gather(*(m.ack() for m in msgs))
            except TimeoutError:
                say("acknowledgement timed out; the batch will be redelivered (and skipped)")
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
        await nc.close()
    return stats
