"""Comparing what a case expects with what the engine stored, by the field's kind.

An analyst writes values the way a form shows them, so the comparison follows
the field kind rather than Python equality:

* numbers (integer, decimal, money, percent, and formulas giving one): exact
  decimals, so ``"1000"``, ``1000`` and ``1000.00`` are equal and ``0.1 + 0.2``
  style float noise cannot creep in (a float in YAML is read as its text);
* dates as ISO text (``2024-07-01``); date-times as ISO in the business time
  zone, to the minute unless the expectation gives seconds;
* choice values as their value, multi-choice as a set of values;
* booleans as true/false; blank (``~`` / ``null`` / ``""``) equals an empty value;
* a child table: the expected rows, each compared on the columns it names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.model import Field

__all__ = ["NUMBER_KINDS", "plain", "same"]

NUMBER_KINDS = frozenset({"integer", "decimal", "number", "money", "percent"})


def kind_of_value(f: Field | None) -> str | None:
    """The kind a field's value has (a formula field's ``result`` kind)."""
    if f is None:
        return None
    if f.kind == "formula":
        return f.result
    return f.kind


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _iso(value: Any, tz: tzinfo, *, seconds: bool) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz)
        return str(value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"))
    if isinstance(value, date):
        return value.isoformat()
    return str(value).replace("T", " ")


def same(f: Field | None, expected: Any, actual: Any, tz: tzinfo) -> bool:
    """Does ``actual`` (as stored) match ``expected`` (as written in the case)?"""
    if _blank(expected) or _blank(actual):
        return _blank(expected) and _blank(actual)
    kind = kind_of_value(f)
    if kind in NUMBER_KINDS or (kind is None and isinstance(actual, int | Decimal | float)):
        left, right = _decimal(expected), _decimal(actual)
        return left is not None and right is not None and left == right
    if kind == "date" or (isinstance(actual, date) and not isinstance(actual, datetime)):
        return str(expected).strip() == _iso(actual, tz, seconds=False)
    if kind == "datetime" or isinstance(actual, datetime):
        text = str(expected).strip().replace("T", " ")
        if len(text) == 10:  # a date: the day matches
            return _iso(actual, tz, seconds=False)[:10] == text
        seconds = len(text) > 16
        return text == _iso(actual, tz, seconds=seconds)
    if kind == "multi_choice" or (isinstance(actual, list) and f is not None and not f.is_table):
        wanted = expected if isinstance(expected, list | tuple) else [expected]
        return sorted(map(str, wanted)) == sorted(map(str, actual))
    if f is not None and f.is_table:
        return _same_rows(f, expected, actual, tz)
    if kind == "boolean" or isinstance(actual, bool):
        return _boolean(expected) == bool(actual)
    return str(expected) == str(actual)


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "是"):
        return True
    if text in ("false", "no", "0", "否"):
        return False
    return None


def _same_rows(f: Field, expected: Any, actual: Any, tz: tzinfo) -> bool:
    if not isinstance(expected, Sequence) or isinstance(expected, str):
        return False
    rows = list(actual or [])
    if len(rows) != len(expected):
        return False
    for want, got in zip(expected, rows, strict=True):
        if not isinstance(want, Mapping):
            return False
        for name, value in want.items():
            if not same(f.fields.get(name), value, got.get(name), tz):
                return False
    return True


def plain(value: Any, tz: tzinfo) -> Any:
    """A stored value as a case would write it (for diffs and ``--json``)."""
    if isinstance(value, Decimal):
        text = (
            format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
        )
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, datetime | date):
        return _iso(value, tz, seconds=False)
    if isinstance(value, list):
        return [plain(v, tz) for v in value]
    if isinstance(value, Mapping):
        return {
            k: plain(v, tz) for k, v in value.items() if k not in ("id", "parent_id", "position")
        }
    return value
