"""Helpers the views share: finding the entity, the current actor and language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
