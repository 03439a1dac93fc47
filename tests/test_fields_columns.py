"""``coerce_many`` / ``validate_many``: a whole column gives what each cell gives alone.

Batches (imports) coerce and check a field's values column by column; every
kind's vectorised version must agree with ``coerce`` and ``validate`` cell by
cell, values and messages, whatever the column holds.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.fields import FieldValueError, kind_of
from engine.i18n import Text
from engine.model import Field, Option

STAGES = (
    Option("lead", Text(zh="线索", en="Lead")),
    Option("won", Text(zh="赢单", en="Won")),
    Option("lost", Text(zh="输单", en="Lost")),
)


def make(kind: str, **kw: Any) -> Field:
    return Field(name="f", kind=kind, label=Text(zh="字段", en="Field"), **kw)


def cell_by_cell(field: Field, raws: list[Any]) -> tuple[list[Any], dict[int, Text]]:
    kind = kind_of(field)
    values: list[Any] = []
    errors: dict[int, Text] = {}
    for i, raw in enumerate(raws):
        try:
            values.append(kind.coerce(field, raw))
        except FieldValueError as exc:
            values.append(None)
            errors[i] = exc.text
    return values, errors


def same_values(a: list[Any], b: list[Any]) -> bool:
    """Equal and of the same types (Decimal('1.50') is not Decimal('1.5') here)."""
    return len(a) == len(b) and all(
        type(x) is type(y) and (str(x) == str(y) if type(x) is Decimal else x == y)
        for x, y in zip(a, b, strict=True)
    )


FIELDS = {
    "text": make("text", max_length=10),
    "long_text": make("long_text"),
    "email": make("email"),
    "money": make("money", min=0, max=1000),
    "percent": make("percent", precision=1),
    "decimal0": make("decimal", precision=0),
    "integer": make("integer", min=1),
    "choice": make("choice", options=STAGES),
    "date": make("date", min="2020-01-01"),
    "date_free": make("date"),
    "ref": make("ref", to="customer"),
    "boolean": make("boolean"),
}

#: Columns of one plain shape (the vectorised paths) and mixed ones (the fallbacks).
COLUMNS: dict[str, list[list[Any]]] = {
    "text": [
        ["a", " b ", "ten chars!", "  "],
        ["a", "eleven chars", "c"],
        ["ok", "bad\x00", "x"],
        ["ok", 12, None, ""],
        ["multi\nline", "tab\there"],
        [],
    ],
    "long_text": [["a\r\nb", "c\rd", "  e  "]],
    "email": [["A@Example.COM", "nope", ""]],
    "money": [
        ["1", "2.5", "-0", "0.00", "999.99"],
        ["1", "2.555", "3"],
        ["1", "12,345.50", "¥5", "CNY 7", "1e2"],
        ["1", " 2", "", "abc", "NaN", "１２"],
        ["12\n34", "5"],
        [Decimal("1.5"), Decimal("-0"), Decimal("1001"), Decimal("2.001")],
        [Decimal("NaN"), Decimal("1")],
        [Decimal("Infinity")],
        [Decimal("1e20"), Decimal("1")],
        [1, 2, 3000],
        [True, 1],
        [1.5, None, Decimal("2")],
        ["9" * 16],
    ],
    "percent": [["12.5", "60%", "7"], [Decimal("12.55")], [10, 30, 100]],
    "decimal0": [["12", "1.0", "1.5"], [Decimal("2.0"), Decimal("3")]],
    "integer": [["1", "0", "2.0", "x"], [5, 7, 0]],
    "choice": [
        ["lead", "won", "lost"],
        ["Lead", "赢单", "lost"],
        [" won ", "WON", "", None],
        ["lead", 3, None],
        [["lead"]],
    ],
    "date": [
        ["2026-01-02", "2026-12-31"],
        ["2026-01-02", "2024-02-30"],
        ["2026/1/2", "2026年1月2日", "20260102", "2019-12-31"],
        [date(2026, 1, 2), None],
        [datetime(2026, 1, 2, 23, 30), "2026-01-02T10:00"],
        ["0000-01-01"],
        ["２０２６-01-02"],
    ],
    "date_free": [["2026-01-02", "1999-09-09"]],
    "ref": [[1, 2, 3], [1, 0, -5], ["7", " 8 ", {"id": 9}], [2**63, 1], [True]],
    "boolean": [["yes", "否", True, 0, "maybe"]],
}


@pytest.mark.parametrize(
    ("name", "raws"),
    [(name, raws) for name, columns in COLUMNS.items() for raws in columns],
)
def test_a_column_coerces_and_validates_as_its_cells(name: str, raws: list[Any]) -> None:
    field = FIELDS[name]
    kind = kind_of(field)
    values, errors = kind.coerce_many(field, list(raws))
    expected_values, expected_errors = cell_by_cell(field, raws)
    assert same_values(values, expected_values)
    assert errors == expected_errors
    checked = kind.validate_many(field, values)
    expected_checks = {
        i: messages for i, v in enumerate(values) if (messages := kind.validate(field, v))
    }
    assert checked == expected_checks
