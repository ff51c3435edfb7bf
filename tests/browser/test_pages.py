"""End to end in headless Chromium: log in, dashboard and customer page with their Plotly
charts, the language switch, and what a sales user sees. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def login(page, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)


def wait_for_charts(page, count: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(".plot-container svg.main-svg")
    page.wait_for_function(f"document.querySelectorAll('.plot-container').length >= {count}")


def test_login_dashboard_and_customer_page_render_charts(page, password, artifacts):
    page.goto("/")
    assert "/login" in page.url  # not logged in: sent to the login page
    page.screenshot(path=str(artifacts / "login_en.png"))
    login(page, "root", password)
    wait_for_charts(page, 3)
    assert page.locator("#kpis .kpi").count() >= 4
    assert page.locator("svg.main-svg").count() >= 3
    assert page.get_by_text("Receivables ageing").count() >= 1
    page.screenshot(path=str(artifacts / "dashboard_en.png"), full_page=True)

    page.click('nav.mainnav >> text="Customers"')
    page.wait_for_selector("#customer-table")
    page.screenshot(path=str(artifacts / "customers_en.png"), full_page=True)
    page.fill("input[name=q]", "acme")
    page.click("#customer-filters button[type=submit]")
    page.wait_for_selector("#customer-table")
    assert page.locator("#customer-table tbody tr").count() == 1
    page.click("#customer-table >> text=Acme Tools GmbH")
    page.wait_for_selector("#open-invoices")
    wait_for_charts(page, 1)
    assert page.locator("#chart-customer-ageing svg.main-svg").count() >= 1
    assert page.locator("#open-invoices tbody tr").count() == 4
    page.screenshot(path=str(artifacts / "customer_en.png"), full_page=True)


def test_dashboard_in_chinese_shows_chinese_chart_labels(page, password, artifacts):
    login(page, "rita", password)
    wait_for_charts(page, 3)
    page.click("button[data-lang=zh]")
    page.wait_for_selector("html[lang=zh-CN]")
    wait_for_charts(page, 3)
    # chart titles and axis labels are SVG text drawn by plotly.js
    chart_text = " ".join(page.locator("svg.main-svg text").all_text_contents())
    assert "应收账款账龄" in chart_text
    assert "按行业划分的客户" in chart_text
    assert "逾期90天以上" in chart_text
    assert "总敞口" in page.inner_text("#kpis")
    page.screenshot(path=str(artifacts / "dashboard_zh.png"), full_page=True)
    page.click('nav.mainnav >> text="客户"')
    page.wait_for_selector("#customer-table")
    page.click("#customer-table >> text=长城五金有限公司")
    wait_for_charts(page, 1)
    assert "未清发票" in page.content()
    page.screenshot(path=str(artifacts / "customer_zh.png"), full_page=True)


def test_language_choice_is_remembered_for_the_user(page, password):
    login(page, "audrey", password)
    page.click("button[data-lang=zh]")
    page.wait_for_selector("html[lang=zh-CN]")
    page.click("#logout")
    page.wait_for_url("**/login**")
    page.context.clear_cookies()
    login(page, "audrey", password)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "审计日志" in page.inner_text("nav.mainnav")


def test_sales_user_sees_only_own_customers(page, password, artifacts):
    login(page, "alice", password)
    page.goto("/customers")
    names = page.locator("#customer-table tbody tr td:nth-child(2)").all_inner_texts()
    assert names and "Beta Retail SA" not in names and "Acme Tools GmbH" in names
    response = page.goto("/customers?q=beta")
    assert response is not None and response.status == 200
    assert page.locator("#customer-table").count() == 0
    page.screenshot(path=str(artifacts / "customers_sales_en.png"), full_page=True)
