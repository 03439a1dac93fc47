"""What evaluating a KPI returns: one row per group, plus the total.

The same object feeds the CLI table, the JSON API and the dashboard widgets,
so every face shows the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.kpis.periods import Period

Number = Decimal | int | None


@dataclass(frozen=True)
class KpiRow:
    """One group (or the total, with empty ``keys``).

    ``keys`` maps each dimension to its raw value (a user name, a choice
    value, the first day of a month ...); ``labels`` to the text shown in the
    viewer's language. ``value`` is None when the measure is blank (a ratio
    over nothing). ``attainment`` is percent (30 means 30%), like percent fields.
    """

    keys: dict[str, Any]
    labels: dict[str, str]
    value: Number
    target: Number = None
    #: 100 * value / target; for a lower-is-better KPI 100 * (2 - value / target).
    #: None when there is no target or it is 0.
    attainment: Number = None
    gap: Number = None  # target - value (lower is better: value - target); > 0: not there yet
    previous: Number = None  # value over the previous period, when asked to compare
    change: Number = None  # percent change vs previous; None when previous is 0/blank


@dataclass(frozen=True)
class KpiResult:
    name: str
    label: str
    format: str  # number | money | percent
    by: tuple[str, ...]
    period: Period
    rows: list[KpiRow]
    total: KpiRow
    previous_period: Period | None = None
    #: dimensions asked for but hidden from this viewer (field access), as documented
    hidden: tuple[str, ...] = ()
    #: per row, the list-page filter (query-string parameters) that shows its records
    drill: list[dict[str, str]] = field(default_factory=list)
    #: the list-page filter of the total (every record the KPI counts)
    drill_total: dict[str, str] = field(default_factory=dict)
    #: whether the drill filters show exactly the counted records (False: the KPI's
    #: ``where`` could not be written as list filters; see docs/kpis.md)
    drill_exact: bool = True
    #: "higher" or "lower": which way the KPI improves (leaderboards, change colours)
    better: str = "higher"
