"""Which column is which field, and how rows become records (with their child rows).

Column headers
--------------
A header names a field by any of (compared without case, width or extra spaces):

* the field name (``name``), its Chinese label (``客户名称``) or its English label
  (``Name``);
* both labels joined by ``/`` (``客户名称 / Name``), as exports write them; the
  parts that name a field must name the same one (a part naming nothing, such as
  a label changed since the export, is let be);
* a child-table column as ``table.column``, each side by name or label
  (``lines.qty``, ``产品明细.数量``, ``产品明细.数量 / Line items.Quantity``);
* ``owner`` / ``负责人`` / ``Owner``: the record's owner (a user name).

A field name wins over a label; a label two fields share is refused (use the
name or a mapping file). An explicit mapping file (YAML or JSON: ``column header:
field``, ``table.column`` for a child column, ``null`` to skip a column) replaces
the guessing for the columns it names.

Ignored columns: the system columns (``id``, ``version``, ``created_at`` ...),
computed and autonumber fields (exports carry them; the engine computes them),
and the ``行 / Row`` and ``错误 / Errors`` columns of an error report, silently;
columns of fields the importing user may not write, file fields (unless the
engine itself imports) and unknown columns, with a warning each.

Child rows
----------
Two layouts, documented in docs/imports.md:

* **Repeated parent rows** (CSV, or the first sheet of a workbook): child
  columns beside the parent's. A row continues the record above when each of
  its parent cells is blank or the same as in the record's first row (exports
  repeat them); a row with a different parent cell starts a new record. Without
  child columns every row is a record.
* **One sheet per child table** (XLSX): a sheet named after the table field
  (name or label). Its first column is the parent key: its header is the header
  of a main-sheet column, and each child row belongs to the main-sheet row with
  that value. Child rows must come in the order of the main sheet (as exports
  write them); a row that matches no record at its place is reported.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from engine.batch import MISSING
from engine.i18n import T, Text
from engine.imports.limits import FileRefused
from engine.imports.reading import Sheet, SourceRow, Workbook
from engine.model import Entity

__all__ = [
    "ChildRow",
    "Item",
    "ItemReader",
    "Layout",
    "Target",
    "load_mapping_file",
    "norm",
    "plan_layout",
]

#: System columns an export may carry: ignored (``owner`` is imported).
SYSTEM_NAMES: Mapping[str, tuple[str, str]] = {
    "id": ("编号", "ID"),
    "version": ("版本", "Version"),
    "created_at": ("创建时间", "Created"),
    "created_by": ("创建人", "Created by"),
    "updated_at": ("更新时间", "Updated"),
    "updated_by": ("更新人", "Updated by"),
}
OWNER_NAMES = ("owner", "负责人", "Owner")
#: The extra columns of an error report (so a report can be imported again).
REPORT_ROW = T("行", "Row")
REPORT_SHEET = T("工作表", "Sheet")
REPORT_ERRORS = T("错误", "Errors")

MAX_MAPPING_BYTES = 1024 * 1024
_WHEN = (datetime, date, time)
#: What may join a sheet title's two labels (a title may not hold ``/``).
_SHEET_PARTS = re.compile(r"\s*[/|｜()（）\-–—]\s*")


def norm(text: str) -> str:
    """A header as compared: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class Target:
    """What a column holds."""

    kind: Literal["field", "owner", "child", "key", "ignore"]
    name: str = ""  # the field (or table) name
    column: str = ""  # a child column's field name
    #: Why an ignored column is ignored (a warning), None when silently.
    note: Text | None = None


IGNORE = Target("ignore")


def _refused(zh: str, en: str) -> FileRefused:
    return FileRefused(T(zh, en))


def _names(name: str, label: Text) -> set[str]:
    out = {norm(name)}
    for text in (label.zh, label.en):
        if text:
            out.add(norm(text))
    return out


