"""Typed filters: one field, one operator, a value coerced by the field's kind."""

from __future__ import annotations

import difflib
import json
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from engine.fields import FieldKind, FieldValueError, get_kind, kind_of
from engine.fields.base import bad_char_message
from engine.i18n import T, Text
from engine.model import Entity, Field
from engine.storage.query.base import (
    _DAY_TEXT,
    _FALSE,
    _TRUE,
    _UNSORTABLE_STORAGE,
    MAX_CONTAINS_LENGTH,
    MAX_IN_VALUES,
    OPS,
    OPS_BY_STORAGE,
    SYSTEM_FIELDS,
    Filter,
    QueryError,
)
from engine.storage.schema import EntityTable


@dataclass(frozen=True)
class _Target:
    """A filterable/sortable name resolved against an entity table."""

    name: str
    column: sa.Column[Any]
    storage: str
    field: Field  # a stand-in field for a system column
    kind: FieldKind
    system: bool = False

    def coerce(self, raw: Any) -> Any:
        """A raw filter value as the value stored in the column (``None`` for blank)."""
        return self.coerce_span(raw)[0]

    def coerce_span(self, raw: Any) -> tuple[Any, Any]:
        """``(value, None)``, or for a bare date given to a datetime column the day
        as ``(start, end)`` (end exclusive) in the business time zone, both stored form."""
        try:
            value = self.kind.coerce(self.field, raw)
            if value is None:
                return None, None
            self._check_type(value, raw)
            end = None
            if self.storage == "datetime" and _is_day(raw):
                end = self.kind.to_storage(self.field, value + timedelta(days=1))
            return self.kind.to_storage(self.field, value), end
        except FieldValueError as exc:
            raise QueryError(
                T(f"筛选 {self.name}：{exc.text.zh}", f"filter {self.name}: {exc.text.en}"),
                field=self.name,
            ) from None
        except (ValueError, TypeError, ArithmeticError):
            raise _bad_value(self.name, raw) from None

    def _check_type(self, value: Any, raw: Any) -> None:
        """Refuse coerced values the column cannot compare with (e.g. naive datetimes)."""
        check = _TYPE_CHECKS.get(self.storage)
        if check is not None and not check(value):
            raise _bad_value(self.name, raw)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_TYPE_CHECKS: Mapping[str, Callable[[Any], bool]] = {
    "integer": _is_int,
    "ref": _is_int,
    "decimal": lambda v: isinstance(v, Decimal) or _is_int(v),
    "date": lambda v: isinstance(v, date) and not isinstance(v, datetime),
    "datetime": lambda v: isinstance(v, datetime) and v.tzinfo is not None,
    "boolean": lambda v: isinstance(v, bool),
    "text": lambda v: isinstance(v, str),
    "json": lambda v: isinstance(v, list),
}


def _is_day(raw: Any) -> bool:
    """A date without a time: ``2026-01-31`` (text) or a ``date`` object."""
    if isinstance(raw, datetime):
        return False
    if isinstance(raw, date):
        return True
    if not isinstance(raw, str):
        return False
    return _DAY_TEXT.match(unicodedata.normalize("NFKC", raw).strip()) is not None


def _bad_value(name: str, raw: Any) -> QueryError:
    shown = _show(raw)
    return QueryError(
        T(f"筛选 {name}：值无效：{shown}", f"filter {name}: not a valid value: {shown}"),
        field=name,
    )


def _show(raw: Any) -> str:
    text = raw if isinstance(raw, str) else repr(raw)
    text = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)
    return text if len(text) <= 40 else text[:40] + "…"


def _storage_of(f: Field) -> str:
    return kind_of(f).storage_of(f)


def _names(entity: Entity, hidden: Collection[str] = ()) -> list[str]:
    """Every name a query may use: non-table fields, then the system columns."""
    fields = (n for n, f in entity.fields.items() if f.kind != "table" and n not in hidden)
    return [*fields, *(n for n in SYSTEM_FIELDS if n not in hidden)]


