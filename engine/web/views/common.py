"""Helpers the views share: finding the entity, the current actor and language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import abort, url_for

from engine.model import Entity
from engine.web.services import services


def entity_or_404(name: str) -> Entity:
    """The blueprint entity ``name``, else a 404 page."""
    entity = services().blueprint.entities.get(name)
    if entity is None:
        abort(404)
    return entity


def list_columns(entity: Entity, hidden: frozenset[str]) -> list[str]:
    """The list's columns: ``list.columns``, else the first six plain fields."""
    if entity.list.columns:
        return [c for c in entity.list.columns if c not in hidden]
    names = [n for n, f in entity.fields.items() if f.kind != "table" and n not in hidden]
    return names[:6]


def link(endpoint: str, values: Mapping[str, Any]) -> str:
    """``url_for`` with query arguments from a mapping (lists repeat the parameter)."""
    return url_for(endpoint, **dict(values))


#: What werkzeug leaves unescaped in a query string it builds (url_for's own choice).
_QUERY_SAFE = "!$'()*,/:;?@"


def with_query(base: str, args: Mapping[str, Any]) -> str:
    """``base`` (a ``url_for`` result) plus query arguments, encoded as ``url_for`` does.

    For pages that link to themselves many times with other arguments (sort
    headers, pagers): one ``url_for`` for the path instead of one per link. A
    list value repeats the parameter; None leaves it out.
    """
    items = [
        (key, v)
        for key, value in args.items()
        for v in (value if isinstance(value, list | tuple) else (value,))
        if v is not None
    ]
    return f"{base}?{urlencode(items, safe=_QUERY_SAFE)}" if items else base
