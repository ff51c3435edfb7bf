"""End to end in headless Chromium: the users & tokens page, the import page and readable
codes. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from urllib.request import Request, urlopen

import pytest

pytestmark = pytest.mark.browser


def login(page, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)


def _api_status(base: str, token: str) -> int:
    req = Request(f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    try:
        with urlopen(req, timeout=10) as r:  # noqa: S310 - our own local test server
            return int(r.status)
    except Exception as exc:  # urllib raises HTTPError for 4xx
        return int(getattr(exc, "code", 0))


def test_admin_creates_a_user_issues_and_revokes_a_token(page, password, artifacts, live_server):
    login(page, "root", password)
    page.click('nav.mainnav >> text="Users & tokens"')
    page.wait_for_selector("#user-table")
    page.fill("#new-user-form input[name=username]", "zhao.min")
    page.fill("#new-user-form input[name=full_name]", "赵敏")
    page.select_option("#new-user-form select[name=role]", "analyst")
    page.click("#new-user-form button[type=submit]")
    page.wait_for_selector("#secret-box")
    generated = page.inner_text("#secret-value").strip()
    assert len(generated) >= 12
    page.screenshot(path=str(artifacts / "admin_user_created_en.png"), full_page=True)
    assert page.locator("#user-zhao\\.min").count() == 1

    # a token for the new user, shown once, works against the API
    page.fill("#user-zhao\\.min input[name=name]", "excel macro")
    page.click("#user-zhao\\.min .token-form button")
    page.wait_for_selector("#secret-box")
    token = page.inner_text("#secret-value").strip()
    assert token.startswith("rdk_")
    assert _api_status(live_server, token) == 200
    page.goto("/admin/users")
    assert token not in page.content()

    # revoke it (the browser asks for confirmation first)
    page.once("dialog", lambda d: d.accept())
    row = page.locator("#token-table tr", has_text="excel macro")
    row.locator(".revoke-form button").click()
    page.wait_for_selector("#done")
    assert "Revoked" in page.locator("#token-table tr", has_text="excel macro").inner_text()
    assert _api_status(live_server, token) == 401

    # change the role with the row's own form
    page.select_option("#user-zhao\\.min select[name=role]", "risk_manager")
    page.click("#user-zhao\\.min .role-form button")
    page.wait_for_selector("#done")
    assert page.locator("#user-zhao\\.min select[name=role]").input_value() == "risk_manager"

    # in Chinese
    page.click("button[data-lang=zh]")
    page.wait_for_selector("html[lang=zh-CN]")
    assert "用户与 API 令牌" in page.inner_text("h1")
    page.screenshot(path=str(artifacts / "admin_users_zh.png"), full_page=True)
    page.click("button[data-lang=en]")
    page.wait_for_selector("html[lang=en]")


def test_non_admins_have_no_users_entry(page, password):
    login(page, "rita", password)
    assert page.locator('nav.mainnav a[href="/admin/users"]').count() == 0
    assert page.locator('nav.mainnav a[href="/imports"]').count() == 1
    r = page.goto("/admin/users")
    assert r is not None and r.status == 403


def test_import_page_uploads_a_file_and_lists_bad_rows(page, password, artifacts):
    login(page, "rita", password)
    page.click('nav.mainnav >> text="Import"')
    page.wait_for_selector("#upload-form")
    page.locator("#kind-invoices summary").click()
    assert page.locator("#kind-invoices .template-link").is_visible()

    good = "external_id,name,industry,region,country\nB1,Baltic Timber,construction,Europe,PL\n"
    page.select_option("#upload-form select[name=kind]", "customers")
    page.set_input_files(
        "#upload-form input[name=file]",
        files=[{"name": "neu.csv", "mimeType": "text/csv", "buffer": good.encode()}],
    )
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#import-result")
    assert page.inner_text("#count-inserted strong") == "1"
    page.screenshot(path=str(artifacts / "import_ok_en.png"), full_page=True)

    bad = "external_id,name,country\nB2,,PL\nB3,Ok,XX\n"
    page.set_input_files(
        "#upload-form input[name=file]",
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}],
    )
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#error-table")
    rows = page.locator("#error-table tbody tr").all_inner_texts()
    assert len(rows) == 2
    assert re.match(r"2\s+name", rows[0]) and re.match(r"3\s+country\s+XX", rows[1])
    page.screenshot(path=str(artifacts / "import_rejected_en.png"), full_page=True)

    # the new customer shows with readable industry / region / country names and codes on hover
    page.goto("/customers?q=Baltic&lang=zh")
    cell = page.locator("#customer-table tbody tr td.code").first
    assert cell.inner_text() == "建筑业" and cell.get_attribute("title") == "construction"
    page.click("#customer-table >> text=Baltic Timber")
    page.wait_for_selector("#customer-region")
    assert page.inner_text("#customer-region") == "Europe (Poland)"  # the session stays English
    page.goto(page.url + "?lang=zh")
    assert "欧洲" in page.inner_text("#customer-region") and "波兰" in page.inner_text(
        "#customer-region"
    )