def _unknown_field(
    entity: Entity, name: str, *, hidden: Collection[str] = (), param: str | None = None
) -> QueryError:
    names = _names(entity, hidden)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not close:  # a label typed instead of the name: 金额 -> amount
        close = [
            f.name
            for f in entity.fields.values()
            if f.name in names and name in (f.label.zh, f.label.en)
        ][:1]
    if close:
        hint_zh, hint_en = f"；是不是 '{close[0]}'？", f"; did you mean '{close[0]}'?"
    else:
        hint_zh = hint_en = ""
    return QueryError(
        T(
            f"{entity.name} 没有字段 '{name}'{hint_zh}",
            f"unknown field '{name}' in {entity.name}{hint_en}",
        ),
        field=name,
        param=param,
    )


def _target(
    et: EntityTable,
    name: str,
    *,
    purpose: str,
    hidden: Collection[str] = (),
    param: str | None = None,
) -> _Target:
    """Resolve a field or system column for filtering (``purpose="filter"``) or sorting.

    A hidden name is reported exactly like an unknown one, so an error message
    never confirms that a field the reader may not see exists.
    """
    entity = et.entity
    if name in hidden:
        raise _unknown_field(entity, name, hidden=hidden, param=param)
    if name in et.columns:
        f = entity.fields[name]
        kind = kind_of(f)
        allowed = kind.filterable if purpose == "filter" else kind.sortable
        storage = _storage_of(f)
        if not allowed or (purpose == "sort" and storage in _UNSORTABLE_STORAGE):
            verb_zh, verb_en = ("筛选", "filter on") if purpose == "filter" else ("排序", "sort by")
            raise QueryError(
                T(
                    f"不能按 {f.kind} 类型的字段 '{name}' {verb_zh}",
                    f"cannot {verb_en} '{name}': a {f.kind} field",
                ),
                field=name,
                param=param,
            )
        return _Target(name, et.columns[name], storage, f, kind)
    if name in SYSTEM_FIELDS and name in et.table.c:
        storage = SYSTEM_FIELDS[name]
        sys_kind = get_kind(storage)
        if sys_kind is None:  # pragma: no cover - built-in kinds are always registered
            raise RuntimeError(f"field kind {storage!r} is not registered")
        stand_in = Field(name=name, kind=sys_kind.name, label=Text.of(name))
        return _Target(name, et.table.c[name], storage, stand_in, sys_kind, system=True)
    if name in entity.fields:  # a table field: its rows live in a child table
        verb_zh, verb_en = ("筛选", "filter on") if purpose == "filter" else ("排序", "sort by")
        raise QueryError(
            T(
                f"不能按子表字段 '{name}' {verb_zh}",
                f"cannot {verb_en} '{name}': it is a table field",
            ),
            field=name,
            param=param,
        )
    raise _unknown_field(entity, name, hidden=hidden, param=param)


# -- SQL building blocks ------------------------------------------------------------------


class _JsonContains(ColumnElement[bool]):
    """A JSON list column holds ``value`` (SQLite ``json_each``, PostgreSQL ``@>``)."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's declared structure
        ("column", InternalTraversal.dp_clauseelement),
        ("element", InternalTraversal.dp_clauseelement),
        ("wrapped", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], value: Any) -> None:
        self.column = column
        # The element itself for SQLite, the one-element list as JSON for PostgreSQL.
        self.element = sa.bindparam(None, value, type_=_bind_type(value))
        self.wrapped = sa.bindparam(None, json.dumps([value]), type_=sa.String())


class _JsonEmpty(ColumnElement[bool]):
    """A JSON column holds JSON ``null`` or an empty list (SQL NULL is tested apart)."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's declared structure
        ("column", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column


def _bind_type(value: Any) -> sa.types.TypeEngine[Any]:
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, int):
        return sa.BigInteger()
    return sa.String()


