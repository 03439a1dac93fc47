"""Numeric kinds: integer, decimal, money, percent.

Canonical values are ``int`` (integer, limited to signed 64-bit) and
``decimal.Decimal`` (the others; never ``float``). A float from JSON is read via
its shortest ``repr`` (``0.1`` -> ``Decimal('0.1')``), not its binary value.
Decimal values are quantized to the field's ``precision`` (default 2), and input
with more decimal places than that is refused rather than silently rounded.
Their absolute value must stay below 10^15, so a column needs at most
15 + precision digits.

Accepted text: ``1234``, ``-1,234.50`` (well-formed thousands separators),
``1.2e3``, full-width digits; money also takes one leading currency symbol or
code (``¥1,234.50``, ``CN¥1,234.50``, ``CNY 1,234.50``, ``1,234.50元``) and percent
a trailing ``%``. ``-0`` is read as ``0``. ``NaN``, ``Infinity`` and their float
forms are refused.

Values are shown per locale through :mod:`engine.locales` (Babel): ``1,234.5``,
``¥1,234.50`` (zh) / ``CN¥1,234.50`` (en), ``12.5%``.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from engine.errors import Problem
from engine.fields.base import (
    FieldKind,
    FieldValueError,
    bound_messages,
    compare_bounds,
    is_formula,
    is_int,
    short_input,
    show,
)
from engine.fields.registry import register
from engine.i18n import T, Text
from engine.locales import (
    format_decimal,
    format_integer,
    format_money,
    format_percent,
    money_symbols,
    number_formatter,
)
from engine.model import Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Decimal values must be strictly smaller than this in absolute value.
DECIMAL_LIMIT = Decimal(10) ** 15
DEFAULT_PRECISION = 2
MAX_PRECISION = 8
#: Default currency when neither the field nor the loader set one.
DEFAULT_CURRENCY = "CNY"
#: Symbols money input may start with besides the ones shown (CLDR's, see
#: :func:`engine.locales.money_symbols`): the short forms people type.
CURRENCY_SYMBOLS: dict[str, str] = {
    "CNY": "¥",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "JP¥",
    "HKD": "HK$",
    "TWD": "NT$",
    "KRW": "₩",
    "SGD": "S$",
    "AUD": "A$",
    "CAD": "CA$",
}
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_MAX_NUMBER_TEXT = 100
# Enough digits for 15 integer digits plus MAX_PRECISION places, with room to spare.
_CONTEXT = decimal.Context(prec=60, traps=[decimal.InvalidOperation, decimal.Overflow])


def not_a_number(raw: Any) -> FieldValueError:
    return FieldValueError(T(f"不是有效的数字：{show(raw)}", f"not a valid number: {show(raw)}"))


def parse_number_text(text: str) -> Decimal:
    """Strict decimal notation (no NaN/Infinity, no hex) -> Decimal, else raise."""
    raw = text
    short = short_input(text, _MAX_NUMBER_TEXT)
    if short is None:
        raise not_a_number(raw)
    text = short
    if "," in text:
        if not _GROUPED.match(text):
            raise not_a_number(raw)
        text = text.replace(",", "")
    if not _NUMBER.match(text):
        raise not_a_number(raw)
    return Decimal(text)


def to_decimal(raw: Any) -> Decimal:
    """Any accepted numeric input -> a finite Decimal (no range checks yet)."""
    if isinstance(raw, bool):
        raise FieldValueError(
            T(f"应为数字，而不是 {show(raw)}", f"expected a number, got {show(raw)}")
        )
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise not_a_number(raw)
        return Decimal(repr(raw))
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            raise not_a_number(raw)
        return raw
    if isinstance(raw, str):
        return parse_number_text(raw)
    raise FieldValueError(T(f"应为数字，而不是 {show(raw)}", f"expected a number, got {show(raw)}"))


def decimal_places(value: Decimal) -> int:
    """Places after the point ignoring trailing zeros (``1.500`` -> 1), exactly."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    places = -exponent
    index = len(digits) - 1
    while places > 0 and index >= 0 and digits[index] == 0:
        places -= 1
        index -= 1
    return places


