"""Shared plumbing for CLI commands: the database from ``--db``, ``--json`` output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from riskdesk.config import get_settings
from riskdesk.store.db import engine_for, is_current, migrate, normalise_url

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


@dataclass
class CliState:
    db_url: str | None = None


def db_url(ctx: typer.Context) -> str:
    """The database URL: ``--db`` if given, else ``RISKDESK_DATABASE_URL``, else ./riskdesk.db."""
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, CliState) else None
    url = state.db_url if state and state.db_url else get_settings().database_url
    return normalise_url(url)


def engine(ctx: typer.Context, *, migrate_if_needed: bool = True) -> Engine:
    """The engine for this invocation; the schema is created or upgraded when needed."""
    url = db_url(ctx)
    eng = engine_for(url)
    if migrate_if_needed and not is_current(eng):
        migrate(url, eng)
    return eng


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, ensure_ascii=False, sort_keys=False)


def emit(obj: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print ``obj`` as one JSON object (``--json``) or through ``render`` for people."""
    if as_json:
        sys.stdout.write(dumps(obj) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(obj)
    else:
        console.print_json(dumps(obj))


def fail(message: str, code: int = 1, as_json: bool = False, **extra: Any) -> typer.Exit:
    """Report an error (JSON on stdout with ``--json``) and return the Exit to raise."""
    if as_json:
        sys.stdout.write(dumps({"ok": False, "error": message, **extra}) + "\n")
    else:
        err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)
