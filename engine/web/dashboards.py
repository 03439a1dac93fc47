"""Dashboards for the pages and the API: who sees which, the page filters, the widgets.

A dashboard (``dashboards:`` in the blueprint) is a grid of widgets, each one KPI
evaluated by :class:`engine.kpis.service.KpiService` (all of a page's KPIs on one
connection). This module turns a request's filters into the service's arguments
(refusing a period, team or owner the viewer may not use, with a bilingual
message) and each :class:`~engine.kpis.result.KpiResult` into what the template
draws: a number card, an ECharts option (JSON the static ``dashboard.js`` draws;
no inline script), a table of the same numbers for readers without JavaScript,
and the list-page link of every row (click-through).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import url_for

from engine.errors import FormflowError, NotFound, PermissionDenied
from engine.i18n import T
from engine.kpis.commissions import STATEMENT_PERIODS, Statement
from engine.kpis.formatting import format_number, format_percentage
from engine.kpis.periods import PERIOD_NAMES, Period, PeriodError, resolve_period
from engine.kpis.result import KpiResult, KpiRow
from engine.kpis.service import KpiRequest
from engine.locales import format_date, format_money, format_percent
from engine.model import Blueprint, Dashboard, Kpi, Widget
from engine.records import Actor
from engine.users import ADMIN_ROLE, User
from engine.web.i18n import N_, _
from engine.web.services import Services, services
from engine.web.views.common import with_query

#: The widget kinds that draw an ECharts chart (number, table and leaderboard are HTML).
CHART_KINDS = frozenset({"bar", "line", "pie", "funnel", "gauge"})
#: Widgets that show one figure (the KPI's total), not rows.
SINGLE_KINDS = frozenset({"number", "gauge"})
#: Rows a leaderboard shows when the widget gives no ``limit``.
DEFAULT_LIMIT = 10
#: What a blank figure (a ratio over nothing, no target) shows.
BLANK = "—"


class DashboardFilterError(FormflowError):
    """A page filter the viewer may not use or that makes no sense."""

    http_status = 400


# -- who sees what ----------------------------------------------------------------------------


def may_see(actor: Actor, board: Dashboard) -> bool:
    """``dashboard.roles`` empty: everyone signed in; else those roles, and admins (who
    read every record anyway; the built-in admin role need not be declared)."""
    if actor.is_system or not board.roles or ADMIN_ROLE in actor.roles:
        return True
    return bool(actor.roles & set(board.roles))


def visible(blueprint: Blueprint, actor: Actor) -> list[Dashboard]:
    """The dashboards ``actor`` may open, in blueprint order."""
    return [b for b in blueprint.dashboards.values() if may_see(actor, b)]


def dashboard_for(blueprint: Blueprint, name: str, actor: Actor) -> Dashboard:
    """The dashboard ``name``: NotFound when there is none, PermissionDenied when not for
    the actor's roles (as an entity the actor may not read)."""
    board = blueprint.dashboards.get(name)
    if board is None:
        raise NotFound(T(f"没有看板 {name}", f"no dashboard {name!r}"))
    if not may_see(actor, board):
        raise PermissionDenied(
            T(f"你无权查看看板 {name}", f"you may not see the dashboard {name!r}")
        )
    return board


# -- the page filters -------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Filters:
    """What the viewer chose; empty strings mean "not chosen"."""

    period: str = ""
    start: str = ""
    end: str = ""
    team: str = ""
    owner: str = ""

    def as_args(self) -> dict[str, str]:
        out = {"period": self.period, "start": self.start, "end": self.end}
        out.update(team=self.team, owner=self.owner)
        return {k: v for k, v in out.items() if v}

    def service_filters(self) -> dict[str, str]:
        return {k: v for k, v in (("team", self.team), ("owner", self.owner)) if v}


@dataclass(frozen=True)
class FilterForm:
    """The filter form of a page: the values and the choices the viewer has."""

    filters: Filters
    shown: tuple[str, ...]  # period | team | owner, as the blueprint lists them
    periods: list[Choice]
    teams: list[Choice]
    owners: list[Choice]


def business_today(svc: Services) -> date:
    """Today in the blueprint's time zone (the runtime's clock)."""
    return svc.runtime.clock().astimezone(ZoneInfo(svc.blueprint.timezone)).date()


