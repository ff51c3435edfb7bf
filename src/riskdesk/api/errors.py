"""Problem details (RFC 9457): every error leaves the service as ``application/problem+json``.

Raise :class:`ApiError` from a router or dependency. Validation errors name the field that was
wrong, unknown paths and methods are 404/405 problems, and an unexpected exception becomes a
500 problem without leaking internals. Requests for HTML pages get an HTML error page instead
(and a redirect to the login page on 401).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("riskdesk.api")

PROBLEM = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid input",
    500: "Internal server error",
}


class ApiError(Exception):
    """An error with an HTTP status, shown to the client as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.headers = headers


def problem(
    status: int,
    title: str | None = None,
    detail: str | None = None,
    *,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def wants_html(request: Request) -> bool:
    """True for a browser asking for a page (not an API call)."""
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _html_error(request: Request, status: int, title: str, detail: str | None) -> Response:
    if status == 401:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    from riskdesk.web.templating import render

    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail},
        status_code=status,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"query", "path", "body", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if wants_html(request):
        return _html_error(request, exc.status, exc.title, exc.detail)
    return problem(exc.status, exc.title, exc.detail, field=exc.field, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": _field_name(e.get("loc", ())),
            "location": str(e.get("loc", ("",))[0]) if e.get("loc") else None,
            "message": e.get("msg", "invalid"),
        }
        for e in exc.errors()
    ]
    first = errors[0]["field"] if errors else None
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    if wants_html(request):
        return _html_error(request, 422, _TITLES[422], detail)
    return problem(422, _TITLES[422], detail, field=first, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    title = _TITLES.get(status, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else None
    if wants_html(request):
        return _html_error(request, status, title, detail)
    return problem(status, title, detail, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    if wants_html(request):
        return _html_error(request, 500, _TITLES[500], "An unexpected error occurred.")
    return problem(500, _TITLES[500], "An unexpected error occurred; it has been logged.")


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


_JSON_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
"""A ``\\u0000`` escape in JSON text (a backslash-u preceded by an even number of
backslashes: ``\\\\u0000`` is the six characters, not a NUL)."""


def _body_kind(scope: Any) -> str | None:
    """``"json"`` or ``"form"`` for a body whose text fields the application stores (JSON,
    URL-encoded forms), else None (multipart uploads carry files, whose bytes may be anything)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            if kind == b"application/json" or kind.endswith(b"+json"):
                return "json"
            if kind == b"application/x-www-form-urlencoded":
                return "form"
            return None
    return None


def _declared_length(scope: Any) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _holds_nul(body: bytes, kind: str) -> bool:
    if kind == "json":
        return b"\x00" in body or _JSON_NUL.search(body) is not None
    return b"\x00" in body or b"%00" in body


class RefuseNulMiddleware:
    """Refuse a request whose path, query string or body holds a NUL character with a 422
    problem: no text field of riskdesk may contain one, and PostgreSQL can neither store nor
    even compare against such a string (it would surface as a 500; SQLite stored it). Bodies
    are checked when they are JSON (a ``\\u0000`` escape) or a URL-encoded form (``%00``);
    the paths in ``body_exempt`` check their own bodies (the event intake rejects such an
    event alone, with the field named, and takes the rest of its batch).

    The JSON and form bodies it reads are held in memory (as FastAPI would hold them), so
    they are limited to ``body_limit()`` bytes: a larger declared ``Content-Length`` is a 413
    before any of the body is read, a longer stream is a 413 once it passes the limit. (Cookie
    sessions had this limit already, token requests had none.)"""

    def __init__(
        self,
        app: Any,
        body_exempt: tuple[str, ...] = (),
        body_limit: Callable[[], int] | None = None,
    ) -> None:
        self.app = app
        self.body_exempt = body_exempt
        self.body_limit = body_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
                where = "path" if "\x00" in scope.get("path", "") else "query"
                response = problem(422, detail=f"the {where} contains a NUL character")
                await response(scope, receive, send)
                return
            kind = _body_kind(scope) if scope.get("method") in ("POST", "PUT", "PATCH") else None
            if kind is not None and scope.get("path") not in self.body_exempt:
                limit = self.body_limit() if self.body_limit is not None else None
                messages: list[Any] = []
                body = bytearray()
                too_large = limit is not None and _declared_length(scope) > limit
                while not too_large:
                    message = await receive()
                    messages.append(message)
                    if message["type"] != "http.request":
                        break
                    body += message.get("body", b"")
                    too_large = limit is not None and len(body) > limit
                    if not message.get("more_body", False):
                        break
                if too_large:
                    response = problem(
                        413,
                        "Content too large",
                        f"the request body is larger than the limit of {limit} bytes",
                    )
                    await response(scope, receive, send)
                    return
                if _holds_nul(bytes(body), kind):
                    response = problem(
                        422,
                        detail="the body contains a NUL character (\\u0000), which no text "
                        "field can hold",
                    )
                    await response(scope, receive, send)
                    return

                async def replay() -> Any:
                    return messages.pop(0) if messages else await receive()

                await self.app(scope, replay, send)
                return
        await self.app(scope, receive, send)
