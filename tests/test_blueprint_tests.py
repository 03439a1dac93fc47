# ruff: noqa: E501  (the inline blueprints and cases are YAML, kept one record a line)
"""The blueprint test runner (``formflow test``) on small inline blueprints.

Every case runs for real: a throwaway SQLite file, or a throwaway schema on the
test session's PostgreSQL database, through the engine's services.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.testing import collect, run_suite
from engine.testing.compare import same
from engine.testing.kpis import same_number
from engine.testing.runner import Outcome

BLUEPRINT = """\
formflow: 1
id: mini
title: {zh: 迷你, en: Mini}
timezone: Asia/Shanghai
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
entities:
  customer:
    label: {zh: 客户, en: Customer}
    title_field: name
    fields:
      name: {type: text, label: Name, required: true, unique: true}
    access:
      rep: {create: true, read: own, update: own}
      manager: {create: true, read: all, update: all, delete: all}
  deal:
    label: {zh: 商机, en: Deal}
    title_field: name
    fields:
      code: {type: autonumber, label: Code, format: "D-{YYYY}-{SEQ:3}"}
      name: {type: text, label: Name, required: true}
      customer: {type: ref, to: customer, required: true, label: Customer}
      stage:
        type: choice
        label: Stage
        default: lead
        options: [lead, won, lost]
      amount: {type: money, label: Amount, min: 0}
      probability: {type: percent, label: P, formula: "CHOOSE_BY(stage, {'lead': 10, 'won': 100, 'lost': 0})"}
      close_date: {type: date, label: Close, required_if: "stage == 'won'"}
      created_day: {type: date, label: Day, default: "=TODAY()"}
      status:
        type: choice
        label: Status
        readonly: true
        default: draft
        options: [draft, pending, approved, rejected]
    rules:
      - check: "amount <= 1000000"
        field: amount
        message: {zh: 金额过大, en: The amount is too large}
    access:
      rep: {create: true, read: own, update: own}
      manager: {create: true, read: team, update: team}
flows:
  deal_approval:
    label: Deal approval
    entity: deal
    status_field: status
    statuses: {draft: draft, pending: pending, approved: approved, rejected: rejected}
    steps:
      manager_review:
        label: Manager
        approvers: {manager_of: owner}
      big_review:
        label: Director
        when: "amount >= 500000"
        approvers: {manager_of: owner, levels: 2}
kpis:
  won:
    label: Won
    entity: deal
    measure: "SUM(amount)"
    where: "stage == 'won'"
    date: close_date
    by: [owner]
"""

USERS = """\
    users:
      li: {roles: [rep], manager: wang}
      wang: {roles: [manager], manager: zhou}
      zhou: {roles: [manager]}
    user: li
"""
#: USERS as the lines of a case written at the indentation the tests use.
U = textwrap.indent(textwrap.dedent(USERS), " " * 10).rstrip("\n")


def write(folder: Path, tests: str, extra_files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blueprint.yaml").write_text(
        BLUEPRINT + "tests:\n" + textwrap.indent(textwrap.dedent(tests), "  "), encoding="utf-8"
    )
    for name, text in (extra_files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> str | None:
    """None: temporary SQLite files (the default); else the session's PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


def run(folder: Path, db: str | None = None, keyword: str | None = None) -> list[Outcome]:
    suite = collect(folder)
    assert suite.ok, [p.message.en for p in suite.problems]
    return run_suite(suite, db_url=db, keyword=keyword)


def statuses(outcomes: list[Outcome]) -> dict[str, str]:
    return {o.case.name: o.status for o in outcomes}


