"""Semantic checks: names, references, kinds, formulas, cycles, flows, KPIs, automations."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import checks
from engine.checks import Context, check, semantic_check
from engine.errors import Location, Problem
from engine.fields.patterns import CompiledPattern, compile_pattern
from engine.i18n import T, Text
from engine.loader import diagnose, load
from engine.loading.formula_checks import formula_location
from engine.model import Blueprint, Entity, Field, Formula, frozen_map

FIXTURES = Path(__file__).parent / "fixtures" / "blueprints"

HEAD = """\
formflow: 1
id: t
title: T
roles:
  rep: Rep
  boss: Boss
"""


def run(tmp_path: Path, body: str) -> tuple[str, list[str]]:
    """(the blueprint text, its problems as 'line:col: message; hint')."""
    text = HEAD + textwrap.dedent(body).lstrip("\n")
    path = tmp_path / "blueprint.yaml"
    path.write_text(text, encoding="utf-8")
    report = diagnose(path)
    out = []
    for problem in sorted(report.problems, key=lambda p: p.location):
        assert problem.location.file == str(path)
        out.append(
            f"{problem.location.line}:{problem.location.column}: "
            + (problem.render("en").split(": ", 1)[1])
        )
    return text, out


def at(text: str, needle: str, occurrence: int = 1) -> str:
    """'line:col' of the ``occurrence``-th ``needle`` in ``text`` (1-based)."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{line}:{column}"


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


DEAL = """
entities:
  customer:
    label: Customer
    fields:
      name: {type: text}
  deal:
    label: Deal
    title_field: titel
    fields:
      customer: {type: ref, to: customer}
      amount: {type: money}
      stage: {type: choice, options: [open, won, lost]}
      closed_on: {type: date}
      owner_note: {type: text}
      helper: {type: user}
"""


# -- references -------------------------------------------------------------------------------


def test_unknown_title_field(tmp_path: Path) -> None:
    text, problems = run(tmp_path, DEAL)
    assert only(problems).startswith(f"{at(text, 'titel')}: unknown field 'titel' in entity 'deal'")


def test_unknown_ref_target(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path, DEAL.replace("titel", "amount").replace("to: customer", "to: custmer")
    )
    assert only(problems) == (
        f"{at(text, 'custmer')}: unknown entity 'custmer'; did you mean 'customer'?"
    )


def test_list_sections_rules_and_access_name_real_fields(tmp_path: Path) -> None:
    body = DEAL.replace("titel", "amount") + textwrap.indent(
        textwrap.dedent(
            """
            list:
              columns: [amount, owner, amout]
              sort: [-closed, amount]
              filters: [stage, id, created_at]
              search: [nam]
            sections:
              - label: Main
                fields: [amount, stagee]
            rules:
              - check: "amount >= 0"
                field: amont
                message: Positive
            access:
              rep: {read: own, hidden_fields: [helpr], readonly_fields: [amount]}
              intern: {read: all}
            """
        ),
        "    ",
    )
    text, problems = run(tmp_path, body)
    assert problems == [
        f"{at(text, 'amout')}: unknown field 'amout' in entity 'deal'; did you mean 'amount'?",
        f"{at(text, '-closed')}: unknown field 'closed' in entity 'deal'; "
        "did you mean 'closed_on'?",
        problems[2],
        f"{at(text, 'stagee')}: unknown field 'stagee' in entity 'deal'; did you mean 'stage'?",
        f"{at(text, 'amont')}: unknown field 'amont' in entity 'deal'; did you mean 'amount'?",
        f"{at(text, 'helpr')}: unknown field 'helpr' in entity 'deal'; did you mean 'helper'?",
        f"{at(text, 'intern')}: unknown role 'intern'; use one of: boss, rep",
    ]
    assert problems[2].startswith(f"{at(text, 'nam]')}: unknown field 'nam' in entity 'deal'")


def test_system_columns_may_be_referenced(tmp_path: Path) -> None:
    body = (
        DEAL.replace("titel", "id") + "    list: {columns: [id, owner, created_at, updated_by]}\n"
    )
    _, problems = run(tmp_path, body)
    assert problems == []


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["select", "order", "user", "table", "group", "from", "class"])
def test_reserved_words_are_refused_as_field_names(tmp_path: Path, name: str) -> None:
    text, problems = run(
        tmp_path,
        f"""
        entities:
          thing:
            label: Thing
            fields:
              {name}: {{type: text}}
        """,
    )
    assert only(problems).startswith(
        f"{at(text, name + ': {')}: '{name}' is a reserved word and cannot be used as a name"
    )