_PERIOD_LABELS: Mapping[str, str] = {
    "this_month": N_("This month"),
    "last_month": N_("Last month"),
    "this_quarter": N_("This quarter"),
    "last_quarter": N_("Last quarter"),
    "this_year": N_("This year"),
    "last_year": N_("Last year"),
    "all": N_("All time"),
    "custom": N_("Custom range"),
}


def period_label(name: str | None) -> str:
    """A period's name in the page's language."""
    text = _PERIOD_LABELS.get(name or "all")
    return _(text) if text is not None else (name or "")


def _user_choices(users: Iterable[User]) -> list[Choice]:
    """Users as choices by their label (display name, else name); no further query."""
    return sorted({Choice(u.name, u.label) for u in users}, key=lambda c: (c.label, c.value))


def team_choices(svc: Services, actor: Actor) -> list[Choice]:
    """The managers whose team ``actor`` may look at: all for admins, else the actor's own
    line (themself and the managers below them)."""
    users = svc.users.list(active_only=True)
    managers = {u.manager for u in users if u.manager}
    if not (actor.is_system or ADMIN_ROLE in actor.roles):
        line = svc.users.team(actor.name) if actor.name else frozenset()
        managers &= set(line)
    return _user_choices(u for u in users if u.name in managers)


def owner_choices(svc: Services, actor: Actor, board: Dashboard) -> list[Choice]:
    """The users ``actor`` may assign records of the dashboard's KPIs to (what they see)."""
    entities = {
        svc.blueprint.kpis[w.kpi].entity
        for w in board.widgets
        if w.kpi and w.kpi in svc.blueprint.kpis
    }
    found: dict[str, User] = {}
    for entity in sorted(entities):
        found.update((u.name, u) for u in svc.permissions.assignees(actor, entity))
    return _user_choices(found.values())


def filters_from(board: Dashboard, args: Mapping[str, str]) -> Filters:
    """The filters of a query string that ``board`` offers (others are ignored)."""
    shown = board.filters
    raw = {k: (args.get(k) or "").strip() for k in ("period", "start", "end", "team", "owner")}
    # ``from``/``to``: the names GET /api/v1/kpis uses for the same bounds
    raw["start"] = raw["start"] or (args.get("from") or "").strip()
    raw["end"] = raw["end"] or (args.get("to") or "").strip()
    return Filters(
        period=raw["period"] if "period" in shown else "",
        start=raw["start"] if "period" in shown else "",
        end=raw["end"] if "period" in shown else "",
        team=raw["team"] if "team" in shown else "",
        owner=raw["owner"] if "owner" in shown else "",
    )


def read_filters(
    svc: Services, board: Dashboard, actor: Actor, args: Mapping[str, str], lang: str
) -> tuple[FilterForm, str | None]:
    """The filters of ``args`` checked against what ``actor`` may use.

    Returns the form (values and choices) and an error message in ``lang``
    (None when the filters are fine). Filters the dashboard does not offer are
    ignored, as the list pages ignore parameters they do not know.
    """
    shown = board.filters
    filters = filters_from(board, args)
    periods = [Choice(p, period_label(p)) for p in (*PERIOD_NAMES, "custom")]
    teams = team_choices(svc, actor) if "team" in shown else []
    owners = owner_choices(svc, actor, board) if "owner" in shown else []
    form = FilterForm(filters, shown, periods, teams, owners)
    try:
        check_filters(svc, filters, teams, owners)
    except FormflowError as exc:
        return form, exc.message(lang)
    return form, None


def check_filters(
    svc: Services, filters: Filters, teams: list[Choice], owners: list[Choice]
) -> Period | None:
    """The page period (None: each widget's own); DashboardFilterError/PeriodError else."""
    period: Period | None = None
    if filters.period or filters.start or filters.end:
        name = filters.period or "custom"
        if name == "custom" and not (filters.start or filters.end):
            raise DashboardFilterError(
                T(
                    "自定义期间需填写开始或结束日期",
                    "a custom period needs a start or an end date",
                )
            )
        period = resolve_period(
            name,
            business_today(svc),
            start=(filters.start or None) if name == "custom" else None,
            end=(filters.end or None) if name == "custom" else None,
        )
    if filters.team and filters.team not in {c.value for c in teams}:
        raise DashboardFilterError(
            T(
                f"你不能查看 {filters.team} 的团队",
                f"you may not look at the team of {filters.team!r}",
            )
        )
    if filters.owner and filters.owner not in {c.value for c in owners}:
        raise DashboardFilterError(
            T(
                f"你不能查看 {filters.owner} 的数据",
                f"you may not look at the figures of {filters.owner!r}",
            )
        )
    return period


