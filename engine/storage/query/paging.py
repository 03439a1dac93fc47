"""Sorting and keyset paging: stable sort keys and tamper-proof cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.fields.base import bad_char_message
from engine.i18n import T
from engine.storage.query.base import (
    _NULLS_LAST_SQL,
    MAX_CURSOR_LENGTH,
    MAX_SORT_KEYS,
    Query,
    QueryError,
)
from engine.storage.query.filters import _is_int, _Target, _target
from engine.storage.schema import EntityTable

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
