"""The list page of an entity: search, filters, sortable columns, keyset paging.

The query string is the API's (``parse_query_args``), so a list page URL can be
bookmarked and shared. Paging is keyset (``after=<cursor>``); "previous" works
by carrying the cursors of the earlier pages in ``back`` (at most
:data:`MAX_BACK`; older ones are dropped and "first page" is always there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import Blueprint, render_template, request, url_for

from engine.fields import kind_of
from engine.model import Entity, Field
from engine.storage.query import Page, QueryError, parse_query_args
from engine.web import access
from engine.web.auth import current_actor
from engine.web.formatting import (
    column_label,
    display,
    display_column,
    record_title,
    ref_titles,
    show_count,
)
from engine.web.i18n import _, current_lang, npgettext
from engine.web.services import services
from engine.web.views.common import entity_or_404, link, list_columns
from engine.web.widgets import RefCache

bp = Blueprint("lists", __name__)

PAGE_PARAMS = ("lang", "back")
MAX_BACK = 20


@dataclass
class FilterView:
    name: str
    label: str
    control: str  # select | range | text
    input_type: str = "text"
    options: list[tuple[str, str]] = field(default_factory=list)
    param: str = ""
    value: str = ""
    low_param: str = ""
    high_param: str = ""
    low: str = ""
    high: str = ""


@dataclass
class ColumnView:
    name: str
    label: str
    sort_url: str | None
    sorted: str  # "", "asc" or "desc"
    numeric: bool


def _args_without(*names: str, **replace: Any) -> dict[str, list[str]]:
    args = {k: v for k, v in request.args.to_dict(flat=False).items() if k not in names}
    for k, v in replace.items():
        if v is None:
            args.pop(k, None)
        else:
            args[k] = v if isinstance(v, list) else [v]
    return args


def _filter_view(f: Field, lang: str, refs: RefCache) -> FilterView:
    widget = kind_of(f).widget
    label = f.label.get(lang) or f.name
    arg = request.args.get
    if widget in ("select", "multiselect"):
        param = f.name if widget == "select" else f"{f.name}__contains"
        options = [(o.value, o.label.get(lang) or o.value) for o in f.options]
        return FilterView(
            f.name, label, "select", options=options, param=param, value=arg(param, "")
        )
    if widget == "checkbox":
        options = [("true", _("Yes")), ("false", _("No"))]
        return FilterView(
            f.name, label, "select", options=options, param=f.name, value=arg(f.name, "")
        )
    if widget == "ref" and f.to:
        pairs, more = refs.options(f.to)
        if not more:
            options = [(str(i), t) for i, t in pairs]
            return FilterView(
                f.name, label, "select", options=options, param=f.name, value=arg(f.name, "")
            )
        return FilterView(
            f.name, label, "text", input_type="number", param=f.name, value=arg(f.name, "")
        )
    if widget in ("date", "datetime", "number", "money", "percent"):
        input_type = "date" if widget in ("date", "datetime") else "number"
        low, high = f"{f.name}__gte", f"{f.name}__lte"
        return FilterView(
            f.name,
            label,
            "range",
            input_type=input_type,
            low_param=low,
            high_param=high,
            low=arg(low, ""),
            high=arg(high, ""),
        )
    param = f"{f.name}__contains"
    return FilterView(f.name, label, "text", param=param, value=arg(param, ""))


def _columns(
    entity: Entity, names: list[str], sort: tuple[str, ...], lang: str
) -> list[ColumnView]:
    current = sort[0] if sort else ""
    out = []
    for name in names:
        f = entity.fields.get(name)
        sortable = f is None or (kind_of(f).sortable and f.kind not in ("table", "multi_choice"))
        state = "asc" if current == name else "desc" if current == f"-{name}" else ""
        url = None
        if sortable:
            wanted = f"-{name}" if state == "asc" else name
            url = link(
                "lists.index",
                {"entity": entity.name, **_args_without("after", "back", sort=wanted)},
            )
        numeric = f is not None and kind_of(f).widget in ("number", "money", "percent")
        out.append(ColumnView(name, column_label(entity, name, lang), url, state, numeric))
    return out


def _totals(entity: Entity, names: list[str], page: Page, lang: str) -> dict[str, str] | None:
    totals: dict[str, str] = {}
    for name in names:
        f = entity.fields.get(name)
        if f is None:
            continue
        money = f.kind == "money" or (f.kind == "formula" and f.result == "money")
        if not money:
            continue
        values: list[Decimal] = [v for r in page.rows if isinstance(v := r.get(name), Decimal)]
        if values:
            totals[name] = display(f, sum(values, Decimal(0)), lang)
    return totals or None


def _count_text(page: Page, lang: str) -> str:
    count = page.count
    if count is None:
        return ""
    num = show_count(count, lang)
    if page.count_capped:
        return npgettext("list", "%(num)s+ record", "%(num)s+ records", count, num=num)
    if page.count_is_estimate:
        return npgettext("list", "about %(num)s record", "about %(num)s records", count, num=num)
    return npgettext("list", "%(num)s record", "%(num)s records", count, num=num)


@bp.route("/e/<entity>")
def index(entity: str) -> tuple[str, int] | str:
    ent = entity_or_404(entity)
    svc = services()
    actor = current_actor()
    lang = current_lang()
    hidden = access.hidden_fields(actor, ent)
    names = list_columns(ent, hidden)
    refs = RefCache(actor, lang)
    filters = [
        _filter_view(ent.fields[n], lang, refs)
        for n in ent.list.filters
        if n in ent.fields and n not in hidden
    ]
    error = None
    page: Page | None = None
    sort: tuple[str, ...] = ent.list.sort
    try:
        query = parse_query_args(ent, request.args, ignore=PAGE_PARAMS, hidden=hidden)
        sort = query.sort or ent.list.sort
        page = svc.records.list_records(ent.name, query, actor=actor)
    except QueryError as exc:
        error = exc.message(lang)
    columns = _columns(ent, names, sort, lang)
    numeric = [c.numeric for c in columns]
    rows = []
    if page is not None:
        titles = ref_titles(ent, page.rows, actor, lang, names)
        # One url_for for the page, not one per row: ids are integers, safe in a path.
        detail = url_for("records.detail", entity=ent.name, record_id=0)
        head = detail[: detail.rindex("/0")]
        for r in page.rows:
            rows.append(
                {
                    "url": f"{head}/{int(r['id'])}",
                    "title": record_title(ent, r, r["id"], lang),
                    # (text, numeric) per cell: the template does no per-cell look-ups
                    "cells": [
                        (display_column(ent, n, r, lang, titles), num)
                        for n, num in zip(names, numeric, strict=True)
                    ],
                }
            )
    back = request.args.getlist("back")
    after = request.args.get("after")
    next_url = prev_url = first_url = None
    if page is not None and page.has_more and page.next_cursor:
        trail = ([*back, after or ""])[-MAX_BACK:]
        next_url = link(
            "lists.index",
            {
                "entity": ent.name,
                **_args_without("after", "back", after=page.next_cursor, back=trail),
            },
        )
    if after:
        previous = back[-1] if back else ""
        prev_url = link(
            "lists.index",
            {
                "entity": ent.name,
                **_args_without("after", "back", after=previous or None, back=back[:-1] or None),
            },
        )
        first_url = link("lists.index", {"entity": ent.name, **_args_without("after", "back")})
    status = 400 if error else 200
    html = render_template(
        "list.html",
        entity=ent,
        entity_label=ent.label.get(lang) or ent.name,
        columns=columns,
        rows=rows,
        totals=_totals(ent, names, page, lang) if page is not None else None,
        count=_count_text(page, lang) if page is not None else "",
        filters=filters,
        q=request.args.get("q", ""),
        sort=request.args.get("sort", ""),
        error=error,
        next_url=next_url,
        prev_url=prev_url,
        first_url=first_url,
        clear_url=url_for("lists.index", entity=ent.name),
        new_url=url_for("records.new", entity=ent.name) if access.can_create(actor, ent) else None,
    )
    return html, status