class _Matcher:
    """Header text -> Target for one entity (see the module docs)."""

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.by_name: dict[str, Target] = {}
        self.by_label: dict[str, set[Target]] = {}
        self.tables: dict[str, set[str]] = {}  # normalised table name/label -> tables
        for name, f in entity.fields.items():
            target = Target("child" if f.kind == "table" else "field", name)
            if f.kind == "table":
                for n in _names(name, f.label):
                    self.tables.setdefault(n, set()).add(name)
                continue
            self.by_name[norm(name)] = target
            for n in _names(name, f.label) - {norm(name)}:
                self.by_label.setdefault(n, set()).add(target)
        for name, (zh, en) in SYSTEM_NAMES.items():
            for n in (name, zh, en):
                self.by_label.setdefault(norm(n), set()).add(Target("ignore", name))
        for n in OWNER_NAMES:
            self.by_label.setdefault(norm(n), set()).add(Target("owner", "owner"))
        for text in (REPORT_ROW, REPORT_SHEET, REPORT_ERRORS):
            for words in (text.zh, text.en, f"{text.zh} / {text.en}"):
                self.by_label.setdefault(norm(words or ""), set()).add(Target("ignore", "_report"))

    def _whole(self, key: str) -> set[Target]:
        if key in self.by_name:
            return {self.by_name[key]}
        return set(self.by_label.get(key, set()))

    def _child(self, key: str, table: str | None = None) -> set[Target]:
        """``table.column`` (or ``column`` alone when ``table`` is given)."""
        found: set[Target] = set()
        if table is not None:
            tf = self.entity.fields[table]
            for cname, cf in tf.fields.items():
                if key in _names(cname, cf.label):
                    found.add(Target("child", table, cname))
        for i, ch in enumerate(key):
            if ch != ".":
                continue
            head, tail = key[:i].strip(), key[i + 1 :].strip()
            for tname in self.tables.get(head, set()):
                if table is not None and tname != table:
                    continue
                tf = self.entity.fields[tname]
                for cname, cf in tf.fields.items():
                    if tail in _names(cname, cf.label):
                        found.add(Target("child", tname, cname))
        return found

    def _one(self, key: str, table: str | None) -> set[Target]:
        if table is None:
            found = self._whole(key)
            if found:
                return found
        return self._child(key, table)

    def match(self, header: str, table: str | None = None) -> set[Target]:
        """Every target ``header`` may name (empty: unknown; several: ambiguous)."""
        key = norm(header)
        found = self._one(key, table)
        if found:
            return found
        for sep in (" / ", "/"):
            if sep not in key:
                continue
            parts = [p.strip() for p in key.split(sep) if p.strip()]
            if len(parts) < 2:
                continue
            # The parts that name something must name the same thing; a part naming
            # nothing (a label translated since the file was exported) is let be.
            common: set[Target] | None = None
            for part in parts:
                options = self._one(part, table)
                if options:
                    common = options if common is None else common & options
            if common:
                return common
        return set()

    def table_of_sheet(self, sheet: str) -> str | None:
        """The table a sheet is named after: by name or label, or both labels joined by
        ``|``, ``-`` or brackets (``产品明细 (Line items)``; a title may not hold ``/``)."""
        key = norm(sheet)
        found = set(self.tables.get(key, set()))
        if not found:
            parts = [p for p in _SHEET_PARTS.split(key) if p]
            if len(parts) >= 2:
                common: set[str] | None = None
                for part in parts:
                    options = self.tables.get(part, set())
                    common = set(options) if common is None else common & options
                found = common or set()
        return next(iter(found)) if len(found) == 1 else None


def _label(entity: Entity, name: str, lang_sep: str = " / ") -> str:
    f = entity.fields.get(name)
    if f is None:
        return name
    return lang_sep.join(dict.fromkeys(t for t in (f.label.zh, f.label.en, name) if t))


@dataclass
class ChildSheetLayout:
    """A child table read from a sheet of its own."""

    table: str
    sheet: Sheet
    key_index: int  # the parent-key column in the child sheet
    parent_index: int  # the matching column in the main sheet
    columns: dict[int, str]  # child sheet column -> child field


@dataclass
class Layout:
    """How the columns of a file map onto an entity."""

    entity: Entity
    main: Sheet
    targets: list[Target]  # per main-sheet column
    field_columns: dict[str, int]  # top-level field (and "owner") -> main column
    inline: dict[str, dict[int, str]]  # table -> {main column -> child field}
    child_sheets: dict[str, ChildSheetLayout]
    key_index: int | None  # update_on's column
    warnings: list[Text] = field(default_factory=list)

    def child_columns(self, table: str) -> tuple[str, dict[str, int]]:
        """(sheet name, {child field -> column}) where the table's cells are."""
        if table in self.child_sheets:
            cs = self.child_sheets[table]
            return cs.sheet.name, {v: k for k, v in cs.columns.items()}
        return self.main.name, {v: k for k, v in self.inline.get(table, {}).items()}


