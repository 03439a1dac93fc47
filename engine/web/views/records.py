"""One record: detail page, create and edit forms, delete with confirmation.

Every write goes through the record service with ``via="form"``; a failed save
shows each message next to its field, in the page's language, with what the
user typed kept. An edit carries the record version; a stale one shows who
changed the record and when, with a link to reload it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import Conflict, NotFound, PermissionDenied, RecordInvalid, RecordLocked
from engine.fields import FieldValueError, kind_of
from engine.flows import AUDIT_ACTIONS as FLOW_TRAIL_ACTIONS
from engine.model import Entity, Field
from engine.records import Actor, AuditEntry, Record
from engine.storage.query import Filter, Query
from engine.web import access
from engine.web.auth import current_actor
from engine.web.editing import Preview, build_form, editable_fields, preview, states_for
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
from engine.web.forms import FormState, errors_by_input, read_form, state_from_values
from engine.web.i18n import N_, _, current_lang
from engine.web.services import services
from engine.web.views.common import entity_or_404, link, list_columns
from engine.web.views.flows import edit_lock, flow_panels, lock_notice
from engine.web.widgets import section_layout

bp = Blueprint("records", __name__)

RELATED_LIMIT = 10
#: How the history names each audited action.
HISTORY_ACTIONS = {"create": N_("created"), "update": N_("changed"), "delete": N_("deleted")}


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


def _change_text(f: Field | None, raw: Any, lang: str) -> str:
    if raw is None:
        return "—"
    if f is None:  # a system field (owner) or one the blueprint no longer has
        return str(raw)
    if f.kind == "table":
        return ""
    try:
        return display(f, kind_of(f).coerce(f, raw), lang) or "—"
    except (FieldValueError, TypeError, ValueError):
        return str(raw)


def _history(
    entity: Entity, entries: list[AuditEntry], hidden: frozenset[str], lang: str
) -> list[dict[str, Any]]:
    out = []
    for e in reversed(entries):
        if e.via == "flow" and e.action in FLOW_TRAIL_ACTIONS:
            continue  # the flow panel's approval trail shows these
        changes = []
        for name, pair in e.changes.items():
            if name in hidden:
                continue
            f = entity.fields.get(name)
            old, new = [*pair, None, None][:2] if isinstance(pair, list) else (None, pair)
            changes.append(
                {
                    "label": column_label(entity, name, lang),
                    "old": _change_text(f, old, lang) if e.action == "update" else "",
                    "new": _change_text(f, new, lang) if e.action != "delete" else "",
                    "table": f is not None and f.kind == "table",
                }
            )
        out.append(
            {
                "action": _(HISTORY_ACTIONS[e.action]) if e.action in HISTORY_ACTIONS else e.action,
                "by": _(
                    "%(user)s at %(at)s",
                    user=e.user or _("the system"),
                    at=show_datetime(e.at, lang),
                ),
                "via": e.via,
                "version": e.version,
                "changes": changes,
            }
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
    actor = current_actor()
    lang = current_lang()
    record = load_record(ent, record_id, actor)
    hidden = access.hidden_fields(actor, ent)
    row = {**record.values, "owner": record.owner}
    titles = ref_titles(ent, [row], actor, lang)
    child_titles = _child_titles(ent, record, actor, lang)
    sections = []
    for label, names in section_layout(ent, hidden):
        items = []
        for name in names:
            f = ent.fields[name]
            if f.kind == "table":
                cols = list(f.fields.values())
                items.append(
                    {
                        "label": f.label.get(lang),
                        "table": True,
                        "columns": [c.label.get(lang) for c in cols],
                        "numeric": [
                            kind_of(c).widget in ("number", "money", "percent") for c in cols
                        ],
                        "rows": [
                            [
                                display(c, r.get(c.name), lang, child_titles.get(c.to or ""))
                                for c in cols
                            ]
                            for r in record.tables.get(name, [])
                        ],
                    }
                )
            else:
                items.append(
                    {
                        "label": f.label.get(lang),
                        "table": False,
                        "value": display_column(ent, name, row, lang, titles),
                        "link": url_for("records.detail", entity=f.to, record_id=row[name])
                        if f.kind == "ref" and f.to and isinstance(row.get(name), int)
                        else None,
                        "multiline": f.kind == "long_text",
                    }
                )
        sections.append({"label": label.get(lang), "items": items})
    svc = services()
    panels = flow_panels(ent, record, actor)
    locked = lock_notice(panels)
    meta = {
        "owner": record.owner or "",
        "created": show_datetime(record.created_at, lang),
        "updated": show_datetime(record.updated_at, lang),
        "version": record.version,
    }
    return render_template(
        "detail.html",
        entity=ent,
        entity_label=ent.label.get(lang),
        title=record_title(ent, record.values, record.id, lang),
        record=record,
        sections=sections,
        meta=meta,
        history=_history(
            ent, svc.records.history(ent.name, record.id, actor=actor, loaded=record), hidden, lang
        ),
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
    sections, _states = build_form(ent, form, shown, actor, record, lang, errors)
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
    known = {v.input_name for s in sections for v in s.fields} | {
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
        action=action,
        preview_url=preview_url,
        cancel_url=cancel,
        general_errors=general,
        has_errors=bool(errors),
        conflict=conflict,
        version=version if version is not None else (record.version if record else None),
    )
    return html, status


@bp.route("/e/<entity>/new", methods=["GET", "POST"])
def new(entity: str) -> Response | tuple[str, int]:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    svc = services()
    if request.method == "POST":
        # readonly_if is judged on a stored record, so a new record has no such states.
        data, form = read_form(ent, request.form, editable_fields(ent, actor, None, {}))
        try:
            created = svc.records.create(ent.name, data, actor=actor, via="form")
        except RecordInvalid as exc:
            shown = preview(ent, data, actor, None, lang)
            return render_form(
                ent, form, shown, None, errors_by_input(exc.as_dict(lang), form), status=422
            )
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
        data, form = read_form(ent, request.form, editable_fields(ent, actor, record, states))
        version_text = request.form.get("version", "")
        version = int(version_text) if version_text.isdigit() else -1
        try:
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
