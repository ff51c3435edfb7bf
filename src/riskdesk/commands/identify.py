"""``riskdesk identify``: run the detectors, list events, manage sources, measure warnings."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from pydantic import ValidationError
from rich.progress import Progress as RichProgress
from rich.table import Table
from sqlalchemy import text

from riskdesk.analytics.frames import load_frames
from riskdesk.analytics.steps.identify import run_identification
from riskdesk.commands._common import JsonOpt, console, emit, engine, err_console, fail
from riskdesk.domain.events import SEVERITY_RANK
from riskdesk.identify.catalogue import CatalogueError, parse_sources
from riskdesk.identify.config import IdentifyConfig
from riskdesk.identify.evaluate import evaluate
from riskdesk.store.customers import find_customer
from riskdesk.store.db import session_scope
from riskdesk.store.risk_events import (
    EventFilter,
    SourceConflict,
    event_dict,
    list_events,
    list_sources,
    load_config,
    save_config,
    stored_config,
    upsert_sources,
)

identify_app = typer.Typer(
    help="Identify risks: detectors, risk events, the risk-source catalogue.",
    invoke_without_command=True,
)
sources_app = typer.Typer(help="The risk-source catalogue.", no_args_is_help=True)
config_app = typer.Typer(help="Stored detector thresholds.", no_args_is_help=True)


def _date(value: str | None, name: str, as_json: bool) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{name} must be a date YYYY-MM-DD, got {value!r}", 2, as_json) from None


def _read_config(path: Path | None, as_json: bool) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        IdentifyConfig.merged(data)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}", 2, as_json) from None
    except json.JSONDecodeError as exc:
        raise fail(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})", 2, as_json) from None
    except (ValueError, ValidationError) as exc:
        raise fail(f"invalid configuration in {path}: {exc}", 2, as_json) from None
    return data


@contextmanager
def _progress(as_json: bool, label: str) -> Iterator[Callable[..., None] | None]:
    if as_json:
        yield None
        return
    with RichProgress(console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int, message: str = "") -> None:
            bar.update(task, completed=done, total=total or None, description=message or label)

        yield progress


def _truth(eng: Any) -> pd.DataFrame:
    with eng.connect() as conn:
        df = pd.read_sql_query(text("SELECT customer_id, default_date FROM demo_truth"), conn)
    df["default_date"] = pd.to_datetime(df["default_date"])
    return df


@identify_app.callback()
def identify(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Identify as of this date (YYYY-MM-DD); default today."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="JSON file overriding detector thresholds.")
    ] = None,
    do_evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Replay identification monthly and measure warnings against demo_truth "
            "(changes nothing; default date: the last order or invoice).",
        ),
    ] = False,
    min_severity: Annotated[
        str, typer.Option("--min-severity", help="Severity that counts as a warning.")
    ] = "medium",
    lead_days: Annotated[
        int, typer.Option("--lead-days", min=0, help="Warning needed this many days ahead.")
    ] = 60,
    as_json: JsonOpt = False,
) -> None:
    """Run every detector as of a date and open/update/close risk events (or --evaluate)."""
    if ctx.invoked_subcommand is not None:
        return
    on = _date(as_of, "--as-of", as_json)
    override = _read_config(config, as_json)
    if min_severity not in SEVERITY_RANK:
        raise fail(f"--min-severity must be one of {list(SEVERITY_RANK)}", 2, as_json)
    eng = engine(ctx)
    with session_scope(eng) as s:
        cfg = load_config(s, override)
    if do_evaluate:
        _evaluate(eng, on, cfg, min_severity, lead_days, as_json)
        return
    on = on or date.today()
    with _progress(as_json, "identify") as progress:
        out = run_identification(eng, on, cfg, progress=progress, actor="cli")

    def render(r: dict[str, Any]) -> None:
        console.print(
            f"[bold]identification as of {r['as_of']}[/]: opened {r['opened']}, "
            f"still open {r['still_open']}, closed {r['closed']} (open now {r['open_total']})"
        )
        t = Table(title="by source")
        for c in ("source", "opened", "still open", "closed"):
            t.add_column(c)
        for src, v in sorted(r["by_source"].items()):
            t.add_row(src, str(v["opened"]), str(v["still_open"]), str(v["closed"]))
        console.print(t)

    emit(out, as_json, render)


def _evaluate(
    eng: Any,
    on: date | None,
    cfg: IdentifyConfig,
    min_severity: str,
    lead_days: int,
    as_json: bool,
) -> None:
    truth = _truth(eng)
    if truth.empty:
        raise fail(
            "no ground truth: demo_truth is empty (build a demo with `riskdesk demo` first)",
            1,
            as_json,
        )
    frames = load_frames(eng)
    if on is None:
        last = [frames.orders["order_date"].max(), frames.invoices["issue_date"].max()]
        last = [x for x in last if pd.notna(x)]
        if not last:
            raise fail("no orders or invoices to replay", 1, as_json)
        on = max(last).date()
    with _progress(as_json, "replaying months") as progress:
        try:
            res = evaluate(
                frames,
                truth,
                on,
                cfg,
                min_severity=min_severity,
                lead_days=lead_days,
                progress=progress,
            )
        except ValueError as exc:
            raise fail(str(exc), 1, as_json) from None
    out = res.as_dict()

    def render(r: dict[str, Any]) -> None:
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{x * 100:.1f} %"

        console.print(
            f"[bold]evaluation as of {r['as_of']}[/] ({r['months']} monthly runs, "
            f"warning = severity ≥ {r['min_severity']}, default event excluded)\n"
            f"defaulters warned ≥ {r['lead_days']} days ahead: {r['warned']}/{r['defaulters']} "
            f"= {pct(r['warned_share'])}; median lead {r['median_lead_days']} days\n"
            f"healthy customers flagged in the last year: {r['flagged']}/{r['healthy']} "
            f"= {pct(r['false_alarm_share'])}; at a single month end "
            f"{pct(r['healthy_flagged_per_run_share'])}"
        )
        t = Table(title="by manifestation")
        for c in ("manifestation", "defaulters warned", "healthy flagged"):
            t.add_column(c)
        for m, v in r["by_manifestation"].items():
            t.add_row(m, pct(v["defaulters_warned_share"]), pct(v["healthy_flagged_share"]))
        console.print(t)

    emit(out, as_json, render)


@identify_app.command("events")
def events_cmd(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Customer code or internal id.")
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open events.")] = False,
    closed_only: Annotated[bool, typer.Option("--closed", help="Only closed events.")] = False,
    source: Annotated[str | None, typer.Option(help="Only this source (e.g. credit).")] = None,
    manifestation: Annotated[str | None, typer.Option(help="Only this manifestation.")] = None,
    severity: Annotated[
        str | None, typer.Option(help="Only this severity or worse (low/medium/high/critical).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List risk events, newest first."""
    if open_only and closed_only:
        raise fail("--open and --closed exclude each other", 2, as_json)
    if severity is not None and severity not in SEVERITY_RANK:
        raise fail(f"--severity must be one of {list(SEVERITY_RANK)}", 2, as_json)
    with session_scope(engine(ctx)) as s:
        f = EventFilter(
            source=source,
            manifestation=manifestation,
            min_severity=severity,
            open=True if open_only else (False if closed_only else None),
        )
        if customer is not None:
            c = find_customer(s, customer)
            if c is None:
                raise fail(f"no customer {customer!r}", 1, as_json)
            f.customer_id = c.id
        total, rows = list_events(s, f, limit=limit, offset=offset)
        out = {"total": total, "events": [event_dict(e) for e in rows]}

    def render(o: dict[str, Any]) -> None:
        t = Table(title=f"risk events ({o['total']} total)")
        for c in ("id", "customer", "manifestation", "severity", "subject", "first seen", "closed"):
            t.add_column(c)
        for e in o["events"]:
            t.add_row(
                str(e["id"]),
                str(e["customer_id"]),
                e["manifestation"],
                e["severity"],
                e["subject"],
                e["first_seen"],
                e["closed_on"] or "",
            )
        console.print(t)

    emit(out, as_json, render)


