"""Login, logout and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from riskdesk.api.deps import DbSession, session_user
from riskdesk.api.security import CSRF_FIELD, csrf_token
from riskdesk.store.audit import record
from riskdesk.store.users import authenticate, change_user
from riskdesk.web.i18n import LANGUAGES, t
from riskdesk.web.templating import render, request_lang

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only local paths (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, session: DbSession, next: str = "/") -> Response:
    if session_user(request, session) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    csrf_token(request.session)
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login")
def login(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    user = authenticate(session, username.strip(), password)
    if user is None:
        return render(
            request,
            "login.html",
            {
                "next": safe_next(next),
                "username": username,
                "error": t("login.failed", request_lang(request)),
            },
            status_code=401,
        )
    lang = user.language if user.language in LANGUAGES else request_lang(request)
    # the admin page's "last login" is the latest of these
    record(session, actor=user.username, action="user.login", entity="user", entity_id=user.id)
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["lang"] = lang
    request.session[CSRF_FIELD] = ""
    csrf_token(request.session)  # a fresh token for the new session
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.post("/language")
def set_language(
    request: Request,
    session: DbSession,
    lang: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Switch the language; remembered in the session and, when logged in, on the user."""
    if lang not in LANGUAGES:
        lang = "en"
    request.session["lang"] = lang
    user = session_user(request, session)
    if user is not None:
        change_user(session, user, "language", lang, actor=user.username, action="user.language")
    return RedirectResponse(safe_next(next), status_code=303)
