"""``POST /api/v1/imports/{kind}``: uploads, all-or-nothing, the CLI's error list, limits, roles."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select
from starlette.requests import Request
from typer.testing import CliRunner

from riskdesk.api.errors import ApiError
from riskdesk.api.routers.imports import (
    FORM_OVERHEAD,
    MAX_ERRORS,
    received_upload,
    safe_filename,
    template_csv,
)
from riskdesk.cli import app
from riskdesk.commands.importer import SHOWN_ERRORS
from riskdesk.config import get_settings
from riskdesk.connectors.import_schema import KINDS
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import AuditEntry, Customer, Invoice
from riskdesk.store.users import add_user, create_token

GOOD = (
    "external_id,name,industry,region,country,revenue,founded_on,status\n"
    "N1,Alpha,machinery,EU-West,DE,1000.00,2001-02-03,active\n"
    "N2,贝塔有限公司,electronics,East China,CN,2500.50,2010/05/06,inactive\n"
)
# three broken rows (lines 3, 5 and 6) among good ones
BROKEN = (
    "external_id,name,country,revenue,founded_on,status\n"
    "N1,Alpha renamed,DE,1000.00,2001-02-03,active\n"
    "N3,Gamma,DE,12.3.4,2001-02-03,active\n"
    "N4,Delta,FR,10.00,2001-02-03,active\n"
    "N5,,DE,10.00,2001-02-03,active\n"
    "N6,Zeta,DE,10.00,2001-02-30,active\n"
)


def _files(text: str | bytes, name: str = "customers.csv") -> dict[str, tuple[str, bytes, str]]:
    data = text.encode() if isinstance(text, str) else text
    return {"file": (name, data, "text/csv")}


def _customers(url: str) -> dict[str, str]:
    eng = make_engine(url)
    with session_scope(eng) as s:
        rows = dict(s.execute(select(Customer.external_id, Customer.name)).tuples().all())
    eng.dispose()
    return rows


def _audit(url: str, action: str) -> list[AuditEntry]:
    eng = make_engine(url)
    with session_scope(eng) as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        s.expunge_all()
    eng.dispose()
    return rows


@pytest.fixture
def analyst(portfolio) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An ``analyst`` user (the seed has none) and its bearer header."""
    eng = make_engine(portfolio.url)
    with session_scope(eng) as s:
        add_user(s, "ana", "analyst", "correct-horse-battery")
        token = create_token(s, "ana").token
    eng.dispose()
    return {"Authorization": f"Bearer {token}"}


def test_an_analyst_imports_a_csv_and_a_second_upload_changes_nothing(client, analyst, portfolio):
    r = client.post("/api/v1/imports/customers", headers=analyst, files=_files(GOOD))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "ok": True,
        "kind": "customers",
        "file": "customers.csv",
        "dry_run": False,
        "rows": 2,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
    }
    assert _customers(portfolio.url)["N2"] == "贝塔有限公司"
    again = client.post("/api/v1/imports/customers", headers=analyst, files=_files(GOOD)).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    entries = _audit(portfolio.url, "import.customers")
    assert [e.actor for e in entries] == ["ana", "ana"]
    assert entries[0].after["file"] == "customers.csv" and entries[0].after["inserted"] == 2


