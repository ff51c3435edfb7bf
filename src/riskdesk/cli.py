"""The ``riskdesk`` command.

Each module in :mod:`riskdesk.commands` (other than those starting with ``_``) exposes
``register(app)`` and adds its commands; this file only wires them together.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated

import typer

import riskdesk.commands as commands_pkg
from riskdesk import __version__
from riskdesk.commands._common import CliState

app = typer.Typer(
    name="riskdesk",
    help="Customer risk management: identify, assess, control, monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"riskdesk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: RISKDESK_DATABASE_URL or ./riskdesk.db)."
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """riskdesk — which customers can hurt us, how badly, and what are we doing about it."""
    ctx.obj = CliState(db_url=db)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"riskdesk.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
