"""The risk-source catalogue: built-in sources and their manifestations, plus user definitions.

Built-in sources are defined here (bilingual); users add their own through a JSON/CSV file or
the API. :func:`parse_sources_json` and :func:`parse_sources_csv` validate such a file's text
(all-or-nothing: every bad row is reported with its line, column and reason).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from riskdesk.domain.events import Severity

CODE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


@dataclass(frozen=True)
class Manifestation:
    code: str
    source: str
    name_en: str
    name_zh: str
    description_en: str = ""
    description_zh: str = ""
    severity: str = "medium"
    builtin: bool = True

    def name(self, lang: str = "en") -> str:
        return self.name_zh if lang.startswith("zh") else self.name_en


@dataclass(frozen=True)
class RiskSource:
    code: str
    name_en: str
    name_zh: str
    description_en: str = ""
    description_zh: str = ""
    manifestations: tuple[Manifestation, ...] = field(default_factory=tuple)
    builtin: bool = True

    def name(self, lang: str = "en") -> str:
        return self.name_zh if lang.startswith("zh") else self.name_en


def _m(
    source: str, code: str, en: str, zh: str, den: str, dzh: str, sev: str = "medium"
) -> Manifestation:
    return Manifestation(f"{source}.{code}", source, en, zh, den, dzh, sev)


BUILTIN_SOURCES: tuple[RiskSource, ...] = (
    RiskSource(
        "market",
        "Market environment change",
        "市场环境变化",
        "The customer's industry or region is under pressure (demand, prices, credit conditions).",
        "客户所在行业或地区承压（需求、价格、信贷环境变化）。",
        (
            _m(
                "market",
                "index_drop",
                "Market index falling",
                "市场指数下跌",
                "A market index of the customer's industry or region fell beyond the threshold; "
                "context (low) unless the customer shows its own symptoms or a material exposure.",
                "客户所在行业或地区的市场指数跌幅超过阈值；客户自身无异常且敞口不大时仅作背景（低）。",
            ),
        ),
    ),
    RiskSource(
        "credit",
        "Customer credit",
        "客户信用",
        "The customer pays late, partially or not at all.",
        "客户逾期付款、部分付款或不付款。",
        (
            _m(
                "credit",
                "overdue_1_30",
                "Overdue 1-30 days",
                "逾期1-30天",
                "An invoice is 1-30 days past due.",
                "发票逾期1-30天。",
                "low",
            ),
            _m(
                "credit",
                "overdue_31_60",
                "Overdue 31-60 days",
                "逾期31-60天",
                "An invoice is 31-60 days past due.",
                "发票逾期31-60天。",
            ),
            _m(
                "credit",
                "overdue_61_90",
                "Overdue 61-90 days",
                "逾期61-90天",
                "An invoice is 61-90 days past due.",
                "发票逾期61-90天。",
                "high",
            ),
            _m(
                "credit",
                "overdue_90_plus",
                "Overdue more than 90 days",
                "逾期90天以上",
                "An invoice is more than 90 days past due.",
                "发票逾期超过90天。",
                "high",
            ),
            _m(
                "credit",
                "partial_payment",
                "Partial payment",
                "部分付款",
                "An invoice past its due date was paid only in part.",
                "已到期发票仅部分付款。",
                "low",
            ),
            _m(
                "credit",
                "payment_worsening",
                "Payment behaviour worsening",
                "付款行为恶化",
                "Days beyond terms are trending up against the customer's own history.",
                "超期天数相对客户自身历史呈上升趋势。",
            ),
            _m(
                "credit",
                "default",
                "Default",
                "违约",
                "A material amount is more than 90 days past due, or a bankruptcy/write-off.",
                "重大金额逾期超过90天，或出现破产/核销。",
                "critical",
            ),
        ),
    ),
    RiskSource(
        "contract",
        "Contract breach",
        "合同违约",
        "The customer does not keep the terms of its contract.",
        "客户未遵守合同条款。",
        (
            _m(
                "contract",
                "min_volume_missed",
                "Minimum volume missed",
                "未达最低采购量",
                "Orders in the last completed period fell short of the contract's minimum volume.",
                "上一完整周期的订单金额低于合同约定的最低采购量。",
            ),
            _m(
                "contract",
                "terms_broken",
                "Payment terms broken repeatedly",
                "屡次违反付款条件",
                "Several recent invoices were paid well after their due date.",
                "近期多张发票在到期后很久才付款。",
            ),
            _m(
                "contract",
                "disputes",
                "Disputed invoices piling up",
                "争议发票累积",
                "Several open invoices are disputed.",
                "多张未结发票存在争议。",
            ),
            _m(
                "contract",
                "expiring",
                "Contract expiring without renewal",
                "合同即将到期且未续签",
                "The contract ends soon (or has just ended) and no successor contract exists.",
                "合同即将（或刚刚）到期，且没有后续合同。",
                "low",
            ),
        ),
    ),
    RiskSource(
        "demand",
        "Demand change",
        "客户需求变化",
        "The customer's ordering pattern changes abruptly.",
        "客户的订货模式突然变化。",
        (
            _m(
                "demand",
                "volume_drop",
                "Order volume falling",
                "订单量下降",
                "Orders in recent months are well below the same months last year.",
                "近几个月订单金额远低于去年同期。",
            ),
            _m(
                "demand",
                "silent",
                "Customer gone silent",
                "客户停止下单",
                "No order for several times the customer's usual interval between orders.",
                "超过客户平常下单间隔数倍的时间没有下单。",
            ),
            _m(
                "demand",
                "spike",
                "Unusual order spike",
                "订单异常激增",
                "Recent orders are far above the customer's usual monthly volume.",
                "近期订单金额远高于客户平常的月度水平。",
            ),
        ),
    ),
    RiskSource(
        "external",
        "External signals",
        "外部信号",
        "Credit bureaus, courts and news report on the customer.",
        "征信机构、法院和新闻中关于客户的信息。",
        (
            _m(
                "external",
                "bureau_drop",
                "Bureau score drop",
                "征信评分下降",
                "The customer's credit bureau score fell well below its mean of the past year; "
                "medium once confirmed by a second score or a fall into the risk band.",
                "客户的征信评分明显低于过去一年的平均值；连续两次确认或跌入风险区间时为中等。",
            ),
            _m(
                "external",
                "legal_event",
                "Negative legal event or news",
                "负面法律事件或新闻",
                "A lawsuit, lien or negative news about the customer.",
                "关于客户的诉讼、留置或负面新闻。",
                "high",
            ),
        ),
    ),
)

BUILTIN_BY_CODE: dict[str, RiskSource] = {s.code: s for s in BUILTIN_SOURCES}
BUILTIN_MANIFESTATIONS: dict[str, Manifestation] = {
    m.code: m for s in BUILTIN_SOURCES for m in s.manifestations
}


# --- user definitions -------------------------------------------------------------------


class ManifestationDef(BaseModel):
    """A user-defined manifestation (code is lower-case, dotted: ``supply.late_delivery``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(min_length=1, max_length=200)
    description_en: str = ""
    description_zh: str = ""
    severity: str = "medium"

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not CODE_RE.match(v):
            raise ValueError("use lower-case letters, digits, '_' and '.' (e.g. supply.late)")
        return v

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        return Severity.parse(v).value


class SourceDef(BaseModel):
    """A user-defined risk source with its manifestations."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(min_length=1, max_length=200)
    description_en: str = ""
    description_zh: str = ""
    manifestations: list[ManifestationDef] = Field(default_factory=list)

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not CODE_RE.match(v) or "." in v:
            raise ValueError("use lower-case letters, digits and '_' (e.g. supply_chain)")
        if v in BUILTIN_BY_CODE:
            raise ValueError(f"{v!r} is a built-in source and cannot be redefined")
        return v


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


class CatalogueError(ValueError):
    """A sources file was rejected; ``errors`` lists every bad row."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        first = errors[0] if errors else None
        msg = (
            f"{len(errors)} error(s); first: line {first.line}, {first.column}: {first.reason}"
            if first
            else "invalid file"
        )
        super().__init__(msg)


def check_manifestation_codes(sources: list[SourceDef], lines: list[int]) -> list[RowError]:
    errors: list[RowError] = []
    seen: set[str] = set()
    for src, line in zip(sources, lines, strict=True):
        for m in src.manifestations:
            if m.code in BUILTIN_MANIFESTATIONS:
                errors.append(RowError(line, "code", f"{m.code!r} is a built-in manifestation"))
            if m.code in seen:
                errors.append(RowError(line, "code", f"manifestation {m.code!r} given twice"))
            seen.add(m.code)
    return errors


def _validation_errors(exc: ValidationError, line: int, prefix: str = "") -> list[RowError]:
    return [
        RowError(line, prefix + ".".join(str(p) for p in e["loc"]) or "-", e["msg"])
        for e in exc.errors()
    ]


def parse_sources_json(text: str) -> list[SourceDef]:
    """Parse ``[{source…, "manifestations": […]}]`` or ``{"sources": […]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogueError([RowError(exc.lineno, "-", f"not valid JSON: {exc.msg}")]) from exc
    if isinstance(data, dict) and "sources" in data:
        data = data["sources"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise CatalogueError([RowError(1, "-", "expected a non-empty list of sources")])
    out: list[SourceDef] = []
    errors: list[RowError] = []
    codes: set[str] = set()
    for i, item in enumerate(data, start=1):
        try:
            src = SourceDef.model_validate(item)
        except ValidationError as exc:
            errors.extend(_validation_errors(exc, i, f"sources[{i}]."))
            continue
        if src.code in codes:
            errors.append(RowError(i, "code", f"source {src.code!r} given twice"))
        codes.add(src.code)
        out.append(src)
    errors.extend(check_manifestation_codes(out, list(range(1, len(out) + 1))))
    if errors:
        raise CatalogueError(errors)
    return out


CSV_COLUMNS = (
    "source_code",
    "source_name_en",
    "source_name_zh",
    "manifestation_code",
    "manifestation_name_en",
    "manifestation_name_zh",
    "severity",
)
CSV_OPTIONAL = (
    "source_description_en",
    "source_description_zh",
    "description_en",
    "description_zh",
)


def parse_sources_csv(text: str) -> list[SourceDef]:
    """One manifestation per row; rows with the same ``source_code`` form one source."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise CatalogueError([RowError(1, c, "column missing") for c in missing])
    unknown = [c for c in header if c not in CSV_COLUMNS + CSV_OPTIONAL]
    if unknown:
        raise CatalogueError([RowError(1, c, "unknown column") for c in unknown])
    errors: list[RowError] = []
    grouped: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        code = row.get("source_code", "")
        if not code:
            errors.append(RowError(line, "source_code", "empty"))
            continue
        src = grouped.setdefault(
            code,
            {
                "code": code,
                "name_en": row.get("source_name_en", ""),
                "name_zh": row.get("source_name_zh", ""),
                "description_en": row.get("source_description_en", ""),
                "description_zh": row.get("source_description_zh", ""),
                "manifestations": [],
            },
        )
        first_line.setdefault(code, line)
        m = {
            "code": row.get("manifestation_code", ""),
            "name_en": row.get("manifestation_name_en", ""),
            "name_zh": row.get("manifestation_name_zh", ""),
            "description_en": row.get("description_en", ""),
            "description_zh": row.get("description_zh", ""),
            "severity": row.get("severity") or "medium",
        }
        try:
            ManifestationDef.model_validate(m)
        except ValidationError as exc:
            for e in exc.errors():
                col = str(e["loc"][0]) if e["loc"] else "-"
                col = col if col in ("severity",) else f"manifestation_{col}"
                errors.append(RowError(line, col, e["msg"]))
            continue
        src["manifestations"].append(m)
    if not grouped and not errors:
        errors.append(RowError(2, "-", "no rows"))
    out: list[SourceDef] = []
    for code, raw_src in grouped.items():
        try:
            out.append(SourceDef.model_validate(raw_src))
        except ValidationError as exc:
            for e in exc.errors():
                if e["loc"] and e["loc"][0] == "manifestations":
                    continue
                col = "source_" + str(e["loc"][0]) if e["loc"] else "-"
                errors.append(RowError(first_line[code], col, e["msg"]))
    if not errors:
        errors.extend(check_manifestation_codes(out, [first_line[s.code] for s in out]))
    if errors:
        raise CatalogueError(errors)
    return out


def parse_sources(text: str, fmt: str) -> list[SourceDef]:
    """Parse a sources file given its format (``json`` or ``csv``)."""
    if fmt == "json":
        return parse_sources_json(text)
    if fmt == "csv":
        return parse_sources_csv(text)
    raise CatalogueError([RowError(1, "-", f"unsupported format {fmt!r}; use .json or .csv")])
