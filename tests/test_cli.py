"""``formflow check``: one summary line when good; every problem at file:line:col when not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import cli
from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path("tests") / "fixtures" / "blueprints"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<text>.+)$")

#: Every bad fixture: the file the problem is in, its line:col, and part of the message.
EXPECTED: dict[str, tuple[str, str, str]] = {
    "invalid_yaml.yaml": ("invalid_yaml.yaml", "7:1", "invalid YAML: a ',' or '}' is missing"),
    "tab_indent.yaml": (
        "tab_indent.yaml",
        "7:1",
        "tabs are not allowed for indentation; use spaces",
    ),
    "duplicate_keys.yaml": (
        "duplicate_keys.yaml",
        "10:7",
        "duplicate key 'name' (first written on line 9)",
    ),
    "unknown_top_key.yaml": (
        "unknown_top_key.yaml",
        "5:1",
        "unknown key 'entitys'; did you mean 'entities'?",
    ),
    "field_no_type.yaml": ("field_no_type.yaml", "9:7", "field 'name' has no 'type'"),
    "ref_missing_entity.yaml": (
        "ref_missing_entity.yaml",
        "9:43",
        "unknown entity 'custmer'; did you mean 'customer'?",
    ),
    "python_tag.yaml": (
        "python_tag.yaml",
        "4:8",
        "YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    "alias_bomb.yaml": ("alias_bomb.yaml", "7:11", "expands to more than 200,000 values"),
    "duplicate_option.yaml": ("duplicate_option.yaml", "9:48", "'B'"),
    "misspelt_type.yaml": (
        "misspelt_type.yaml",
        "9:23",
        "unknown field type 'nubmer'; did you mean 'number'?",
    ),
    "misspelt_key.yaml": (
        "misspelt_key.yaml",
        "9:26",
        "unknown key 'lable' in field 'name'; did you mean 'label'?",
    ),
    "formula_type_error.yaml": (
        "formula_type_error.yaml",
        "11:47",
        "cannot add number and text",
    ),
    "formula_cycle.yaml": (
        "formula_cycle.yaml",
        "9:36",
        "formulas depend on each other in a cycle: a → b → c → a",
    ),
    "reserved_dunder.yaml": ("reserved_dunder.yaml", "9:7", "'__class__' is not a valid name"),
    "reserved_select.yaml": (
        "reserved_select.yaml",
        "9:7",
        "'select' is a reserved word and cannot be used as a name",
    ),
    "reserved_path.yaml": ("reserved_path.yaml", "6:3", "'../x' is not a valid name"),
    "misplaced_key.yaml": (
        "misplaced_key.yaml",
        "9:29",
        "key 'to' does not apply to a money field",
    ),
    "json_duplicate.json": (
        "json_duplicate.json",
        "5:3",
        "duplicate key 'id' (first written on line 3)",
    ),
    "json_syntax.json": ("json_syntax.json", "5:1", "invalid JSON"),
    "extends_cycle_a": ("extends_cycle_a/blueprint.yaml", "2:10", "extends forms a cycle"),
    "extends_cycle_b": ("extends_cycle_b/blueprint.yaml", "1:10", "extends forms a cycle"),
    "include_escape": (
        "include_escape/blueprint.yaml",
        "6:5",
        "'../python_tag.yaml' is outside the template folder",
    ),
    "include_clash": (
        "include_clash/more.yaml",
        "3:3",
        "'customer' in entities is defined twice: here and at blueprint.yaml:8:3",
    ),
}


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def check(*args: str) -> tuple[int, list[str], str]:
    """(exit code, stdout lines, stderr) of ``formflow check ARGS``."""
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_every_bad_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in (ROOT / BAD).iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_fixture_is_refused_at_the_right_place(name: str) -> None:
    file, where, message = EXPECTED[name]
    code, lines, err = check(str(BAD / name), "--lang", "en")
    assert code == 1, lines
    assert lines, err
    for line in lines:
        assert LINE.match(line), line
        assert "Traceback" not in line
    assert any(line.startswith(f"{BAD / file}:{where}: ") and message in line for line in lines), (
        lines
    )
    assert "problem" in err


def test_a_10000_field_entity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(
        "formflow: 1\nid: big\ntitle: Big\nentities:\n  huge:\n    label: Huge\n    fields:\n"
        + "".join(f"      f{i}: {{type: text}}\n" for i in range(10_000)),
        encoding="utf-8",
    )
    code, lines, _ = check(str(path), "--lang", "en")
    assert code == 1
    (line,) = lines
    assert line.endswith(
        "big.yaml:508:7: entity 'huge' has too many fields: at most 500 are allowed; "
        "split the entity into related entities (linked with ref) or drop unused fields"
    )


def test_python_tag_is_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = ROOT / BAD / "python_tag.yaml"
    monkeypatch.chdir(tmp_path)
    code, lines, _ = check(str(fixture), "--lang", "en")
    assert code == 1
    assert "not allowed" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no formflow_pwned.txt


@pytest.mark.parametrize(
    ("path", "summary"),
    [
        (
            GOOD / "minimal",
            "OK — 2 entities, 12 fields, 1 flow, 1 KPI, 1 dashboard, 1 automation",
        ),
        (GOOD / "overlay", "OK — 2 entities, 12 fields, 1 flow, 1 KPI, 1 dashboard"),
        (GOOD / "with_include", "OK — 2 entities, 4 fields, 0 flows, 1 KPI, 0 dashboards"),
        (GOOD / "json", "OK — 1 entity, 3 fields, 0 flows, 0 KPIs, 0 dashboards"),
        (GOOD / "scalars.yaml", "OK — 1 entity, 4 fields"),
        (GOOD / "pattern.yaml", "OK — 1 entity, 1 field"),
    ],
)
def test_good_blueprints_pass_with_a_summary(path: Path, summary: str) -> None:
    code, lines, _ = check(str(path), "--lang", "en")
    assert code == 0, lines
    (line,) = lines
    assert line.startswith(f"{path}: {summary}")


def test_summary_in_chinese_by_default() -> None:
    code, lines, _ = check(str(GOOD / "minimal"))
    assert code == 0
    assert lines == [
        f"{GOOD / 'minimal'}：通过 — 2 个实体、12 个字段、1 个流程、1 个指标、1 个看板、1 个自动化"
    ]


def test_problems_in_the_blueprints_language_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    body = "formflow: 1\nid: t\ntitle: T\nentities:\n  c:\n    label: C\n    fields:\n"
    path.write_text(body + "      x: {type: nubmer}\n", encoding="utf-8")
    _, zh, _ = check(str(path))
    assert zh[0].endswith("未知的字段类型 'nubmer'; 是不是 'number'？")
    _, en, _ = check(str(path), "--lang", "en")
    assert en[0].endswith("unknown field type 'nubmer'; did you mean 'number'?")
    path.write_text("default_locale: en\n" + body + "      x: {type: nubmer}\n")
    _, default_en, _ = check(str(path))
    assert default_en[0].endswith("unknown field type 'nubmer'; did you mean 'number'?")


def test_unreadable_blueprint_reports_in_chinese_by_default(tmp_path: Path) -> None:
    code, lines, err = check(str(tmp_path / "missing"))
    assert code == 1
    assert lines[0].endswith("missing: 找不到 missing; 检查路径")
    assert "共 1 个问题" in err


def test_problems_are_sorted_with_relative_paths(tmp_path: Path) -> None:
    folder = ROOT / "tests" / "fixtures" / "blueprints"
    code, lines, _ = check(str(folder / "bad" / "include_clash"), "--lang", "en")
    assert code == 1
    assert lines[0].startswith("tests/fixtures/blueprints/bad/include_clash/more.yaml:3:3: ")
    path = tmp_path / "blueprint.yaml"
    path.write_text(
        "formflow: 1\nid: t\ntitle: T\nentities:\n  c:\n    label: C\n    fields:\n"
        "      z: {type: zzz}\n      a: {type: aaa, lable: x}\n      m: {type: text}\n",
        encoding="utf-8",
    )
    _, lines, _ = check(str(path), "--lang", "en")
    places = [tuple(int(n) for n in LINE.match(line).group("line", "col")) for line in lines]  # type: ignore[union-attr]
    assert places == sorted(places)
    assert len(places) == 3


def test_an_unexpected_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "diagnose", broken)
    result = CliRunner().invoke(main, ["check", str(GOOD / "minimal"), "--lang", "en"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "formflow internal error (please report this bug): RuntimeError: boom"
    )
    assert "Traceback" not in result.output


def test_bad_lang_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["check", str(GOOD / "minimal"), "--lang", "fr"])
    assert result.exit_code == 2
    assert "Invalid value for '--lang'" in result.output


def test_warnings_are_shown_but_pass(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(
        "formflow: 1\nid: w\ntitle: W\nentities:\n  c:\n    label: C\n    fields:\n"
        "      level: {type: choice, options: {a: Same, b: Same}}\n",
        encoding="utf-8",
    )
    code, lines, _ = check(str(path), "--lang", "en")
    assert code == 0
    warning, summary = lines
    assert re.search(r"blueprint\.yaml:8:\d+: warning: options 'a' and 'b' both have", warning)
    assert summary == f"{path}: OK — 1 entity, 1 field, 0 flows, 0 KPIs, 0 dashboards"