# -- evaluating -------------------------------------------------------------------------------


def widget_period(widget: Widget, filters: Filters) -> tuple[str | None, str | None, str | None]:
    """(period, start, end) for the service: the page's when chosen, else the widget's."""
    if filters.period and filters.period != "custom":
        return filters.period, None, None
    if filters.period == "custom" or filters.start or filters.end:
        return "custom", filters.start or None, filters.end or None
    return widget.period, None, None


@dataclass(frozen=True)
class Evaluated:
    """One widget's answer: its KPI result, or why there is none (in the page's language)."""

    widget: Widget
    result: KpiResult | None = None
    error: str | None = None
    statement: Statement | None = None  # a commission widget's


def evaluate(
    svc: Services, board: Dashboard, actor: Actor, filters: Filters, lang: str
) -> list[Evaluated]:
    """Every widget's KPI result, all on one connection (:meth:`KpiService.evaluate_many`).

    A widget whose KPI fails for this viewer (a dimension hidden from them, say)
    carries the reason; the other widgets still show.
    """
    requests = []
    for widget in board.widgets:
        if widget.kpi is None or widget.kind == "commission":
            continue
        period, start, end = widget_period(widget, filters)
        requests.append(
            KpiRequest(
                widget.kpi,
                by=() if widget.kind in SINGLE_KINDS else widget.by,
                period=period,
                start=start,
                end=end,
                filters=filters.service_filters(),
                compare=widget.kind == "number",
            )
        )
    answers = iter(svc.runtime.kpis.evaluate_many(requests, actor, lang=lang))
    out = []
    for widget in board.widgets:
        if widget.kind == "commission":
            out.append(_commission(svc, widget, actor, filters, lang))
            continue
        if widget.kpi is None:
            out.append(Evaluated(widget))
            continue
        answer = next(answers)
        if isinstance(answer, KpiResult):
            out.append(Evaluated(widget, answer))
        elif isinstance(answer, FormflowError):
            out.append(Evaluated(widget, error=answer.message(lang)))
        else:
            raise answer
    return out


def _commission(
    svc: Services, widget: Widget, actor: Actor, filters: Filters, lang: str
) -> Evaluated:
    """The viewer's own commission statement (their plan), for the page's period when it is
    one a statement can cover (a month or quarter by name), else the widget's own."""
    period = filters.period if filters.period in STATEMENT_PERIODS else widget.period
    if period not in STATEMENT_PERIODS:
        period = None  # the plan's current month or quarter
    if actor.name is None:
        return Evaluated(widget, error=_("Only a signed-in user has a commission"))
    try:
        statement = svc.runtime.commissions.statement(actor, actor.name, period, records=False)
    except FormflowError as exc:
        return Evaluated(widget, error=exc.message(lang))
    return Evaluated(widget, statement=statement)


# -- showing ----------------------------------------------------------------------------------


def as_float(value: Decimal | int | None) -> float | None:
    return None if value is None else float(value)


def show(value: Decimal | int | None, fmt: str, currency: str, lang: str) -> str:
    """A KPI figure in the reader's locale (as ``formflow kpi`` shows it); blank shows "—"."""
    return format_number(value, fmt, lang, currency)


def show_percent(value: Decimal | int | None, lang: str) -> str:
    return format_percentage(value, lang)


@dataclass
class Cell:
    text: str
    numeric: bool = False


@dataclass
class TableView:
    headers: list[Cell]
    rows: list[tuple[list[Cell], str | None]]  # cells, drill URL


@dataclass
class WidgetView:
    """What the template draws for one widget."""

    kind: str
    title: str
    width: int
    dom_id: str
    empty: bool
    hidden: list[str] = field(default_factory=list)
    period: str = ""
    error: str = ""
    # number card / gauge
    figure: str = ""
    change: str = ""
    change_dir: str = ""  # up | down | ""
    change_mood: str = ""  # good | bad | "": up is good unless the KPI is better lower
    previous: str = ""
    target: str = ""
    attainment: str = ""
    # chart: option + links + formatted texts for dashboard.js
    chart: dict[str, Any] | None = None
    table: TableView | None = None
    # leaderboard
    ranking: list[dict[str, Any]] = field(default_factory=list)
    commission: dict[str, Any] | None = None
    total_url: str | None = None


