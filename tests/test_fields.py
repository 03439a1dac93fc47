"""Field kinds: the registry and the contract every kind shares.

Kind-specific behaviour is in tests/test_fields_<group>.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.errors import Location
from engine.expressions.types import ANY, BOOL, DATE, DATETIME, NUMBER, TEXT, list_of
from engine.fields import (
    COMMON_KEYS,
    STORAGE_TYPES,
    FieldKind,
    FieldValueError,
    canonical_name,
    get_kind,
    kind_names,
    kind_of,
    kinds,
    register,
    unregister,
)
from engine.i18n import T, Text
from engine.model import Field, Formula, Option

CANONICAL = [
    "text",
    "long_text",
    "email",
    "phone",
    "url",
    "integer",
    "decimal",
    "money",
    "percent",
    "date",
    "datetime",
    "boolean",
    "choice",
    "multi_choice",
    "user",
    "ref",
    "table",
    "formula",
    "autonumber",
    "file",
]
ALIASES = {
    "longtext": "long_text",
    "textarea": "long_text",
    "number": "decimal",
    "currency": "money",
    "bool": "boolean",
    "multichoice": "multi_choice",
}


def make(kind: str, **kw: Any) -> Field:
    return Field(name="f", kind=kind, label=Text(zh="字段", en="Field"), **kw)


# -- registry --------------------------------------------------------------------------------


def test_every_builtin_kind_is_registered_in_order() -> None:
    assert [k.name for k in kinds()] == CANONICAL


def test_kind_names_lists_canonical_names_and_aliases() -> None:
    assert kind_names() == sorted(CANONICAL + list(ALIASES))


@pytest.mark.parametrize(("alias", "canonical"), sorted(ALIASES.items()))
def test_aliases_resolve_to_the_canonical_kind(alias: str, canonical: str) -> None:
    kind = get_kind(alias)
    assert kind is not None and kind.name == canonical
    assert canonical_name(alias) == canonical
    assert kind_of(make(alias)) is get_kind(canonical)


def test_unknown_kind() -> None:
    assert get_kind("nope") is None
    assert canonical_name("nope") is None
    with pytest.raises(KeyError, match="unknown kind 'nope'"):
        kind_of(make("nope"))


def test_each_kind_is_its_own_class_with_a_bilingual_label() -> None:
    classes = {type(k) for k in kinds()}
    assert len(classes) == len(CANONICAL)
    for kind in kinds():
        assert kind.label.zh and kind.label.en, kind.name
        assert kind.storage in STORAGE_TYPES
        assert kind.widget
        assert not (kind.keys & COMMON_KEYS), kind.name


class RatingKind(FieldKind):
    name = "rating"
    aliases: tuple[str, ...] = ("stars",)
    label = T("评分", "Rating")
    storage = "integer"
    widget = "rating"
    type_name = "number"

    def parse(self, field: Field, raw: Any) -> Any:
        if raw not in (1, 2, 3, 4, 5, "1", "2", "3", "4", "5"):
            raise FieldValueError(T("应为 1 到 5", "expected 1 to 5"))
        return int(raw)


def test_an_extension_registers_like_a_builtin() -> None:
    kind = register(RatingKind())
    try:
        assert get_kind("stars") is kind
        assert "rating" in kind_names() and "stars" in kind_names()
        field = make("rating")
        assert kind_of(field).coerce(field, "4") == 4
        assert kind_of(field).coerce(field, "  ") is None
        with pytest.raises(FieldValueError, match="expected 1 to 5"):
            kind_of(field).coerce(field, 9)
        assert kind.value_type(field) == NUMBER
    finally:
        unregister("rating")
    assert get_kind("stars") is None


def test_register_refuses_taken_names_unless_replacing() -> None:
    class Clash(RatingKind):
        name = "rating2"
        aliases = ("number",)

    with pytest.raises(ValueError, match="'number' is already used by <DecimalKind 'decimal'>"):
        register(Clash())
    assert get_kind("rating2") is None

    class Text2(RatingKind):
        name = "text"
        aliases = ()

    with pytest.raises(ValueError, match="'text' is already used"):
        register(Text2())
    original = get_kind("text")
    assert original is not None
    try:
        replaced = register(Text2(), replace=True)
        assert get_kind("text") is replaced
    finally:
        register(original, replace=True)
    assert get_kind("text") is original


def test_register_refuses_bad_definitions() -> None:
    class BadName(RatingKind):
        name = "Bad Name"

    class BadStorage(RatingKind):
        name = "bad_storage"
        storage = "blob"

    with pytest.raises(ValueError, match="invalid field kind name 'Bad Name'"):
        register(BadName())
    with pytest.raises(ValueError, match="has storage 'blob'"):
        register(BadStorage())
    with pytest.raises(TypeError, match="takes a FieldKind instance"):
        register("text")  # type: ignore[type-var]


# -- interface attributes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "storage", "widget", "keys"),
    [
        (
            "text",
            "text",
            "text",
            {"min_length", "max_length", "pattern", "pattern_message", "formula"},
        ),
        (
            "long_text",
            "text",
            "textarea",
            {"min_length", "max_length", "pattern", "pattern_message", "formula"},
        ),
        (
            "email",
            "text",
            "email",
            {"min_length", "max_length", "pattern", "pattern_message", "formula"},
        ),
        (
            "phone",
            "text",
            "tel",
            {"min_length", "max_length", "pattern", "pattern_message", "formula"},
        ),
        (
            "url",
            "text",
            "url",
            {"min_length", "max_length", "pattern", "pattern_message", "formula"},
        ),
        ("integer", "integer", "number", {"min", "max", "formula"}),
        ("decimal", "decimal", "number", {"min", "max", "precision", "formula"}),
        ("money", "decimal", "money", {"min", "max", "currency", "precision", "formula"}),
        ("percent", "decimal", "percent", {"min", "max", "precision", "formula"}),
        ("date", "date", "date", {"min", "max", "formula"}),
        ("datetime", "datetime", "datetime", {"min", "max", "formula"}),
        ("boolean", "boolean", "checkbox", {"formula"}),
        ("choice", "text", "select", {"options", "formula"}),
        ("multi_choice", "json", "multiselect", {"options"}),
        ("user", "text", "user", {"formula"}),
        ("ref", "ref", "ref", {"to", "on_delete", "formula"}),
        ("table", "table", "table", {"fields", "min_rows", "max_rows"}),
        ("formula", "decimal", "readonly", {"formula", "result"}),
        ("autonumber", "text", "readonly", {"format"}),
        ("file", "text", "file", {"max_size_mb", "accept"}),
    ],
)
def test_kind_attributes(name: str, storage: str, widget: str, keys: set[str]) -> None:
    kind = get_kind(name)
    assert kind is not None
    assert (kind.storage, kind.widget, set(kind.keys)) == (storage, widget, keys)


def test_flags() -> None:
    editable = {k.name for k in kinds() if k.user_editable}
    assert set(CANONICAL) - editable == {"formula", "autonumber"}
    searchable = {k.name for k in kinds() if k.searchable}
    assert searchable == {"text", "long_text", "email", "phone", "url", "autonumber"}
    unsortable = {k.name for k in kinds() if not k.sortable}
    assert unsortable == {"multi_choice", "table", "file"}
    unfilterable = {k.name for k in kinds() if not k.filterable}
    assert unfilterable == {"table", "file"}


def test_editable_also_follows_a_formula_on_the_field() -> None:
    money = get_kind("money")
    assert money is not None
    assert money.editable(make("money"))
    assert not money.editable(make("money", formula=Formula("SUM(lines.price)")))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("text", TEXT),
        ("long_text", TEXT),
        ("email", TEXT),
        ("phone", TEXT),
        ("url", TEXT),
        ("integer", NUMBER),
        ("decimal", NUMBER),
        ("money", NUMBER),
        ("percent", NUMBER),
        ("date", DATE),
        ("datetime", DATETIME),
        ("boolean", BOOL),
        ("choice", TEXT),
        ("multi_choice", list_of(TEXT)),
        ("user", TEXT),
        ("ref", NUMBER),
        ("table", list_of(ANY)),
        ("formula", NUMBER),
        ("autonumber", TEXT),
        ("file", TEXT),
    ],
)
def test_value_types(name: str, expected: Any) -> None:
    field = make(name)
    assert kind_of(field).value_type(field) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [("text", TEXT), ("date", DATE), ("datetime", DATETIME), ("boolean", BOOL), ("money", NUMBER)],
)
def test_formula_value_type_follows_result(result: str, expected: Any) -> None:
    field = make("formula", formula=Formula("x"), result=result)
    assert kind_of(field).value_type(field) == expected


# -- blank input -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in CANONICAL])
@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n", []])
def test_blank_input_coerces_to_none_for_every_kind(name: str, raw: Any) -> None:
    field = make(name, options=(Option("A", Text.of("A")),))
    kind = kind_of(field)
    assert kind.coerce(field, raw) is None
    assert kind.validate(field, None) == []
    assert kind.display(field, None, "zh") == ""
    assert kind.display(field, None, "en") == ""


# -- shared definition checks ----------------------------------------------------------------


def test_keys_that_do_not_apply_are_refused_with_the_kinds_that_take_them() -> None:
    where = Location("crm.yaml", 12, 7)
    field = Field(
        name="name",
        kind="text",
        label=Text.of("Name"),
        location=where,
        options=(Option("A", Text.of("A")),),
        currency="CNY",
    )
    problems = kind_of(field).check(field)
    assert [p.message.en for p in problems] == [
        "'options' does not apply to text fields",
        "'currency' does not apply to text fields",
    ]
    assert problems[0].hint.en == "remove it, or use a kind that takes it: choice, multi_choice"
    assert problems[0].message.zh == "text 类型的字段不能有 options"
    assert problems[1].hint.en == "remove it, or use a kind that takes it: money"
    assert {p.location for p in problems} == {where}
    assert problems[0].render("en") == (
        "crm.yaml:12:7: 'options' does not apply to text fields; "
        "remove it, or use a kind that takes it: choice, multi_choice"
    )


def test_formula_only_on_kinds_that_can_be_computed() -> None:
    ok = make("money", formula=Formula("amount * 2"))
    assert kind_of(ok).check(ok) == []
    bad = make("multi_choice", options=(Option("A", Text.of("A")),), formula=Formula("x"))
    assert [p.message.en for p in kind_of(bad).check(bad)] == [
        "'formula' does not apply to multi_choice fields"
    ]


def test_unique_and_index_do_not_apply_to_json_or_table_kinds() -> None:
    field = make("multi_choice", options=(Option("A", Text.of("A")),), unique=True, index=True)
    assert [p.message.en for p in kind_of(field).check(field)] == [
        "'unique' does not apply to multi_choice fields",
        "'index' does not apply to multi_choice fields",
    ]


def test_default_is_coerced_and_validated() -> None:
    good = make("integer", default="12", min=0)
    assert kind_of(good).check(good) == []
    bad = make("integer", default="12.5")
    [problem] = kind_of(bad).check(bad)
    assert problem.message.en == "the default 12.5 is not valid: not a whole number: 12.5"
    assert problem.message.zh == "默认值 12.5 无效：不是整数：12.5"
    assert problem.hint.en == "give a valid value of this kind, or remove `default:`"
    low = make("integer", default=-1, min=0)
    [problem] = kind_of(low).check(low)
    assert problem.message.en == "the default -1 is not valid: must be at least 0"
    choice = make("choice", options=(Option("A", Text.of("A")),), default="C")
    [problem] = kind_of(choice).check(choice)
    assert problem.message.get("en").startswith(
        "the default C is not valid: not one of the options: C"
    )


def test_computed_fields_cannot_have_a_default() -> None:
    for field in (
        make("autonumber", format="N{SEQ}", default="N1"),
        make("formula", formula=Formula("1"), default=1),
        make("integer", formula=Formula("1"), default=1),
    ):
        [problem] = kind_of(field).check(field)
        assert problem.hint.en == "remove `default:`"
    field = make("file", default="a.pdf")
    [problem] = kind_of(field).check(field)
    assert problem.message.en == "file fields cannot have a default"


def test_every_kind_checks_clean_with_a_minimal_definition() -> None:
    minimal: dict[str, dict[str, Any]] = {
        "choice": {"options": (Option("A", Text.of("A")),)},
        "multi_choice": {"options": (Option("A", Text.of("A")),)},
        "ref": {"to": "customer"},
        "table": {"fields": {"qty": make("integer")}},
        "formula": {"formula": Formula("1 + 1")},
        "autonumber": {"format": "N-{SEQ:3}"},
    }
    for name in CANONICAL:
        field = make(name, **minimal.get(name, {}))
        assert kind_of(field).check(field) == [], name


# -- JSON and storage round trips ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "json_value"),
    [
        ("text", " hi ", "hi"),
        ("integer", "1,234", 1234),
        ("decimal", 0.1, "0.10"),
        ("money", "¥1,234.5", "1234.50"),
        ("percent", "60%", "60.00"),
        ("date", "2026/11/27", "2026-11-27"),
        ("datetime", "2026-11-27 14:30", "2026-11-27T14:30:00+08:00"),
        ("boolean", "on", True),
        ("ref", "42", 42),
        ("user", "zhang.san", "zhang.san"),
    ],
)
def test_to_json(name: str, raw: Any, json_value: Any) -> None:
    field = make(name)
    kind = kind_of(field)
    value = kind.coerce(field, raw)
    assert kind.to_json(field, value) == json_value
    # JSON output is accepted back as input.
    assert kind.coerce(field, kind.to_json(field, value)) == value


def test_decimal_from_storage_reads_floats_via_str() -> None:
    field = make("money")
    kind = kind_of(field)
    assert kind.from_storage(field, 0.1) == Decimal("0.10")
    assert kind.from_storage(field, Decimal("12")) == Decimal("12.00")
    assert str(kind.from_storage(field, "3.5")) == "3.50"
    assert kind.from_storage(field, None) is None
