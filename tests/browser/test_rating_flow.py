"""End to end in headless Chromium: two expert assessments, the heat map, a rating proposed by
one person and approved by another, then found in the history. Screenshots: tests/artifacts/."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def login(page, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)


def customer_id(page, code: str) -> int:  # type: ignore[no-untyped-def]
    found = page.request.get(f"/api/v1/customers?q={code}").json()
    return int(found["items"][0]["id"])


def test_assess_heatmap_propose_approve_and_history(page, password, artifacts):
    login(page, "rita", password)
    cid = customer_id(page, "C001")
    page.goto(f"/rating/customers/{cid}")
    page.wait_for_selector("#risk-matrix .plot-container svg.main-svg")

    for source, lik, imp, comment in (
        ("credit", "5", "4", "two invoices more than 90 days late"),
        ("contract", "3", "3", "minimum volume missed last quarter"),
    ):
        page.select_option("#source", source)
        page.select_option("#likelihood", lik)
        page.select_option("#impact", imp)
        page.fill("#comment", comment)
        page.click("#save-assessment")
        page.wait_for_selector(f"table.assessments >> text={comment}")
    assert page.locator("tr.assessment-row").count() == 2
    # the heat map shows both judgements as counts in their cells (SVG text by plotly.js)
    page.wait_for_selector("#risk-matrix svg.main-svg")
    cells = page.locator("#risk-matrix svg.main-svg text").all_text_contents()
    assert cells.count("1") >= 2
    assert page.get_by_text(re.compile(r"by \+2 notch")).count() == 1  # critical credit risk
    page.screenshot(path=str(artifacts / "rating_matrix_en.png"), full_page=True)

    page.select_option("#base-grade", "4")
    page.click("#propose-btn")
    page.wait_for_selector(".pending-rating")
    pending = page.locator(".pending-rating").first
    assert "Your own proposal" in pending.inner_text()  # rita cannot approve her own
    assert pending.locator(".approve-btn").count() == 0
    page.click("#logout")

    login(page, "root", password)
    page.goto(f"/rating/customers/{cid}")
    page.fill(".pending-rating .approve-reason", "agreed: payment arrears confirmed")
    page.click(".pending-rating .approve-btn")
    page.wait_for_selector("tr.rating-row[data-status=approved]")
    assert page.locator(".pending-rating").count() == 0
    row = page.locator("tr.rating-row[data-status=approved]").first.inner_text()
    assert "6 B" in row and "rita" in row and "root" in row  # grade 4 + 2 expert notches
    assert "6 B" in page.locator("#current-grade").inner_text()
    page.screenshot(path=str(artifacts / "rating_approved_en.png"), full_page=True)

    # the customer page shows the rating history panel; the dashboard the portfolio matrix
    page.goto(f"/customers/{cid}")
    page.wait_for_selector("table.rating-history tr.rating-row")
    page.goto("/")
    page.wait_for_selector("#portfolio-matrix .plot-container svg.main-svg")
    page.click("button[data-lang=zh]")
    page.wait_for_selector("html[lang=zh-CN]")
    page.goto(f"/rating/customers/{cid}")
    assert page.get_by_text("评级历史").count() + page.get_by_text("评级").count() >= 1
    page.wait_for_selector("#risk-matrix svg.main-svg")
    assert "可能性" in " ".join(page.locator("#risk-matrix svg.main-svg text").all_text_contents())
    page.screenshot(path=str(artifacts / "rating_zh.png"), full_page=True)
