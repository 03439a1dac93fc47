"""Named and custom reporting periods in the business time zone.

A period is a half-open date range ``[start, end)``; ``all`` has neither bound.
Every named period has a previous period of the same length in calendar terms
(last month for this month, the quarter before for a quarter ...), which is
what "change vs previous period" compares against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from engine.errors import FormflowError
from engine.i18n import T

#: The periods a widget, the CLI (``--period``) and the API (``?period=``) accept.
PERIOD_NAMES: tuple[str, ...] = (
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
    "all",
)


class PeriodError(FormflowError):
    """A period name or a custom range that makes no sense."""

    http_status = 400


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in business-local dates; ``None`` means unbounded."""

    name: str
    start: date | None = None
    end: date | None = None
    #: month, quarter, year or custom: how :meth:`previous` steps back
    unit: str = "custom"

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def previous(self) -> Period | None:
        """The period just before, of the same calendar length; ``None`` for ``all``."""
        if self.start is None or self.end is None:
            return None
        if self.unit in ("month", "quarter", "year"):
            months = {"month": 1, "quarter": 3, "year": 12}[self.unit]
            return Period(
                f"before_{self.name}",
                _add_months(self.start, -months),
                self.start,
                self.unit,
            )
        length = self.end - self.start
        return Period(f"before_{self.name}", self.start - length, self.start, "custom")

    def contains(self, day: date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day < self.end)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def resolve_period(
    name: str | None,
    today: date,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
) -> Period:
    """The period called ``name`` as seen on ``today`` (business-local).

    ``name`` may be one of :data:`PERIOD_NAMES`, ``custom`` (or None) with
    ``start``/``end`` (inclusive end date, as a person writes a range), or
    ``None`` without bounds, meaning ``all``. Raises :class:`PeriodError` with a
    bilingual message for an unknown name or an impossible date.
    """
    if name in (None, "custom") and (start is not None or end is not None):
        first = _parse(start, "start") if start is not None else None
        last = _parse(end, "end") if end is not None else None
        if first is not None and last is not None and last < first:
            raise PeriodError(
                T(
                    f"期间结束日期 {last} 早于开始日期 {first}",
                    f"the period ends ({last}) before it starts ({first})",
                )
            )
        return Period("custom", first, last + timedelta(days=1) if last else None, "custom")
    if name in (None, "all"):
        return Period("all")
    if name == "this_month":
        return Period(name, _month_start(today), _add_months(_month_start(today), 1), "month")
    if name == "last_month":
        first = _add_months(_month_start(today), -1)
        return Period(name, first, _add_months(first, 1), "month")
    if name == "this_quarter":
        return Period(name, _quarter_start(today), _add_months(_quarter_start(today), 3), "quarter")
    if name == "last_quarter":
        first = _add_months(_quarter_start(today), -3)
        return Period(name, first, _add_months(first, 3), "quarter")
    if name == "this_year":
        return Period(name, date(today.year, 1, 1), date(today.year + 1, 1, 1), "year")
    if name == "last_year":
        return Period(name, date(today.year - 1, 1, 1), date(today.year, 1, 1), "year")
    known = ", ".join((*PERIOD_NAMES, "custom"))
    raise PeriodError(
        T(f"未知的期间 '{name}'，可用：{known}", f"unknown period '{name}'; use one of: {known}")
    )


def _parse(value: date | str, which: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        zh_which = "开始" if which == "start" else "结束"
        raise PeriodError(
            T(
                f"期间{zh_which}日期 '{value}' 不是有效日期（格式 YYYY-MM-DD）",
                f"the period {which} '{value}' is not a real date (use YYYY-MM-DD)",
            )
        ) from None