@sources_app.command("list")
def sources_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List built-in and user-defined risk sources with their manifestations."""
    with session_scope(engine(ctx)) as s:
        out = {"sources": list_sources(s)}

    def render(o: dict[str, Any]) -> None:
        t = Table(title="risk sources")
        for c in ("source", "name", "名称", "manifestations", "built-in"):
            t.add_column(c)
        for src in o["sources"]:
            t.add_row(
                src["code"],
                src["name_en"],
                src["name_zh"],
                "\n".join(f"{m['code']} ({m['severity']})" for m in src["manifestations"]),
                "yes" if src["builtin"] else "",
            )
        console.print(t)

    emit(out, as_json, render)


@sources_app.command("import")
def sources_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .json or .csv file of sources.")],
    as_json: JsonOpt = False,
) -> None:
    """Add or update user-defined sources from a file (all or nothing)."""
    fmt = file.suffix.lower().lstrip(".")
    try:
        content = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", 2, as_json) from None
    except UnicodeDecodeError:
        raise fail(f"{file} is not UTF-8 text", 2, as_json) from None
    try:
        defs = parse_sources(content, fmt)
    except CatalogueError as exc:
        errors = [e.as_dict() for e in exc.errors]
        if not as_json:
            for e in errors:
                err_console.print(f"line {e['line']}, {e['column']}: {e['reason']}")
        raise fail(f"{file} rejected: {exc}", 1, as_json, errors=errors) from None
    try:
        with session_scope(engine(ctx)) as s:
            counts = upsert_sources(s, defs, actor="cli")
    except SourceConflict as exc:
        raise fail(str(exc), 1, as_json) from None
    out = {
        "ok": True,
        **counts,
        "sources": [d.code for d in defs],
        "manifestations": sum(len(d.manifestations) for d in defs),
    }
    emit(
        out,
        as_json,
        lambda o: console.print(
            f"[green]imported[/] {len(o['sources'])} source(s) ({o['created']} new, "
            f"{o['updated']} updated), {o['manifestations']} manifestation(s)"
        ),
    )


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the effective thresholds (defaults with the stored overrides)."""
    with session_scope(engine(ctx)) as s:
        out = {"stored": stored_config(s), "effective": load_config(s).model_dump()}
    emit(out, as_json, None)


@config_app.command("save")
def config_save(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON overrides to store as the defaults.")],
    as_json: JsonOpt = False,
) -> None:
    """Store threshold overrides in the database (used by every later run)."""
    data = _read_config(file, as_json) or {}
    with session_scope(engine(ctx)) as s:
        cfg = save_config(s, data, actor="cli")
    emit({"ok": True, "effective": cfg.model_dump()}, as_json, None)


identify_app.add_typer(sources_app, name="sources")
identify_app.add_typer(config_app, name="config")


def register(app: typer.Typer) -> None:
    app.add_typer(identify_app, name="identify")