@pytest.mark.parametrize("name", ["id", "owner", "created_at", "version"])
def test_system_columns_cannot_be_redefined(tmp_path: Path, name: str) -> None:
    text, problems = run(
        tmp_path,
        f"""
        entities:
          thing:
            label: Thing
            fields:
              {name}: {{type: text}}
        """,
    )
    assert only(problems).startswith(
        f"{at(text, name + ': {')}: '{name}' is a system field and cannot be defined"
    )


def test_sql_keyword_entity_name(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          order:
            label: Order
            fields:
              total: {type: money}
        """,
    )
    assert only(problems).startswith(f"{at(text, 'order:')}: 'order' is a reserved word")


def test_an_entity_may_not_take_an_api_path(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          tasks:
            label: Tasks
            fields:
              title: {type: text}
        """,
    )
    assert only(problems).startswith(
        f"{at(text, 'tasks:')}: the entity name 'tasks' is taken by the API (/api/v1/tasks)"
    )


def test_names_differing_only_in_case(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          thing:
            label: Thing
            fields:
              Amount: {type: money}
              amount: {type: money}
        """,
    )
    assert only(problems).startswith(
        f"{at(text, 'amount:')}: 'amount' differs from 'Amount' only in letter case"
    )


def test_chinese_names_are_fine(tmp_path: Path) -> None:
    _, problems = run(
        tmp_path,
        """
        entities:
          客户:
            label: 客户
            title_field: 名称
            fields:
              名称: {type: text}
              金额: {type: money, formula: "LEN(名称) * 2"}
        """,
    )
    assert problems == []


# -- kinds ------------------------------------------------------------------------------------


def test_unknown_field_type_points_at_the_value(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          thing:
            label: Thing
            fields:
              amount: {type: nubmer}
              note: {type: zzz}
        """,
    )
    assert problems == [
        f"{at(text, 'nubmer')}: unknown field type 'nubmer'; did you mean 'number'?",
        f"{at(text, 'zzz')}: unknown field type 'zzz'; use one of: autonumber, bool, boolean, "
        "choice, currency, date, datetime, decimal, email, file, formula, integer, …",
    ]


@pytest.mark.parametrize(
    ("field", "key", "kind", "owners"),
    [
        ("{type: text, options: [a, b]}", "options", "text", "choice, multi_choice"),
        ("{type: money, to: customer}", "to", "money", "ref"),
        ("{type: currency, to: customer}", "to", "money", "ref"),
        ("{type: date, precision: 2}", "precision", "date", "decimal, money, percent"),
    ],
)
def test_keys_of_other_kinds_are_refused_at_the_key(
    tmp_path: Path, field: str, key: str, kind: str, owners: str
) -> None:
    text, problems = run(
        tmp_path,
        f"""
        entities:
          thing:
            label: Thing
            fields:
              x: {field}
        """,
    )
    assert only(problems) == (
        f"{at(text, key + ':')}: key '{key}' does not apply to a {kind} field; "
        f"remove it; '{key}' is only for {owners} fields"
    )


def test_kind_checks_run_on_every_field(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          thing:
            label: Thing
            fields:
              level: {type: choice, options: [A, B, A]}
              size: {type: integer, min: 10, max: 1}
              lines:
                type: table
                fields:
                  kind: {type: choice, options: [x, x]}
        """,
    )
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{at(text, 'A]')}: ")
    assert "'A'" in problems[0]
    assert problems[1].startswith(f"{at(text, 'size')}: min (10) is greater than max (1)")
    assert problems[2].startswith(f"{at(text, 'x]')}: ")


def test_redos_pattern_is_safe_on_re2() -> None:
    bp = load(FIXTURES / "good" / "pattern.yaml")
    assert bp.entities["thing"].fields["code"].pattern == "^(a+)+$"
    compiled = compile_pattern("^(a+)+$")
    assert isinstance(compiled, CompiledPattern)
    assert not compiled.fullmatch("a" * 50_000 + "!")  # linear time on RE2


def test_child_table_cannot_hold_a_table(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          thing:
            label: Thing
            fields:
              outer:
                type: table
                fields:
                  inner: {type: table, fields: {x: {type: text}}}
        """,
    )
    assert any(
        p.startswith(f"{at(text, 'table, fields')}: a child table cannot hold another table")
        for p in problems
    ), problems


