"""Boolean, choice and multi_choice kinds."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import Location
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


def coerce(field: Field, raw: Any) -> Any:
    return kind_of(field).coerce(field, raw)


def refused(field: Field, raw: Any) -> Text:
    with pytest.raises(FieldValueError) as info:
        coerce(field, raw)
    return info.value.text


# -- boolean -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [True, 1, "true", "TRUE", "1", "yes", "Yes", "y", "on", "是", " t "]
)
def test_boolean_true(raw: Any) -> None:
    assert coerce(make("boolean"), raw) is True


@pytest.mark.parametrize("raw", [False, 0, "false", "0", "no", "N", "off", "否", "f"])
def test_boolean_false(raw: Any) -> None:
    assert coerce(make("boolean"), raw) is False


def test_boolean_refuses_everything_else() -> None:
    field = make("boolean")
    assert refused(field, "maybe") == Text(
        zh="应为 是 或 否：maybe", en="expected yes or no (true/false): maybe"
    )
    for raw in (2, -1, 1.0, "truee", "x" * 1000, [True]):
        refused(field, raw)


def test_boolean_display_and_storage() -> None:
    field = make("boolean")
    kind = kind_of(field)
    assert [kind.display(field, v, "zh") for v in (True, False)] == ["是", "否"]
    assert [kind.display(field, v, "en") for v in (True, False)] == ["Yes", "No"]
    assert kind.from_storage(field, 1) is True
    assert kind.from_storage(field, 0) is False


# -- choice ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["won", " won ", "赢单", "Won"])
def test_choice_accepts_value_or_exact_label(raw: str) -> None:
    assert coerce(make("choice", options=STAGES), raw) == "won"


def test_choice_numbers_match_string_values() -> None:
    field = make("choice", options=(Option("1", Text.of("一")), Option("2", Text.of("二"))))
    assert coerce(field, 2) == "2"
    assert coerce(field, "一") == "1"


def test_choice_refuses_unknown_and_near_misses() -> None:
    field = make("choice", options=STAGES)
    assert refused(field, "WON").en == "not one of the options: WON (choose from lead, won, lost)"
    assert refused(field, "won!").zh == "不是可选项：won!（可选：lead, won, lost）"
    assert refused(field, True).get("en").startswith("not one of the options: true")


def test_choice_lists_at_most_ten_options() -> None:
    options = tuple(Option(f"o{i}", Text.of(f"O{i}")) for i in range(12))
    message = refused(make("choice", options=options), "x").en
    assert (
        message == "not one of the options: x (choose from o0, o1, o2, o3, o4, o5, o6, o7, o8, o9…)"
    )


def test_choice_display_uses_the_label_in_the_language() -> None:
    field = make("choice", options=STAGES)
    kind = kind_of(field)
    assert kind.display(field, "won", "zh") == "赢单"
    assert kind.display(field, "won", "en") == "Won"
    only_zh = make("choice", options=(Option("a", Text(zh="甲")),))
    assert kind_of(only_zh).display(only_zh, "a", "en") == "甲"
    assert kind.display(field, "retired", "en") == "retired"  # an option since removed


def test_option_definition_checks() -> None:
    where = Location("crm.yaml", 30, 9)
    field = make(
        "choice",
        options=(
            Option("A", Text.of("甲")),
            Option("B", Text.of("乙")),
            Option("A", Text.of("丙"), location=where),
        ),
    )
    [problem] = kind_of(field).check(field)
    assert problem.message == Text(zh="选项 'A' 出现了两次", en="option 'A' appears twice")
    assert problem.hint.en == "remove the duplicate"
    assert problem.location == where

    [problem] = kind_of(make("choice")).check(make("choice"))
    assert problem.message.en == "choice fields need options"
    assert problem.hint.en == "for example options: [A, B, C]"

    field = make("choice", options=(Option(" A", Text.of("A")), Option("x" * 64, Text.of("X"))))
    assert [p.message.en for p in kind_of(field).check(field)] == [
        "an option value cannot be blank or start/end with spaces: ' A'",
        "option value is too long (at most 63 characters): " + "x" * 40 + "…",
    ]


def test_shared_labels_are_a_warning() -> None:
    field = make("choice", options=(Option("a", Text.of("Same")), Option("b", Text.of("Same"))))
    [problem] = kind_of(field).check(field)
    assert problem.severity == "warning"
    assert problem.message.en == "options 'a' and 'b' both have the label 'Same'"


def test_default_must_be_an_option() -> None:
    field = make("choice", options=STAGES, default="赢单")
    assert kind_of(field).check(field) == []


# -- multi_choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        ["won", "lead"],
        ("won", "lead", "won"),
        ["Won", "线索"],
        "won, lead",
        "won；线索",
        "赢单、线索、赢单",
        "won\nlead",
        '["won", "lead"]',
        [" won ", "", None, "lead"],
    ],
)
def test_multi_choice_accepts(raw: Any) -> None:
    assert coerce(make("multi_choice", options=STAGES), raw) == ["won", "lead"]


def test_multi_choice_option_containing_a_comma() -> None:
    options = (Option("a,b", Text.of("A, B")), Option("c", Text.of("C")))
    assert coerce(make("multi_choice", options=options), "a,b") == ["a,b"]


def test_multi_choice_reports_every_unknown_item() -> None:
    field = make("multi_choice", options=STAGES)
    assert refused(field, ["won", "x", "y"]).en == (
        "not one of the options: x, y (choose from lead, won, lost)"
    )
    assert refused(field, "won, zz").get("en").startswith("not one of the options: zz")
    assert refused(field, "[not json").en == "not a valid list of options: [not json"
    assert (
        refused(field, '{"a": 1}').en
        == 'not one of the options: {"a": 1} (choose from lead, won, lost)'
    )
    assert refused(field, list(range(1001))).en == "too many items (at most 1000)"


def test_multi_choice_blank_items_only_is_blank() -> None:
    assert coerce(make("multi_choice", options=STAGES), ["", " ", None]) is None


def test_multi_choice_validate_and_display() -> None:
    field = make("multi_choice", options=STAGES)
    kind = kind_of(field)
    assert kind.validate(field, ["won", "lost"]) == []
    assert [m.en for m in kind.validate(field, ["won", "won", "x"])] == [
        "not one of the options: x (choose from lead, won, lost)",
        "an option is listed twice",
    ]
    assert kind.display(field, ["won", "lead"], "zh") == "赢单、线索"
    assert kind.display(field, ["won", "lead"], "en") == "Won, Lead"


def test_multi_choice_storage() -> None:
    field = make("multi_choice", options=STAGES)
    kind = kind_of(field)
    assert kind.to_storage(field, ["won"]) == ["won"]
    assert kind.from_storage(field, '["won", "lead"]') == ["won", "lead"]
    assert kind.from_storage(field, []) is None
    assert kind.to_json(field, ["won"]) == ["won"]
