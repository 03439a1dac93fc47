"""KPIs computed in the database: periods, one aggregate query per KPI, targets,
forecasts, commissions (see docs/kpis.md).

Data flows one way: the checked :class:`~engine.model.Kpi` compiles (through
:mod:`engine.storage.formula_sql`) to one GROUP BY query; the service runs it
inside the viewer's read scope and returns a :class:`KpiResult` that the CLI,
the JSON API and the dashboards all render.

The service is imported on first use (``engine.kpis.KpiService``), so that the
checker may import :mod:`engine.kpis.periods` without loading the services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.kpis.periods import PERIOD_NAMES, Period, resolve_period
from engine.kpis.result import KpiResult, KpiRow

if TYPE_CHECKING:
    from engine.kpis.service import KpiError, KpiRequest, KpiService

__all__ = [
    "PERIOD_NAMES",
    "KpiError",
    "KpiRequest",
    "KpiResult",
    "KpiRow",
    "KpiService",
    "Period",
    "resolve_period",
]


def __getattr__(name: str) -> Any:
    if name in ("KpiError", "KpiRequest", "KpiService"):
        from engine.kpis import service

        return getattr(service, name)
    raise AttributeError(f"module 'engine.kpis' has no attribute {name!r}")