# -- formulas ---------------------------------------------------------------------------------


def test_formula_type_error_points_into_the_formula(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              name: {type: text}
              amount: {type: money}
              score: {type: decimal, formula: "amount + name"}
        """,
    )
    assert only(problems).startswith(f"{at(text, '+ name')}: cannot add number and text")


def test_formula_error_on_a_later_line_of_a_block(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              amount: {type: money}
            rules:
              - check: |
                  amount > 0
                  and amout < 10
                message: Range
        """,
    )
    assert only(problems) == f"{at(text, 'amout')}: unknown field 'amout'; did you mean 'amount'?"


def test_formula_expected_types(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              amount: {type: money, visible_if: "amount * 2", default: "=TODAY()"}
              closed: {type: date, formula: "amount"}
        """,
    )
    end_of_closed = 'amount"}'
    assert problems == [
        f"{at(text, 'amount * 2')}: this must be true/false, but the formula gives number",
        f"{at(text, 'TODAY')}: this needs number, but the formula gives date",
        f"{at(text, end_of_closed)}: this needs date, but the formula gives number",
    ]


def test_changes_are_allowed_only_in_update_rules(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              amount: {type: money}
            rules:
              - {check: "not ISCHANGED(amount)", on: [update], message: Frozen}
              - {check: "not ISCHANGED(amount)", message: Frozen}
        """,
    )
    assert only(problems).startswith(f"{at(text, 'ISCHANGED', 2)}: ")


