"""The OpenAPI description of the dashboard endpoints (see :mod:`.dashboards`)."""

from __future__ import annotations

from typing import Any

from engine.kpis.periods import PERIOD_NAMES

VERSION_PREFIX = "/api/v1"
JSON = "application/json"
DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


_FIGURE = {
    "type": ["string", "integer", "null"],
    "pattern": DECIMAL,
    "description": "an integer or a decimal string; null when blank (a ratio over nothing)",
}

_PERIOD = {
    "type": ["object", "null"],
    "description": "first and last day (inclusive), business-local; null: unbounded",
    "properties": {
        "name": {"type": "string"},
        "start": {"type": ["string", "null"], "format": "date"},
        "end": {"type": ["string", "null"], "format": "date"},
    },
}

_ROW_PROPERTIES: dict[str, Any] = {
    "keys": {"type": "object", "description": "dimension -> raw value"},
    "labels": {"type": "object", "description": "dimension -> text in the request language"},
    "value": _FIGURE,
    "target": _FIGURE,
    "attainment": {**_FIGURE, "description": "percent of the target (30 means 30%)"},
    "gap": {**_FIGURE, "description": "target - value (lower is better: value - target)"},
    "previous": {**_FIGURE, "description": "the value over the previous period"},
    "change": {**_FIGURE, "description": "percent change vs the previous period"},
}

SCHEMAS: dict[str, Any] = {
    "DashboardKpiRow": {
        "type": "object",
        "properties": {
            **_ROW_PROPERTIES,
            "drill": {
                "type": "object",
                "description": "the list query (parameter -> value) that shows this row's records",
            },
            "list_url": {"type": ["string", "null"], "description": "the list page of them"},
        },
    },
    "DashboardKpiResult": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "label": {"type": "string"},
            "format": {"type": "string", "enum": ["number", "money", "percent"]},
            "better": {
                "type": "string",
                "enum": ["higher", "lower"],
                "description": "which way the KPI improves",
            },
            "by": {"type": "array", "items": {"type": "string"}},
            "period": _PERIOD,
            "previous_period": _PERIOD,
            "hidden": {
                "type": "array",
                "items": {"type": "string"},
                "description": "dimensions asked for but hidden from the caller",
            },
            "total": _ref("DashboardKpiRow"),
            "drill_exact": {
                "type": "boolean",
                "description": "whether the drill queries show exactly the counted records",
            },
            "rows": {"type": "array", "items": _ref("DashboardKpiRow")},
        },
        "required": ["name", "format", "by", "period", "total", "rows"],
    },
    "Dashboard": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "label": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "filters": {"type": "array", "items": {"type": "string"}},
            "url": {"type": "string"},
            "page_url": {"type": "string"},
        },
        "required": ["name", "label", "url"],
    },
    "DashboardWidget": {
        "type": "object",
        "properties": {
            "kind": {
                "type": "string",
                "enum": [
                    "number",
                    "bar",
                    "line",
                    "pie",
                    "funnel",
                    "gauge",
                    "table",
                    "leaderboard",
                    "commission",
                ],
            },
            "kpi": {"type": ["string", "null"]},
            "label": {"type": "string"},
            "by": {"type": "array", "items": {"type": "string"}},
            "period": {"type": ["string", "null"]},
            "limit": {"type": ["integer", "null"]},
            "width": {"type": "integer", "minimum": 1, "maximum": 4},
            "result": {"oneOf": [_ref("DashboardKpiResult"), {"type": "null"}]},
            "error": {"type": ["string", "null"], "description": "why there is no result"},
            "commission": {
                "type": "object",
                "description": "a commission widget: the caller's statement "
                "(as GET /api/v1/commissions/statement)",
            },
        },
    },
}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def paths(errors: Any) -> dict[str, Any]:
    """``GET /dashboards`` and ``GET /dashboards/{name}``; ``errors(*codes)`` gives the
    error responses as the rest of the document writes them."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    filters = [
        _query(
            "period",
            "a named period, or custom with start/end; default: each widget's own",
            type="string",
            enum=[*PERIOD_NAMES, "custom"],
        ),
        _query("start", "custom period: first day (YYYY-MM-DD)", type="string", format="date"),
        _query(
            "end", "custom period: last day, inclusive (YYYY-MM-DD)", type="string", format="date"
        ),
        _query("team", "a manager's user name: their team's records"),
        _query("owner", "a user name: their records"),
    ]
    return {
        f"{VERSION_PREFIX}/dashboards": {
            "parameters": [_ref("lang", "parameters")],
            "get": {
                "operationId": "dashboards",
                "summary": "the dashboards the caller may open",
                "tags": ["dashboards"],
                "responses": {
                    "200": {
                        "description": "the dashboards",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "dashboards": {"type": "array", "items": _ref("Dashboard")}
                                    },
                                }
                            }
                        },
                    },
                    **errors(401),
                },
            },
        },
        f"{VERSION_PREFIX}/dashboards/{{name}}": {
            "parameters": [name, *filters, _ref("lang", "parameters")],
            "get": {
                "operationId": "dashboard",
                "summary": "a dashboard: every widget with its KPI result, under the filters",
                "tags": ["dashboards"],
                "responses": {
                    "200": {
                        "description": "the widgets and their figures",
                        "content": {
                            JSON: {
                                "schema": {
                                    "allOf": [
                                        _ref("Dashboard"),
                                        {
                                            "type": "object",
                                            "properties": {
                                                "applied": {"type": "object"},
                                                "widgets": {
                                                    "type": "array",
                                                    "items": _ref("DashboardWidget"),
                                                },
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    **errors(400, 401, 403, 404),
                },
            },
        },
    }