@compiles(_JsonContains, "sqlite")
def _json_contains_sqlite(element: _JsonContains, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    value = compiler.process(element.element, **kw)
    # Both parts are SQL the compiler produced (a quoted column, a bound parameter).
    return f"EXISTS (SELECT 1 FROM json_each({column}) AS je WHERE je.value = {value})"  # nosec B608


@compiles(_JsonContains, "postgresql")
def _json_contains_pg(element: _JsonContains, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    value = compiler.process(element.wrapped, **kw)
    return f"(CAST({column} AS JSONB) @> CAST({value} AS JSONB))"


@compiles(_JsonContains)
def _json_contains_other(element: _JsonContains, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa.exc.CompileError(f"JSON contains is not supported on {compiler.dialect.name}")


@compiles(_JsonEmpty, "sqlite")
def _json_empty_sqlite(element: _JsonEmpty, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return (
        f"(json_type({column}) = 'null' OR "
        f"(json_type({column}) = 'array' AND json_array_length({column}) = 0))"
    )


@compiles(_JsonEmpty, "postgresql")
def _json_empty_pg(element: _JsonEmpty, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"(CAST({column} AS JSONB) IN ('null'::jsonb, '[]'::jsonb))"


@compiles(_JsonEmpty)
def _json_empty_other(element: _JsonEmpty, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa.exc.CompileError(f"JSON blank is not supported on {compiler.dialect.name}")


def like_escape(text: str) -> str:
    """``text`` with the LIKE wildcards and the escape character escaped (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _icontains(column: ColumnElement[Any], text: str) -> ColumnElement[bool]:
    return column.ilike(f"%{like_escape(text)}%", escape="\\")


def _blank(t: _Target) -> ColumnElement[bool]:
    col = t.column
    if t.storage == "text":
        return sa.or_(col.is_(None), col == "")
    if t.storage == "json":
        return sa.or_(col.is_(None), _JsonEmpty(col))
    return col.is_(None)


def _flag(t: _Target, op: str, raw: Any) -> bool:
    if raw is None or raw is True:
        return True
    if raw is False:
        return False
    if isinstance(raw, str) and (not raw.strip() or raw.strip().lower() in _TRUE):
        return True
    if isinstance(raw, str) and raw.strip().lower() in _FALSE:
        return False
    shown = _show(raw)
    raise QueryError(
        T(
            f"筛选 {t.name}__{op}：应为 1 或 0，而不是 {shown}",
            f"filter {t.name}__{op}: expected 1 or 0, not {shown}",
        ),
        field=t.name,
        op=op,
    )


def _split(raw: Any) -> list[Any]:
    """Values of ``in``/``between``: a list/tuple as is, a string split on commas."""
    if isinstance(raw, (list, tuple)):
        return list(raw)
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",")]
    return [raw]


def _needs_value(t: _Target, op: str) -> QueryError:
    return QueryError(
        T(f"筛选 {t.name}__{op} 需要一个值", f"filter {t.name}__{op} needs a value"),
        field=t.name,
        op=op,
    )


def _op_not_allowed(t: _Target, op: str) -> QueryError:
    allowed = ", ".join(o for o in OPS if o in OPS_BY_STORAGE.get(t.storage, frozenset()))
    if not t.system:
        what_zh, what_en = f"{t.field.kind} 类型的字段", f"a {t.field.kind} field"
    else:
        what_zh, what_en = f"系统字段 {t.name}", f"the system column {t.name}"
    return QueryError(
        T(
            f"运算符 '{op}' 不适用于{what_zh}（{t.name}）；可用：{allowed}",
            f"operator '{op}' does not apply to {what_en} ({t.name}); use one of: {allowed}",
        ),
        field=t.name,
        op=op,
    )


def _in_day(col: ColumnElement[Any], start: Any, end: Any) -> ColumnElement[bool]:
    return col == start if end is None else sa.and_(col >= start, col < end)


def _filter_clause(
    et: EntityTable, flt: Filter, hidden: Collection[str] = ()
) -> ColumnElement[bool]:
    """One filter as SQL; every value is coerced by the field's kind and bound."""
    t = _target(et, flt.field, purpose="filter", hidden=hidden)
    op = flt.op
    if op not in OPS_BY_STORAGE.get(t.storage, frozenset()):
        raise _op_not_allowed(t, op)
    col = t.column
    raw = flt.value

    if op in ("blank", "not_blank"):
        wanted = _flag(t, op, raw) == (op == "blank")
        return _blank(t) if wanted else sa.not_(_blank(t))

    if op == "contains":
        if t.storage == "json":  # the kind splits "a,b" and resolves options by label
            values = t.coerce(list(raw) if isinstance(raw, tuple) else raw)
            if not values:
                raise _needs_value(t, op)
            return sa.and_(*(_JsonContains(col, v) for v in values))
        if raw is None:
            raise _needs_value(t, op)
        if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
            raise _bad_value(t.name, raw)
        text = str(raw).strip()
        if not text:
            raise _needs_value(t, op)
        bad = bad_char_message(text)
        if bad is not None:
            raise QueryError(
                T(f"筛选 {t.name}__contains：{bad.zh}", f"filter {t.name}__contains: {bad.en}"),
                field=t.name,
                op=op,
            )
        if len(text) > MAX_CONTAINS_LENGTH:
            raise QueryError(
                T(
                    f"筛选 {t.name}__contains 的值最多 {MAX_CONTAINS_LENGTH} 个字符",
                    f"filter {t.name}__contains: at most {MAX_CONTAINS_LENGTH} characters",
                ),
                field=t.name,
                op=op,
            )
        return _icontains(col, text)

    if op == "in":
        items = [r for r in _split(raw) if not (isinstance(r, str) and not r.strip())]
        if len(items) > MAX_IN_VALUES:
            raise QueryError(
                T(
                    f"筛选 {t.name}__in 最多 {MAX_IN_VALUES} 个值",
                    f"filter {t.name}__in takes at most {MAX_IN_VALUES} values",
                ),
                field=t.name,
                op=op,
            )
        spans = [span for span in (t.coerce_span(r) for r in items) if span[0] is not None]
        if not spans:
            raise _needs_value(t, op)
        if all(end is None for _, end in spans):
            return col.in_([start for start, _ in spans])
        return sa.or_(*(_in_day(col, start, end) for start, end in spans))

    if op == "between":
        ends = _split(raw)
        if len(ends) != 2:
            raise QueryError(
                T(
                    f"筛选 {t.name}__between 需要两个值，用逗号分隔：下限,上限",
                    f"filter {t.name}__between needs two values separated by a comma: low,high",
                ),
                field=t.name,
                op=op,
            )
        (low, _), (high, high_end) = (t.coerce_span(e) for e in ends)
        if low is None and high is None:
            raise _needs_value(t, op)
        parts: list[ColumnElement[bool]] = []
        if low is not None:
            parts.append(col >= low)
        if high is not None:
            parts.append(col <= high if high_end is None else col < high_end)
        return sa.and_(*parts)

    value, end = t.coerce_span(raw)
    if op == "eq":
        return _blank(t) if value is None else _in_day(col, value, end)
    if op == "ne":
        if value is None:
            return sa.not_(_blank(t))
        differs = col != value if end is None else sa.or_(col < value, col >= end)
        return sa.or_(differs, col.is_(None)) if col.nullable else differs
    if value is None:
        raise _needs_value(t, op)
    clause: ColumnElement[bool]
    if op == "lt":
        clause = col < value
    elif op == "gte":
        clause = col >= value
    elif op == "lte":
        clause = col <= value if end is None else col < end
    else:  # gt
        clause = col > value if end is None else col >= end
    return clause
