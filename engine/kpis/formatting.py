"""KPI numbers as text (CLI table, dashboards) and a KPI result as JSON (CLI, API).

JSON follows the API's conventions (docs/api.md): decimals as strings, so no
precision is lost in a client's floating point; integers as numbers; blanks as
null; dates ISO 8601. A period is ``{"name", "start", "end"}`` with ``end`` the
last day included (as ``?from=&to=`` take it); an unbounded side is null.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from engine.kpis.periods import Period
from engine.kpis.result import KpiResult, KpiRow, Number
from engine.locales import format_decimal, format_money, format_percent

__all__ = ["format_change", "format_number", "format_percentage", "result_json"]

BLANK = "—"


def format_number(value: Number, fmt: str, lang: str, currency: str) -> str:
    """A KPI value as its ``format`` shows it: money, percent (30 means 30%) or number."""
    if value is None:
        return BLANK
    if fmt == "money":
        return format_money(value, currency, lang)
    if fmt == "percent":
        return format_percent(value, lang, 1)
    if isinstance(value, int):
        return format_decimal(value, lang)
    return format_decimal(Decimal(value).quantize(Decimal("0.01")), lang)


def format_percentage(value: Number, lang: str) -> str:
    """Attainment: ``87.5%``."""
    return BLANK if value is None else format_percent(value, lang, 1)


def format_change(value: Number, lang: str) -> str:
    """A change in percent with its sign: ``+12.5%``, ``-3.0%``."""
    if value is None:
        return BLANK
    text = format_percent(abs(Decimal(value)), lang, 1)
    return ("-" if value < 0 else "+") + text


def _json_number(value: Number) -> Any:
    if value is None or isinstance(value, int):
        return value
    return format(value, "f")


def _json_key(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def period_json(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    last = period.end - timedelta(days=1) if period.end is not None else None
    return {
        "name": period.name,
        "start": period.start.isoformat() if period.start else None,
        "end": last.isoformat() if last else None,
    }


def row_json(row: KpiRow) -> dict[str, Any]:
    return {
        "keys": {k: _json_key(v) for k, v in row.keys.items()},
        "labels": dict(row.labels),
        "value": _json_number(row.value),
        "target": _json_number(row.target),
        "attainment": _json_number(row.attainment),
        "gap": _json_number(row.gap),
        "previous": _json_number(row.previous),
        "change": _json_number(row.change),
    }


def result_json(result: KpiResult) -> dict[str, Any]:
    """The whole result as plain JSON values; each row carries its ``drill`` filters."""
    rows = []
    for index, row in enumerate(result.rows):
        item = row_json(row)
        item["drill"] = result.drill[index] if index < len(result.drill) else {}
        rows.append(item)
    total = row_json(result.total)
    total["drill"] = dict(result.drill_total)
    return {
        "name": result.name,
        "label": result.label,
        "format": result.format,
        "better": result.better,
        "by": list(result.by),
        "period": period_json(result.period),
        "previous_period": period_json(result.previous_period),
        "rows": rows,
        "total": total,
        "drill_exact": result.drill_exact,
    }