def test_kpi_measures_must_aggregate_in_sql(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              name: {type: text}
              amount: {type: money}
        kpis:
          good: {entity: deal, measure: "SUM(amount)", where: "amount > 0"}
          not_sql: {entity: deal, measure: "SUM(LEN(name))"}
          not_bool: {entity: deal, measure: "COUNT(amount)", where: "amount"}
        """,
    )
    assert problems[0].startswith(
        f"{at(text, 'SUM(LEN')}: cannot be computed in the database: LEN"
    ), problems
    where_text = 'amount"}'
    assert problems[1].startswith(f"{at(text, where_text)}: this must be true/false")
    assert len(problems) == 2


def test_every_formula_is_bound_after_loading() -> None:
    bp = load(FIXTURES / "good" / "minimal")
    for entity in bp.entities.values():
        for f in entity.fields.values():
            for formula in (f.formula, f.default_formula):
                assert formula is None or formula.is_compiled
        for rule in entity.rules:
            assert rule.check.is_compiled
    assert bp.kpis["revenue"].measure.is_compiled
    assert bp.kpis["revenue"].measure.compiled.aggregate


@pytest.mark.parametrize(
    ("fields", "first", "cycle"),
    [
        (
            'a: {type: decimal, formula: "b + 1"}\n      b: {type: decimal, formula: "a * 2"}',
            "b + 1",
            "a → b → a",
        ),
        ('a: {type: decimal, formula: "a + 1"}', "a + 1", "a → a"),
        (
            'a: {type: decimal, default: "=b"}\n'
            '      b: {type: decimal, formula: "c"}\n'
            '      c: {type: decimal, formula: "a"}',
            'b"}',
            "a → b → c → a",
        ),
    ],
)
def test_formula_cycles_are_named(tmp_path: Path, fields: str, first: str, cycle: str) -> None:
    text, problems = run(
        tmp_path,
        "entities:\n  calc:\n    label: Calc\n    fields:\n      " + fields + "\n",
    )
    assert only(problems) == (
        f"{at(text, first)}: formulas depend on each other in a cycle: {cycle}; "
        "break the cycle: one of these fields must not use the other"
    )


def test_formula_location_maps_offsets() -> None:
    formula = Formula("x\n  + y", Location("f", 10, 20))
    assert formula_location(formula, (0, 0)) == Location("f", 10, 20)
    assert formula_location(formula, (0, 3)) == Location("f", 10, 23)
    assert formula_location(formula, (1, 2)) == Location("f", 11, 22)
    assert formula_location(Formula("x"), (0, 5)) == Location()


# -- flows ------------------------------------------------------------------------------------

FLOW_ENTITY = """
entities:
  contract:
    label: Contract
    fields:
      total: {type: money}
      status: {type: choice, options: [draft, pending, approved, rejected]}
      state: {type: text}
      reviewer: {type: user}
flows:
"""


def test_a_good_flow(tmp_path: Path) -> None:
    _, problems = run(
        tmp_path,
        FLOW_ENTITY
        + """
  approval:
    entity: contract
    status_field: status
    steps:
      first: {approvers: {manager_of: owner}, editable: [total]}
      second:
        when: "total > 100"
        approvers: {field: reviewer}
        on_reject: {return_to: first, notify: [owner, boss, submitter]}
    on_approved: {set: {total: "=total * 1", state: done}}
""",
    )
    assert problems == []


def test_flow_problems(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        FLOW_ENTITY
        + """
  approval:
    entity: contract
    status_field: state
    steps:
      first: {approvers: {manager_of: total}, editable: [totl]}
      second:
        when: "totl > 100"
        approvers: {role: bos}
        on_reject: {return_to: frist, notify: [ownr]}
    on_approved: {set: {signed: "=TODAY()"}}
  other:
    entity: contrct
    status_field: status
    steps: {a: {approvers: {role: rep}}}
  statuses:
    entity: contract
    status_field: status
    statuses: {approved: done}
    steps: {a: {approvers: {role: rep}}}
""",
    )
    joined = "\n".join(problems)
    for needle, message in [
        ("state\n", "the status field 'state' must be a choice field (it is text)"),
        ("signed", "unknown field 'signed' in entity 'contract'"),
        ("totl]", "unknown field 'totl' in entity 'contract'; did you mean 'total'?"),
        ("totl >", "unknown field 'totl'; did you mean 'total'?"),
        ("bos}", "unknown role 'bos'; did you mean 'boss'?"),
        ("frist", "unknown step 'frist' in flow 'approval'; did you mean 'first'?"),
        ("ownr", "'ownr' is neither a role nor a user field; did you mean 'owner'?"),
        ("contrct", "unknown entity 'contrct'; did you mean 'contract'?"),
        ("done", "the status field 'status' has no option 'done' (flow state approved)"),
    ]:
        assert f"{at(text, needle)}: {message}" in joined, (needle, problems)
    assert f"{at(text, 'total}')}: 'total' is not a user field" in joined, problems
    assert len(problems) == 10, problems


# -- KPIs, dashboards, automations ------------------------------------------------------------


def test_kpi_dashboard_and_automation_references(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              amount: {type: money}
              closed_on: {type: date}
              name: {type: text}
          target:
            label: Target
            fields:
              rep: {type: user}
              goal: {type: money}
        kpis:
          revenue:
            entity: deal
            measure: "SUM(amount)"
            date: name
            by: [owner, month, regoin]
            target: {entity: target, measure: "SUM(goal)", match: {owner: rpe, team: rep}}
          ghost: {entity: deel, measure: "COUNT(amount)"}
        dashboards:
          main:
            roles: [rep, manager]
            widgets:
              - {kind: number, kpi: revenu}
              - {kind: bar, kpi: revenue, by: [quarter]}
        automations:
          remind:
            entity: deal
            on: approved
            flow: nope
            actions:
              - set: {amout: 1}
              - create: {entity: target, values: {gaol: "=amount"}}
              - create: {entity: nothing, values: {}}
        """,
    )
    joined = "\n".join(problems)
    for needle, message in [
        ("name\n", "'name' is not a date field (it is text)"),
        ("regoin", "unknown dimension 'regoin' in KPI 'revenue'"),
        ("rpe", "unknown field 'rpe' in entity 'target'; did you mean 'rep'?"),
        ("team: rep", "the target matches on 'team', which is not in the KPI's by"),
        ("deel", "unknown entity 'deel'; did you mean 'deal'?"),
        ("manager", "unknown role 'manager'"),
        ("revenu}", "unknown KPI 'revenu'; did you mean 'revenue'?"),
        ("quarter", "KPI 'revenue' cannot be grouped by 'quarter'; use one of: owner, month"),
        ("nope", "unknown flow 'nope'"),
        ("amout", "unknown field 'amout' in entity 'deal'; did you mean 'amount'?"),
        ("gaol", "unknown field 'gaol' in entity 'target'; did you mean 'goal'?"),
        ("nothing", "unknown entity 'nothing'"),
    ]:
        assert f"{at(text, needle)}: {message}" in joined, (needle, problems)
    assert len(problems) == 12, problems


