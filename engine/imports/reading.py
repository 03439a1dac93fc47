"""Reading import files: CSV and XLSX, streamed, refused early when they are hostile.

What a file must be
-------------------
The extension names the format (``.csv`` / ``.tsv`` / ``.txt``: CSV; ``.xlsx``:
Excel) and the first bytes must agree: an ``.xlsx`` is a zip archive holding
``[Content_Types].xml`` and ``xl/workbook.xml``; a CSV is text, not a zip, an old
``.xls`` (OLE), a PDF or any file with NUL bytes. Anything else is refused with a
message saying what the file looks like.

CSV
---
Encodings: UTF-8 (with or without the BOM Excel writes) and GB18030 (GBK / GB2312,
what Chinese Excel saves "CSV" as). The encoding is decided by the first line that
is not plain ASCII; a later line in another encoding (or bytes valid in neither)
refuses the file, naming the line. UTF-16 ("Unicode text") is refused: save as
CSV UTF-8. The delimiter is the one of ``,``, ``;`` and tab that the header line
holds most of. The file is read in blocks of 1 MB and parsed line by line, so
memory does not grow with its size; a line longer than
:attr:`~engine.imports.limits.ImportLimits.max_line_bytes` is refused.

XLSX
----
Before openpyxl sees the file, the zip directory is checked without inflating
anything: at most ``max_zip_entries`` entries, none encrypted or compressed with
anything but deflate, no entry inflating to more than ``max_entry_bytes``, all
together at most ``max_total_bytes``, and no entry over 1 MB inflating more than
``max_ratio`` times its compressed size (a zip bomb). Python's zipfile never
inflates an entry beyond the size its directory declares, so the checked sizes
hold. openpyxl then reads in read-only mode (streaming) with defusedxml, which
refuses XML entities (XXE, "billion laughs"); a workbook is refused outright if
defusedxml is not active. Cells are read as stored: a formula cell is its formula
text (``=SUM(A1:A3)``), never a computed value, and imports as that text. Shared
strings (``xl/sharedStrings.xml``) are held in memory by openpyxl: bounded by the
entry limit, but for very large files CSV streams with less memory.

Rows
----
The first row that is not blank is the header; at most ``max_columns`` columns
(a wider header is refused before any data row is read). Blank rows are
skipped. Row numbers are those a spreadsheet shows (the header of a CSV is row 1).
A cell longer than ``max_cell_chars`` is a problem of its row (the rest of the
file is read on). More than ``max_rows`` data rows in a sheet refuses the file.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, TypeVar

from engine.i18n import T, Text
from engine.imports.limits import MB, FileRefused, ImportLimits

__all__ = ["CSV_EXTENSIONS", "XLSX_EXTENSIONS", "Sheet", "SourceRow", "Workbook", "open_file"]

CSV_EXTENSIONS = frozenset({"csv", "tsv", "txt"})
XLSX_EXTENSIONS = frozenset({"xlsx"})
BLOCK = 1 * MB
#: CSV records read and checked at a time (see ``_CsvSheet._parts``; more is slower:
#: the part's cells fall out of the CPU caches).
ROWS_PER_BLOCK = 1024
_T = TypeVar("_T")
#: A CSV record's first cell.
_first_cell = itemgetter(0)
#: An XLSX entry smaller than this is not held to the compression ratio limit.
RATIO_FLOOR = 1 * MB

_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BOMS_16 = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"
_CJK = re.compile("[\u4e00-\u9fff]")
_DELIMITERS = (",", ";", "\t")


@dataclass(slots=True)
class SourceRow:
    """One data row: where it is and its cells (one per header column)."""

    number: int
    cells: list[Any]
    #: (0-based column or None, message): what the reader found wrong with the row.
    problems: Sequence[tuple[int | None, Text]] = ()


def chunked(source: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``source`` in lists of ``size`` (the last one shorter, none empty)."""
    chunk: list[_T] = []
    for value in source:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _refuse(zh: str, en: str, line: int | None = None) -> FileRefused:
    return FileRefused(T(zh, en), line=line)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Sheet:
    """One table of a file: a header and its data rows (read once, in order)."""

    name: str
    header: list[str]
    header_row: int
    #: Warnings about the sheet's shape (cells right of the header ...).
    warnings: list[Text]
    #: Every cell of a row of the header's width is a ``str`` (CSV), never None or a date.
    texts_only: bool = False

    def rows(self) -> Iterator[SourceRow]:  # pragma: no cover - abstract
        raise NotImplementedError

    def blocks(self, size: int) -> Iterator[list[SourceRow]]:
        """:meth:`rows` in lists of ``size`` (the last one shorter)."""
        return chunked(self.rows(), size)

    def progress(self) -> float:  # pragma: no cover - abstract
        """How much of the sheet is read, 0..1 (an estimate for XLSX)."""
        raise NotImplementedError


