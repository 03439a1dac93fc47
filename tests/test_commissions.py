"""Commission statements (engine.kpis.commissions) on SQLite and PostgreSQL: tiers
marginal and flat, caps, zero targets, per-role terms, who may read whose statement,
bad periods and reps, and the plan checks of ``formflow check``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import NotFound, PermissionDenied
from engine.kpis.commissions import pay, statement_period
from engine.kpis.periods import PeriodError
from engine.loader import diagnose, load
from engine.model import PayTerms, Tier
from engine.records import SYSTEM, Actor
from engine.runtime import Runtime, build_runtime
from engine.settings import Settings
from engine.storage.database import create_engine
from engine.storage.migrate import initialise

BLUEPRINT = """
formflow: 1
id: pay
title: {zh: 提成, en: Commissions}
roles:
  rep: {zh: 销售, en: Rep}
  senior: {zh: 资深销售, en: Senior rep}
  manager: {zh: 经理, en: Manager}
  finance: {zh: 财务, en: Finance}
entities:
  contract:
    label: {zh: 合同, en: Contract}
    title_field: subject
    fields:
      subject: {type: text, label: 名称, required: true}
      total: {type: money, label: 金额, min: 0}
      status: {type: choice, label: 状态, options: [draft, approved], default: draft}
      signed_on: {type: date, label: 签约日期}
    access:
      rep: {create: true, read: own}
      senior: {create: true, read: own}
      manager: {read: team}
      finance: {read: all}
  target:
    label: {zh: 目标, en: Target}
    fields:
      rep: {type: user, label: 销售, required: true}
      month: {type: date, label: 月份, required: true}
      amount: {type: money, label: 金额, required: true}
    access:
      manager: {create: true, read: team}
kpis:
  revenue:
    label: {zh: 签约额, en: Revenue}
    entity: contract
    measure: "SUM(total)"
    where: "status == 'approved'"
    date: signed_on
    by: [owner, month]
    target: {entity: target, measure: "SUM(amount)", match: {owner: rep}, date: month}
    format: money
commissions:
  monthly:
    label: {zh: 月度提成, en: Monthly commission}
    roles: [rep, senior]
    kpi: revenue
    period: month
    tiers:
      - {upto: 100, rate: 3}
      - {rate: 5}
    cap: 5000
    by_role:
      senior: {mode: flat, tiers: [{upto: 80, rate: 2}, {upto: 120, rate: 4}, {rate: 6}]}
