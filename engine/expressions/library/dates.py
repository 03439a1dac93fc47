"""Dates: TODAY, NOW, DATE, YEAR, MONTH, DAY, WEEKDAY, DATEDIF, DAYS, HOURS, ADD_DAYS,
ADD_MONTHS, NETWORKDAYS.

"Today" is a business fact, not a server fact: TODAY() is the date in the
context's time zone (Asia/Shanghai by default) at the context's clock, both
injectable. A date-time argument is first moved into that time zone, so
YEAR(created_at) agrees with what the user sees on screen.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine.i18n import T

from ..functions import Param, formula_function
from ..runtime import BlankResult, EvalContext, as_local, whole
from ..sandbox import DECIMAL
from ..types import DATE, DATETIME, NUMBER, TEXT, list_of
from .rules import first_arg

CATEGORY = "date"
_DAYS = T("天数", "number of days")
_MONTHS = T("月数", "number of months")
_YEAR = T("年份", "year")
_OUT_OF_RANGE = T("日期超出范围，结果留空", "date out of range; the result is left blank")
_WHEN = (DATE, DATETIME)
_HOUR = 3_600_000_000  # microseconds


def _day(value: date, env: EvalContext) -> date:
    """The calendar day of a date or (in the business time zone) of a date-time."""
    if isinstance(value, datetime):
        return as_local(value, env.tz).date()
    return value


@formula_function(
    "TODAY",
    CATEGORY,
    ("今天的日期（业务时区）", "Today's date in the business time zone"),
    returns=DATE,
    context=True,
    example="TODAY()",
)
def today(env: EvalContext) -> date:
    return as_local(env.now(), env.tz).date()


@formula_function(
    "NOW",
    CATEGORY,
    ("当前的日期时间（业务时区）", "The current date-time in the business time zone"),
    returns=DATETIME,
    context=True,
    example="NOW()",
)
def now(env: EvalContext) -> datetime:
    return as_local(env.now(), env.tz)


@formula_function(
    "DATE",
    CATEGORY,
    (
        "由年、月、日组成日期；日期不存在时为空并给出警告",
        "The date with this year, month and day; blank with a warning if there is no such date",
    ),
    params=(Param("year", (NUMBER,)), Param("month", (NUMBER,)), Param("day", (NUMBER,))),
    returns=DATE,
    example="DATE(YEAR(TODAY()), 12, 31)",
)
def date_(year: Any, month: Any, day: Any) -> date:
    try:
        return date(whole(year, _YEAR), whole(month, _MONTHS), whole(day, _DAYS))
    except (ValueError, OverflowError):
        raise BlankResult(
            T("日期不存在，结果留空", "there is no such date; the result is left blank")
        ) from None


@formula_function(
    "YEAR",
    CATEGORY,
    ("日期的年份", "The year of a date"),
    params=(Param("date", _WHEN),),
    returns=NUMBER,
    context=True,
    example="YEAR(signed_on)",
)
def year(env: EvalContext, value: date) -> int:
    return _day(value, env).year


@formula_function(
    "MONTH",
    CATEGORY,
    ("日期的月份（1-12）", "The month of a date (1-12)"),
    params=(Param("date", _WHEN),),
    returns=NUMBER,
    context=True,
    example="MONTH(signed_on)",
)
def month(env: EvalContext, value: date) -> int:
    return _day(value, env).month


@formula_function(
    "DAY",
    CATEGORY,
    ("日期是当月第几天（1-31）", "The day of the month (1-31)"),
    params=(Param("date", _WHEN),),
    returns=NUMBER,
    context=True,
    example="DAY(due_date)",
)
def day(env: EvalContext, value: date) -> int:
    return _day(value, env).day


@formula_function(
    "WEEKDAY",
    CATEGORY,
    (
        "星期几：周一为 1，周日为 7（ISO，与 Excel 默认不同）",
        "Day of the week: Monday is 1, Sunday is 7 (ISO, unlike Excel's default)",
    ),
    params=(Param("date", _WHEN),),
    returns=NUMBER,
    context=True,
    example="WEEKDAY(visit_date) >= 6",
)
def weekday(env: EvalContext, value: date) -> int:
    return _day(value, env).isoweekday()


def _months_between(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    return months


@formula_function(
    "DATEDIF",
    CATEGORY,
    (
        "两个日期之间的完整天数 'D'、月数 'M' 或年数 'Y'；开始晚于结束时为空",
        "Whole days 'D', months 'M' or years 'Y' from start to end; blank if start is after end",
    ),
    params=(Param("start", _WHEN), Param("end", _WHEN), Param("unit", (TEXT,))),
    returns=NUMBER,
    context=True,
    example="DATEDIF(hired_on, TODAY(), 'Y')",
)
def datedif(env: EvalContext, start: date, end: date, unit: str) -> int:
    first, last = _day(start, env), _day(end, env)
    if first > last:
        raise BlankResult(
            T(
                "DATEDIF 的开始日期晚于结束日期，结果留空",
                "DATEDIF start is after end; the result is left blank",
            )
        )
    kind = unit.strip().upper()
    if kind == "D":
        return (last - first).days
    if kind == "M":
        return _months_between(first, last)
    if kind == "Y":
        return _months_between(first, last) // 12
    raise BlankResult(
        T(
            f"DATEDIF 的单位 '{unit}' 无效（应为 D、M 或 Y）",
            f"DATEDIF unit '{unit}' is not D, M or Y",
        )
    )


@formula_function(
    "DAYS",
    CATEGORY,
    (
        "从 start 到 end 的天数（end - start，可为负）",
        "The number of days from start to end (end - start, may be negative)",
    ),
    params=(Param("end", _WHEN), Param("start", _WHEN)),
    returns=NUMBER,
    context=True,
    example="DAYS(close_date, TODAY())",
)
def days(env: EvalContext, end: date, start: date) -> int:
    return (_day(end, env) - _day(start, env)).days


@formula_function(
    "HOURS",
    CATEGORY,
    (
        "从 start 到 end 的小时数（end - start，可为负，含小数）；日期按业务时区当天零点算",
        "The hours from start to end (end - start, may be negative, with a fraction); "
        "a date counts from its midnight in the business time zone",
    ),
    params=(Param("end", _WHEN), Param("start", _WHEN)),
    returns=NUMBER,
    context=True,
    example="HOURS(acknowledged_at, occurred_at)",
)
def hours(env: EvalContext, end: date, start: date) -> Decimal | int:
    micro = (_instant(end, env) - _instant(start, env)) // timedelta(microseconds=1)
    if micro % _HOUR == 0:
        return micro // _HOUR
    return DECIMAL.divide(Decimal(micro), _HOUR)


def _instant(value: date, env: EvalContext) -> datetime:
    """The UTC instant of a date-time, or of a date's midnight in the business time zone.

    In UTC, so that a difference across a daylight-saving change counts real hours
    (Python subtracts two times of one zone by their wall clocks).
    """
    if isinstance(value, datetime):
        return as_local(value, UTC)
    return datetime.combine(value, time(), env.tz).astimezone(UTC)


@formula_function(
    "ADD_DAYS",
    CATEGORY,
    (
        "日期加上若干天（可为负；小数部分舍去）",
        "The date plus a number of days (may be negative; fractions are dropped)",
    ),
    params=(Param("date", _WHEN), Param("days", (NUMBER,))),
    returns=first_arg,
    example="ADD_DAYS(TODAY(), 30)",
)
def add_days(value: date, count: Any) -> date:
    try:
        return value + timedelta(days=whole(count, _DAYS))
    except (OverflowError, ValueError):
        raise BlankResult(_OUT_OF_RANGE) from None


@formula_function(
    "ADD_MONTHS",
    CATEGORY,
    (
        "日期加上若干个月；月末对齐（1 月 31 日加 1 个月为 2 月末）",
        "The date plus a number of months, clamped to the month's end (Jan 31 + 1 = end of Feb)",
    ),
    params=(Param("date", _WHEN), Param("months", (NUMBER,))),
    returns=first_arg,
    example="ADD_MONTHS(signed_on, 12)",
)
def add_months(value: date, count: Any) -> date:
    total = value.year * 12 + value.month - 1 + whole(count, _MONTHS)
    year, month0 = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise BlankResult(_OUT_OF_RANGE)
    last = calendar.monthrange(year, month0 + 1)[1]
    return value.replace(year=year, month=month0 + 1, day=min(value.day, last))


def _weekdays_until(first: date, last: date) -> int:
    """Monday-to-Friday days in [first, last], by arithmetic (no loop over the span)."""
    span = (last - first).days + 1
    weeks, extra = divmod(span, 7)
    count = weeks * 5
    start = first.weekday()
    count += sum(1 for i in range(extra) if (start + i) % 7 < 5)
    return count


@formula_function(
    "NETWORKDAYS",
    CATEGORY,
    (
        "两日期之间（含首尾）的工作日数（周一至周五，可排除节假日列表）",
        "Working days (Monday-Friday) between the dates, both included, less any listed holidays",
    ),
    params=(
        Param("start", _WHEN),
        Param("end", _WHEN),
        Param("holidays", (list_of(DATE),), optional=True),
    ),
    returns=NUMBER,
    context=True,
    blank_propagates=False,
    example="NETWORKDAYS(submitted_on, approved_on)",
)
def networkdays(
    env: EvalContext, start: date | None, end: date | None, holidays: Sequence[date] | None = None
) -> int | None:
    if start is None or end is None:
        return None
    first, last = _day(start, env), _day(end, env)
    sign = 1
    if first > last:
        first, last, sign = last, first, -1
    count = _weekdays_until(first, last)
    off = {
        h for h in holidays or () if isinstance(h, date) and first <= h <= last and h.weekday() < 5
    }
    return sign * (count - len(off))
