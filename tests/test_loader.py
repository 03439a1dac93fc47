"""Reading blueprints: safe YAML, JSON with positions, include/extends, schema, model."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import BlueprintError, Location, Problem
from engine.i18n import Text
from engine.loader import diagnose, load
from engine.loading import limits
from engine.loading.build import parse_duration
from engine.loading.jsonpos import parse_json
from engine.loading.merge import merge
from engine.loading.positions import Doc
from engine.model import Formula
from engine.yamlsafe import parse_yaml, resolve_plain

FIXTURES = Path(__file__).parent / "fixtures" / "blueprints"
GOOD = FIXTURES / "good"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(source: str, tmp_path: Path, name: str = "blueprint.yaml") -> list[str]:
    """Every problem of a blueprint written from ``source``, rendered in English."""
    path = write(tmp_path, name, source)
    report = diagnose(path)
    return [p.render("en").replace(str(path), name) for p in report.problems]


def yaml_error(text: str) -> list[str]:
    with pytest.raises(BlueprintError) as info:
        parse_yaml(text, "f.yaml")
    return [p.render("en") for p in info.value.problems]


MINIMAL = """
    formflow: 1
    id: t
    title: T
    entities:
      customer:
        label: Customer
        fields:
          name: {type: text}
"""

# -- YAML: values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("FALSE", False),
        ("True", True),
        ("yes", "yes"),
        ("NO", "NO"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("12:30", "12:30"),
        ("1e3", "1e3"),
        ("1.5e3", 1500.0),
        ("2.5", 2.5),
        (".5", 0.5),
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("007", "007"),
        ("0x1F", "0x1F"),
        ("0o17", "0o17"),
        ("1_000", "1_000"),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T10:00:00", "2024-01-01T10:00:00"),
        ("~", None),
        ("null", None),
        ("", None),
        (".inf", ".inf"),
        (".nan", ".nan"),
    ],
)
def test_plain_scalars_resolve_like_yaml_1_2_core(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_quoted_scalars_are_always_text() -> None:
    data, _ = parse_yaml("a: 'true'\nb: \"12\"\nc: !!str 12\nd: !!int '12'\ne: !!float 3\n", "f")
    assert data == {"a": "true", "b": "12", "c": "12", "d": 12, "e": 3.0}


def test_keys_stay_text_whatever_they_look_like() -> None:
    data, _ = parse_yaml("1: a\ntrue: b\nnull: c\n12:30: d\n", "f")
    assert list(data) == ["1", "true", "null", "12:30"]


def test_explicit_standard_tag_with_a_bad_value_is_refused() -> None:
    assert yaml_error("a: !!int twelve\n") == [
        "f.yaml:1:4: 'twelve' is not a valid !!int value; remove the tag or fix the value"
    ]


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/name:os.system",
        "!!binary",
        "!!timestamp",
        "!foo",
    ],
)
def test_unknown_tags_are_refused_at_their_position(tag: str) -> None:
    errors = yaml_error(f"ok: 1\nbad: {tag} x\n")
    assert len(errors) == 1
    assert errors[0].startswith(f"f.yaml:2:6: YAML tag '{tag}' is not allowed")


def test_a_hostile_tag_on_a_sequence_is_reported_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    errors = yaml_error(f'a: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in errors[0]
    assert not marker.exists()


# -- YAML: traps ------------------------------------------------------------------------------


def test_duplicate_keys_are_refused_at_the_second_naming_the_first() -> None:
    errors = yaml_error("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\na: 5\n")
    fix = "remove one of them or merge the two"
    assert errors == [
        f"f.yaml:5:3: duplicate key 'c' (first written on line 3); {fix}",
        f"f.yaml:6:1: duplicate key 'a' (first written on line 1); {fix}",
    ]


def test_merge_keys_are_refused() -> None:
    errors = yaml_error("base: &b {x: 1}\nthing:\n  <<: *b\n")
    assert errors[0].startswith("f.yaml:3:3: YAML merge keys ('<<') are not supported")


def test_tab_indentation_gets_its_own_message() -> None:
    errors = yaml_error("a:\n  b: 1\n\tc: 2\n")
    assert errors == [
        "f.yaml:3:1: tabs are not allowed for indentation; use spaces; "
        "replace the tab with spaces (2 per level)"
    ]


def test_tab_message_is_bilingual() -> None:
    with pytest.raises(BlueprintError) as info:
        parse_yaml("a:\n\tb: 1\n", "f.yaml")
    assert info.value.problems[0].message.get("zh") == "不能用 Tab 缩进，请改用空格"


def test_syntax_errors_have_line_column_and_a_translation() -> None:
    with pytest.raises(BlueprintError) as info:
        parse_yaml("a: [1, 2\nb: 3\n", "f.yaml")
    (problem,) = info.value.problems
    assert problem.location == Location("f.yaml", 2, 2)
    assert problem.message.get("en").startswith("invalid YAML: a ',' or ']' is missing")
    assert "started at line 1, column 4" in problem.message.get("en")
    assert problem.message.get("zh").startswith("YAML 语法错误：缺少 ',' 或 ']'")


def test_colon_in_plain_text_is_explained() -> None:
    errors = yaml_error("title: Sales: 2024\n")
    assert errors[0].startswith("f.yaml:1:13: invalid YAML: a ':' here starts a second key")


def test_one_document_per_file() -> None:
    errors = yaml_error("a: 1\n---\nb: 2\n")
    assert errors[0].startswith("f.yaml:2:1: a blueprint file holds one YAML document")


BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{n}: &{n} [{','.join(['*' + p] * 9)}]"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def test_alias_bomb_is_refused_without_expanding() -> None:
    assert len(BOMB) < 500
    errors = yaml_error(BOMB)
    assert len(errors) == 1
    assert "expands to more than 200,000 values" in errors[0]


def test_aliases_within_the_limit_are_shared_values() -> None:
    data, pos = parse_yaml("a: &x [1, 2]\nb: *x\n", "f")
    assert data == {"a": [1, 2], "b": [1, 2]}
    assert pos.locate(("b", 1)) == Location("f", 1, 11)  # the anchor's element


def test_recursive_alias_is_refused() -> None:
    errors = yaml_error("a: &x [*x]\n")
    assert errors[0].startswith("f.yaml:1:8: alias '*x' refers to itself")


def test_undefined_alias_is_refused() -> None:
    assert yaml_error("a: *nope\n")[0].startswith("f.yaml:1:4: alias '*nope' has no anchor")


def test_nesting_depth_is_limited() -> None:
    errors = yaml_error("a: " + "[" * 40 + "]" * 40)
    assert f"nesting is deeper than {limits.MAX_DEPTH} levels" in errors[0]


def test_a_10000_field_entity_is_refused_while_reading() -> None:
    text = "entities:\n  big:\n    fields:\n" + "".join(
        f"      f{i}: {{type: text}}\n" for i in range(10_000)
    )
    errors = yaml_error(text)
    assert errors == [
        f"f.yaml:{4 + limits.MAX_FIELDS}:7: entity 'big' has too many fields: at most 500 "
        "are allowed; split the entity into related entities (linked with ref) or drop "
        "unused fields"
    ]


# -- YAML: positions --------------------------------------------------------------------------


def test_positions_of_keys_values_and_text() -> None:
    text = 'a: "x + y"\nb: |\n    first\n    second\n名称: 中文\nc:\n  - one\n  - {d: 2}\n'
    data, pos = parse_yaml(text, "f")
    assert data["b"] == "first\nsecond\n"
    assert pos.locate_text(("a",)) == Location("f", 1, 5)  # after the quote
    assert pos.locate_text(("b",)) == Location("f", 3, 5)  # the block's first line
    assert pos.locate_key(("名称",)) == Location("f", 5, 1)
    assert pos.locate(("名称",)) == Location("f", 5, 5)  # columns count characters
    assert pos.locate(("c", 1, "d")) == Location("f", 8, 9)
    assert pos.locate(("c", 1, "missing", "deeper")) == Location("f", 8, 5)


# -- JSON -------------------------------------------------------------------------------------


def test_json_positions() -> None:
    data, pos = parse_json('{\n  "a": [1, 2.5, "x"],\n  "名": {"b": null}\n}', "f.json")
    assert data == {"a": [1, 2.5, "x"], "名": {"b": None}}
    assert pos.locate(("a", 2)) == Location("f.json", 2, 17)
    assert pos.locate_text(("a", 2)) == Location("f.json", 2, 18)
    assert pos.locate_key(("名", "b")) == Location("f.json", 3, 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "a": 2}', "f.json:1:10: duplicate key 'a' (first written on line 1)"),
        ('{"a": 1,}', "f.json:1:9: invalid JSON: a key in double quotes is expected here"),
        ('{"a": NaN}', "f.json:1:7: JSON does not allow NaN or Infinity"),
        ("[" * 40 + "]" * 40, "f.json:1:33: nesting is deeper than 32 levels"),
        ("[" * 100_000 + "]" * 100_000, "f.json:1:33: nesting is deeper than 32 levels"),
    ],
)
def test_json_problems(text: str, expected: str) -> None:
    with pytest.raises(BlueprintError) as info:
        parse_json(text, "f.json")
    assert info.value.problems[0].render("en").startswith(expected)


# -- files ------------------------------------------------------------------------------------


def test_folder_without_blueprint(tmp_path: Path) -> None:
    report = diagnose(tmp_path)
    assert report.blueprint is None
    assert "no blueprint.yaml in the folder" in report.problems[0].message.get("en")


def test_missing_path(tmp_path: Path) -> None:
    report = diagnose(tmp_path / "nope")
    assert report.problems[0].message.get("en").endswith("does not exist")


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * limits.MAX_FILE_BYTES + "\n")
    report = diagnose(path)
    assert "the file is too large" in report.problems[0].message.get("en")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_bytes("formflow: 1\ntitle: 销售\n".encode("gbk"))
    (problem,) = diagnose(path).problems
    assert problem.location == Location(str(path), 2, 8)
    assert problem.message.get("en") == "the file is not UTF-8 text"


@pytest.mark.parametrize(
    ("text", "message"),
    [("# only a comment\n", "the file is empty"), ("- a\n- b\n", "must be a map")],
)
def test_top_level_must_be_a_map(tmp_path: Path, text: str, message: str) -> None:
    assert message in problems_of(text, tmp_path)[0]


# -- include ----------------------------------------------------------------------------------


def test_include_adds_sections_from_other_files() -> None:
    bp = load(GOOD / "with_include")
    assert list(bp.entities) == ["customer", "deal"]
    assert list(bp.kpis) == ["pipeline"]
    assert [t.name for t in bp.tests] == ["a deal needs no customer"]
    deal = bp.entities["deal"]
    assert deal.location.file.endswith("parts/entities.yaml")
    assert (deal.location.line, deal.location.column) == (2, 3)
    assert bp.kpis["pipeline"].measure.location.file.endswith("analytics.json")
    assert [Path(f).name for f in bp.source_files] == [
        "blueprint.yaml",
        "entities.yaml",
        "analytics.json",
    ]


def test_include_name_clash_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "more.yaml", "roles:\n  rep: Rep again\n")
    errors = problems_of(
        MINIMAL + "    include: [more.yaml]\n    roles:\n      rep: Rep\n", tmp_path
    )
    assert errors == [
        f"{tmp_path}/more.yaml:2:3: 'rep' in roles is defined twice: here and at "
        "blueprint.yaml:11:3; remove one of them or rename it"
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("../outside.yaml", "'../outside.yaml' is outside the template folder"),
        ("/etc/passwd.yaml", "'/etc/passwd.yaml' is outside the template folder"),
        ("missing.yaml", "included file 'missing.yaml' does not exist"),
    ],
)
def test_include_refuses_escapes_and_missing_files(tmp_path: Path, item: str, message: str) -> None:
    (tmp_path / "outside.yaml").write_text("roles: {x: X}\n")
    folder = tmp_path / "tpl"
    folder.mkdir()
    errors = problems_of(MINIMAL + f"    include: ['{item}']\n", folder)
    assert len(errors) == 1
    assert errors[0].startswith("blueprint.yaml:9:11: " + message)


def test_include_symlink_pointing_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.yaml").write_text("roles: {x: X}\n")
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    errors = problems_of(MINIMAL + "    include: [link.yaml]\n", folder)
    assert "'link.yaml' is outside the template folder" in errors[0]


def test_included_file_holds_only_sections(tmp_path: Path) -> None:
    write(tmp_path, "more.yaml", "id: other\nroles: {x: X}\n")
    errors = problems_of(MINIMAL + "    include: [more.yaml]\n", tmp_path)
    assert errors[0].startswith(f"{tmp_path}/more.yaml:1:1: an included file cannot hold 'id'")


# -- extends ----------------------------------------------------------------------------------


def test_overlay_changes_a_label_removes_and_adds_fields() -> None:
    base = load(GOOD / "minimal")
    bp = load(GOOD / "overlay")
    assert bp.id == "mini_plus"
    customer = bp.entities["customer"]
    assert customer.label == Text(zh="大客户", en="Key customer")
    assert list(customer.fields) == ["name", "level", "region"]
    assert "discount" in base.entities["customer"].fields
    assert list(bp.entities) == list(base.entities)
    assert list(bp.flows) == ["approval"]
    # Each value keeps the place of the file that wrote it.
    assert customer.fields["name"].location.file.endswith("minimal/blueprint.yaml")
    assert customer.fields["region"].location.file.endswith("overlay/blueprint.yaml")
    assert [Path(f).parent.name for f in bp.source_files] == ["minimal", "overlay"]
    assert bp.digest != base.digest


def test_overlay_errors_point_at_the_file_that_wrote_them(tmp_path: Path) -> None:
    base = tmp_path / "base"
    write(base, "blueprint.yaml", MINIMAL)
    child = tmp_path / "child"
    write(
        child,
        "blueprint.yaml",
        """
        extends: ../base
        entities:
          customer:
            fields:
              name: {type: nubmer}
        """,
    )
    (problem,) = diagnose(child).problems
    assert problem.location == Location(str(child / "blueprint.yaml"), 5, 20)
    assert problem.render("en").endswith("unknown field type 'nubmer'; did you mean 'number'?")


def test_removing_what_the_base_lacks_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "base", "blueprint.yaml", MINIMAL)
    child = tmp_path / "child"
    write(child, "blueprint.yaml", "extends: ../base\nentities:\n  custmer: ~\n")
    (problem,) = diagnose(child).problems
    assert problem.location.line == 3
    assert "nothing to remove: 'custmer' is not in the template this one extends" in (
        problem.message.get("en")
    )


def test_removing_a_field_the_base_still_uses_is_caught(tmp_path: Path) -> None:
    write(
        tmp_path / "base",
        "blueprint.yaml",
        MINIMAL + "        list: {columns: [name]}\n",
    )
    child = tmp_path / "child"
    write(
        child,
        "blueprint.yaml",
        """
        extends: ../base
        entities:
          customer:
            fields:
              name: ~
              title: {type: text}
        """,
    )
    errors = [p.render("en") for p in diagnose(child).problems]
    assert len(errors) == 1
    assert "base/blueprint.yaml:9:22: unknown field 'name' in entity 'customer'" in errors[0]


def test_extends_cycle_is_refused() -> None:
    report = diagnose(FIXTURES / "bad" / "extends_cycle_a")
    (problem,) = report.problems
    assert problem.location.file.endswith("extends_cycle_a/blueprint.yaml")
    assert (problem.location.line, problem.location.column) == (2, 10)
    assert "extends forms a cycle" in problem.message.get("en")
    assert problem.message.get("en").count("extends_cycle_a") == 2


def test_extends_depth_is_limited(tmp_path: Path) -> None:
    write(tmp_path / "t0", "blueprint.yaml", MINIMAL)
    for i in range(1, limits.MAX_EXTENDS_DEPTH + 2):
        write(tmp_path / f"t{i}", "blueprint.yaml", f"extends: ../t{i - 1}\n")
    report = diagnose(tmp_path / f"t{limits.MAX_EXTENDS_DEPTH + 1}")
    assert "the extends chain is too long" in report.problems[0].message.get("en")


def test_extends_missing_template(tmp_path: Path) -> None:
    errors = problems_of("extends: ../nowhere\n", tmp_path)
    assert errors[0].startswith("blueprint.yaml:1:10: ")
    assert "does not exist" in errors[0]


# -- schema messages --------------------------------------------------------------------------


ONE_FIELD = """
formflow: 1
id: t
title: T
entities:
  customer:
    label: Customer
    fields:
      {field}
