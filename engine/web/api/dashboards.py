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

from engine.kpis.formatting import result_json as kpi_json
from engine.kpis.result import KpiResult
from engine.model import Dashboard, Widget
from engine.web import dashboards
from engine.web.api.base import api_actor, bp, request_lang
from engine.web.api.errors import json_response
from engine.web.api.routes import METHODS, V1, _dispatch
from engine.web.services import services


def result_json(result: KpiResult, entity: str) -> dict[str, Any]:
    """A KPI result as ``GET /api/v1/kpis/<name>`` writes it, plus each row's ``list_url``:
    the list page of exactly its records (None when the KPI's filter cannot be written
    as list filters, ``drill_exact`` false)."""
    body = kpi_json(result)
    base = url_for("lists.index", entity=entity)
    for row in [*body["rows"], body["total"]]:
        exact = result.drill_exact
        row["list_url"] = dashboards.with_query(base, row["drill"]) if exact else None
    body["hidden"] = list(result.hidden)
    return body


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
            if answer.statement is not None:
                item["commission"] = answer.statement.as_json(lang)
            widgets.append(item)
        body = _board_json(board, lang)
        body["applied"] = filters.as_args()
        body["widgets"] = widgets
        return json_response(body)

    return _dispatch({"GET": get})
