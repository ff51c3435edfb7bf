"""``riskdesk init`` and ``riskdesk customers``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from riskdesk.commands._common import JsonOpt, console, db_url, emit, engine, fail
from riskdesk.store.customers import customer_dict, find_customer
from riskdesk.store.db import migrate, session_scope
from riskdesk.store.models import Contract, Customer, Invoice, Order, Payment
from riskdesk.store.users import ensure_first_admin

customers_app = typer.Typer(help="List and show customers.", no_args_is_help=True)


def init(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create the database or upgrade it to the newest schema."""
    url = db_url(ctx)
    migrate(url)
    result: dict[str, Any] = {"ok": True, "database": _redact(url)}
    created = ensure_first_admin(engine(ctx))
    if created is not None:
        result["admin"] = {"username": created[0], "password": created[1]}
    emit(result, as_json, lambda r: console.print(_init_text(r)))


def _init_text(r: dict[str, Any]) -> str:
    text = f"[green]database ready[/] {r['database']}"
    if "admin" in r:
        text += (
            f"\nfirst admin: [bold]{r['admin']['username']}[/] one-time password: "
            f"[bold]{r['admin']['password']}[/] (shown once)"
        )
    return text


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@customers_app.command("list")
def customers_list(
    ctx: typer.Context,
    industry: Annotated[str | None, typer.Option(help="Only this industry.")] = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only customers of this sales owner.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List customers with optional filters."""
    with session_scope(engine(ctx)) as s:
        q = select(Customer)
        for col, val in (
            (Customer.industry, industry),
            (Customer.region, region),
            (Customer.owner, owner),
            (Customer.status, status),
        ):
            if val is not None:
                q = q.where(col == val)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = [
            customer_dict(c) for c in s.scalars(q.order_by(Customer.id).limit(limit).offset(offset))
        ]
    out = {"total": total, "customers": rows}

    def render(o: dict[str, Any]) -> None:
        t = Table(title=f"customers ({o['total']} total)")
        for col in ("id", "external_id", "name", "industry", "region", "owner", "status"):
            t.add_column(col)
        for r in o["customers"]:
            t.add_row(
                *(
                    str(r[c] or "")
                    for c in ("id", "external_id", "name", "industry", "region", "owner", "status")
                )
            )
        console.print(t)

    emit(out, as_json, render)


@customers_app.command("show")
def customers_show(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Internal id or external customer code.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one customer with counts of its records."""
    with session_scope(engine(ctx)) as s:
        c = find_customer(s, customer)
        if c is None:
            raise fail(f"no customer {customer!r}", 1, as_json)
        out = customer_dict(c)
        out["counts"] = {
            name: s.scalar(select(func.count()).select_from(model).where(model.customer_id == c.id))
            for name, model in (
                ("contracts", Contract),
                ("orders", Order),
                ("invoices", Invoice),
                ("payments", Payment),
            )
        }
    emit(out, as_json, None)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(customers_app, name="customers")
