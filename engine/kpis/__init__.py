"""KPIs computed in the database: periods, one aggregate query per KPI, targets,
forecasts, commissions (see docs/kpis.md).

Data flows one way: the checked :class:`~engine.model.Kpi` compiles (through
:mod:`engine.storage.formula_sql`) to one GROUP BY query; the service runs it
inside the viewer's read scope and returns a :class:`KpiResult` that the CLI,
the JSON API and the dashboards all render.
"""

from engine.kpis.periods import PERIOD_NAMES, Period, resolve_period
from engine.kpis.result import KpiResult, KpiRow
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
