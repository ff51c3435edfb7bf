"""Web-session secret and CSRF protection.

Session cookies are signed by Starlette's ``SessionMiddleware`` with ``RISKDESK_SECRET_KEY`` or,
when that is empty, a random secret generated once and kept in the ``app_settings`` table.

Every state-changing request (POST, PUT, PATCH, DELETE) that is authenticated by the session
cookie must carry the session's CSRF token, as the form field ``csrf_token`` or the header
``X-CSRF-Token``. Requests with a non-empty ``Authorization: Bearer`` token are exempt (a browser
never adds that header on its own, and such a request is authenticated by the token alone).

The same requests may not send a body larger than the import upload limit plus a little room
for the form (:func:`body_limit`): a larger ``Content-Length`` is refused with a 413 before any
of the body is read, and a body without one (chunked) is counted as it streams. The check runs
before the form is looked at, so a browser session cannot make the server hold a huge body.
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from riskdesk.api.errors import problem
from riskdesk.config import get_settings
from riskdesk.store.db import session_scope
from riskdesk.store.models import Setting

SECRET_KEY = "web_session_secret"  # noqa: S105 - the name of a setting, not a secret
CSRF_FIELD = "csrf_token"  # noqa: S105
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_PATHS = frozenset({"/login"})
FORM_OVERHEAD = 64 * 1024
"""Room for the multipart boundaries, part headers and the small form fields of an upload."""


def body_limit() -> int:
    """The largest body a cookie session may send: ``RISKDESK_IMPORT_MAX_UPLOAD_MB`` (the
    import upload limit) plus :data:`FORM_OVERHEAD`."""
    return get_settings().import_max_upload_mb * 1024 * 1024 + FORM_OVERHEAD


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


class _BodyTooLarge(Exception):
    """The request body passed :func:`body_limit` while the application was reading it."""


class _TokenFinder:
    """Feeds a ``multipart/form-data`` body to python-multipart until the CSRF field is read.

    Nothing is stored but the (short) value of the ``csrf_token`` part; the other parts, the
    file included, are skipped as they stream past.
    """

    MAX_TOKEN = 1024

    def __init__(self, boundary: bytes) -> None:
        self.token: str | None = None
        self.done = False
        self._field = b""
        self._value = b""
        self._name: bytes | None = None
        self._data = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        if chunk and not self.done:
            self._parser.write(chunk)

    def _part_begin(self) -> None:
        self._name, self._data = None, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.strip().lower() == b"content-disposition":
            _, params = parse_options_header(self._value)
            self._name = params.get(b"name")
        self._field = self._value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == CSRF_FIELD.encode() and len(self._data) <= self.MAX_TOKEN:
            self._data += data[start:end]

    def _part_end(self) -> None:
        if self._name == CSRF_FIELD.encode():
            self.token = self._data.decode("utf-8", "replace")
            self.done = True

    def _end(self) -> None:
        self.done = True


def _boundary(content_type: str) -> bytes | None:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    return boundary or None


def _wants_html(scope: Scope, headers: dict[str, str]) -> bool:
    path: str = scope["path"]
    return not path.startswith("/api/") and "text/html" in headers.get("accept", "")


class CSRFMiddleware:
    """Refuse cookie-authenticated state changes that lack the session's CSRF token (403), and
    bodies larger than :func:`body_limit` (413) before they are held in memory.

    The token is looked for in the ``X-CSRF-Token`` header first (then the body is not read
    at all), else in the form: a URL-encoded form is read (up to the limit) and parsed; a
    multipart form is parsed as it streams, only until its ``csrf_token`` part has passed, and
    only the chunks read so far are kept to hand on to the endpoint. The rest of the body
    streams to the endpoint, counted: past the limit the request is refused with a 413.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            # authenticated by the token, never by the cookie (an empty token falls back to
            # the cookie in ``session_user``, so such a request is checked like any other)
            await self.app(scope, receive, send)
            return
        session = scope.get("session") or {}
        if "user_id" not in session and scope["path"] not in LOGIN_PATHS:
            # not authenticated by cookie: nothing to forge; the endpoint answers 401 itself
            await self.app(scope, receive, send)
            return
        limit = body_limit()
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope, headers, receive, send, limit)
            return

        messages: list[Message] = []  # what was read to find the token, handed on unchanged
        seen = 0
        ended = False

        async def read() -> bytes | None:
            """The next chunk of the body (None at its end), counted against the limit."""
            nonlocal seen, ended
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                ended = True
                return None
            body: bytes = message.get("body", b"")
            seen += len(body)
            if seen > limit:
                raise _BodyTooLarge
            if not message.get("more_body", False):
                ended = True
            return body

        sent = headers.get(CSRF_HEADER)
        ctype = headers.get("content-type", "")
        try:
            if not sent and ctype.startswith("application/x-www-form-urlencoded"):
                chunks = []
                while not ended:
                    chunk = await read()
                    if chunk:
                        chunks.append(chunk)
                pairs = parse_qsl(b"".join(chunks).decode("latin-1"), keep_blank_values=True)
                sent = next((v for k, v in pairs if k == CSRF_FIELD), None)
            elif not sent and ctype.startswith("multipart/form-data"):
                boundary = _boundary(ctype)
                if boundary is not None:
                    finder = _TokenFinder(boundary)
                    try:
                        while not ended and not finder.done:
                            chunk = await read()
                            if chunk is not None:
                                finder.feed(chunk)
                    except MultipartParseError:
                        finder.token = None
                    sent = finder.token
        except _BodyTooLarge:
            await _too_large(scope, headers, receive, send, limit)
            return

        expected = session.get(CSRF_FIELD)
        if not sent or not isinstance(expected, str) or not secrets.compare_digest(sent, expected):
            response = problem(
                403,
                "CSRF check failed",
                "the form is missing its CSRF token or it is stale; reload the page and retry",
            )
            await response(scope, receive, send)
            return

        replay = list(messages)

        async def replay_receive() -> Message:
            nonlocal seen
            if replay:
                return replay.pop(0)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, replay_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _too_large(scope, headers, receive, send, limit)


async def _too_large(
    scope: Scope, headers: dict[str, str], receive: Receive, send: Send, limit: int
) -> None:
    """413: the error page for a browser on a web path, else a problem+json."""
    mib = (limit - FORM_OVERHEAD) // (1024 * 1024)
    response: Response
    if _wants_html(scope, headers):
        from riskdesk.web.i18n import t
        from riskdesk.web.templating import render, request_lang

        request = Request(scope, receive)
        lang = request_lang(request)
        response = render(
            request,
            "error.html",
            {
                "status": 413,
                "title": "Content too large",
                "detail": t("imports.error.too_large", lang, mb=mib),
            },
            status_code=413,
        )
    else:
        response = problem(
            413,
            "Content too large",
            f"the request body is larger than the limit of {mib} MiB "
            "(RISKDESK_IMPORT_MAX_UPLOAD_MB); split the file or import it with the command line "
            "(riskdesk import KIND FILE)",
        )
    response.headers["connection"] = "close"
    await response(scope, receive, send)
