"""Readable industry / region / country codes on the customer pages and the dashboard."""

from __future__ import annotations

import json
import re

import pytest

from riskdesk.demo.cases import MANUFACTURER, RETAILER
from riskdesk.store.db import make_engine, session_scope
from riskdesk.store.models import Customer
from riskdesk.web.i18n import I18N_DIR, code_key, code_label, code_labels, country_name


def test_every_code_label_exists_in_english_and_chinese():
    data = json.loads((I18N_DIR / "codes.json").read_text(encoding="utf-8"))
    assert data
    for key, value in data.items():
        assert key.startswith(("code.industry.", "code.region.")), key
        assert value.get("en") and value.get("zh"), key
        assert value["en"] != value["zh"], key


@pytest.mark.parametrize("case", [MANUFACTURER, RETAILER], ids=lambda c: c.name)
def test_every_demo_industry_region_and_country_has_a_label(case):
    for ind in case.industries:
        assert code_label("industry", ind.code, "en") == ind.label
        assert code_label("industry", ind.code, "zh") not in (ind.code, ind.label)
    for reg in case.regions:
        # customers store the region's name, market indices its code: both are labelled
        for value in (reg.name, reg.code):
            assert code_label("region", value, "en") == reg.name
            zh = code_label("region", value, "zh")
            assert zh != value and re.search(r"[\u4e00-\u9fff]", zh), value
        for country in reg.countries:
            assert country_name(country, "en") != country
            assert re.search(r"[\u4e00-\u9fff]", country_name(country, "zh")), country


def test_import_schema_example_codes_have_labels():
    from riskdesk.connectors.import_schema import KINDS

    for kind in KINDS.values():
        for col in kind.columns:
            if col.name in ("industry", "region") and col.example:
                assert code_key(col.name, col.example) in json.loads(
                    (I18N_DIR / "codes.json").read_text(encoding="utf-8")
                ), (kind.name, col.name)


def test_labels_fall_back_to_the_code_and_stay_distinct():
    assert code_label("industry", "widgets", "zh") == "widgets"
    assert code_label("industry", None, "zh") == ""
    assert code_label("country", "XX", "en") == "XX"
    assert code_label("country", "cn", "zh") == "中国"
    assert code_label("country", "US", "en") == "United States"
    # two codes with one label would merge into one chart bar: they are told apart
    assert code_labels("region", ["East China", "EAST_CHINA", "Mars"], "en") == [
        "East China (East China)",
        "East China (EAST_CHINA)",
        "Mars",
    ]
    assert code_labels("industry", [None], "zh") == ["（未填写）"]


def _add_customer(url: str, **kw: object) -> int:
    eng = make_engine(url)
    with session_scope(eng) as s:
        c = Customer(currency="EUR", **kw)
        s.add(c)
        s.flush()
        cid = c.id
    eng.dispose()
    return cid


def test_customer_list_shows_labels_with_the_code_in_tooltips_and_filters(web, login, portfolio):
    _add_customer(portfolio.url, external_id="C090", name="Zeta Widgets", industry="widgets")
    login("root")
    html = web.get("/customers?lang=zh").text
    assert '<td class="code" title="machinery">机械制造</td>' in html
    assert '<td class="code" title="North">北区</td>' in html
    assert '<td class="code" title="widgets">widgets</td>' in html  # unknown: the code itself
    # the filter still sends the code, shows the label
    assert re.search(r'<option value="machinery"\s*title="machinery">机械制造</option>', html)
    filtered = web.get("/customers?industry=machinery&lang=en").text
    assert "Acme Tools GmbH" in filtered and "Beta Retail SA" not in filtered
    assert '<td class="code" title="machinery">Machinery</td>' in filtered


def test_customer_page_shows_industry_region_and_country_names(web, login, portfolio):
    cid = _add_customer(
        portfolio.url,
        external_id="C091",
        name="Shanghai Gear Co",
        industry="machinery",
        region="East China",
        country="CN",
    )
    login("root")
    zh = web.get(f"/customers/{cid}?lang=zh").text
    assert '<dd id="customer-industry" title="machinery">机械制造</dd>' in zh
    assert '<span title="East China">华东</span>' in zh
    assert '<span title="CN">中国</span>' in zh
    en = web.get(f"/customers/{cid}?lang=en").text
    assert '<span title="CN">China</span>' in en and ">Machinery<" in en


def test_dashboard_charts_use_labels_and_keep_codes_on_hover(web, login):
    login("root")
    zh = web.get("/?lang=zh").text
    # the plotly figures are embedded as JSON: their categories are the readable names
    assert "机械制造" in zh and "北区" in zh
    assert "[%{customdata}]" in zh
    assert '"machinery"' in zh  # the code travels along as customdata
    en = web.get("/?lang=en").text
    assert '"Machinery"' in en
