"""Exports: a list view (its filters, search and sort) as CSV or XLSX, for its reader.

The format is documented for people and for the importer in ``docs/exports.md``;
the short version:

* **Rows**: the records the actor may read that match the query, in its sort
  order, read with keyset paging in chunks of :data:`CHUNK_ROWS` (never one big
  list). Hidden fields are never exported. Columns: ``id``, every visible
  non-table field in blueprint order, then ``owner``, ``created_at``,
  ``created_by``, ``updated_at``, ``updated_by``.
* **Headers**: ``中文标签 / English label`` (one label when both are equal or one
  is missing), or the field names (``headers="names"``).
* **Values**: choices as their stored option value; multi-choice as the values
  joined by ``", "`` (a JSON list when a value holds a separator); refs as the
  target's title (``#<id>`` when it has none or the reader may not see it), or
  the id (``refs="ids"``); users as login names; files as their key; numbers,
  money and percentages as numbers; dates and date-times (business time zone).
* **CSV**: UTF-8 with a BOM (``utf-8-sig``, so Excel reads Chinese), RFC 4180
  (CRLF, quotes doubled), streamed as a generator; parent rows only.
* **XLSX**: openpyxl ``write_only``; strings always as string cells (never a
  formula); one more sheet per visible table field, its first column the
  parent's key (see :func:`parent_key`).
* **Formula injection**: every text cell whose first character (after leading
  whitespace and control/format characters) is ``=``, ``+``, ``-`` or ``@``, or
  whose leading run of those holds a tab or CR, gets a ``'`` in front
  (:func:`neutralise`; :func:`unneutralise` undoes it exactly).
* **Audit**: one ``ff_exports`` row per export, written when its stream ends
  (``status`` done, aborted or failed).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
import tempfile
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import IO, Any, BinaryIO
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import FormflowError, NotFound, PermissionDenied
from engine.fields import kind_of
from engine.fields.dates import using_timezone
from engine.i18n import T, Text
from engine.model import SYSTEM_LABELS, Blueprint, Entity, Field
from engine.permissions import Permissions
from engine.records import Actor, RecordService
from engine.storage.database import writer
from engine.storage.query import Query, QueryError, parse_query_args
from engine.storage.schema import Schema

__all__ = [
    "CHUNK_ROWS",
    "CONTENT_TYPES",
    "EXPORT_PARAMS",
    "FORMATS",
    "HEADER_MODES",
    "REF_MODES",
    "Column",
    "Export",
    "ExportEntry",
    "ExportRefused",
    "ExportService",
    "columns",
    "content_disposition",
    "export_query",
    "filter_args",
    "header",
    "is_dangerous",
    "neutralise",
    "parent_key",
    "unneutralise",
]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "xlsx")
HEADER_MODES: tuple[str, ...] = ("labels", "names")
REF_MODES: tuple[str, ...] = ("titles", "ids")
VIAS: tuple[str, ...] = ("web", "api", "cli", "system")
CONTENT_TYPES: Mapping[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: Records read per query (keyset paging); also the CSV's rows per streamed chunk.
CHUNK_ROWS = 500
#: Data rows an XLSX sheet can hold (Excel's 1,048,576 rows, less the header row).
XLSX_MAX_ROWS = 1_048_575
#: Characters an XLSX cell can hold; longer text is cut (CSV keeps it whole).
XLSX_MAX_TEXT = 32_767
#: Bytes per chunk when streaming a finished XLSX file.
FILE_CHUNK = 64 * 1024
#: Query-string parameters an export ignores: paging and the export's own options.
EXPORT_PARAMS: tuple[str, ...] = (
    "after",
    "limit",
    "offset",
    "back",
    "lang",
    "format",
    "headers",
    "refs",
)
#: System columns exported before the fields (``id``) and after them.
LEADING_SYSTEM = ("id",)
TRAILING_SYSTEM = ("owner", "created_at", "created_by", "updated_at", "updated_by")

DANGEROUS_FIRST = frozenset("=+-@")
_BREAKERS = frozenset("\t\r")
_SEPARATORS = re.compile(r"[,;，；、\n]")
# Characters XML 1.0 (so XLSX) cannot hold: shown as U+FFFD instead.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SHEET_ILLEGAL = re.compile(r"[\[\]:*?/\\]")
_FILE_ILLEGAL = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
_CUT_MARK = "…"

MSG_FORMAT = T("导出格式应为 csv 或 xlsx", "the export format must be csv or xlsx")
MSG_HEADERS = T("表头应为 labels 或 names", "headers must be labels or names")
MSG_REFS = T("引用应导出为 titles 或 ids", "refs must be exported as titles or ids")
MSG_NO_READ = T("你无权查看此实体的记录", "you may not read records of this entity")


class ExportRefused(FormflowError):
    """An export that cannot be made as asked (too many rows for an XLSX sheet)."""

    http_status = 422
    default_message = T("无法导出", "cannot export")


# -- formula injection ------------------------------------------------------------------


def _skipped(ch: str) -> bool:
    """Whitespace and control/format characters a spreadsheet may look past."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")


