"""Values formatted per locale, through Babel (CLDR data).

Our two languages map onto Babel locales (:data:`BABEL_LOCALES`): ``zh`` is
``zh_Hans_CN`` and ``en`` is ``en``. Every field kind's ``display``, the web
pages' system dates and the counts on the list and home pages go through the
functions below, with the reader's language:

=================  =========================  ==========================
value              zh                         en
=================  =========================  ==========================
date               2026年11月27日              Nov 27, 2026
date-time          2026年11月27日 16:30        Nov 27, 2026, 4:30 PM
integer            1,234,567                  1,234,567
decimal            1,234.5                    1,234.5
money (CNY)        ¥1,234.50                  CN¥1,234.50
money (USD)        US$3.00                    $3.00
percent            12.5%                      12.5%
=================  =========================  ==========================

Money takes CLDR's symbol for the reader's locale. In English that is
``CN¥`` for the yuan, because a bare ``¥`` is the yen there (and the yen is
``JP¥`` in Chinese); a symbol made of letters (``CHF``) is set off from the
digits by a no-break space, as CLDR's currency spacing asks. English times are
CLDR's (12-hour, with a narrow no-break space before AM/PM).

Amounts stay :class:`~decimal.Decimal` from the database to the page (Babel
formats a Decimal without going through float) and are shown with exactly the
places asked for (a field's ``precision``) or, for ``places=None``, as many as
the value needs. Date-times are shown as given: callers convert them to the
business time zone first (``engine.fields.dates.to_business``).

Locales, number patterns and date patterns are built once and cached: a list
page formats hundreds of values. :func:`number_formatter` looks a pattern up once
for a whole column (a field kind's ``formatter``).
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import DateTimePattern, tokenize_pattern
from babel.numbers import (
    NumberPattern,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)

from engine.i18n import normalise_lang

#: The Babel locale of each of our languages.
BABEL_LOCALES: Mapping[str, str] = {"zh": "zh_Hans_CN", "en": "en"}
#: Most places a value shown "with as many places as it needs" gets (engine maximum).
MAX_PLACES = 8
#: CLDR's currency spacing: what goes between a symbol made of letters and the digits.
CURRENCY_SPACE = "\u00a0"


@lru_cache(maxsize=64)
def babel_locale(lang: str | None) -> Locale:
    """The (shared) Babel locale of ``lang`` (``zh``, ``zh-CN``, ``en-US``, ...)."""
    return Locale.parse(BABEL_LOCALES[normalise_lang(lang)])


def _is_symbol(char: str) -> bool:
    return unicodedata.category(char).startswith("S")


@lru_cache(maxsize=64)
def currency_symbol(code: str, lang: str | None) -> str:
    """The symbol of the ISO 4217 ``code`` for a reader of ``lang`` (``¥``, ``CN¥``, ``US$``)."""
    return get_currency_symbol(code, babel_locale(lang))


_MAX_QUANTUM = Decimal(1).scaleb(-MAX_PLACES)


class NumberFormat:
    """One CLDR number pattern of a locale, with the fraction digits (and symbol) fixed.

    :meth:`babel` is Babel's own rendering. :meth:`apply` gives the same text
    faster for the patterns our locales use (groups of three, no exponent, no
    significant digits): Python's ``format`` does the digits and the locale's
    symbols and affixes come from Babel. Other patterns go through Babel; a test
    checks that the two agree for every locale, kind and precision.
    """

    __slots__ = ("fast", "locale", "negative", "pattern", "places", "positive", "scaled", "table")

    def __init__(self, locale: Locale, pattern: NumberPattern, places: int | None) -> None:
        self.locale = locale
        self.pattern = pattern
        self.places = places
        self.positive = pattern.prefix[0], pattern.suffix[0]
        self.negative = pattern.prefix[1], pattern.suffix[1]
        #: A percent pattern multiplies by 100 (``scale`` 2): :meth:`apply` takes the
        #: number already scaled, as the percent kind stores it.
        self.scaled = pattern.scale
        group, point = get_group_symbol(locale), get_decimal_symbol(locale)
        self.table = None if (group, point) == (",", ".") else str.maketrans(",.", group + point)
        affixes = "".join(pattern.prefix + pattern.suffix)
        self.fast = (
            pattern.grouping == (3, 3)
            and pattern.int_prec[0] == 1
            and not pattern.exp_prec
            and "@" not in pattern.pattern
            and bool(pattern.number_pattern)
            and "'" not in affixes
            and "¤" not in affixes
        )

    def babel(self, value: Decimal) -> str:
        """Babel's rendering of ``value`` (a percent pattern shows ``value`` x 100)."""
        return str(self.pattern.apply(value, self.locale))

    def apply(self, value: Decimal) -> str:
        """``value`` as text; a percent pattern takes the number shown (``12.5`` -> 12.5%)."""
        if not self.fast:
            return self.babel(value.scaleb(-self.scaled) if self.scaled else value)
        prefix, suffix = self.negative if value.is_signed() else self.positive
        number = abs(value)
        if self.places is None:
            text = format(number.quantize(_MAX_QUANTUM), ",f")
            if "." in text:
                text = text.rstrip("0").rstrip(".")
        else:
            text = format(number, f",.{self.places}f")
        if self.table is not None:
            text = text.translate(self.table)
        return prefix + text + suffix


