"""What every import kind looks like: columns, types, header aliases and row rules.

Pure: no file or database access. :mod:`riskdesk.connectors.files` reads the cells and
:mod:`riskdesk.store.importer` resolves references and writes; this module turns one row of
text cells into typed values (or a list of :class:`RowError`).

References always use the user's own codes (``customer_id`` = the customer's ``external_id``);
the store side maps them to internal ids.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale
from babel.numbers import list_currencies

from riskdesk.domain.enums import (
    CLAUSES,
    ContractStatus,
    CustomerStatus,
    InvoiceStatus,
    OrderStatus,
    SignalKind,
)
from riskdesk.domain.money import MAX_DOCUMENT_AMOUNT


@dataclass(frozen=True)
class RowError:
    """One problem in the file: ``line`` as numbered in the file (header = its own line)."""

    line: int
    column: str
    value: str | None
    reason: str
    reason_zh: str | None = None
    """The reason in Chinese (None where there is none, e.g. a database's own message)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "value": self.value,
            "reason": self.reason,
            "reason_zh": self.reason_zh,
        }


@dataclass(frozen=True)
class Col:
    """One column of an import kind.

    ``type`` is one of ``text``, ``amount`` (money, 2 decimals), ``rate`` (8 decimals),
    ``int``, ``date``, ``bool``, ``enum``, ``currency``, ``country``, ``ref`` (the user's code
    of a record of kind ``ref``), ``list`` (``|``-separated values).
    """

    name: str
    type: str
    doc: str
    example: str = ""
    required: bool = False
    aliases: tuple[str, ...] = ()
    max_len: int | None = 64
    choices: tuple[str, ...] = ()
    ref: str | None = None
    positive: bool = False
    non_negative: bool = False
    max_value: Decimal | None = None
    default: Any = None
    stored: bool = True
    """False for columns that are not a column of the kind's own table."""


RowCheck = Callable[[dict[str, Any]], list[tuple[str, str | None, str, str]]]
"""A cross-column rule: (column, value, reason, reason in Chinese) of each problem of a row."""


@dataclass(frozen=True)
class Kind:
    """An importable entity: its table, its key columns, its columns and cross-column rules."""

    name: str
    table: str
    key: tuple[str, ...]
    columns: tuple[Col, ...]
    doc: str
    checks: tuple[RowCheck, ...] = ()
    by_name: dict[str, Col] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})


# ---------------------------------------------------------------------------------------------
# cell parsers

_DEC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_INT = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})")
TRUE = frozenset({"yes", "true", "1", "y", "是", "真"})
FALSE = frozenset({"no", "false", "0", "n", "否", "假"})
AMOUNT_LIMIT = MAX_DOCUMENT_AMOUNT
RATE_LIMIT = Decimal(10) ** 12


ISO4217_NO_CURRENCY = "XXX"
"""ISO 4217 code XXX: "the codes assigned for transactions where no currency is involved"."""
ISO4217_TESTING = "XTS"
"""ISO 4217 code XTS: "code specifically reserved for testing purposes"."""

NON_TRADE_CURRENCIES: dict[str, tuple[str, str]] = {
    ISO4217_NO_CURRENCY: ("ISO 4217 code for 'no currency'", "ISO 4217 中表示“无货币”的代码"),
    ISO4217_TESTING: ("ISO 4217 code reserved for testing", "ISO 4217 中保留用于测试的代码"),
}
"""Real ISO 4217 codes (not placeholders) that name no money: never valid on a business
document. Each maps to what the code means (English, Chinese), quoted in the refusal."""


@lru_cache(maxsize=1)
def currencies() -> frozenset[str]:
    """ISO 4217 currency codes (from Babel's CLDR data), without the non-trade codes."""
    return frozenset(list_currencies()).difference(NON_TRADE_CURRENCIES)


NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "IC", "TA", "EU", "EZ", "UN", "FX", "SU", "UK"}
)
"""Two-letter codes CLDR (Babel) lists as territories that are not ISO 3166-1 countries: the
codes ISO keeps *exceptionally reserved* (Ascension AC, Clipperton CP, Sark CQ, Diego Garcia DG,
Ceuta & Melilla EA, Canary Islands IC, Tristan da Cunha TA, European Union EU, Eurozone EZ,
United Nations UN; and FX, SU, UK, should a CLDR release list them)."""