def _row_label(row: KpiRow, by: tuple[str, ...]) -> str:
    parts = [row.labels.get(d) or str(row.keys.get(d, "")) for d in by]
    return " · ".join(p for p in parts if p) or BLANK


def _drill_url(base: str, result: KpiResult, index: int) -> str | None:
    """The list page of exactly row ``index``'s records; None when the KPI's filter cannot
    be written as list filters (the list would show other records too)."""
    if index >= len(result.drill) or not result.drill_exact:
        return None
    return with_query(base, result.drill[index])


def _has_target(result: KpiResult) -> bool:
    return any(r.target is not None for r in (*result.rows, result.total))


def _table(result: KpiResult, base: str, kpi: Kpi, currency: str, lang: str) -> TableView:
    fmt = result.format
    labels = [kpi_dimension_label(kpi, d, lang) for d in result.by]
    headers = [Cell(x) for x in labels] + [Cell(result.label, True)]
    targets = _has_target(result)
    if targets:
        headers += [
            Cell(_("Target"), True),
            Cell(_("Attainment"), True),
            Cell(_("Gap"), True),
        ]
    rows: list[tuple[list[Cell], str | None]] = []
    for index, row in enumerate(result.rows):
        cells = [Cell(row.labels.get(d) or str(row.keys.get(d, "")) or BLANK) for d in result.by]
        cells.append(Cell(show(row.value, fmt, currency, lang), True))
        if targets:
            cells += [
                Cell(show(row.target, fmt, currency, lang), True),
                Cell(show_percent(row.attainment, lang), True),
                Cell(show(row.gap, fmt, currency, lang), True),
            ]
        rows.append((cells, _drill_url(base, result, index)))
    if not result.by or result.rows:
        total = result.total
        cells = [Cell(_("Total"))] + [Cell("") for _d in result.by[1:]] if result.by else []
        cells.append(Cell(show(total.value, fmt, currency, lang), True))
        if targets:
            cells += [
                Cell(show(total.target, fmt, currency, lang), True),
                Cell(show_percent(total.attainment, lang), True),
                Cell(show(total.gap, fmt, currency, lang), True),
            ]
        rows.append((cells, None))
    return TableView(headers, rows)


_DIMENSION_LABELS: Mapping[str, str] = {
    "owner": N_("Owner"),
    "team": N_("Team"),
    "day": N_("Day"),
    "week": N_("Week"),
    "month": N_("Month"),
    "quarter": N_("Quarter"),
    "year": N_("Year"),
}


def kpi_dimension_label(kpi: Kpi, dim: str, lang: str) -> str:
    """A column heading for a dimension: the field's label, else the built-in name."""
    entity = services().blueprint.entities.get(kpi.entity)
    if entity is not None and dim in entity.fields:
        return entity.fields[dim].label.get(lang) or dim
    text = _DIMENSION_LABELS.get(dim)
    return _(text) if text is not None else dim


def _series_chart(widget: Widget, result: KpiResult, base: str, currency: str, lang: str) -> Any:
    """bar / line: the first dimension along the axis, a second one as series; targets as a
    dashed line series when the KPI has them."""
    fmt = result.format
    by = result.by
    first, second = (by[0] if by else None), (by[1] if len(by) > 1 else None)
    categories: list[str] = []
    series_names: list[str] = []
    cells: dict[tuple[str, str], tuple[KpiRow, int]] = {}
    for index, row in enumerate(result.rows):
        cat = (row.labels.get(first) or str(row.keys.get(first, ""))) if first else result.label
        name = (row.labels.get(second) or str(row.keys.get(second, ""))) if second else ""
        if cat not in categories:
            categories.append(cat)
        if name not in series_names:
            series_names.append(name)
        cells[(cat, name)] = (row, index)
    links: dict[str, str] = {}
    texts: dict[str, str] = {}
    series: list[dict[str, Any]] = []
    for s, name in enumerate(series_names):
        data: list[float | None] = []
        for c, cat in enumerate(categories):
            found = cells.get((cat, name))
            if found is None:
                data.append(None)
                continue
            row, index = found
            data.append(as_float(row.value))
            texts[f"{s}:{c}"] = show(row.value, fmt, currency, lang)
            url = _drill_url(base, result, index)
            if url:
                links[f"{s}:{c}"] = url
        series.append(
            {
                "type": widget.kind,
                "name": name or result.label,
                "data": data,
                **({"smooth": True} if widget.kind == "line" else {}),
            }
        )
    if _has_target(result) and not second:
        target_name = _("Target")
        s = len(series)
        data = []
        for c, cat in enumerate(categories):
            row = cells[(cat, "")][0]
            data.append(as_float(row.target))
            texts[f"{s}:{c}"] = show(row.target, fmt, currency, lang)
        series.append(
            {
                "type": "line",
                "name": target_name,
                "data": data,
                "lineStyle": {"type": "dashed"},
                "symbol": "circle",
            }
        )
    option = {
        "tooltip": {"trigger": "axis"},
        "legend": {"show": len(series) > 1, "top": 0},
        "grid": {
            "left": 8,
            "right": 16,
            "bottom": 8,
            "top": 32 if len(series) > 1 else 16,
            "containLabel": True,
        },
        "xAxis": {"type": "category", "data": categories},
        "yAxis": {"type": "value"},
        "series": series,
    }
    return option, links, texts