def test_passing_cases_cover_values_errors_clock_and_autonumbers(
    tmp_path: Path, db: str | None
) -> None:
    folder = write(
        tmp_path / "bp",
        """\
        - name: computed
          role: rep
          now: "2024-06-01 08:00"
          given: {customer: [{name: ACME}]}
          create: {deal: {name: D1, customer: ACME, stage: won, amount: "1000", close_date: "2024-06-30"}}
          expect: {probability: 100, amount: 1000.00, close_date: "2024-06-30", created_day: "2024-06-01", customer: ACME, code: D-2024-001, owner: rep}
        - name: required_if
          role: rep
          given: {customer: [{id: c1, name: ACME}]}
          create: {deal: {name: D1, customer: c1, stage: won, amount: 1}}
          expect_error: {field: close_date, message_contains: required}
        - name: rule and unique together
          role: rep
          given: {customer: [{name: ACME}], deal: [{name: D0, customer: ACME, amount: 10}]}
          update: {deal: {title: D0, set: {amount: 2000000}}}
          expect_error: [{field: amount, message_contains: too large}]
        - name: delete refused while referenced
          role: manager
          given: {customer: [{name: ACME}], deal: [{name: D0, customer: ACME, amount: 10}]}
          delete: {customer: ACME}
          expect_error: {message_contains: referenced}
        - name: every case starts empty
          role: rep
          create: {customer: {name: ACME}}
          expect: {id: 1, version: 1}
        """,
    )
    outcomes = run(folder, db)
    assert statuses(outcomes) == {
        "computed": "passed",
        "required_if": "passed",
        "rule and unique together": "passed",
        "delete refused while referenced": "passed",
        "every case starts empty": "passed",
    }, [(o.mismatches, o.problems) for o in outcomes]


def test_a_failing_case_lists_each_difference_where_it_was_written(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "bp",
        """\
        - name: wrong values
          role: rep
          given: {customer: [{name: ACME}]}
          create: {deal: {name: D1, customer: ACME, amount: 5}}
          expect: {probability: 60, amount: 5, stage: won}
        - name: no refusal
          role: rep
          given: {customer: [{name: ACME}]}
          create: {deal: {name: D1, customer: ACME, amount: 1}}
          expect_error: {field: name}
        - name: unexpected refusal
          role: rep
          given: {customer: [{name: ACME}]}
          create: {deal: {name: D1, customer: ACME, stage: won, amount: 1}}
        """,
    )
    wrong, no_refusal, refused = run(folder)
    assert wrong.status == "failed"
    diffs = {m.what: (m.expected, m.actual) for m in wrong.mismatches}
    assert diffs == {"probability": (60, "10"), "stage": ("won", "lead")}
    where = next(m.location for m in wrong.mismatches if m.what == "probability")
    assert where.file.endswith("blueprint.yaml") and where.line > 1
    assert no_refusal.status == "failed"
    assert no_refusal.mismatches[0].what == "expect_error"
    assert refused.status == "failed"
    assert refused.mismatches[0].what == "create close_date"


def test_spec_errors_name_the_place_and_a_near_name(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "bp",
        """\
        - name: typo in entity
          create: {dael: {name: x}}
        - name: typo in field
          role: rep
          create: {deal: {nmae: x}}
        - name: unknown title
          role: rep
          given: {customer: [{name: ACME}]}
          create: {deal: {name: x, customer: ACMF, amount: 1}}
        - name: unknown step
          role: rep
          given: {customer: [{name: ACME}]}
          create: {deal: {name: x, customer: ACME, amount: 1}}
          submit: deal_aproval
        """,
    )
    outcomes = run(folder)
    assert [o.status for o in outcomes] == ["error"] * 4
    messages = [o.problems[0].message.en + " " + o.problems[0].hint.en for o in outcomes]
    assert "unknown entity 'dael'" in messages[0] and "did you mean 'deal'?" in messages[0]
    assert "no field 'nmae'" in messages[1] and "'name'" in messages[1]
    assert "'ACMF'" in messages[2] and "did you mean 'ACME'?" in messages[2]
    assert "unknown flow 'deal_aproval'" in messages[3]
    typo = outcomes[1].problems[0].location
    text = (folder / "blueprint.yaml").read_text(encoding="utf-8").splitlines()
    assert text[typo.line - 1][typo.column - 1 :].startswith("nmae")


