"""KPIs in the JSON API (docs/api.md "KPIs", docs/kpis.md).

* ``GET /api/v1/kpis``: the KPIs the caller may see (they may read some of the
  KPI's entity): name, label, description, entity, format, date field, the
  dimensions the blueprint lists, and the target's kind.
* ``GET /api/v1/kpis/<name>?by=owner,month&period=this_quarter&from=&to=&compare=1
  &team=&owner=``: the KPI over the records the caller may read, as the CLI's
  ``--json`` prints it (decimals as strings, dates ISO 8601, each row with its
  list-page ``drill`` filters). 400 for a bad period, an impossible date, an
  unknown dimension, filter or parameter; 403 for a dimension hidden from the
  caller or a KPI over an entity they cannot read; 404 for an unknown KPI.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from werkzeug.wrappers import Response

from engine.i18n import T
from engine.kpis.formatting import result_json
from engine.model import Kpi
from engine.web.api.base import api_actor, bp, request_lang
from engine.web.api.errors import ApiError, json_response
from engine.web.api.routes import METHODS, V1, _dispatch
from engine.web.services import services

#: The query parameters of ``GET /kpis/<name>``.
KPI_PARAMS = ("by", "period", "from", "to", "compare", "team", "owner", "lang")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def kpi_summary(kpi: Kpi, lang: str) -> dict[str, Any]:
    target = kpi.target
    kind = None if target is None else ("entity" if target.entity else "constant")
    return {
        "name": kpi.name,
        "label": kpi.label.get(lang),
        "description": kpi.description.get(lang) or None,
        "entity": kpi.entity,
        "format": kpi.format,
        "better": kpi.better,
        "date": kpi.date,
        "by": list(kpi.by),
        "target": kind,
        "url": url_for("api.kpi", name=kpi.name),
    }


@bp.route(f"{V1}/kpis", methods=METHODS)
def kpis() -> Response:
    def get() -> Response:
        lang = request_lang()
        found = services().runtime.kpis.visible(api_actor())
        return json_response({"data": [kpi_summary(k, lang) for k in found]})

    return _dispatch({"GET": get})


@bp.route(f"{V1}/kpis/<name>", methods=METHODS)
def kpi(name: str) -> Response:
    def get() -> Response:
        args = request.args
        unknown = sorted(set(args) - set(KPI_PARAMS))
        if unknown:
            raise ApiError(
                400,
                T(
                    f"未知的参数 '{unknown[0]}'；可用：{', '.join(KPI_PARAMS)}",
                    f"unknown parameter '{unknown[0]}'; use: {', '.join(KPI_PARAMS)}",
                ),
            )
        compare = (args.get("compare") or "").strip().lower()
        if compare not in _TRUE + _FALSE:
            raise ApiError(400, T("compare 应为 1 或 0", "compare must be 1 or 0 (true or false)"))
        filters = {k: args[k] for k in ("team", "owner") if args.get(k)}
        result = services().runtime.kpis.evaluate(
            name,
            api_actor(),
            by=args.get("by") or None,
            period=args.get("period") or None,
            start=args.get("from") or None,
            end=args.get("to") or None,
            filters=filters,
            compare=compare in _TRUE,
            lang=request_lang(),
        )
        return json_response(result_json(result))

    return _dispatch({"GET": get})