def is_dangerous(text: str) -> bool:
    """Could a spreadsheet read ``text`` as a formula (or a DDE payload)?

    True when the first character that is not whitespace or a control/format
    character (``\\u00a0``, ``\\u200b``, ``\\ufeff``, ``\\x00``-``\\x1f`` ...) is one
    of ``= + - @``, or when a tab or CR comes before it. Full-width look-alikes
    (``＝`` U+FF1D, ``＋``, ``－``, ``＠``) are not: spreadsheets do not evaluate them.
    """
    for ch in text:
        if ch in _BREAKERS:
            return True
        if _skipped(ch):
            continue
        return ch in DANGEROUS_FIRST
    return False


def neutralise(text: str) -> str:
    """``text`` with a ``'`` in front when it (or it after its leading quotes) is
    dangerous; otherwise unchanged. Reversible: see :func:`unneutralise`."""
    return "'" + text if is_dangerous(text.lstrip("'")) else text


def unneutralise(text: str) -> str:
    """The value :func:`neutralise` was given (for importers): one ``'`` removed
    exactly when neutralising added it. ``unneutralise(neutralise(s)) == s``."""
    if text.startswith("'") and is_dangerous(text[1:].lstrip("'")):
        return text[1:]
    return text


# -- the query ------------------------------------------------------------------------


def _without(args: Mapping[str, Any], names: Collection[str]) -> dict[str, list[str]]:
    getlist = getattr(args, "getlist", None)
    out: dict[str, list[str]] = {}
    for key in args:
        if key in names:
            continue
        raw = getlist(key) if callable(getlist) else args[key]
        out[key] = [str(v) for v in raw] if isinstance(raw, (list, tuple)) else [str(raw)]
    return out


def export_query(
    entity: Entity,
    args: Mapping[str, Any],
    *,
    hidden: Collection[str] = (),
    ignore: Iterable[str] = (),
) -> Query:
    """The list page's query (:func:`parse_query_args`) without its paging.

    Paging (``after``, ``limit``, ``offset``, ``back``), ``lang`` and the export's
    own options (``format``, ``headers``, ``refs``) are left out, so an export
    link made from any page of a list exports the whole list.
    """
    skip = set(EXPORT_PARAMS) | set(ignore)
    return parse_query_args(entity, _without(args, skip), hidden=hidden)


