"""The import page: upload form, kinds and templates, the result or the error table."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from riskdesk.config import get_settings
from riskdesk.connectors.import_schema import IMPORT_ORDER, KINDS
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import AuditEntry, Customer
from riskdesk.web.i18n import I18N_DIR

GOOD = "external_id,name,country\nW1,Wuhan Pumps,CN\nW2,Wien Ventile,AT\n"
BROKEN = "external_id,name,country\nW1,Wuhan Pumps,CN\nW2,,AT\nW3,Bad Land,XX\n"


def _names(url: str) -> dict[str, str]:
    eng = make_engine(url)
    with session_scope(eng) as s:
        out = dict(s.execute(select(Customer.external_id, Customer.name)).tuples().all())
    eng.dispose()
    return out


def _upload(web, csrf, text, kind="customers", name="kunden.csv", **fields):  # type: ignore[no-untyped-def]
    return web.post(
        "/imports",
        data={"kind": kind, "csrf_token": csrf, **fields},
        files={"file": (name, text.encode() if isinstance(text, str) else text, "text/csv")},
    )


def test_every_import_text_exists_in_english_and_chinese():
    data = json.loads((I18N_DIR / "imports.json").read_text(encoding="utf-8"))
    for key, value in data.items():
        assert value.get("en") and value.get("zh"), key
    for kind in KINDS.values():
        assert f"imports.kind.{kind.name}" in data and f"imports.kind_doc.{kind.name}" in data
        for col in kind.columns:
            assert f"imports.type.{col.type}" in data, col.type


@pytest.mark.parametrize(("user", "status"), [("rita", 200), ("alice", 403), ("audrey", 403)])
def test_the_page_is_for_admins_risk_managers_and_analysts(web, login, user, status):
    login(user)
    assert web.get("/imports").status_code == status
    assert ('href="/imports"' in web.get("/").text) is (status == 200)


def test_the_page_lists_every_kind_with_required_columns_and_templates(web, login):
    login("rita")
    html = web.get("/imports").text
    for name in IMPORT_ORDER:
        assert f'id="kind-{name}"' in html
        assert f'href="/imports/templates/{name}.csv"' in html
    cust = html.split('id="kind-customers"')[1].split("</details>")[0]
    assert '<tr class="required"><td><code>external_id</code></td><td>客户编号</td>' in cust
    zh = web.get("/imports?lang=zh").text
    assert "导入文件" in zh and "必填" in zh and "贷项通知单" in zh


def test_a_template_downloads_as_csv_with_every_column(web, login):
    login("rita")
    r = web.get("/imports/templates/invoices.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="invoices.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == [c.name for c in KINDS["invoices"].columns]
    assert len(rows) == 2 and rows[1][0] == "INV-1001"
    assert web.get("/imports/templates/widgets.csv").status_code == 404


def test_uploading_a_good_file_shows_the_counts(web, login, portfolio):
    csrf = login("rita")
    r = _upload(web, csrf, GOOD)
    assert r.status_code == 200, r.text
    assert 'id="import-result"' in r.text and "kunden.csv imported as Customers." in r.text
    assert '<div id="count-inserted"><strong>2</strong>new</div>' in r.text
    assert _names(portfolio.url)["W1"] == "Wuhan Pumps"
    again = _upload(web, csrf, GOOD)
    assert '<div id="count-unchanged"><strong>2</strong>unchanged</div>' in again.text
    eng = make_engine(portfolio.url)
    with session_scope(eng) as s:
        actors = list(
            s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "import.customers"))
        )
    eng.dispose()
    assert actors == ["rita", "rita"]


def test_a_dry_run_writes_nothing(web, login, portfolio):
    csrf = login("rita")
    r = _upload(web, csrf, GOOD, dry_run="true")
    assert "nothing was written" in r.text
    assert '<div id="count-inserted"><strong>2</strong>new</div>' in r.text
    assert "W1" not in _names(portfolio.url)


def test_a_bad_file_shows_every_bad_row_and_writes_nothing(web, login, portfolio):
    csrf = login("rita")
    r = _upload(web, csrf, BROKEN)
    assert r.status_code == 422
    table = r.text.split('id="error-table"')[1].split("</table>")[0]
    assert '<td class="num">3</td><td>name</td>' in table
    assert '<td class="num">4</td><td>country</td><td>XX</td>' in table
    assert "required value missing" in table
    assert "W1" not in _names(portfolio.url)
    zh = _upload(web, csrf, BROKEN, name="坏文件.csv")
    assert zh.status_code == 422 and "坏文件.csv" in zh.text


def test_the_reasons_of_bad_rows_are_shown_in_the_pages_language(web, login, portfolio):
    csrf = login("rita")
    en = _upload(web, csrf, BROKEN).text.split('id="error-table"')[1].split("</table>")[0]
    assert "required value missing" in en and "缺少必填值" not in en
    r = web.post(
        "/imports?lang=zh",
        data={"kind": "customers", "csrf_token": csrf},
        files={"file": ("kunden.csv", BROKEN.encode(), "text/csv")},
    )
    assert r.status_code == 422
    table = r.text.split('id="error-table"')[1].split("</table>")[0]
    assert '<td class="num">3</td><td>name</td><td></td><td>缺少必填值</td>' in table
    assert "<td>XX</td><td>不是 ISO 3166 两位字母国家代码（例如 DE、CN）</td>" in table
    assert "required value missing" not in table


def test_a_file_over_the_limit_is_refused_on_the_page(web, login, monkeypatch):
    monkeypatch.setenv("RISKDESK_IMPORT_MAX_UPLOAD_MB", "1")
    get_settings.cache_clear()
    try:
        csrf = login("rita")
        big = "external_id,name\n" + "X,y\n" * 400_000
        r = _upload(web, csrf, big)
        assert r.status_code == 413
        # refused by the CSRF middleware from Content-Length, before the body is read: the
        # error page with the import page's message (not the import page itself)
        assert "larger than 1 MiB" in r.text and 'class="card error-card"' in r.text
        # not the import page (its upload form), and nothing of the refused file echoed ("W1"
        # was checked here: it occurs in no page, only now and then inside the random CSRF
        # token, which failed the test about once in a hundred runs)
        assert 'name="file"' not in r.text and "X,y" not in r.text
    finally:
        get_settings.cache_clear()


def test_a_legacy_xls_or_no_kind_is_a_clear_message(web, login):
    csrf = login("rita")
    r = _upload(web, csrf, b"\xd0\xcf\x11\xe0", name="old.xls")
    assert r.status_code == 422 and "legacy .xls" in r.text
    r = _upload(web, csrf, GOOD, kind="")
    assert r.status_code == 422 and "Choose the kind of data." in r.text


def test_the_upload_form_needs_the_csrf_token(web, login, portfolio):
    login("rita")
    r = web.post(
        "/imports", data={"kind": "customers"}, files={"file": ("a.csv", GOOD.encode(), "text/csv")}
    )
    assert r.status_code == 403
    assert "W1" not in _names(portfolio.url)
