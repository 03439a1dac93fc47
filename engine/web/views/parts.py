"""Small htmx endpoints a form uses while the user types.

* ``POST /e/<entity>/preview`` (and ``/e/<entity>/<id>/preview``): the form as it
  is now -> out-of-band swaps of every computed value and of each field's
  visible/required state. Nothing is saved.
* ``GET /e/<entity>/rows/<table>``: a new, empty child-table row.
* ``GET /parts/nothing``: an empty answer (a removed row swaps itself out).
* ``GET /e/<target>/lookup``: records of ``target`` whose title matches ``q``
  (through ``list_records``, so the reader sees only what they may read).
* ``GET /e/<target>/pick``: a reference picker holding the chosen record.
* ``GET /e/<entity>/people``: the users a user picker of ``entity`` offers whose
  login or display name matches ``q`` (see :mod:`engine.web.people`).
* ``GET /e/<entity>/people/pick``: a user picker holding the chosen user (one
  the picker offers, else 404).

Responses that change the rows carry ``HX-Trigger: ff-rows-changed`` so the
form asks for a fresh preview.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, make_response, render_template, request
from werkzeug.wrappers import Response

from engine.errors import FormflowError
from engine.storage.query import Query
from engine.web.auth import current_actor
from engine.web.conditions import FieldState
from engine.web.editing import editable_fields, states_for
from engine.web.editing import preview as run_preview
from engine.web.formatting import display, lookup_titles, record_title
from engine.web.forms import RowState, new_token, read_form
from engine.web.i18n import current_lang
from engine.web.people import People, PeopleView
from engine.web.services import services
from engine.web.views.common import entity_or_404
from engine.web.views.records import load_record
from engine.web.widgets import RefCache, RefView, table_view

bp = Blueprint("parts", __name__)

ROWS_EVENT = "ff-rows-changed"
LOOKUP_LIMIT = 10
_INPUT_NAME = re.compile(r"^[\w.\-]{1,200}$")


@bp.route("/e/<entity>/preview", methods=["POST"])
@bp.route("/e/<entity>/<int:record_id>/preview", methods=["POST"])
def preview(entity: str, record_id: int | None = None) -> str:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    record = load_record(ent, record_id, actor) if record_id is not None else None
    base = record.values if record else {}
    base_tables = record.tables if record else {}
    states = states_for(ent, base, base_tables, actor, record)
    data, form = read_form(ent, request.form, editable_fields(ent, actor, record, states))
    shown = run_preview(ent, data, actor, record, lang)
    states = states_for(ent, shown.values, shown.tables, actor, record)
    computed = []
    for name, f in ent.fields.items():
        if f.computed or f.kind == "autonumber":
            computed.append((f"computed-{name}", display(f, shown.values.get(name), lang)))
        if f.kind == "table":
            rows = shown.tables.get(name, [])
            for i, row in enumerate(form.rows.get(name, [])):
                values = rows[i] if i < len(rows) else {}
                for cname, cf in f.fields.items():
                    if cf.computed:
                        computed.append(
                            (
                                f"computed-{name}-{row.token}-{cname}",
                                display(cf, values.get(cname), lang),
                            )
                        )
    return render_template(
        "parts/preview.html",
        computed=computed,
        states=[(name, states.get(name, FieldState())) for name in ent.fields],
    )


@bp.route("/e/<entity>/rows/<table>")
def add_row(entity: str, table: str) -> Response:
    ent = entity_or_404(entity)
    f = ent.fields.get(table)
    if f is None or f.kind != "table":
        abort(404)
    lang = current_lang()
    defaults = {}
    for cname, cf in f.fields.items():
        defaults[cname] = (
            ""
            if cf.default is None or (isinstance(cf.default, str) and cf.default.startswith("="))
            else str(cf.default)
        )
    row = RowState(new_token(), None, defaults)
    view = table_view(
        f,
        [row],
        [],
        lang,
        readonly=False,
        errors={},
        refs=RefCache(current_actor(), lang, ent.name),
    )
    response = make_response(
        render_template("parts/row.html", field_name=f.name, entity=ent, row=view.rows[0])
    )
    response.headers["HX-Trigger"] = ROWS_EVENT
    return response


@bp.route("/parts/nothing")
def nothing() -> Response:
    response = make_response("")
    response.headers["HX-Trigger"] = ROWS_EVENT
    return response


def _input_name() -> str:
    name = request.args.get("input", "")
    if not _INPUT_NAME.match(name):
        abort(400)
    return name


@bp.route("/e/<entity>/lookup")
def lookup(entity: str) -> str:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    q = request.args.get("q", "").strip()
    results: list[tuple[int, str]] = []
    if q:
        try:
            page = services().records.list_records(
                ent.name, Query(search=q, limit=LOOKUP_LIMIT), actor=actor, with_count=False
            )
            results = [(int(r["id"]), record_title(ent, r, r["id"], lang)) for r in page.rows]
        except FormflowError:
            results = []
    return render_template(
        "parts/lookup.html", entity=ent, results=results, input_name=_input_name(), q=q
    )


@bp.route("/e/<entity>/pick")
def pick(entity: str) -> str:
    ent = entity_or_404(entity)
    actor = current_actor()
    lang = current_lang()
    raw = request.args.get("id", "")
    rid = int(raw) if raw.isdigit() else None
    title = ""
    if rid is not None:
        title = lookup_titles({ent.name: {rid}}, actor, lang).get(ent.name, {}).get(rid, "")
        if not title:
            abort(404)
    return render_template(
        "parts/ref_search.html",
        input_name=_input_name(),
        value="" if rid is None else str(rid),
        ref=RefView(ent.name, "search", title),
    )


@bp.route("/e/<entity>/people")
def people(entity: str) -> str:
    ent = entity_or_404(entity)
    q = request.args.get("q", "").strip()
    results = People(current_actor()).search(ent.name, q) if q else []
    return render_template(
        "parts/people_lookup.html", entity=ent, results=results, input_name=_input_name(), q=q
    )


@bp.route("/e/<entity>/people/pick")
def pick_person(entity: str) -> str:
    ent = entity_or_404(entity)
    input_name = _input_name()
    found = People(current_actor())
    name = request.args.get("name", "").strip()
    if name and not found.offers(ent.name, name):
        abort(404)
    allow_none = found.may_leave_blank(ent.name) if input_name == "owner" else True
    view = PeopleView(ent.name, "search", found.label(name), allow_none=allow_none)
    return render_template("parts/people.html", input_name=input_name, value=name, people=view)