#: ``Decimal(1).scaleb(-places)`` for every allowed precision (quantize targets).
_QUANTUM: tuple[Decimal, ...] = tuple(Decimal(1).scaleb(-p) for p in range(MAX_PRECISION + 1))
#: Coerced ``min``/``max`` per field (id -> (field, low, high)); a field is immutable,
#: and the numeric kinds' coercion depends on nothing else.
_BOUNDS: dict[int, tuple[Field, Any, Any]] = {}
_MAX_CACHED_BOUNDS = 4096


def cached_bounds(kind: FieldKind, field: Field) -> tuple[Any, Any]:
    """The field's ``min``/``max`` as ``bound_messages`` reads them (None: not checked)."""
    hit = _BOUNDS.get(id(field))
    if hit is not None and hit[0] is field:
        return hit[1], hit[2]
    bounds: list[Any] = []
    for raw in (field.min, field.max):
        bound = None
        if raw is not None and not is_formula(raw):
            try:
                bound = kind.coerce(field, raw)
            except FieldValueError:
                bound = None
        bounds.append(bound)
    if len(_BOUNDS) >= _MAX_CACHED_BOUNDS:
        _BOUNDS.clear()
    _BOUNDS[id(field)] = (field, bounds[0], bounds[1])
    return bounds[0], bounds[1]


@lru_cache(maxsize=MAX_PRECISION + 1)
def _plain_numbers(places: int) -> re.Pattern[str]:
    """Lines of ``[-]digits[.digits]`` text that coerce as they read: at most 15
    integer digits (below 10^15) and at most ``places`` decimals, ASCII only."""
    cell = r"-?[0-9]{1,15}" + (rf"(?:\.[0-9]{{1,{places}}})?" if places else "")
    return re.compile(rf"(?:{cell}\n)*{cell}")