def _header(cells: list[Any], limits: ImportLimits, row: int) -> list[str]:
    names = ["" if _blank(c) else str(c).strip() for c in cells]
    while names and not names[-1]:
        names.pop()
    if len(names) > limits.max_columns:
        raise _refuse(
            f"第 {row} 行（表头）有 {len(names):,} 列，超过上限 {limits.max_columns} 列",
            f"row {row} (the header) has {len(names):,} columns, more than the limit of "
            f"{limits.max_columns}",
            row,
        )
    return names


def _fit(
    cells: list[Any],
    width: int,
    number: int,
    limits: ImportLimits,
    sheet: Sheet,
    *,
    texts: bool = False,
) -> SourceRow:
    """The row cut or padded to the header's width, long cells turned into problems.

    ``texts``: every cell is a string (CSV), so the length check runs in C first.
    """
    if texts and len(cells) == width and max(map(len, cells)) <= limits.max_cell_chars:
        return SourceRow(number, cells)
    problems: list[tuple[int | None, Text]] = []
    row = SourceRow(number, cells, problems)
    if len(cells) > width:
        if any(not _blank(c) for c in cells[width:]) and not sheet.warnings:
            sheet.warnings.append(
                T(
                    f"表头右侧的单元格已忽略（第一处在第 {number} 行）",
                    f"cells right of the last header column were ignored (first in row {number})",
                )
            )
        del cells[width:]
    elif len(cells) < width:
        cells.extend([None] * (width - len(cells)))
    limit = limits.max_cell_chars
    for i, value in enumerate(cells):
        if isinstance(value, str) and len(value) > limit:
            cells[i] = None
            problems.append(
                (
                    i,
                    T(
                        f"单元格超过 {limit:,} 个字符（{len(value):,}）",
                        f"the cell is longer than {limit:,} characters ({len(value):,})",
                    ),
                )
            )
    return row


# --------------------------------------------------------------------------- CSV


