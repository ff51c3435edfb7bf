"""``riskdesk demo``: build a synthetic portfolio, run the batch cycle, serve the web app."""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from riskdesk.analytics.pipeline import steps
from riskdesk.commands._common import (
    CliState,
    JsonOpt,
    console,
    db_url,
    emit,
    engine,
    err_console,
    fail,
)
from riskdesk.demo.cases import CASES
from riskdesk.demo.generator import (
    BLOCK_SIZE,
    DEFAULT_AS_OF,
    LOAD_ORDER,
    Portfolio,
    combine_summaries,
    generate_parts,
)
from riskdesk.demo.load import DEMO_PASSWORD, customer_count, ensure_demo_users, load_portfolio

MAX_CUSTOMERS = 2_000_000


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def demo(
    ctx: typer.Context,
    case: Annotated[
        str, typer.Option("--case", help="Which portfolio: manufacturer or retailer.")
    ] = "manufacturer",
    customers: Annotated[
        int | None,
        typer.Option("--customers", help="Number of customers (default 2000 / 8000 by case)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same data.")] = 7,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help=f"Last day of the history (default {DEFAULT_AS_OF})."),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (same as the global --db).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Wipe the business tables first if there are customers.")
    ] = False,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Build the demo and exit; do not serve the web app.")
    ] = False,
    no_cycle: Annotated[
        bool, typer.Option("--no-cycle", help="Only build the data; skip the batch steps.")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Web server address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Web server port.")] = 8000,
    password: Annotated[
        str, typer.Option("--password", help="Password of the demo logins (8+ characters).")
    ] = DEMO_PASSWORD,
    as_json: JsonOpt = False,
) -> None:
    """Build a realistic synthetic portfolio, run every batch step and serve the web app."""
    if case not in CASES:
        raise fail(f"unknown case {case!r}; choose one of: {', '.join(CASES)}", 2, as_json)
    if customers is not None and not 1 <= customers <= MAX_CUSTOMERS:
        raise fail(f"--customers must be between 1 and {MAX_CUSTOMERS}", 2, as_json)
    try:
        on = date.fromisoformat(as_of) if as_of else DEFAULT_AS_OF
    except ValueError:
        raise fail(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}", 2, as_json) from None
    if len(password) < 8:
        raise fail("--password needs at least 8 characters", 2, as_json)
    if db:
        root = ctx.find_root()
        if isinstance(root.obj, CliState):
            root.obj.db_url = db
        else:
            root.obj = CliState(db_url=db)
    url = db_url(ctx)
    started = time.perf_counter()
    eng = engine(ctx)
    existing = customer_count(eng)
    if existing and not reset:
        raise fail(
            f"the database already holds {existing} customers; use --reset to wipe the "
            "business tables first, or point --db at another database",
            1,
            as_json,
            customers=existing,
        )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    )
    timings: dict[str, float] = {}
    n = customers if customers is not None else CASES[case].default_customers
    blocks = (n + BLOCK_SIZE - 1) // BLOCK_SIZE
    summaries: list[dict[str, Any]] = []
    gen_seconds = 0.0
    with bar:
        gen = bar.add_task(f"generating {case}", total=None)
        load = bar.add_task("loading", total=len(LOAD_ORDER) * blocks)

        def parts() -> Iterator[Portfolio]:
            nonlocal gen_seconds
            stream = generate_parts(
                case,
                customers,
                seed,
                on,
                progress=lambda msg: bar.update(gen, description=f"generating {msg}"),
            )
            while True:
                t = time.perf_counter()
                part = next(stream, None)
                gen_seconds += time.perf_counter() - t
                if part is None:
                    return
                summaries.append(part.summary)
                yield part

        t0 = time.perf_counter()
        counts = load_portfolio(
            eng,
            parts(),
            reset=reset,
            progress=lambda name, _rows: bar.update(load, advance=1, description=f"loaded {name}"),
        )
        bar.update(gen, total=1, completed=1, description=f"generated {case}")
        timings["generate"] = round(gen_seconds, 2)
        timings["load"] = round(time.perf_counter() - t0 - gen_seconds, 2)
        summary = combine_summaries(summaries)
        owners = sorted({o for r in CASES[case].regions for o in r.owners})
        login = ensure_demo_users(eng, owners, password)

        step_out: dict[str, Any] = {}
        failed: list[str] = []
        t0 = time.perf_counter()
        for step in [] if no_cycle else steps():
            task = bar.add_task(f"step {step.name}", total=None)

            def report(done: int, total: int, message: str = "", _t: Any = task) -> None:
                bar.update(_t, completed=done, total=total or None)

            s0 = time.perf_counter()
            try:
                step_out[step.name] = step.run(eng, on, progress=report)
            except Exception as exc:  # one broken step must not hide the others' results
                step_out[step.name] = {"error": f"{type(exc).__name__}: {exc}"}
                failed.append(step.name)
            timings[f"step_{step.name}"] = round(time.perf_counter() - s0, 2)
            bar.update(task, total=1, completed=1)
        timings["steps"] = round(time.perf_counter() - t0, 2)
    timings["total"] = round(time.perf_counter() - started, 2)

    result: dict[str, Any] = {
        "case": case,
        "seed": seed,
        "as_of": on.isoformat(),
        "database": _redact(url),
        "counts": {
            k: counts[k]
            for k in (
                "customers",
                "contracts",
                "orders",
                "invoices",
                "payments",
                "payment_allocations",
                "credit_notes",
                "external_signals",
                "market_indicators",
                "fx_rates",
            )
        },
        "defaults": summary["defaults"],
        "truth": {
            k: summary[k]
            for k in (
                "default_rate_per_year",
                "future_defaults",
                "contract_breaches",
                "downturn_industries",
            )
        },
        "steps": step_out,
        "login": login,
        "seconds": timings,
    }
    if no_cycle:
        result["cycle_skipped"] = True
    if failed:
        result["failed_steps"] = failed
    emit(result, as_json, _render)
    if failed:
        raise fail(f"batch step(s) failed: {', '.join(failed)}", 1, as_json=False)
    if no_serve:
        return
    if importlib.util.find_spec("riskdesk.web.server") is None:
        err_console.print("note: the web server module is not available yet; nothing to serve")
        return
    server = importlib.import_module("riskdesk.web.server")
    if not as_json:
        console.print(
            f"serving on [bold]http://{host}:{port}/[/] — log in as [bold]{login['username']}[/] "
            f"/ [bold]{login['password']}[/] (Ctrl+C to stop)"
        )
    server.serve(url, host, port)