def test_flows_path_approvers_and_decisions(tmp_path: Path, db: str | None) -> None:
    folder = write(
        tmp_path / "bp",
        f"""\
        - name: small deal
{U}
          given: {{customer: [{{name: ACME}}]}}
          create: {{deal: {{name: D1, customer: ACME, amount: 100}}}}
          submit: deal_approval
          expect_flow: {{status: pending, step: manager_review, approvers: [wang]}}
        - name: big deal
{U}
          given: {{customer: [{{name: ACME}}]}}
          create: {{deal: {{name: D1, customer: ACME, amount: 600000}}}}
          submit: deal_approval
          approve: [wang, zhou]
          expect_flow: {{status: approved, path: [manager_review, big_review], skipped: []}}
          expect: {{status: approved}}
        - name: wrong approver
{U}
          given: {{customer: [{{name: ACME}}]}}
          create: {{deal: {{name: D1, customer: ACME, amount: 100}}}}
          submit: deal_approval
          approve: zhou
        - name: rejected
{U}
          given: {{customer: [{{name: ACME}}]}}
          create: {{deal: {{name: D1, customer: ACME, amount: 100}}}}
          submit: deal_approval
          reject: wang
          expect_flow: {{status: rejected, step: ~}}
        """,
    )
    outcomes = run(folder, db)
    assert statuses(outcomes) == {
        "small deal": "passed",
        "big deal": "passed",
        "wrong approver": "failed",
        "rejected": "passed",
    }, [(o.case.name, o.mismatches, o.problems) for o in outcomes]
    wrong = outcomes[2].mismatches[0]
    assert wrong.what == "approve zhou" and "wang" in wrong.actual


def test_kpi_expectations(tmp_path: Path, db: str | None) -> None:
    folder = write(
        tmp_path / "bp",
        f"""\
        - name: won this month
          now: "2024-06-20"
{U}
          given:
            customer: [{{name: ACME}}]
            deal:
              - {{name: D1, customer: ACME, stage: won, amount: 300, close_date: "2024-06-10", owner: li}}
              - {{name: D2, customer: ACME, stage: won, amount: 700, close_date: "2024-06-11", owner: wang}}
              - {{name: D3, customer: ACME, stage: won, amount: 999, close_date: "2024-05-11", owner: wang}}
          expect_kpi:
            name: won
            by: [owner]
            period: this_month
            as: zhou
            rows: [{{owner: li, value: 300}}, {{owner: wang, value: 700}}]
            total: 1000
        - name: a rep sees their own
          now: "2024-06-20"
{U}
          given:
            customer: [{{name: ACME}}]
            deal:
              - {{name: D1, customer: ACME, stage: won, amount: 300, close_date: "2024-06-10", owner: li}}
              - {{name: D2, customer: ACME, stage: won, amount: 700, close_date: "2024-06-11", owner: wang}}
          expect_kpi: {{name: won, period: this_month, total: 700}}
        """,
    )
    good, bad = run(folder, db)
    assert good.status == "passed", (good.mismatches, good.problems)
    assert bad.status == "failed"
    assert (bad.mismatches[0].expected, bad.mismatches[0].actual) == (700, "300")


def test_case_files_in_the_tests_folder_and_keyword_selection(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "bp",
        """\
        - name: inline
          role: rep
          create: {customer: {name: ACME}}
        """,
        {
            "tests/more.yaml": """\
            - name: from a file
              role: rep
              create: {customer: {name: ACME}}
              expect: {name: ACME}
            - name: bad key
              role: rep
              creat: {customer: {name: ACME}}
            """
        },
    )
    suite = collect(folder)
    assert not suite.ok
    (problem,) = suite.problems
    assert problem.location.file.endswith("more.yaml") and problem.location.line == 7
    assert "did you mean 'create'?" in problem.hint.en
    (folder / "tests" / "more.yaml").write_text(
        "- name: from a file\n  role: rep\n  create: {customer: {name: ACME}}\n"
        "  expect: {name: ACME}\n",
        encoding="utf-8",
    )
    outcomes = run(folder, keyword="FILE")
    assert [(o.case.name, o.status) for o in outcomes] == [("from a file", "passed")]
    assert outcomes[0].case.location.file.endswith("more.yaml")