def filter_args(specs: Iterable[str]) -> dict[str, list[str]]:
    """``field:op:value`` (the CLI's ``--filter``) as query-string parameters.

    ``stage:eq:won`` -> ``stage=won``, ``amount:gte:1000`` -> ``amount__gte=1000``;
    the value may hold more colons. ``field:value`` means ``eq``.
    """
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, rest = spec.partition(":")
        if not sep or not name.strip():
            raise QueryError(
                T(
                    f"筛选条件应写作 字段:运算符:值，而不是 {spec!r}",
                    f"a filter is field:op:value, not {spec!r}",
                ),
                param="filter",
            )
        op, sep, value = rest.partition(":")
        if not sep:
            op, value = "eq", rest
        key = name.strip() if op.strip() == "eq" else f"{name.strip()}__{op.strip()}"
        out.setdefault(key, []).append(value)
    return out


# -- columns --------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One exported column.

    ``kind`` decides how values are written: ``text``, ``integer``, ``decimal``,
    ``date``, ``datetime``, ``boolean``, ``choices`` (a multi-choice list) or
    ``ref`` (``target`` is the referenced entity).
    """

    name: str
    header: str
    kind: str = "text"
    number_format: str | None = None
    target: str | None = None


def header(label: Text, name: str, mode: str = "labels") -> str:
    """``中文 / English``, one label when both are equal or one is missing, else ``name``;
    ``name`` itself when ``mode`` is ``names``."""
    if mode == "names":
        return name
    zh = (label.zh or "").strip()
    en = (label.en or "").strip()
    if zh and en and zh != en:
        return f"{zh} / {en}"
    return zh or en or name


def _decimal_format(places: int, grouped: bool, suffix: str = "") -> str:
    base = "#,##0" if grouped else "0"
    if places > 0:
        base += "." + "0" * places
    return base + suffix


def _field_column(f: Field, head: str) -> Column:
    kind = kind_of(f)
    result = kind.result_kind(f) if hasattr(kind, "result_kind") else kind
    name, storage = result.name, result.storage
    if name == "ref":
        return Column(f.name, head, "ref", target=f.to)
    if name == "multi_choice" or storage == "json":
        return Column(f.name, head, "choices")
    if storage == "integer":
        return Column(f.name, head, "integer", "0")
    if storage == "decimal":
        precision = getattr(result, "precision", None)
        places = precision(f) if callable(precision) else 2
        if name == "money":
            return Column(f.name, head, "decimal", _decimal_format(places, True))
        if name == "percent":  # stored as shown: 60 means 60%
            return Column(f.name, head, "decimal", _decimal_format(places, False, '"%"'))
        return Column(f.name, head, "decimal", _decimal_format(places, False))
    if storage == "date":
        return Column(f.name, head, "date", "yyyy-mm-dd")
    if storage == "datetime":
        return Column(f.name, head, "datetime", "yyyy-mm-dd hh:mm:ss")
    if storage == "boolean":
        return Column(f.name, head, "boolean")
    return Column(f.name, head, "text")


_SYSTEM_KINDS: Mapping[str, tuple[str, str | None]] = {
    "id": ("integer", "0"),
    "owner": ("text", None),
    "created_at": ("datetime", "yyyy-mm-dd hh:mm:ss"),
    "created_by": ("text", None),
    "updated_at": ("datetime", "yyyy-mm-dd hh:mm:ss"),
    "updated_by": ("text", None),
}


def _unique_headers(cols: list[Column]) -> list[Column]:
    """Columns whose header would repeat an earlier one's take their field name."""
    seen: set[str] = set()
    out: list[Column] = []
    for col in cols:
        if col.header in seen:
            col = replace(col, header=col.name)
        seen.add(col.header)
        out.append(col)
    return out


def columns(entity: Entity, hidden: Collection[str] = (), mode: str = "labels") -> list[Column]:
    """The exported columns of ``entity`` for a reader who may not see ``hidden``."""
    cols: list[Column] = []
    for name in LEADING_SYSTEM:
        kind, fmt = _SYSTEM_KINDS[name]
        cols.append(Column(name, header(SYSTEM_LABELS[name], name, mode), kind, fmt))
    for f in entity.fields.values():
        if f.kind == "table" or f.name in hidden:
            continue
        cols.append(_field_column(f, header(f.label, f.name, mode)))
    for name in TRAILING_SYSTEM:
        kind, fmt = _SYSTEM_KINDS[name]
        cols.append(Column(name, header(SYSTEM_LABELS[name], name, mode), kind, fmt))
    return _unique_headers(cols)


