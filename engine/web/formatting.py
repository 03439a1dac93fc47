"""Values as a person reads them, in the page's language.

Every field value goes through its kind's ``display`` (``¥1,234.50`` /
``CN¥1,234.50``, ``2026年11月27日`` / ``Nov 27, 2026``, option labels ...), which
formats per locale through :mod:`engine.locales` (Babel). References show the
target record's title, looked up in one query per target entity and page
through the record service (so a record the reader may not see stays ``#12``).
System columns (owner, created/updated) get the same treatment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engine.fields import kind_of
from engine.fields.dates import to_business
from engine.locales import format_datetime, format_integer
from engine.model import SYSTEM_LABELS, Entity, Field
from engine.records import Actor
from engine.web.services import services


def column_label(entity: Entity, name: str, lang: str) -> str:
    """The label of a field or a system column."""
    if name in entity.fields:
        return entity.fields[name].label.get(lang) or name
    return SYSTEM_LABELS[name].get(lang) if name in SYSTEM_LABELS else name


def show_datetime(value: datetime | None, lang: str) -> str:
    """A moment in the business time zone: ``2026年11月27日 16:30`` / ``Nov 27, 2026, 4:30 PM``."""
    if value is None:
        return ""
    return format_datetime(to_business(value), lang)


def show_count(count: int, lang: str) -> str:
    """A number of records: ``1,234``."""
    return format_integer(count, lang)


def display(field: Field, value: Any, lang: str, titles: Mapping[int, str] | None = None) -> str:
    """``value`` of ``field`` as text for ``lang``; refs use ``titles`` when known."""
    if value is None:
        return ""
    if field.kind == "ref" and titles is not None and value in titles:
        return titles[value]
    try:
        return kind_of(field).display(field, value, lang)
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


def display_column(
    entity: Entity, name: str, row: Mapping[str, Any], lang: str, titles: RefTitles
) -> str:
    """A list cell or a detail value: a field or a system column."""
    value = row.get(name)
    if name in entity.fields:
        f = entity.fields[name]
        return display(f, value, lang, titles.get(f.to or "", {}))
    if isinstance(value, datetime):
        return show_datetime(value, lang)
    return "" if value is None else str(value)


def column_formatter(
    entity: Entity, name: str, lang: str, titles: RefTitles
) -> Callable[[Mapping[str, Any]], str]:
    """``display_column`` of one column as a function of the row (built once per list)."""
    f = entity.fields.get(name)
    if f is None:

        def system(row: Mapping[str, Any]) -> str:
            return display_column(entity, name, row, lang, titles)

        return system
    fmt = kind_of(f).formatter(f, lang)
    refs = titles.get(f.to or "", {}) if f.kind == "ref" else {}

    def cell(row: Mapping[str, Any]) -> str:
        value = row.get(name)
        if value is None:
            return ""
        if refs and value in refs:
            return refs[value]
        try:
            return fmt(value)
        except (TypeError, ValueError, ArithmeticError):
            return str(value)

    return cell


def record_title(entity: Entity, values: Mapping[str, Any], record_id: Any, lang: str) -> str:
    """The title of a record: its title field, else ``Label #id``."""
    name = entity.title_field
    if name and name in entity.fields:
        text = display(entity.fields[name], values.get(name), lang)
        if text:
            return text
    return f"{entity.label.get(lang)} #{record_id}"


RefTitles = dict[str, dict[int, str]]


def ref_titles(
    entity: Entity,
    rows: Iterable[Mapping[str, Any]],
    actor: Actor,
    lang: str,
    names: Iterable[str] | None = None,
) -> RefTitles:
    """Titles of every record the ``rows`` refer to, by target entity and id."""
    wanted: dict[str, set[int]] = {}
    chosen = set(names) if names is not None else set(entity.fields)
    rows = list(rows)
    for name in chosen:
        f = entity.fields.get(name)
        if f is None or f.kind != "ref" or not f.to:
            continue
        for row in rows:
            v = row.get(name)
            if isinstance(v, int):
                wanted.setdefault(f.to, set()).add(v)
    return lookup_titles(wanted, actor, lang)


def lookup_titles(wanted: Mapping[str, set[int]], actor: Actor, lang: str) -> RefTitles:
    """``{entity: {id: title}}`` for the given ids (those the actor may read)."""
    svc = services()
    out: RefTitles = {}
    for target, ids in wanted.items():
        target_entity = svc.blueprint.entities.get(target)
        if target_entity is None:
            continue
        titles = svc.records.title_values(target, ids, actor=actor)
        name = target_entity.title_field or ""
        out[target] = {
            rid: record_title(target_entity, {name: value}, rid, lang)
            for rid, value in titles.items()
        }
    return out


def input_value(field: Field, value: Any) -> Any:
    """A canonical value as an HTML input's value (lists stay lists for multi-selects)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        local = to_business(value)
        return local.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)
