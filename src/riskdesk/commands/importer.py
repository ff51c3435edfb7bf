"""``riskdesk import KIND FILE``: load CSV/XLSX files, all-or-nothing and idempotent."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from riskdesk.commands._common import JsonOpt, console, emit, engine, err_console, fail
from riskdesk.connectors.files import FileFormatError, ImportFile
from riskdesk.connectors.import_run import paused_gc, run_import
from riskdesk.connectors.import_schema import IMPORT_ORDER, KINDS

PROGRESS_MIN_BYTES = 1 << 20
PROGRESS_MIN_ROWS = 20_000
SHOWN_ERRORS = 200
"""Most bad rows printed in the table (and in the JSON ``errors`` list); all are counted."""


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli"


class _Bar:
    """A Rich progress bar on stderr, started only for large files."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def open(self, f: ImportFile) -> None:
        if not self.enabled:
            return
        by_bytes = f.source.unit == "bytes"
        if f.total < (PROGRESS_MIN_BYTES if by_bytes else PROGRESS_MIN_ROWS):
            return
        cols: list[Any] = [TextColumn(f"importing {escape(f.kind.name)}"), BarColumn()]
        cols += [DownloadColumn(), TransferSpeedColumn()] if by_bytes else [MofNCompleteColumn()]
        cols.append(TimeRemainingColumn())
        self.progress = Progress(*cols, console=err_console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("import", total=f.total)

    def update(self, position: int, total: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=min(position, total))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _render_ok(r: dict[str, Any]) -> None:
    verb = "would import" if r["dry_run"] else "imported"
    console.print(
        f"[green]{verb}[/] {r['rows']} {escape(r['kind'])} rows from {escape(r['file'])}: "
        f"{r['inserted']} inserted, {r['updated']} updated, {r['unchanged']} unchanged"
        + (" [yellow](dry run: nothing written)[/]" if r["dry_run"] else "")
    )


def _render_errors(r: dict[str, Any]) -> None:
    t = Table(title=f"{escape(r['file'])}: {r['error_count']} problem(s)")
    for col in ("line", "column", "value", "reason"):
        t.add_column(col, overflow="fold")
    for e in r["errors"]:
        value = "" if e["value"] is None else str(e["value"])
        t.add_row(str(e["line"]), escape(e["column"]), escape(value), escape(e["reason"]))
    console.print(t)
    more = r["error_count"] - len(r["errors"])
    if more > 0:
        console.print(f"… and {more} more problem(s) not shown")
    err_console.print("[bold red]file rejected:[/] nothing was imported; fix the rows above")


def import_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(IMPORT_ORDER) + ".")],
    file: Annotated[Path, typer.Argument(help="A CSV (, ; or tab separated) or XLSX file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and count, write nothing.")
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who is importing (audit log).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import customers, contracts, orders, invoices, payments … from a CSV or XLSX file.

    All or nothing: a file with any bad row changes nothing and every bad row is listed
    (exit status 2). Rows are matched by their key, so importing a file twice is harmless.
    """
    name = kind.strip().lower().replace("-", "_")
    if name not in KINDS:
        raise fail(f"unknown kind {kind!r}; use one of: {', '.join(IMPORT_ORDER)}", 1, as_json)
    if not file.is_file():
        raise fail(f"no such file: {file}", 1, as_json)
    eng = engine(ctx)
    bar = _Bar(enabled=not as_json)
    try:
        with paused_gc():
            result = run_import(
                eng,
                name,
                file,
                dry_run=dry_run,
                actor=actor or _actor(),
                progress=bar.update,
                on_open=bar.open,
                max_errors=SHOWN_ERRORS,
            )
    except SQLAlchemyError as exc:
        # e.g. another writer inserted the same key concurrently: nothing was committed
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(f"database error, nothing imported: {reason}", 1, as_json) from None
    except FileFormatError as exc:
        problem = {
            "line": None,
            "column": "",
            "value": None,
            "reason": str(exc),
            "reason_zh": exc.zh,
        }
        raise fail(
            f"{file.name}: {exc}", 2, as_json, kind=name, file=file.name, errors=[problem]
        ) from None
    finally:
        bar.close()
    out = result.as_dict()
    if result.ok:
        emit(out, as_json, _render_ok)
        return
    emit(out, as_json, _render_errors)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
