"""The OpenAPI entries of the forecast and commission endpoints (engine.web.api.incentives)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.kpis.forecast import FORECAST_DIMENSIONS
from engine.kpis.periods import PERIOD_NAMES
from engine.model import Blueprint

JSON = "application/json"
_MONEY = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_MONEY_OR_NULL = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_LANG = {"$ref": "#/components/parameters/lang"}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


_FIGURES = {
    "deals": {"type": "integer"},
    "amount": _MONEY,
    "weighted": _MONEY,
    "historical": _MONEY,
}
FORECAST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "forecast": {"type": "string"},
        "label": {"type": "string"},
        "period": {"type": "object"},
        "by": {"type": "array", "items": {"type": "string"}},
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "keys": {"type": "object"},
                    "labels": {"type": "object"},
                    **_FIGURES,
                },
            },
        },
        "categories": {"type": "array", "items": {"type": "object", "properties": _FIGURES}},
        "total": {"type": "object", "properties": _FIGURES},
        "history": {"type": "object"},
    },
    "required": ["forecast", "rows", "total"],
}
SNAPSHOT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "forecast": {"type": "string"},
        "taken_at": {"type": "string", "format": "date-time"},
        "user": {"type": ["string", "null"]},
        "period": {"type": "object"},
        "blueprint_digest": {"type": "string"},
        "figures": {"type": "object"},
        "note": {"type": ["string", "null"]},
    },
    "required": ["id", "forecast", "taken_at", "blueprint_digest", "figures"],
}
STATEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "plan": {"type": "string"},
        "rep": {"type": "string"},
        "period": {"type": "object"},
        "kpi": {"type": "string"},
        "value": _MONEY,
        "target": _MONEY_OR_NULL,
        "attainment": {
            "type": ["string", "null"],
            "description": "percent; null without a target (or a target of 0)",
        },
        "mode": {"type": "string", "enum": ["marginal", "flat"]},
        "lines": {"type": "array", "items": {"type": "object"}},
        "subtotal": _MONEY,
        "cap": _MONEY_OR_NULL,
        "capped": {"type": "boolean"},
        "total": _MONEY,
        "records": {"type": "array", "items": {"type": "object"}},
        "records_total": {"type": "integer"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["plan", "rep", "value", "lines", "total"],
}


def incentive_paths(
    blueprint: Blueprint, prefix: str, errors: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Paths for ``/forecast`` (when the blueprint has forecasts) and ``/commissions``."""
    paths: dict[str, Any] = {}
    if blueprint.forecasts:
        names = list(blueprint.forecasts)
        name = _query(
            "name", "which forecast (default: the first)", {"type": "string", "enum": names}
        )
        paths[f"{prefix}/forecast"] = {
            "get": {
                "operationId": "forecast",
                "summary": "the sales forecast in the caller's scope (docs/forecasts.md)",
                "tags": ["forecast"],
                "parameters": [
                    name,
                    _query(
                        "by",
                        f"comma-separated: {', '.join(FORECAST_DIMENSIONS)}",
                        {"type": "string", "default": "month,category"},
                    ),
                    _query(
                        "period",
                        "close-date period",
                        {"type": "string", "enum": [*PERIOD_NAMES, "custom"]},
                    ),
                    _query("start", "custom period start", {"type": "string", "format": "date"}),
                    _query(
                        "end", "custom period end (inclusive)", {"type": "string", "format": "date"}
                    ),
                    _query(
                        "compare_to",
                        "a snapshot id or latest: answer the comparison instead",
                        {"type": "string"},
                    ),
                    _LANG,
                ],
                "responses": {
                    **_ok("the forecast, or the comparison with a snapshot", {"type": "object"}),
                    **errors(400, 401, 403, 404),
                },
            }
        }
        paths[f"{prefix}/forecast/snapshots"] = {
            "get": {
                "operationId": "forecast_snapshots",
                "summary": "the snapshots the caller may see, newest first",
                "tags": ["forecast"],
                "parameters": [name, _LANG],
                "responses": {
                    **_ok(
                        "snapshots",
                        {
                            "type": "object",
                            "properties": {"items": {"type": "array", "items": SNAPSHOT_SCHEMA}},
                        },
                    ),
                    **errors(401, 404),
                },
            },
            "post": {
                "operationId": "take_forecast_snapshot",
                "summary": "store the forecast as the caller sees it now",
                "tags": ["forecast"],
                "parameters": [_LANG],
                "requestBody": {
                    "required": False,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "period": {"type": "string"},
                                    "note": {"type": "string", "maxLength": 500},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    **_ok("the snapshot", SNAPSHOT_SCHEMA, "201"),
                    **errors(400, 401, 403, 404),
                },
            },
        }
    if blueprint.commissions:
        paths[f"{prefix}/commissions/statement"] = {
            "get": {
                "operationId": "commission_statement",
                "summary": "a rep's commission statement for a period (own or team; else 403)",
                "tags": ["commissions"],
                "parameters": [
                    _query("rep", "user name (default: the caller)", {"type": "string"}),
                    _query(
                        "period",
                        "this_month, last_month, this_quarter, last_quarter, YYYY-MM or YYYY-Qn",
                        {"type": "string"},
                    ),
                    _query(
                        "plan",
                        "which plan (default: the rep's)",
                        {"type": "string", "enum": list(blueprint.commissions)},
                    ),
                    _LANG,
                ],
                "responses": {
                    **_ok("the statement", STATEMENT_SCHEMA),
                    **errors(400, 401, 403, 404),
                },
            }
        }
        paths[f"{prefix}/commissions/plans"] = {
            "get": {
                "operationId": "commission_plans",
                "summary": "the commission plans with their tiers and caps",
                "tags": ["commissions"],
                "parameters": [_LANG],
                "responses": {
                    **_ok(
                        "plans",
                        {
                            "type": "object",
                            "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                        },
                    ),
                    **errors(401),
                },
            }
        }
    return paths
