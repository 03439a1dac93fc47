"""Forecasts and commissions through the API (docs/forecasts.md, docs/commissions.md).

* ``GET /api/v1/forecast?name=&by=month,category&period=&start=&end=``: the
  forecast as the caller sees it (their read scope), with the historical rates.
  ``compare_to=<snapshot id>|latest`` answers the comparison with that snapshot
  instead (the change per category and the deals behind it).
* ``GET /api/v1/forecast/snapshots?name=``: the snapshots the caller may see;
  ``POST`` (JSON ``{name, period, note}``) takes one as the caller.
* ``GET /api/v1/commissions/statement?rep=&period=&plan=``: a statement; a rep
  reads their own, a manager their team's, others get 403. ``rep`` defaults to
  the caller.
* ``GET /api/v1/commissions/plans``: the plans, their tiers and caps.
"""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from engine.i18n import T
from engine.kpis.commissions import plans_json
from engine.kpis.forecast import FORECAST_DIMENSIONS
from engine.kpis.periods import resolve_period
from engine.web.api.base import api_actor, bp, request_lang
from engine.web.api.errors import ApiError, json_response
from engine.web.api.routes import METHODS, V1, _dispatch
from engine.web.services import services


def _by() -> tuple[str, ...]:
    raw = request.args.get("by") or "month,category"
    dims = tuple(d.strip() for d in raw.split(",") if d.strip())
    bad = [d for d in dims if d not in FORECAST_DIMENSIONS]
    if bad or not dims:
        known = ", ".join(FORECAST_DIMENSIONS)
        raise ApiError(
            400,
            T(f"by 只能是：{known}", f"by must be among: {known}"),
        )
    return dims


@bp.route(f"{V1}/forecast", methods=METHODS)
def forecast() -> Response:
    def get() -> Response:
        rt = services().runtime
        lang = request_lang()
        actor = api_actor()
        name = request.args.get("name") or None
        compare_to = request.args.get("compare_to")
        if compare_to:
            return json_response(
                rt.snapshots.compare(actor, compare_to, name=name, lang=lang).as_json()
            )
        period = resolve_period(
            request.args.get("period") or None,
            rt.forecasts.today(),
            start=request.args.get("start") or None,
            end=request.args.get("end") or None,
        )
        result = rt.forecasts.evaluate(actor, name=name, period=period, lang=lang)
        return json_response(result.as_json(_by()))

    return _dispatch({"GET": get})


@bp.route(f"{V1}/forecast/snapshots", methods=METHODS)
def forecast_snapshots() -> Response:
    def get() -> Response:
        rt = services().runtime
        snaps = rt.snapshots.history(api_actor(), name=request.args.get("name") or None)
        return json_response({"items": [s.as_json() for s in snaps]})

    def post() -> Response:
        rt = services().runtime
        body = request.get_json(silent=True)
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, T("请求体应为 JSON 对象", "the body must be a JSON object"))
        data = body or {}
        period = resolve_period(data.get("period") or None, rt.forecasts.today())
        note = data.get("note")
        snap = rt.snapshots.take(
            api_actor(),
            name=data.get("name") or None,
            period=period,
            note=str(note)[:500] if note else None,
        )
        return json_response(snap.as_json(), 201)

    return _dispatch({"GET": get, "POST": post})


@bp.route(f"{V1}/commissions/statement", methods=METHODS)
def commission_statement() -> Response:
    def get() -> Response:
        rt = services().runtime
        actor = api_actor()
        rep = request.args.get("rep") or actor.name or ""
        statement = rt.commissions.statement(
            actor,
            rep,
            request.args.get("period") or None,
            plan=request.args.get("plan") or None,
        )
        return json_response(statement.as_json(request_lang()))

    return _dispatch({"GET": get})


@bp.route(f"{V1}/commissions/plans", methods=METHODS)
def commission_plans() -> Response:
    def get() -> Response:
        rt = services().runtime
        return json_response({"items": plans_json(rt.blueprint.commissions, request_lang())})

    return _dispatch({"GET": get})
