"""Text-like kinds: text, long_text, email, phone, url; blueprint patterns."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine.fields import FieldValueError, kind_of
from engine.fields.patterns import compile_pattern
from engine.i18n import Text
from engine.model import Field


def make(kind: str, **kw: Any) -> Field:
    return Field(name="f", kind=kind, label=Text(zh="字段", en="Field"), **kw)


def coerce(field: Field, raw: Any) -> Any:
    return kind_of(field).coerce(field, raw)


def messages(field: Field, raw: Any) -> list[str]:
    kind = kind_of(field)
    return [m.en or "" for m in kind.validate(field, kind.coerce(field, raw))]


def check(field: Field) -> list[tuple[str, str]]:
    return [(p.message.en or "", p.hint.en or "") for p in kind_of(field).check(field)]


# -- text --------------------------------------------------------------------------------


def test_text_is_stripped_and_numbers_accepted() -> None:
    field = make("text")
    assert coerce(field, "  ACME 公司 \n") == "ACME 公司"
    assert coerce(field, 10086) == "10086"
    assert coerce(field, 1.5) == "1.5"


def test_length_limits_report_every_message() -> None:
    field = make("text", min_length=3, max_length=10, pattern="[A-Z]+")
    assert messages(field, "ab") == [
        "must be at least 3 characters (got 2)",
        "does not match the required format ([A-Z]+)",
    ]
    assert messages(field, "ABC") == []


def test_validate_rechecks_length_of_values_set_in_code() -> None:
    field = make("text", max_length=3)
    assert [m.en for m in kind_of(field).validate(field, "abcd")] == [
        "must be at most 3 characters (got 4)"
    ]


def test_pattern_must_match_the_whole_value() -> None:
    field = make("text", pattern=r"\d{6}")
    assert messages(field, "100000") == []
    assert messages(field, "1000000") == [r"does not match the required format (\d{6})"]
    assert messages(field, "x100000") == [r"does not match the required format (\d{6})"]


def test_pattern_message_replaces_the_default() -> None:
    field = make(
        "text",
        pattern=r"\d{6}",
        pattern_message=Text(zh="邮编为 6 位数字", en="a postcode has 6 digits"),
    )
    [message] = kind_of(field).validate(field, "12")
    assert message == Text(zh="邮编为 6 位数字", en="a postcode has 6 digits")


def test_pattern_matches_unicode() -> None:
    field = make("text", pattern=r"\p{Han}+")
    assert messages(field, "张三") == []
    assert messages(field, "zhang") == [r"does not match the required format (\p{Han}+)"]


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    field = make("text", pattern="^(a+)+$")
    assert check(field) == []
    start = time.perf_counter()
    assert messages(field, "a" * 27 + "!") == ["does not match the required format (^(a+)+$)"]
    assert messages(field, "a" * 999 + "!") == ["does not match the required format (^(a+)+$)"]
    assert time.perf_counter() - start < 0.1
    assert messages(field, "aaaa") == []


def test_backreferences_are_refused_with_the_reason() -> None:
    [(message, hint)] = check(make("text", pattern=r"(a)\1"))
    assert message == r"invalid regular expression: invalid escape sequence: \1"
    assert hint.startswith(r"backreferences (\1 ...) are not supported: patterns use RE2 syntax")


@pytest.mark.parametrize("pattern", ["(?=a)b", "a(?!b)", "(?<=a)b", "(?<!a)b"])
def test_lookaround_is_refused_with_the_reason(pattern: str) -> None:
    [(message, hint)] = check(make("text", pattern=pattern))
    assert message.startswith("invalid regular expression: invalid perl operator: (?")
    assert hint.startswith("lookahead and lookbehind ((?= (?! (?<= (?<!) are not supported")


def test_broken_and_oversized_patterns_are_refused() -> None:
    [(message, _)] = check(make("text", pattern="[a-"))
    assert message == "invalid regular expression: missing ]: [a-"
    [(message, _)] = check(make("text", pattern="a" * 1001))
    assert message == "the pattern is too long (at most 1000 characters)"
    [(message, _)] = check(make("text", pattern="((a{100}){100}){100}"))
    assert message.startswith("invalid regular expression: ")


def test_compiled_patterns_are_cached() -> None:
    assert compile_pattern("[0-9]+") is compile_pattern("[0-9]+")


def test_length_definition_checks() -> None:
    assert check(make("text", min_length=5, max_length=3)) == [
        ("min_length (5) is greater than max_length (3)", "swap them or fix one of them")
    ]
    assert check(make("text", max_length=20_000)) == [
        ("max_length can be at most 10,000: 20,000", "use kind long_text for longer text")
    ]
    assert check(make("text", max_length=0)) == [
        ("max_length cannot be 0", "remove it or give a positive number")
    ]
    assert check(make("text", min_length=-1)) == [
        ("min_length must be a whole number >= 0: -1", "for example min_length: 100")
    ]
    assert check(make("text", min_length=2000)) == [
        (
            "min_length (2000) is above the default limit of 1,000 characters",
            "also set a larger max_length",
        )
    ]
    assert check(make("long_text", max_length=500_000)) == []


# -- long_text -----------------------------------------------------------------------------


def test_long_text_keeps_newlines_and_normalises_them() -> None:
    field = make("long_text")
    assert coerce(field, "第一行\r\n第二行\r第三行\n") == "第一行\n第二行\n第三行"


# -- email -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Zhang.San@Example.COM", "Zhang.San@example.com"),
        ("  li+crm@sub.example.cn ", "li+crm@sub.example.cn"),
        ("wang＠example.com", "wang@example.com"),  # full-width @ from a Chinese IME
        ("a@例子.中国", "a@例子.中国"),
    ],
)
def test_email_normalisation(raw: str, value: str) -> None:
    assert coerce(make("email"), raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        "a@b",
        "a@@b.com",
        "@b.com",
        "a b@c.com",
        "a@-b.com",
        "a@b..com",
        ".a@b.com",
        "a..b@c.com",
        "a@b.c",
        "<a@b.com>",
        "a@b.com.",
        "a@" + "x" * 64 + ".com",
    ],
)
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(FieldValueError, match="not a valid email address"):
        coerce(make("email"), raw)


def test_email_validate_and_pattern() -> None:
    field = make("email", pattern=r".*@acme\.com")
    assert messages(field, "a@acme.com") == []
    assert messages(field, "a@other.com") == [r"does not match the required format (.*@acme\.com)"]
    assert [m.en for m in kind_of(field).validate(field, "nope")] == [
        "not a valid email address: nope"
    ]


# -- phone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("+86 138-0013-8000", "+8613800138000"),
        ("(010) 6552.1234", "01065521234"),
        ("１３８００１３８０００", "13800138000"),  # full-width digits
        ("010-12345678 转 123", "01012345678;ext=123"),
        ("+1 (415) 555-0100 ext. 7", "+14155550100;ext=7"),
        ("95588", "95588"),
    ],
)
def test_phone_normalisation(raw: str, value: str) -> None:
    assert coerce(make("phone"), raw) == value


@pytest.mark.parametrize("raw", ["12", "call me", "138+0013", "+86 138 abc", "1" * 21])
def test_invalid_phones(raw: str) -> None:
    with pytest.raises(FieldValueError, match="not a valid phone number"):
        coerce(make("phone"), raw)


def test_phone_display() -> None:
    field = make("phone")
    value = coerce(field, "010-12345678 转 123")
    assert kind_of(field).display(field, value, "zh") == "01012345678 转 123"
    assert kind_of(field).display(field, value, "en") == "01012345678 ext. 123"
    assert kind_of(field).display(field, "+8613800138000", "en") == "+8613800138000"


# -- url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("HTTPS://Example.COM/Path?q=A#Frag", "https://example.com/Path?q=A#Frag"),
        ("example.com", "https://example.com"),
        ("www.example.com/a/b", "https://www.example.com/a/b"),
        ("example.com:8080/x", "https://example.com:8080/x"),
        ("//example.com/x", "https://example.com/x"),
        ("http://localhost:5000/", "http://localhost:5000/"),
        ("http://192.168.1.10/", "http://192.168.1.10/"),
        ("http://[::1]:8000/", "http://[::1]:8000/"),
        ("https://例子.中国/页面", "https://例子.中国/页面"),
    ],
)
def test_url_normalisation(raw: str, value: str) -> None:
    assert coerce(make("url"), raw) == value


@pytest.mark.parametrize(
    ("raw", "en"),
    [
        ("https://", "not a valid URL: https://"),
        ("https://exa mple.com", "not a valid URL: https://exa mple.com"),
        ("https://example", "not a valid URL: https://example"),
        ("http://example.com:99999/", "not a valid URL: http://example.com:99999/"),
        ("https://-bad-.com", "not a valid URL: https://-bad-.com"),
        ("localhost:8080", "only http and https links are allowed: localhost:8080"),
        ("ftp://example.com", "only http and https links are allowed: ftp://example.com"),
        (
            "https://bank.com@evil.example",
            "a URL cannot contain a user name or password: https://bank.com@evil.example",
        ),
    ],
)
def test_invalid_urls(raw: str, en: str) -> None:
    with pytest.raises(FieldValueError) as info:
        coerce(make("url"), raw)
    assert info.value.text.en == en


def test_url_validate_refuses_unsafe_values_set_in_code() -> None:
    field = make("url")
    assert [m.en for m in kind_of(field).validate(field, "javascript:alert(1)")] == [
        "only http and https links are allowed: javascript:alert(1)"
    ]