def parent_key(entity: Entity, hidden: Collection[str] = ()) -> str:
    """The column that names a child row's parent in an XLSX table sheet.

    The title field when it is ``unique`` and ``required`` (and visible): the
    importer can match it against the main sheet or the database; else ``id``.
    """
    name = entity.title_field
    f = entity.fields.get(name or "")
    if f is not None and f.unique and f.required and f.name not in hidden and not f.computed:
        return f.name
    return "id"


def _child_columns(table: Field, key: Column, mode: str) -> list[Column]:
    cols = [key]
    for f in table.fields.values():
        cols.append(_field_column(f, header(f.label, f.name, mode)))
    return _unique_headers(cols)


# -- values ---------------------------------------------------------------------------


def _plain(value: Any, tz: tzinfo) -> str:
    """A value as plain text (a ref's title, a CSV cell)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _local(value, tz).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return _joined([str(v) for v in value])
    return str(value)


def _local(value: datetime, tz: tzinfo) -> datetime:
    """A moment as naive business time to the second (spreadsheets know no time
    zones); a naive value is business time already."""
    if value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    return value.replace(microsecond=0)


def _joined(values: Sequence[str]) -> str:
    """Multi-choice values: ``"a, b"``; a JSON list when a value holds a separator."""
    if any(_SEPARATORS.search(v) for v in values):
        return json.dumps(list(values), ensure_ascii=False)
    return ", ".join(values)


Titles = Mapping[str, Mapping[int, str]]


def _cell(col: Column, value: Any, titles: Titles, refs: str, tz: tzinfo) -> Any:
    """The value to write: text (neutralised) or a typed number/date/bool, or None."""
    if value is None:
        return None
    kind = col.kind
    if kind == "ref":
        try:
            rid = int(value)
        except (TypeError, ValueError):
            return neutralise(str(value))
        if refs == "ids":
            return rid
        return neutralise(titles.get(col.target or "", {}).get(rid) or f"#{rid}")
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "decimal" and isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return Decimal(value)
    if kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return value
    if kind == "datetime" and isinstance(value, datetime):
        return _local(value, tz)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "choices" and isinstance(value, (list, tuple)):
        return neutralise(_joined([str(v) for v in value])) if value else None
    return neutralise(_plain(value, tz))


def _csv_text(value: Any, tz: tzinfo) -> str:
    """A cell as CSV text (text cells were neutralised already)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _plain(value, tz)


def _xlsx_text(text: str) -> str:
    text = _XML_ILLEGAL.sub("\ufffd", text)
    if len(text) > XLSX_MAX_TEXT:
        text = text[: XLSX_MAX_TEXT - 1] + _CUT_MARK
    return text


def xlsx_cell(sheet: Any, value: Any, number_format: str | None) -> Any:
    """A write-only cell: strings always as string cells (``t="inlineStr"``), never
    formulas or error values; numbers, dates and booleans typed, with formats."""
    from openpyxl.cell import WriteOnlyCell

    if isinstance(value, str):
        cell = WriteOnlyCell(sheet, value=_xlsx_text(value))
        cell.data_type = "s"  # openpyxl would read "=..." as a formula, "#N/A" as an error
        return cell
    cell = WriteOnlyCell(sheet, value=value)
    if number_format and value is not None and not isinstance(value, bool):
        cell.number_format = number_format
    return cell