class _Decoder:
    """UTF-8 or GB18030, decided by the first line that is not ASCII (see the module)."""

    def __init__(self) -> None:
        self.encoding: str | None = None

    def decode(self, data: bytes, first_line: int) -> str:
        if self.encoding is None:
            if data.isascii():
                return data.decode("ascii")
            try:
                text = data.decode("utf-8")
                self.encoding = "utf-8"
                return text
            except UnicodeDecodeError as exc:
                if not data[: exc.start].isascii():
                    raise self._mixed(data, exc.start, first_line) from None
                try:
                    text = data.decode("gb18030")
                except UnicodeDecodeError as gb:
                    raise self._gb_failure(data, gb.start, first_line) from None
                self.encoding = "gb18030"
                self._check_gb_lines(data, first_line)
                return text
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            if self.encoding == "gb18030":
                raise self._gb_failure(data, exc.start, first_line) from None
            raise self._mixed(data, exc.start, first_line) from None
        if self.encoding == "gb18030":
            self._check_gb_lines(data, first_line)
        return text

    def _check_gb_lines(self, data: bytes, first_line: int) -> None:
        """A GB18030 file's line that is UTF-8 Chinese: mixed encodings (mojibake otherwise)."""
        if data.isascii():
            return
        for i, line in enumerate(data.split(b"\n")):
            if line.isascii():
                continue
            try:
                as_utf8 = line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(_CJK.findall(as_utf8)) >= 2:
                raise self._mixed_line(first_line + i, "GB18030", "UTF-8")

    def _gb_failure(self, data: bytes, position: int, first_line: int) -> FileRefused:
        """GB18030 failed at ``position``: a UTF-8 line there means mixed encodings."""
        start = data.rfind(b"\n", 0, position) + 1
        end = data.find(b"\n", position)
        line = data[start : end if end >= 0 else len(data)]
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return self._invalid(data, position, first_line)
        return self._mixed_line(self._line_of(data, position, first_line), "GB18030", "UTF-8")

    def _line_of(self, data: bytes, position: int, first_line: int) -> int:
        return first_line + data.count(b"\n", 0, position)

    def _mixed(self, data: bytes, position: int, first_line: int) -> FileRefused:
        line = self._line_of(data, position, first_line)
        if self.encoding is None or self.encoding == "utf-8":
            return self._mixed_line(line, "UTF-8", "GB18030 / GBK")
        return self._mixed_line(line, self.encoding.upper(), "?")

    @staticmethod
    def _mixed_line(line: int, first: str, other: str) -> FileRefused:
        return _refuse(
            f"第 {line} 行的编码与前面的行不同（前面是 {first}，此行不是；文件混用了多种编码？）。"
            "请把整个文件另存为 CSV UTF-8",
            f"line {line} is not in the encoding of the lines before it ({first}; this line "
            f"looks like {other}): the file mixes encodings. Save the whole file as CSV UTF-8",
            line,
        )

    def _invalid(self, data: bytes, position: int, first_line: int) -> FileRefused:
        line = self._line_of(data, position, first_line)
        return _refuse(
            f"第 {line} 行既不是 UTF-8 也不是 GB18030 编码，无法读取。请另存为 CSV UTF-8",
            f"line {line} is neither UTF-8 nor GB18030 text and cannot be read; "
            "save the file as CSV UTF-8",
            line,
        )