@lru_cache(maxsize=512)
def number_format(
    lang: str | None, kind: str, places: int | None, currency: str | None = None
) -> NumberFormat:
    """The locale's ``decimal``, ``percent`` or ``currency`` pattern with ``places``
    fraction digits (``None``: up to :data:`MAX_PLACES`, as many as needed) and, for
    money, the symbol of ``currency`` in (CLDR currency spacing applied)."""
    locale = babel_locale(lang)
    if kind == "percent":
        base = locale.percent_formats[None]
    elif kind == "currency":
        base = locale.currency_formats["standard"]
    else:
        base = locale.decimal_formats[None]
    pattern = copy.copy(base)
    pattern.frac_prec = (0, MAX_PLACES) if places is None else (places, places)
    if currency is not None:
        symbol = currency_symbol(currency, lang)
        before = symbol if _is_symbol(symbol[-1]) else symbol + CURRENCY_SPACE
        after = symbol if _is_symbol(symbol[0]) else CURRENCY_SPACE + symbol
        pattern.prefix = tuple(p.replace("¤", before) for p in base.prefix)
        pattern.suffix = tuple(s.replace("¤", after) for s in base.suffix)
    return NumberFormat(locale, pattern, places)


def _decimal(value: Decimal | int) -> Decimal:
    if isinstance(value, Decimal):
        return value.copy_abs() if value.is_zero() else value  # never "-0.00"
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise TypeError(f"expected a Decimal or an int, got {type(value).__name__}")


def number_formatter(
    lang: str | None, kind: str, places: int | None, currency: str | None = None
) -> Callable[[Decimal | int], str]:
    """:func:`format_decimal`, :func:`format_money` or :func:`format_percent` (``kind``
    ``decimal``, ``currency`` or ``percent``) of one language, places and currency as a
    one-argument function: the pattern found once for a column, not once per value.
    ``number_formatter(lang, "currency", 2, "CNY")(v) == format_money(v, "CNY", lang)``.
    """
    apply = number_format(lang, kind, places, currency).apply

    def fmt(value: Decimal | int) -> str:
        if type(value) is Decimal and not value.is_zero():
            return apply(value)
        return apply(_decimal(value))

    return fmt


def format_integer(value: int | Decimal, lang: str | None) -> str:
    """``1234567`` -> ``1,234,567``."""
    return number_format(lang, "decimal", 0).apply(_decimal(value))


def format_decimal(value: Decimal | int, lang: str | None, places: int | None = None) -> str:
    """``1234.5`` -> ``1,234.50`` for ``places=2``; ``places=None``: as few as needed."""
    return number_format(lang, "decimal", places).apply(_decimal(value))


def format_money(value: Decimal | int, currency: str, lang: str | None, places: int = 2) -> str:
    """``1234.5`` in CNY -> ``¥1,234.50`` (zh) / ``CN¥1,234.50`` (en), always ``places`` places."""
    return number_format(lang, "currency", places, currency).apply(_decimal(value))


def format_percent(value: Decimal | int, lang: str | None, places: int | None = None) -> str:
    """A percentage *as the number shown* (``60`` means 60%): ``60%``, ``12.5%``."""
    return number_format(lang, "percent", places).apply(_decimal(value))


@lru_cache(maxsize=16)
def _date_patterns(lang: str | None) -> tuple[Locale, DateTimePattern, DateTimePattern, str]:
    locale = babel_locale(lang)
    combined = locale.datetime_formats["medium"]
    text = combined if isinstance(combined, str) else combined.pattern
    return locale, locale.date_formats["medium"], locale.time_formats["short"], text


@lru_cache(maxsize=4096)
def format_date(value: date, lang: str | None) -> str:
    """``2026年11月27日`` / ``Nov 27, 2026`` (CLDR's medium date; the same days recur
    down a list, so the text is cached)."""
    locale, day, _clock, _joined = _date_patterns(lang)
    return str(day.apply(value, locale))


#: Date pattern fields that depend on the calendar day alone, and time pattern fields
#: that depend on the hour and minute alone (what lets :func:`format_datetime` cache).
_DAY_FIELDS = frozenset("GyYuUrQqMLlwWdDFgEec")
_CLOCK_FIELDS = frozenset("hHkKmabB")


def _fields(pattern: DateTimePattern) -> set[str]:
    return {token[1][0] for token in tokenize_pattern(pattern.pattern) if token[0] == "field"}


@lru_cache(maxsize=16)
def _datetime_layout(lang: str | None) -> tuple[str, bool]:
    """The medium date-time pattern (``{1}``: the date, ``{0}``: the time) and whether
    its date and time parts can be cached by day and by hour and minute."""
    _locale, day, clock, joined = _date_patterns(lang)
    cached = _fields(day) <= _DAY_FIELDS and _fields(clock) <= _CLOCK_FIELDS
    return joined.replace("'", ""), cached


@lru_cache(maxsize=4096)
def _format_clock(hour: int, minute: int, lang: str | None) -> str:
    locale, _day, clock, _joined = _date_patterns(lang)
    return str(clock.apply(time(hour, minute), locale))


def format_datetime(value: datetime, lang: str | None) -> str:
    """``2026年11月27日 16:30`` / ``Nov 27, 2026, 4:30 PM`` (medium date, short time).

    ``value`` is shown in its own time zone: convert it to the business zone first.
    Babel takes some microseconds per moment and a list may show hundreds, so the
    date part is cached by day and the time part by hour and minute (for patterns
    that use nothing else, as ours: a test checks the result is Babel's).
    """
    layout, cached = _datetime_layout(lang)
    if cached:
        clock_text = _format_clock(value.hour, value.minute, lang)
        day_text = format_date(value.date(), lang)
    else:
        locale, day, clock, _joined = _date_patterns(lang)
        clock_text, day_text = str(clock.apply(value, locale)), str(day.apply(value, locale))
    return layout.replace("{0}", clock_text).replace("{1}", day_text)


def money_symbols(currency: str) -> frozenset[str]:
    """Every symbol :func:`format_money` may show for ``currency`` (to read it back)."""
    return frozenset(currency_symbol(currency, lang) for lang in BABEL_LOCALES)
