"""Reading import files: encodings, delimiters, line numbers, XLSX, cell rules."""

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from riskdesk.connectors.files import FileFormatError, ImportFile
from riskdesk.connectors.import_schema import KINDS, countries, parse_row, resolve_header


def _rows(path: Path, kind: str = "customers", batch: int = 100):
    with ImportFile(path, kind) as f:
        assert f.header_errors == []
        rows, errors = [], []
        for chunk in f.chunks(batch):
            rows += chunk.rows
            errors += chunk.errors
    return rows, errors


def test_semicolon_csv_with_utf8_bom_and_mixed_case_headers(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_bytes("\ufeffExternal_ID;NAME;Revenue\nC1;Acme;12.50\n".encode())
    rows, errors = _rows(p)
    assert errors == []
    assert rows == [(2, {"external_id": "C1", "name": "Acme", "revenue": Decimal("12.50")})]


def test_gb18030_file_with_chinese_headers_is_read(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_bytes(
        "客户编号\t客户名称\t成立日期\nC1\t华东贸易有限公司\t2006/09/15\n".encode("gb18030")
    )
    with ImportFile(p, "customers") as f:
        assert f.source.encoding == "gb18030"
        assert f.source.delimiter == "\t"
    rows, _ = _rows(p)
    assert rows[0][1] == {
        "external_id": "C1",
        "name": "华东贸易有限公司",
        "founded_on": date(2006, 9, 15),
    }


def test_line_numbers_count_blank_lines_and_multiline_cells(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text('external_id,name\nC1,"two\nlines"\n\nC2,\n', encoding="utf-8")
    rows, errors = _rows(p)
    assert [line for line, _ in rows] == [2]
    assert [(e.line, e.column, e.reason) for e in errors] == [(5, "name", "required value missing")]


def test_chunks_respect_the_batch_size(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("external_id,name\n" + "".join(f"C{i},n{i}\n" for i in range(7)))
    with ImportFile(p, "customers") as f:
        sizes = [c.count for c in f.chunks(3)]
    assert sizes == [3, 3, 1]


def test_unknown_duplicate_and_missing_columns_are_header_errors(tmp_path: Path) -> None:
    p = tmp_path / "i.csv"
    p.write_text("external_id,customer_id,amount,AMOUNT,colour\n")
    with ImportFile(p, "invoices") as f:
        problems = {(e.line, e.column, e.reason.split(";")[0]) for e in f.header_errors}
    assert (1, "colour", "unknown column") in problems
    assert (1, "AMOUNT", "column amount appears twice") in problems
    for col in ("issue_date", "due_date", "currency"):
        assert (1, col, "required column missing") in problems


def test_xlsx_rows_keep_their_sheet_row_numbers_and_types(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(
        ["external_id", "customer_id", "issue_date", "due_date", "amount", "currency", "disputed"]
    )
    ws.append(["INV1", "C1", date(2024, 3, 5), "2024-04-04", 1250.5, "eur", True])
    ws.append([None] * 7)
    ws.append(["INV2", "C1", date(2024, 3, 6), date(2024, 3, 1), 10, "EUR", "否"])
    p = tmp_path / "inv.xlsx"
    wb.save(p)
    rows, errors = _rows(p, "invoices")
    assert rows == [
        (
            2,
            {
                "external_id": "INV1",
                "customer_id": "C1",
                "issue_date": date(2024, 3, 5),
                "due_date": date(2024, 4, 4),
                "amount": Decimal("1250.5"),
                "currency": "EUR",
                "disputed": True,
            },
        )
    ]
    assert [(e.line, e.column) for e in errors] == [(4, "due_date")]


def test_empty_and_non_text_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(FileFormatError):
        ImportFile(empty, "customers")
    junk = tmp_path / "j.csv"
    junk.write_bytes(b"external_id\n\x81\x30\xff\xff\n")
    with pytest.raises(FileFormatError):
        ImportFile(junk, "customers")


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        ("amount", "12.345", "more than 2 decimal places"),
        ("amount", "1e5", "not a decimal number"),
        ("amount", "0", "must be greater than 0"),
        ("amount", "-5.00", "must be greater than 0"),
        ("currency", "EURO", "not an ISO 4217 currency code"),
        ("issue_date", "05.03.2024", "not a date"),
        ("disputed", "maybe", "not a yes/no value"),
        ("status", "closed", "must be one of"),
    ],
)
def test_bad_cells_are_reported_with_their_reason(column: str, text: str, reason: str) -> None:
    good = {
        "external_id": "I1",
        "customer_id": "C1",
        "issue_date": "2024-03-05",
        "due_date": "2024-04-04",
        "amount": "10.00",
        "currency": "EUR",
        "disputed": "no",
        "status": "open",
    }
    layout, errs = resolve_header(KINDS["invoices"], list(good), 1)
    assert errs == []
    values, errors = parse_row(layout, list(good.values()), 7)
    assert values is not None and values["amount"] == Decimal("10.00")
    bad = dict(good, **{column: text})
    values, errors = parse_row(layout, list(bad.values()), 7)
    assert values is None
    assert [(e.line, e.column, e.value) for e in errors] == [(7, column, text)]
    assert errors[0].reason.startswith(reason)


@pytest.mark.parametrize(
    ("text", "value"), [("是", True), ("否", False), ("YES", True), ("0", False)]
)
def test_booleans_accept_chinese_and_english(text: str, value: bool) -> None:
    layout, _ = resolve_header(KINDS["invoices"], ["disputed"], 1)
    values, errors = parse_row(layout, [text], 2)
    assert errors == [] and values == {"disputed": value}


def test_utf16_tab_separated_excel_unicode_text_is_read(tmp_path: Path) -> None:
    p = tmp_path / "c.txt"
    p.write_bytes("external_id\tname\nC1\tÄcme 华东\n".encode("utf-16"))
    rows, errors = _rows(p)
    assert errors == [] and rows == [(2, {"external_id": "C1", "name": "Äcme 华东"})]


def test_the_format_doc_lists_every_column_with_its_chinese_names() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "data-formats.md").read_text()
    for kind in KINDS.values():
        assert f"### `{kind.name}`" in doc
        for col in kind.columns:
            assert f"| `{col.name}` | {' / '.join(col.aliases) or '—'} |" in doc, col.name


def test_gb18030_is_recognised_even_after_a_megabyte_of_ascii(tmp_path: Path) -> None:
    ascii_rows = "".join(f"C{i:07d},Customer {i}\n" for i in range(80_000))
    p = tmp_path / "c.csv"
    p.write_bytes(("external_id,name\n" + ascii_rows + "CN1,上海贸易\n").encode("gb18030"))
    assert p.stat().st_size > 1 << 20
    with ImportFile(p, "customers") as f:
        assert f.source.encoding == "gb18030"
        last = [r for c in f.chunks(100_000) for r in c.rows][-1]
    assert last == (80_002, {"external_id": "CN1", "name": "上海贸易"})


NOT_COUNTRIES = ["ZZ", "EU", "EZ", "UN", "XA", "XB", "QO", "AC", "CP", "DG", "EA", "IC", "TA"]
REAL_COUNTRIES = ["CN", "DE", "US", "HK", "TW", "MO", "GB", "AT", "AQ", "SS", "XK"]


def test_countries_are_the_assigned_iso_3166_codes_and_kosovo() -> None:
    codes = countries()
    assert set(REAL_COUNTRIES) <= codes
    assert not set(NOT_COUNTRIES) & codes
    # ISO 3166-1 assigns 249 alpha-2 codes; Kosovo (XK, user-assigned) is the one addition
    assert len(codes) == 249 + 1
    assert all(len(c) == 2 and c.isascii() and c.isupper() for c in codes)


@pytest.mark.parametrize("text", [*NOT_COUNTRIES, "XX", "zz", "E1", "DEU"])
def test_a_code_that_is_not_a_country_is_a_bad_cell_naming_value_and_row(text: str) -> None:
    layout, errs = resolve_header(KINDS["customers"], ["external_id", "name", "country"], 1)
    assert errs == []
    values, errors = parse_row(layout, ["C1", "Acme", text], 12)
    assert values is None
    assert [(e.line, e.column, e.value) for e in errors] == [(12, "country", text)]
    assert "country code" in errors[0].reason
    if text.upper() in ("ZZ", "EU", "UN"):
        assert errors[0].reason.startswith(f"{text.upper()} (")  # named: "EU (European Union)"


_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(
    ("kind", "header", "row", "column"),
    [
        ("invoices", "amount", "1,234.50", "amount"),
        ("invoices", "amount", "12.345", "amount"),
        ("invoices", "amount", "-5", "amount"),
        ("invoices", "amount", "1" * 20, "amount"),
        ("invoices", "issue_date", "31.01.2024", "issue_date"),
        ("invoices", "issue_date", "2024-02-30", "issue_date"),
        ("invoices", "currency", "XTS", "currency"),
        ("invoices", "currency", "EURO", "currency"),
        ("customers", "country", "EU", "country"),
        ("customers", "country", "Q9", "country"),
        ("customers", "name", "x" * 300, "name"),
        ("customers", "name", "a\x00b", "name"),
        ("customers", "status", "sleeping", "status"),
        ("customers", "employees", "thirty", "employees"),
    ],
)
def test_every_bad_cell_is_explained_in_english_and_chinese(
    kind: str, header: str, row: str, column: str
) -> None:
    k = KINDS[kind]
    cols = [c.name for c in k.columns if c.required]
    if header not in cols:
        cols.append(header)
    layout, errs = resolve_header(k, cols, 1)
    assert errs == []
    cells = [row if c == header else (k.by_name[c].example or "x") for c in cols]
    values, errors = parse_row(layout, cells, 7)
    assert values is None and [e.column for e in errors] == [column]
    e = errors[0]
    assert e.reason and not _CJK.search(e.reason.replace("是/否", ""))
    assert e.reason_zh and _CJK.search(e.reason_zh) and e.reason_zh != e.reason
    assert e.as_dict()["reason_zh"] == e.reason_zh


def test_header_row_and_cross_column_problems_are_explained_in_chinese_too() -> None:
    k = KINDS["invoices"]
    layout, errs = resolve_header(
        k, ["external_id", "customer_id", "amount", "amount", "colour"], 1
    )
    zh = {e.column: e.reason_zh for e in errs}
    assert zh["amount"] == "列 amount 出现了两次"
    assert zh["colour"] is not None and zh["colour"].startswith("未知的列；可用的列：")
    assert zh["issue_date"] == "缺少必需的列"
    full = ["external_id", "customer_id", "issue_date", "due_date", "amount", "currency"]
    layout, errs = resolve_header(k, full, 1)
    _, errors = parse_row(layout, ["I1", "C1", "2024-03-01", "2024-02-01", "10.00", "EUR"], 2)
    assert [(e.column, e.reason_zh) for e in errors] == [
        ("due_date", "due_date 早于 issue_date（2024-03-01）")
    ]
    _, errors = parse_row(layout, ["I1", "", "2024-03-01", "2024-04-01", "10.00", "EUR"], 3)
    assert [(e.column, e.reason_zh) for e in errors] == [("customer_id", "缺少必填值")]


@pytest.mark.parametrize("text", ["CN", "de", "Hk", "TW", "MO", "XK"])
def test_real_country_codes_are_accepted_in_any_case(text: str) -> None:
    layout, _ = resolve_header(KINDS["customers"], ["external_id", "name", "country"], 1)
    values, errors = parse_row(layout, ["C1", "Acme", text], 2)
    assert errors == [] and values is not None and values["country"] == text.upper()
