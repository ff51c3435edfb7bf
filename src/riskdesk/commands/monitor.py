"""``riskdesk events|worker|rules|alerts|cases|clock|notify`` — the real-time monitor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from riskdesk.commands._common import JsonOpt, console, emit, engine, fail
from riskdesk.config import get_settings
from riskdesk.connectors import events as ev_conn
from riskdesk.connectors import notify as notify_conn
from riskdesk.monitor.cases import OUTCOMES
from riskdesk.monitor.rules import RuleError
from riskdesk.store import monitor_repo as repo
from riskdesk.store.db import session_scope

events_app = typer.Typer(
    help="Business events: ingest a file, publish to NATS, show state.", no_args_is_help=True
)
rules_app = typer.Typer(
    help="Alert rule sets: list, draft, dry-run, publish, show.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts: list and snooze.", no_args_is_help=True)
cases_app = typer.Typer(
    help="Cases: list, show, acknowledge, comment, assign, resolve.", no_args_is_help=True
)
clock_app = typer.Typer(help="The monitor clock: age the portfolio.", no_args_is_help=True)
notify_app = typer.Typer(
    help="Notifications: subscriptions, sending, dead letters, digest.", no_args_is_help=True
)

ActorOpt = Annotated[str, typer.Option("--actor", help="Who does this (written to the audit log).")]


def _date(value: str | None, as_json: bool, name: str = "--as-of") -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{name} must be a date YYYY-MM-DD, got {value!r}", 2, as_json) from None


def _table(title: str, cols: list[str], rows: list[dict[str, Any]]) -> None:
    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    console.print(t)


# --------------------------------------------------------------------------- events


@contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar of ``total`` items; yields the function that advances it."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _ingest_file(
    eng: Any, file: Path, batch: int, total_lines: int, as_json: bool
) -> dict[str, Any]:
    if as_json:
        return ev_conn.ingest_file(eng, file, batch=batch)
    with _bar("ingesting", total_lines) as advance:
        return ev_conn.ingest_file(eng, file, batch=batch, progress=advance)


@events_app.command("ingest")
def events_ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A JSON Lines file, one event per line.")],
    batch: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """Ingest events from a JSONL file: accepted, duplicates, rejected (with line and reason)."""
    if not file.is_file():
        raise fail(f"no such file: {file}", 2, as_json)
    eng = engine(ctx)
    ev_conn.tune_gc_for_worker()  # this process only ingests
    total_lines = sum(1 for line in file.open(encoding="utf-8") if line.strip())
    try:
        out = _ingest_file(eng, file, batch, total_lines, as_json)
    except repo.StaleStateError as exc:
        raise fail(
            f"{exc}; the batches before it are stored — run the same command again "
            "(events already applied are counted as duplicates)",
            1,
            as_json,
        ) from exc
    if out["alerts_new"]:
        out["notifications"] = notify_conn.dispatch_pending(eng)
    out["ok"] = out["rejected"] == 0

    def render(o: dict[str, Any]) -> None:
        console.print(
            f"accepted [green]{o['accepted']}[/], duplicates [yellow]{o['duplicates']}[/], "
            f"rejected [red]{o['rejected']}[/], new alerts {o['alerts_new']}"
        )
        for r in o["rejections"][:50]:
            console.print(f"  line {r.get('line')}: {r.get('event_id') or ''} {r['reason']}")

    emit(out, as_json, render)
    if out["rejected"]:
        raise typer.Exit(1)


@events_app.command("publish")
def events_publish(
    file: Annotated[Path, typer.Argument(help="A JSON Lines file, one event per line.")],
    url: Annotated[str | None, typer.Option(help="NATS URL (default RISKDESK_NATS_URL).")] = None,
    stream: Annotated[str, typer.Option(help="JetStream stream name.")] = ev_conn.DEFAULT_STREAM,
    prefix: Annotated[str, typer.Option(help="Subject prefix.")] = ev_conn.DEFAULT_PREFIX,
    partitions: Annotated[int, typer.Option(min=1, max=1024)] = ev_conn.DEFAULT_PARTITIONS,
    per_message: Annotated[
        int,
        typer.Option(
            min=1,
            max=10000,
            help="Events per message: more than 1 sends each partition's events as JSON arrays "
            "of up to this many (less work per event for NATS and the worker).",
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Publish a JSONL file of events to NATS JetStream, partitioned by customer."""
    if not file.is_file():
        raise fail(f"no such file: {file}", 2, as_json)
    items = list(ev_conn.read_jsonl(file))
    bad = [i for i in items if i.error]
    if bad:
        raise fail(f"line {bad[0].line}: {bad[0].error}", 1, as_json)
    try:
        n = asyncio.run(
            ev_conn.publish(
                url or get_settings().nats_url,
                [i.event for i in items],
                stream=stream,
                prefix=prefix,
                partitions=partitions,
                per_message=per_message,
            )
        )
    except OSError as exc:
        raise fail(f"NATS error: {type(exc).__name__}: {exc}", 1, as_json) from None
    emit(
        {"ok": True, "published": n, "stream": stream},
        as_json,
        lambda o: console.print(f"published {o['published']} events to {o['stream']}"),
    )


