"""``riskdesk serve``, ``riskdesk user``, ``riskdesk token`` and ``riskdesk audit``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from riskdesk.commands._common import JsonOpt, console, db_url, emit, engine, fail
from riskdesk.domain.enums import Role
from riskdesk.store.audit import verify
from riskdesk.store.db import session_scope
from riskdesk.store.models import AuditEntry, User
from riskdesk.store.users import UserError, add_user, create_token

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)

ROLES = ", ".join(r.value for r in Role)


def _user_dict(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "role": u.role,
        "full_name": u.full_name,
        "email": u.email,
        "language": u.language,
        "active": bool(u.active),
        "created_at": u.created_at,
    }


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name (login).")],
    role: Annotated[str, typer.Option("--role", "-r", help=f"One of: {ROLES}.")],
    password: Annotated[
        str | None, typer.Option(help="Password (at least 8 characters); generated when omitted.")
    ] = None,
    full_name: Annotated[str | None, typer.Option("--full-name", help="Display name.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    language: Annotated[str | None, typer.Option(help="Preferred language: en or zh.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user; the password is printed once."""
    if language is not None and language not in ("en", "zh"):
        raise fail("--language must be en or zh", 2, as_json)
    try:
        with session_scope(engine(ctx)) as s:
            u, pw = add_user(
                s,
                name,
                role,
                password,
                full_name=full_name,
                email=email,
                language=language,
                actor="cli",
            )
            out = _user_dict(u) | {"password": pw}
    except UserError as exc:
        raise fail(str(exc), 2, as_json) from exc
    emit(
        out,
        as_json,
        lambda o: console.print(
            f"[green]user {o['username']} ({o['role']}) created[/]; password: "
            f"[bold]{o['password']}[/] (shown once)"
        ),
    )


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List users."""
    with session_scope(engine(ctx)) as s:
        rows = [_user_dict(u) for u in s.scalars(select(User).order_by(User.id))]

    def render(o: dict[str, Any]) -> None:
        t = Table(title=f"users ({len(o['users'])})")
        for col in ("id", "username", "role", "full_name", "language", "active"):
            t.add_column(col)
        for r in o["users"]:
            t.add_row(
                str(r["id"]),
                r["username"],
                r["role"],
                r["full_name"] or "",
                r["language"] or "",
                "yes" if r["active"] else "no",
            )
        console.print(t)

    emit({"users": rows}, as_json, render)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str | None, typer.Option(help="A label, e.g. 'crm-sync'.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token for USER; it is printed once (``--json``: under ``"token"``)."""
    try:
        with session_scope(engine(ctx)) as s:
            issued = create_token(s, user, name=name, actor="cli")
    except UserError as exc:
        raise fail(str(exc), 2, as_json) from exc
    out = {
        "id": issued.id,
        "user": issued.user,
        "name": name,
        "prefix": issued.prefix,
        "token": issued.token,
    }
    emit(
        out,
        as_json,
        lambda o: console.print(
            f"token for [bold]{o['user']}[/] (shown once):\n{o['token']}", soft_wrap=True
        ),
    )


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Check the hash chain; exit 1 and name the first bad row when it was tampered with."""
    with session_scope(engine(ctx)) as s:
        result = verify(s)
    out = {
        "ok": result.ok,
        "checked": result.checked,
        "bad_id": result.bad_id,
        "problem": result.problem,
    }
    if not result.ok:
        if as_json:
            emit(out, True)
        else:
            console.print(
                f"[bold red]audit log tampered:[/] first bad row id {result.bad_id} "
                f"({result.problem}); {result.checked} rows checked"
            )
        raise typer.Exit(1)
    emit(out, as_json, lambda o: console.print(f"[green]audit log intact[/]: {o['checked']} rows"))


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. user.add.")] = None,
    entity: Annotated[str | None, typer.Option(help="Only this entity type.")] = None,
    entity_id: Annotated[str | None, typer.Option("--entity-id", help="Only this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many rows.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The newest audit entries first."""
    with session_scope(engine(ctx)) as s:
        q = select(AuditEntry)
        for col, val in (
            (AuditEntry.actor, actor),
            (AuditEntry.action, action),
            (AuditEntry.entity, entity),
            (AuditEntry.entity_id, entity_id),
        ):
            if val is not None:
                q = q.where(col == val)
        rows = [
            {
                "id": e.id,
                "ts": e.ts,
                "actor": e.actor,
                "action": e.action,
                "entity": e.entity,
                "entity_id": e.entity_id,
                "before": e.before,
                "after": e.after,
                "reason": e.reason,
            }
            for e in s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit))
        ]

    def render(o: dict[str, Any]) -> None:
        t = Table(title="audit log (newest first)")
        for col in ("id", "ts", "actor", "action", "entity", "entity_id"):
            t.add_column(col)
        for r in o["entries"]:
            t.add_row(
                str(r["id"]),
                r["ts"].strftime("%Y-%m-%d %H:%M:%S"),
                r["actor"],
                r["action"],
                r["entity"],
                r["entity_id"] or "",
            )
        console.print(t)

    emit({"entries": rows}, as_json, render)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="Worker processes (one per CPU core is a good start)."),
    ] = 1,
) -> None:
    """Run the web application and REST API."""
    from riskdesk.web.server import serve as run

    engine(ctx)  # create or upgrade the schema first
    console.print(f"riskdesk on http://{host}:{port}/  (API docs: /docs)")
    run(db_url(ctx), host=host, port=port, workers=workers)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