def _items_chart(widget: Widget, result: KpiResult, base: str, currency: str, lang: str) -> Any:
    """pie / funnel: one item per row, in the result's order (a funnel keeps the stages'
    option order: ``sort: none``)."""
    fmt = result.format
    data = []
    links: dict[str, str] = {}
    texts: dict[str, str] = {}
    for index, row in enumerate(result.rows):
        data.append({"name": _row_label(row, result.by), "value": as_float(row.value)})
        texts[f"0:{index}"] = show(row.value, fmt, currency, lang)
        url = _drill_url(base, result, index)
        if url:
            links[f"0:{index}"] = url
    series: dict[str, Any] = {"type": widget.kind, "name": result.label, "data": data}
    if widget.kind == "funnel":
        series.update(
            sort="none",
            left="10%",
            width="80%",
            minSize="8%",
            label={"show": True, "position": "inside"},
        )
    else:
        series.update(radius=["35%", "65%"], center=["50%", "42%"], label={"show": False})
    option = {
        "tooltip": {"trigger": "item"},
        # a pie names its slices in the legend (labels do not fit a narrow widget)
        "legend": {"show": widget.kind == "pie", "bottom": 0, "type": "scroll"},
        "series": [series],
    }
    return option, links, texts


def _gauge_chart(result: KpiResult, lang: str) -> Any:
    attainment = as_float(result.total.attainment)
    top = max(100.0, round((attainment or 0) / 50 + 0.5) * 50)
    text = show_percent(result.total.attainment, lang)
    option = {
        "series": [
            {
                "type": "gauge",
                "name": result.label,
                "min": 0,
                "max": top,
                "progress": {"show": True, "width": 14},
                "axisLine": {"lineStyle": {"width": 14}},
                "axisLabel": {"distance": 20},
                "pointer": {"show": True},
                "detail": {"valueAnimation": False, "fontSize": 22, "offsetCenter": [0, "70%"]},
                "data": [{"value": attainment, "name": _("Attainment")}],
            }
        ]
    }
    return option, {}, {"0:0": text}


