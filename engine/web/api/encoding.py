"""Records, pages and history as JSON, and request bodies from JSON.

A record is ``{"id", "version", "owner", "created_at", "created_by", "updated_at",
"updated_by", <field>: value ...}`` with each value from its kind's ``to_json``:
decimals (decimal, money, percent) as strings, dates and datetimes in ISO 8601
(datetimes in the business time zone), multi-choice as a list, refs as the id,
child tables as lists of row objects (each with its ``id``). Fields hidden from
the caller are left out by the record service.

Bodies are parsed with every JSON number that has a fraction or exponent read as
a ``Decimal`` (``19.99`` stays exact); ``NaN`` and ``Infinity`` are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from flask import request

from engine.fields import business_timezone, kind_of
from engine.i18n import T
from engine.model import Entity
from engine.records import AuditEntry, Record
from engine.storage.query import Page
from engine.web.api.errors import ApiError

SYSTEM_KEYS = ("id", "version", "owner", "created_at", "created_by", "updated_at", "updated_by")

MSG_EMPTY = T("请求体为空：应为 JSON 对象", "the request body is empty: send a JSON object")
MSG_MALFORMED = T("请求体不是有效的 JSON", "the request body is not valid JSON")
MSG_NOT_OBJECT = T("请求体应为 JSON 对象", "the request body must be a JSON object")


def _moment(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat() if value.tzinfo else value.isoformat()
    return value


def values_json(entity: Entity, values: Mapping[str, Any]) -> dict[str, Any]:
    """System columns then fields (entity order) of ``values``, as JSON values."""
    zone = business_timezone()
    out: dict[str, Any] = {key: _moment(values[key], zone) for key in SYSTEM_KEYS if key in values}
    for name, f in entity.fields.items():
        if name in values:
            out[name] = kind_of(f).to_json(f, values[name])
    return out


def record_json(entity: Entity, record: Record) -> dict[str, Any]:
    """One record with its child tables."""
    values: dict[str, Any] = {
        "id": record.id,
        "version": record.version,
        "owner": record.owner,
        "created_at": record.created_at,
        "created_by": record.created_by,
        "updated_at": record.updated_at,
        "updated_by": record.updated_by,
        **record.values,
        **record.tables,
    }
    return values_json(entity, values)


def page_json(entity: Entity, page: Page) -> dict[str, Any]:
    """A list page: rows without child tables, the cursor and the (capped) count."""
    return {
        "data": [values_json(entity, row) for row in page.rows],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
        "count": page.count,
        "count_capped": page.count_capped,
        "count_is_estimate": page.count_is_estimate,
    }


def history_json(entries: Iterable[AuditEntry], hidden: frozenset[str]) -> dict[str, Any]:
    """The audit trail, oldest first; changes of fields hidden from the caller left out."""
    zone = business_timezone()
    return {
        "data": [
            {
                "id": e.id,
                "at": _moment(e.at, zone),
                "user": e.user,
                "action": e.action,
                "via": e.via,
                "version": e.version,
                "changes": {k: v for k, v in e.changes.items() if k not in hidden},
            }
            for e in entries
        ]
    }


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, else a 400 (413 past the size limit)."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise ApiError(400, MSG_EMPTY)
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, MSG_MALFORMED) from None
    if not isinstance(data, dict):
        raise ApiError(400, MSG_NOT_OBJECT)
    return data
