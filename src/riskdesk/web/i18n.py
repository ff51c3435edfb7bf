"""Translations (English and Chinese) and locale-aware formatting.

Every file ``riskdesk/web/i18n/*.json`` holds ``{"key": {"en": "...", "zh": "..."}}``; all of
them are merged. :func:`t` looks a key up (falling back to English, then to the key itself).
Numbers, money and dates are formatted with Babel for ``en_US`` or ``zh_CN``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

log = logging.getLogger("riskdesk.web")

I18N_DIR = Path(__file__).parent / "i18n"
LANGUAGES = ("en", "zh")
LOCALES = {"en": "en_US", "zh": "zh_CN"}
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """All translations, merged from every JSON file (later files do not override earlier)."""
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(I18N_DIR.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.exception("cannot read translations %s", path)
            continue
        if not isinstance(data, dict):
            log.error("translations %s: the top level must be an object", path)
            continue
        for key, value in data.items():
            if isinstance(value, dict):
                merged.setdefault(str(key), {str(k): str(v) for k, v in value.items()})
    return merged


def normalise_lang(lang: str | None) -> str:
    """``zh-CN``/``zh_Hans``/``zh`` → ``zh``; anything else known → itself; unknown → ``en``."""
    if not lang:
        return "en"
    base = lang.replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else "en"


def t(key: str, lang: str = "en", **params: Any) -> str:
    """The text for ``key`` in ``lang``; ``{name}`` placeholders are filled from ``params``."""
    entry = catalogue().get(key)
    text = key if entry is None else entry.get(normalise_lang(lang)) or entry.get("en") or key
    if params:
        try:
            text = text.format(**params)
        except (KeyError, IndexError, ValueError):
            pass
    return text


def negotiate(accept_language: str | None, default: str = "en") -> str:
    """The best of our languages for an ``Accept-Language`` header."""
    if not accept_language:
        return normalise_lang(default)
    prefs: list[tuple[float, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, q = piece.partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        prefs.append((weight - i * 1e-6, tag.strip()))
    for _, tag in sorted(prefs, reverse=True):
        base = tag.replace("_", "-").split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return normalise_lang(default)


def locale(lang: str) -> Locale:
    try:
        return Locale.parse(LOCALES[normalise_lang(lang)])
    except (UnknownLocaleError, KeyError):
        return Locale.parse("en_US")


def fmt_num(value: Any, lang: str = "en", digits: int = 0) -> str:
    """A number with grouping, ``digits`` decimals."""
    if value is None or value == "":
        return "–"
    fmt = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return format_decimal(Decimal(str(value)), format=fmt, locale=locale(lang))


def fmt_money(value: Any, currency: str | None = "EUR", lang: str = "en") -> str:
    """An amount with its currency symbol, e.g. ``€1,234.50`` / ``€1,234.50`` (zh: ``€1,234.50``)."""
    if value is None or value == "":
        return "–"
    return format_currency(Decimal(str(value)), currency or "EUR", locale=locale(lang))


def fmt_pct(value: Any, lang: str = "en", digits: int = 1) -> str:
    if value is None or value == "":
        return "–"
    fmt = "#,##0" + ("." + "0" * digits if digits > 0 else "") + "%"
    return format_percent(Decimal(str(value)), format=fmt, locale=locale(lang))


def fmt_date(value: Any, lang: str = "en", style: str = "medium") -> str:
    """A date (or the date part of a timestamp) in the locale's ``style``."""
    if value is None or value == "":
        return "–"
    if isinstance(value, datetime):
        return format_datetime(value, format=style, locale=locale(lang))
    if isinstance(value, date):
        return format_date(value, format=style, locale=locale(lang))
    return str(value)


# ---------------------------------------------------------------------------------------------
# readable codes: industries, regions (``i18n/codes.json``) and ISO 3166 countries (Babel/CLDR)

CODE_KINDS = ("industry", "region", "country")


def code_key(kind: str, code: str) -> str:
    """The catalogue key of a code: ``code.<kind>.<code>`` with the code lower-cased and spaces,
    ``-`` and ``.`` folded to ``_`` (``East China`` and ``EAST_CHINA`` share one label)."""
    return f"code.{kind}." + re.sub(r"[\s\-.]+", "_", code.strip().lower())


def country_name(code: str, lang: str = "en") -> str:
    """The ISO 3166 alpha-2 ``code``'s name in ``lang`` (CLDR), or the code when unknown."""
    up = code.strip().upper()
    if len(up) != 2 or not up.isalpha():
        return code
    name = locale(lang).territories.get(up)
    return str(name) if name else code


def code_label(kind: str, code: str | None, lang: str = "en") -> str:
    """A readable label for an industry / region / country code; unknown codes stay as they are
    and an empty code is an empty string."""
    if code is None or not str(code).strip():
        return ""
    code = str(code)
    if kind == "country":
        return country_name(code, lang)
    key = code_key(kind, code)
    entry = catalogue().get(key)
    if entry is None:
        return code
    return entry.get(normalise_lang(lang)) or entry.get("en") or code


def code_labels(kind: str, codes: list[str | None], lang: str = "en") -> list[str]:
    """Labels for ``codes`` (for chart categories): distinct codes always get distinct labels,
    ``(code)`` is appended where two codes would share one; empty codes are ``common.unknown``."""
    labels = [code_label(kind, c, lang) or t("common.unknown", lang) for c in codes]
    owners: dict[str, set[str | None]] = {}
    for code, label in zip(codes, labels, strict=True):
        owners.setdefault(label, set()).add(code)
    return [
        f"{label} ({code})" if len(owners[label]) > 1 and code else label
        for code, label in zip(codes, labels, strict=True)
    ]
