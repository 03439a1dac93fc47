"""The query objects (:class:`Filter`, :class:`Query`, :class:`Page`), limits and errors."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import FormflowError
from engine.i18n import T, Text

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
    # The fields (and system columns) the rows need; None: all. ``id`` and the sort
    # keys are always read. A page that shows six columns reads six, not every one.
    fields: tuple[str, ...] | None = None

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
