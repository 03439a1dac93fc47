"""Date and date-time kinds, and the business time zone.

A ``datetime`` value is always timezone-aware. Input without a zone (a form's
``2026-11-27T14:30``, an import's ``2026/11/27 14:30``) means wall-clock time in
the *business time zone*: ``Asia/Shanghai`` unless the app calls
:func:`set_business_timezone` with the blueprint's ``timezone`` (or a request
runs inside :func:`using_timezone`). Canonical values are in the business zone;
the storage layer keeps UTC and :meth:`DateTimeKind.from_storage` converts back.

Accepted dates: ``2026-11-27``, ``2026/11/27``, ``2026.11.27``,
``2026年11月27日``, ``20261127`` (also as a JSON number), and an ISO date-time
(its date in the business zone). Impossible dates (``2024-02-30``) are refused.

Values are shown per locale through :mod:`engine.locales` (Babel), date-times in
the business zone: ``2026年11月27日 16:30`` (zh), ``Nov 27, 2026, 4:30 PM`` (en).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import Problem
from engine.fields.base import (
    FieldKind,
    FieldValueError,
    bound_messages,
    compare_bounds,
    is_int,
    short_input,
    show,
)
from engine.fields.registry import register
from engine.i18n import T, Text
from engine.locales import format_date, format_datetime
from engine.model import Field

DEFAULT_TIMEZONE = "Asia/Shanghai"

_default_tz: tzinfo = ZoneInfo(DEFAULT_TIMEZONE)
_current_tz: ContextVar[tzinfo | None] = ContextVar("formflow_business_tz", default=None)


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def set_business_timezone(tz: str | tzinfo) -> None:
    """Set the process-wide business time zone (e.g. from ``blueprint.timezone``)."""
    global _default_tz
    _default_tz = _zone(tz)


def business_timezone() -> tzinfo:
    """The zone naive input is read in and values are shown in."""
    return _current_tz.get() or _default_tz


@contextmanager
def using_timezone(tz: str | tzinfo) -> Iterator[tzinfo]:
    """Use another business time zone inside a ``with`` block (this context only)."""
    token = _current_tz.set(_zone(tz))
    try:
        yield business_timezone()
    finally:
        _current_tz.reset(token)


_MAX_DATE_TEXT = 64
_YMD = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_YMD_ZH = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?$")
#: Lines of ``YYYY-MM-DD`` (what DateKind reads the same as ``date.fromisoformat``).
_ISO_DATES = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}\n)*[0-9]{4}-[0-9]{2}-[0-9]{2}")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATETIME = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
    r"(?:[T ]\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def _not_a_date(raw: Any) -> FieldValueError:
    return FieldValueError(T(f"不是有效的日期：{show(raw)}", f"not a valid date: {show(raw)}"))


def _not_a_datetime(raw: Any) -> FieldValueError:
    return FieldValueError(
        T(f"不是有效的日期时间：{show(raw)}", f"not a valid date and time: {show(raw)}")
    )


def _parse_offset(text: str) -> tzinfo:
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_datetime_text(text: str, *, raw: Any = None) -> datetime:
    """ISO-like text -> aware datetime (naive text is in the business zone)."""
    source = text if raw is None else raw
    short = short_input(text, _MAX_DATE_TEXT)
    found = _DATETIME.match(short) if short is not None else None
    if found is None:
        raise _not_a_datetime(source)
    y, mo, d, h, mi, s, frac, offset = found.groups()
    try:
        micro = int((frac or "0").ljust(6, "0"))
        value = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro)
        if offset:
            return value.replace(tzinfo=_parse_offset(offset)).astimezone(business_timezone())
        return value.replace(tzinfo=business_timezone())
    except (ValueError, OverflowError):
        raise _not_a_datetime(source) from None


def to_business(value: datetime) -> datetime:
    """An aware datetime in the business zone (naive means business wall-clock time)."""
    zone = business_timezone()
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)


class DateKind(FieldKind):
    """A calendar day (``datetime.date``)."""

    name = "date"
    label = T("日期", "Date")
    keys = frozenset({"min", "max", "formula"})
    storage = "date"
    widget = "date"
    type_name = "date"

    def coerce(self, field: Field, raw: Any) -> Any:
        if type(raw) is date and type(self).parse is DateKind.parse:
            return raw  # already canonical: what parse() returns for a date
        return super().coerce(field, raw)

    def coerce_many(self, field: Field, raws: Sequence[Any]) -> tuple[list[Any], dict[int, Text]]:
        cls = type(self)
        if cls.coerce is DateKind.coerce and cls.parse is DateKind.parse:
            types = set(map(type, raws))
            if types <= {date, type(None)}:
                return list(raws), {}  # already canonical
            if types == {str}:
                # A column of ISO dates (CSV): one check of the shape, then the C parser.
                joined = "\n".join(raws)
                if joined.count("\n") == len(raws) - 1 and _ISO_DATES.fullmatch(joined):
                    try:
                        return [date.fromisoformat(t) for t in raws], {}
                    except ValueError:
                        pass  # an impossible date (2024-02-30): cell by cell for its message
        return super().coerce_many(field, raws)

    def validate_many(self, field: Field, values: Sequence[Any]) -> dict[int, list[Text]]:
        if (
            type(self).check_value is DateKind.check_value
            and field.min is None
            and field.max is None
        ):
            return {}  # check_value has nothing to check
        return super().validate_many(field, values)

    def parse(self, field: Field, raw: Any) -> Any:
        if isinstance(raw, datetime):
            try:
                return to_business(raw).date()
            except OverflowError:
                raise _not_a_date(raw) from None
        if isinstance(raw, date):
            return raw
        if is_int(raw):
            raw = str(raw)
        if not isinstance(raw, str):
            raise FieldValueError(
                T(f"应为日期，而不是 {show(raw)}", f"expected a date, got {show(raw)}")
            )
        text = short_input(raw, _MAX_DATE_TEXT)
        if text is None:
            raise _not_a_date(raw)
        found = _YMD.match(text) or _YMD_ZH.match(text) or _COMPACT.match(text)
        if found is None:
            if "T" in text.upper() or ":" in text:
                try:
                    return parse_datetime_text(text, raw=raw).date()
                except FieldValueError:
                    raise _not_a_date(raw) from None
            raise _not_a_date(raw)
        y, m, d = (int(g) for g in found.groups())
        try:
            return date(y, m, d)
        except ValueError:
            raise _not_a_date(raw) from None

    def check_definition(self, field: Field) -> list[Problem]:
        problems, _, _ = compare_bounds(self, field, T("日期", "date"))
        return problems

    def check_value(self, field: Field, value: Any) -> list[Text]:
        if field.min is None and field.max is None:
            return []  # no bounds: bound_messages would find nothing
        return bound_messages(
            self,
            field,
            value,
            lambda zh, en: T(f"不能早于 {zh}", f"must be on or after {en}"),
            lambda zh, en: T(f"不能晚于 {zh}", f"must be on or before {en}"),
        )

    def to_json(self, field: Field, value: Any) -> Any:
        return None if value is None else value.isoformat()

    def reader(self, field: Field) -> Callable[[Any], Any] | None:
        def read(value: Any) -> Any:
            return value if type(value) is date else self.from_storage(field, value)

        return read

    def from_storage(self, field: Field, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            return date.fromisoformat(value[:10])
        if isinstance(value, date):
            return value
        raise TypeError(f"cannot read a date from {value!r}")

    def show(self, field: Field, value: Any, lang: str) -> str:
        return format_date(value, lang)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        def fmt(value: Any) -> str:
            return "" if value is None else format_date(value, lang)

        return fmt


class DateTimeKind(FieldKind):
    """A moment in time (aware ``datetime``, in the business zone)."""

    name = "datetime"
    label = T("日期时间", "Date and time")
    keys = frozenset({"min", "max", "formula"})
    storage = "datetime"
    widget = "datetime"
    type_name = "datetime"

    def parse(self, field: Field, raw: Any) -> Any:
        if isinstance(raw, datetime):
            try:
                return to_business(raw)
            except OverflowError:
                raise _not_a_datetime(raw) from None
        if isinstance(raw, date):
            return datetime.combine(raw, time(0), tzinfo=business_timezone())
        if not isinstance(raw, str):
            raise FieldValueError(
                T(f"应为日期时间，而不是 {show(raw)}", f"expected a date and time, got {show(raw)}")
            )
        return parse_datetime_text(raw)

    def check_definition(self, field: Field) -> list[Problem]:
        problems, _, _ = compare_bounds(self, field, T("日期时间", "date and time"))
        return problems

    def check_value(self, field: Field, value: Any) -> list[Text]:
        return bound_messages(
            self,
            field,
            value,
            lambda zh, en: T(f"不能早于 {zh}", f"must be at or after {en}"),
            lambda zh, en: T(f"不能晚于 {zh}", f"must be at or before {en}"),
        )

    def to_json(self, field: Field, value: Any) -> Any:
        return None if value is None else value.isoformat()

    def to_storage(self, field: Field, value: Any) -> Any:
        """UTC (the storage layer refuses naive datetimes)."""
        return None if value is None else value.astimezone(UTC)

    def from_storage(self, field: Field, value: Any) -> Any:
        """Naive values (SQLite) are UTC; the result is in the business zone."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"cannot read a datetime from {value!r}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(business_timezone())

    def show(self, field: Field, value: Any, lang: str) -> str:
        return format_datetime(to_business(value), lang)


DATE = register(DateKind())
DATETIME = register(DateTimeKind())
