"""File import over HTTP: ``POST /imports/{kind}`` with a CSV or XLSX upload.

The same import as ``riskdesk import KIND FILE``: all or nothing (a file with any bad row writes
nothing and every bad row is listed with its line, column, value and reason), idempotent (rows
are matched by their key) and recorded in the audit log as ``import.<kind>`` by the uploader.

The upload is counted while it arrives: a body larger than ``RISKDESK_IMPORT_MAX_UPLOAD_MB`` is
refused with a 413 problem as soon as the limit is passed (immediately when ``Content-Length``
says so). The bytes are only ever parsed as CSV text or an XLSX workbook (openpyxl, read-only).
The web page ``/imports`` (``riskdesk.web.pages.imports``) uses the helpers of this module.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from riskdesk.api.deps import DbSession, require_roles
from riskdesk.api.errors import PROBLEM, ApiError
from riskdesk.api.security import FORM_OVERHEAD
from riskdesk.config import get_settings
from riskdesk.connectors.files import FileFormatError
from riskdesk.connectors.import_run import run_import
from riskdesk.connectors.import_schema import IMPORT_ORDER, KINDS, Kind
from riskdesk.domain.enums import Role
from riskdesk.store.models import User

router = APIRouter(tags=["imports"])

IMPORT_ROLES = (Role.RISK_MANAGER.value, Role.ANALYST.value)
"""Who may import (``admin`` always may)."""
Importer = Annotated[User, Depends(require_roles(*IMPORT_ROLES))]

MAX_ERRORS = 200
"""Most bad rows listed in a rejection (all are counted); the same as the CLI."""
SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm")
TRUE = frozenset({"1", "true", "yes", "on"})


def max_upload_bytes() -> int:
    """The largest accepted file (``RISKDESK_IMPORT_MAX_UPLOAD_MB``, default 50 MiB)."""
    return get_settings().import_max_upload_mb * 1024 * 1024


def kind_of(name: str) -> Kind:
    """The import kind called ``name`` (``credit-notes`` = ``credit_notes``), else 404."""
    key = name.strip().lower().replace("-", "_")
    if key not in KINDS:
        raise ApiError(
            404, "Not found", f"unknown kind {name!r}; use one of: {', '.join(IMPORT_ORDER)}"
        )
    return KINDS[key]


def safe_filename(name: str | None) -> str:
    """The base name of an uploaded file, reduced to letters, digits, ``. _ -`` and spaces."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    if not base:
        base = "upload.csv"
    if len(base) > 120:
        stem, dot, suffix = base.rpartition(".")
        base = (stem[:110] + dot + suffix[:9]) if dot else base[:120]
    return base


def too_large(limit: int) -> ApiError:
    mib = limit / (1024 * 1024)
    return ApiError(
        413,
        "File too large",
        f"the upload is larger than the limit of {mib:g} MiB; split the file or import it "
        "with the command line (riskdesk import KIND FILE)",
    )


class _Overflow(Exception):
    """The request body passed the upload limit."""


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _Overflow
        return message

    return wrapped


@dataclass
class Upload:
    """An uploaded file saved under its (sanitised) own name in a private temporary folder."""

    path: Path
    fields: dict[str, str]

    @property
    def name(self) -> str:
        return self.path.name

    def flag(self, name: str) -> bool:
        return self.fields.get(name, "").strip().lower() in TRUE


