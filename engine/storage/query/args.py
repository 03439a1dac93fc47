"""Parsing a list page's or the API's query string into a :class:`Query`."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from engine.i18n import T
from engine.model import Entity
from engine.storage.query.base import OPS, RESERVED_PARAMS, Filter, Query, QueryError
from engine.storage.query.filters import _names, _show, _split, _unknown_field
from engine.storage.query.run import _hidden

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
