"""Dates, numbers, percentages and money formatted per locale (engine.locales, Babel)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from hypothesis import given
from hypothesis import strategies as st

from engine.fields import kind_of
from engine.fields.dates import using_timezone
from engine.fields.numbers import DECIMAL_LIMIT, INT64_MAX, INT64_MIN, MAX_PRECISION
from engine.i18n import Text
from engine.locales import (
    BABEL_LOCALES,
    babel_locale,
    format_date,
    format_datetime,
    format_decimal,
    format_integer,
    format_money,
    format_percent,
    number_format,
)
from engine.model import Field


def make(kind: str, **extra: Any) -> Field:
    return Field(name="x", kind=kind, label=Text(zh="字段", en="Field"), **extra)


def display(field: Field, raw: Any, lang: str) -> str:
    kind = kind_of(field)
    return kind.display(field, kind.coerce(field, raw), lang)


def test_the_issues_examples() -> None:
    money = make("money")
    assert display(money, "1234.5", "zh") == "¥1,234.50"
    assert display(money, "1234.5", "en") == "CN¥1,234.50"
    day = make("date")
    assert display(day, "2026-11-27", "zh") == "2026年11月27日"
    assert display(day, "2026-11-27", "en") == "Nov 27, 2026"


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "zh",
            ["1,234,567", "1,234.5", "1,234.500", "-¥1,234.50", "12.5%", "60.0%", "2026年1月5日"],
        ),
        (
            "en",
            ["1,234,567", "1,234.5", "1,234.500", "-CN¥1,234.50", "12.5%", "60.0%", "Jan 5, 2026"],
        ),
    ],
)
def test_each_kind_in_both_languages(lang: str, expected: list[str]) -> None:
    assert [
        display(make("integer"), 1234567, lang),
        display(make("decimal"), "1234.50", lang),
        display(make("decimal", precision=3), "1234.5", lang),
        display(make("money"), "-1234.5", lang),
        display(make("percent"), "12.50", lang),
        display(make("percent", precision=1), "60", lang),
        display(make("date"), "2026-01-05", lang),
    ] == expected


def test_datetimes_are_shown_in_the_business_time_zone() -> None:
    field = make("datetime")
    moment = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    assert kind_of(field).display(field, moment, "zh") == "2026年11月27日 16:30"
    assert kind_of(field).display(field, moment, "en") == "Nov 27, 2026, 4:30\u202fPM"
    with using_timezone("America/New_York"):
        assert kind_of(field).display(field, moment, "zh") == "2026年11月27日 03:30"
        assert kind_of(field).display(field, moment, "en") == "Nov 27, 2026, 3:30\u202fAM"
    assert format_datetime(datetime(2026, 1, 5, 9, 5), "zh") == "2026年1月5日 09:05"


def test_money_is_exact_at_the_limits() -> None:
    biggest = DECIMAL_LIMIT - Decimal("0.00000001")  # 15 integer digits, 8 places
    assert format_money(biggest, "CNY", "zh", 8) == "¥999,999,999,999,999.99999999"
    assert format_money(-biggest, "USD", "en", 8) == "-$999,999,999,999,999.99999999"
    assert format_integer(INT64_MAX, "en") == "9,223,372,036,854,775,807"
    assert format_integer(INT64_MIN, "zh") == "-9,223,372,036,854,775,808"
    assert format_money(Decimal("0.10"), "CNY", "zh") == "¥0.10"  # 0.1 is not a float here
    assert format_money(Decimal("-0.00"), "CNY", "en") == "CN¥0.00"  # never "-0"
    with pytest.raises(TypeError):
        format_money(0.1, "CNY", "zh")  # type: ignore[arg-type]


@given(
    st.decimals(
        min_value=-DECIMAL_LIMIT + 1, max_value=DECIMAL_LIMIT - 1, allow_nan=False, places=4
    ),
    st.integers(min_value=4, max_value=MAX_PRECISION),
    st.sampled_from(["zh", "en"]),
)
def test_decimals_keep_every_digit(value: Decimal, places: int, lang: str) -> None:
    shown = format_decimal(value, lang, places)
    assert Decimal(shown.replace(",", "")) == value
    assert shown.replace(",", "") == f"{value:.{places}f}"
    money = format_money(value, "CNY", lang, places)
    assert money.replace(",", "").replace("CN¥", "").replace("¥", "") == f"{value:.{places}f}"


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("currency", ["CNY", "USD", "JPY", "EUR", "CHF", "HKD"])
def test_shown_money_reads_back(lang: str, currency: str) -> None:
    field = make("money", currency=currency)
    kind = kind_of(field)
    for raw in ("1234.5", "-0.01", "1000000"):
        value = kind.coerce(field, raw)
        assert kind.coerce(field, kind.display(field, value, lang)) == value


def test_places_none_shows_what_the_value_needs() -> None:
    assert format_decimal(Decimal("2.00"), "en") == "2"
    assert format_decimal(Decimal("1234.50"), "zh") == "1,234.5"
    assert format_decimal(Decimal("0.00000001"), "en") == "0.00000001"
    assert format_percent(Decimal("100"), "en") == "100%"
    assert format_percent(Decimal("12.5"), "zh") == "12.5%"


def test_locales_are_built_once() -> None:
    assert babel_locale("zh") is babel_locale("zh")
    assert str(babel_locale("zh")) == "zh_Hans_CN" and str(babel_locale("en-US")) == "en"
    assert str(babel_locale("fr")) == "zh_Hans_CN"  # unknown: the default language


def test_the_catalog_locale_formats_like_the_formatting_locale() -> None:
    """flask-babel gets ``zh_Hans`` (the catalog's name); CLDR's zh_Hans_CN is the same."""
    from babel import dates, numbers

    catalog = Locale.parse("zh_Hans")
    assert numbers.format_currency(Decimal("-1234.5"), "CNY", locale=catalog) == format_money(
        Decimal("-1234.5"), "CNY", "zh"
    )
    assert dates.format_date(date(2026, 11, 27), "medium", locale=catalog) == format_date(
        date(2026, 11, 27), "zh"
    )
    assert numbers.format_decimal(Decimal("1234.5"), locale=catalog) == format_decimal(
        Decimal("1234.5"), "zh"
    )


@given(
    value=st.decimals(
        min_value=-DECIMAL_LIMIT + 1, max_value=DECIMAL_LIMIT - 1, allow_nan=False, places=8
    )
    | st.decimals(min_value=-1000, max_value=1000, allow_nan=False, places=3),
    places=st.none() | st.integers(min_value=0, max_value=MAX_PRECISION),
    lang=st.sampled_from(sorted(BABEL_LOCALES)),
    kind=st.sampled_from(["decimal", "percent", "currency"]),
    currency=st.sampled_from(["CNY", "USD", "JPY", "CHF", "EUR"]),
)
def test_the_fast_path_renders_exactly_as_babel(
    value: Decimal, places: int | None, lang: str, kind: str, currency: str
) -> None:
    fmt = number_format(lang, kind, places, currency if kind == "currency" else None)
    assert fmt.fast  # our locales' patterns never need Babel's slow path
    # Babel's percent pattern multiplies by 100; the percent kind stores the number shown.
    reference = fmt.babel(value.scaleb(-fmt.scaled) if fmt.scaled else value)
    assert fmt.apply(value) == reference


def _babel_datetime(value: datetime, lang: str) -> str:
    """What Babel itself renders for a moment: CLDR's medium date and short time."""
    from babel import dates

    locale = babel_locale(lang)
    joined = locale.datetime_formats["medium"]
    joined = joined if isinstance(joined, str) else joined.pattern
    return (
        joined.replace("'", "")
        .replace("{0}", dates.format_time(value, "short", locale=locale))
        .replace("{1}", dates.format_date(value, "medium", locale=locale))
    )


@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))
    | st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 12, 31),
        timezones=st.sampled_from([UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]),
    ),
    lang=st.sampled_from(["zh", "en", "zh-CN", "en-US"]),
)
def test_datetimes_render_exactly_as_babel(moment: datetime, lang: str) -> None:
    """format_datetime caches the date by day and the time by hour and minute: the text
    is still Babel's, in the moment's own zone."""
    assert format_datetime(moment, lang) == _babel_datetime(moment, lang)


def test_datetimes_go_through_babel_for_patterns_that_cannot_be_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import engine.locales as locales

    moment = datetime(2026, 11, 27, 16, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    for lang in ("zh", "en"):
        layout, cached = locales._datetime_layout(lang)
        assert cached  # our locales' medium date and short time
        monkeypatch.setattr(locales, "_datetime_layout", lambda _lang, v=layout: (v, False))
        assert format_datetime(moment, lang) == _babel_datetime(moment, lang)
        monkeypatch.undo()
    assert format_datetime(moment, "zh") == "2026年11月27日 16:30"