def widget_view(svc: Services, index: int, answer: Evaluated, lang: str) -> WidgetView:
    """What the template draws for one widget (see :class:`WidgetView`)."""
    widget, result = answer.widget, answer.result
    bp = svc.blueprint
    currency = bp.currency
    kpi = bp.kpis.get(widget.kpi or "")
    title = widget.label.get(lang) or (kpi.label.get(lang) if kpi else "") or widget.kind
    view = WidgetView(
        kind=widget.kind,
        title=title,
        width=max(1, min(4, widget.width)),
        dom_id=f"ff-widget-{index}",
        empty=True,
    )
    if answer.error:
        view.error = answer.error
        return view
    if answer.statement is not None:
        return _commission_view(view, answer.statement, currency, lang)
    if result is None or kpi is None:
        return view
    name = result.period.name
    view.period = period_label(name) if name in _PERIOD_LABELS else _range_text(result.period, lang)
    view.hidden = [kpi_dimension_label(kpi, d, lang) for d in result.hidden]
    base = url_for("lists.index", entity=kpi.entity)
    fmt = result.format
    total = result.total
    view.figure = show(total.value, fmt, currency, lang)
    view.target = show(total.target, fmt, currency, lang) if total.target is not None else ""
    view.attainment = show_percent(total.attainment, lang) if total.target is not None else ""
    if result.drill_exact:
        view.total_url = with_query(base, result.drill_total)
    if widget.kind == "number":
        view.empty = False
        if result.previous_period is not None:
            view.previous = show(total.previous, fmt, currency, lang)
            change = total.change
            if change is not None:
                view.change = format_percent(-change if change < 0 else change, lang, places=1)
                view.change_dir = "up" if change > 0 else "down" if change < 0 else ""
                if change:
                    good = (change > 0) == (result.better != "lower")
                    view.change_mood = "good" if good else "bad"
            else:
                view.change = BLANK
        return view
    if widget.kind == "gauge":
        view.empty = total.attainment is None
        option, links, texts = _gauge_chart(result, lang)
        view.chart = {"option": option, "links": links, "texts": texts, "kind": "gauge"}
        view.table = _table(result, base, kpi, currency, lang)
        return view
    rows = result.rows
    view.empty = not any(r.value for r in rows)  # nothing, or only blanks and zeros
    if widget.kind == "leaderboard":
        ranked = sorted(
            ((r, i) for i, r in enumerate(rows) if r.value is not None),
            key=lambda pair: pair[0].value or 0,
            reverse=result.better != "lower",  # the best first: the lowest when lower is better
        )[: widget.limit or DEFAULT_LIMIT]
        top = max((as_float(r.value) or 0.0 for r, _i in ranked), default=0.0)
        for place, (row, i) in enumerate(ranked, start=1):
            view.ranking.append(
                {
                    "place": place,
                    "label": _row_label(row, result.by),
                    "value": show(row.value, fmt, currency, lang),
                    "meter": max(0.0, as_float(row.value) or 0.0),
                    "max": top if top > 0 else 1.0,
                    "attainment": show_percent(row.attainment, lang)
                    if row.target is not None
                    else "",
                    "url": _drill_url(base, result, i),
                }
            )
        view.empty = not view.ranking
        return view
    view.table = _table(result, base, kpi, currency, lang)
    if widget.kind == "table":
        return view
    if widget.kind in ("bar", "line"):
        option, links, texts = _series_chart(widget, result, base, currency, lang)
    else:
        option, links, texts = _items_chart(widget, result, base, currency, lang)
    view.chart = {"option": option, "links": links, "texts": texts, "kind": widget.kind}
    return view


def _commission_view(view: WidgetView, st: Statement, currency: str, lang: str) -> WidgetView:
    """A commission card: the payout, what it is paid on, the tiers, a link to the statement."""
    name = st.period.name
    view.title = view.title if view.title != "commission" else _("My commission")
    view.period = period_label(name) if name in _PERIOD_LABELS else _range_text(st.period, lang)
    view.empty = False
    view.figure = format_money(st.total, currency, lang)
    view.previous = ""
    view.commission = {
        "plan": st.plan_label.get(lang) or st.plan,
        "base": st.kpi_label.get(lang) or st.kpi,
        "value": format_money(st.value, currency, lang),
        "target": format_money(st.target, currency, lang) if st.target is not None else "",
        "attainment": show_percent(st.attainment, lang),
        "capped": st.capped,
        "lines": [
            {
                "rate": format_percent(line.rate, lang),
                "base": format_money(line.base, currency, lang),
                "payout": format_money(line.payout, currency, lang),
            }
            for line in st.lines
            if line.base
        ],
    }
    start = st.period.start
    query = (
        {"period": f"{start.year:04d}-{start.month:02d}"}
        if start and st.period.unit == "month"
        else {}
    )
    view.total_url = with_query(url_for("incentives.commissions"), query)
    return view


def _range_text(period: Period, lang: str) -> str:
    if period.start is None and period.end is None:
        return period_label("all")
    first = format_date(period.start, lang) if period.start else ""
    last = format_date(period.end - timedelta(days=1), lang) if period.end else ""
    return f"{first} – {last}"


__all__ = [
    "CHART_KINDS",
    "DashboardFilterError",
    "Evaluated",
    "FilterForm",
    "Filters",
    "PeriodError",
    "WidgetView",
    "dashboard_for",
    "evaluate",
    "filters_from",
    "may_see",
    "read_filters",
    "visible",
    "widget_view",
    "with_query",
]