@asynccontextmanager
async def received_upload(request: Request, field: str = "file") -> AsyncIterator[Upload]:
    """Read a ``multipart/form-data`` body with one file in ``field``; 413 past the limit.

    The temporary folder and the file are removed when the block ends.
    """
    limit = max_upload_bytes()
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            415,
            "Unsupported media type",
            f"send the file as multipart/form-data in the field {field!r}",
            field=field,
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise too_large(limit)
    reader = Request(request.scope, _counting(request.receive, limit + FORM_OVERHEAD))
    try:
        form = await reader.form(max_files=1, max_fields=20)
    except _Overflow:
        raise too_large(limit) from None
    try:
        upload = form.get(field)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422, "Invalid input", f"no file in the form field {field!r}", field=field
            )
        if upload.size is not None and upload.size > limit:
            raise too_large(limit)
        name = safe_filename(upload.filename)
        if name.lower().endswith(".xls"):
            raise ApiError(
                422,
                "Invalid input",
                "legacy .xls workbooks are not supported; save as .xlsx or CSV",
                field=field,
            )
        if not name.lower().endswith(SUFFIXES):
            raise ApiError(
                422, "Invalid input", "upload a CSV (.csv) or an XLSX (.xlsx) file", field=field
            )
        with tempfile.TemporaryDirectory(prefix="riskdesk-upload-") as tmp:
            path = Path(tmp) / name
            with open(path, "wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1 << 20)
            yield Upload(path, fields)
    finally:
        await form.close()


def _rejected(kind: str, file: str, exc: FileFormatError) -> dict[str, Any]:
    """A file that cannot be read at all, reported like the CLI does (one problem, no line)."""
    problem = {"line": None, "column": "", "value": None, "reason": str(exc), "reason_zh": exc.zh}
    return {
        "ok": False,
        "kind": kind,
        "file": file,
        "rows": 0,
        "error_count": 1,
        "errors_shown": 1,
        "errors": [problem],
    }


def import_upload(
    engine: Engine, kind: Kind, upload: Upload, *, dry_run: bool, actor: str
) -> dict[str, Any]:
    """Run the import of ``upload`` (blocking: call it in a worker thread).

    Returns the CLI's result object: ``ok`` with the counts, or the rejection with its errors.
    A database conflict (e.g. a concurrent import of the same keys) is a 409.
    """
    try:
        result = run_import(
            engine, kind.name, upload.path, dry_run=dry_run, actor=actor, max_errors=MAX_ERRORS
        )
    except FileFormatError as exc:
        return _rejected(kind.name, upload.name, exc)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ApiError(409, "Conflict", f"database error, nothing imported: {reason}") from None
    return result.as_dict()


# ---------------------------------------------------------------------------------------------
# what the kinds look like (for the API and the page) and template files


def kind_info(kind: Kind) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "description": kind.doc,
        "key": list(kind.key),
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "required": c.required,
                "description": c.doc,
                "example": c.example,
                "aliases": list(c.aliases),
                "choices": list(c.choices),
            }
            for c in kind.columns
        ],
    }


def template_csv(kind: Kind) -> bytes:
    """A CSV template: the header (every column) and one example row; UTF-8 with a BOM so
    that Excel shows Chinese text correctly."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.name for c in kind.columns])
    writer.writerow([c.example for c in kind.columns])
    return buf.getvalue().encode("utf-8-sig")


# ---------------------------------------------------------------------------------------------
# endpoints


class ImportColumn(BaseModel):
    name: str
    type: str
    required: bool
    description: str
    example: str
    aliases: list[str]
    choices: list[str]


class ImportKind(BaseModel):
    kind: str
    description: str
    key: list[str]
    columns: list[ImportColumn]


class ImportOut(BaseModel):
    ok: bool
    kind: str
    file: str
    dry_run: bool
    rows: int
    inserted: int
    updated: int
    unchanged: int


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A CSV (, ; or tab separated) or XLSX file.",
                        },
                        "dry_run": {
                            "type": "boolean",
                            "description": "Validate and count, write nothing.",
                        },
                    },
                }
            }
        },
    }
}


@router.get(
    "/imports", response_model=list[ImportKind], summary="The import kinds and their columns"
)
def list_kinds(_: Importer) -> list[dict[str, Any]]:
    return [kind_info(KINDS[k]) for k in IMPORT_ORDER]


@router.post(
    "/imports/{kind}",
    response_model=ImportOut,
    summary="Import a CSV or XLSX file (all or nothing)",
    responses={
        413: {"description": "The file is larger than the upload limit."},
        422: {"description": "The file was rejected: every bad row is listed in `errors`."},
    },
    openapi_extra=UPLOAD_BODY,
)
async def import_file(
    kind: str,
    request: Request,
    session: DbSession,
    user: Importer,
    dry_run: Annotated[bool, Query(description="Validate and count, write nothing.")] = False,
) -> Any:
    """Upload ``file`` (multipart) as ``kind``; nothing is written unless every row is valid."""
    k = kind_of(kind)
    actor = user.username
    # end the request session's transaction: the import writes on its own connection
    await run_in_threadpool(session.commit)
    async with received_upload(request) as upload:
        dry = dry_run or upload.flag("dry_run")
        out = await run_in_threadpool(
            import_upload, request.app.state.engine, k, upload, dry_run=dry, actor=actor
        )
    if out["ok"]:
        return out
    body = {
        "type": "about:blank",
        "title": "File rejected",
        "status": 422,
        "detail": f"{out['error_count']} problem(s) in {out['file']}; nothing was imported",
        **out,
    }
    return JSONResponse(body, status_code=422, media_type=PROBLEM)
