"""The forecast page and the commission statement page.

``GET /forecast`` shows the forecast the signed-in user may see (their scope):
months × categories, the breakdown by owner, the historical win rates and the
snapshot history; ``?compare_to=<id>`` adds the comparison with a snapshot and
the deals that moved. ``POST /forecast/snapshot`` takes a snapshot as the user.

``GET /commissions`` shows the user's own statement for this period;
``?rep=`` picks a rep of the user's team (a manager), ``?period=`` a period
(``YYYY-MM``, ``last_month`` ...). Another team's rep is a 403.

Both pages are linked from the menu for the users who can use them
(:func:`incentive_links`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from engine.errors import FormflowError, NotFound, PermissionDenied
from engine.kpis.forecast import CATEGORY_LABELS
from engine.kpis.periods import PERIOD_NAMES, resolve_period
from engine.locales import format_money, format_percent
from engine.model import FORECAST_CATEGORIES
from engine.web.auth import current_actor
from engine.web.formatting import show_datetime
from engine.web.i18n import _, current_lang
from engine.web.services import services

bp = Blueprint("incentives", __name__)


def _money(value: Decimal | None, lang: str) -> str:
    if value is None:
        return "–"
    return format_money(value, services().blueprint.currency, lang)


def _pct(value: Decimal | None, lang: str) -> str:
    return "–" if value is None else format_percent(value, lang)


@bp.route("/forecast")
def forecast() -> str:
    svc = services()
    rt = svc.runtime
    lang = current_lang()
    actor = current_actor()
    if not svc.blueprint.forecasts:
        abort(404)
    fc = rt.forecasts.definition(request.args.get("name") or None)
    if not rt.forecasts.may_view(actor, fc):
        abort(403)
    period_name = request.args.get("period") or "all"
    error = None
    try:
        period = resolve_period(period_name, rt.forecasts.today())
    except FormflowError as exc:
        error = exc.message(lang)
        period_name, period = "all", resolve_period("all", rt.forecasts.today())
    result = rt.forecasts.evaluate(actor, name=fc.name, period=period, lang=lang)
    months: dict[Any, dict[str, Any]] = {}
    for group in result.breakdown(("month", "category")):
        row = months.setdefault(group.keys["month"], {"label": group.labels["month"], "cells": {}})
        row["cells"][group.keys["category"]] = group.figures
    categories = [c for c in FORECAST_CATEGORIES]
    comparison = None
    compare_to = request.args.get("compare_to")
    if compare_to:
        try:
            comparison = rt.snapshots.compare(actor, compare_to, name=fc.name, lang=lang)
        except (NotFound, PermissionDenied) as exc:
            error = exc.message(lang)
    return render_template(
        "forecast.html",
        forecast=fc,
        label=fc.label.get(lang) or fc.name,
        result=result,
        period_name=period_name,
        periods=PERIOD_NAMES,
        categories=categories,
        category_labels={c: CATEGORY_LABELS[c].get(lang) for c in categories},
        months=list(months.values()),
        by_category={g.keys["category"]: g.figures for g in result.breakdown(("category",))},
        owners=result.breakdown(("owner",)),
        total=result.total(),
        snapshots=rt.snapshots.history(actor, name=fc.name, limit=20),
        comparison=comparison,
        error=error,
        money=lambda v: _money(v, lang),
        pct=lambda v: _pct(v, lang),
        when=lambda v: show_datetime(v, lang),
        deal_url=lambda deal_id: url_for("records.detail", entity=fc.entity, record_id=deal_id),
    )


@bp.route("/forecast/snapshot", methods=["POST"])
def take_snapshot() -> Response:
    rt = services().runtime
    actor = current_actor()
    fc = rt.forecasts.definition(request.form.get("name") or None)
    if not rt.forecasts.may_view(actor, fc):
        abort(403)
    period_name = request.form.get("period") or "all"
    try:
        period = resolve_period(period_name, rt.forecasts.today())
    except FormflowError:
        abort(400)
    note = (request.form.get("note") or "").strip()[:500] or None
    snap = rt.snapshots.take(actor, name=fc.name, period=period, note=note)
    return redirect(url_for("incentives.forecast", period=period_name, compare_to=snap.id))


@bp.route("/commissions")
def commissions() -> str:
    svc = services()
    rt = svc.runtime
    lang = current_lang()
    actor = current_actor()
    if not svc.blueprint.commissions:
        abort(404)
    reps = rt.commissions.reps(actor)
    if not reps:
        abort(403)
    rep = request.args.get("rep") or (
        actor.name if any(u.name == actor.name for u in reps) else reps[0].name
    )
    period = request.args.get("period") or None
    error = None
    statement = None
    try:
        statement = rt.commissions.statement(actor, rep or "", period)
    except PermissionDenied:
        abort(403)
    except FormflowError as exc:
        error = exc.message(lang)
    return render_template(
        "commissions.html",
        statement=statement,
        reps=reps,
        rep=rep,
        period=period or "",
        error=error,
        money=lambda v: _money(v, lang),
        pct=lambda v: _pct(v, lang),
        record_url=lambda entity, record_id: url_for(
            "records.detail", entity=entity, record_id=record_id
        ),
    )


def incentive_links() -> list[dict[str, str]]:
    """Menu links to the forecast and commission pages, for those who can use them."""
    cached = g.get("ff_incentive_links")
    if isinstance(cached, list):
        return cached
    links: list[dict[str, str]] = []
    if current_user.is_authenticated:
        rt = services().runtime
        actor = current_actor()
        bp_ = rt.blueprint
        if bp_.forecasts and rt.forecasts.may_view(actor, next(iter(bp_.forecasts.values()))):
            links.append({"url": url_for("incentives.forecast"), "label": _("Forecast")})
        if bp_.commissions and rt.commissions.reps(actor):
            links.append({"url": url_for("incentives.commissions"), "label": _("Commissions")})
    g.ff_incentive_links = links
    return links


@bp.app_context_processor
def _incentive_globals() -> dict[str, Any]:
    return {"incentive_links": incentive_links}