def _sheet_title(candidates: Sequence[str], taken: set[str]) -> str:
    """The first candidate that is a valid, unused sheet name; else a made-up one."""
    for raw in candidates:
        text = (raw or "").strip()
        if (
            text
            and len(text) <= 31
            and not _SHEET_ILLEGAL.search(text)
            and not text.startswith("'")
            and not text.endswith("'")
            and text.casefold() not in taken
            and text.casefold() != "history"
            and not _XML_ILLEGAL.search(text)
        ):
            taken.add(text.casefold())
            return text
    base = _SHEET_ILLEGAL.sub("_", _XML_ILLEGAL.sub("_", candidates[-1] if candidates else ""))
    base = base.strip("' ")[:27] or "Sheet"
    n = 1
    while f"{base}~{n}".casefold() in taken:
        n += 1
    taken.add(f"{base}~{n}".casefold())
    return f"{base}~{n}"


def _sheet_candidates(label: Text, name: str, mode: str) -> list[str]:
    if mode == "names":
        return [name]
    return [label.zh or "", label.en or "", name]


# -- file names -----------------------------------------------------------------------


def _file_part(text: str) -> str:
    cleaned = " ".join(_FILE_ILLEGAL.sub("_", text).split()).strip(". ")
    return cleaned[:80]


def content_disposition(file_name: str, fallback: str = "export") -> str:
    """``attachment`` with an ASCII ``filename`` and the UTF-8 name (RFC 5987/6266)."""
    ascii_name = "".join(
        ch if 0x20 < ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in fallback
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name, safe='')}"


# -- the audit ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportEntry:
    """One ``ff_exports`` row."""

    id: int
    at: datetime
    started_at: datetime
    user: str | None
    entity: str
    format: str
    rows: int
    filters: dict[str, Any]
    file_name: str
    via: str
    status: str


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def _query_json(query: Query, headers: str, refs: str) -> dict[str, Any]:
    return {
        "filters": [[f.field, f.op, _jsonable(f.value)] for f in query.filters],
        "search": query.search,
        "sort": list(query.sort),
        "headers": headers,
        "refs": refs,
    }


# -- the export -----------------------------------------------------------------------


