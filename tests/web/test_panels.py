"""Panels contributed by other modules appear on the pages; a failing one is skipped."""

from __future__ import annotations

import textwrap

import riskdesk.web.panels as panels_pkg

PANELS = textwrap.dedent(
    """
    from riskdesk.web.panels import Panel

    def customer_panels(session, customer, lang):
        title = "Limit" if lang == "en" else "额度"
        return [Panel(title=title, html=f"<p id='limit-panel'>{customer.external_id}</p>", order=5)]

    def dashboard_panels(session, user, lang):
        return [Panel(title="Watchlist", html="<p id='watch-panel'>ok</p>", order=1)]
    """
)
BROKEN = textwrap.dedent(
    """
    def customer_panels(session, customer, lang):
        raise RuntimeError("boom")

    def dashboard_panels(session, user, lang):
        raise RuntimeError("boom")
    """
)


def test_panels_are_collected_and_a_failing_module_is_skipped(
    web, login, portfolio, tmp_path, monkeypatch
):
    extra = tmp_path / "panels"
    extra.mkdir()
    (extra / "zz_test_good.py").write_text(PANELS)
    (extra / "zz_test_broken.py").write_text(BROKEN)
    (extra / "zz_test_unimportable.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.setattr(panels_pkg, "__path__", [*panels_pkg.__path__, str(extra)])
    login("rita")
    page = web.get(f"/customers/{portfolio.ids['C001']}")
    assert page.status_code == 200
    assert "<p id='limit-panel'>C001</p>" in page.text and ">Limit<" in page.text
    dash = web.get("/")
    assert dash.status_code == 200 and "<p id='watch-panel'>ok</p>" in dash.text
