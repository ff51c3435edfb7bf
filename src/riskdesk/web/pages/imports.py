"""The import page: upload a CSV/XLSX file of one kind, see the counts or every bad row.

The same import as ``POST /api/v1/imports/{kind}`` and ``riskdesk import`` (all or nothing, the
same error list, the same upload limit); the page also lists every kind with its columns and
offers a template CSV per kind.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from riskdesk.api.deps import DbSession, require_roles
from riskdesk.api.errors import ApiError
from riskdesk.api.routers.imports import (
    IMPORT_ROLES,
    import_upload,
    kind_of,
    max_upload_bytes,
    received_upload,
    template_csv,
)
from riskdesk.connectors.import_schema import IMPORT_ORDER, KINDS, Kind
from riskdesk.domain.enums import Role
from riskdesk.store.models import User
from riskdesk.web.i18n import t
from riskdesk.web.nav import NavItem
from riskdesk.web.templating import render, request_lang

router = APIRouter(include_in_schema=False)
NAV = [NavItem("/imports", "imports.nav", 80, roles=(Role.ADMIN.value, *IMPORT_ROLES))]

Importer = Annotated[User, Depends(require_roles(*IMPORT_ROLES))]
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _kinds() -> list[dict[str, Any]]:
    out = []
    for name in IMPORT_ORDER:
        kind = KINDS[name]
        out.append(
            {
                "name": kind.name,
                "key": list(kind.key),
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "required": c.required,
                        "zh": next((a for a in c.aliases if _CJK.search(a)), ""),
                        "example": c.example,
                        "choices": list(c.choices),
                        "ref": c.ref,
                    }
                    for c in kind.columns
                ],
            }
        )
    return out


def _page(request: Request, status_code: int = 200, **extra: Any) -> Response:
    ctx = {
        "kinds": _kinds(),
        "max_mb": max_upload_bytes() // (1024 * 1024),
        "selected": None,
        **extra,
    }
    return render(request, "imports/imports.html", ctx, status_code=status_code)


@router.get("/imports")
def imports_page(request: Request, _: Importer, kind: str | None = None) -> Response:
    return _page(request, selected=kind if kind in KINDS else None)


@router.get("/imports/templates/{kind}.csv")
def template(kind: Annotated[str, Path(max_length=40)], _: Importer) -> Response:
    k: Kind = kind_of(kind)
    return Response(
        template_csv(k),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{k.name}.csv"'},
    )


@router.post("/imports")
async def upload(request: Request, session: DbSession, user: Importer) -> Response:
    lang = request_lang(request)
    actor = user.username
    await run_in_threadpool(session.commit)
    try:
        async with received_upload(request) as up:
            name = up.fields.get("kind", "")
            if name not in KINDS:
                return _page(request, 422, error=t("imports.error.kind", lang))
            dry = up.flag("dry_run")
            result = await run_in_threadpool(
                import_upload, request.app.state.engine, KINDS[name], up, dry_run=dry, actor=actor
            )
    except ApiError as exc:
        if exc.status == 413:
            message = t("imports.error.too_large", lang, mb=max_upload_bytes() // (1024 * 1024))
        elif exc.status in (415, 422):
            message = t("imports.error.file", lang)
        else:
            raise
        return _page(request, exc.status, error=message)
    return _page(
        request,
        200 if result["ok"] else 422,
        result=result,
        selected=name,
        dry_run=dry,
    )
