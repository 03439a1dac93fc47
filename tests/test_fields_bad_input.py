"""Hostile and malformed input: refused with a bilingual message, never a crash."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from engine.fields import FieldValueError, kind_of
from engine.i18n import Text
from engine.model import Field, Option


def make(kind: str, **kw: Any) -> Field:
    return Field(name="f", kind=kind, label=Text(zh="字段", en="Field"), **kw)


def refused(field: Field, raw: Any) -> Text:
    with pytest.raises(FieldValueError) as info:
        kind_of(field).coerce(field, raw)
    assert info.value.http_status == 422
    return info.value.text


def test_ten_megabytes_into_text_is_refused_in_constant_time() -> None:
    huge = "x" * (10 * 1024 * 1024)
    start = time.perf_counter()
    message = refused(make("text"), huge)
    assert time.perf_counter() - start < 0.5
    assert message.en == "must be at most 1000 characters (got 10,485,760)"
    assert message.zh == "不能超过 1000 个字符（现有 10485760 个）"


def test_ten_megabytes_into_text_with_a_pattern_never_reaches_the_regex() -> None:
    field = make("text", pattern="^(a+)+$")
    huge = "a" * (10 * 1024 * 1024) + "!"
    start = time.perf_counter()
    assert refused(field, huge).en == "must be at most 1000 characters (got 10,485,761)"
    assert time.perf_counter() - start < 0.5


def test_long_text_default_cap_and_max_length_override() -> None:
    assert refused(make("long_text"), "y" * 100_001).en == (
        "must be at most 100000 characters (got 100,001)"
    )
    field = make("long_text")
    assert kind_of(field).coerce(field, "y" * 100_000) == "y" * 100_000
    wide = make("text", max_length=5000)
    assert kind_of(wide).coerce(wide, "z" * 5000) == "z" * 5000
    assert refused(make("text", max_length=10), "z" * 11).en == (
        "must be at most 10 characters (got 11)"
    )


@pytest.mark.parametrize("kind", ["text", "long_text", "email", "url", "user", "autonumber"])
def test_nul_anywhere_in_text_is_refused(kind: str) -> None:
    message = refused(make(kind), "abc\x00def")
    assert message.en == "contains a control character (U+0000) that is not allowed"
    assert message.zh == "包含不允许的控制字符 U+0000"


def test_other_control_characters_are_refused_but_tabs_and_newlines_kept() -> None:
    assert refused(make("text"), "a\x1bb").en == (
        "contains a control character (U+001B) that is not allowed"
    )
    field = make("long_text")
    assert kind_of(field).coerce(field, "a\tb\r\nc") == "a\tb\nc"


def test_lone_surrogate_is_refused() -> None:
    message = refused(make("text"), "ok\ud800")
    assert message.en == "contains an invalid Unicode character (lone surrogate U+D800)"
    assert message.zh == "包含无效的 Unicode 字符（孤立代理项 U+D800）"


@pytest.mark.parametrize("kind", ["integer", "decimal", "money", "percent"])
def test_float_infinity_from_json_1e309_is_refused(kind: str) -> None:
    raw = json.loads("1e309")
    assert raw == float("inf")
    assert refused(make(kind), raw).en == "not a valid number: inf"


@pytest.mark.parametrize("kind", ["integer", "decimal", "money", "percent"])
@pytest.mark.parametrize("raw", ["NaN", "nan", "Infinity", "-Infinity", "inf", "0x10", "1 000"])
def test_non_numbers_as_text_are_refused(kind: str, raw: str) -> None:
    message = refused(make(kind), raw)
    assert message.en == f"not a valid number: {raw}"
    assert message.zh == f"不是有效的数字：{raw}"


@pytest.mark.parametrize(
    "raw", [float("nan"), Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity")]
)
def test_non_finite_numbers_are_refused(raw: Any) -> None:
    assert refused(make("decimal"), raw).get("en").startswith("not a valid number: ")


def test_1e309_as_text_is_out_of_range_not_infinite() -> None:
    assert refused(make("integer"), "1e309").en == (
        "out of range for a whole number (-2^63 to 2^63-1): 1e309"
    )
    assert refused(make("money"), "1e309").en == (
        "out of range: must be less than 1,000,000,000,000,000 in size: 1e309"
    )


def test_minus_zero_is_zero() -> None:
    integer = make("integer")
    assert kind_of(integer).coerce(integer, "-0") == 0
    assert kind_of(integer).coerce(integer, -0.0) == 0
    money = make("money")
    value = kind_of(money).coerce(money, "-0")
    assert value == 0 and not value.is_signed() and str(value) == "0.00"
    assert kind_of(money).display(money, value, "zh") == "¥0.00"
    assert kind_of(money).display(money, Decimal("-0.00"), "en") == "CN¥0.00"


def test_integer_limited_to_signed_64_bit() -> None:
    field = make("integer")
    assert kind_of(field).coerce(field, 2**63 - 1) == 2**63 - 1
    assert kind_of(field).coerce(field, str(-(2**63))) == -(2**63)
    message = refused(field, 99999999999999999999)
    assert message.en == ("out of range for a whole number (-2^63 to 2^63-1): 99999999999999999999")
    assert message.zh == "超出整数范围（-2^63 到 2^63-1）：99999999999999999999"
    refused(field, "99999999999999999999")
    refused(field, 2**63)


def test_float_into_integer() -> None:
    field = make("integer")
    message = refused(field, 1.5)
    assert message.en == "not a whole number: 1.5"
    assert message.zh == "不是整数：1.5"
    assert refused(field, "1.5").en == "not a whole number: 1.5"
    assert kind_of(field).coerce(field, 2.0) == 2  # a JSON 2.0 is a whole number


def test_booleans_are_not_numbers() -> None:
    assert refused(make("integer"), True).en == "expected a number, got true"
    assert refused(make("money"), False).en == "expected a number, got false"


def test_impossible_dates() -> None:
    message = refused(make("date"), "2024-02-30")
    assert message.zh == "不是有效的日期：2024-02-30"
    assert message.en == "not a valid date: 2024-02-30"
    assert refused(make("date"), "20241301").en == "not a valid date: 20241301"
    assert refused(make("date"), 20241301).en == "not a valid date: 20241301"
    assert refused(make("datetime"), "2024-02-30T10:00").en == (
        "not a valid date and time: 2024-02-30T10:00"
    )
    assert refused(make("datetime"), "2024-02-03T25:00").en == (
        "not a valid date and time: 2024-02-03T25:00"
    )


def test_money_with_twenty_decimals() -> None:
    message = refused(make("money"), "1.00000000000000000001")
    assert message.en == "at most 2 decimal places: 1.00000000000000000001"
    assert message.zh == "最多 2 位小数：1.00000000000000000001"
    # Trailing zeros are not extra precision.
    field = make("money")
    assert kind_of(field).coerce(field, "1.50000000000000000000") == Decimal("1.50")


def test_money_beyond_ten_to_the_fifteen() -> None:
    message = refused(make("money"), 10**15)
    assert message.en == (
        "out of range: must be less than 1,000,000,000,000,000 in size: 1000000000000000"
    )
    refused(make("money"), "-1000000000000000")
    field = make("money")
    assert kind_of(field).coerce(field, "999999999999999.99") == Decimal("999999999999999.99")


def test_decimal_float_from_json_goes_through_str() -> None:
    field = make("decimal")
    value = kind_of(field).coerce(field, json.loads("0.1"))
    assert value == Decimal("0.10")
    assert value != Decimal(0.1)  # noqa: RUF032 - the binary value 0.1000000000000000055...
    # 0.1 + 0.2 is 0.30000000000000004: refused, not silently rounded.
    assert refused(field, 0.1 + 0.2).en == "at most 2 decimal places: 0.30000000000000004"


def test_choice_value_not_in_options() -> None:
    field = make("choice", options=(Option("A", Text.of("A")), Option("B", Text.of("B"))))
    message = refused(field, "C")
    assert message.en == "not one of the options: C (choose from A, B)"
    assert message.zh == "不是可选项：C（可选：A, B）"
    assert kind_of(field).validate(field, "C") == [message]


def test_javascript_url() -> None:
    message = refused(make("url"), "javascript:alert(1)")
    assert message.en == "only http and https links are allowed: javascript:alert(1)"
    assert message.zh == "只允许 http 或 https 链接：javascript:alert(1)"
    for raw in (
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
    ):
        assert (
            refused(make("url"), raw).get("en").startswith("only http and https links are allowed")
        )
    assert refused(make("url"), "java\nscript:alert(1)").get("en").startswith("not a valid URL")


def test_email_without_at() -> None:
    message = refused(make("email"), "zhang.example.com")
    assert message.en == "not a valid email address: zhang.example.com"
    assert message.zh == "不是有效的邮箱地址：zhang.example.com"


def test_messages_quote_long_input_shortly() -> None:
    message = refused(make("integer"), "9" * 90 + "x")
    assert message.en == "not a valid number: " + "9" * 40 + "…"


@pytest.mark.parametrize(
    ("kind", "raw", "en"),
    [
        ("text", {"a": 1}, "expected text, got {'a': 1}"),
        ("text", True, "expected text, got true"),
        ("integer", [1], "expected a number, got [1]"),
        ("date", 1.5, "expected a date, got 1.5"),
        ("datetime", 1700000000, "expected a date and time, got 1700000000"),
        ("boolean", "maybe", "expected yes or no (true/false): maybe"),
        ("boolean", 2, "expected yes or no (true/false): 2"),
        ("ref", "12abc", "not a valid record id: 12abc"),
        ("ref", 0, "not a valid record id: 0"),
        ("ref", -3, "not a valid record id: -3"),
        ("ref", True, "not a valid record id: true"),
        ("user", 12, "expected a user name, got 12"),
        ("user", "zhang san", "not a valid user name: zhang san"),
        ("file", "../etc/passwd", "not a valid file key: ../etc/passwd"),
        ("file", "/etc/passwd", "not a valid file key: /etc/passwd"),
        ("file", "a\\b.pdf", "not a valid file key: a\\b.pdf"),
        ("table", "not json", "expected a list of rows: not json"),
        ("table", {"qty": 1}, "expected a list of rows: {'qty': 1}"),
    ],
)
def test_wrong_types_are_refused_with_a_message(kind: str, raw: Any, en: str) -> None:
    field = make(kind, fields={"qty": make("integer")} if kind == "table" else {})
    assert refused(field, raw).en == en


@pytest.mark.parametrize(
    ("kind", "en"),
    [
        ("integer", "not a valid number: 1111111111111111111111111111111111111111…"),
        ("money", "not a valid number: 1111111111111111111111111111111111111111…"),
        ("date", "not a valid date: 1111111111111111111111111111111111111111…"),
        ("datetime", "not a valid date and time: 1111111111111111111111111111111111111111…"),
        ("boolean", "expected yes or no (true/false): 1111111111111111111111111111111111111111…"),
        ("ref", "not a valid record id: 1111111111111111111111111111111111111111…"),
        ("phone", "must be at most 40 characters (got 10,485,760)"),
        ("email", "must be at most 254 characters (got 10,485,760)"),
        ("url", "must be at most 1000 characters (got 10,485,760)"),
        ("user", "must be at most 150 characters (got 10,485,760)"),
        ("file", "must be at most 255 characters (got 10,485,760)"),
    ],
)
def test_huge_input_is_refused_quickly_by_every_kind(kind: str, en: str) -> None:
    huge = "1" * (10 * 1024 * 1024)
    start = time.perf_counter()
    assert refused(make(kind), huge).en == en
    assert time.perf_counter() - start < 0.5


def test_field_value_error_is_a_formflow_error() -> None:
    from engine.errors import FormflowError

    with pytest.raises(FormflowError) as info:
        kind_of(make("integer")).coerce(make("integer"), "x")
    assert info.value.message("zh") == "不是有效的数字：x"
    assert info.value.message("en") == "not a valid number: x"
