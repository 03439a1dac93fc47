"""Dashboards through the API (docs/api.md).

* ``GET /api/v1/dashboards``: the dashboards the caller may open (name, label, widgets).
* ``GET /api/v1/dashboards/<name>``: every widget with its KPI result, under the
  same filters as the page (``period`` — a named period or ``custom`` —, ``start``
  and ``end`` as YYYY-MM-DD, ``team``, ``owner``; ``lang``). A dashboard not for
  the caller's roles is a 403, an unknown one a 404, a bad filter a 400 with the
  reason. Figures are decimal strings (exact), like money fields in records.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from werkzeug.wrappers import Response

from engine.kpis.periods import Period
from engine.kpis.result import KpiResult, KpiRow
from engine.model import Dashboard, Widget
from engine.web import dashboards
from engine.web.api.base import api_actor, bp, request_lang
from engine.web.api.errors import json_response
from engine.web.api.routes import METHODS, V1, _dispatch
from engine.web.services import services


def period_json(period: Period | None) -> dict[str, Any] | None:
    """``start``/``end`` as a half-open range ``[start, end)`` of business-local dates."""
    if period is None:
        return None
    return {"name": period.name, "start": period.start, "end": period.end}


def row_json(row: KpiRow) -> dict[str, Any]:
    return {
        "keys": row.keys,
        "labels": row.labels,
        "value": row.value,
        "target": row.target,
        "attainment": row.attainment,
        "gap": row.gap,
        "previous": row.previous,
        "change": row.change,
    }


def result_json(result: KpiResult, entity: str) -> dict[str, Any]:
    """A KPI result; each row's ``list_url`` is the list page of exactly its records."""
    base = url_for("lists.index", entity=entity)
    rows = []
    for index, row in enumerate(result.rows):
        item = row_json(row)
        drill = result.drill[index] if index < len(result.drill) else None
        exact = drill is not None and result.drill_exact
        item["filter"] = drill
        item["list_url"] = (
            dashboards.with_query(base, drill) if exact and drill is not None else None
        )
        rows.append(item)
    return {
        "name": result.name,
        "label": result.label,
        "format": result.format,
        "by": list(result.by),
        "period": period_json(result.period),
        "previous_period": period_json(result.previous_period),
        "hidden": list(result.hidden),
        "total": {
            **row_json(result.total),
            "filter": result.drill_total,
            "list_url": dashboards.with_query(base, result.drill_total)
            if result.drill_exact
            else None,
        },
        "drill_exact": result.drill_exact,
        "rows": rows,
    }


def _widget_json(widget: Widget, lang: str) -> dict[str, Any]:
    kpi = services().blueprint.kpis.get(widget.kpi or "")
    return {
        "kind": widget.kind,
        "kpi": widget.kpi,
        "label": widget.label.get(lang) or (kpi.label.get(lang) if kpi else "") or widget.kind,
        "by": list(widget.by),
        "period": widget.period,
        "limit": widget.limit,
        "width": widget.width,
    }


def _board_json(board: Dashboard, lang: str) -> dict[str, Any]:
    return {
        "name": board.name,
        "label": board.label.get(lang) or board.name,
        "roles": list(board.roles),
        "filters": list(board.filters),
        "url": url_for("api.dashboard", name=board.name),
        "page_url": url_for("dashboards.show", name=board.name),
    }


@bp.route(f"{V1}/dashboards", methods=METHODS)
def dashboard_index() -> Response:
    def get() -> Response:
        lang = request_lang()
        boards = dashboards.visible(services().blueprint, api_actor())
        return json_response({"dashboards": [_board_json(b, lang) for b in boards]})

    return _dispatch({"GET": get})


@bp.route(f"{V1}/dashboards/<name>", methods=METHODS)
def dashboard(name: str) -> Response:
    def get() -> Response:
        svc = services()
        lang = request_lang()
        actor = api_actor()
        board = dashboards.dashboard_for(svc.blueprint, name, actor)
        filters = dashboards.filters_from(board, request.args)
        dashboards.check_filters(
            svc,
            filters,
            dashboards.team_choices(svc, actor) if filters.team else [],
            dashboards.owner_choices(svc, actor, board) if filters.owner else [],
        )
        widgets = []
        for answer in dashboards.evaluate(svc, board, actor, filters, lang):
            item = _widget_json(answer.widget, lang)
            kpi = svc.blueprint.kpis.get(answer.widget.kpi or "")
            result = answer.result
            item["result"] = result_json(result, kpi.entity) if result and kpi else None
            item["error"] = answer.error
            widgets.append(item)
        body = _board_json(board, lang)
        body["applied"] = filters.as_args()
        body["widgets"] = widgets
        return json_response(body)

    return _dispatch({"GET": get})
