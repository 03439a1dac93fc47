"""One record: detail page, create and edit forms, delete with confirmation.

Every write goes through the record service with ``via="form"``; a failed save
shows each message next to its field, in the page's language, with what the
user typed kept. An edit carries the record version; a stale one shows who
changed the record and when, with a link to reload it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import Conflict, NotFound, PermissionDenied, RecordInvalid, RecordLocked
from engine.fields import FieldValueError, kind_of
from engine.flows import AUDIT_ACTIONS as FLOW_TRAIL_ACTIONS
from engine.i18n import Text
from engine.model import Entity, Field
from engine.records import Actor, AuditEntry, Record
from engine.storage.query import Filter, Query
from engine.web import access
from engine.web.auth import current_actor
from engine.web.editing import Preview, build_form, editable_fields, preview, states_for
from engine.web.files import download, store_form_uploads, upload_urls
from engine.web.formatting import (
    RefTitles,
    column_label,
    display,
    display_column,
    lookup_titles,
    record_title,
    ref_titles,
    show_datetime,
)
from engine.web.forms import (
    UPLOAD_SUFFIX,
    FormState,
    errors_by_input,
    read_form,
    state_from_values,
)
from engine.web.i18n import N_, _, current_lang
from engine.web.people import People
from engine.web.services import services
from engine.web.views.common import entity_or_404, link, list_columns
from engine.web.views.flows import edit_lock, flow_panels, lock_notice
from engine.web.widgets import section_layout

bp = Blueprint("records", __name__)

RELATED_LIMIT = 10
#: How the history names each audited action.
HISTORY_ACTIONS = {"create": N_("created"), "update": N_("changed"), "delete": N_("deleted")}


# What the detail page draws: attributes rather than dict keys, so that Jinja's
# ``item.label`` finds them at once (on a dict it first fails as an attribute).


@dataclass(slots=True)
class DetailItem:
    label: str
    table: bool = False
    value: str = ""  # a plain field, as text
    link: str | None = None  # a reference's record
    multiline: bool = False
    columns: list[str] = field(default_factory=list)  # a child table
    numeric: list[bool] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass(slots=True)
class DetailSection:
    label: str
    items: list[DetailItem]


@dataclass(slots=True)
class DetailMeta:
    owner: str
    created: str
    updated: str
    version: int


@dataclass(slots=True)
class ChangeView:
    label: str
    old: str
    new: str
    table: bool


@dataclass(slots=True)
class HistoryView:
    action: str
    by: str
    via: str
    version: int
    changes: list[ChangeView]


def load_record(entity: Entity, record_id: int, actor: Actor) -> Record:
    """The record, or a 404 page when it does not exist or the actor may not read it."""
    try:
        return services().records.get(entity.name, record_id, actor=actor)
    except (NotFound, PermissionDenied):
        abort(404)


# -- detail ---------------------------------------------------------------------------


def _child_titles(entity: Entity, record: Record, actor: Actor, lang: str) -> RefTitles:
    wanted: dict[str, set[int]] = {}
    for table in entity.tables():
        for cname, cf in table.fields.items():
            if cf.kind == "ref" and cf.to:
                for row in record.tables.get(table.name, []):
                    if isinstance(row.get(cname), int):
                        wanted.setdefault(cf.to, set()).add(row[cname])
    return lookup_titles(wanted, actor, lang)


def _change_text(
    f: Field | None,
    raw: Any,
    lang: str,
    people: Mapping[str, str] | None = None,
    titles: RefTitles | None = None,
) -> str:
    if raw is None:
        return "—"
    if people is not None and isinstance(raw, str) and raw in people:
        return people[raw]  # the owner or a user field: the person's label
    if f is None:  # a system field (owner) or one the blueprint no longer has
        return str(raw)
    if f.kind == "table":
        return ""
    known = (titles or {}).get(f.to or "") if f.kind == "ref" else None
    try:
        return display(f, kind_of(f).coerce(f, raw), lang, known) or "—"
    except (FieldValueError, TypeError, ValueError):
        return str(raw)


def _people_in(entity: Entity, record: Record, entries: list[AuditEntry]) -> set[str]:
    """Names of the owner, user-field values and the history's people (to label them)."""
    names: set[str] = {record.owner} if record.owner else set()
    user_fields = {n for n, f in entity.fields.items() if f.kind == "user"}
    names.update(v for n in user_fields if isinstance(v := record.values.get(n), str))
    for e in entries:
        if e.user:
            names.add(e.user)
        for name, pair in e.changes.items():
            if (name == "owner" or name in user_fields) and isinstance(pair, list):
                names.update(v for v in pair if isinstance(v, str))
    return names