"""


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            "name: {type: text, lable: Name}",
            "blueprint.yaml:8:26: unknown key 'lable' in field 'name'; did you mean 'label'?",
        ),
        (
            "name: {type: text, max_length: '5'}",
            "blueprint.yaml:8:38: field 'name': max_length should be a whole number, not text",
        ),
        (
            "name: {type: text, on_delete: cascade}",
            "blueprint.yaml:8:26: key 'on_delete' does not apply to a text field; remove it; "
            "'on_delete' is only for ref fields",
        ),
        (
            "name: {type: ref, to: customer, on_delete: cascde}",
            "blueprint.yaml:8:50: 'cascde' is not a valid value for field 'name': on_delete; "
            "did you mean 'cascade'?",
        ),
        (
            "_secret: {type: text}",
            "blueprint.yaml:8:7: '_secret' is not a valid name; names starting with _ are "
            "reserved for the system",
        ),
        ("name:", "blueprint.yaml:8:7: field 'name' has no value"),
        (
            "name: {type: text, label: {zh: 名称, fr: Nom}}",
            "blueprint.yaml:8:42: unknown key 'fr' in field 'name': label",
        ),
    ],
)
def test_schema_messages(tmp_path: Path, field: str, expected: str) -> None:
    errors = problems_of(ONE_FIELD.replace("{field}", field), tmp_path)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_missing_required_top_level_keys(tmp_path: Path) -> None:
    errors = problems_of("entities: {}\n", tmp_path)
    assert [e.split(";")[0] for e in errors] == [
        "blueprint.yaml:1:1: the blueprint has no 'formflow'",
        "blueprint.yaml:1:1: the blueprint has no 'id'",
        "blueprint.yaml:1:1: the blueprint has no 'title'",
    ]


def test_one_of_approvers_explained(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.indent(
        textwrap.dedent(
            """
            flows:
              f:
                entity: customer
                status_field: name
                steps:
                  s: {approvers: {role: rep, users: [bob]}}
            """
        ),
        "    ",
    )
    errors = problems_of(text, tmp_path)
    assert any(
        "approvers may use only one of the alternatives; approvers: exactly one of role" in e
        for e in errors
    ), errors


# -- the model --------------------------------------------------------------------------------


def test_minimal_blueprint_model() -> None:
    bp = load(GOOD / "minimal")
    assert bp.version == 1 and bp.id == "mini" and bp.default_locale == "zh"
    assert bp.roles["manager"].description == Text.of("Approves deals")
    customer, deal = bp.entities["customer"], bp.entities["deal"]
    assert customer.list.sort == ("-level", "name")
    assert [o.value for o in customer.fields["level"].options] == ["A", "B", "C"]
    assert customer.fields["level"].default == "C"
    assert deal.fields["lines"].fields["qty"].kind == "integer"
    follow_up = deal.fields["follow_up"]
    assert follow_up.default is None
    assert follow_up.default_formula is not None
    assert follow_up.default_formula.source == "ADD_DAYS(TODAY(), 7)"
    assert follow_up.default_formula.is_compiled
    assert isinstance(deal.access["manager"].update, Formula)
    assert deal.access["rep"].read == "own"
    flow = bp.flows["approval"]
    assert flow.remind_after == timedelta(hours=48)
    assert isinstance(flow.on_approved.set["signed_on"], Formula)
    assert bp.automations["remind"].offset == timedelta(days=-1)
    assert [r.name for r in bp.automations["remind"].actions[0].params["to"]] == ["owner"]
    assert bp.dashboards["overview"].widgets[1].by == ("month",)
    assert len(bp.digest) == 64


def test_every_formula_is_compiled_and_located() -> None:
    bp = load(GOOD / "minimal")
    deal = bp.entities["deal"]
    total = deal.fields["total"].formula
    assert total is not None and total.is_compiled
    assert (total.location.line, total.location.column) == (42, 38)  # inside the quotes
    rule = deal.rules[0].check
    assert rule.source == "amount >= 0\nand amount < 100000000\n"
    assert (rule.location.line, rule.location.column) == (47, 11)  # the block's first line
    set_value = bp.flows["approval"].on_approved.set["signed_on"]
    assert (set_value.location.line, set_value.location.column) == (63, 38)  # after "="


def test_kind_aliases_become_canonical_names() -> None:
    bp = load(GOOD / "json")
    fields = bp.entities["customer"].fields
    assert fields["revenue"].kind == "money"
    assert fields["score"].kind == "decimal"


def test_options_in_all_three_forms(tmp_path: Path) -> None:
    fields = (
        "a: {type: choice, options: [x, 2]}\n"
        "      b: {type: choice, options: [{value: x, label: {zh: 甲, en: X}, color: red}]}\n"
        "      c: {type: choice, options: {x: {zh: 甲, en: X}, y: {label: Y, color: blue}}}"
    )
    bp = load(write(tmp_path, "blueprint.yaml", ONE_FIELD.replace("{field}", fields)))
    options = {n: f.options for n, f in bp.entities["customer"].fields.items()}
    assert [(o.value, o.label) for o in options["a"]] == [
        ("x", Text("x", "x")),
        ("2", Text("2", "2")),
    ]
    (b,) = options["b"]
    assert (b.value, b.label, b.color) == ("x", Text("甲", "X"), "red")
    assert (b.location.line, b.location.column) == (9, 35)
    x, y = options["c"]
    assert (x.label, y.label, y.color) == (Text("甲", "X"), Text("Y", "Y"), "blue")
    assert (y.location.line, y.location.column) == (10, 54)


def test_yaml_1_1_traps_stay_text() -> None:
    bp = load(GOOD / "scalars.yaml")
    assert bp.title == Text.of("NO")
    assert bp.description == Text.of("yes")
    shift = bp.entities["shift"]
    assert shift.label == Text.of("12:30")
    assert shift.fields["start"].label == Text.of("1e3")
    assert shift.fields["start"].default == "12:30"
    assert [o.value for o in shift.fields["country"].options] == [
        "NO", "SE", "DK", "on", "off", "y", "n", "0x1F", "007",
    ]  # fmt: skip
    assert shift.fields["day"].min == "2024-01-01"
    assert shift.fields["ratio"].min == 1500.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("30m", timedelta(minutes=30)),
        ("48h", timedelta(hours=48)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("-3d", timedelta(days=-3)),
        ("3 days", None),
        (48, None),
    ],
)
def test_durations(text: object, value: timedelta | None) -> None:
    assert parse_duration(text) == value


def test_digest_is_stable_and_follows_content(tmp_path: Path) -> None:
    first = load(write(tmp_path / "a", "blueprint.yaml", MINIMAL)).digest
    reformatted = MINIMAL.replace("{type: text}", "\n            type: text")
    assert load(write(tmp_path / "b", "blueprint.yaml", reformatted)).digest == first
    changed = MINIMAL.replace("title: T", "title: U")
    assert load(write(tmp_path / "c", "blueprint.yaml", changed)).digest != first


def test_load_raises_with_every_problem(tmp_path: Path) -> None:
    text = MINIMAL.replace("name: {type: text}", "name: {type: nubmer, lable: x}") + (
        "    flows: {f: {entity: nowhere, status_field: s, steps: {a: {approvers: {role: r}}}}}\n"
    )
    path = write(tmp_path, "blueprint.yaml", text)
    with pytest.raises(BlueprintError) as info:
        load(path, lang="en")
    messages = [p.message.get("en") for p in info.value.problems]
    assert len(messages) == 3
    assert any("unknown key 'lable'" in m for m in messages)
    assert any("unknown field type 'nubmer'" in m for m in messages)
    assert any("unknown entity 'nowhere'" in m for m in messages)
    assert str(info.value).startswith("Invalid blueprint: ")
    with pytest.raises(BlueprintError) as info:
        load(path)  # default_locale zh
    assert str(info.value).startswith("蓝图有误：")


def test_json_blueprint_loads() -> None:
    bp = load(GOOD / "json" / "blueprint.json")
    assert bp.title == Text(zh="JSON 蓝图", en="JSON blueprint")
    score = bp.entities["customer"].fields["score"].formula
    assert score is not None
    assert (score.location.line, score.location.column) == (11, 49)


def test_merge_rules(tmp_path: Path) -> None:
    base_data, base_pos = parse_yaml(
        "a: {x: 1, y: [1, 2], z: {k: v}}\nb: keep\nc: drop\n", "base.yaml"
    )
    over_data, over_pos = parse_yaml("a: {y: [3], new: 2, x: ~}\nc: ~\nd: added\n", "over.yaml")
    problems: list[Problem] = []
    merged = merge(Doc(base_data, base_pos), Doc(over_data, over_pos), problems)
    assert problems == []
    assert merged.data == {"a": {"y": [3], "z": {"k": "v"}, "new": 2}, "b": "keep", "d": "added"}
    assert list(merged.data["a"]) == ["y", "z", "new"]  # base order first, new keys appended
    assert merged.pos.locate(("a", "y", 0)).file == "over.yaml"
    assert merged.pos.locate(("a", "z", "k")).file == "base.yaml"
    assert merged.pos.locate_key(("d",)) == Location("over.yaml", 3, 1)
    assert base_data["c"] == "drop"  # the base is not modified


def test_overlay_options_as_a_map_merge_with_a_list_by_value(tmp_path: Path) -> None:
    base = tmp_path / "base"
    write(
        base,
        "blueprint.yaml",
        """\
        formflow: 1
        id: base
        title: Base
        entities:
          deal:
            label: Deal
            fields:
              stage:
                type: choice
                label: Stage
                options:
                  - {value: lead, label: {zh: 线索, en: Lead}, color: gray}
                  - {value: won, label: {zh: 赢单, en: Won}}
                  - lost
        """,
    )
    child = tmp_path / "child"
    write(
        child,
        "blueprint.yaml",
        """\
        extends: ../base
        entities:
          deal:
            fields:
              stage:
                options:
                  talks: {zh: 谈判, en: Talks}
                  lead: {zh: 潜在客户, en: Prospect}
                  won: {color: green}
                  lost: ~
        """,
    )
    stage = load(child).entities["deal"].fields["stage"]
    assert [o.value for o in stage.options] == ["lead", "won", "talks"]
    lead, won, talks = stage.options
    assert (lead.label.en, lead.color) == ("Prospect", "gray")
    assert (won.label.en, won.color) == ("Won", "green")
    assert talks.label == Text(zh="谈判", en="Talks")
    assert talks.location.file.endswith("child/blueprint.yaml")
    # Removing an option the template does not have is a typo, reported where written.
    write(
        child,
        "blueprint.yaml",
        "extends: ../base\nentities:\n  deal:\n    fields:\n"
        "      stage:\n        options: {lots: ~}\n",
    )
    (problem,) = diagnose(child).problems
    assert "the option 'lots' is not in the template" in problem.message.get("en")
    assert (problem.location.line, problem.location.column) == (6, 19)
    # A list still replaces the whole list.
    write(
        child,
        "blueprint.yaml",
        "extends: ../base\nentities:\n  deal:\n    fields:\n"
        "      stage:\n        options: [a, b]\n",
    )
    assert [o.value for o in load(child).entities["deal"].fields["stage"].options] == ["a", "b"]
