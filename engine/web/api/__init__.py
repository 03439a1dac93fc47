"""The JSON API under ``/api/v1``: records of every entity, by bearer token.

Modules: :mod:`.base` (the blueprint, the caller, the language), :mod:`.auth`
(bearer tokens only), :mod:`.errors` (JSON errors), :mod:`.encoding` (records as
JSON, bodies from JSON), :mod:`.routes` (the endpoints), :mod:`.flows` (approval flows and
tasks), :mod:`.imports` (file imports), :mod:`.kpis` (KPIs), :mod:`.dashboards`
(dashboards and their KPIs), :mod:`.openapi` (the OpenAPI 3.1 document).
Reference for clients: docs/api.md.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from engine.web.api import auth, errors
from engine.web.api import dashboards as _dashboards  # noqa: F401 - the dashboard endpoints
from engine.web.api import flows as _flows  # noqa: F401 - the approval-flow endpoints
from engine.web.api import imports as _imports  # noqa: F401 - the import endpoints
from engine.web.api import incentives as _incentives  # noqa: F401 - forecast and commissions
from engine.web.api import kpis as _kpis  # noqa: F401 - the KPI endpoints
from engine.web.api import routes as _routes  # noqa: F401 - defines the endpoints
from engine.web.api.base import bp

__all__ = ["bp", "init_app"]


def init_app(app: Flask, csrf: CSRFProtect) -> None:
    """Register the API on ``app``: exempt from CSRF, authenticated by token only."""
    app.register_blueprint(bp)
    csrf.exempt(bp)
    auth.init_app(app)


errors.register(bp)
