"""Date and date-time kinds, and the business time zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.fields import (
    DEFAULT_TIMEZONE,
    FieldValueError,
    business_timezone,
    kind_of,
    set_business_timezone,
    using_timezone,
)
from engine.i18n import Text
from engine.model import Field

SHANGHAI = ZoneInfo("Asia/Shanghai")


def make(kind: str, **kw: Any) -> Field:
    return Field(name="f", kind=kind, label=Text(zh="字段", en="Field"), **kw)


def coerce(field: Field, raw: Any) -> Any:
    return kind_of(field).coerce(field, raw)


@pytest.fixture(autouse=True)
def _default_zone() -> Iterator[None]:
    set_business_timezone(DEFAULT_TIMEZONE)
    yield
    set_business_timezone(DEFAULT_TIMEZONE)


# -- date --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-27",
        "2026/11/27",
        "2026.11.27",
        "2026-11-27 ",
        "2026年11月27日",
        "2026 年 11 月 27 日",
        "20261127",
        20261127,
        "２０２６-１１-２７",
        date(2026, 11, 27),
        datetime(2026, 11, 27, 23, 59),  # naive: business wall-clock time
        datetime(2026, 11, 26, 16, 0, tzinfo=UTC),  # 00:00 on the 27th in Shanghai
        "2026-11-26T16:00:00Z",
        "2026-11-27T09:30",
    ],
)
def test_date_accepts(raw: Any) -> None:
    assert coerce(make("date"), raw) == date(2026, 11, 27)


def test_single_digit_month_and_day() -> None:
    assert coerce(make("date"), "2026-1-5") == date(2026, 1, 5)


@pytest.mark.parametrize(
    "raw",
    [
        "2024-02-30",
        "2023-02-29",
        "20241301",
        "2024-13-01",
        "27/11/2026",
        "tomorrow",
        "2026-11",
        "1700000000",
    ],
)
def test_date_refuses(raw: str) -> None:
    with pytest.raises(FieldValueError) as info:
        coerce(make("date"), raw)
    assert info.value.text.en == f"not a valid date: {raw}"


def test_leap_day() -> None:
    assert coerce(make("date"), "2024-02-29") == date(2024, 2, 29)


def test_date_display() -> None:
    field = make("date")
    assert kind_of(field).display(field, date(2026, 11, 27), "zh") == "2026年11月27日"
    assert kind_of(field).display(field, date(2026, 1, 5), "zh-CN") == "2026年1月5日"
    assert kind_of(field).display(field, date(2026, 11, 27), "en") == "Nov 27, 2026"
    assert kind_of(field).display(field, date(2026, 1, 5), "en-US") == "Jan 5, 2026"


def test_date_bounds() -> None:
    field = make("date", min="2026-01-01", max="2026-12-31")
    kind = kind_of(field)
    assert kind.validate(field, date(2026, 6, 1)) == []
    assert kind.validate(field, date(2025, 12, 31)) == [
        Text(zh="不能早于 2026年1月1日", en="must be on or after Jan 1, 2026")
    ]
    assert kind.validate(field, date(2027, 1, 1)) == [
        Text(zh="不能晚于 2026年12月31日", en="must be on or before Dec 31, 2026")
    ]


def test_date_definition_checks() -> None:
    field = make("date", min="2026-12-31", max="2026-01-01")
    assert [p.message.en for p in kind_of(field).check(field)] == [
        "min (2026-12-31) is greater than max (2026-01-01)"
    ]
    field = make("date", min="=TODAY()")
    [problem] = kind_of(field).check(field)
    assert problem.message.en == "min is not a valid date: not a valid date: =TODAY()"


def test_date_json_and_storage() -> None:
    field = make("date")
    kind = kind_of(field)
    assert kind.to_json(field, date(2026, 11, 27)) == "2026-11-27"
    assert kind.from_storage(field, "2026-11-27") == date(2026, 11, 27)
    assert kind.from_storage(field, date(2026, 11, 27)) == date(2026, 11, 27)
    assert kind.from_storage(field, datetime(2026, 11, 27, 0, 0)) == date(2026, 11, 27)


# -- datetime ----------------------------------------------------------------------------


def test_naive_input_is_business_time() -> None:
    value = coerce(make("datetime"), "2026-11-27T14:30")
    assert value == datetime(2026, 11, 27, 14, 30, tzinfo=SHANGHAI)
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-27 14:30",
        "2026/11/27 14:30:00",
        "2026-11-27T14:30:00.000",
        "2026-11-27T06:30:00Z",
        "2026-11-27T06:30:00+00:00",
        "2026-11-27T15:30:00+0900",
        datetime(2026, 11, 27, 14, 30),
        datetime(2026, 11, 27, 6, 30, tzinfo=UTC),
    ],
)
def test_datetime_accepts(raw: Any) -> None:
    value = coerce(make("datetime"), raw)
    assert value == datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
    assert value.tzinfo == SHANGHAI


def test_date_into_datetime_is_midnight_business_time() -> None:
    assert coerce(make("datetime"), date(2026, 11, 27)) == datetime(2026, 11, 27, tzinfo=SHANGHAI)
    assert coerce(make("datetime"), "2026-11-27") == datetime(2026, 11, 27, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "raw", ["2026-11-27T24:00", "2026-11-27T14:60", "2026-11-27T14:30+25:00", "14:30", "now"]
)
def test_datetime_refuses(raw: str) -> None:
    with pytest.raises(FieldValueError) as info:
        coerce(make("datetime"), raw)
    assert info.value.text.en == f"not a valid date and time: {raw}"


def test_datetime_at_the_edge_of_time_does_not_crash() -> None:
    with pytest.raises(FieldValueError):
        coerce(make("datetime"), "0001-01-01T00:00:00+14:00")
    with pytest.raises(FieldValueError):
        coerce(make("date"), "9999-12-31T23:00:00-12:00")


def test_business_timezone_can_be_changed() -> None:
    set_business_timezone("Europe/Berlin")
    assert str(business_timezone()) == "Europe/Berlin"
    value = coerce(make("datetime"), "2026-07-01 12:00")
    assert value.astimezone(UTC) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        set_business_timezone("Mars/Olympus")


def test_using_timezone_is_scoped() -> None:
    with using_timezone("UTC") as zone:
        assert str(zone) == "UTC"
        value = coerce(make("datetime"), "2026-07-01 12:00")
        assert value == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert business_timezone() == SHANGHAI


def test_datetime_display_in_business_time() -> None:
    field = make("datetime")
    moment = datetime(2026, 11, 27, 6, 5, tzinfo=UTC)
    assert kind_of(field).display(field, moment, "zh") == "2026年11月27日 14:05"
    # CLDR's English time: 12-hour, a narrow no-break space before PM.
    assert kind_of(field).display(field, moment, "en") == "Nov 27, 2026, 2:05\u202fPM"


def test_datetime_storage_round_trip() -> None:
    field = make("datetime")
    kind = kind_of(field)
    value = coerce(field, "2026-11-27 14:30")
    stored = kind.to_storage(field, value)
    assert stored == value and stored.tzinfo == UTC
    # SQLite hands back naive UTC; a string may come from rows written outside SQLAlchemy.
    for raw in (stored.replace(tzinfo=None), stored, "2026-11-27 06:30:00"):
        back = kind.from_storage(field, raw)
        assert back == value and back.tzinfo == SHANGHAI
    assert kind.to_json(field, value) == "2026-11-27T14:30:00+08:00"


def test_datetime_bounds() -> None:
    field = make("datetime", min="2026-01-01 09:00")
    kind = kind_of(field)
    early = datetime(2026, 1, 1, 0, 59, tzinfo=UTC)  # 08:59 in Shanghai
    assert kind.validate(field, early) == [
        Text(zh="不能早于 2026年1月1日 09:00", en="must be at or after Jan 1, 2026, 9:00\u202fAM")
    ]
    fixed = timezone(timedelta(hours=8))
    assert kind.validate(field, datetime(2026, 1, 1, 9, 0, tzinfo=fixed)) == []
