"""Dashboard pages: ``/d/<name>``, a grid of KPI widgets with the page's filters.

All the widgets' KPIs are evaluated on one connection; the charts are drawn by
the static ``dashboard.js`` from each widget's ECharts option, embedded as JSON
(``<script type="application/json">``, nothing executable inline, CSP-friendly).
A bad filter (an impossible date, an unknown period, a team the viewer may not
see) is a 400 page with the reason and the form to correct it.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for

from engine.web import dashboards
from engine.web.auth import current_actor
from engine.web.i18n import current_lang
from engine.web.services import services

bp = Blueprint("dashboards", __name__)


@bp.route("/d/<name>")
def show(name: str) -> tuple[str, int]:
    svc = services()
    actor = current_actor()
    lang = current_lang()
    board = dashboards.dashboard_for(svc.blueprint, name, actor)
    form, error = dashboards.read_filters(svc, board, actor, request.args, lang)
    views = []
    if error is None:
        answers = dashboards.evaluate(svc, board, actor, form.filters, lang)
        views = [dashboards.widget_view(svc, i, a, lang) for i, a in enumerate(answers)]
    html = render_template(
        "dashboard.html",
        board=board,
        title=board.label.get(lang) or board.name,
        form=form,
        error=error,
        widgets=views,
        clear_url=url_for("dashboards.show", name=board.name),
        echarts_js=url_for("static", filename="vendor/echarts/echarts.min.js"),
        dashboard_js=url_for("static", filename="dashboard.js"),
    )
    return html, 400 if error else 200
