"""Translations and locale formatting."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from riskdesk.web.i18n import I18N_DIR, fmt_date, fmt_money, fmt_num, negotiate, t


def test_every_service_text_exists_in_english_and_chinese():
    data = json.loads((I18N_DIR / "service.json").read_text(encoding="utf-8"))
    assert data
    for key, value in data.items():
        assert value.get("en") and value.get("zh"), key


def test_t_translates_falls_back_and_fills_placeholders():
    assert t("nav.customers", "zh") == "客户"
    assert t("nav.customers", "en") == "Customers"
    assert t("nav.customers", "fr") == "Customers"
    assert t("no.such.key", "zh") == "no.such.key"
    assert t("customers.count", "zh", n=3) == "共 3 位客户符合条件"


def test_negotiate_accept_language():
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert negotiate("en-GB,zh;q=0.5") == "en"
    assert negotiate("fr-FR,de;q=0.9") == "en"
    assert negotiate("fr;q=0.9,zh-TW;q=0.8") == "zh"
    assert negotiate(None, "zh") == "zh"


def test_numbers_money_and_dates_follow_the_locale():
    assert fmt_num(Decimal("1234567.891"), "en", 2) == "1,234,567.89"
    assert fmt_money(Decimal("1234.5"), "EUR", "en") == "€1,234.50"
    assert fmt_money(Decimal("1234.5"), "CNY", "zh") == "¥1,234.50"
    assert fmt_date(date(2026, 3, 5), "en") == "Mar 5, 2026"
    assert fmt_date(date(2026, 3, 5), "zh") == "2026年3月5日"
    assert fmt_money(None, "EUR", "en") == "–"