KOSOVO = "XK"
"""Kosovo: a *user-assigned* code, not ISO 3166-1, but the one the EU, the IMF, SWIFT (IBANs),
CLDR and the customs and banking systems a credit department deals with all use for it; a
customer in Kosovo must be importable, so it is the one user-assigned code accepted."""


def _user_assigned(code: str) -> bool:
    """ISO 3166-1's user-assigned (private-use) codes: AA, QM–QZ, XA–XZ, ZZ (CLDR's QO
    Outlying Oceania, XA/XB pseudo-locales, ZZ Unknown Region …)."""
    return code == "AA" or code == "ZZ" or code[0] == "X" or "QM" <= code <= "QZ"


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    """The assigned ISO 3166-1 alpha-2 country codes (from Babel's CLDR territories, without
    macro-regions, exceptionally reserved and user-assigned codes), plus Kosovo (``XK``)."""
    names: dict[Any, Any] = dict(Locale("en").territories)
    return frozenset(
        k
        for k in names
        if isinstance(k, str)
        and len(k) == 2
        and k.isalpha()
        and k.isupper()
        and k not in NOT_COUNTRIES
        and (k == KOSOVO or not _user_assigned(k))
    )


def _not_a_country(code: str) -> CellError:
    """The refusal of a country cell that is not an accepted code."""
    known = len(code) == 2 and code.isalpha() and Locale("en").territories.get(code)
    if known:
        en = Locale("en").territories[code]
        zh = Locale("zh").territories.get(code, en)
        return CellError(
            f"{code} ({en}) is not a country; use an ISO 3166-1 country code (e.g. DE, CN)",
            f"{code}（{zh}）不是国家；请使用 ISO 3166-1 国家代码（例如 DE、CN）",
        )
    return CellError(
        "not an ISO 3166 two-letter country code (e.g. DE, CN)",
        "不是 ISO 3166 两位字母国家代码（例如 DE、CN）",
    )


class CellError(ValueError):
    """A cell that does not parse; the message is the reason shown to the user, ``zh`` the
    same in Chinese."""

    def __init__(self, reason: str, zh: str) -> None:
        super().__init__(reason)
        self.zh = zh