def _blank_or(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
    """``fmt`` of a value, ``''`` for blank: ``display`` as a column's formatter."""

    def show_value(value: Any) -> str:
        return "" if value is None else fmt(value)

    return show_value


class IntegerKind(FieldKind):
    """A whole number, signed 64-bit. ``2.0`` and ``"2.0"`` are read as 2; 1.5 is refused."""

    name = "integer"
    label = T("整数", "Whole number")
    keys = frozenset({"min", "max", "formula"})
    storage = "integer"
    widget = "number"
    type_name = "number"

    def parse(self, field: Field, raw: Any) -> Any:
        number = Decimal(raw) if is_int(raw) else to_decimal(raw)
        if number != number.to_integral_value(context=_CONTEXT):
            raise FieldValueError(T(f"不是整数：{show(raw)}", f"not a whole number: {show(raw)}"))
        if not INT64_MIN <= number <= INT64_MAX:
            raise FieldValueError(
                T(
                    f"超出整数范围（-2^63 到 2^63-1）：{show(raw)}",
                    f"out of range for a whole number (-2^63 to 2^63-1): {show(raw)}",
                )
            )
        return int(number)

    def check_definition(self, field: Field) -> list[Problem]:
        problems, _, _ = compare_bounds(self, field, T("整数", "whole number"))
        return problems

    def check_value(self, field: Field, value: Any) -> list[Text]:
        low, high = cached_bounds(self, field)
        if (low is None or not value < low) and (high is None or not value > high):
            return []  # fast path: within bounds, no messages
        return bound_messages(
            self,
            field,
            value,
            lambda zh, en: T(f"不能小于 {zh}", f"must be at least {en}"),
            lambda zh, en: T(f"不能大于 {zh}", f"must be at most {en}"),
        )

    def from_storage(self, field: Field, value: Any) -> Any:
        return None if value is None else int(value)

    def show(self, field: Field, value: Any, lang: str) -> str:
        return format_integer(value, lang)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        return _blank_or(number_formatter(lang, "decimal", 0))


class DecimalKind(FieldKind):
    """A decimal number with ``precision`` places (default 2)."""

    name = "decimal"
    aliases: tuple[str, ...] = ("number",)
    label = T("小数", "Decimal")
    keys = frozenset({"min", "max", "precision", "formula"})
    storage = "decimal"
    widget = "number"
    type_name = "number"
    noun = T("数字", "number")

    def precision(self, field: Field) -> int:
        """Decimal places of this field's values."""
        p = field.precision
        if p is None:
            return DEFAULT_PRECISION
        if is_int(p) and 0 <= p <= MAX_PRECISION:
            return p
        return DEFAULT_PRECISION

    def strip_input(self, field: Field, text: str) -> str:
        """Remove kind-specific decoration (currency symbol, ``%``) from text input."""
        return text

    def coerce(self, field: Field, raw: Any) -> Any:
        if type(raw) is Decimal:
            return self.parse(field, raw)  # a Decimal is never blank: skip is_blank
        return super().coerce(field, raw)

    def coerce_many(self, field: Field, raws: Sequence[Any]) -> tuple[list[Any], dict[int, Text]]:
        # What coerce() gives cell by cell, with the two usual columns done in
        # bulk: Decimals (formulas, API batches) and plain decimal text (CSV).
        # Cells outside these shapes go through coerce() one by one.
        cls = type(self)
        if cls.coerce is not DecimalKind.coerce or cls.parse is not DecimalKind.parse:
            return super().coerce_many(field, raws)
        places = self.precision(field)
        quantum = _QUANTUM[places]
        types = set(map(type, raws))
        if types == {str} and cls.strip_input in _PLAIN_STRIP:
            joined = "\n".join(raws)
            if joined.count("\n") == len(raws) - 1 and _plain_numbers(places).fullmatch(joined):
                # Every cell is [-]digits[.digits]: under 10^15, within the places.
                fit = _CONTEXT.quantize
                fitted = [fit(Decimal(t), quantum) for t in raws]
                return [d if d else d.copy_abs() for d in fitted], {}
        if raws and (types == {Decimal} or types == {int}):
            numbers = list(map(Decimal, raws)) if types == {int} else raws
            try:
                fit = _CONTEXT.quantize  # d.quantize(quantum, context=_CONTEXT), called faster
                fitted = [fit(d, quantum) for d in numbers]
                fits = (
                    fitted == numbers  # no cell had more places than the precision
                    and min(fitted) > -DECIMAL_LIMIT
                    and max(fitted) < DECIMAL_LIMIT
                )
            except ArithmeticError:  # NaN, infinity, too many digits: cell by cell
                fits = False
            if fits:
                return (fitted if all(fitted) else [d if d else d.copy_abs() for d in fitted]), {}
        out: list[Any] = []
        errors: dict[int, Text] = {}
        append = out.append
        coerce = self.coerce
        limit = DECIMAL_LIMIT
        for i, raw in enumerate(raws):
            kind = type(raw)
            if kind is int and -limit < raw < limit:
                raw = Decimal(raw)
                kind = Decimal
            if kind is Decimal and raw.is_finite() and -limit < raw < limit:
                fitted = raw.quantize(quantum, context=_CONTEXT)
                if fitted == raw:  # no more places than the precision allows
                    append(fitted if fitted else fitted.copy_abs())
                    continue
            try:
                append(coerce(field, raw))
            except FieldValueError as exc:
                errors[i] = exc.text
                append(None)
        return out, errors

    def validate_many(self, field: Field, values: Sequence[Any]) -> dict[int, list[Text]]:
        if type(self).check_value is not DecimalKind.check_value:
            return super().validate_many(field, values)
        # The values come from coerce(): a Decimal there is in range and within the
        # precision already, so only the bounds are left to check_value's fast path.
        # The cells it does not clear get check_value's messages.
        low, high = cached_bounds(self, field)
        if low is None and high is None:
            suspects = [i for i, v in enumerate(values) if v is not None and type(v) is not Decimal]
        else:
            suspects = [
                i
                for i, v in enumerate(values)
                if v is not None
                and not (
                    type(v) is Decimal
                    and (low is None or not v < low)
                    and (high is None or not v > high)
                )
            ]
        out: dict[int, list[Text]] = {}
        for i in suspects:
            messages = self.check_value(field, values[i])
            if messages:
                out[i] = messages
        return out

    def parse(self, field: Field, raw: Any) -> Any:
        # Fast path for a value that is already a number (imports, formulas): the
        # same result as below, by the same rules, without the text handling.
        kind = type(raw)
        if kind is Decimal or kind is int:
            number = raw if kind is Decimal else Decimal(raw)
            if number.is_finite() and -DECIMAL_LIMIT < number < DECIMAL_LIMIT:
                quantum = _QUANTUM[self.precision(field)]
                fitted = number.quantize(quantum, context=_CONTEXT)
                if fitted == number:  # no more places than the precision allows
                    return fitted if fitted else fitted.copy_abs()  # "-0" is 0
        if isinstance(raw, str):
            raw_text = raw
            short = short_input(raw, _MAX_NUMBER_TEXT)
            if short is None:
                raise not_a_number(raw)
            number = parse_number_text(self.strip_input(field, short))
            raw = raw_text
        else:
            number = to_decimal(raw)
        if abs(number) >= DECIMAL_LIMIT:
            raise FieldValueError(
                T(
                    f"超出范围：绝对值须小于 1,000,000,000,000,000：{show(raw)}",
                    f"out of range: must be less than 1,000,000,000,000,000 in size: {show(raw)}",
                )
            )
        places = self.precision(field)
        if decimal_places(number) > places:
            if places == 0:
                message = T(f"不能有小数：{show(raw)}", f"no decimal places allowed: {show(raw)}")
            else:
                message = T(
                    f"最多 {places} 位小数：{show(raw)}",
                    f"at most {places} decimal places: {show(raw)}",
                )
            raise FieldValueError(message)
        number = number.quantize(Decimal(1).scaleb(-places), context=_CONTEXT)
        if number.is_zero():
            number = number.copy_abs()  # "-0" is 0
        return number

    def check_definition(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        p = field.precision
        if p is not None and (not is_int(p) or not 0 <= p <= MAX_PRECISION):
            problems.append(
                self.problem(
                    field,
                    T(
                        f"precision 应为 0 到 {MAX_PRECISION} 的整数：{show(p)}",
                        f"precision must be a whole number from 0 to {MAX_PRECISION}: {show(p)}",
                    ),
                    T(
                        f"默认为 {DEFAULT_PRECISION} 位小数",
                        f"the default is {DEFAULT_PRECISION} places",
                    ),
                )
            )
            return problems
        bound_problems, _, _ = compare_bounds(self, field, self.noun)
        return problems + bound_problems

    def check_value(self, field: Field, value: Any) -> list[Text]:
        if type(value) is Decimal and -DECIMAL_LIMIT < value < DECIMAL_LIMIT:
            low, high = cached_bounds(self, field)
            if (
                (low is None or not value < low)
                and (high is None or not value > high)
                and value.quantize(_QUANTUM[self.precision(field)], context=_CONTEXT) == value
            ):
                return []  # fast path: in range, in bounds, within the precision
        messages: list[Text] = []
        if abs(value) >= DECIMAL_LIMIT:
            messages.append(T("超出范围", "out of range"))
        places = self.precision(field)
        if decimal_places(value) > places:
            messages.append(T(f"最多 {places} 位小数", f"at most {places} decimal places"))
        return messages + bound_messages(
            self,
            field,
            value,
            lambda zh, en: T(f"不能小于 {zh}", f"must be at least {en}"),
            lambda zh, en: T(f"不能大于 {zh}", f"must be at most {en}"),
        )

    def to_json(self, field: Field, value: Any) -> Any:
        """A string: JSON numbers are binary floats and would lose cents."""
        return None if value is None else str(value)

    def from_storage(self, field: Field, value: Any) -> Any:
        if value is None:
            return None
        number = to_decimal(str(value) if isinstance(value, float) else value)
        return number.quantize(Decimal(1).scaleb(-self.precision(field)), context=_CONTEXT)

    def reader(self, field: Field) -> Callable[[Any], Any] | None:
        quantum = Decimal(1).scaleb(-self.precision(field))

        def read(value: Any) -> Any:
            # What from_storage does, with the quantum worked out once per column.
            if type(value) is Decimal and value.is_finite():
                return value.quantize(quantum, context=_CONTEXT)
            return self.from_storage(field, value)

        return read

    def show(self, field: Field, value: Any, lang: str) -> str:
        places = self.precision(field) if field.precision is not None else None
        return format_decimal(value, lang, places)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        places = self.precision(field) if field.precision is not None else None
        return _blank_or(number_formatter(lang, "decimal", places))


@lru_cache(maxsize=64)
def _money_prefixes(code: str) -> tuple[str, ...]:
    """What money input in ``code`` may start with, longest first (``CN¥`` before ``¥``)."""
    symbols = {code, CURRENCY_SYMBOLS.get(code, ""), *money_symbols(code)} - {""}
    return tuple(sorted(symbols, key=lambda s: (-len(s), s)))


class MoneyKind(DecimalKind):
    """An amount in ``currency`` (default: the blueprint's, else CNY); always shown
    with exactly ``precision`` places: ``¥1,234.50`` (zh), ``CN¥1,234.50`` (en)."""

    name = "money"
    aliases = ("currency",)
    label = T("金额", "Money")
    keys = frozenset({"min", "max", "precision", "currency", "formula"})
    widget = "money"
    noun = T("金额", "amount")

    def currency(self, field: Field) -> str:
        return field.currency or DEFAULT_CURRENCY

    def strip_input(self, field: Field, text: str) -> str:
        sign = ""
        if text[:1] in "+-":
            sign, text = text[0], text[1:].lstrip()
        code = self.currency(field)
        for prefix in _money_prefixes(code):
            if text.startswith(prefix):
                text = text[len(prefix) :].lstrip()
                break
        if text.endswith("元") and code == "CNY":
            text = text[:-1].rstrip()
        elif text.endswith(code):
            text = text[: -len(code)].rstrip()
        return sign + text

    def check_definition(self, field: Field) -> list[Problem]:
        problems = super().check_definition(field)
        code = field.currency
        if code is not None and not (isinstance(code, str) and _CURRENCY_CODE.match(code)):
            hint = T(
                "用三个大写字母的 ISO 4217 代码，如 CNY、USD",
                "use a 3-letter ISO 4217 code such as CNY or USD",
            )
            if isinstance(code, str) and _CURRENCY_CODE.match(code.upper()):
                hint = T(f"用大写：{code.upper()}", f"write it in capitals: {code.upper()}")
            problems.append(
                self.problem(
                    field,
                    T(f"币种代码无效：{show(code)}", f"invalid currency code: {show(code)}"),
                    hint,
                )
            )
        return problems

    def show(self, field: Field, value: Any, lang: str) -> str:
        return format_money(value, self.currency(field), lang, self.precision(field))

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        # format_money's symbol, pattern and places, looked up once per column.
        fmt = number_formatter(lang, "currency", self.precision(field), self.currency(field))
        return _blank_or(fmt)


class PercentKind(DecimalKind):
    """A percentage stored as the number shown: 60 means 60% (not 0.6).

    ``"60%"`` is accepted. Shown without trailing zeros unless ``precision`` is
    set: ``60%``, ``12.5%``.
    """

    name = "percent"
    aliases = ()
    label = T("百分比", "Percent")
    widget = "percent"
    noun = T("百分比", "percentage")

    def strip_input(self, field: Field, text: str) -> str:
        if text.endswith("%"):
            return text[:-1].rstrip()
        return text

    def show(self, field: Field, value: Any, lang: str) -> str:
        places = self.precision(field) if field.precision is not None else None
        return format_percent(value, lang, places)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        places = self.precision(field) if field.precision is not None else None
        return _blank_or(number_formatter(lang, "percent", places))


#: ``strip_input`` of the kinds that leave plain ``[-]digits[.digits]`` text as it is.
_PLAIN_STRIP = (DecimalKind.strip_input, MoneyKind.strip_input, PercentKind.strip_input)

INTEGER = register(IntegerKind())
DECIMAL = register(DecimalKind())
MONEY = register(MoneyKind())
PERCENT = register(PercentKind())
