"""``riskdesk cycle``: run the whole batch loop (identify → assess → rate → control → monitor)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.progress import Progress as RichProgress
from rich.table import Table

from riskdesk.analytics.pipeline import run_cycle, steps
from riskdesk.commands._common import JsonOpt, console, emit, engine, err_console, fail


def cycle(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Run as of this date (YYYY-MM-DD); default today.")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these steps (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run every batch step of the daily cycle, in order, and print their summaries."""
    try:
        on = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise fail(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}", 2, as_json) from None
    known = [s.name for s in steps()]
    if only:
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise fail(f"unknown step(s) {unknown}; steps are {known}", 2, as_json)
    eng = engine(ctx)
    if as_json:
        out = run_cycle(eng, on, only=set(only) if only else None)
    else:
        with RichProgress(console=err_console, transient=True) as bar:
            task = bar.add_task("cycle", total=None)

            def progress(done: int, total: int, message: str = "") -> None:
                bar.update(
                    task, completed=done, total=total or None, description=message or "cycle"
                )

            out = run_cycle(eng, on, progress=progress, only=set(only) if only else None)
    result: dict[str, Any] = {"as_of": on.isoformat(), "steps": out}

    def render(r: dict[str, Any]) -> None:
        t = Table(title=f"batch cycle as of {r['as_of']}")
        t.add_column("step")
        t.add_column("summary")
        for name, summary in r["steps"].items():
            t.add_row(
                name,
                ", ".join(
                    f"{k}={v}" for k, v in (summary or {}).items() if not isinstance(v, dict | list)
                ),
            )
        console.print(t)

    emit(result, as_json, render)


def register(app: typer.Typer) -> None:
    app.command("cycle")(cycle)
