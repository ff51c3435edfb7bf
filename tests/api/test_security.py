"""The CSRF middleware: token from the header or the form, and the body limit before the form.

These tests drive :class:`CSRFMiddleware` as ASGI with a session already in the scope (what
Starlette's ``SessionMiddleware`` puts there) and a streaming body that records how much of it
was consumed, so they show what the middleware reads before it answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from riskdesk.api.security import FORM_OVERHEAD, CSRFMiddleware, body_limit
from riskdesk.config import get_settings

TOKEN = "s3cret-token-of-the-session"
BOUNDARY = "----riskdeskboundary"
MIB = 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(autouse=True)
def _one_mib_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RISKDESK_IMPORT_MAX_UPLOAD_MB", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class Body:
    """A request body sent in chunks; ``consumed`` counts the bytes the server pulled."""

    def __init__(self, data: bytes, chunk: int = CHUNK) -> None:
        self.parts = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
        self.consumed = 0
        self.total = len(data)

    async def receive(self) -> dict[str, Any]:
        if not self.parts:
            return {"type": "http.disconnect"}
        part = self.parts.pop(0)
        self.consumed += len(part)
        return {"type": "http.request", "body": part, "more_body": bool(self.parts)}


class Endpoint:
    """The application behind the middleware: parses the form (or reads the body)."""

    def __init__(self) -> None:
        self.called = False
        self.form: dict[str, Any] = {}
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        request = Request(scope, receive)
        if request.headers.get("content-type", "").startswith("multipart/"):
            form = await request.form()
            self.form = {
                k: (v if isinstance(v, str) else (await v.read()).decode()) for k, v in form.items()
            }
            await form.close()
        else:
            self.body = await request.body()
        await JSONResponse({"ok": True})(scope, receive, send)


def multipart(fields: list[tuple[str, str | bytes]]) -> bytes:
    out = b""
    for name, value in fields:
        out += f"--{BOUNDARY}\r\n".encode()
        if isinstance(value, bytes):
            out += f'Content-Disposition: form-data; name="{name}"; filename="f.csv"\r\n'.encode()
            out += b"Content-Type: text/csv\r\n\r\n" + value + b"\r\n"
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def call(
    body: Body,
    *,
    ctype: str = f"multipart/form-data; boundary={BOUNDARY}",
    length: bool = True,
    headers: dict[str, str] | None = None,
    path: str = "/api/v1/imports/customers",
    session: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], bytes, Endpoint]:
    endpoint = Endpoint()
    raw = {"content-type": ctype, **(headers or {})}
    if length:
        raw["content-length"] = str(body.total)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in raw.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
        "session": {"user_id": 1, "csrf_token": TOKEN} if session is None else session,
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(CSRFMiddleware(endpoint)(scope, body.receive, send))
    start = sent[0]
    hdrs = {k.decode(): v.decode() for k, v in start["headers"]}
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], hdrs, content, endpoint


def test_the_limit_is_the_upload_limit_plus_room_for_the_form():
    assert body_limit() == MIB + FORM_OVERHEAD


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read():
    body = Body(multipart([("csrf_token", TOKEN), ("file", b"x" * (3 * MIB))]))
    status, headers, content, endpoint = call(body)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert "larger than the limit of 1 MiB" in json.loads(content)["detail"]
    assert body.consumed == 0 and not endpoint.called


def test_a_streamed_upload_over_the_limit_is_refused_once_the_limit_is_passed():
    # no Content-Length (chunked): the token comes first, the file streams to the endpoint
    # and the middleware stops it one chunk past the limit
    body = Body(multipart([("csrf_token", TOKEN), ("file", b"x" * (8 * MIB))]))
    status, _, content, endpoint = call(body, length=False)
    assert status == 413 and json.loads(content)["status"] == 413
    assert endpoint.called
    assert body_limit() < body.consumed <= body_limit() + CHUNK
    assert body.consumed < body.total / 7


def test_a_streamed_upload_with_the_token_last_is_refused_at_the_limit_without_the_endpoint():
    body = Body(multipart([("file", b"x" * (8 * MIB)), ("csrf_token", TOKEN)]))
    status, _, _, endpoint = call(body, length=False)
    assert status == 413
    assert not endpoint.called
    assert body.consumed <= body_limit() + CHUNK


def test_the_header_token_lets_the_body_stream_unread_and_still_counted():
    body = Body(multipart([("file", b"x" * (4 * MIB))]))
    status, _, _, endpoint = call(body, length=False, headers={"x-csrf-token": TOKEN})
    assert status == 413 and endpoint.called
    assert body.consumed <= body_limit() + CHUNK


@pytest.mark.parametrize("token", [None, "", "forged", TOKEN + "x"])
def test_a_wrong_or_missing_header_token_is_refused_without_reading_the_body(token):
    # a header with a value is the only token looked at, even if the form has the right one;
    # an absent or empty header sends the middleware to the form, which has none here
    if token:
        body = Body(multipart([("csrf_token", TOKEN), ("file", b"a,b\n")]))
    else:
        body = Body(multipart([("file", b"a,b\n")]))
    headers = {} if token is None else {"x-csrf-token": token}
    status, _, content, endpoint = call(body, headers=headers)
    assert status == 403 and not endpoint.called
    assert json.loads(content)["title"] == "CSRF check failed"
    if token:
        assert body.consumed == 0


def test_a_wrong_form_token_is_refused_after_reading_only_the_start_of_the_upload():
    body = Body(multipart([("csrf_token", "forged"), ("file", b"x" * (MIB // 2))]))
    status, _, _, endpoint = call(body)
    assert status == 403 and not endpoint.called
    assert body.consumed == CHUNK


def test_a_valid_upload_reaches_the_endpoint_intact():
    data = ("external_id,name\n" + "X,y\n" * 50_000).encode()  # 200 kB over several chunks
    body = Body(multipart([("csrf_token", TOKEN), ("kind", "customers"), ("file", data)]))
    status, _, _, endpoint = call(body, length=False)
    assert status == 200
    assert endpoint.form == {"csrf_token": TOKEN, "kind": "customers", "file": data.decode()}
    assert body.consumed == body.total


def test_a_url_encoded_form_needs_the_token_and_reaches_the_endpoint_intact():
    form = "lang=zh&next=%2Fcustomers&csrf_token=" + TOKEN
    status, _, _, endpoint = call(
        Body(form.encode()), ctype="application/x-www-form-urlencoded", path="/language"
    )
    assert status == 200 and endpoint.body == form.encode()
    for bad in ("lang=zh", "lang=zh&csrf_token=forged", "csrf_token="):
        status, _, _, endpoint = call(
            Body(bad.encode()), ctype="application/x-www-form-urlencoded", path="/language"
        )
        assert status == 403 and not endpoint.called


def test_a_url_encoded_form_over_the_limit_is_refused():
    big = ("csrf_token=" + TOKEN + "&note=" + "x" * (2 * MIB)).encode()
    body = Body(big)
    status, _, _, endpoint = call(
        body, ctype="application/x-www-form-urlencoded", path="/language", length=False
    )
    assert status == 413 and not endpoint.called
    assert body.consumed <= body_limit() + CHUNK


def test_a_json_body_on_a_cookie_session_needs_the_header():
    status, _, _, endpoint = call(Body(b'{"a": 1}'), ctype="application/json")
    assert status == 403 and not endpoint.called
    status, _, _, endpoint = call(
        Body(b'{"a": 1}'), ctype="application/json", headers={"x-csrf-token": TOKEN}
    )
    assert status == 200 and endpoint.body == b'{"a": 1}'


def test_a_broken_multipart_body_is_a_csrf_refusal_not_a_crash():
    body = Body(b"--" + BOUNDARY.encode() + b"\r\nno headers here at all\x00\r\n\r\n")
    status, _, _, endpoint = call(body)
    assert status == 403 and not endpoint.called


def test_bearer_requests_and_requests_without_a_session_are_left_to_the_endpoint():
    big = multipart([("file", b"x" * (2 * MIB))])
    status, _, _, endpoint = call(Body(big), headers={"authorization": "Bearer abc"})
    assert status == 200 and endpoint.called  # the endpoint applies its own limit
    status, _, _, endpoint = call(Body(big), session={})
    assert status == 200 and endpoint.called


@pytest.mark.parametrize("auth", ["Bearer ", "Bearer    ", "bearer"])
def test_an_empty_bearer_token_does_not_exempt_a_cookie_session_from_the_check(auth):
    # an empty token falls back to the cookie session, so the CSRF token is still required
    status, _, _, endpoint = call(
        Body(b'{"a": 1}'), ctype="application/json", headers={"authorization": auth}
    )
    assert status == 403 and not endpoint.called