def test_dashboard_widgets_need_what_they_show(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              amount: {type: money}
        kpis:
          revenue: {entity: deal, measure: "SUM(amount)"}
        dashboards:
          main:
            widgets:
              - {kind: number, label: {en: nothing shown}}
              - {kind: commission, kpi: revenue}
        """,
    )
    joined = "\n".join(problems)
    for needle, message in [
        ("number", "a number widget needs a kpi (the KPI it shows)"),
        ("commission", "a commission widget needs commission plans (commissions:)"),
        ("revenue}", "a commission widget takes no kpi: it shows the viewer's plan"),
    ]:
        assert f"{at(text, needle)}: {message}" in joined, (needle, problems)
    assert len(problems) == 3, problems


def test_automation_on_update_may_use_changes(tmp_path: Path) -> None:
    _, problems = run(
        tmp_path,
        FLOW_ENTITY
        + """
  approval:
    entity: contract
    status_field: status
    steps: {a: {approvers: {role: rep}}}
automations:
  on_change:
    entity: contract
    on: update
    when: "ISCHANGED(total)"
    actions: [{notify: {to: [reviewer, boss], message: "changed"}}]
  on_ok:
    entity: contract
    on: approved
    flow: approval
    actions: [{set: {state: "=TEXT(total)"}}]
""",
    )
    assert problems == []


def test_automation_flow_must_approve_the_same_entity(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        FLOW_ENTITY.replace(
            "entities:\n", "entities:\n  memo: {label: Memo, fields: {x: {type: text}}}\n"
        )
        + """
  approval:
    entity: contract
    status_field: status
    steps: {a: {approvers: {role: rep}}}
automations:
  wrong:
    entity: memo
    on: approved
    flow: approval
    actions: [{notify: {to: [owner], message: "ok"}}]
""",
    )
    assert only(problems) == (
        f"{at(text, 'approval', 2)}: flow 'approval' approves 'contract', not 'memo'; "
        "use the flow's entity as entity:"
    )


# -- the registry and models built in code ----------------------------------------------------


def test_new_checks_join_the_registry(tmp_path: Path) -> None:
    @semantic_check
    def no_entity_called_legacy(ctx: Context) -> Iterator[Problem]:
        for name, entity in ctx.blueprint.entities.items():
            if name == "legacy":
                yield Problem(entity.location, T("不要 legacy", "no legacy"))

    try:
        text, problems = run(
            tmp_path,
            "entities:\n  legacy:\n    label: L\n    fields: {x: {type: text}}\n",
        )
        assert problems == [f"{at(text, 'legacy')}: no legacy"]
    finally:
        checks.CHECKS.remove(no_entity_called_legacy)


def test_check_a_model_built_in_code() -> None:
    where = Location("code.py", 3, 1)
    bp = Blueprint(
        id="code",
        title=Text.of("Code"),
        version=1,
        entities=frozen_map(
            {
                "thing": Entity(
                    name="thing",
                    label=Text.of("Thing"),
                    location=where,
                    fields=frozen_map(
                        {
                            "x": Field(
                                "x", "decimal", Text.of("x"), where, formula=Formula("y + 1", where)
                            ),
                            "select": Field("select", "text", Text.of("s"), where),
                            "bad name": Field("bad name", "text", Text.of("b"), where),
                        }
                    ),
                )
            }
        ),
    )
    problems = [p.render("en") for p in check(bp)]
    assert any(p.startswith("code.py:3:1: unknown field 'y'") for p in problems), problems
    assert any("'select' is a reserved word" in p for p in problems), problems
    assert any("'bad name' is not a valid name" in p for p in problems), problems


def test_every_check_has_a_docstring() -> None:
    for fn in checks.CHECKS:
        assert fn.__doc__, fn.__name__


def test_a_record_scope_must_translate_to_sql(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          deal:
            label: Deal
            fields:
              amount: {type: integer, label: Amount}
            access:
              rep: {read: "=MOD(amount, 2) == 0", update: "=amount > 10"}
        """,
    )
    assert only(problems) == (
        f"{at(text, 'MOD')}: cannot be computed in the database: MOD; a record scope filters "
        "lists in the database: use only operators and functions the database computes"
    )