class Export:
    """One export in progress: iterate it for the file's bytes, then it is audited.

    Made by :meth:`ExportService.start`, which has already read the first chunk
    (CSV) or written the whole file to a temporary file (XLSX), so a bad query or
    a refused export fails before any byte is sent. Iterating yields the bytes;
    the ``ff_exports`` row is written when the iteration ends (``done``), when it
    is closed early (``aborted``: the client went away) or fails (``failed``).
    ``close()`` is what WSGI servers call on a response body.
    """

    def __init__(
        self,
        service: ExportService,
        entity: Entity,
        query: Query,
        *,
        fmt: str,
        actor: Actor,
        via: str,
        headers: str,
        refs: str,
        lang: str,
    ) -> None:
        self.service = service
        self.entity = entity
        self.query = query
        self.format = fmt
        self.actor = actor
        self.via = via
        self.headers = headers
        self.refs = refs
        self.lang = lang
        self.tz = service.tz
        self.started_at = service.clock()
        hidden = service.hidden(actor, entity)
        self.columns = columns(entity, hidden, headers)
        self.key = parent_key(entity, hidden)
        self.tables = [f for f in entity.tables() if f.name not in hidden]
        self.file_name, self.ascii_name = self._names()
        self.content_type = CONTENT_TYPES[fmt]
        #: Rows of the main sheet written into the stream so far.
        self.rows = 0
        #: None while running; then "done", "aborted" or "failed".
        self.status: str | None = None
        self._pages: Iterator[list[dict[str, Any]]] | None = None
        self._first: list[dict[str, Any]] | None = None
        self._file: IO[bytes] | None = None
        self._stream: Iterator[bytes] | None = None

    # -- set-up

    def _names(self) -> tuple[str, str]:
        stamp = _local(self.started_at, self.tz).strftime("%Y%m%d-%H%M%S")
        label = _file_part(self.entity.label.get(self.lang) or self.entity.name) or "export"
        ascii_label = self.entity.name if self.entity.name.isascii() else "export"
        ascii_label = _file_part(ascii_label) or "export"
        return f"{label}-{stamp}.{self.format}", f"{ascii_label}-{stamp}.{self.format}"

    def _prepare(self) -> None:
        """Read the first chunk (a bad query fails here); build the whole XLSX file."""
        self._pages = self._read_pages()
        self._first = next(self._pages)
        if self.format == "xlsx":
            try:
                self._build_xlsx()
            except BaseException:
                self._cleanup()
                raise

    def _read_pages(self) -> Iterator[list[dict[str, Any]]]:
        """The matching rows, one chunk per query (keyset paging, no count)."""
        query = replace(self.query, limit=CHUNK_ROWS, offset=0, after=None)
        records = self.service.records
        while True:
            with using_timezone(self.tz):
                page = records.list_records(
                    self.entity.name, query, actor=self.actor, with_count=False
                )
            yield page.rows
            if not page.has_more or not page.next_cursor:
                return
            query = replace(query, after=page.next_cursor)

    def _chunks(self) -> Iterator[list[dict[str, Any]]]:
        assert self._pages is not None, "start() prepares an export"
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._pages

    def _titles(self, *parts: tuple[Sequence[Column], Sequence[Mapping[str, Any]]]) -> Titles:
        """``{target entity: {id: title}}`` for the refs in each ``(columns, rows)`` part."""
        if self.refs == "ids":
            return {}
        wanted: dict[str, set[int]] = {}
        for cols, rows in parts:
            for col in cols:
                if col.kind != "ref" or not col.target:
                    continue
                for row in rows:
                    value = row.get(col.name)
                    if isinstance(value, int) and not isinstance(value, bool):
                        wanted.setdefault(col.target, set()).add(value)
        out: dict[str, dict[int, str]] = {}
        for target, ids in wanted.items():
            found = self.service.records.title_values(target, ids, actor=self.actor)
            out[target] = {rid: _plain(v, self.tz) for rid, v in found.items() if v is not None}
        return out

    def _cells(self, cols: Sequence[Column], row: Mapping[str, Any], titles: Titles) -> list[Any]:
        return [_cell(c, row.get(c.name), titles, self.refs, self.tz) for c in cols]

    # -- CSV

    def _csv_chunks(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\r\n")
        buffer.write("\ufeff")
        out.writerow([neutralise(c.header) for c in self.columns])
        for rows in self._chunks():
            titles = self._titles((self.columns, rows))
            for row in rows:
                out.writerow(
                    [_csv_text(v, self.tz) for v in self._cells(self.columns, row, titles)]
                )
                self.rows += 1
            yield buffer.getvalue().encode("utf-8", "replace")
            buffer.seek(0)
            buffer.truncate()
        rest = buffer.getvalue()
        if rest:
            yield rest.encode("utf-8", "replace")

    # -- XLSX

    def _build_xlsx(self) -> None:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        taken: set[str] = set()
        main = book.create_sheet(
            _sheet_title(
                _sheet_candidates(self.entity.label, self.entity.name, self.headers), taken
            )
        )
        key_col = next(c for c in self.columns if c.name == self.key)
        sheets: list[_ChildSheet] = []
        for table in self.tables:
            sheet = book.create_sheet(
                _sheet_title(_sheet_candidates(table.label, table.name, self.headers), taken)
            )
            sheets.append(_ChildSheet(table, sheet, _child_columns(table, key_col, self.headers)))
        try:
            self._fill_xlsx(main, key_col, sheets)
            # Kept open past this method: the response streams it, _cleanup() closes it.
            self._file = tempfile.TemporaryFile()  # noqa: SIM115
            book.save(self._file)
        except BaseException:
            _discard(book)
            raise
        self._file.seek(0)

    def _fill_xlsx(self, main: Any, key_col: Column, sheets: Sequence[_ChildSheet]) -> None:
        _head_row(main, self.columns)
        for child_sheet in sheets:
            _head_row(child_sheet.sheet, child_sheet.columns)
        formats = [c.number_format for c in self.columns]
        for rows in self._chunks():
            children = (
                self.service.records.child_rows(
                    self.entity.name, [r["id"] for r in rows], actor=self.actor
                )
                if sheets
                else {}
            )
            titles = self._titles(
                (self.columns, rows),
                *(
                    (s.columns, [c for g in children.get(s.table.name, {}).values() for c in g])
                    for s in sheets
                ),
            )
            for row in rows:
                if self.rows >= XLSX_MAX_ROWS:
                    raise _too_many()
                cells = self._cells(self.columns, row, titles)
                main.append([xlsx_cell(main, v, f) for v, f in zip(cells, formats, strict=True)])
                self.rows += 1
                key = _cell(key_col, row.get(self.key), titles, self.refs, self.tz)
                for s in sheets:
                    for child in children.get(s.table.name, {}).get(int(row["id"]), []):
                        if s.rows >= XLSX_MAX_ROWS:
                            raise _too_many()
                        values = [key, *self._cells(s.columns[1:], child, titles)]
                        s.sheet.append(
                            [
                                xlsx_cell(s.sheet, v, c.number_format)
                                for v, c in zip(values, s.columns, strict=True)
                            ]
                        )
                        s.rows += 1

    def _file_chunks(self) -> Iterator[bytes]:
        assert self._file is not None, "start() builds the XLSX file"
        while data := self._file.read(FILE_CHUNK):
            yield data

    # -- streaming and the audit

    def __iter__(self) -> Iterator[bytes]:
        if self._stream is None:
            self._stream = self._guarded()
        return self._stream

    def _guarded(self) -> Iterator[bytes]:
        finished = False
        try:
            yield from self._csv_chunks() if self.format == "csv" else self._file_chunks()
            finished = True
        except GeneratorExit:
            raise
        except BaseException:
            self._finish("failed")
            raise
        finally:
            self._finish("done" if finished else "aborted")
            self._cleanup()

    def close(self) -> None:
        """End the export (audited as aborted unless it finished)."""
        if self._stream is not None:
            closer = getattr(self._stream, "close", None)
            if callable(closer):
                closer()
        self._finish("aborted")
        self._cleanup()

    def write_to(self, out: BinaryIO) -> int:
        """Write the whole file to ``out``; the number of (main sheet) rows."""
        try:
            for data in self:
                out.write(data)
        finally:
            self.close()
        return self.rows

    def _cleanup(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pages = None
        self._first = None

    def _finish(self, status: str) -> None:
        if self.status is not None:
            return
        self.status = status
        try:
            self.service.record(self)
        except Exception:  # the bytes are gone either way: say so loudly, do not mask
            log.exception("could not write the ff_exports row of %s", self.file_name)


@dataclass
class _ChildSheet:
    """The XLSX sheet of one table field, with its columns and rows written so far."""

    table: Field
    sheet: Any
    columns: list[Column]
    rows: int = 0


def _head_row(sheet: Any, cols: Sequence[Column]) -> None:
    """The bold, frozen header row; columns as wide as their headers."""
    from openpyxl.styles import Font

    bold = Font(bold=True)
    cells = []
    for i, col in enumerate(cols, start=1):
        cell = xlsx_cell(sheet, neutralise(col.header), None)
        cell.font = bold
        cells.append(cell)
        sheet.column_dimensions[_letter(i)].width = _width(col.header)
    sheet.freeze_panes = "A2"
    sheet.append(cells)


def _discard(book: Any) -> None:
    """Close a write-only workbook that will not be saved and remove its temporary files."""
    for sheet in book.worksheets:
        with contextlib.suppress(Exception):
            if not sheet.closed:
                sheet.close()
        sheet_writer = getattr(sheet, "_writer", None)  # openpyxl keeps rows in a temp file
        if sheet_writer is not None:
            with contextlib.suppress(Exception):
                sheet_writer.cleanup()


def _letter(n: int) -> str:
    from openpyxl.utils import get_column_letter

    text: str = get_column_letter(n)
    return text


def _width(text: str) -> float:
    wide = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return float(min(max(wide + 2, 10), 50))


def _too_many() -> ExportRefused:
    return ExportRefused(
        T(
            f"XLSX 每个工作表最多 {XLSX_MAX_ROWS:,} 行：请缩小筛选范围或导出 CSV",
            f"an XLSX sheet holds at most {XLSX_MAX_ROWS:,} rows: narrow the filters or export CSV",
        )
    )


# -- the service ----------------------------------------------------------------------


class ExportService:
    """Make exports (:meth:`start`) and read their audit (:meth:`history`)."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        records: RecordService,
        *,
        permissions: Permissions | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.write_engine = writer(engine)
        self.records = records
        self.permissions = permissions
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tz: tzinfo = ZoneInfo(blueprint.timezone)
        self.table: sa.Table = schema.exports

    def hidden(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """Fields of ``entity`` that ``actor`` may not see (never exported)."""
        if self.permissions is None:
            return frozenset()
        return self.permissions.hidden_fields(actor, entity.name)

    def start(
        self,
        entity: str,
        query: Query | None = None,
        *,
        fmt: str = "csv",
        actor: Actor,
        via: str = "system",
        headers: str = "labels",
        refs: str = "titles",
        lang: str = "zh",
    ) -> Export:
        """An :class:`Export` of ``entity``'s records matching ``query`` (its paging is
        ignored), as ``actor`` may read them. Raises before anything is streamed:
        :class:`ExportRefused` (too many rows for XLSX), QueryError (a bad query),
        NotFound (no such entity), PermissionDenied (the actor may read none).
        A bad ``fmt``, ``headers`` or ``refs`` is a QueryError too."""
        if fmt not in FORMATS:
            raise QueryError(MSG_FORMAT, param="format")
        if headers not in HEADER_MODES:
            raise QueryError(MSG_HEADERS, param="headers")
        if refs not in REF_MODES:
            raise QueryError(MSG_REFS, param="refs")
        ent = self.blueprint.entities.get(entity)
        if ent is None:
            raise NotFound(T(f"没有实体 {entity}", f"no entity {entity!r}"))
        if self.permissions is not None and not self.permissions.can_read(actor, ent.name):
            raise PermissionDenied(MSG_NO_READ)
        export = Export(
            self,
            ent,
            query or Query(),
            fmt=fmt,
            actor=actor,
            via=via if via in VIAS else "system",
            headers=headers,
            refs=refs,
            lang=lang,
        )
        export._prepare()
        return export

    def record(self, export: Export) -> None:
        """Write the ``ff_exports`` row of a finished (or aborted, or failed) export."""
        with self.write_engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    at=self.clock(),
                    started_at=export.started_at,
                    user=export.actor.name,
                    entity=export.entity.name,
                    format=export.format,
                    rows=export.rows,
                    filters=_query_json(export.query, export.headers, export.refs),
                    file_name=export.file_name[:255],
                    via=export.via,
                    status=export.status or "aborted",
                )
            )

    def history(
        self, *, entity: str | None = None, user: str | None = None, limit: int = 100
    ) -> list[ExportEntry]:
        """The latest exports, newest first."""
        t = self.table
        stmt = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if entity is not None:
            stmt = stmt.where(t.c.entity == entity)
        if user is not None:
            stmt = stmt.where(t.c.user == user)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            ExportEntry(
                id=int(r.id),
                at=r.at,
                started_at=r.started_at,
                user=r.user,
                entity=r.entity,
                format=r.format,
                rows=int(r.rows),
                filters=dict(r.filters),
                file_name=r.file_name,
                via=r.via,
                status=r.status,
            )
            for r in rows
        ]
