"""The list page of an entity: search, filters, sortable columns, keyset paging.

The query string is the API's (``parse_query_args``), so a list page URL can be
bookmarked and shared. Paging is keyset (``after=<cursor>``); "previous" works
by carrying the cursors of the earlier pages in ``back`` (at most
:data:`MAX_BACK`; older ones are dropped and "first page" is always there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup, escape

from engine.fields import kind_of
from engine.model import Entity, Field
from engine.storage.query import Page, QueryError, parse_query_args
from engine.web import access
from engine.web.auth import current_actor
from engine.web.formatting import (
    RefTitles,
    column_formatter,
    column_label,
    display,
    record_title,
    ref_titles,
    show_count,
)
from engine.web.i18n import _, current_lang, npgettext
from engine.web.services import services
from engine.web.views.common import entity_or_404, list_columns, with_query
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


@dataclass(slots=True)
class RowView:
    """One table row. Attributes, not dict keys: a template's ``row.html`` on a dict
    first fails as an attribute (an exception per row) before Jinja tries the key."""

    url: str
    title: str
    cells: list[tuple[str, bool]]  # (text, numeric) per column
    html: Markup  # the cells drawn and escaped (see _rows)


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
    entity: Entity, names: list[str], sort: tuple[str, ...], lang: str, base: str
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
            url = with_query(base, _args_without("after", "back", sort=wanted))
        numeric = f is not None and kind_of(f).widget in ("number", "money", "percent")
        out.append(ColumnView(name, column_label(entity, name, lang), url, state, numeric))
    return out


_TD = ("<td>", '<td class="ff-num">')


def _html(text: str) -> str:
    """``text`` escaped exactly as markupsafe (the templates' autoescape) escapes it."""
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return str(escape(text))
    return text


def _rows(
    entity: Entity,
    names: list[str],
    numeric: list[bool],
    found: list[dict[str, Any]],
    lang: str,
    titles: RefTitles,
) -> list[RowView]:
    """The table rows: ``url``, ``title``, ``cells`` ((text, numeric) pairs) and ``html``.

    ``html`` is the row's cells, drawn here rather than by a template loop per cell
    (the list's hottest markup). Every text is escaped by markupsafe exactly as
    the template's autoescaping would; the template still draws ``<tr>``.
    """
    formatters = [column_formatter(entity, n, lang, titles) for n in names]
    tds = [_TD[1] if num else _TD[0] for num in numeric]
    title_first = bool(names) and names[0] == entity.title_field
    # One url_for for the page, not one per row: ids are integers, safe in a path.
    detail = url_for("records.detail", entity=entity.name, record_id=0)
    head = detail[: detail.rindex("/0")]
    out = []
    for r in found:
        texts = [fmt(r) for fmt in formatters]
        # record_title shows the title field when it is not blank, else "Label #id".
        title = texts[0] if title_first and texts[0] else record_title(entity, r, r["id"], lang)
        url = f"{head}/{int(r['id'])}"
        html = [f"{td}{_html(text)}</td>" for td, text in zip(tds[1:], texts[1:], strict=True)]
        if texts:
            first = _html(texts[0] or title)
            html.insert(0, f'{tds[0]}<a class="ff-row-link" href="{_html(url)}">{first}</a></td>')
        out.append(
            # Every text in ``html`` went through _html (escaped) above.
            RowView(url, title, list(zip(texts, numeric, strict=True)), Markup("".join(html)))  # nosec B704
        )
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
    # The page, the titles it refers to and the filters' choices: one snapshot.
    with services().records.reading():
        return _index(ent)


def _index(ent: Entity) -> tuple[str, int] | str:
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
        # Read only what the page shows: its columns and the title (row links).
        shown = (*names, *([ent.title_field] if ent.title_field else []))
        page = svc.records.list_records(ent.name, replace(query, fields=shown), actor=actor)
    except QueryError as exc:
        error = exc.message(lang)
    base = url_for("lists.index", entity=ent.name)  # this list, no arguments
    columns = _columns(ent, names, sort, lang, base)
    rows: list[RowView] = []
    if page is not None:
        titles = ref_titles(ent, page.rows, actor, lang, names)
        rows = _rows(ent, names, [c.numeric for c in columns], page.rows, lang, titles)
    back = request.args.getlist("back")
    after = request.args.get("after")
    next_url = prev_url = first_url = None
    if page is not None and page.has_more and page.next_cursor:
        trail = ([*back, after or ""])[-MAX_BACK:]
        next_url = with_query(
            base, _args_without("after", "back", after=page.next_cursor, back=trail)
        )
    if after:
        previous = back[-1] if back else ""
        prev_url = with_query(
            base,
            _args_without("after", "back", after=previous or None, back=back[:-1] or None),
        )
        first_url = with_query(base, _args_without("after", "back"))
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
        clear_url=base,
        new_url=url_for("records.new", entity=ent.name) if access.can_create(actor, ent) else None,
    )
    return html, status
