"""What went wrong, row by row: the error list of a result and the annotated XLSX report.

The report is a workbook with the bad rows only: per source sheet, a sheet with
the row number (``行 / Row``), the original columns as text, and an ``错误 /
Errors`` column; the cells at fault are highlighted. Every cell is written as a
text cell (``t="inlineStr"``), never as a formula, so a value such as
``=cmd|'/c calc'!A1`` shows as the text it is. Control characters a workbook
cannot hold are dropped. The two extra columns are recognised (and ignored) by
an import, so a fixed report can be imported again (``--partial`` keeps what
was already imported from being doubled only with a unique field or
``--update-on``).

The report is written while the import runs (openpyxl's write-only mode keeps
rows in a temporary file, not in memory) and holds at most the result's error
cap of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.i18n import Text
from engine.imports.mapping import REPORT_ERRORS, REPORT_ROW
from engine.imports.reading import SourceRow

__all__ = ["ReportWriter", "RowError", "cell_text"]

MAX_VALUE_SHOWN = 200


@dataclass(frozen=True)
class RowError:
    """One problem of one row: where (sheet, row, column), the value, the message."""

    row: int | None
    column: str | None
    value: str | None
    message: Text
    sheet: str | None = None
    field: str | None = None

    def as_json(self, lang: str) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "field": self.field,
            "value": self.value,
            "message": self.message.get(lang),
        }

    def stored(self) -> dict[str, Any]:
        """For ``ff_imports.errors``: both languages."""
        return {**self.as_json("en"), "message": self.message.as_dict()}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> RowError:
        return cls(
            row=data.get("row"),
            column=data.get("column"),
            value=data.get("value"),
            message=Text.of(data.get("message")),
            sheet=data.get("sheet"),
            field=data.get("field"),
        )

    def render(self, lang: str) -> str:
        """``row 12, 客户名称 = 'X': message`` (in ``lang``)."""
        zh = lang == "zh"
        parts = []
        if self.sheet:
            parts.append(f"工作表 {self.sheet}" if zh else f"sheet {self.sheet}")
        if self.row is not None:
            parts.append(f"第 {self.row} 行" if zh else f"row {self.row}")
        if self.column:
            shown = self.column if self.value is None else f"{self.column} = {self.value!r}"
            parts.append(shown)
        where = ("，" if zh else ", ").join(parts)
        sep = "：" if zh else ": "
        return f"{where}{sep}{self.message.get(lang)}" if where else self.message.get(lang)


def cell_text(value: Any) -> str | None:
    """A cell value as text for messages and the report (None for a blank cell)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal | int | float):
        return str(value)
    return str(value)


def shown_value(value: Any) -> str | None:
    text = cell_text(value)
    if text is not None and len(text) > MAX_VALUE_SHOWN:
        return text[:MAX_VALUE_SHOWN] + "…"
    return text


class ReportWriter:
    """Bad rows into an annotated workbook, streamed (see the module docs)."""

    def __init__(self, path: Path, sheets: dict[str, list[str]], lang: str, cap: int) -> None:
        import openpyxl
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Font, PatternFill

        self.path = path
        self.lang = lang
        self.cap = cap
        self.written = 0
        self.left_out = 0
        self._illegal = ILLEGAL_CHARACTERS_RE
        self._bad = PatternFill(start_color="FFF4B183", end_color="FFF4B183", fill_type="solid")
        self._bold = Font(bold=True)
        self._book = openpyxl.Workbook(write_only=True)
        self._sheets: dict[str, Any] = {}
        self._widths: dict[str, int] = {}
        for name, header in sheets.items():
            ws = self._book.create_sheet(_sheet_title(name, self._sheets))
            self._sheets[name] = ws
            self._widths[name] = len(header)
            row = [self._text(ws, f"{REPORT_ROW.zh} / {REPORT_ROW.en}", bold=True)]
            row += [self._text(ws, h, bold=True) for h in header]
            row.append(self._text(ws, f"{REPORT_ERRORS.zh} / {REPORT_ERRORS.en}", bold=True))
            ws.append(row)

    def _text(self, ws: Any, value: Any, *, bold: bool = False, bad: bool = False) -> Any:
        from openpyxl.cell import WriteOnlyCell

        text = cell_text(value)
        cell = WriteOnlyCell(ws, value=None)
        if text is not None:
            cell.value = self._illegal.sub("", text)
            cell.data_type = "s"  # text, never a formula: '=...' stays as typed
        if bold:
            cell.font = self._bold
        if bad:
            cell.fill = self._bad
        return cell

    def add(self, sheet: str, row: SourceRow, messages: list[str], bad_columns: set[int]) -> None:
        """One bad row: its number, cells (highlighting ``bad_columns``) and messages."""
        if self.written >= self.cap:
            self.left_out += 1
            return
        ws = self._sheets.get(sheet)
        if ws is None:
            return
        self.written += 1
        width = self._widths[sheet]
        cells = [self._text(ws, row.number)]
        cells += [
            self._text(ws, row.cells[i] if i < len(row.cells) else None, bad=i in bad_columns)
            for i in range(width)
        ]
        cells.append(self._text(ws, "\n".join(messages), bad=bool(messages)))
        ws.append(cells)

    def close(self) -> None:
        if self.left_out:
            first = next(iter(self._sheets.values()))
            note = (
                f"另有 {self.left_out:,} 行有错误，未列出"
                if self.lang == "zh"
                else f"{self.left_out:,} more rows with errors are not listed"
            )
            first.append([self._text(first, note, bold=True)])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._book.save(self.path)


def _sheet_title(name: str, taken: dict[str, Any]) -> str:
    """A valid, unique sheet title (31 characters, none of ``[]:*?/\\``)."""
    base = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)[:31] or "Sheet"
    title = base
    n = 2
    used = {getattr(ws, "title", "") for ws in taken.values()}
    while title in used:
        suffix = f" ({n})"
        title = base[: 31 - len(suffix)] + suffix
        n += 1
    return title
