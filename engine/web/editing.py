"""Drawing a record form: preview values, field states and sections in one place.

The create page, the edit page, a failed save and the live preview endpoint all
build their form through :func:`build_form`, so what the user sees while typing
is what a save does.

Computed values come from ``RecordService.preview(entity, data, actor=,
record_id=)`` (the record service's own preparation: coercion, defaults,
computed fields, without saving). While a record service has no ``preview``,
pages show the stored values (or plain defaults for a new record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import FormflowError
from engine.fields import FieldValueError, kind_of
from engine.model import SYSTEM_LABELS, Entity
from engine.records import Actor, Record
from engine.web import access
from engine.web.conditions import FieldState, field_states
from engine.web.files import upload_urls
from engine.web.forms import FormState, accepts_input
from engine.web.services import services
from engine.web.widgets import FieldView, RefCache, SectionView, form_sections


@dataclass
class Preview:
    values: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    errors: dict[str, list[str]]


def _defaults(entity: Entity) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in entity.fields.items():
        if f.default is None or f.kind == "table":
            continue
        try:
            out[name] = kind_of(f).coerce(f, f.default)
        except FieldValueError:
            continue
    return out


def preview(
    entity: Entity, data: Mapping[str, Any], actor: Actor, record: Record | None, lang: str
) -> Preview:
    """Values (computed fields included) for ``data`` as a save would prepare them."""
    svc = services()
    base_values = dict(record.values) if record is not None else _defaults(entity)
    base_tables = {k: [dict(r) for r in v] for k, v in record.tables.items()} if record else {}
    try:
        values, errors = svc.records.preview(
            entity.name, data, actor=actor, record_id=record.id if record else None
        )
    except FormflowError:
        return Preview(base_values, base_tables, {})
    tables = {n: list(values.get(n) or []) for n, f in entity.fields.items() if f.kind == "table"}
    plain = {k: v for k, v in values.items() if k not in tables}
    messages = {k: [m.get(lang) for m in v] for k, v in dict(errors or {}).items()}
    return Preview(plain, tables, messages)


def editable_fields(
    entity: Entity, actor: Actor, record: Record | None, states: Mapping[str, FieldState]
) -> set[str]:
    """Fields this form sends to the record service."""
    hidden = access.hidden_fields(actor, entity)
    readonly = access.readonly_fields(actor, entity)
    return {
        n
        for n, f in entity.fields.items()
        if n not in hidden
        and n not in readonly
        and not states.get(n, FieldState()).readonly
        and (accepts_input(f) or f.kind in ("table", "file"))
    }


def states_for(
    entity: Entity,
    values: Mapping[str, Any],
    tables: Mapping[str, list[dict[str, Any]]],
    actor: Actor,
    record: Record | None,
) -> dict[str, FieldState]:
    return field_states(
        services().blueprint,
        entity,
        values,
        tables,
        actor,
        record.values if record is not None else None,
    )


def owner_field(
    entity: Entity,
    actor: Actor,
    value: str,
    lang: str,
    errors: Mapping[str, list[str]],
    refs: RefCache,
) -> FieldView | None:
    """The Owner picker, for those the owner rules let set an owner (else None).

    Offered exactly when ``Permissions.owner_policy`` allows a form to set the
    owner; the choices are ``Permissions.assignees``. The record service checks
    the value again on save (an unchanged owner is left alone).
    """
    if not services().permissions.owner_policy(actor, entity, "form"):
        return None
    allow_none = refs.people.may_leave_blank(entity.name)
    view = FieldView(
        name="owner",
        input_name="owner",
        label=SYSTEM_LABELS["owner"].get(lang),
        widget="user",
        value=value,
        shown=refs.people.label(value),
        required=not allow_none,
        errors=list(errors.get("owner", [])),
    )
    view.people = refs.people.view(entity.name, value, allow_none=allow_none)
    return view


def build_form(
    entity: Entity,
    form: FormState,
    shown: Preview,
    actor: Actor,
    record: Record | None,
    lang: str,
    errors: Mapping[str, list[str]],
) -> tuple[list[SectionView], dict[str, FieldState], FieldView | None]:
    """The sections of a form, each field's state and the Owner picker (if offered)."""
    states = states_for(entity, shown.values, shown.tables, actor, record)
    refs = RefCache(actor, lang, entity.name)
    sections = form_sections(
        entity,
        form,
        shown.values,
        shown.tables,
        lang,
        states=states,
        hidden=access.hidden_fields(actor, entity),
        readonly=access.readonly_fields(actor, entity),
        errors=errors,
        refs=refs,
    )
    stored = upload_urls(entity, record)
    for section in sections:
        for view in section.fields:
            if view.file is not None and view.file.name:
                held = str(view.value or "")
                if record is not None and held == record.values.get(view.name):
                    view.file.url = stored.get(view.name)
                else:
                    view.file.pending = True
    if "owner" in form.values:
        owner = str(form.values.get("owner") or "")
    else:
        owner = (record.owner if record is not None else actor.name) or ""
    return sections, states, owner_field(entity, actor, owner, lang, errors, refs)
