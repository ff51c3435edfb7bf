"""Users and API tokens (admin only): list, create, change role, (de)activate, issue, revoke.

Every change is written to the audit log in the same transaction, with the admin as actor,
exactly like the API does (``user.add``, ``token.create`` through :mod:`riskdesk.store.users`,
``user.role``, ``user.deactivate``, ``user.reactivate`` and ``token.revoke`` here). A generated
password and a new token are shown once, in the response to the form that created them
(``Cache-Control: no-store``), and never stored anywhere but as their hash.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from riskdesk.api.deps import DbSession, require_roles
from riskdesk.api.errors import ApiError
from riskdesk.domain.enums import Role
from riskdesk.store.audit import record
from riskdesk.store.models import ApiToken, AuditEntry, User
from riskdesk.store.types import MAX_ID
from riskdesk.store.users import UserError, add_user, change_user, create_token
from riskdesk.web.i18n import LANGUAGES, t
from riskdesk.web.nav import NavItem
from riskdesk.web.templating import render, request_lang

router = APIRouter(prefix="/admin", include_in_schema=False)
NAV = [NavItem("/admin/users", "admin.nav", 90, roles=(Role.ADMIN.value,))]

Admin = Annotated[User, Depends(require_roles(Role.ADMIN.value))]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
ROLES = tuple(r.value for r in Role)
DONE = frozenset({"role", "deactivated", "reactivated", "revoked"})
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
"""The user names the API accepts too (``UserIn.username``)."""
LOGIN_ACTION = "user.login"
"""Written by the login page; the latest one per user is the user's last login."""


def _overview(session: Session) -> dict[str, Any]:
    users = list(session.scalars(select(User).order_by(User.username)))
    tokens = list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))
    logins: dict[str, datetime] = {
        str(uid): ts
        for uid, ts in session.execute(
            select(AuditEntry.entity_id, func.max(AuditEntry.ts))
            .where(AuditEntry.action == LOGIN_ACTION, AuditEntry.entity == "user")
            .group_by(AuditEntry.entity_id)
        )
        if uid is not None
    }
    names = {u.id: u.username for u in users}
    per_user: dict[int, dict[str, Any]] = {
        u.id: {"active_tokens": 0, "last_token_use": None} for u in users
    }
    for tok in tokens:
        info = per_user.setdefault(tok.user_id, {"active_tokens": 0, "last_token_use": None})
        if not tok.revoked:
            info["active_tokens"] += 1
        used = tok.last_used_at
        if used is not None and (info["last_token_use"] is None or used > info["last_token_use"]):
            info["last_token_use"] = used
    rows = [
        {
            "id": u.id,
            "username": u.username,
            "full_name": u.full_name,
            "email": u.email,
            "role": u.role,
            "language": u.language,
            "active": bool(u.active),
            "created_at": u.created_at,
            "last_login": logins.get(str(u.id)),
            **per_user[u.id],
        }
        for u in users
    ]
    token_rows = [
        {
            "id": tok.id,
            "user_id": tok.user_id,
            "user": names.get(tok.user_id, str(tok.user_id)),
            "name": tok.name,
            "prefix": tok.prefix,
            "created_at": tok.created_at,
            "last_used_at": tok.last_used_at,
            "revoked": bool(tok.revoked),
        }
        for tok in tokens
    ]
    return {"users": rows, "tokens": token_rows, "roles": ROLES, "languages": LANGUAGES}


def _page(
    request: Request,
    session: Session,
    admin: User,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    ctx = {**_overview(session), "me": admin.id, "form": {}, **extra}
    response = render(request, "admin/users.html", ctx, status_code=status_code)
    if extra.get("secret") is not None:
        # a password or token is on this page: never keep a copy in a cache
        response.headers["Cache-Control"] = "no-store"
    return response


def _user(session: Session, user_id: int) -> User:
    u = session.get(User, user_id)
    if u is None:
        raise ApiError(404, "Not found", f"no user {user_id}")
    return u


def _not_self(request: Request, admin: User, target: User) -> None:
    if target.id == admin.id:
        raise ApiError(409, "Conflict", t("admin.error.self", request_lang(request)))


def _back(done: str) -> Response:
    return RedirectResponse(f"/admin/users?done={done}", status_code=303)


@router.get("/users")
def users_page(
    request: Request,
    session: DbSession,
    admin: Admin,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    return _page(request, session, admin, done=done if done in DONE else None)


@router.post("/users")
def create_user(
    request: Request,
    session: DbSession,
    admin: Admin,
    username: Annotated[str, Form(max_length=64)],
    role: Annotated[str, Form(max_length=16)],
    full_name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=200)] = "",
    language: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    lang = request_lang(request)
    form = {
        "username": username,
        "role": role,
        "full_name": full_name,
        "email": email,
        "language": language,
    }
    name = username.strip()
    error: str | None = None
    if not USERNAME.fullmatch(name):
        error = t("admin.error.username", lang)
    elif role not in ROLES:
        error = t("admin.error.role", lang)
    elif language and language not in LANGUAGES:
        error = t("admin.error.language", lang)
    if error is None:
        try:
            user, password = add_user(
                session,
                name,
                role,
                full_name=full_name.strip() or None,
                email=email.strip() or None,
                language=language or None,
                actor=admin.username,
            )
        except UserError as exc:
            error = t("admin.error.exists", lang, name=name) if "exists" in str(exc) else str(exc)
        else:
            return _page(
                request,
                session,
                admin,
                status_code=201,
                secret={"kind": "password", "user": user.username, "value": password},
            )
    session.rollback()
    return _page(request, session, admin, status_code=422, error=error, form=form)


@router.post("/users/{user_id}/role")
def change_role(
    request: Request,
    user_id: IdPath,
    session: DbSession,
    admin: Admin,
    role: Annotated[str, Form(max_length=16)],
) -> Response:
    target = _user(session, user_id)
    _not_self(request, admin, target)
    if role not in ROLES:
        raise ApiError(422, "Invalid input", t("admin.error.role", request_lang(request)))
    change_user(session, target, "role", role, actor=admin.username, action="user.role")
    return _back("role")


@router.post("/users/{user_id}/active")
def set_active(
    request: Request,
    user_id: IdPath,
    session: DbSession,
    admin: Admin,
    active: Annotated[bool, Form()],
) -> Response:
    target = _user(session, user_id)
    _not_self(request, admin, target)
    action = "user.reactivate" if active else "user.deactivate"
    change_user(session, target, "active", active, actor=admin.username, action=action)
    return _back("reactivated" if active else "deactivated")


@router.post("/users/{user_id}/tokens")
def issue_token(
    request: Request,
    user_id: IdPath,
    session: DbSession,
    admin: Admin,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    target = _user(session, user_id)
    if not target.active:
        raise ApiError(409, "Conflict", t("admin.error.inactive", request_lang(request)))
    issued = create_token(session, target.username, name=name.strip() or None, actor=admin.username)
    return _page(
        request,
        session,
        admin,
        status_code=201,
        secret={"kind": "token", "user": issued.user, "value": issued.token},
    )


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: IdPath, session: DbSession, admin: Admin) -> Response:
    tok = session.get(ApiToken, token_id)
    if tok is None:
        raise ApiError(404, "Not found", f"no token {token_id}")
    if not tok.revoked:
        record(
            session,
            actor=admin.username,
            action="token.revoke",
            entity="user",
            entity_id=tok.user_id,
            before={"token_id": tok.id, "prefix": tok.prefix, "revoked": False},
            after={"token_id": tok.id, "prefix": tok.prefix, "revoked": True},
        )
        tok.revoked = True
    return _back("revoked")