def load_mapping_file(path: str | Path) -> dict[str, str | None]:
    """``{column header: field}`` from a YAML or JSON file (``null``: skip the column)."""
    file = Path(path)
    data = file.read_bytes()
    if len(data) > MAX_MAPPING_BYTES:
        raise _refused("映射文件过大（超过 1 MB）", "the mapping file is too large (over 1 MB)")
    text = data.decode("utf-8-sig", errors="replace")
    try:
        if file.suffix.lower() == ".json":
            loaded: Any = json.loads(text)
        else:
            from engine.yamlsafe import parse_yaml

            loaded, _pos = parse_yaml(text, str(file))
    except Exception as exc:  # a syntax error: one message
        message = getattr(exc, "text", None)
        detail = message.get("en") if isinstance(message, Text) else str(exc)
        raise _refused(
            f"映射文件无法读取：{detail}", f"the mapping file cannot be read: {detail}"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("columns"), Mapping):
        loaded = loaded["columns"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in loaded.items()
    ):
        raise _refused(
            "映射文件应为“列标题: 字段名”的映射（跳过某列写 null）",
            "the mapping file must map column headers to field names (null skips a column)",
        )
    return {str(k): (None if v in (None, "") else str(v)) for k, v in loaded.items()}


def _mapped_target(entity: Entity, value: str, header: str) -> Target:
    """The target a mapping file names for ``header``."""
    name = value.strip()
    if name in OWNER_NAMES[:1]:
        return Target("owner", "owner")
    if name in SYSTEM_NAMES:
        return Target("ignore", name)
    if "." in name:
        table, _, column = name.partition(".")
        tf = entity.fields.get(table)
        if tf is not None and tf.kind == "table" and column in tf.fields:
            return Target("child", table, column)
    f = entity.fields.get(name)
    if f is not None and f.kind != "table":
        return Target("field", name)
    raise _refused(
        f"映射文件把列“{header}”映射到 {name}，但{entity.name}没有这个字段",
        f"the mapping file maps the column '{header}' to {name}, which is no field of "
        f"{entity.name}",
    )