def _history_refs(entity: Entity, entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """The ref values a history names (old and new), as rows for ``ref_titles``."""
    refs = {n for n, f in entity.fields.items() if f.kind == "ref"}
    rows: list[dict[str, Any]] = []
    for e in entries:
        for name, pair in e.changes.items():
            if name in refs:
                values = pair if isinstance(pair, list) else [pair]
                rows.extend({name: v} for v in values if isinstance(v, int))
    return rows


def _history(
    entity: Entity,
    entries: list[AuditEntry],
    hidden: frozenset[str],
    lang: str,
    people: Mapping[str, str] | None = None,
    titles: RefTitles | None = None,
) -> list[HistoryView]:
    """The record's changes, newest first; refs by their records' titles where readable."""
    people = people or {}
    out = []
    for e in reversed(entries):
        if e.via == "flow" and e.action in FLOW_TRAIL_ACTIONS:
            continue  # the flow panel's approval trail shows these
        changes = []
        for name, pair in e.changes.items():
            if name in hidden:
                continue
            f = entity.fields.get(name)
            who = people if name == "owner" or (f is not None and f.kind == "user") else None
            old, new = [*pair, None, None][:2] if isinstance(pair, list) else (None, pair)
            changes.append(
                ChangeView(
                    label=column_label(entity, name, lang),
                    old=_change_text(f, old, lang, who, titles) if e.action == "update" else "",
                    new=_change_text(f, new, lang, who, titles) if e.action != "delete" else "",
                    table=f is not None and f.kind == "table",
                )
            )
        out.append(
            HistoryView(
                action=_(HISTORY_ACTIONS[e.action]) if e.action in HISTORY_ACTIONS else e.action,
                by=_(
                    "%(user)s at %(at)s",
                    user=people.get(e.user, e.user) if e.user else _("the system"),
                    at=show_datetime(e.at, lang),
                ),
                via=e.via,
                version=e.version,
                changes=changes,
            )
        )
    return out


def _related(entity: Entity, record: Record, actor: Actor, lang: str) -> list[dict[str, Any]]:
    svc = services()
    out = []
    for other in svc.blueprint.entities.values():
        if not access.can_see(actor, other):
            continue
        hidden = access.hidden_fields(actor, other)
        for f in other.fields.values():
            if f.kind != "ref" or f.to != entity.name or f.name in hidden:
                continue
            query = Query(filters=(Filter(f.name, "eq", record.id),), limit=RELATED_LIMIT)
            try:
                page = svc.records.list_records(other.name, query, actor=actor, count_cap=1000)
            except (PermissionDenied, NotFound):
                continue
            names = [n for n in list_columns(other, hidden) if n != f.name][:5]
            titles = ref_titles(other, page.rows, actor, lang, names)
            out.append(
                {
                    "label": f"{other.label.get(lang)} · {f.label.get(lang)}",
                    "columns": [column_label(other, n, lang) for n in names],
                    "rows": [
                        {
                            "url": url_for("records.detail", entity=other.name, record_id=r["id"]),
                            "cells": [display_column(other, n, r, lang, titles) for n in names],
                        }
                        for r in page.rows
                    ],
                    "count": page.count,
                    "capped": page.count_capped,
                    "more_url": link("lists.index", {"entity": other.name, f.name: record.id})
                    if page.has_more
                    else None,
                    "new_url": link("records.new", {"entity": other.name, f.name: record.id})
                    if access.can_create(actor, other)
                    else None,
                }
            )
    return out


@bp.route("/e/<entity>/<int:record_id>")
def detail(entity: str, record_id: int) -> str:
    ent = entity_or_404(entity)
    # The record, the titles it refers to, its history and related lists: one snapshot.
    with services().records.reading():
        return _detail(ent, record_id)


def _detail(ent: Entity, record_id: int) -> str:
    actor = current_actor()
    lang = current_lang()
    record = load_record(ent, record_id, actor)
    hidden = access.hidden_fields(actor, ent)
    svc = services()
    entries = svc.records.history(ent.name, record.id, actor=actor, loaded=record)
    people = People(actor).labels(_people_in(ent, record, entries))
    row = {**record.values, "owner": record.owner}
    files = upload_urls(ent, record)
    # One lookup for the refs the record holds and those its history names.
    titles = ref_titles(ent, [row, *_history_refs(ent, entries)], actor, lang)
    child_titles = _child_titles(ent, record, actor, lang)
    sections = []
    for label, names in section_layout(ent, hidden):
        items = []
        for name in names:
            f = ent.fields[name]
            if f.kind == "table":
                cols = list(f.fields.values())
                items.append(
                    DetailItem(
                        label=f.label.get(lang),
                        table=True,
                        columns=[c.label.get(lang) for c in cols],
                        numeric=[kind_of(c).widget in ("number", "money", "percent") for c in cols],
                        rows=[
                            [
                                display(c, r.get(c.name), lang, child_titles.get(c.to or ""))
                                for c in cols
                            ]
                            for r in record.tables.get(name, [])
                        ],
                    )
                )
            else:
                items.append(
                    DetailItem(
                        label=f.label.get(lang),
                        value=people.get(row[name], row[name])
                        if f.kind == "user" and isinstance(row.get(name), str)
                        else display_column(ent, name, row, lang, titles),
                        link=url_for("records.detail", entity=f.to, record_id=row[name])
                        if f.kind == "ref" and f.to and isinstance(row.get(name), int)
                        else files.get(name),
                        multiline=f.kind == "long_text",
                    )
                )
        sections.append(DetailSection(label.get(lang), items))
    meta = DetailMeta(
        owner=people.get(record.owner, record.owner) if record.owner else "",
        created=show_datetime(record.created_at, lang),
        updated=show_datetime(record.updated_at, lang),
        version=record.version,
    )
    panels = flow_panels(ent, record, actor)
    locked = lock_notice(panels)
    return render_template(
        "detail.html",
        entity=ent,
        entity_label=ent.label.get(lang),
        title=record_title(ent, record.values, record.id, lang),
        record=record,
        sections=sections,
        meta=meta,
        history=_history(ent, entries, hidden, lang, people, titles),
        related=_related(ent, record, actor, lang),
        edit_url=url_for("records.edit", entity=ent.name, record_id=record.id)
        if not locked and access.can_update(actor, ent, record)
        else None,
        delete_url=url_for("records.delete", entity=ent.name, record_id=record.id)
        if not locked and access.can_delete(actor, ent, record)
        else None,
        list_url=url_for("lists.index", entity=ent.name),
        flow_panels=panels,
        lock_notice=locked,
    )


# -- forms ----------------------------------------------------------------------------


def render_form(
    ent: Entity,
    form: FormState,
    shown: Preview,
    record: Record | None,
    errors: dict[str, list[str]],
    *,
    status: int = 200,
    conflict: dict[str, str] | None = None,
    version: int | None = None,
) -> tuple[str, int]:
    actor = current_actor()
    lang = current_lang()
    sections, _states, owner_field = build_form(ent, form, shown, actor, record, lang, errors)
    label = ent.label.get(lang)
    if record is None:
        heading = _("New %(entity)s", entity=label)
        action = url_for("records.new", entity=ent.name)
        preview_url = url_for("parts.preview", entity=ent.name)
        cancel = url_for("lists.index", entity=ent.name)
    else:
        heading = (
            _("Edit %(entity)s", entity=label)
            + " · "
            + record_title(ent, record.values, record.id, lang)
        )
        action = url_for("records.edit", entity=ent.name, record_id=record.id)
        preview_url = url_for("parts.preview", entity=ent.name, record_id=record.id)
        cancel = url_for("records.detail", entity=ent.name, record_id=record.id)
    known = {v.input_name for s in sections for v in s.fields}
    if owner_field is not None:
        known.add(owner_field.input_name)
    known |= {
        c.input_name
        for s in sections
        for v in s.fields
        if v.table is not None
        for r in v.table.rows
        for c in r.cells
    }
    row_keys = {
        f"{v.name}.{r.token}"
        for s in sections
        for v in s.fields
        if v.table is not None
        for r in v.table.rows
    }
    general = [
        m for k, msgs in errors.items() if k not in known and k not in row_keys for m in msgs
    ]
    html = render_template(
        "form.html",
        entity=ent,
        heading=heading,
        sections=sections,
        owner_field=owner_field,
        action=action,
        preview_url=preview_url,
        cancel_url=cancel,
        file_inputs=[
            f"{v.input_name}.{UPLOAD_SUFFIX}"
            for s in sections
            for v in s.fields
            if v.file is not None and not v.readonly
        ],
        general_errors=general,
        has_errors=bool(errors),
        conflict=conflict,
        version=version if version is not None else (record.version if record else None),
    )
    return html, status


def _refused_uploads(
    ent: Entity,
    data: dict[str, Any],
    actor: Actor,
    record: Record | None,
    refused: dict[str, list[str]],
    lang: str,
) -> RecordInvalid:
    """A refused upload, with every other problem the save would have (nothing saved)."""
    _values, others = services().records.preview(
        ent.name, data, actor=actor, record_id=record.id if record else None
    )
    merged: dict[str, list[Text]] = {k: list(v) for k, v in others.items()}
    for name, messages in refused.items():
        merged[name] = [Text(zh=m, en=m) for m in messages]  # already in the page's language
    return RecordInvalid(merged)


@bp.route("/e/<entity>/<int:record_id>/files/<field>")
def file(entity: str, record_id: int, field: str) -> Response:
    """The file a record holds in ``field``, for whoever may read both (else 404)."""
    ent = entity_or_404(entity)
    return download(ent, load_record(ent, record_id, current_actor()), field)


@bp.route("/e/<entity>/new", methods=["GET", "POST"])
def new(entity: str) -> Response | tuple[str, int]:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    svc = services()
    if request.method == "POST":
        # readonly_if is judged on a stored record, so a new record has no such states.
        editable = editable_fields(ent, actor, None, {})
        uploaded, refused = store_form_uploads(ent, actor, editable, lang)
        data, form = read_form(ent, request.form, editable, uploaded)
        try:
            if refused:
                raise _refused_uploads(ent, data, actor, None, refused, lang)
            created = svc.records.create(ent.name, data, actor=actor, via="form")
        except RecordInvalid as exc:
            shown = preview(ent, data, actor, None, lang)
            errors = errors_by_input(exc.as_dict(lang), form)
            return render_form(ent, form, shown, None, errors, status=422)
        flash(_("Created"))
        return redirect(url_for("records.detail", entity=ent.name, record_id=created.id))
    # Prefill from the query string (e.g. "new opportunity" from a customer page).
    prefill = {
        k: v for k, v in request.args.items() if k in ent.fields and ent.fields[k].kind != "table"
    }
    shown = preview(ent, prefill, actor, None, lang)
    form = state_from_values(ent, shown.values, shown.tables)
    return render_form(ent, form, shown, None, {})


@bp.route("/e/<entity>/<int:record_id>/edit", methods=["GET", "POST"])
def edit(entity: str, record_id: int) -> Response | tuple[str, int]:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    svc = services()
    record = load_record(ent, record_id, actor)
    locked = edit_lock(ent, record, actor)
    if locked is not None:  # pending approval: nothing to edit until it ends
        flash(locked, "error")
        return redirect(url_for("records.detail", entity=ent.name, record_id=record.id))
    if request.method == "POST":
        states = states_for(ent, record.values, record.tables, actor, record)
        editable = editable_fields(ent, actor, record, states)
        uploaded, refused = store_form_uploads(ent, actor, editable, lang)
        data, form = read_form(ent, request.form, editable, uploaded)
        version_text = request.form.get("version", "")
        version = int(version_text) if version_text.isdigit() else -1
        try:
            if refused:
                raise _refused_uploads(ent, data, actor, record, refused, lang)
            svc.records.update(ent.name, record.id, data, version=version, actor=actor, via="form")
        except RecordInvalid as exc:
            shown = preview(ent, data, actor, record, lang)
            return render_form(
                ent,
                form,
                shown,
                record,
                errors_by_input(exc.as_dict(lang), form),
                status=422,
                version=version,
            )
        except RecordLocked as exc:  # submitted meanwhile
            flash(exc.message(lang), "error")
            return redirect(url_for("records.detail", entity=ent.name, record_id=record.id))
        except Conflict as exc:
            current = load_record(ent, record_id, actor)
            shown = preview(ent, data, actor, current, lang)
            details = exc.details
            who = str(details.get("updated_by") or current.updated_by or _("the system"))
            conflict = {
                "message": _(
                    "%(who)s changed this record at %(at)s. Your changes were not saved.",
                    who=who,
                    at=show_datetime(current.updated_at, lang),
                ),
                "reload": url_for("records.edit", entity=ent.name, record_id=record.id),
            }
            return render_form(
                ent, form, shown, record, {}, status=409, conflict=conflict, version=version
            )
        flash(_("Saved"))
        return redirect(url_for("records.detail", entity=ent.name, record_id=record.id))
    shown = Preview(dict(record.values), {k: list(v) for k, v in record.tables.items()}, {})
    form = state_from_values(ent, record.values, record.tables)
    return render_form(ent, form, shown, record, {})


@bp.route("/e/<entity>/<int:record_id>/delete", methods=["GET", "POST"])
def delete(entity: str, record_id: int) -> Response | tuple[str, int]:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    record = load_record(ent, record_id, actor)
    locked = edit_lock(ent, record, actor)
    if locked is not None:  # pending approval: it cannot be deleted until it ends
        flash(locked, "error")
        return redirect(url_for("records.detail", entity=ent.name, record_id=record.id))
    title = record_title(ent, record.values, record.id, lang)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        version_text = request.form.get("version", "")
        try:
            services().records.delete(
                ent.name,
                record.id,
                version=int(version_text) if version_text.isdigit() else None,
                actor=actor,
                via="form",
            )
        except RecordInvalid as exc:
            errors = [m for msgs in exc.as_dict(lang).values() for m in msgs]
            status = 409
        except Conflict as exc:
            errors = [exc.message(lang)]
            status = 409
        else:
            flash(_("Deleted"))
            return redirect(url_for("lists.index", entity=ent.name))
    html = render_template(
        "delete.html",
        entity=ent,
        heading=_("Delete %(entity)s", entity=ent.label.get(lang)),
        title=title,
        record=record,
        errors=errors,
        cancel_url=url_for("records.detail", entity=ent.name, record_id=record.id),
    )
    return html, status
