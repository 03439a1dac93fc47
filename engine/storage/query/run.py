"""Compiling and running a query: the SELECT, the capped count, the page."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine.fields import kind_of
from engine.model import Field
from engine.storage.query.base import DEFAULT_COUNT_CAP, SYSTEM_FIELDS, Page, Query
from engine.storage.query.paging import (
    _after,
    _decode_cursor,
    _encode_cursor,
    _Key,
    _order_by,
    _sort_keys,
)
from engine.storage.query.search import search_terms, where_clause
from engine.storage.schema import EntityTable

# -- the statements -----------------------------------------------------------------------


def _output_columns(
    et: EntityTable, hidden: Collection[str] = (), wanted: Collection[str] | None = None
) -> list[tuple[str, sa.Column[Any], Field | None]]:
    """(name, column, field or None for a system column) of every selected column.

    ``wanted``: only these names (None: every system column and visible field).
    """
    out: list[tuple[str, sa.Column[Any], Field | None]] = [
        (n, et.table.c[n], None)
        for n in SYSTEM_FIELDS
        if n in et.table.c and (wanted is None or n in wanted)
    ]
    out += [
        (name, col, et.entity.fields[name])
        for name, col in et.columns.items()
        if name not in hidden and (wanted is None or name in wanted)
    ]
    return out


def _wanted(query: Query, keys: list[_Key]) -> set[str] | None:
    """The names a query reads: its ``fields``, ``id`` and the sort keys (None: all)."""
    if query.fields is None:
        return None
    return {"id", *query.fields, *(k.target.name for k in keys)}


def _reader(fld: Field | None) -> Callable[[Any], Any] | None:
    """The kind's reader of the column (``from_storage`` for one field), else None."""
    if fld is None:
        return None
    return kind_of(fld).reader(fld)


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

    Selects the system columns, then every non-table field that is not ``hidden``
    (only ``query.fields``, ``id`` and the sort keys when ``fields`` is given).
    ``hidden`` (the fields this reader may not see) are also left out of the search
    and refused in filters and sorts as if they did not exist.
    """
    hide = _hidden(hidden)
    keys = _sort_keys(et, query.sort, hide)
    stmt = sa.select(*(col for _, col, _ in _output_columns(et, hide, _wanted(query, keys))))
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
    known_count: tuple[int, bool, bool] | None = None,
) -> Page:
    """Run ``query``; rows come back as canonical values keyed by field name.

    ``scope`` is the permission layer's extra WHERE; ``hidden`` the fields the
    reader may not see (see :func:`compile_query`). ``with_count=False`` skips
    counting (``Page.count`` is then None). ``known_count`` (count, capped,
    estimated), when given, is used instead of running the count query; a page
    that reaches the end is still counted exactly, for free.
    """
    if count_cap < 1:
        raise ValueError(f"count_cap must be at least 1, not {count_cap}")
    hide = _hidden(hidden)
    keys = _sort_keys(et, query.sort, hide)
    outputs = _output_columns(et, hide, _wanted(query, keys))
    result = conn.execute(compile_query(et, query, scope=scope, hidden=hide)).all()
    has_more = len(result) > query.limit
    result = result[: query.limit]
    # Columns come back in select order; convert only where a kind's from_storage
    # does more than the column type already did.
    readers = [(i, name, _reader(fld)) for i, (name, _col, fld) in enumerate(outputs)]
    plain = [(i, name) for i, name, read in readers if read is None]
    converted = [(i, name, read) for i, name, read in readers if read is not None]
    rows: list[dict[str, Any]] = []
    for row in result:
        item = {name: row[i] for i, name in plain}
        for i, name, read in converted:
            value = row[i]
            item[name] = None if value is None else read(value)
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
        elif known_count is not None:
            count, capped, estimated = known_count
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
