"""The search box: every term must match one of the entity's search fields."""

from __future__ import annotations

import re
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.fields import kind_of
from engine.i18n import T
from engine.model import Entity
from engine.storage.query.base import MAX_SEARCH_TERMS, MAX_TERM_LENGTH, Query, QueryError
from engine.storage.query.filters import _filter_clause, _icontains, _storage_of
from engine.storage.schema import EntityTable


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