@events_app.command("state")
def events_state(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="External customer id.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one customer's real-time state."""
    with session_scope(engine(ctx)) as s:
        out = repo.customer_state(s, customer)
    if out is None:
        raise fail(f"no state for customer {customer!r}", 1, as_json)
    emit(out, as_json, None)


@events_app.command("rebuild")
def events_rebuild(
    ctx: typer.Context,
    customers: Annotated[
        list[str] | None, typer.Argument(help="External customer ids (or --all).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every customer with a state or a stored event.")
    ] = False,
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Rebuild customers' real-time states from their stored events (no alert is raised)."""
    if bool(customers) == all_:
        raise fail("name the customers to rebuild, or give --all (not both)", 2, as_json)
    eng = engine(ctx)
    refs = None if all_ else sorted(set(customers or []))
    total = 0
    if refs is None and not as_json:  # (named customers are few: no bar, no extra scan)
        with session_scope(eng) as s:
            total = repo.stored_events_count(s)
    try:
        with session_scope(eng) as s:
            if total < 1000:
                out = repo.rebuild_states(s, refs, actor=actor)
            else:
                with _bar("replaying events", total) as advance:
                    out = repo.rebuild_states(s, refs, actor=actor, progress=advance)
    except repo.MonitorError as exc:
        raise fail(str(exc), 1, as_json) from None
    except repo.StaleStateError as exc:
        raise fail(f"{exc}; nothing was rebuilt — run the same command again", 1, as_json) from None

    def render(o: dict[str, Any]) -> None:
        console.print(
            f"rebuilt {o['customers']} customer(s) from {o['applied']} event(s): "
            f"[yellow]{o['changed']}[/] changed, {o['removed']} removed (no valid event), "
            f"[red]{o['skipped']}[/] event(s) left out"
        )
        if o["changed_customers"]:
            console.print("  changed: " + ", ".join(o["changed_customers"]))
        if o["removed_customers"]:
            console.print("  removed: " + ", ".join(o["removed_customers"]))
        for r in o["skipped_events"]:
            console.print(
                f"  left out {r['event_id'] or '(no id)'} of {r['customer']}: {r['reason']}"
            )
        for r in o["failed"]:
            console.print(f"  [red]failed[/] {r['customer']} (left as it was): {r['reason']}")

    emit({"ok": not out["failed"], **out}, as_json, render)
    if out["failed"]:
        raise typer.Exit(1)


def worker(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="NATS URL (default RISKDESK_NATS_URL).")] = None,
    stream: Annotated[str, typer.Option(help="JetStream stream name.")] = ev_conn.DEFAULT_STREAM,
    prefix: Annotated[str, typer.Option(help="Subject prefix.")] = ev_conn.DEFAULT_PREFIX,
    durable: Annotated[str, typer.Option(help="Durable consumer name.")] = "riskdesk-worker",
    batch: Annotated[
        int,
        typer.Option(
            min=1,
            max=10000,
            help="Events per fetch and per transaction (a message holding a producer's batch "
            "counts as its events).",
        ),
    ] = 500,
    ack_wait: Annotated[
        float,
        typer.Option(min=0.5, help="Seconds before an unacknowledged message is redelivered."),
    ] = 30.0,
    tick_seconds: Annotated[
        float, typer.Option(min=0, help="Clock tick period (0 = never).")
    ] = 60.0,
    stop_when_idle: Annotated[
        float | None, typer.Option(help="Exit after this many idle seconds.")
    ] = None,
    partitions: Annotated[
        str | None,
        typer.Option(
            help=f"Consume only these partitions, e.g. 0-3 or 0,2,5 (of 0-"
            f"{ev_conn.DEFAULT_PARTITIONS - 1}); one durable consumer <durable>-p<n> each."
        ),
    ] = None,
    max_wait: Annotated[
        float,
        typer.Option(
            min=0.001,
            max=30,
            help="Seconds a fetch waits for its batch to fill (lower: less latency at low rates).",
        ),
    ] = 0.05,
    min_wait: Annotated[
        float,
        typer.Option(
            min=0.0005,
            max=30,
            help="Shortest wait for a batch to fill once messages flow (higher: fewer, larger "
            "batches and less CPU per event at moderate rates, a little more latency).",
        ),
    ] = 0.01,
    min_batch: Annotated[
        int,
        typer.Option(
            min=1,
            max=10000,
            help="Smallest fetch, in events: the fetch size starts here when the stream is "
            "near-empty and doubles up to --batch while a backlog builds.",
        ),
    ] = 20,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=ev_conn.DEFAULT_PARTITIONS,
            help="Worker processes, each over its own share of the partitions (1 per core).",
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Consume business events from NATS JetStream (ack after commit; idempotent)."""
    eng = engine(ctx)
    nats_url = url or get_settings().nats_url
    if partitions is not None and processes > 1:
        raise fail("give --partitions or --processes, not both", 2, as_json)
    try:
        parts = ev_conn.parse_partitions(partitions) if partitions is not None else None
    except ValueError as exc:
        raise fail(str(exc), 2, as_json) from None
    options: dict[str, Any] = {
        "stream": stream,
        "prefix": prefix,
        "durable": durable,
        "batch": batch,
        "ack_wait": ack_wait,
        "tick_seconds": tick_seconds,
        "stop_when_idle": stop_when_idle,
        "max_wait": max_wait,
        "min_wait": min_wait,
        "min_batch": min_batch,
    }
    try:
        if processes > 1:
            stats = ev_conn.run_worker_processes(
                eng.url.render_as_string(hide_password=False), nats_url, processes, **options
            )
        else:
            ev_conn.tune_gc_for_worker()
            stats = asyncio.run(ev_conn.run_worker(eng, nats_url, partitions=parts, **options))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except OSError as exc:
        raise fail(f"NATS error: {type(exc).__name__}: {exc}", 1, as_json) from None
    emit({"ok": True, **stats.as_dict()}, as_json, None)


# --------------------------------------------------------------------------- rules


def _load_body(path: Path, as_json: bool) -> Any:
    if not path.is_file():
        raise fail(f"no such file: {path}", 2, as_json)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise fail(f"{path}: not valid JSON: {exc}", 1, as_json) from None


@rules_app.command("list")
def rules_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List rule set versions."""
    with session_scope(engine(ctx)) as s:
        repo.ensure_default_rules(s)
        rows = [repo.rule_set_dict(r) for r in repo.list_rule_sets(s)]
    emit(
        {"rule_sets": rows},
        as_json,
        lambda o: _table(
            "rule sets",
            ["version", "status", "rules", "created_by", "published_at", "note"],
            o["rule_sets"],
        ),
    )


@rules_app.command("show")
def rules_show(
    ctx: typer.Context,
    version: Annotated[
        int | None, typer.Argument(help="Version (default: the published one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a rule set with its rules."""
    with session_scope(engine(ctx)) as s:
        repo.ensure_default_rules(s)
        try:
            out = repo.rule_set_dict(repo.get_rule_set(s, version), with_body=True)
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None

    def render(o: dict[str, Any]) -> None:
        console.print(f"rule set v{o['version']} ({o['status']})")
        _table(
            "rules",
            ["id", "severity", "points", "title"],
            [{**r, "title": r["title"]["en"]} for r in o["body"]["rules"]],
        )

    emit(out, as_json, render)


@rules_app.command("draft")
def rules_draft(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Rule set JSON.")],
    note: Annotated[str | None, typer.Option(help="What changed.")] = None,
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Validate a rule set and store it as a new draft version."""
    body = _load_body(file, as_json)
    with session_scope(engine(ctx)) as s:
        repo.ensure_default_rules(s)
        try:
            rs = repo.draft_rule_set(s, body, actor=actor, note=note)
        except RuleError as exc:
            raise fail(f"invalid rule set: {exc}", 1, as_json) from None
        out = repo.rule_set_dict(rs)
    emit(
        {"ok": True, **out},
        as_json,
        lambda o: console.print(f"draft version {o['version']} stored"),
    )


@rules_app.command("dry-run")
def rules_dry_run(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A draft version number or a rule set JSON file.")],
    as_json: JsonOpt = False,
) -> None:
    """Replay the stored event history with a rule set: alerts it would have raised."""
    with session_scope(engine(ctx)) as s:
        repo.ensure_default_rules(s)
        try:
            if version.isdigit():  # a stored version: its summary is kept with it
                out = repo.dry_run_version(s, int(version))
            else:
                out = repo.dry_run(s, _load_body(Path(version), as_json))
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None
        except RuleError as exc:
            raise fail(f"invalid rule set: {exc}", 1, as_json) from None

    def render(o: dict[str, Any]) -> None:
        console.print(f"{o['events']} events → {o['alerts']} alerts for {o['customers']} customers")
        _table(
            "by rule",
            ["rule", "alerts"],
            [{"rule": k, "alerts": v} for k, v in o["by_rule"].items()],
        )

    emit(out, as_json, render)


@rules_app.command("publish")
def rules_publish(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Version to publish.")],
    reason: Annotated[str | None, typer.Option(help="Why (audit log).")] = None,
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Publish a version; intake picks it up at its next batch."""
    with session_scope(engine(ctx)) as s:
        repo.ensure_default_rules(s)
        try:
            out = repo.rule_set_dict(repo.publish_rule_set(s, version, actor=actor, reason=reason))
        except (repo.MonitorError, RuleError) as exc:
            raise fail(str(exc), 1, as_json) from None
    emit({"ok": True, **out}, as_json, lambda o: console.print(f"version {o['version']} published"))


# --------------------------------------------------------------------------- alerts and cases


@alerts_app.command("list")
def alerts_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="open, closed or all.")] = "open",
    customer: Annotated[str | None, typer.Option(help="External customer id.")] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    lang: Annotated[str, typer.Option(help="en or zh.")] = "en",
    as_json: JsonOpt = False,
) -> None:
    """List alerts (newest first)."""
    with session_scope(engine(ctx)) as s:
        eng = repo.published_engine(s)
        rows = [
            repo.alert_dict(a, eng, lang)
            for a in repo.list_alerts(
                s,
                status=None if status == "all" else status,
                customer=customer,
                severity=severity,
                limit=limit,
            )
        ]
    emit(
        {"alerts": rows},
        as_json,
        lambda o: _table(
            "alerts",
            ["id", "customer", "rule", "severity", "status", "case_id", "hits", "title"],
            o["alerts"],
        ),
    )


@alerts_app.command("snooze")
def alerts_snooze(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="External customer id.")],
    rule: Annotated[str, typer.Argument(help="Rule id.")],
    until: Annotated[str, typer.Option(help="Last day of the snooze (YYYY-MM-DD).")],
    reason: Annotated[str, typer.Option(help="Why.")],
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Silence one rule for one customer until a date."""
    day = _date(until, as_json, "--until")
    with session_scope(engine(ctx)) as s:
        try:
            sn = repo.snooze(s, customer, rule, day, reason, actor=actor)
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None
        out = {"ok": True, "customer": sn.customer_ref, "rule": sn.rule_id, "until": sn.until}
    emit(
        out,
        as_json,
        lambda o: console.print(f"{o['rule']} snoozed for {o['customer']} until {o['until']}"),
    )


@cases_app.command("list")
def cases_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged or resolved (default: not resolved).")
    ] = None,
    assignee: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """List cases."""
    with session_scope(engine(ctx)) as s:
        rows = [repo.case_dict(c) for c in repo.list_cases(s, status=status, assignee=assignee)]
    emit(
        {"cases": rows},
        as_json,
        lambda o: _table(
            "cases",
            ["id", "customer", "status", "severity", "assignee", "sla_due_at", "escalation_level"],
            o["cases"],
        ),
    )


def _case_action(ctx: typer.Context, as_json: bool, fn: Any, *args: Any, **kw: Any) -> None:
    with session_scope(engine(ctx)) as s:
        try:
            case = fn(s, *args, **kw)
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None
        cid = getattr(case, "case_id", None) or case.id
        out = repo.case_dict(repo.get_case(s, cid))
    emit({"ok": True, **out}, as_json, lambda o: console.print(f"case {o['id']}: {o['status']}"))


@cases_app.command("show")
def cases_show(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument()],
    lang: Annotated[str, typer.Option(help="en or zh.")] = "en",
    as_json: JsonOpt = False,
) -> None:
    """Show a case with its alerts, comments and playbooks."""
    with session_scope(engine(ctx)) as s:
        try:
            out = repo.case_detail(s, repo.get_case(s, case_id), lang)
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None
    emit(out, as_json, None)


@cases_app.command("ack")
def cases_ack(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument()],
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a case."""
    _case_action(ctx, as_json, repo.acknowledge_case, case_id, actor=actor)


@cases_app.command("comment")
def cases_comment(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument()],
    text: Annotated[str, typer.Argument()],
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Add a comment to a case."""
    _case_action(ctx, as_json, repo.comment_case, case_id, text, actor=actor)


@cases_app.command("assign")
def cases_assign(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument()],
    user: Annotated[str, typer.Argument()],
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Assign a case to a user."""
    _case_action(ctx, as_json, repo.assign_case, case_id, user, actor=actor)


@cases_app.command("resolve")
def cases_resolve(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument()],
    outcome: Annotated[str, typer.Option(help=" or ".join(OUTCOMES))],
    reason: Annotated[str | None, typer.Option()] = None,
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Resolve a case with an outcome; its alerts are closed."""
    _case_action(ctx, as_json, repo.resolve_case, case_id, outcome, actor=actor, reason=reason)


# --------------------------------------------------------------------------- clock and notify


@clock_app.command("tick")
def clock_tick(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Date (default: today, UTC).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Age every customer to the date, raise what time alone causes, escalate late cases."""
    day = _date(as_of, as_json)
    eng = engine(ctx)
    with session_scope(eng) as s:
        out = repo.clock_tick(s, day, actor="clock tick")
    if out["alerts_new"] or out["cases_escalated"]:
        out["notifications"] = notify_conn.dispatch_pending(eng)
    emit({"ok": True, **out}, as_json, None)


@notify_app.command("subscribe")
def notify_subscribe(
    ctx: typer.Context,
    channel: Annotated[str, typer.Option(help="webhook or email.")],
    target: Annotated[str, typer.Option(help="URL or e-mail address.")],
    min_severity: Annotated[str, typer.Option(help="low, medium, high or critical.")] = "medium",
    user: Annotated[str | None, typer.Option(help="The user this is for.")] = None,
    digest: Annotated[
        bool, typer.Option("--digest", help="Daily digest instead of each alert.")
    ] = False,
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a webhook or an e-mail address to alerts (a webhook's signing secret is shown once)."""
    with session_scope(engine(ctx)) as s:
        try:
            sub = repo.add_subscription(
                s, channel, target, min_severity=min_severity, user=user, digest=digest, actor=actor
            )
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None
        out = {
            "ok": True,
            "id": sub.id,
            "channel": sub.channel,
            "target": sub.target,
            "min_severity": sub.min_severity,
            "digest": sub.digest,
            "secret": sub.secret,
        }
    emit(out, as_json, None)


@notify_app.command("list")
def notify_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the subscriptions (secrets are never shown again)."""
    with session_scope(engine(ctx)) as s:
        uid = None
        if user is not None:
            uid = repo.user_id_of(s, user)
            if uid is None:
                raise fail(f"no user {user!r}", 1, as_json)
        items = [repo.subscription_dict(x) for x in repo.list_subscriptions(s, uid)]
    emit(
        {"ok": True, "items": items},
        as_json,
        lambda o: _table(
            "subscriptions",
            ["id", "channel", "target", "min_severity", "digest", "active"],
            o["items"],
        ),
    )


@notify_app.command("stop")
def notify_stop(
    ctx: typer.Context,
    sub_id: Annotated[int, typer.Argument(help="The subscription's id (see notify list).")],
    actor: ActorOpt = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Stop a subscription: nothing more is sent to it."""
    with session_scope(engine(ctx)) as s:
        try:
            out = repo.subscription_dict(repo.deactivate_subscription(s, sub_id, actor=actor))
        except repo.MonitorError as exc:
            raise fail(str(exc), 1, as_json) from None
    emit({"ok": True, **out}, as_json, None)


@notify_app.command("send")
def notify_send(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Send pending notifications now."""
    emit({"ok": True, **notify_conn.dispatch_pending(engine(ctx))}, as_json, None)


@notify_app.command("replay-dead-letters")
def notify_replay(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Send every dead-lettered notification again."""
    emit({"ok": True, **notify_conn.replay_dead_letters(engine(ctx))}, as_json, None)


@notify_app.command("digest")
def notify_digest(
    ctx: typer.Context,
    hours: Annotated[int, typer.Option(min=1, help="Alerts of the last N hours.")] = 24,
    as_json: JsonOpt = False,
) -> None:
    """Queue and send the digest to digest subscribers."""
    eng = engine(ctx)
    n = notify_conn.queue_digests(eng, datetime.now(UTC) - timedelta(hours=hours))
    emit({"ok": True, "digests": n, **notify_conn.dispatch_pending(eng)}, as_json, None)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.command("worker")(worker)
    app.add_typer(rules_app, name="rules")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(cases_app, name="cases")
    app.add_typer(clock_app, name="clock")
    app.add_typer(notify_app, name="notify")