def test_cli_output_json_and_exit_codes(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "bp",
        """\
        - name: good
          role: rep
          create: {customer: {name: ACME}}
          expect: {name: ACME}
        - name: bad
          role: rep
          create: {customer: {name: ACME}}
          expect: {name: ACNE}
        - name: later
          skip: not yet
        """,
    )
    runner = CliRunner()
    result = runner.invoke(main, ["test", str(folder), "--lang", "en"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith(": good PASSED") and "blueprint.yaml:" in lines[0]
    assert lines[1].endswith(": bad FAILED")
    assert lines[2].endswith(": later SKIPPED (not yet)")
    assert any("name: expected ACNE, got ACME" in line for line in lines)
    assert lines[-1].startswith("1 failed, 1 passed, 1 skipped in ")
    result = runner.invoke(main, ["test", str(folder), "-k", "good", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["passed"], body["failed"], body["errors"]) == (1, 0, 0)
    assert body["cases"][0]["name"] == "good" and body["cases"][0]["status"] == "passed"
    zh = runner.invoke(main, ["test", str(folder), "-k", "bad"])
    assert "期望 ACNE，实际 ACME" in zh.output and "1 个失败" in zh.output
    verbose = runner.invoke(main, ["test", str(folder), "-k", "good", "-v", "--lang", "en"])
    assert "  ok: name" in verbose.output.splitlines()
    none = runner.invoke(main, ["test", str(folder), "-k", "nothing", "--lang", "en"])
    assert none.exit_code == 1 and "no case name contains 'nothing'" in none.output
    pg = runner.invoke(main, ["test", str(folder), "--db", "sqlite:///x.db", "--lang", "en"])
    assert pg.exit_code == 1 and "--db takes a PostgreSQL URL" in pg.output


def test_a_broken_blueprint_stops_before_running(tmp_path: Path) -> None:
    folder = tmp_path / "bp"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text("formflow: 1\nid: x\ntitle: X\nentitys: {}\n")
    result = CliRunner().invoke(main, ["test", str(folder), "--lang", "en"])
    assert result.exit_code == 1
    assert "did you mean 'entities'?" in result.output
    assert "no tests ran" in result.output
    result = CliRunner().invoke(main, ["test", str(folder), "--json"])
    assert result.exit_code == 1
    (problem,) = json.loads(result.output)["problems"]
    assert problem["location"].endswith("blueprint.yaml:4:1")
    assert "entities" in problem["hint"]["en"]


def test_comparison_follows_the_field_kind() -> None:
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from engine.i18n import Text
    from engine.model import Field

    tz = ZoneInfo("Asia/Shanghai")
    money = Field("m", "money", Text.of("m"))
    assert same(money, "1000", Decimal("1000.00"), tz)
    assert same(money, 0.1, Decimal("0.10"), tz)
    assert not same(money, 1000, Decimal("1000.01"), tz)
    multi = Field("t", "multi_choice", Text.of("t"))
    assert same(multi, ["b", "a"], ["a", "b"], tz)
    assert same(None, None, "", tz) and not same(None, "x", None, tz)
    assert same_number(33.3, Decimal("33.3333")) and not same_number(33.4, Decimal("33.3333"))


def test_formflow_check_warns_about_names_a_case_gets_wrong(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "bp",
        """\
        - name: typo
          role: rep
          create: {customer: {nmae: ACME}}
        """,
    )
    result = CliRunner().invoke(main, ["check", str(folder), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "warning: entity customer has no field 'nmae'; did you mean 'name'?" in result.output
