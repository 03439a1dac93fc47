"""Time buckets in Python: their first day, the next one, one period back, their labels.

A bucket is named by its first day (a ``date``); weeks are ISO weeks starting
Monday. Labels: day ``2026-11-05`` / ``2026年11月5日``, week ``2026-W45`` /
``2026年第45周``, month ``2026-11`` / ``2026年11月``, quarter ``2026-Q4`` /
``2026年第4季度``, year ``2026`` / ``2026年``.
"""

from __future__ import annotations

import calendar
import functools
from datetime import date, timedelta

__all__ = ["bucket_end", "bucket_label", "bucket_start", "next_bucket", "shift_back"]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def bucket_start(bucket: str, day: date) -> date:
    """The first day of the bucket ``day`` falls in."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return date(day.year, day.month, 1)
    if bucket == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if bucket == "year":
        return date(day.year, 1, 1)
    raise ValueError(f"unknown time bucket {bucket!r}")


@functools.lru_cache(maxsize=8192)
def next_bucket(bucket: str, start: date) -> date:
    """The first day of the bucket after the one starting on ``start``."""
    if bucket == "day":
        return start + timedelta(days=1)
    if bucket == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[bucket]
    return _add_months(start, months)


@functools.lru_cache(maxsize=8192)
def bucket_end(bucket: str, start: date) -> date:
    """The last day of the bucket starting on ``start`` (inclusive)."""
    return next_bucket(bucket, start) - timedelta(days=1)


def shift_back(bucket: str, start: date, shift: tuple[str, int]) -> date:
    """The bucket one comparison period earlier: ``("months", n)`` or ``("days", n)`` back."""
    unit, amount = shift
    if unit == "months":
        moved = _add_months(date(start.year, start.month, 1), -amount)
        if bucket in ("day", "week"):
            last = calendar.monthrange(moved.year, moved.month)[1]
            moved = moved.replace(day=min(start.day, last))
        return bucket_start(bucket, moved)
    return bucket_start(bucket, start - timedelta(days=amount))


def bucket_label(bucket: str, start: date, lang: str) -> str:
    """How a bucket is named in ``lang`` (zh or en)."""
    zh = lang == "zh"
    if bucket == "day":
        return f"{start.year}年{start.month}月{start.day}日" if zh else start.isoformat()
    if bucket == "week":
        year, week, _ = start.isocalendar()
        return f"{year}年第{week}周" if zh else f"{year}-W{week:02d}"
    if bucket == "month":
        return f"{start.year}年{start.month}月" if zh else f"{start.year}-{start.month:02d}"
    if bucket == "quarter":
        quarter = (start.month - 1) // 3 + 1
        return f"{start.year}年第{quarter}季度" if zh else f"{start.year}-Q{quarter}"
    return f"{start.year}年" if zh else str(start.year)
