"""What a formula sees while it runs (EvalContext) and the value helpers functions share.

Numbers are ``int`` or :class:`~decimal.Decimal`, never ``float``; Decimal work
goes through one fixed context (:data:`.sandbox.DECIMAL`), so results do not
depend on the thread's decimal settings. The arithmetic operators themselves
are compiled inline by :mod:`.compiler`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.i18n import T, Text

from .sandbox import DECIMAL, DEFAULT_BUDGET

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class EvalContext:
    """The record a formula is evaluated against, and the world around it.

    ``now`` and ``tz`` are injectable so TODAY()/NOW() are deterministic in tests.
    ``budget`` caps the steps of one evaluation; ``steps`` reports what the last
    evaluation used. ``row`` is set by the engine to the child row being
    aggregated and is not meant to be passed in.
    """

    values: Mapping[str, Any]
    tables: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    prior: Mapping[str, Any] | None = None
    user: str | None = None
    role: str | None = None
    now: Callable[[], datetime] = utc_now
    tz: tzinfo = BUSINESS_TZ
    warnings: list[Text] = field(default_factory=list)
    budget: int = DEFAULT_BUDGET
    steps: int = 0
    row: Mapping[str, Any] = field(default_factory=dict, repr=False)


#: A compiled formula node: evaluates against a context.
Closure = Callable[[EvalContext], Any]


class BlankResult(Exception):
    """Raised by a function whose input is outside its domain (SQRT(-1), DATE(2024, 2, 30)).

    The call site turns it into a blank result plus a warning on the context, the
    same treatment as division by zero: bad data should not block a save.
    """

    def __init__(self, message: Text) -> None:
        super().__init__(message.get("en"))
        self.message = message


DIVISION_BY_ZERO = T("除数为零，结果留空", "division by zero; the result is left blank")


def mod(a: Any, b: Any) -> Any:
    """Remainder with the sign of the divisor (Excel MOD, Python %); b must be non-zero."""
    if type(a) is int and type(b) is int:
        return a % b
    r = DECIMAL.remainder(a, b)
    if r and (r < 0) != (b < 0):
        r = DECIMAL.add(r, b)
    return r


def neg(a: Any) -> Any:
    return -a if type(a) is int else DECIMAL.minus(a)


def to_text(value: Any, tz: tzinfo) -> str:
    """The canonical text of a value: what CONCAT and TEXT() without a format produce."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")
    if isinstance(value, datetime):
        return as_local(value, tz).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(to_text(v, tz) for v in value)
    return str(value)


def as_local(value: datetime, tz: tzinfo) -> datetime:
    """A datetime in the business time zone; a naive one is taken to be UTC (as stored)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz)


def is_blank(value: Any) -> bool:
    """ISBLANK: no value, empty text or empty list."""
    return value is None or value == "" or (isinstance(value, list | tuple) and not value)


def whole(value: Any, what: Text) -> int:
    """A count of days, months or characters: the integer part of a number."""
    if type(value) is int:
        return value
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() > 9:
            raise BlankResult(T(f"{what.zh}超出范围", f"{what.en} out of range"))
        return int(value)
    return int(value)
