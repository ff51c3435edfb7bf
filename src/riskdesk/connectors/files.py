"""Read CSV and XLSX import files as a stream of row chunks.

CSV: the delimiter (``,`` ``;`` or tab) is sniffed from the header line; UTF-8 with or without
BOM, UTF-16 with BOM (Excel "Unicode text"), and GB18030 (Chinese Excel exports) when the
start of the file is not valid UTF-8. XLSX: openpyxl in read-only (streaming) mode, the sheet
named like the kind or else the first sheet. Rows come out in chunks with the line number as
seen in the file, so nothing ever holds the whole file in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from riskdesk.connectors.import_schema import KINDS, Chunk, Kind, parse_row, resolve_header

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t")


class FileFormatError(ValueError):
    """The file as a whole cannot be read (not CSV/XLSX, undecodable, empty, no header); the
    message is the reason shown to the user, ``zh`` the same in Chinese."""

    def __init__(self, reason: str, zh: str) -> None:
        super().__init__(reason)
        self.zh = zh


@dataclass
class RawRow:
    line: int
    cells: list[str | None]


def detect_encoding(sample: bytes) -> str:
    """``utf-8-sig`` / ``utf-16`` by BOM, else ``utf-8`` if the sample decodes, else ``gb18030``."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    raise FileFormatError(
        "the file is neither UTF-8 nor GB18030 text; save it as CSV UTF-8",
        "文件既不是 UTF-8 也不是 GB18030 文本；请另存为 CSV UTF-8",
    )


def _first_non_ascii(head: bytes, fh: IO[bytes]) -> bytes:
    """``head``, or when it is pure ASCII the first later block with non-ASCII bytes.

    English-only headers and codes often fill the first megabyte; the encoding shows only in
    the first name with an accent or a Chinese character. ``bytes.isascii`` scans fast.
    """
    if not head.isascii():
        return head
    while block := fh.read(SAMPLE_BYTES):
        if not block.isascii():
            start = next(i for i, b in enumerate(block) if b > 0x7F)
            return block[start:]
    return head


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of ``,`` ``;`` tab in the header line (``,`` for a single column)."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class CsvSource:
    """A CSV file read row by row; ``position`` is the number of bytes consumed so far."""

    unit = "bytes"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = path.stat().st_size
        self._bin: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            sample = self._bin.read(SAMPLE_BYTES)
            self.encoding = detect_encoding(_first_non_ascii(sample, self._bin))
            first = codecs.getincrementaldecoder(self.encoding)(errors="replace").decode(sample)
            first = first.lstrip("\ufeff").lstrip("\r\n")
            self.delimiter = sniff_delimiter(first.splitlines()[0] if first else "")
            self._bin.seek(0)
            self._text = io.TextIOWrapper(self._bin, encoding=self.encoding, newline="")
            self._reader = csv.reader(self._text, delimiter=self.delimiter)
        except BaseException:
            self._bin.close()
            raise

    def position(self) -> int:
        try:
            return self._bin.tell()
        except (OSError, ValueError):
            return self.total

    def rows(self) -> Iterator[RawRow]:
        reader = self._reader
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise FileFormatError(
                    f"line {line}: bytes that are not valid {self.encoding} ({exc.reason}); "
                    "save the file as CSV UTF-8",
                    f"第 {line} 行：含有不是有效 {self.encoding} 的字节（{exc.reason}）；"
                    "请将文件另存为 CSV UTF-8",
                ) from exc
            except csv.Error as exc:
                raise FileFormatError(
                    f"line {line}: malformed CSV ({exc})", f"第 {line} 行：CSV 格式错误（{exc}）"
                ) from exc
            if not any(c.strip() for c in cells):
                continue
            if line == 1 and cells and cells[0].startswith("\ufeff"):
                cells[0] = cells[0][1:]
            yield RawRow(line, list(cells))

    def close(self) -> None:
        self._bin.close()


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class XlsxSource:
    """An XLSX workbook read with openpyxl in read-only mode; ``position`` counts rows."""

    unit = "rows"

    def __init__(self, path: Path, sheet: str | None = None) -> None:
        from openpyxl import load_workbook

        self.path = path
        try:
            self._wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException …
            raise FileFormatError(
                f"not a readable XLSX workbook ({exc})", f"不是可读取的 XLSX 工作簿（{exc}）"
            ) from exc
        names = {n.lower(): n for n in self._wb.sheetnames}
        ws = (
            self._wb[names[sheet.lower()]]
            if sheet and sheet.lower() in names
            else self._wb.worksheets[0]
        )
        self._ws = ws
        self.total = int(ws.max_row or 0)
        # some writers store a wrong sheet size: read what is there, not what is declared
        ws.reset_dimensions()
        self._pos = 0
        self.encoding = "xlsx"
        self.delimiter = ""

    def position(self) -> int:
        return self._pos

    def rows(self) -> Iterator[RawRow]:
        for line, values in enumerate(self._ws.iter_rows(values_only=True), start=1):
            self._pos = line
            cells = [_cell_text(v) for v in values]
            if not any(c is not None and c.strip() for c in cells):
                continue
            yield RawRow(line, cells)

    def close(self) -> None:
        self._wb.close()


Source = CsvSource | XlsxSource


def open_source(path: Path, sheet: str | None = None) -> Source:
    """A CSV or XLSX source by extension (or the ZIP signature)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise FileFormatError(
            "legacy .xls workbooks are not supported; save as .xlsx or CSV",
            "不支持旧版 .xls 工作簿；请另存为 .xlsx 或 CSV",
        )
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if suffix in (".xlsx", ".xlsm") or magic == b"PK\x03\x04":
        return XlsxSource(path, sheet)
    return CsvSource(path)


class ImportFile:
    """One import file of one kind: its header layout and its rows in typed chunks."""

    def __init__(self, path: str | Path, kind: str | Kind) -> None:
        self.kind = KINDS[kind] if isinstance(kind, str) else kind
        self.path = Path(path)
        self.source = open_source(self.path, self.kind.name)
        try:
            self._rows = self.source.rows()
            first = next(self._rows, None)
        except BaseException:
            self.source.close()
            raise
        if first is None:
            self.source.close()
            raise FileFormatError(
                "the file is empty: the first line must be the column names",
                "文件是空的：第一行必须是列名",
            )
        self.header_line = first.line
        self.layout, self.header_errors = resolve_header(self.kind, first.cells, first.line)

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.layout.present]

    def chunks(self, batch_size: int) -> Iterator[Chunk]:
        """Typed rows in chunks of ``batch_size`` (only call when ``header_errors`` is empty)."""
        chunk = Chunk()
        layout = self.layout
        for raw in self._rows:
            values, errors = parse_row(layout, raw.cells, raw.line)
            chunk.count += 1
            if values is None:
                chunk.errors.extend(errors)
            else:
                chunk.rows.append((raw.line, values))
            if chunk.count >= batch_size:
                yield chunk
                chunk = Chunk()
        if chunk.count:
            yield chunk

    def position(self) -> int:
        return self.source.position()

    @property
    def total(self) -> int:
        return self.source.total

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> ImportFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