def test_a_file_with_bad_rows_is_a_422_listing_each_and_writes_nothing(client, as_user, portfolio):
    before = _customers(portfolio.url)
    audits = len(_audit(portfolio.url, "import.customers"))
    r = client.post(
        "/api/v1/imports/customers", headers=as_user("rita"), files=_files(BROKEN, "bad.csv")
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["title"] == "File rejected" and body["ok"] is False
    assert body["file"] == "bad.csv" and body["error_count"] == 3 and body["rows"] == 5
    assert [(e["line"], e["column"]) for e in body["errors"]] == [
        (3, "revenue"),
        (5, "name"),
        (6, "founded_on"),
    ]
    assert all(e["reason"] for e in body["errors"])
    assert [e["reason_zh"] for e in body["errors"]][1:] == [
        "缺少必填值",
        "日期 2001-02-30 不存在",
    ]
    assert body["errors"][0]["reason_zh"].startswith("不是小数")
    assert body["errors"][0]["value"] == "12.3.4"
    assert _customers(portfolio.url) == before  # N1 was valid but not written either
    assert len(_audit(portfolio.url, "import.customers")) == audits


def test_the_error_list_is_the_one_the_cli_prints(client, as_user, portfolio, tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(BROKEN)
    cli = CliRunner().invoke(
        app, ["--db", portfolio.url, "import", "customers", str(path), "--json"]
    )
    assert cli.exit_code == 2
    expected = json.loads(cli.stdout)
    body = client.post(
        "/api/v1/imports/customers", headers=as_user("rita"), files=_files(BROKEN, "bad.csv")
    ).json()
    for key in ("ok", "kind", "file", "rows", "error_count", "errors_shown", "errors"):
        assert body[key] == expected[key], key
    assert MAX_ERRORS == SHOWN_ERRORS


def test_only_the_first_errors_are_listed_but_all_are_counted(client, as_user):
    rows = "".join(f"X{i},,DE\n" for i in range(MAX_ERRORS + 50))
    body = client.post(
        "/api/v1/imports/customers",
        headers=as_user("root"),
        files=_files("external_id,name,country\n" + rows),
    ).json()
    assert body["error_count"] == MAX_ERRORS + 50
    assert body["errors_shown"] == len(body["errors"]) == MAX_ERRORS


@pytest.mark.parametrize("how", ["query", "form"])
def test_dry_run_counts_and_writes_nothing(client, as_user, portfolio, how):
    before = _customers(portfolio.url)
    if how == "query":
        r = client.post(
            "/api/v1/imports/customers?dry_run=true", headers=as_user("rita"), files=_files(GOOD)
        )
    else:
        r = client.post(
            "/api/v1/imports/customers",
            headers=as_user("rita"),
            files=_files(GOOD),
            data={"dry_run": "true"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["inserted"] == 2
    assert _customers(portfolio.url) == before
    assert _audit(portfolio.url, "import.customers") == []


def test_an_xlsx_workbook_is_imported(client, as_user, portfolio):
    wb = Workbook()
    ws = wb.active
    ws.title = "invoices"
    ws.append(["发票号", "客户编号", "issue_date", "due_date", "amount", "currency"])
    from datetime import date

    ws.append(["X-1", "C002", date(2026, 5, 1), date(2026, 5, 31), 1234.5, "EUR"])
    buf = io.BytesIO()
    wb.save(buf)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    r = client.post(
        "/api/v1/imports/invoices",
        headers=as_user("rita"),
        files={"file": ("Rechnungen Mai.xlsx", buf.getvalue(), xlsx)},
    )
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 1 and r.json()["file"] == "Rechnungen Mai.xlsx"
    eng = make_engine(portfolio.url)
    with session_scope(eng) as s:
        inv = s.scalar(select(Invoice).where(Invoice.external_id == "X-1"))
        assert inv is not None and str(inv.amount) == "1234.50"
    eng.dispose()


def test_a_file_that_cannot_be_read_is_rejected_with_its_reason(client, as_user):
    r = client.post(
        "/api/v1/imports/customers",
        headers=as_user("rita"),
        files={"file": ("fake.xlsx", b"PK\x03\x04 not really a zip", "application/zip")},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error_count"] == 1 and body["errors"][0]["line"] is None
    assert "XLSX" in body["errors"][0]["reason"]
    assert body["errors"][0]["reason_zh"].startswith("不是可读取的 XLSX 工作簿")
    empty = client.post(
        "/api/v1/imports/customers", headers=as_user("rita"), files=_files(b"", "empty.csv")
    ).json()
    assert "empty" in empty["errors"][0]["reason"]
    assert empty["errors"][0]["reason_zh"] == "文件是空的：第一行必须是列名"


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RISKDESK_IMPORT_MAX_UPLOAD_MB", "1")
    get_settings.cache_clear()
    yield 1024 * 1024
    get_settings.cache_clear()


def _big_csv(size: int) -> bytes:
    head = b"external_id,name,country\n"
    row = b"B0000001,Some customer name that is rather long,DE\n"
    return head + row * (size // len(row) + 1)


def test_an_upload_over_the_limit_is_a_413_problem(client, as_user, portfolio, small_limit):
    before = _customers(portfolio.url)
    r = client.post(
        "/api/v1/imports/customers",
        headers=as_user("rita"),
        files=_files(_big_csv(small_limit + 200_000)),
    )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "File too large" and "1 MiB" in r.json()["detail"]
    assert _customers(portfolio.url) == before
    # just under the limit is read (and rejected only for its repeated key)
    under = client.post(
        "/api/v1/imports/customers",
        headers=as_user("rita"),
        files=_files(_big_csv(small_limit - 100_000)),
    )
    assert under.status_code == 422
    assert under.json()["errors"][0]["reason"] == "duplicate key: already on line 2"


def test_a_chunked_upload_without_length_is_cut_off_at_the_limit(small_limit):
    """No Content-Length: the body is counted as it arrives and reading stops past the limit."""
    boundary = "riskdeskboundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + _big_csv(4 * small_limit)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    received = {"bytes": 0}

    async def receive() -> dict[str, object]:
        chunk = chunks.pop(0)
        received["bytes"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/imports/customers",
        "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())],
        "query_string": b"",
    }

    async def run() -> None:
        async with received_upload(Request(scope, receive)):
            raise AssertionError("the upload should have been refused")

    with pytest.raises(ApiError) as err:
        asyncio.run(run())
    assert err.value.status == 413
    assert received["bytes"] <= small_limit + FORM_OVERHEAD + 65536 < len(body)


@pytest.mark.parametrize(
    ("user", "status"), [("alice", 403), ("audrey", 403), (None, 401), ("rita", 200)]
)
def test_roles(client, as_user, user, status):
    headers = as_user(user) if user else {}
    r = client.post("/api/v1/imports/customers", headers=headers, files=_files(GOOD))
    assert r.status_code == status, r.text
    assert client.get("/api/v1/imports", headers=headers).status_code == status


def test_bad_requests_are_clear_problems(client, as_user):
    h = as_user("rita")
    r = client.post("/api/v1/imports/widgets", headers=h, files=_files(GOOD))
    assert r.status_code == 404 and "customers" in r.json()["detail"]
    r = client.post("/api/v1/imports/customers", headers=h, files=_files(GOOD, "old.xls"))
    assert r.status_code == 422 and ".xls" in r.json()["detail"]
    r = client.post("/api/v1/imports/customers", headers=h, files=_files(GOOD, "x.pdf"))
    assert r.status_code == 422
    r = client.post("/api/v1/imports/customers", headers=h, content=GOOD)
    assert r.status_code == 415
    r = client.post("/api/v1/imports/customers", headers=h, data={"dry_run": "true"})
    assert r.status_code in (415, 422)


def test_the_kinds_list_names_required_columns(client, as_user):
    kinds = client.get("/api/v1/imports", headers=as_user("rita")).json()
    assert [k["kind"] for k in kinds][:2] == ["customers", "contracts"]
    cust = kinds[0]
    required = [c["name"] for c in cust["columns"] if c["required"]]
    assert "external_id" in required and "name" in required
    assert "/api/v1/imports/{kind}" in client.get("/openapi.json").json()["paths"]


def test_credit_notes_spelt_with_a_dash_and_templates_import_cleanly(client, as_user):
    # each kind's template header is accepted (the example row may refer to unknown codes)
    for kind in KINDS.values():
        data = template_csv(kind)
        assert data.startswith(b"\xef\xbb\xbf")
        header = data.decode("utf-8-sig").splitlines()[0]
        assert header.split(",") == [c.name for c in kind.columns]
    r = client.post(
        "/api/v1/imports/fx-rates?dry_run=1",
        headers=as_user("rita"),
        files=_files(template_csv(KINDS["fx_rates"]), "fx.csv"),
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd.csv", "passwd.csv"),
        ("C:\\Users\\me\\客户 2026.xlsx", "客户 2026.xlsx"),
        ("", "upload.csv"),
        ("..", "upload.csv"),
        ("a;rm -rf$(x).csv", "a_rm -rf_x_.csv"),
    ],
)
def test_uploaded_file_names_are_reduced_to_a_safe_base_name(name, safe):
    assert safe_filename(name) == safe
    assert re.fullmatch(r"[\w.\- ]+", safe_filename(name))


def test_whatever_bytes_are_uploaded_the_answer_is_never_a_500(portfolio, as_user):
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from riskdesk.api.app import create_app

    headers = as_user("rita")
    header = b"external_id,name,country,revenue,founded_on\n"
    with TestClient(create_app(portfolio.url), raise_server_exceptions=False) as client:

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            data=st.one_of(
                st.binary(max_size=300),
                st.binary(max_size=300).map(lambda b: header + b),
                st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
            ),
            name=st.sampled_from(["a.csv", "a.xlsx", "a.tsv", "a.txt"]),
        )
        def check(data: bytes, name: str) -> None:
            r = client.post(
                "/api/v1/imports/customers?dry_run=true",
                headers=headers,
                files={"file": (name, data, "application/octet-stream")},
            )
            assert r.status_code in (200, 422), (data, r.text)

        check()


@pytest.mark.parametrize(
    ("code", "meaning"),
    [("XXX", "ISO 4217 code for 'no currency'"), ("XTS", "ISO 4217 code reserved for testing")],
)
def test_the_iso_4217_non_money_codes_are_refused_naming_what_they_mean(
    client, as_user, code, meaning
):
    csv = (
        "external_id,customer_id,issue_date,due_date,amount,currency\n"
        f"X1,C1,2024-03-05,2024-04-04,10.00,{code.lower()}\n"
    )
    r = client.post(
        "/api/v1/imports/invoices", headers=as_user("rita"), files=_files(csv, "inv.csv")
    )
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [(e["line"], e["column"], e["value"]) for e in errors] == [(2, "currency", code.lower())]
    assert errors[0]["reason"] == f"{meaning}: not a currency for a business document"