# -- flows: what only the runtime would find otherwise ----------------------------------------


def test_flow_edits_and_return_targets(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        FLOW_ENTITY.replace(
            "      reviewer: {type: user}\n",
            "      reviewer: {type: user}\n      doubled: {type: formula, formula: total * 2}\n",
        )
        + """
  approval:
    entity: contract
    status_field: status
    steps:
      first:
        approvers: {role: rep}
        editable: [total, status, doubled]
        on_reject: {return_to: second}
        on_approve: {return_to: submitter}
      second:
        approvers: {role: boss}
        on_reject: {return_to: second}
      third:
        approvers: {role: boss}
        on_reject: {return_to: first}
    on_approved: {set: {status: approved}}
""",
    )
    joined = "\n".join(problems)
    for needle, message in [
        ("status, ", "approvers cannot edit 'status': it is the flow's status field"),
        ("doubled]", "approvers cannot edit 'doubled': the engine computes it"),
        ("second}\n        on_approve", "step 'first' can only return to an earlier step"),
        ("second}\n      third", "step 'second' can only return to an earlier step"),
        ("submitter}", "return_to only applies to rejections"),
        ("status: approved", "'status' is the flow's status field; the flow sets it itself"),
    ]:
        assert any(p.startswith(at(text, needle)) and message in p for p in problems), (
            needle,
            joined,
        )
    assert len(problems) == 6, problems


def test_steps_that_can_never_run_are_reported(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        FLOW_ENTITY
        + """
  approval:
    entity: contract
    status_field: status
    submit_when: "total <= 0 and state != 'x'"
    steps:
      never: {when: "1 > 2", approvers: {role: rep}}
      contradicts: {when: "total > 0", approvers: {role: rep}}
      narrow: {when: "total >= 100000 and total < 50000", approvers: {role: rep}}
      texts: {when: "state == 'a' and state == 'b'", approvers: {role: rep}}
      same: {when: "state == 'x'", approvers: {role: rep}}
      fine: {when: "total == 0 or total > 5", approvers: {role: rep}}
      fine_too: {when: "state == 'a'", approvers: {role: rep}}
  all_dead:
    entity: contract
    status_field: status
    steps:
      only: {when: "false", approvers: {role: rep}}
""",
    )
    warnings = [p for p in problems if "never runs" in p or "every step" in p]
    assert len(warnings) == len(problems) == 7, problems
    for needle, message in [
        ("1 > 2", "step 'never' never runs: its when is never true"),
        (
            'total > 0"',
            "step 'contradicts' never runs: its when contradicts the flow's submit_when",
        ),
        ("total >= 100000", "step 'narrow' never runs: its when is never true"),
        ("state == 'a' and", "step 'texts' never runs: its when is never true"),
        ("state == 'x'\"", "step 'same' never runs: its when contradicts the flow's submit_when"),
        ('"false"', "step 'only' never runs: its when is never true"),
    ]:
        where = at(text, needle)
        line, column = where.split(":")
        near = f"{line}:{int(column) + 1}"  # the location is the formula's first character
        assert any(
            (p.startswith(where) or p.startswith(near)) and message in p for p in problems
        ), (needle, problems)
    assert any("every step of flow 'all_dead' is skipped" in p for p in problems)
    report = diagnose(tmp_path / "blueprint.yaml")
    assert {p.severity for p in report.problems} == {"warning"}


def test_an_entity_may_not_shadow_the_dashboard_api(tmp_path: Path) -> None:
    text, problems = run(
        tmp_path,
        """
        entities:
          dashboards:
            label: Boards
            fields:
              name: {type: text}
        """,
    )
    assert problems == [
        f"{at(text, 'dashboards:')}: the entity name 'dashboards' is taken by the API "
        "(/api/v1/dashboards); use another name, e.g. dashboard_records"
    ], problems