def _decimal(text: str, places: int, limit: Decimal) -> Decimal:
    if not _DEC.fullmatch(text):
        raise CellError(
            "not a decimal number (write 1234.56: dot as decimal mark, no grouping)",
            "不是小数（请写成 1234.56：用点号作小数点，不加千位分隔符）",
        )
    dot = text.find(".")
    if dot >= 0 and len(text) - dot - 1 > places and text[dot + 1 + places :].strip("0"):
        raise CellError(f"more than {places} decimal places", f"小数位超过 {places} 位")
    value = Decimal(text)
    if abs(value) >= limit:
        raise CellError("number too large", "数值过大")
    return value


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` or ``YYYY/MM/DD``."""
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit():
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    m = _DATE.fullmatch(text)
    if not m:
        raise CellError("not a date (use YYYY-MM-DD)", "不是日期（请用 YYYY-MM-DD 格式）")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as exc:
        raise CellError(f"not a valid date ({exc})", f"日期 {text} 不存在") from exc


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise CellError(
        "not a yes/no value (use yes/no, true/false, 1/0, 是/否)",
        "不是“是/否”值（请用 是/否、yes/no、true/false 或 1/0）",
    )


def parse_cell(col: Col, text: str) -> Any:
    """Turn one non-empty, stripped cell into the column's typed value, or raise CellError."""
    if "\x00" in text:
        # PostgreSQL cannot store it in a text column (the whole file failed with a database
        # error, no line named) and SQLite stored it: the cell is refused, as the API does
        raise CellError(
            "contains a NUL character (0x00), which no field can hold",
            "含有 NUL 字符（0x00），任何字段都不能保存",
        )
    t = col.type
    value: Any
    if t in ("text", "ref"):
        value = text
        if col.max_len is not None and len(text) > col.max_len:
            raise CellError(f"longer than {col.max_len} characters", f"超过 {col.max_len} 个字符")
        return value
    if t == "amount":
        value = _decimal(text, 2, AMOUNT_LIMIT)
    elif t == "rate":
        value = _decimal(text, 8, RATE_LIMIT)
    elif t == "int":
        if not _INT.fullmatch(text):
            raise CellError("not a whole number", "不是整数")
        value = int(text)
        if abs(value) > 2**31 - 1:
            raise CellError("number too large", "数值过大")
    elif t == "date":
        return parse_date(text)
    elif t == "bool":
        return parse_bool(text)
    elif t == "enum":
        low = text.lower()
        if low not in col.choices:
            raise CellError(
                "must be one of " + ", ".join(col.choices),
                "必须是以下之一：" + "、".join(col.choices),
            )
        return low
    elif t == "currency":
        up = text.upper()
        if up in NON_TRADE_CURRENCIES:
            en, zh = NON_TRADE_CURRENCIES[up]
            raise CellError(
                f"{en}: not a currency for a business document", f"{zh}：不能用作业务单据的币种"
            )
        if up not in currencies():
            raise CellError(
                "not an ISO 4217 currency code (e.g. EUR, USD, CNY)",
                "不是 ISO 4217 币种代码（例如 EUR、USD、CNY）",
            )
        return up
    elif t == "country":
        up = text.upper()
        if up not in countries():
            raise _not_a_country(up)
        return up
    elif t == "list":
        items = [p.strip() for p in text.split("|") if p.strip()]
        for item in items:
            if len(item) > 200:
                raise CellError(
                    "a list item is longer than 200 characters", "列表中有一项超过 200 个字符"
                )
        return items
    else:  # pragma: no cover - a programming error in the kind table
        raise AssertionError(f"unknown column type {t}")
    if col.positive and value <= 0:
        raise CellError("must be greater than 0", "必须大于 0")
    if col.non_negative and value < 0:
        raise CellError("must not be negative", "不能为负数")
    if col.max_value is not None and value > col.max_value:
        raise CellError(f"must not exceed {col.max_value}", f"不能超过 {col.max_value}")
    return value


# ---------------------------------------------------------------------------------------------
# row checks


def _not_before(later: str, earlier: str) -> RowCheck:
    def check(v: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
        a, b = v.get(later), v.get(earlier)
        if a is not None and b is not None and a < b:
            return [
                (
                    later,
                    a.isoformat(),
                    f"{later} is before {earlier} ({b.isoformat()})",
                    f"{later} 早于 {earlier}（{b.isoformat()}）",
                )
            ]
        return []

    return check


def exceeds_payment(amount: Any) -> tuple[str, str]:
    """The reason (English, Chinese) of an allocation larger than its payment's amount."""
    return f"exceeds the payment amount {amount}", f"超过付款金额 {amount}"


def _allocated_within_amount(v: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    alloc, amount = v.get("allocated_amount"), v.get("amount")
    if alloc is not None and v.get("invoice_id") is None:
        return [
            (
                "allocated_amount",
                str(alloc),
                "allocated_amount needs an invoice_id",
                "填写 allocated_amount 时必须填写 invoice_id",
            )
        ]
    if alloc is not None and amount is not None and alloc > amount:
        return [("allocated_amount", str(alloc), *exceeds_payment(amount))]
    return []


def _distinct_currencies(v: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    if v.get("base") is not None and v.get("base") == v.get("quote"):
        return [
            ("quote", v["quote"], "quote currency equals base currency", "报价币种与基准币种相同")
        ]
    return []


def _not_own_parent(v: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    if v.get("parent_id") is not None and v.get("parent_id") == v.get("external_id"):
        return [
            (
                "parent_id",
                v["parent_id"],
                "a customer cannot be its own parent",
                "客户不能是自己的上级",
            )
        ]
    return []


def _min_volume_complete(v: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    if v.get("min_volume_amount") is not None:
        missing = [c for c in ("min_volume_currency", "min_volume_period") if v.get(c) is None]
        return [
            (c, None, "required when min_volume_amount is given", "填写 min_volume_amount 时必填")
            for c in missing
        ]
    return []


# ---------------------------------------------------------------------------------------------
# the kinds


def _vals(enum: Any) -> tuple[str, ...]:
    return tuple(e.value for e in enum)


def _ext(doc: str, example: str, *aliases: str) -> Col:
    return Col("external_id", "text", doc, example, required=True, aliases=aliases)


def _customer_ref(required: bool = True) -> Col:
    return Col(
        "customer_id",
        "ref",
        "the customer's code (its `external_id` in the customers file or database)",
        "C001",
        required=required,
        aliases=("客户编号", "客户代码"),
        ref="customers",
    )


def _currency(required: bool = True, default: str | None = None) -> Col:
    return Col(
        "currency",
        "currency",
        "ISO 4217 currency code",
        "EUR",
        required=required,
        aliases=("币种", "货币"),
        default=default,
    )


def _amount(doc: str, example: str, *aliases: str) -> Col:
    return Col("amount", "amount", doc, example, required=True, aliases=aliases, positive=True)


KINDS: dict[str, Kind] = {}


def _add(kind: Kind) -> None:
    KINDS[kind.name] = kind


_add(
    Kind(
        "customers",
        "customers",
        ("external_id",),
        (
            _ext("your customer code (the import key)", "C001", "客户编号", "客户代码"),
            Col("name", "text", "customer name", "Acme GmbH", True, ("客户名称", "名称"), 200),
            Col(
                "legal_id",
                "text",
                "registration / tax id",
                "HRB 12345",
                False,
                ("统一社会信用代码", "税号"),
            ),
            Col(
                "parent_id",
                "ref",
                "code of the parent customer (may be defined in the same file)",
                "C000",
                aliases=("上级客户编号", "母公司编号"),
                ref="customers",
            ),
            Col(
                "group_code",
                "text",
                "group of affiliated companies",
                "ACME",
                aliases=("集团代码", "集团"),
            ),
            Col("industry", "text", "industry code", "machinery", aliases=("行业",)),
            Col("region", "text", "sales region", "EU-West", aliases=("区域", "地区")),
            Col("country", "country", "ISO 3166 two-letter country code", "DE", aliases=("国家",)),
            _currency(required=False, default="EUR"),
            Col(
                "revenue",
                "amount",
                "annual revenue",
                "12500000.00",
                aliases=("营业收入", "年收入"),
                non_negative=True,
            ),
            Col(
                "employees",
                "int",
                "number of employees",
                "120",
                aliases=("员工人数",),
                non_negative=True,
            ),
            Col("founded_on", "date", "date of incorporation", "1998-04-01", aliases=("成立日期",)),
            Col(
                "market_share",
                "rate",
                "market share as a fraction 0..1",
                "0.05",
                aliases=("市场份额",),
                non_negative=True,
                max_value=Decimal(1),
            ),
            Col(
                "owner",
                "text",
                "username of the responsible sales person",
                "alice",
                aliases=("负责人", "销售负责人"),
            ),
            Col(
                "status",
                "enum",
                "customer status",
                "active",
                aliases=("状态",),
                choices=_vals(CustomerStatus),
                default="active",
            ),
            Col("crm_id", "text", "id in the CRM", "zoho-4711", aliases=("CRM编号",)),
            Col("erp_id", "text", "id in the ERP", "D-10001", aliases=("ERP编号",)),
        ),
        "Customers (legal entities you sell to).",
        (_not_own_parent,),
    )
)

_add(
    Kind(
        "contracts",
        "contracts",
        ("external_id",),
        (
            _ext("your contract code", "K-2024-001", "合同编号"),
            _customer_ref(),
            Col(
                "start_date", "date", "first day of the contract", "2024-01-01", True, ("开始日期",)
            ),
            Col(
                "end_date",
                "date",
                "last day (empty = open-ended)",
                "2025-12-31",
                aliases=("结束日期",),
            ),
            Col(
                "payment_terms_days",
                "int",
                "payment terms in days",
                "30",
                aliases=("账期天数", "付款期限"),
                non_negative=True,
                default=30,
            ),
            Col(
                "credit_terms",
                "text",
                "credit terms in words",
                "30 days net",
                aliases=("信用条款",),
                max_len=None,
            ),
            Col(
                "min_volume_amount",
                "amount",
                "minimum purchase volume per period",
                "100000.00",
                aliases=("最低采购额",),
                positive=True,
            ),
            Col(
                "min_volume_currency",
                "currency",
                "currency of the minimum volume",
                "EUR",
                aliases=("最低采购额币种",),
            ),
            Col(
                "min_volume_period",
                "enum",
                "period of the minimum volume",
                "year",
                aliases=("最低采购周期",),
                choices=("month", "quarter", "year"),
            ),
            Col(
                "clauses",
                "list",
                "clauses separated by `|` (known: " + ", ".join(CLAUSES) + "; others are kept)",
                "retention_of_title|late_interest",
                aliases=("条款",),
                max_len=None,
                default=[],
            ),
            Col(
                "status",
                "enum",
                "contract status",
                "active",
                aliases=("状态",),
                choices=_vals(ContractStatus),
                default="active",
            ),
        ),
        "Sales contracts with a customer.",
        (_not_before("end_date", "start_date"), _min_volume_complete),
    )
)

_add(
    Kind(
        "orders",
        "orders",
        ("external_id",),
        (
            _ext("your order number", "SO-1001", "订单编号", "订单号"),
            _customer_ref(),
            Col(
                "contract_id",
                "ref",
                "code of the contract the order falls under",
                "K-2024-001",
                aliases=("合同编号",),
                ref="contracts",
            ),
            Col("order_date", "date", "order date", "2024-03-01", True, ("订单日期", "下单日期")),
            _amount("order amount", "25000.00", "金额", "订单金额"),
            _currency(),
            Col(
                "status",
                "enum",
                "order status",
                "invoiced",
                aliases=("状态",),
                choices=_vals(OrderStatus),
                default="open",
            ),
            Col("shipped_date", "date", "shipping date", "2024-03-05", aliases=("发货日期",)),
            Col("placed_by", "text", "who placed the order", "bob", aliases=("下单人",)),
        ),
        "Customer orders.",
        (_not_before("shipped_date", "order_date"),),
    )
)

_add(
    Kind(
        "invoices",
        "invoices",
        ("external_id",),
        (
            _ext("your invoice number", "INV-1001", "发票编号", "发票号"),
            _customer_ref(),
            Col(
                "order_id",
                "ref",
                "code of the order invoiced",
                "SO-1001",
                aliases=("订单编号", "订单号"),
                ref="orders",
            ),
            Col("issue_date", "date", "invoice date", "2024-03-05", True, ("开票日期", "发票日期")),
            Col(
                "due_date",
                "date",
                "due date (not before issue_date)",
                "2024-04-04",
                True,
                ("到期日", "到期日期"),
            ),
            _amount("invoice amount", "25000.00", "金额", "发票金额"),
            _currency(),
            Col(
                "disputed",
                "bool",
                "invoice disputed by the customer",
                "no",
                aliases=("争议", "是否争议"),
                default=False,
            ),
            Col(
                "status",
                "enum",
                "invoice status",
                "open",
                aliases=("状态",),
                choices=_vals(InvoiceStatus),
                default="open",
            ),
        ),
        "Invoices (receivables).",
        (_not_before("due_date", "issue_date"),),
    )
)

_add(
    Kind(
        "payments",
        "payments",
        ("external_id",),
        (
            _ext("your payment id", "PAY-1001", "付款编号", "收款编号"),
            _customer_ref(),
            Col("payment_date", "date", "value date", "2024-04-02", True, ("付款日期", "收款日期")),
            _amount("amount received", "20000.00", "金额", "付款金额", "收款金额"),
            _currency(),
            Col("method", "text", "payment method", "transfer", aliases=("付款方式",), max_len=32),
            Col(
                "reference",
                "text",
                "bank reference",
                "REF 778",
                aliases=("参考号", "备注"),
                max_len=128,
            ),
            Col(
                "invoice_id",
                "ref",
                "optional: allocate this payment to one invoice (same customer and currency)",
                "INV-1001",
                aliases=("发票编号", "发票号"),
                ref="invoices",
                stored=False,
            ),
            Col(
                "allocated_amount",
                "amount",
                "optional: part of the payment allocated to `invoice_id` (default: the whole amount)",
                "20000.00",
                aliases=("核销金额",),
                positive=True,
                stored=False,
            ),
        ),
        "Payments received. Allocation to invoices through `invoice_id` or the allocations kind.",
        (_allocated_within_amount,),
    )
)

_add(
    Kind(
        "allocations",
        "payment_allocations",
        ("payment_id", "invoice_id"),
        (
            Col(
                "payment_id",
                "ref",
                "the payment's code",
                "PAY-1002",
                True,
                ("付款编号", "收款编号"),
                ref="payments",
            ),
            Col(
                "invoice_id",
                "ref",
                "the invoice's code",
                "INV-1001",
                True,
                ("发票编号", "发票号"),
                ref="invoices",
            ),
            _amount("part of the payment applied to this invoice", "5000.00", "核销金额", "金额"),
        ),
        "One payment spread over several invoices (key: payment_id + invoice_id).",
    )
)

_add(
    Kind(
        "credit_notes",
        "credit_notes",
        ("external_id",),
        (
            _ext("your credit note number", "CN-1001", "贷项通知单编号", "红字发票编号"),
            _customer_ref(),
            Col(
                "invoice_id",
                "ref",
                "code of the invoice credited",
                "INV-1001",
                aliases=("发票编号", "发票号"),
                ref="invoices",
            ),
            Col("issue_date", "date", "credit note date", "2024-03-20", True, ("开具日期", "日期")),
            _amount("amount credited", "500.00", "金额"),
            _currency(),
            Col("reason", "text", "reason", "damaged goods", aliases=("原因",), max_len=None),
        ),
        "Credit notes (reductions of what a customer owes).",
    )
)

_add(
    Kind(
        "market_indicators",
        "market_indicators",
        ("code", "period_date"),
        (
            Col(
                "code",
                "text",
                "indicator code (key with period_date)",
                "PMI-MACH-EU",
                True,
                ("指标代码",),
            ),
            Col(
                "name",
                "text",
                "indicator name",
                "Machinery PMI Europe",
                aliases=("指标名称",),
                max_len=200,
            ),
            Col(
                "industry",
                "text",
                "industry the indicator describes",
                "machinery",
                aliases=("行业",),
            ),
            Col(
                "region",
                "text",
                "region the indicator describes",
                "EU-West",
                aliases=("区域", "地区"),
            ),
            Col(
                "period_date",
                "date",
                "period (e.g. first day of the month)",
                "2024-03-01",
                True,
                ("期间", "日期"),
            ),
            Col("value", "rate", "value (may be negative)", "51.2", True, ("数值", "指标值")),
        ),
        "Market indices per industry/region and period (key: code + period_date).",
    )
)

_add(
    Kind(
        "external_signals",
        "external_signals",
        ("external_id",),
        (
            _ext("your signal id", "SIG-1", "信号编号"),
            _customer_ref(),
            Col(
                "kind",
                "enum",
                "kind of signal",
                "bureau_score",
                True,
                ("类型",),
                choices=_vals(SignalKind),
            ),
            Col("signal_date", "date", "date of the signal", "2024-03-15", True, ("日期",)),
            Col("value", "rate", "value (e.g. the bureau score)", "612", aliases=("数值",)),
            Col("source", "text", "where it comes from", "bureau", aliases=("来源",)),
            Col("description", "text", "details", "score update", aliases=("描述",), max_len=None),
        ),
        "Bureau scores, legal and negative events about customers.",
    )
)

_add(
    Kind(
        "fx_rates",
        "fx_rates",
        ("rate_date", "base", "quote"),
        (
            Col("rate_date", "date", "date of the rate", "2024-03-01", True, ("日期",)),
            Col("base", "currency", "base currency", "EUR", True, ("基础货币",)),
            Col("quote", "currency", "quote currency", "USD", True, ("报价货币",)),
            Col("rate", "rate", "1 base = rate quote", "1.0850", True, ("汇率",), positive=True),
        ),
        "Daily FX rates (key: rate_date + base + quote).",
        (_distinct_currencies,),
    )
)

IMPORT_ORDER: tuple[str, ...] = tuple(KINDS)
"""The order that satisfies references: customers first, fx_rates last."""


# ---------------------------------------------------------------------------------------------
# header and rows


def normalise_header(name: str) -> str:
    """Case-, width- and separator-insensitive header name."""
    n = unicodedata.normalize("NFKC", name).replace("\ufeff", "").strip().lower()
    return re.sub(r"[\s\-.]+", "_", n)


def _lookup(kind: Kind) -> dict[str, Col]:
    table: dict[str, Col] = {}
    for col in kind.columns:
        for name in (col.name, *col.aliases):
            table[normalise_header(name)] = col
    return table


@dataclass
class Layout:
    """Which column of the file holds which :class:`Col` (``None`` = ignored blank header)."""

    kind: Kind
    cols: list[Col | None]

    @property
    def present(self) -> list[Col]:
        return [c for c in self.cols if c is not None]


def resolve_header(
    kind: Kind, header: Sequence[str | None], line: int
) -> tuple[Layout, list[RowError]]:
    """Map the header cells to columns; unknown, duplicate and missing required columns are errors."""
    table = _lookup(kind)
    cols: list[Col | None] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for cell in header:
        raw = (cell or "").strip()
        if not raw:
            cols.append(None)
            continue
        col = table.get(normalise_header(raw))
        if col is None:
            errors.append(
                RowError(
                    line,
                    raw,
                    raw,
                    "unknown column; known: " + ", ".join(c.name for c in kind.columns),
                    "未知的列；可用的列：" + "、".join(c.name for c in kind.columns),
                )
            )
            cols.append(None)
        elif col.name in seen:
            errors.append(
                RowError(
                    line, raw, raw, f"column {col.name} appears twice", f"列 {col.name} 出现了两次"
                )
            )
            cols.append(None)
        else:
            seen.add(col.name)
            cols.append(col)
    for col in kind.columns:
        if col.required and col.name not in seen:
            errors.append(RowError(line, col.name, None, "required column missing", "缺少必需的列"))
    return Layout(kind, cols), errors


@dataclass
class Chunk:
    """Up to ``batch_size`` data rows: the good ones typed, the bad ones as errors."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    count: int = 0


def parse_row(
    layout: Layout, cells: Sequence[str | None], line: int
) -> tuple[dict[str, Any] | None, list[RowError]]:
    """Typed values of one data row (absent columns left out), or the row's errors."""
    values: dict[str, Any] = {}
    errors: list[RowError] = []
    cols = layout.cols
    if len(cells) > len(cols):
        extra = [c for c in cells[len(cols) :] if c is not None and str(c).strip()]
        if extra:
            errors.append(
                RowError(
                    line,
                    "",
                    str(extra[0]),
                    f"row has {len(cells)} cells, header has {len(cols)}",
                    f"该行有 {len(cells)} 个单元格，表头只有 {len(cols)} 个",
                )
            )
    ncells = len(cells)
    for i, col in enumerate(cols):
        if col is None:
            continue
        raw = cells[i] if i < ncells else None
        text = raw.strip() if raw is not None else ""
        if not text:
            if col.required:
                errors.append(RowError(line, col.name, raw, "required value missing", "缺少必填值"))
            else:
                values[col.name] = col.default
            continue
        try:
            values[col.name] = parse_cell(col, text)
        except CellError as exc:
            errors.append(RowError(line, col.name, raw, str(exc), exc.zh))
    if errors:
        return None, errors
    for check in layout.kind.checks:
        for column, value, reason, reason_zh in check(values):
            errors.append(RowError(line, column, value, reason, reason_zh))
    return (None, errors) if errors else (values, [])
