"""Numeric kinds: integer, decimal, money, percent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.fields import FieldValueError, kind_of
from engine.i18n import Text
from engine.model import Field


def make(kind: str, **kw: Any) -> Field:
    return Field(name="f", kind=kind, label=Text(zh="字段", en="Field"), **kw)


def coerce(field: Field, raw: Any) -> Any:
    return kind_of(field).coerce(field, raw)


def validate(field: Field, raw: Any) -> list[Text]:
    kind = kind_of(field)
    return kind.validate(field, kind.coerce(field, raw))


def display(field: Field, raw: Any, lang: str) -> str:
    kind = kind_of(field)
    return kind.display(field, kind.coerce(field, raw), lang)


def check(field: Field) -> list[tuple[str, str]]:
    return [(p.message.en or "", p.hint.en or "") for p in kind_of(field).check(field)]


# -- integer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (42, 42),
        ("42", 42),
        (" -7 ", -7),
        ("+7", 7),
        ("1,234,567", 1234567),
        ("１２３", 123),  # full-width digits
        ("2.0", 2),
        ("1e3", 1000),
        (Decimal("5"), 5),
    ],
)
def test_integer_accepts(raw: Any, value: int) -> None:
    result = coerce(make("integer"), raw)
    assert result == value and type(result) is int


@pytest.mark.parametrize("raw", ["1,2", "12,34", "1,2345", ",123", "1.2.3", "--1", "1-"])
def test_integer_refuses_malformed_text(raw: str) -> None:
    with pytest.raises(FieldValueError) as info:
        coerce(make("integer"), raw)
    assert info.value.text.en == f"not a valid number: {raw}"


def test_integer_bounds() -> None:
    field = make("integer", min=1, max=10)
    assert validate(field, "5") == []
    assert validate(field, "0") == [Text(zh="不能小于 1", en="must be at least 1")]
    assert validate(field, "11") == [Text(zh="不能大于 10", en="must be at most 10")]
    assert validate(make("integer", min=-5), -5) == []


def test_integer_display() -> None:
    field = make("integer")
    assert display(field, 1234567, "zh") == "1,234,567"
    assert display(field, -5, "en") == "-5"


def test_integer_from_storage() -> None:
    field = make("integer")
    assert kind_of(field).from_storage(field, 7) == 7
    assert kind_of(field).from_storage(field, None) is None


# -- decimal -----------------------------------------------------------------------------


def test_decimal_is_quantized_to_precision() -> None:
    field = make("decimal")
    assert str(coerce(field, "1.5")) == "1.50"
    assert str(coerce(field, 3)) == "3.00"
    assert str(coerce(make("decimal", precision=4), "1.23456e2")) == "123.4560"
    assert str(coerce(make("decimal", precision=0), "12")) == "12"
    with pytest.raises(FieldValueError) as info:
        coerce(make("decimal", precision=0), "12.5")
    assert info.value.text.en == "no decimal places allowed: 12.5"
    with pytest.raises(FieldValueError) as info:
        coerce(make("decimal", precision=4), "0.00001")
    assert info.value.text.en == "at most 4 decimal places: 0.00001"


def test_decimal_values_are_never_floats() -> None:
    for raw in (0.1, "0.1", 1, Decimal("0.1")):
        assert type(coerce(make("decimal"), raw)) is Decimal


def test_decimal_bounds_are_checked_with_the_kind() -> None:
    field = make("decimal", min="0.5", max=2)
    assert validate(field, "0.4") == [Text(zh="不能小于 0.5", en="must be at least 0.5")]
    assert validate(field, "2.01") == [Text(zh="不能大于 2", en="must be at most 2")]


def test_decimal_validate_rechecks_values_set_in_code() -> None:
    field = make("decimal")
    assert kind_of(field).validate(field, Decimal("1.234")) == [
        Text(zh="最多 2 位小数", en="at most 2 decimal places")
    ]
    assert kind_of(field).validate(field, Decimal("1e16")) == [
        Text(zh="超出范围", en="out of range")
    ]


def test_decimal_display_without_and_with_explicit_precision() -> None:
    assert display(make("decimal"), "1234.5", "en") == "1,234.5"
    assert display(make("decimal"), "2", "zh") == "2"
    assert display(make("decimal", precision=3), "1234.5", "en") == "1,234.500"


def test_decimal_definition_checks() -> None:
    assert check(make("decimal", precision=9)) == [
        ("precision must be a whole number from 0 to 8: 9", "the default is 2 places")
    ]
    assert check(make("decimal", precision=True)) == [
        ("precision must be a whole number from 0 to 8: true", "the default is 2 places")
    ]
    assert check(make("decimal", min=10, max=1)) == [
        ("min (10) is greater than max (1)", "swap them or fix one of them")
    ]
    assert check(make("decimal", min="abc")) == [
        (
            "min is not a valid number: not a valid number: abc",
            "write min as a value of the field's own kind",
        )
    ]
    assert check(make("decimal", min="0.001")) == [
        (
            "min is not a valid number: at most 2 decimal places: 0.001",
            "write min as a value of the field's own kind",
        )
    ]
    assert check(make("integer", min=1.5)) == [
        (
            "min is not a valid whole number: not a whole number: 1.5",
            "write min as a value of the field's own kind",
        )
    ]


# -- money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1234.5", "1234.50"),
        ("¥1,234.50", "1234.50"),
        ("￥1,234.50", "1234.50"),  # full-width yen sign
        ("-¥5", "-5.00"),
        ("¥-5", "-5.00"),
        ("CN¥1,234.50", "1234.50"),  # as English pages show it
        ("-CN¥5", "-5.00"),
        ("CNY 88", "88.00"),
        ("100元", "100.00"),
        (12, "12.00"),
        (19.99, "19.99"),
    ],
)
def test_money_accepts(raw: Any, value: str) -> None:
    assert str(coerce(make("money"), raw)) == value


def test_money_symbol_of_another_currency_is_refused() -> None:
    with pytest.raises(FieldValueError, match=r"not a valid number: \$5"):
        coerce(make("money"), "$5")
    assert str(coerce(make("money", currency="USD"), "$5")) == "5.00"
    assert str(coerce(make("money", currency="USD"), "US$5")) == "5.00"
    assert str(coerce(make("money", currency="CHF"), "CHF\xa01,500")) == "1500.00"


def test_money_display() -> None:
    field = make("money")
    assert display(field, "1234.5", "zh") == "¥1,234.50"
    assert display(field, "-1234.5", "zh") == "-¥1,234.50"
    # CLDR's symbols: in English a bare ¥ is the yen, so the yuan is CN¥.
    assert display(field, "1234.5", "en") == "CN¥1,234.50"
    assert display(field, "-1234.5", "en") == "-CN¥1,234.50"
    assert display(make("money", currency="USD"), "3", "en") == "$3.00"
    assert display(make("money", currency="USD"), "3", "zh") == "US$3.00"
    assert display(make("money", currency="JPY", precision=0), "1500", "zh") == "JP¥1,500"
    # A symbol of letters is set off by a no-break space (CLDR currency spacing).
    assert display(make("money", currency="CHF", precision=0), "1500", "en") == "CHF\xa01,500"
    assert display(make("money", precision=4), "1.5", "zh") == "¥1.5000"


def test_money_min_message_shows_the_amount() -> None:
    field = make("money", min=0)
    assert validate(field, "-1") == [Text(zh="不能小于 ¥0.00", en="must be at least CN¥0.00")]


def test_currency_code_is_checked() -> None:
    assert check(make("money", currency="cny")) == [
        ("invalid currency code: cny", "write it in capitals: CNY")
    ]
    assert check(make("money", currency="RMB1")) == [
        ("invalid currency code: RMB1", "use a 3-letter ISO 4217 code such as CNY or USD")
    ]
    assert check(make("money", currency="USD", precision=2, min=0, max=100)) == []


# -- percent -----------------------------------------------------------------------------


def test_percent_is_the_number_shown() -> None:
    field = make("percent")
    assert coerce(field, "60%") == Decimal("60")
    assert coerce(field, "12.5 %") == Decimal("12.5")
    assert coerce(field, 0.6) == Decimal("0.6")  # 0.6 means 0.6%, not 60%
    assert display(field, "60", "zh") == "60%"
    assert display(field, "12.5", "en") == "12.5%"
    assert display(make("percent", precision=1), "60", "en") == "60.0%"


def test_percent_bounds() -> None:
    field = make("percent", min=0, max=100)
    assert validate(field, "101%") == [Text(zh="不能大于 100%", en="must be at most 100%")]