"""

NOW = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)
CENT = Decimal("0.01")


@dataclass
class World:
    rt: Runtime
    path: Path
    url: str

    def actor(self, name: str) -> Actor:
        return self.rt.users.get(name).actor

    def contract(
        self, owner: str, subject: str, total: str, day: str, status: str = "approved"
    ) -> int:
        return self.rt.records.create(
            "contract",
            {
                "subject": subject,
                "total": total,
                "signed_on": day,
                "status": status,
                "owner": owner,
            },
            actor=SYSTEM,
            via="system",
        ).id

    def target(self, rep: str, month: str, amount: str) -> None:
        self.rt.records.create(
            "target", {"rep": rep, "month": month, "amount": amount}, actor=SYSTEM, via="system"
        )


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    engine = create_engine(db_url)
    rt = build_runtime(bp, engine, clock=lambda: NOW, settings=Settings())
    initialise(engine, bp, rt.schema)
    rt.users.add("m", roles=("manager",))
    rt.users.add("a", roles=("rep",), manager="m")
    rt.users.add("s", roles=("senior",), manager="m")
    rt.users.add("z", roles=("rep",))
    rt.users.add("fin", roles=("finance",))
    yield World(rt, path, db_url)
    engine.dispose()


MARGINAL = PayTerms((Tier(Decimal(3), Decimal(100)), Tier(Decimal(5))), "marginal", None)
FLAT = PayTerms((Tier(Decimal(3), Decimal(100)), Tier(Decimal(5))), "flat", None)


@pytest.mark.parametrize(
    ("value", "target", "marginal", "flat"),
    [
        ("80000", "100000", "2400.00", "2400.00"),  # below: all at 3%
        ("100000", "100000", "3000.00", "3000.00"),  # exactly at target: still the 3% tier
        ("120000", "100000", "4000.00", "6000.00"),  # above: 100k × 3% + 20k × 5% / all × 5%
        ("0", "100000", "0.00", "0.00"),
        ("33333.33", "100000", "1000.00", "1000.00"),  # 999.9999 rounds half-even to cents
    ],
)
def test_marginal_and_flat_tiers(value: str, target: str, marginal: str, flat: str) -> None:
    lines, attainment = pay(Decimal(value), Decimal(target), MARGINAL)
    assert sum(line.payout for line in lines) == Decimal(marginal)
    assert attainment == (100 * Decimal(value) / Decimal(target)).quantize(Decimal("0.1"))
    assert sum(line.base for line in lines) == Decimal(value).quantize(CENT)
    flat_lines, _ = pay(Decimal(value), Decimal(target), FLAT)
    assert sum(line.payout for line in flat_lines) == Decimal(flat)
    assert sum(1 for line in flat_lines if line.applies) == 1


def test_zero_or_missing_target_pays_the_first_rate_with_blank_attainment() -> None:
    for target in (None, Decimal(0)):
        lines, attainment = pay(Decimal("50000"), target, MARGINAL)
        assert attainment is None
        assert [(line.rate, line.base, line.payout) for line in lines] == [
            (Decimal(3), Decimal("50000"), Decimal("1500.00"))
        ]


def test_statement_below_at_and_above_target_with_the_records(world: World) -> None:
    world.target("a", "2026-05-01", "100000")
    first = world.contract("a", "C1", "60000", "2026-05-03")
    world.contract("a", "C2", "25000.50", "2026-05-18")
    world.contract("a", "draft", "99999", "2026-05-10", status="draft")  # not approved
    world.contract("a", "April", "10000", "2026-04-30")  # another month
    world.contract("z", "someone else", "70000", "2026-05-05")
    st = world.rt.commissions.statement(SYSTEM, "a", "2026-05")
    assert (st.value, st.target, st.attainment) == (
        Decimal("85000.50"),
        Decimal("100000.00"),
        Decimal("85.0"),
    )
    assert [line.payout for line in st.lines] == [Decimal("2550.02"), Decimal("0.00")]
    assert st.total == Decimal("2550.02") and not st.capped
    assert next((r.id, r.title, r.amount) for r in st.records) == (first, "C1", Decimal("60000.00"))
    assert st.records_total == 2
    world.contract("a", "C3", "34999.50", "2026-05-19")  # exactly 120,000: 20k above target
    st = world.rt.commissions.statement(world.actor("a"), "a", "this_month")
    assert st.attainment == Decimal("120.0")
    assert [line.base for line in st.lines] == [Decimal("100000.00"), Decimal("20000.00")]
    assert st.total == Decimal("3000.00") + Decimal("1000.00")
    assert st.as_json("en")["lines"][1] == {
        "tier": 2,
        "rate": "5",
        "from_attainment": "100",
        "to_attainment": None,
        "base": "20000.00",
        "payout": "1000.00",
        "applies": True,
    }


def test_the_cap_limits_the_payout_and_says_so(world: World) -> None:
    world.target("a", "2026-05-01", "10000")
    world.contract("a", "big", "200000", "2026-05-03")
    st = world.rt.commissions.statement(SYSTEM, "a", "2026-05")
    assert st.subtotal == Decimal("300.00") + Decimal("190000") * 5 / 100
    assert st.capped and st.total == Decimal("5000.00")
    assert any("cap" in n.get("en") for n in st.notes)


def test_zero_target_is_blank_attainment_not_a_crash(world: World) -> None:
    world.target("a", "2026-05-01", "0")
    world.contract("a", "C1", "1000", "2026-05-03")
    st = world.rt.commissions.statement(SYSTEM, "a", "2026-05")
    assert st.attainment is None and st.total == Decimal("30.00")
    assert st.as_json()["attainment"] is None
    assert st.notes and "first tier" in st.notes[0].get("en")


def test_per_role_terms_flat_for_seniors(world: World) -> None:
    world.target("s", "2026-05-01", "100000")
    world.contract("s", "S1", "110000", "2026-05-03")
    st = world.rt.commissions.statement(SYSTEM, "s", "2026-05")
    assert st.mode == "flat"
    assert st.total == Decimal("110000") * 4 / 100  # 110% is in the 80–120% tier, all at 4%
    assert [line.applies for line in st.lines] == [False, True, False]


def test_a_rep_reads_only_their_own_a_manager_their_team(world: World) -> None:
    world.target("a", "2026-05-01", "100000")
    world.contract("a", "C1", "1000", "2026-05-03")
    service = world.rt.commissions
    assert service.statement(world.actor("a"), "a", "2026-05").total == Decimal("30.00")
    assert service.statement(world.actor("m"), "a", "2026-05").total == Decimal("30.00")
    assert service.statement(world.actor("fin"), "a", "2026-05").total == Decimal("30.00")
    with pytest.raises(PermissionDenied):
        service.statement(world.actor("z"), "a", "2026-05")
    with pytest.raises(PermissionDenied):
        service.statement(world.actor("m"), "z", "2026-05")
    assert {u.name for u in service.reps(world.actor("m"))} == {"a", "s"}
    assert {u.name for u in service.reps(world.actor("a"))} == {"a"}


def test_bad_input_is_refused_with_a_reason(world: World) -> None:
    service = world.rt.commissions
    with pytest.raises(NotFound):
        service.statement(SYSTEM, "nobody", "2026-05")
    with pytest.raises(NotFound):  # m has no plan for their role
        service.statement(SYSTEM, "m", "2026-05")
    for period in ("2026-13", "2026-00", "May", "2026-Q5"):
        with pytest.raises(PeriodError):
            service.statement(SYSTEM, "a", period)
    with pytest.raises(PeriodError):  # a monthly plan cannot settle a quarter
        service.statement(SYSTEM, "a", "2026-Q2")
    assert statement_period("2026-Q2", NOW.date(), "quarter").start is not None


def test_cli_statement_as_json_and_text(world: World) -> None:
    world.target("a", "2026-05-01", "100000")
    world.contract("a", "C1", "120000", "2026-05-03")
    runner = CliRunner()
    base = ["commission", str(world.path), "--db", world.url, "--rep", "a"]
    out = runner.invoke(main, [*base, "--period", "2026-05", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert (data["attainment"], data["total"]) == ("120.0", "4000.00")
    text = runner.invoke(main, [*base, "--period", "2026-05", "--lang", "en"])
    assert "Commission: 4,000.00" in text.output and "C1" in text.output
    refused = runner.invoke(main, [*base, "--period", "2026-05", "--as", "z"])
    assert refused.exit_code == 1
    impossible = runner.invoke(main, [*base, "--period", "2026-13", "--lang", "en"])
    assert impossible.exit_code == 1 and "2026-13" in impossible.output


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bp.yaml"
    path.write_text(text, encoding="utf-8")
    return [
        f"{p.location.line} {p.message.get('en')} | {p.hint.get('en')}"
        for p in diagnose(path).problems
    ]


def test_check_refuses_a_plan_whose_kpi_has_no_target(tmp_path: Path) -> None:
    bad = BLUEPRINT.replace(
        '    target: {entity: target, measure: "SUM(amount)", match: {owner: rep}, date: month}\n',
        "",
    )
    problems = _problems(tmp_path, bad)
    line = bad.splitlines().index("    kpi: revenue") + 1
    assert any(p.startswith(f"{line} ") and "has no target" in p for p in problems), problems


def test_check_refuses_a_plan_on_a_kpi_that_is_better_lower(tmp_path: Path) -> None:
    bad = BLUEPRINT.replace(
        '    target: {entity: target, measure: "SUM(amount)", match: {owner: rep}, date: month}\n',
        '    target: {entity: target, measure: "SUM(amount)", match: {owner: rep}, date: month}\n'
        "    better: lower\n",
    )
    assert bad != BLUEPRINT
    problems = _problems(tmp_path, bad)
    line = bad.splitlines().index("    kpi: revenue") + 1
    assert any(p.startswith(f"{line} ") and "cannot be paid on" in p for p in problems), problems


def test_check_refuses_bad_tiers_unknown_kpis_and_roles(tmp_path: Path) -> None:
    bad = (
        BLUEPRINT.replace("kpi: revenue", "kpi: revenu")
        .replace(
            "      - {upto: 100, rate: 3}\n      - {rate: 5}",
            "      - {upto: 100, rate: 3}\n      - {upto: 90, rate: 4}",
        )
        .replace("roles: [rep, senior]", "roles: [rep, senoir]")
    )
    problems = _problems(tmp_path, bad)
    assert any("unknown KPI 'revenu'" in p and "revenue" in p for p in problems), problems
    assert any("must be open-ended" in p for p in problems), problems
    assert any("must rise" in p for p in problems), problems
    assert any("unknown role 'senoir'" in p for p in problems), problems


def test_the_crm_template_plan_pays_reps_on_revenue() -> None:
    bp = load(Path(__file__).parent.parent / "blueprints" / "crm")
    plan = bp.commissions["rep_plan"]
    assert plan.roles == ("sales_rep",) and plan.kpi == "revenue"
    assert [(t.upto, t.rate) for t in plan.terms.tiers] == [
        (Decimal(100), Decimal(3)),
        (None, Decimal(5)),
    ]
    assert plan.terms.cap == Decimal(50000)