def plan_layout(
    book: Workbook,
    entity: Entity,
    *,
    mapping: Mapping[str, str | None] | None = None,
    locked: frozenset[str] = frozenset(),
    files_allowed: bool = False,
    update_on: str | None = None,
) -> Layout:
    """Map the file's columns (and child sheets) onto ``entity``; refuse what is ambiguous.

    ``locked``: fields the importer may not write (their columns are ignored with a
    warning); ``files_allowed``: whether file fields are imported (the engine only).
    """
    matcher = _Matcher(entity)
    main = book.main
    warnings: list[Text] = []
    explicit = {norm(k): v for k, v in (mapping or {}).items()}
    used: set[str] = set()
    targets: list[Target] = []
    for header in main.header:
        targets.append(
            _column_target(matcher, entity, header, explicit, used, locked, files_allowed, warnings)
        )
    for key, value in (mapping or {}).items():
        if norm(key) not in used:
            warnings.append(
                T(
                    f"映射文件中的列“{key}”不在文件中",
                    f"the mapping file names a column '{key}' that the file does not have",
                )
            )
        del value
    field_columns: dict[str, int] = {}
    inline: dict[str, dict[int, str]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for i, t in enumerate(targets):
        if t.kind in ("ignore", "key"):
            continue
        ident = (t.kind, t.name, t.column)
        if ident in seen:
            first = main.header[seen[ident]]
            raise _refused(
                f"列“{first}”和“{main.header[i]}”都对应{_label(entity, t.name)}",
                f"the columns '{first}' and '{main.header[i]}' both map to "
                f"{_label(entity, t.name)}",
            )
        seen[ident] = i
        if t.kind == "child":
            inline.setdefault(t.name, {})[i] = t.column
        else:
            field_columns[t.name] = i
    key_index: int | None = None
    if update_on is not None:
        for i, t in enumerate(targets):
            if t.name == update_on and t.kind in ("field", "key"):
                key_index = i
        if key_index is None:
            raise _refused(
                f"按 {update_on} 更新，但文件中没有这一列",
                f"updating on {update_on}, but the file has no column for it",
            )
    child_sheets: dict[str, ChildSheetLayout] = {}
    for name in book.sheet_names[1:]:
        table = matcher.table_of_sheet(name)
        if table is None:
            warnings.append(
                T(
                    f"工作表“{name}”不对应任何子表，已忽略",
                    f"the sheet '{name}' is no child table; ignored",
                )
            )
            continue
        if table in inline or table in child_sheets:
            raise _refused(
                f"子表 {table} 既有同表中的列又有单独的工作表“{name}”，请只用一种方式",
                f"the child table {table} has columns in the main sheet and a sheet '{name}' "
                "of its own; use one",
            )
        child_sheets[table] = _child_sheet(book.sheet(name), table, matcher, main, entity)
    return Layout(
        entity=entity,
        main=main,
        targets=targets,
        field_columns=field_columns,
        inline=inline,
        child_sheets=child_sheets,
        key_index=key_index,
        warnings=warnings,
    )


def _column_target(
    matcher: _Matcher,
    entity: Entity,
    header: str,
    explicit: Mapping[str, str | None],
    used: set[str],
    locked: frozenset[str],
    files_allowed: bool,
    warnings: list[Text],
) -> Target:
    if not header:
        return IGNORE
    key = norm(header)
    if key in explicit:
        used.add(key)
        value = explicit[key]
        if value is None:
            return IGNORE
        target = _mapped_target(entity, value, header)
    else:
        found = matcher.match(header)
        if len(found) > 1:
            names = ", ".join(sorted(t.name + (f".{t.column}" if t.column else "") for t in found))
            raise _refused(
                f"列标题“{header}”有歧义（可对应 {names}）；请改用字段名或映射文件",
                f"the column header '{header}' is ambiguous (it may be {names}); use the field "
                "name or a mapping file",
            )
        if not found:
            warnings.append(
                T(
                    f"列“{header}”不对应任何字段，已忽略",
                    f"the column '{header}' matches no field; ignored",
                )
            )
            return IGNORE
        target = next(iter(found))
    if target.kind == "child" and not target.column:
        raise _refused(
            f"列“{header}”是子表 {target.name}：请用“子表.列”命名子表的各列",
            f"the column '{header}' is the child table {target.name}: name its columns "
            "as table.column",
        )
    if target.kind in ("field", "child"):
        f = entity.fields[target.name]
        if target.kind == "child":
            cf = f.fields[target.column]
            if cf.formula is not None or cf.kind == "autonumber":
                return Target("ignore", target.name)
            if cf.kind == "file" and not files_allowed:
                return _ignored(
                    header, T("文件字段不导入", "file fields are not imported"), warnings
                )
        if target.name in locked:
            return _ignored(header, T("你无权修改此字段", "you may not write this field"), warnings)
        if target.kind == "field":
            if f.formula is not None or f.kind == "autonumber":
                return Target("key", target.name)  # not written; may be the update key
            if f.kind == "file" and not files_allowed:
                return _ignored(
                    header, T("文件字段不导入", "file fields are not imported"), warnings
                )
    return target


def _ignored(header: str, why: Text, warnings: list[Text]) -> Target:
    warnings.append(
        T(f"列“{header}”已忽略：{why.zh}", f"the column '{header}' is ignored: {why.en}")
    )
    return Target("ignore", note=why)


def _child_sheet(
    sheet: Sheet, table: str, matcher: _Matcher, main: Sheet, entity: Entity
) -> ChildSheetLayout:
    header = sheet.header
    parent_key = norm(header[0]) if header else ""
    parent_index = next((i for i, h in enumerate(main.header) if norm(h) == parent_key), None)
    if parent_index is None or not parent_key:
        raise _refused(
            f"工作表“{sheet.name}”的第一列“{header[0] if header else ''}”应为父记录的键，"
            "其标题须与主工作表的某一列相同",
            f"the first column '{header[0] if header else ''}' of the sheet '{sheet.name}' must "
            "be the parent key, headed like a column of the main sheet",
        )
    columns: dict[int, str] = {}
    for i, h in enumerate(header[1:], start=1):
        if not h:
            continue
        found = [t for t in matcher.match(h, table) if t.kind == "child" and t.name == table]
        if len(found) != 1:
            sheet.warnings.append(
                T(
                    f"工作表“{sheet.name}”的列“{h}”不对应子表 {table} 的列，已忽略",
                    f"the column '{h}' of the sheet '{sheet.name}' matches no column of {table}; "
                    "ignored",
                )
            )
            continue
        cf = entity.fields[table].fields[found[0].column]
        if cf.formula is not None or cf.kind == "autonumber":
            continue
        if found[0].column in columns.values():
            raise _refused(
                f"工作表“{sheet.name}”中有两列都对应 {table}.{found[0].column}",
                f"two columns of the sheet '{sheet.name}' map to {table}.{found[0].column}",
            )
        columns[i] = found[0].column
    return ChildSheetLayout(table, sheet, 0, parent_index, columns)


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class ChildRow:
    sheet: str
    row: SourceRow
    data: dict[str, Any]


@dataclass(slots=True)
class Problem:
    """Something wrong with an item before the record service sees it."""

    sheet: str
    row: int
    column: int | None  # in that sheet
    key: str  # field key (``customer``, ``lines[0].qty``, ``_record``)
    message: Text


@dataclass(slots=True)
class Item:
    """One record to import: its source rows, raw values and child rows."""

    row: SourceRow
    rows: list[SourceRow]
    data: dict[str, Any]  # field -> raw value (blank cells left out)
    blanks: list[str]  # fields whose cell is blank (an update clears them)
    children: dict[str, list[ChildRow]]
    problems: list[Problem]
    owner: Any = None
    key: Any = None  # the raw update key


def _when_text(value: datetime | date | time) -> str:
    """``2026-11-27`` (a date, or a midnight), ``2026-11-27 16:30:00``, ``16:30:00``."""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(" ")
    return value.isoformat()


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _same(a: Any, b: Any) -> bool:
    if _is_blank(a):
        return _is_blank(b)
    if _is_blank(b):
        return False
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    return bool(a == b)


def _key_text(value: Any) -> str:
    if _is_blank(value):
        return ""
    return str(value).strip()


class _ChildCursor:
    """Merge-join of a child sheet with the main sheet, by the parent key."""

    def __init__(self, layout: ChildSheetLayout) -> None:
        self.layout = layout
        self.rows = layout.sheet.rows()
        self.pending: SourceRow | None = None
        self.done = False

    def _peek(self) -> SourceRow | None:
        if self.pending is None and not self.done:
            self.pending = next(self.rows, None)
            if self.pending is None:
                self.done = True
        return self.pending

    def take(self, key: str) -> list[SourceRow]:
        out: list[SourceRow] = []
        if not key:
            return out
        while True:
            row = self._peek()
            if row is None or _key_text(row.cells[self.layout.key_index]) != key:
                return out
            out.append(row)
            self.pending = None

    def leftovers(self) -> Iterator[SourceRow]:
        while True:
            row = self._peek()
            if row is None:
                return
            self.pending = None
            yield row


def _same_list(cells: list[Any]) -> list[Any]:
    return cells


def _child_data(cells: list[Any], columns: Mapping[int, str]) -> dict[str, Any] | None:
    data = {name: cells[i] for i, name in columns.items() if not _is_blank(cells[i])}
    return data or None


class ItemReader:
    """The records of a file, in order, each with its child rows (iterate once).

    After the iteration, :meth:`unmatched` yields the child-sheet rows that
    matched no record at their place (out of order, or an unknown parent key).
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.cursors = {t: _ChildCursor(cs) for t, cs in layout.child_sheets.items()}
        entity = layout.entity
        #: Text fields (not dates): a date/time cell Excel made of one is imported as text.
        self.texts = frozenset(
            n
            for n, f in entity.fields.items()
            if f.kind in ("text", "long_text", "phone", "email", "url", "autonumber")
        )
        mapped = {t.name for t in layout.targets if t.kind == "field"}
        self._texts_mapped = [n for n in self.texts if n in mapped]
        self._owner_index = layout.field_columns.get("owner")
        self._texts_only = layout.main.texts_only
        plain = [(i, t.name) for i, t in enumerate(layout.targets) if t.kind == "field"]
        #: The field names of the mapped cells and the cells' picker: a row's data is
        #: ``dict(zip(names, pick(cells)))``, built in C (a later column wins, as before).
        self._names = tuple(name for _i, name in plain)
        self._plain = plain
        indices = [i for i, _name in plain]
        self._pick: Callable[[list[Any]], Iterable[Any]]
        if indices == list(range(len(indices))):
            self._pick = _same_list  # the mapped columns are the first ones, in order
        elif len(indices) == 1:
            only = indices[0]
            self._pick = lambda cells: (cells[only],)
        else:
            self._pick = itemgetter(*indices)

    def unmatched(self) -> Iterator[tuple[str, SourceRow]]:
        for cursor in self.cursors.values():
            for row in cursor.leftovers():
                yield cursor.layout.sheet.name, row

    @property
    def columnar(self) -> bool:
        """Whether a chunk of rows can be read as columns (:meth:`columns`).

        So it can when each row is one record of plain fields: a CSV file (every
        cell a string, no date to turn back into text), no child rows, no owner
        column, no update key.
        """
        layout = self.layout
        return (
            self._texts_only
            and not layout.inline
            and not layout.child_sheets
            and self._owner_index is None
            and layout.key_index is None
        )

    def columns(self, rows: Sequence[SourceRow]) -> dict[str, list[Any]]:
        """The mapped cells of ``rows`` by field, for a :attr:`columnar` layout.

        The same values as :meth:`item`'s ``data``, column-wise: a blank cell is
        :data:`~engine.batch.MISSING` (left out, as ``item`` leaves it out), and a
        later column mapped to the same field wins.
        """
        by_index = list(zip(*[row.cells for row in rows], strict=True))
        values: dict[str, list[Any]] = {}
        for index, name in self._plain:
            column = list(by_index[index]) if by_index else []
            # Cells are str or None (a short row's padding): blank is None or white space.
            if None in column or not all(column) or any(map(str.isspace, column)):
                column = [MISSING if v is None or not v.strip() else v for v in column]
            values[name] = column
        return values

    def item(self, row: SourceRow) -> Item:
        """The record of one row (with no child rows yet)."""
        layout = self.layout
        cells = row.cells
        # All cells first, then the blank ones taken out: one dict built in C (the
        # picked cells may run past the names: the unmapped columns after them).
        data: dict[str, Any] = dict(zip(self._names, self._pick(cells), strict=False))
        blanks: list[str]
        if self._texts_only and None not in cells and "" not in map(str.strip, cells):
            blanks = []  # a CSV row without a blank cell: all str, no date (the common case)
        else:
            blanks = [
                name
                for name, value in data.items()
                if value is None or (type(value) is str and not value.strip())
            ]
            for name in blanks:
                del data[name]
            for name in self._texts_mapped:
                value = data.get(name)
                if isinstance(value, _WHEN):
                    data[name] = _when_text(value)  # a date Excel made of a text cell
        owner_index = self._owner_index
        key_index = layout.key_index
        return Item(
            row=row,
            rows=[row],
            data=data,
            blanks=blanks,
            children={t: [] for t in layout.inline} if layout.inline else {},
            problems=[
                Problem(layout.main.name, row.number, col, _key_for(layout.targets, col), msg)
                for col, msg in row.problems
            ]
            if row.problems
            else [],
            owner=None if owner_index is None else cells[owner_index],
            key=None if key_index is None else cells[key_index],
        )

    def _add_inline(self, item: Item, row: SourceRow) -> None:
        for table, columns in self.layout.inline.items():
            data = _child_data(row.cells, columns)
            if data is not None:
                item.children[table].append(ChildRow(self.layout.main.name, row, data))

    def _finish(self, item: Item) -> Item:
        if not self.cursors:
            return item
        for table, cursor in self.cursors.items():
            key = _key_text(item.row.cells[cursor.layout.parent_index])
            rows = cursor.take(key)
            columns = cursor.layout.columns
            name = cursor.layout.sheet.name
            item.children[table] = [
                ChildRow(name, r, _child_data(r.cells, columns) or {}) for r in rows
            ]
            for r in rows:
                for col, msg in r.problems:
                    item.problems.append(Problem(name, r.number, col, table, msg))
        return item

    def __iter__(self) -> Iterator[Item]:
        layout = self.layout
        main = layout.main
        targets = layout.targets
        parent_columns = [i for i, t in enumerate(targets) if t.kind != "child"]
        inline = layout.inline
        current: Item | None = None
        for row in main.rows():
            if current is not None and inline:
                first = current.row.cells
                cells = row.cells
                if all(_is_blank(cells[i]) or _same(cells[i], first[i]) for i in parent_columns):
                    current.rows.append(row)
                    for col, msg in row.problems:
                        current.problems.append(
                            Problem(main.name, row.number, col, _key_for(targets, col), msg)
                        )
                    self._add_inline(current, row)
                    continue
            if current is not None:
                yield self._finish(current)
            current = self.item(row)
            if inline:
                self._add_inline(current, row)
        if current is not None:
            yield self._finish(current)


def _key_for(targets: list[Target], col: int | None) -> str:
    if col is None or col >= len(targets):
        return "_record"
    t = targets[col]
    if t.kind == "child":
        return f"{t.name}.{t.column}"
    return t.name or "_record"
