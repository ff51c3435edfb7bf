"""Web-session secret and CSRF protection.

Session cookies are signed by Starlette's ``SessionMiddleware`` with ``RISKDESK_SECRET_KEY`` or,
when that is empty, a random secret generated once and kept in the ``app_settings`` table.

Every state-changing request (POST, PUT, PATCH, DELETE) that is authenticated by the session
cookie must carry the session's CSRF token, as the form field ``csrf_token`` or the header
``X-CSRF-Token``. Requests with an ``Authorization: Bearer`` header are exempt (a browser never
adds that header on its own).
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from riskdesk.api.errors import problem
from riskdesk.store.db import session_scope
from riskdesk.store.models import Setting

SECRET_KEY = "web_session_secret"  # noqa: S105 - the name of a setting, not a secret
CSRF_FIELD = "csrf_token"  # noqa: S105
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_PATHS = frozenset({"/login"})


def session_secret(engine: Engine, configured: str = "") -> str:
    """The configured secret, or the one stored in ``app_settings`` (created on first use)."""
    if configured:
        return configured
    with session_scope(engine) as s:
        row = s.get(Setting, SECRET_KEY)
        if row is not None and isinstance(row.value, str) and row.value:
            return row.value
        value = secrets.token_urlsafe(48)
        s.add(Setting(key=SECRET_KEY, value=value))
    # another process may have raced us: re-read the winner
    with session_scope(engine) as s:
        row = s.get(Setting, SECRET_KEY)
        return str(row.value) if row is not None else value


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The CSRF token of a web session (created when missing)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


class CSRFMiddleware:
    """Refuse cookie-authenticated state changes that lack the session's CSRF token (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        session = scope.get("session") or {}
        if "user_id" not in session and scope["path"] not in LOGIN_PATHS:
            # not authenticated by cookie: nothing to forge; the endpoint answers 401 itself
            await self.app(scope, receive, send)
            return
        # read the whole body once, then replay it for the endpoint
        messages: list[Message] = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            more = bool(message.get("more_body", False))
        replay = list(messages)

        async def replay_receive() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        sent = headers.get(CSRF_HEADER)
        if not sent:
            ctype = headers.get("content-type", "")
            if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                probe_msgs = list(messages)

                async def probe_receive() -> Message:
                    if probe_msgs:
                        return probe_msgs.pop(0)
                    return {"type": "http.request", "body": b"", "more_body": False}

                try:
                    form = await Request(scope, probe_receive).form()
                    value = form.get(CSRF_FIELD)
                    sent = value if isinstance(value, str) else None
                except Exception:
                    sent = None
        expected = session.get(CSRF_FIELD)
        if not sent or not isinstance(expected, str) or not secrets.compare_digest(sent, expected):
            response = problem(
                403,
                "CSRF check failed",
                "the form is missing its CSRF token or it is stale; reload the page and retry",
            )
            await response(scope, replay_receive, send)
            return
        await self.app(scope, replay_receive, send)
