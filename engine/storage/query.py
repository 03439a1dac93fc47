"""List queries: filters, search, sort, offset and keyset paging, capped counts.

The list page and ``GET /api/v1/<entity>?...`` parse their query string with
:func:`parse_query_args` into a :class:`Query`; the record service runs it with
:func:`run_query`, passing the permission layer's row scope as an extra WHERE.

Everything here speaks field names; SQL column names (which may be hashes of
Chinese names) stay inside :mod:`engine.storage.schema`. Every value reaches the
database as a bound parameter, coerced by the field's own kind first.

Query string grammar::

    stage=won                       eq (the default operator)
    amount__gte=1000                <field>__<op>
    close_date__between=2026-01-01,2026-03-31   (either end may be empty)
    stage__in=won,lost              (repeat the parameter to add more values)
    notes__blank=1                  (``notes__blank=0`` means not blank)
    tags__contains=vip,new          (multi-choice: holds every listed option)
    q=acme 上海                      search: every term must match a search field
    sort=-amount,name               "-" for descending
    limit=50  offset=0  after=<cursor>

Decisions worth knowing:

* A parameter with an empty value (``stage=``) is ignored, because an HTML GET
  form submits its empty inputs; ask for blanks with ``stage__blank=1``. In the
  Python API, ``eq`` with a blank value means ``blank`` and ``ne`` means ``not_blank``.
* ``ne`` keeps blank rows (``stage != 'won' OR stage IS NULL``), as a person
  reading "stage is not won" expects.
* ``eq`` on text is exact (case-sensitive). Unique text fields have a normalised
  ``__key`` column, but its normaliser lives in the record service, so lists do not
  use it (move ``normalise_unique`` into storage to enable a case-insensitive ``eq``).
* ``contains`` on text is a case-insensitive substring match (``%``, ``_`` and ``\\``
  escaped); on a multi-choice (JSON list) field it means "the list holds every
  given option" (SQLite ``json_each``, PostgreSQL ``jsonb @>``).
* Blank values sort last in both directions, on both databases; ``id`` (in the
  direction of the last key) is always the final tie-breaker.
* Text sorts in the database's collation (byte order on SQLite; on PostgreSQL the
  database's collation, e.g. pinyin order under ``zh_CN.UTF-8``). Keyset paging
  compares with the same collation, so paging is exact either way.
* Paging: ``limit + 1`` rows are fetched to know ``has_more`` without counting.
  ``Page.next_cursor`` (set whenever there is a next page, also under offset
  paging) is urlsafe base64 of JSON ``{"s": sort keys, "k": last row's key values}``
  with typed values (``{"$d": "12.50"}``, ``{"$D": date}``, ``{"$t": datetime}``).
  A cursor made for another sort, or tampered with, is a :class:`QueryError`.
* Counting never scans more than ``count_cap + 1`` rows. Above the cap the page
  reports ``count=count_cap, count_capped=True`` ("10,000+"); for an unfiltered,
  unscoped list on PostgreSQL it reports the planner's row estimate instead
  (``count_is_estimate=True``, "about 1,234,567"). A page that reaches the end of
  the list knows the exact total without a count query.
* A bare date given to a datetime filter means that whole day in the business
  time zone: ``signed_at=2026-03-01`` is ``[00:00, next 00:00)``, ``__lte`` includes
  the day, ``__gt`` starts after it.
* ``hidden`` (the fields a reader may not see, from the permission layer) are not
  selected, not searched, and refused in filters and sorts exactly like unknown
  names, so no error message confirms that they exist.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from engine.errors import FormflowError
from engine.fields import FieldKind, FieldValueError, get_kind, kind_of
from engine.fields.base import bad_char_message
from engine.i18n import T, Text
from engine.model import Entity, Field
from engine.storage.schema import EntityTable

OPS: tuple[str, ...] = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "contains",
    "blank",
    "not_blank",
    "between",
)

#: Query-string parameters that are not filters (a field with one of these names
#: is filtered with an explicit operator: ``limit__eq=3``).
RESERVED_PARAMS: frozenset[str] = frozenset({"q", "sort", "limit", "offset", "after"})

MAX_LIMIT = 500
MAX_SEARCH_TERMS = 5
MAX_TERM_LENGTH = 100
MAX_IN_VALUES = 500
MAX_CONTAINS_LENGTH = 1000
MAX_SORT_KEYS = 5
MAX_CURSOR_LENGTH = 4096
DEFAULT_COUNT_CAP = 10_000

#: System columns a list may filter and sort on, with their storage type (which is
#: also the field kind that coerces their filter values).
SYSTEM_FIELDS: Mapping[str, str] = {
    "id": "integer",
    "owner": "text",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "text",
    "updated_by": "text",
    "version": "integer",
}

_ORDERED = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "between", "blank", "not_blank"})
OPS_BY_STORAGE: Mapping[str, frozenset[str]] = {
    "text": frozenset(
        {"eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "blank", "not_blank"}
    ),
    "integer": _ORDERED,
    "decimal": _ORDERED,
    "date": _ORDERED,
    "datetime": _ORDERED,
    "boolean": frozenset({"eq", "ne", "blank", "not_blank"}),
    "json": frozenset({"contains", "blank", "not_blank"}),
    "ref": frozenset({"eq", "ne", "in", "blank", "not_blank"}),
}
_UNSORTABLE_STORAGE = frozenset({"json", "table"})

#: SQLite renders NULLS FIRST/LAST from 3.30.0 on; older ones get a CASE key.
_NULLS_LAST_SQL = sqlite3.sqlite_version_info >= (3, 30, 0)

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t", "是"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f", "否"})


class QueryError(FormflowError):
    """A list query names an unknown field, a wrong operator or a bad value."""

    http_status = 400
    default_message = T("查询无效", "invalid query")

    def __init__(
        self,
        message: Text | str | None = None,
        *,
        field: str | None = None,
        op: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.op = op
        self.param = param


# -- the query model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """``field op value``; the value is raw (query-string text or a JSON value).

    ``in`` takes a list/tuple or a comma-separated string; ``between`` a pair or
    ``"low,high"`` (either end may be blank); ``blank``/``not_blank`` an optional
    flag (``None``/true, or false to invert).
    """

    field: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise QueryError(
                T(
                    f"未知的运算符 '{self.op}'；可用：{', '.join(OPS)}",
                    f"unknown operator '{self.op}'; use one of: {', '.join(OPS)}",
                ),
                field=self.field,
                op=self.op,
            )


@dataclass(frozen=True)
class Query:
    """What a list asks for; build it directly or with :func:`parse_query_args`.

    ``limit`` is 1..500 and ``offset`` >= 0 (checked here). ``after`` (a cursor from
    :attr:`Page.next_cursor`) is used instead of ``offset`` when given.
    """

    filters: tuple[Filter, ...] = ()
    search: str | None = None
    sort: tuple[str, ...] = ()  # field names, "-" prefix for descending; () = default
    limit: int = 50
    offset: int = 0
    after: str | None = None  # keyset cursor from Page.next_cursor; used instead of offset

    def __post_init__(self) -> None:
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int)
            or not (1 <= self.limit <= MAX_LIMIT)
        ):
            raise QueryError(
                T(
                    f"limit 应为 1 到 {MAX_LIMIT} 之间的整数，而不是 {self.limit!r}",
                    f"limit must be a whole number from 1 to {MAX_LIMIT}, not {self.limit!r}",
                ),
                param="limit",
            )
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise QueryError(
                T(
                    f"offset 应为不小于 0 的整数，而不是 {self.offset!r}",
                    f"offset must be a whole number of at least 0, not {self.offset!r}",
                ),
                param="offset",
            )

    def fields_used(self) -> set[str]:
        """Field names this query filters or sorts on (for field-level permissions)."""
        names = {f.field for f in self.filters}
        names.update(key.lstrip("-") for key in self.sort)
        return names


@dataclass(frozen=True)
class Page:
    """One page of a list.

    ``rows``: dicts of field name -> canonical value (Decimal, date, aware datetime,
    bool, list for multi-choice ...) plus the system columns; no child tables.
    ``count``: the exact number of matching rows, or ``count_cap`` with
    ``count_capped`` ("10,000+"), or the planner's estimate with
    ``count_is_estimate`` ("about ..."); None when counting was skipped.
    """

    rows: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool
    count: int | None = None
    count_is_estimate: bool = False
    count_capped: bool = False
    sort: tuple[str, ...] = field(default=())  # the effective sort, ``id`` included


# -- fields and columns -------------------------------------------------------------------


_DAY_TEXT = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$")


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
    return f"EXISTS (SELECT 1 FROM json_each({column}) AS je WHERE je.value = {value})"


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


def search_fields(entity: Entity) -> list[str]:
    """The fields the search box looks in: ``list.search``, else every searchable
    text field with the title field first."""
    if entity.list.search:
        return [n for n in entity.list.search if n in entity.fields]
    names: list[str] = []
    for f in entity.fields.values():
        if f.kind == "table":
            continue
        if kind_of(f).searchable and _storage_of(f) == "text":
            names.append(f.name)
    title = entity.title_field
    if title in names:
        names.remove(title)
        names.insert(0, title)
    return names


_UNSEARCHABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def search_terms(text: str) -> list[str]:
    """At most five whitespace-separated terms, each cut to 100 characters.

    Control characters and lone surrogates (which PostgreSQL cannot store) count
    as whitespace; terms beyond the fifth are ignored.
    """
    cleaned = _UNSEARCHABLE.sub(" ", text)
    return [term[:MAX_TERM_LENGTH] for term in cleaned.split()[:MAX_SEARCH_TERMS]]


def _search_clause(
    et: EntityTable, text: str, hidden: Collection[str] = ()
) -> ColumnElement[bool] | None:
    terms = search_terms(text)
    if not terms:
        return None
    names = [n for n in search_fields(et.entity) if n in et.columns and n not in hidden]
    columns = [et.columns[n] for n in names]
    if not columns:
        raise QueryError(
            T(
                f"{et.entity.name} 没有可搜索的文本字段",
                f"{et.entity.name} has no text fields to search",
            ),
            param="q",
        )
    return sa.and_(*(sa.or_(*(_icontains(c, term) for c in columns)) for term in terms))


def where_clause(
    et: EntityTable,
    query: Query,
    *,
    scope: ColumnElement[bool] | None = None,
    hidden: Collection[str] = (),
) -> ColumnElement[bool]:
    """Filters AND search AND scope (no paging): what a count or an export selects."""
    parts = [_filter_clause(et, f, hidden) for f in query.filters]
    if query.search:
        found = _search_clause(et, query.search, hidden)
        if found is not None:
            parts.append(found)
    if scope is not None:
        parts.append(scope)
    return sa.and_(sa.true(), *parts)


# -- sorting and keyset cursors -----------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    target: _Target
    desc: bool

    @property
    def spec(self) -> str:
        return ("-" if self.desc else "") + self.target.name


def _sort_keys(et: EntityTable, sort: Sequence[str], hidden: Collection[str] = ()) -> list[_Key]:
    """The sort keys, cut after ``id`` or ended with ``id`` (the last key's direction).

    An explicit sort naming a hidden field is refused; the entity's default sort
    (``list.sort``) silently skips hidden fields.
    """
    default = not sort
    spec = tuple(sort) or et.entity.list.sort or ("-id",)
    keys: list[_Key] = []
    seen: set[str] = set()
    for raw in spec:
        item = raw.strip()
        desc = item.startswith("-")
        name = item.lstrip("-+").strip()
        if not name or name in seen or (default and name in hidden):
            continue
        seen.add(name)
        keys.append(_Key(_target(et, name, purpose="sort", hidden=hidden, param="sort"), desc))
        if name == "id":
            break
    if not keys:
        keys = [_Key(_target(et, "id", purpose="sort"), True)]
    if len(keys) > MAX_SORT_KEYS + (1 if keys[-1].target.name == "id" else 0):
        raise QueryError(
            T(f"最多按 {MAX_SORT_KEYS} 个字段排序", f"sort by at most {MAX_SORT_KEYS} fields"),
            param="sort",
        )
    if keys[-1].target.name != "id":
        keys.append(_Key(_target(et, "id", purpose="sort"), keys[-1].desc))
    return keys


def _order_by(keys: Sequence[_Key]) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for key in keys:
        col = key.target.column
        ordered = col.desc() if key.desc else col.asc()
        if col.nullable:
            if _NULLS_LAST_SQL:
                ordered = ordered.nulls_last()
            else:  # pragma: no cover - SQLite older than 3.30
                clauses.append(sa.case((col.is_(None), 1), else_=0).asc())
        clauses.append(ordered)
    return clauses


def order_clauses(
    et: EntityTable, query: Query, *, hidden: Collection[str] = ()
) -> list[ColumnElement[Any]]:
    """The ORDER BY of a query: its sort (or the entity's default), then ``id``."""
    return _order_by(_sort_keys(et, query.sort, hidden))


def _after(keys: Sequence[_Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after the row whose sort-key values are ``values`` (blanks last).

    For keys k1..kn: ``k1 beyond v1 OR (k1 = v1 AND (k2 beyond v2 OR (...)))``,
    where "beyond" respects the direction and counts a blank as after any value.
    """
    cond: ColumnElement[bool] | None = None
    for key, value in reversed(list(zip(keys, values, strict=True))):
        col = key.target.column
        beyond: ColumnElement[bool] | None
        if value is None:  # blanks come last: only more blanks follow a blank
            beyond, same = None, col.is_(None)
        else:
            bound = sa.bindparam(None, value, type_=col.type)  # also True/False
            beyond = col < bound if key.desc else col > bound
            if col.nullable:
                beyond = sa.or_(beyond, col.is_(None))
            same = col == bound
        if cond is None:
            cond = beyond if beyond is not None else sa.false()
        elif beyond is None:
            cond = sa.and_(same, cond)
        else:
            cond = sa.or_(beyond, sa.and_(same, cond))
    return cond if cond is not None else sa.false()


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, date):
        return {"$D": value.isoformat()}
    if isinstance(value, float):
        return {"$d": repr(value)}
    raise TypeError(f"cannot put {type(value).__name__} into a cursor")


def _encode_cursor(keys: Sequence[_Key], values: Sequence[Any]) -> str:
    payload = {"s": [k.spec for k in keys], "k": [_encode_value(v) for v in values]}
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _bad_cursor(reason: str = "") -> QueryError:
    extra_en = f" ({reason})" if reason else ""
    extra_zh = f"（{reason}）" if reason else ""
    return QueryError(
        T(
            f"分页游标无效{extra_zh}；请从第一页重新开始",
            f"invalid page cursor{extra_en}; start again from the first page",
        ),
        param="after",
    )


def _tagged(raw: Any, tag: str) -> str | None:
    """The text of ``{tag: text}``, else None."""
    if isinstance(raw, dict) and len(raw) == 1 and isinstance(raw.get(tag), str):
        text: str = raw[tag]
        return text
    return None


def _decode_value(key: _Key, raw: Any) -> Any:
    """One cursor value, refused unless it has exactly the column's type."""
    if raw is None:
        if not key.target.column.nullable:
            raise _bad_cursor(f"{key.target.name} cannot be blank")
        return None
    storage = key.target.storage
    value: Any = None
    try:
        if storage in ("integer", "ref"):
            if _is_int(raw) and -(2**63) <= raw < 2**63:
                value = raw
        elif storage == "text":
            if isinstance(raw, str) and bad_char_message(raw) is None:
                value = raw
        elif storage == "boolean":
            if isinstance(raw, bool):
                value = raw
        elif storage == "decimal":
            text = _tagged(raw, "$d")
            if text is not None and len(text) <= 100:
                number = Decimal(text)
                value = number if number.is_finite() else None
        elif storage == "date":
            text = _tagged(raw, "$D")
            if text is not None:
                value = date.fromisoformat(text)
        elif storage == "datetime":
            text = _tagged(raw, "$t")
            if text is not None:
                moment = datetime.fromisoformat(text)
                value = moment if moment.tzinfo is not None else None
    except (ValueError, InvalidOperation, OverflowError):
        value = None
    if value is None:
        raise _bad_cursor(f"bad value for {key.target.name}")
    return value


def _decode_cursor(keys: Sequence[_Key], cursor: str) -> list[Any]:
    """The sort-key values in ``cursor``, checked against ``keys`` (else QueryError)."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise _bad_cursor()
    try:
        data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(data.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor() from None
    if not isinstance(payload, dict) or set(payload) != {"s", "k"}:
        raise _bad_cursor()
    spec, values = payload["s"], payload["k"]
    if spec != [k.spec for k in keys]:
        raise _bad_cursor("it was made for another sort order")
    if not isinstance(values, list) or len(values) != len(keys):
        raise _bad_cursor()
    return [_decode_value(k, v) for k, v in zip(keys, values, strict=True)]


# -- the statements -----------------------------------------------------------------------


def _output_columns(
    et: EntityTable, hidden: Collection[str] = ()
) -> list[tuple[str, sa.Column[Any], Field | None]]:
    """(name, column, field or None for a system column) of every selected column."""
    out: list[tuple[str, sa.Column[Any], Field | None]] = [
        (n, et.table.c[n], None) for n in SYSTEM_FIELDS if n in et.table.c
    ]
    out += [
        (name, col, et.entity.fields[name])
        for name, col in et.columns.items()
        if name not in hidden
    ]
    return out


def _hidden(hidden: Collection[str]) -> frozenset[str]:
    """Hidden field names; system columns are always visible (``id`` pages the list)."""
    return frozenset(hidden) - SYSTEM_FIELDS.keys()


def compile_query(
    et: EntityTable,
    query: Query,
    *,
    scope: ColumnElement[bool] | None = None,
    hidden: Collection[str] = (),
) -> sa.Select[Any]:
    """The SELECT of one page: ``limit + 1`` rows (the extra one tells ``has_more``).

    Selects the system columns, then every non-table field that is not ``hidden``.
    ``hidden`` (the fields this reader may not see) are also left out of the search
    and refused in filters and sorts as if they did not exist.
    """
    hide = _hidden(hidden)
    keys = _sort_keys(et, query.sort, hide)
    stmt = sa.select(*(col for _, col, _ in _output_columns(et, hide)))
    stmt = stmt.where(where_clause(et, query, scope=scope, hidden=hide))
    if query.after is not None:
        stmt = stmt.where(_after(keys, _decode_cursor(keys, query.after)))
    elif query.offset:
        stmt = stmt.offset(query.offset)
    return stmt.order_by(*_order_by(keys)).limit(query.limit + 1)


def count_query(
    et: EntityTable,
    query: Query,
    *,
    cap: int,
    scope: ColumnElement[bool] | None = None,
    hidden: Collection[str] = (),
) -> sa.Select[Any]:
    """``SELECT count(*) FROM (SELECT 1 ... LIMIT cap + 1)``: never scans past the cap."""
    inner = (
        sa.select(sa.literal(1).label("one"))
        .select_from(et.table)
        .where(where_clause(et, query, scope=scope, hidden=_hidden(hidden)))
        .limit(cap + 1)
        .subquery("capped")
    )
    return sa.select(sa.func.count()).select_from(inner)


def _estimate(conn: Connection, et: EntityTable) -> int | None:
    """PostgreSQL's planner estimate of the table's rows (``None`` elsewhere/unknown)."""
    if conn.dialect.name != "postgresql":
        return None
    qualified = '"' + et.table.name.replace('"', '""') + '"'
    if et.table.schema:
        qualified = '"' + et.table.schema.replace('"', '""') + '".' + qualified
    found = conn.execute(
        sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
        {"name": qualified},
    ).scalar()
    if found is None or float(found) < 0:
        return None
    return int(float(found))


def run_query(
    conn: Connection,
    et: EntityTable,
    query: Query,
    *,
    scope: ColumnElement[bool] | None = None,
    hidden: Collection[str] = (),
    count_cap: int = DEFAULT_COUNT_CAP,
    with_count: bool = True,
) -> Page:
    """Run ``query``; rows come back as canonical values keyed by field name.

    ``scope`` is the permission layer's extra WHERE; ``hidden`` the fields the
    reader may not see (see :func:`compile_query`). ``with_count=False`` skips
    counting (``Page.count`` is then None).
    """
    if count_cap < 1:
        raise ValueError(f"count_cap must be at least 1, not {count_cap}")
    hide = _hidden(hidden)
    keys = _sort_keys(et, query.sort, hide)
    outputs = _output_columns(et, hide)
    result = conn.execute(compile_query(et, query, scope=scope, hidden=hide)).all()
    has_more = len(result) > query.limit
    result = result[: query.limit]
    rows: list[dict[str, Any]] = []
    for row in result:
        m = row._mapping
        item: dict[str, Any] = {}
        for name, col, fld in outputs:
            value = m[col]
            if fld is not None and value is not None:
                value = kind_of(fld).from_storage(fld, value)
            item[name] = value
        rows.append(item)
    next_cursor = None
    if has_more and result:
        last = result[-1]._mapping
        next_cursor = _encode_cursor(keys, [last[k.target.column] for k in keys])

    count: int | None = None
    capped = estimated = False
    if with_count:
        if query.after is None and not has_more and (rows or query.offset == 0):
            count = query.offset + len(rows)  # this page reaches the end: exact, no query
        else:
            counted = conn.execute(count_query(et, query, scope=scope, hidden=hide, cap=count_cap))
            count = int(counted.scalar_one())
            if count > count_cap:
                count, capped = count_cap, True
                unfiltered = not query.filters and not search_terms(query.search or "")
                if unfiltered and scope is None:
                    guess = _estimate(conn, et)
                    if guess is not None and guess > count_cap:
                        count, capped, estimated = guess, False, True
    return Page(
        rows=rows,
        next_cursor=next_cursor,
        has_more=has_more,
        count=count,
        count_is_estimate=estimated,
        count_capped=capped,
        sort=tuple(k.spec for k in keys),
    )


# -- the query string ---------------------------------------------------------------------


def _values(args: Mapping[str, Any], key: str) -> list[str]:
    getlist = getattr(args, "getlist", None)  # werkzeug MultiDict: keep repeated values
    raw = getlist(key) if callable(getlist) else args[key]
    if isinstance(raw, (list, tuple)):
        return [str(v) for v in raw]
    return [str(raw)]


def _single(args: Mapping[str, Any], key: str) -> str | None:
    values = _values(args, key)
    if len(values) > 1:
        raise QueryError(
            T(f"参数 {key} 只能出现一次", f"parameter '{key}' may appear only once"),
            param=key,
        )
    return values[0] if values else None


def _int_param(args: Mapping[str, Any], key: str, default: int) -> int:
    raw = _single(args, key) if key in args else None
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise QueryError(
            T(
                f"{key} 应为整数，而不是 {_show(raw)}",
                f"{key} must be a whole number, not {_show(raw)}",
            ),
            param=key,
        ) from None


def _split_key(entity: Entity, key: str, hidden: Collection[str]) -> tuple[str, str]:
    """``amount__gte`` -> ("amount", "gte"); a bare known name means ``eq``."""
    known = set(_names(entity, hidden)) | (set(entity.fields) - set(hidden))
    if key in known:
        return key, "eq"
    name, sep, op = key.rpartition("__")
    if sep and name:
        if op in OPS:
            if name not in known:
                raise _unknown_field(entity, name, hidden=hidden, param=key)
            return name, op
        if name in known:
            raise QueryError(
                T(
                    f"未知的运算符 '{op}'（参数 {key}）；可用：{', '.join(OPS)}",
                    f"unknown operator '{op}' in '{key}'; use one of: {', '.join(OPS)}",
                ),
                field=name,
                op=op,
                param=key,
            )
    raise _unknown_field(entity, key, hidden=hidden, param=key)


def parse_query_args(
    entity: Entity,
    args: Mapping[str, Any],
    *,
    ignore: Iterable[str] = (),
    hidden: Collection[str] = (),
) -> Query:
    """A :class:`Query` from query-string parameters (see the module docs).

    ``args`` maps each name to a string or a list of strings (a werkzeug
    ``MultiDict`` works as is: repeated parameters are kept). ``ignore`` names
    parameters that belong to the caller (``lang``, ``format`` ...); any other
    name that is neither reserved (q, sort, limit, offset, after) nor a field,
    optionally with ``__<op>``, is a :class:`QueryError` with a did-you-mean hint
    (``hidden`` fields count as unknown and are never suggested).
    Unknown operators and unknown names fail here; whether an operator fits the
    field and whether values parse is checked when the query is compiled.
    """
    skip = set(ignore)
    hide = _hidden(hidden)
    filters: list[Filter] = []
    in_values: dict[str, list[str]] = {}
    for key in args:
        if key in RESERVED_PARAMS or key in skip:
            continue
        name, op = _split_key(entity, key, hide)
        if name in entity.fields and entity.fields[name].kind == "table":
            raise QueryError(
                T(
                    f"不能按子表字段 '{name}' 筛选",
                    f"cannot filter on '{name}': it is a table field",
                ),
                field=name,
                param=key,
            )
        for value in _values(args, key):
            if op in ("blank", "not_blank"):
                filters.append(Filter(name, op, value))
            elif not value.strip():
                continue  # an empty form input: no filter
            elif op == "in":
                in_values.setdefault(name, []).extend(_split(value))
            elif op == "between":
                filters.append(Filter(name, op, tuple(_split(value))))
            else:
                filters.append(Filter(name, op, value))
    for name, values in in_values.items():
        filters.append(Filter(name, "in", tuple(values)))

    search = _single(args, "q") if "q" in args else None
    sort: tuple[str, ...] = ()
    if "sort" in args:
        sort = tuple(
            part.strip()
            for value in _values(args, "sort")
            for part in value.split(",")
            if part.strip()
        )
    after = _single(args, "after") if "after" in args else None
    return Query(
        filters=tuple(filters),
        search=(search.strip() or None) if search is not None else None,
        sort=sort,
        limit=_int_param(args, "limit", entity.list.page_size or 50),
        offset=_int_param(args, "offset", 0),
        after=after or None,
    )
