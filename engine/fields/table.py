"""The table kind: child rows (order lines, contacts ...) stored in a child table.

A value is a list of rows; a row is a dict of child field name -> canonical
value, plus ``id`` for a row that already exists. Blank rows are dropped.
Computed child fields (formula, autonumber, ``formula:``) are skipped on input:
the record service computes them. A table cannot contain a table.

Errors name the row and the column (``row 2, Qty: not a whole number: 1.5``) and
are also available per cell in ``FieldValueError.cells`` / :meth:`TableKind.cell_messages`.

``check`` covers the table's own keys (``fields``, ``min_rows``, ``max_rows``);
child fields are checked by the caller like any other field (``engine.checks``
walks them, and refuses unknown kinds, nested tables and system column names).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.errors import Problem
from engine.fields.base import FieldKind, FieldValueError, is_blank, is_int, show
from engine.fields.ref import REF
from engine.fields.registry import kind_of, register
from engine.i18n import T, Text, normalise_lang
from engine.model import Field

#: Most rows a table value may have, whatever ``max_rows`` says.
MAX_ROWS = 1000
_SHOWN_ERRORS = 3

Row = dict[str, Any]


def _cell_text(field: Field, index: int, name: str, message: Text) -> Text:
    child = field.fields.get(name)
    label = child.label if child is not None and child.label else Text.of(name)
    if not name:
        return T(f"第 {index + 1} 行：{message.zh}", f"row {index + 1}: {message.en}")
    return T(
        f"第 {index + 1} 行「{label.get('zh')}」：{message.zh}",
        f"row {index + 1}, {label.get('en')}: {message.en}",
    )


class TableKind(FieldKind):
    """Rows of child fields."""

    name = "table"
    label = T("子表", "Table")
    keys = frozenset({"fields", "min_rows", "max_rows"})
    storage = "table"
    widget = "table"
    sortable = False
    filterable = False
    type_name = "list:any"

    # -- input --

    def _rows(self, raw: Any) -> list[Any]:
        if isinstance(raw, str):
            if len(raw) > 10_000_000:
                raise FieldValueError(T("子表数据过大", "the table data is too large"))
            try:
                raw = json.loads(raw)
            except ValueError:
                raise FieldValueError(
                    T(f"应为行的列表：{show(raw)}", f"expected a list of rows: {show(raw)}")
                ) from None
        if not isinstance(raw, (list, tuple)):
            raise FieldValueError(
                T(f"应为行的列表：{show(raw)}", f"expected a list of rows: {show(raw)}")
            )
        if len(raw) > MAX_ROWS:
            raise FieldValueError(
                T(
                    f"行数过多（最多 {MAX_ROWS} 行）：{len(raw)}",
                    f"too many rows (at most {MAX_ROWS}): {len(raw)}",
                )
            )
        return list(raw)

    def parse(self, field: Field, raw: Any) -> Any:
        rows: list[Row] = []
        cells: dict[tuple[int, str], list[Text]] = {}
        for index, item in enumerate(self._rows(raw)):
            if not isinstance(item, Mapping):
                cells[(index, "")] = [
                    T(f"应为字段集合：{show(item)}", f"expected a set of fields: {show(item)}")
                ]
                continue
            row: Row = {}
            for key in item:
                if key != "id" and key not in field.fields:
                    cells[(index, str(key))] = [
                        T(f"没有这一列：{show(key)}", f"no such column: {show(key)}")
                    ]
            if not is_blank(item.get("id")):
                try:
                    row["id"] = REF.coerce(field, item["id"])
                except FieldValueError as exc:
                    cells[(index, "id")] = [exc.text]
            for name, child in field.fields.items():
                if name not in item:
                    continue
                kind = kind_of(child)
                if not kind.editable(child):
                    continue
                try:
                    row[name] = kind.coerce(child, item[name])
                except FieldValueError as exc:
                    cells[(index, name)] = [exc.text]
            if any(v is not None for v in row.values()):
                rows.append(row)
        if cells:
            raise self._error(field, cells)
        return rows or None

    def _error(self, field: Field, cells: dict[tuple[int, str], list[Text]]) -> FieldValueError:
        texts = [_cell_text(field, i, n, m) for (i, n), ms in sorted(cells.items()) for m in ms]
        more = len(texts) - _SHOWN_ERRORS
        zh = "；".join(t.zh or "" for t in texts[:_SHOWN_ERRORS])
        en = "; ".join(t.en or "" for t in texts[:_SHOWN_ERRORS])
        if more > 0:
            zh += f"（另有 {more} 处错误）"
            en += f" (and {more} more)"
        return FieldValueError(T(zh, en), cells=cells)

    # -- validation --

    def cell_messages(self, field: Field, rows: list[Row]) -> dict[tuple[int, str], list[Text]]:
        """Per-cell messages: (0-based row, child field name) -> messages."""
        cells: dict[tuple[int, str], list[Text]] = {}
        for index, row in enumerate(rows):
            for name, child in field.fields.items():
                kind = kind_of(child)
                value = row.get(name)
                if value is None:
                    if child.required and kind.editable(child):
                        cells.setdefault((index, name), []).append(T("必填", "is required"))
                    continue
                messages = kind.validate(child, value)
                if messages:
                    cells.setdefault((index, name), []).extend(messages)
        return cells

    def check_value(self, field: Field, value: Any) -> list[Text]:
        if not isinstance(value, list):
            return [T("应为行的列表", "expected a list of rows")]
        messages: list[Text] = []
        count = len(value)
        if is_int(field.min_rows) and field.min_rows and count < field.min_rows:
            messages.append(
                T(
                    f"至少需要 {field.min_rows} 行（现有 {count} 行）",
                    f"needs at least {field.min_rows} rows (got {count})",
                )
            )
        if is_int(field.max_rows) and field.max_rows and count > field.max_rows:
            messages.append(
                T(
                    f"最多 {field.max_rows} 行（现有 {count} 行）",
                    f"at most {field.max_rows} rows allowed (got {count})",
                )
            )
        cells = self.cell_messages(field, [r if isinstance(r, dict) else {} for r in value])
        messages += [_cell_text(field, i, n, m) for (i, n), ms in sorted(cells.items()) for m in ms]
        return messages

    # -- definition --

    def check_definition(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        if not field.fields:
            problems.append(
                self.problem(
                    field,
                    T(
                        "子表需要 fields（每行的字段）",
                        "a table needs `fields:` (the fields of each row)",
                    ),
                    T(
                        "例如 fields: {product: {type: text}, qty: {type: integer}}",
                        "for example fields: {product: {type: text}, qty: {type: integer}}",
                    ),
                )
            )
        problems += self._row_count_problems(field)
        return problems

    def _row_count_problems(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        counts_ok = True
        for key in ("min_rows", "max_rows"):
            value = getattr(field, key)
            if value is None:
                continue
            if not is_int(value) or value < 0 or value > MAX_ROWS:
                counts_ok = False
                problems.append(
                    self.problem(
                        field,
                        T(
                            f"{key} 应为 0 到 {MAX_ROWS} 的整数：{show(value)}",
                            f"{key} must be a whole number from 0 to {MAX_ROWS}: {show(value)}",
                        ),
                        T(f"例如 {key}: 10", f"for example {key}: 10"),
                    )
                )
        low, high = field.min_rows, field.max_rows
        if counts_ok and high == 0:
            problems.append(
                self.problem(
                    field,
                    T("max_rows 不能为 0", "max_rows cannot be 0"),
                    T("删除它，或写一个正数", "remove it or give a positive number"),
                )
            )
        elif counts_ok and low is not None and high is not None and low > high:
            problems.append(
                self.problem(
                    field,
                    T(
                        f"min_rows（{low}）大于 max_rows（{high}）",
                        f"min_rows ({low}) is greater than max_rows ({high})",
                    ),
                    T("交换两者，或修正其中一个", "swap them or fix one of them"),
                )
            )
        return problems

    # -- output --

    def _map_rows(self, field: Field, rows: Any, method: str) -> Any:
        if rows is None:
            return None
        out: list[Row] = []
        for row in rows:
            mapped: Row = {}
            for key, value in row.items():
                child = field.fields.get(key)
                if child is None:
                    mapped[key] = value
                else:
                    mapped[key] = getattr(kind_of(child), method)(child, value)
            out.append(mapped)
        return out

    def to_json(self, field: Field, value: Any) -> Any:
        return self._map_rows(field, value, "to_json")

    def to_storage(self, field: Field, value: Any) -> Any:
        return self._map_rows(field, value, "to_storage")

    def from_storage(self, field: Field, value: Any) -> Any:
        return self._map_rows(field, value, "from_storage")

    def show(self, field: Field, value: Any, lang: str) -> str:
        count = len(value)
        if normalise_lang(lang) == "zh":
            return f"{count} 行"
        return f"{count} row" if count == 1 else f"{count} rows"


TABLE = register(TableKind())
