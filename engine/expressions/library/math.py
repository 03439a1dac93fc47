"""Numbers: ROUND, ROUNDUP, ROUNDDOWN, ABS, MOD, POWER, SQRT.

All in Decimal (money never touches float); ROUND is half-up like Excel, not
Python's banker's rounding. POWER is bounded so ``POWER(9, 999999)`` is an
error, not a minute of CPU.
"""

from __future__ import annotations

import decimal
import math as _math
from decimal import Decimal
from typing import Any

from engine.i18n import T

from ..functions import Param, formula_function
from ..runtime import DIVISION_BY_ZERO, BlankResult, mod, whole
from ..sandbox import DECIMAL, MAX_DIGITS, TOO_LARGE, check_int, fail
from ..types import NUMBER

CATEGORY = "math"
_DIGITS = T("小数位数", "number of digits")
#: Largest exponent POWER accepts (the result is bounded separately).
MAX_EXPONENT = 10_000


def _round(value: Any, digits: Any, mode: str) -> Any:
    places = whole(digits, _DIGITS) if digits is not None else 0
    if not -MAX_DIGITS <= places <= MAX_DIGITS:
        raise BlankResult(T("小数位数超出范围", "number of digits out of range"))
    if type(value) is int and places >= 0:
        return value
    exponent = Decimal(1).scaleb(-places)
    rounded = Decimal(value).quantize(exponent, rounding=mode, context=DECIMAL)
    if places < 0:
        rounded = rounded.quantize(Decimal(1), context=DECIMAL)
        return int(rounded) if type(value) is int else rounded
    return rounded


_ROUND_PARAMS = (Param("number", (NUMBER,)), Param("digits", (NUMBER,), optional=True))


@formula_function(
    "ROUND",
    CATEGORY,
    (
        "四舍五入到指定小数位（默认 0 位；负数表示十位、百位……）",
        "Round half away from zero to the given decimals (default 0; negative rounds to tens...)",
    ),
    params=_ROUND_PARAMS,
    returns=NUMBER,
    example="ROUND(amount * 0.13, 2)",
)
def round_(value: Any, digits: Any = 0) -> Any:
    return _round(value, digits, decimal.ROUND_HALF_UP)


@formula_function(
    "ROUNDUP",
    CATEGORY,
    ("远离零方向进位到指定小数位", "Round away from zero to the given decimals"),
    params=_ROUND_PARAMS,
    returns=NUMBER,
    example="ROUNDUP(hours, 0)",
)
def roundup(value: Any, digits: Any = 0) -> Any:
    return _round(value, digits, decimal.ROUND_UP)


@formula_function(
    "ROUNDDOWN",
    CATEGORY,
    ("向零方向舍去到指定小数位", "Round toward zero to the given decimals"),
    params=_ROUND_PARAMS,
    returns=NUMBER,
    example="ROUNDDOWN(amount / 3, 2)",
)
def rounddown(value: Any, digits: Any = 0) -> Any:
    return _round(value, digits, decimal.ROUND_DOWN)


@formula_function(
    "ABS",
    CATEGORY,
    ("绝对值", "The absolute value"),
    params=(Param("number", (NUMBER,)),),
    returns=NUMBER,
    example="ABS(actual - target)",
)
def abs_(value: Any) -> Any:
    return abs(value) if type(value) is int else DECIMAL.abs(value)


@formula_function(
    "MOD",
    CATEGORY,
    (
        "余数，符号与除数相同；除数为零时为空并给出警告",
        "The remainder, with the divisor's sign; blank with a warning when dividing by zero",
    ),
    params=(Param("number", (NUMBER,)), Param("divisor", (NUMBER,))),
    returns=NUMBER,
    example="MOD(seq, 2)",
)
def mod_(value: Any, divisor: Any) -> Any:
    if not divisor:
        raise BlankResult(DIVISION_BY_ZERO)
    return mod(value, divisor)


@formula_function(
    "POWER",
    CATEGORY,
    (
        "乘方；结果不得超过 30 位，指数绝对值不超过 10000",
        "Raise to a power; the result must stay under 30 digits, the exponent within ±10000",
    ),
    params=(Param("number", (NUMBER,)), Param("exponent", (NUMBER,))),
    returns=NUMBER,
    example="POWER(1 + rate, years)",
)
def power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        fail(TOO_LARGE)
    # Estimate the result's digits before computing it (floats only for the estimate).
    if base and abs(base) != 1 and float(exponent) * _math.log10(float(abs(base))) >= MAX_DIGITS:
        fail(TOO_LARGE)
    if type(base) is int and type(exponent) is int and exponent >= 0:
        return check_int(base**exponent)
    if not base and exponent < 0:
        raise BlankResult(DIVISION_BY_ZERO)
    try:
        return DECIMAL.power(Decimal(base), Decimal(exponent))
    except decimal.InvalidOperation:
        raise BlankResult(
            T("POWER 没有实数结果，结果留空", "POWER has no real result; the result is left blank")
        ) from None


@formula_function(
    "SQRT",
    CATEGORY,
    ("平方根；负数时为空并给出警告", "The square root; blank with a warning for a negative number"),
    params=(Param("number", (NUMBER,)),),
    returns=NUMBER,
    example="SQRT(area)",
)
def sqrt(value: Any) -> Any:
    if value < 0:
        raise BlankResult(
            T(
                "负数没有平方根，结果留空",
                "a negative number has no square root; the result is left blank",
            )
        )
    return DECIMAL.sqrt(Decimal(value))