class _CsvSheet(Sheet):
    #: Every cell a ``str`` (never a date, number or None) before the row is fitted.
    texts_only = True

    def __init__(self, path: Path, name: str, limits: ImportLimits) -> None:
        self.name = name
        self.path = path
        self.limits = limits
        self.size = max(path.stat().st_size, 1)
        self.read_bytes = 0
        self.warnings = []
        self._decoder = _Decoder()
        self._file: IO[bytes] = path.open("rb")
        try:
            self._start(limits)
        except BaseException:
            self._file.close()
            raise

    def _start(self, limits: ImportLimits) -> None:
        # The decoded lines go to the csv reader a block at a time, through C
        # iterators (no Python frame per line); the first one also picks the delimiter.
        blocks = self._text_blocks()
        first_block = next(blocks, [])
        first = first_block[0] if first_block else ""
        delimiter = max(_DELIMITERS, key=lambda d: (first.count(d), d == ","))
        lines = chain(first_block, chain.from_iterable(blocks))
        self._reader = csv.reader(lines, delimiter=delimiter)
        self._number = 0
        self.header = []
        self.header_row = 0
        for cells in self._records():
            if cells and any(not _blank(c) for c in cells):
                self.header_row = self._number
                self.header = _header(list(cells), limits, self._number)
                break
        if not self.header:
            raise _refuse("文件是空的（没有表头行）", "the file is empty (no header row)")

    def close(self) -> None:
        self._file.close()

    def _text_blocks(self) -> Iterator[list[str]]:
        """The file's lines (each with its ``\\n``), a list per block read."""
        pending = b""
        line_no = 1
        start = True
        limit = self.limits.max_line_bytes
        while True:
            block = self._file.read(BLOCK)
            if start:
                start = False
                if block.startswith(_UTF8_BOM):
                    block = block[len(_UTF8_BOM) :]
                    self._decoder.encoding = "utf-8"
                    self.read_bytes += len(_UTF8_BOM)
            if not block:
                if pending:
                    self.read_bytes += len(pending)
                    yield [self._decoder.decode(pending, line_no)]
                return
            data = pending + block if pending else block
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                if len(pending) > limit:
                    raise _refuse(
                        f"第 {line_no} 行过长（超过 {limit // MB} MB 仍未结束）",
                        f"line {line_no} is too long (no line end within {limit // MB} MB)",
                        line_no,
                    )
                continue
            complete, pending = data[: cut + 1], data[cut + 1 :]
            text = self._decoder.decode(complete, line_no)
            self.read_bytes += len(complete)
            lines = text.split("\n")
            lines.pop()  # after the last "\n"
            line_no += len(lines)
            yield [line + "\n" for line in lines]

    def _records(self) -> Iterator[list[str]]:
        reader = self._reader
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _not_csv(reader.line_num, exc) from None
            self._number += 1
            yield cells

    def rows(self) -> Iterator[SourceRow]:
        return chain.from_iterable(self._parts(ROWS_PER_BLOCK))

    def blocks(self, size: int) -> Iterator[list[SourceRow]]:
        pending: list[SourceRow] = []
        for part in self._parts(min(size, ROWS_PER_BLOCK)):
            if pending:
                pending.extend(part)
            else:
                pending = part
            while len(pending) >= size:  # (a part is shorter when it had blank lines)
                if len(pending) == size:
                    yield pending
                    pending = []
                else:
                    yield pending[:size]
                    pending = pending[size:]
        if pending:
            yield pending

    def _parts(self, size: int) -> Iterator[list[SourceRow]]:
        """The data rows ``size`` records of the file at a time (blank lines left out).

        A part whose rows all have the header's width, no blank first cell and no
        cell over the limit (the common case) is checked in a few passes in C;
        any other part goes row by row, as :func:`_fit` says.
        """
        width = len(self.header)
        limits = self.limits
        max_chars = limits.max_cell_chars
        reader = self._reader
        count = 0
        while True:
            first = self._number + 1
            try:
                raw = list(islice(reader, size))
            except csv.Error as exc:
                raise _not_csv(reader.line_num, exc) from None
            if not raw:
                return
            self._number += len(raw)
            numbers = range(first, first + len(raw))
            if (
                set(map(len, raw)) == {width}
                and all(map(str.strip, map(_first_cell, raw)))
                and max(map(len, chain.from_iterable(raw))) <= max_chars
            ):
                count += len(raw)
                if count > limits.max_rows:
                    raise _too_many_rows(limits, self.name)
                yield list(map(SourceRow, numbers, raw))
                continue
            block: list[SourceRow] = []
            for number, cells in zip(numbers, raw, strict=True):
                # A line of blank cells is skipped (the first cell decides most lines alone).
                if not cells or not (cells[0].strip() or "".join(cells).strip()):
                    continue
                if len(cells) > limits.max_columns:
                    raise _refuse(
                        f"第 {number} 行有 {len(cells):,} 列，超过上限 {limits.max_columns} 列",
                        f"row {number} has {len(cells):,} columns, more than the limit of "
                        f"{limits.max_columns}",
                        number,
                    )
                count += 1
                if count > limits.max_rows:
                    raise _too_many_rows(limits, self.name)
                block.append(_fit(cells, width, number, limits, self, texts=True))
            if block:
                yield block

    def progress(self) -> float:
        return min(self.read_bytes / self.size, 1.0)


