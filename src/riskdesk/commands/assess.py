"""``riskdesk assess`` — score the whole portfolio with the scorecard and store the results."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress as RichProgress
from rich.table import Table

from riskdesk.assess.model_io import ModelFileError, load_model
from riskdesk.assess.scale import grade_info
from riskdesk.commands._common import JsonOpt, console, emit, engine, err_console, fail


def assess(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Assessment date YYYY-MM-DD (default today).")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Register this model file, make it active and score with it."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every customer: score, PD, grade, reasons, EAD, LGD and expected loss (kept with history).

    Without a registered model, one is trained from the portfolio's own history when it holds
    enough defaults; otherwise the command reports that a model is missing.
    """
    from riskdesk.analytics.steps import assess as step
    from riskdesk.store.assessments import register_model
    from riskdesk.store.db import session_scope

    try:
        on = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise fail(f"--as-of must be a date YYYY-MM-DD, got {as_of!r}", 2, as_json) from None
    content: dict[str, Any] | None = None
    if model is not None:
        try:
            _, content = load_model(model)
        except ModelFileError as exc:
            raise fail(str(exc), 2, as_json) from None
    eng = engine(ctx)
    try:
        if content is not None:
            with session_scope(eng) as s:
                register_model(s, content, actor="cli", activate=True)
        with RichProgress(console=err_console, transient=True, disable=as_json) as bar:
            task = bar.add_task("assess", total=None)

            def progress(done: int, total: int, message: str = "") -> None:
                bar.update(task, completed=done, total=total, description=message or "assess")

            out = step.run(eng, on, progress=progress)
    except (ModelFileError, ValueError) as exc:
        raise fail(str(exc), 2, as_json) from None
    if out.get("status") == "no_model":
        emit(
            {"ok": False, **out},
            as_json,
            lambda r: err_console.print(f"[yellow]no model:[/] {r['reason']}"),
        )
        raise typer.Exit(3)

    def render(r: dict[str, Any]) -> None:
        if "trained" in r:
            tr = r["trained"]
            console.print(
                f"[green]trained[/] {tr['model_version']} on {tr['train_rows']} snapshots "
                f"({tr['train_bads']} bad); out-of-time AUC {tr['oot_auc']}"
            )
        console.print(
            f"[green]{r['customers']} customers assessed[/] as of {r['as_of']} with "
            f"{r['model_version']}: mean PD {r['mean_pd']:.2%}, EAD {r['total_ead']:,.0f}, "
            f"EL {r['total_el']:,.0f}"
        )
        t = Table(title="customers by grade")
        t.add_column("grade")
        t.add_column("customers", justify="right")
        for g, n in r["by_grade"].items():
            t.add_row(f"{g} {grade_info(int(g)).label}", str(n))
        console.print(t)

    emit({"ok": True, **out}, as_json, render)


def register(app: typer.Typer) -> None:
    app.command("assess")(assess)