def _render(r: dict[str, Any]) -> None:
    t = Table(title=f"demo portfolio: {r['case']} (seed {r['seed']}, as of {r['as_of']})")
    t.add_column("what")
    t.add_column("count", justify="right")
    for k, v in r["counts"].items():
        t.add_row(k, f"{v:,}")
    t.add_row("defaults (by as-of)", f"{r['defaults']:,}")
    t.add_row("default rate / year", f"{r['truth']['default_rate_per_year']:.1%}")
    t.add_row("contract breaches", f"{r['truth']['contract_breaches']:,}")
    console.print(t)
    if r["steps"]:
        s = Table(title="batch steps")
        s.add_column("step")
        s.add_column("summary")
        for name, summary in r["steps"].items():
            s.add_row(
                name,
                ", ".join(
                    f"{k}={v}" for k, v in (summary or {}).items() if not isinstance(v, dict | list)
                ),
            )
        console.print(s)
    elif r.get("cycle_skipped"):
        console.print("batch steps skipped (--no-cycle)")
    else:
        console.print("no batch steps are installed yet")
    sec = r["seconds"]
    console.print(
        f"database {r['database']}; generated in {sec['generate']} s, loaded in {sec['load']} s, "
        f"steps {sec['steps']} s, total {sec['total']} s"
    )
    login = r["login"]
    console.print(
        f"login: [bold]{login['username']}[/] / [bold]{login['password']}[/] (admin); sales users "
        f"{', '.join(login['sales_users'])} with the same password"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