def _not_csv(line: int, exc: csv.Error) -> FileRefused:
    return _refuse(
        f"第 {line} 行无法按 CSV 读取：{exc}", f"line {line} cannot be read as CSV: {exc}", line
    )


def _too_many_rows(limits: ImportLimits, sheet: str) -> FileRefused:
    return _refuse(
        f"{sheet} 的数据行超过上限 {limits.max_rows:,} 行",
        f"{sheet} has more than the limit of {limits.max_rows:,} data rows",
    )


# --------------------------------------------------------------------------- XLSX


def _inspect_zip(path: Path, limits: ImportLimits) -> None:
    """Refuse a zip bomb and anything that is not a workbook, inflating nothing."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse(
            f"不是有效的 .xlsx 文件（压缩包已损坏：{exc}）",
            f"not a valid .xlsx file (the zip archive is damaged: {exc})",
        ) from None
    if len(infos) > limits.max_zip_entries:
        raise _refuse(
            f".xlsx 压缩包中有 {len(infos):,} 个条目，超过上限 {limits.max_zip_entries:,}",
            f"the .xlsx archive has {len(infos):,} entries, more than the limit of "
            f"{limits.max_zip_entries:,}",
        )
    total = 0
    names = set()
    for info in infos:
        names.add(info.filename)
        if info.flag_bits & 0x1:
            raise _refuse(
                ".xlsx 文件已加密，请先取消密码", "the .xlsx file is encrypted; remove the password"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _refuse(
                f".xlsx 条目 {info.filename} 使用了不支持的压缩方式",
                f"the .xlsx entry {info.filename} uses an unsupported compression method",
            )
        size = info.file_size
        if size > limits.max_entry_bytes:
            raise _refuse(
                f".xlsx 条目 {info.filename} 解压后 {size // MB:,} MB，超过上限 "
                f"{limits.max_entry_bytes // MB:,} MB（拒绝解压）",
                f"the .xlsx entry {info.filename} inflates to {size // MB:,} MB, more than the "
                f"limit of {limits.max_entry_bytes // MB:,} MB (refused before inflating)",
            )
        ratio = size / max(info.compress_size, 1)
        if size > RATIO_FLOOR and ratio > limits.max_ratio:
            raise _refuse(
                f".xlsx 条目 {info.filename} 的压缩比为 {ratio:,.0f} 倍，超过上限 "
                f"{limits.max_ratio} 倍（疑似压缩炸弹，拒绝解压）",
                f"the .xlsx entry {info.filename} inflates {ratio:,.0f} times its size, more "
                f"than the limit of {limits.max_ratio} (a zip bomb? refused before inflating)",
            )
        total += size
    if total > limits.max_total_bytes:
        raise _refuse(
            f".xlsx 解压后共 {total // MB:,} MB，超过上限 {limits.max_total_bytes // MB:,} MB"
            "（拒绝解压）",
            f"the .xlsx file inflates to {total // MB:,} MB in all, more than the limit of "
            f"{limits.max_total_bytes // MB:,} MB (refused before inflating)",
        )
    if not {"[Content_Types].xml", "xl/workbook.xml"} <= names:
        raise _refuse(
            "不是 Excel 工作簿（.xlsx）：压缩包中没有工作簿",
            "not an Excel workbook (.xlsx): the zip archive holds no workbook",
        )


def _xml_refused(exc: BaseException) -> FileRefused:
    name = type(exc).__name__
    chain: BaseException | None = exc
    seen = 0
    while chain is not None and seen < 10:  # openpyxl wraps defusedxml's error in its own
        if any(m.__module__.startswith("defusedxml") for m in type(chain).__mro__):
            return _refuse(
                "工作簿中含有 XML 实体或外部引用（XXE），已拒绝",
                "the workbook holds XML entity declarations or external references (XXE); refused",
            )
        chain = chain.__cause__ or chain.__context__
        seen += 1
    if "Forbidden" in name or "Defused" in name:
        return _refuse(
            "工作簿中含有 XML 实体或外部引用（XXE），已拒绝",
            "the workbook holds XML entity declarations or external references (XXE); refused",
        )
    return _refuse(f"无法读取工作簿：{name}: {exc}", f"the workbook cannot be read: {name}: {exc}")


class _XlsxSheet(Sheet):
    def __init__(self, book: Any, ws: Any, limits: ImportLimits) -> None:
        self.name = str(ws.title)
        self.limits = limits
        self.warnings = []
        self._ws = ws
        self._estimate = int(ws.max_row or 0)  # the sheet's own claim, for progress only
        ws.reset_dimensions()  # read every row, whatever the dimension claims
        self._read = 0
        self._iter = self._values()
        self.header = []
        self.header_row = 0
        for number, cells in self._iter:
            if any(not _blank(c) for c in cells):
                self.header_row = number
                self.header = _header(cells, limits, number)
                break
        if not self.header:
            raise _refuse(
                f"工作表 {self.name} 是空的（没有表头行）",
                f"the sheet {self.name} is empty (no header row)",
            )

    def _values(self) -> Iterator[tuple[int, list[Any]]]:
        width = self.limits.max_columns + 1
        try:
            for number, cells in enumerate(
                self._ws.iter_rows(max_col=width, values_only=True), start=1
            ):
                self._read = number
                yield number, list(cells)
        except FileRefused:
            raise
        except Exception as exc:
            raise _xml_refused(exc) from None

    def rows(self) -> Iterator[SourceRow]:
        width = len(self.header)
        count = 0
        for number, cells in self._iter:
            if all(_blank(c) for c in cells):
                continue
            count += 1
            if count > self.limits.max_rows:
                raise _too_many_rows(self.limits, self.name)
            yield _fit(cells, width, number, self.limits, self)

    def progress(self) -> float:
        if self._estimate <= 0:
            return 0.0
        return min(self._read / self._estimate, 1.0)


# --------------------------------------------------------------------------- files


class Workbook:
    """An opened import file: its sheets (a CSV has one) and how far it is read."""

    def __init__(self, path: Path, kind: str, limits: ImportLimits, display_name: str) -> None:
        self.path = path
        self.kind = kind
        self.limits = limits
        self.size = path.stat().st_size
        self._csv: _CsvSheet | None = None
        self._book: Any = None
        self._handle: IO[bytes] | None = None
        self._open: dict[str, Sheet] = {}
        if kind == "csv":
            self._csv = _CsvSheet(path, display_name, limits)
            self.sheet_names = [display_name]
        else:
            self._book, self._handle = _load_workbook(path, limits)
            names = list(self._book.sheetnames)
            if len(names) > limits.max_sheets:
                self.close()
                raise _refuse(
                    f"工作簿有 {len(names)} 个工作表，超过上限 {limits.max_sheets} 个",
                    f"the workbook has {len(names)} sheets, more than the limit of "
                    f"{limits.max_sheets}",
                )
            self.sheet_names = names
            try:
                self.sheet(names[0])  # the header row is checked when the file is opened
            except BaseException:
                self.close()
                raise

    @property
    def encoding(self) -> str | None:
        """The CSV encoding found so far (``utf-8`` / ``gb18030``), None if all ASCII."""
        return self._csv._decoder.encoding if self._csv is not None else None

    def sheet(self, name: str) -> Sheet:
        """The sheet ``name``, opened (its header read) on first use."""
        found = self._open.get(name)
        if found is not None:
            return found
        if self._csv is not None:
            sheet: Sheet = self._csv
        else:
            try:
                ws = self._book[name]
            except KeyError:
                raise _refuse(f"没有工作表 {name}", f"no sheet named {name}") from None
            sheet = _XlsxSheet(self._book, ws, self.limits)
        self._open[name] = sheet
        return sheet

    @property
    def main(self) -> Sheet:
        return self.sheet(self.sheet_names[0])

    def progress(self) -> float:
        """How much of the file is read, 0..1 (the main sheet's progress)."""
        first = self._open.get(self.sheet_names[0])
        return first.progress() if first is not None else 0.0

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._book is not None:
            self._book.close()
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _load_workbook(path: Path, limits: ImportLimits) -> tuple[Any, IO[bytes]]:
    import openpyxl

    if not getattr(openpyxl, "DEFUSEDXML", False):
        raise _refuse(
            "服务器未启用 defusedxml，出于安全考虑不读取 .xlsx；请改用 CSV",
            "defusedxml is not active on this server, so .xlsx files are not read "
            "(for safety); use CSV",
        )
    _inspect_zip(path, limits)
    handle = path.open("rb")  # ours, so that it is closed when openpyxl gives up half-way
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=False, keep_links=False)
    except Exception as exc:
        handle.close()
        raise _xml_refused(exc) from None
    return book, handle


def sniff(head: bytes) -> str:
    """What the first bytes of a file look like: zip, ole, pdf, utf16, binary or text."""
    if head.startswith(_ZIP):
        return "zip"
    if head.startswith(_OLE):
        return "ole"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(_BOMS_16):
        return "utf16"
    if b"\x00" in head:
        return "binary"
    return "text"


_LOOKS = {
    "zip": T("ZIP 压缩包（例如 .xlsx）", "a ZIP archive (such as .xlsx)"),
    "ole": T("旧版 Excel .xls 文件", "an old Excel .xls file"),
    "pdf": T("PDF 文件", "a PDF file"),
    "utf16": T("UTF-16 文本", "UTF-16 text"),
    "binary": T("二进制文件", "a binary file"),
    "text": T("文本文件（例如 CSV）", "a text file (such as CSV)"),
}


def open_file(
    path: str | os.PathLike[str], limits: ImportLimits, display_name: str | None = None
) -> Workbook:
    """Open ``path`` for reading after checking that it is what its name says.

    ``display_name`` is the name the user gave the file (the upload's name; it
    decides the format by its extension), else ``path``'s own name.
    """
    file = Path(path)
    name = display_name or file.name
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    with file.open("rb") as f:
        head = f.read(8192)
    looks = sniff(head)
    if ext in CSV_EXTENSIONS:
        if looks == "utf16":
            raise _refuse(
                "不支持 UTF-16 编码的文本；请在 Excel 中另存为“CSV UTF-8（逗号分隔）”",
                "UTF-16 text is not supported; in Excel, save as 'CSV UTF-8 (Comma delimited)'",
            )
        if looks != "text":
            raise _refuse(
                f"文件扩展名是 .{ext}，但内容是{_LOOKS[looks].zh}，不是 CSV 文本",
                f"the file is named .{ext} but holds {_LOOKS[looks].en}, not CSV text",
            )
        return Workbook(file, "csv", limits, name)
    if ext in XLSX_EXTENSIONS:
        if looks != "zip":
            raise _refuse(
                f"文件扩展名是 .xlsx，但内容是{_LOOKS[looks].zh}，不是 Excel 工作簿",
                f"the file is named .xlsx but holds {_LOOKS[looks].en}, not an Excel workbook",
            )
        return Workbook(file, "xlsx", limits, name)
    if ext == "xls":
        raise _refuse(
            "不支持旧版 .xls 文件；请在 Excel 中另存为 .xlsx 或 CSV UTF-8",
            "old .xls files are not supported; in Excel, save as .xlsx or CSV UTF-8",
        )
    raise _refuse(
        f"不支持的文件类型 .{ext or '?'}：请上传 .xlsx 或 .csv",
        f"unsupported file type .{ext or '?'}: upload an .xlsx or .csv file",
    )
