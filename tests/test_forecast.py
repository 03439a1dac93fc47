"""Forecasts (engine.kpis.forecast) and snapshots (engine.kpis.snapshots) on SQLite and
PostgreSQL: every figure against plain Python over the same deals, scopes, the per-deal
override, historical rates from a real audit log, and snapshot comparisons naming deals."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import NotFound, PermissionDenied
from engine.kpis.periods import Period
from engine.loader import diagnose, load
from engine.records import SYSTEM, Actor
from engine.runtime import Runtime, build_runtime
from engine.settings import Settings
from engine.storage.database import create_engine
from engine.storage.migrate import initialise

BLUEPRINT = """
formflow: 1
id: fc
title: {zh: 预测, en: Forecast}
timezone: Asia/Shanghai
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
  admin: {zh: 管理员, en: Admin}
entities:
  deal:
    label: {zh: 商机, en: Deal}
    title_field: name
    fields:
      name: {type: text, label: 名称, required: true}
      stage:
        type: choice
        label: 阶段
        default: lead
        options: [lead, proposal, negotiation, won, lost]
      amount: {type: money, label: 金额, min: 0}
      probability:
        type: percent
        label: 概率
        precision: 0
        formula: >-
          CHOOSE_BY(stage, {'lead': 10, 'proposal': 40, 'negotiation': 75,
          'won': 100, 'lost': 0})
      close_date: {type: date, label: 成交日期}
      fc:
        type: choice
        label: {zh: 预测类别, en: Forecast category}
        options: [pipeline, best_case, commit, closed, omitted]
    access:
      rep: {create: true, read: own, update: own}
      manager: {create: true, read: team, update: team}
      admin: {create: true, read: all, update: all, delete: all}
forecasts:
  sales:
    label: {zh: 销售预测, en: Sales forecast}
    entity: deal
    amount: amount
    probability: probability
    date: close_date
    stage: stage
    categories:
      pipeline: [lead]
      best_case: [proposal]
      commit: [negotiation]
      closed: [won]
    override: fc
    history: {months: 12}
"""

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)
PROB = {"lead": 10, "proposal": 40, "negotiation": 75, "won": 100, "lost": 0}
CATEGORY = {"lead": "pipeline", "proposal": "best_case", "negotiation": "commit", "won": "closed"}
CENT = Decimal("0.01")


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    rt: Runtime
    clock: Clock
    path: Path
    url: str

    def actor(self, name: str) -> Actor:
        return self.rt.users.get(name).actor

    def deal(self, owner: str, name: str, stage: str, amount: str, close: str, **more: Any) -> int:
        data = {"name": name, "stage": stage, "amount": amount, "close_date": close, "owner": owner}
        data.update(more)
        return self.rt.records.create("deal", data, actor=SYSTEM, via="system").id

    def move(self, record_id: int, **changes: Any) -> None:
        record = self.rt.records.get("deal", record_id)
        self.rt.records.update(
            "deal", record_id, changes, version=record.version, actor=SYSTEM, via="system"
        )


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    engine = create_engine(db_url)
    clock = Clock()
    rt = build_runtime(bp, engine, clock=clock, settings=Settings())
    initialise(engine, bp, rt.schema)
    rt.users.add("m", roles=("manager",))
    rt.users.add("a", roles=("rep",), manager="m")
    rt.users.add("b", roles=("rep",), manager="m")
    rt.users.add("c", roles=("rep",))
    rt.users.add("boss", roles=("admin",))
    yield World(rt, clock, path, db_url)
    engine.dispose()


DEALS: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
    ("a", "A1 lead", "lead", "1000.50", "2026-07-03", {}),
    ("a", "A2 proposal", "proposal", "2500", "2026-07-20", {}),
    ("a", "A3 negotiation", "negotiation", "4000", "2026-08-01", {}),
    ("a", "A4 won", "won", "3000", "2026-06-02", {}),
    ("a", "A5 lost", "lost", "9000", "2026-07-09", {}),
    ("a", "A6 lead→commit", "lead", "700", "2026-08-15", {"fc": "commit"}),
    ("b", "B1 proposal", "proposal", "1234.56", "2026-07-31", {}),
    ("b", "B2 negotiation omitted", "negotiation", "5000", "2026-09-01", {"fc": "omitted"}),
    ("b", "B3 no date", "lead", "300", None, {}),
    ("c", "C1 negotiation", "negotiation", "8000", "2026-07-01", {}),
    ("c", "C2 proposal", "proposal", "0", "2026-12-31", {}),
]


def seed(world: World) -> None:
    for owner, name, stage, amount, close, more in DEALS:
        data = {"close_date": close} if close else {}
        world.rt.records.create(
            "deal",
            {"name": name, "stage": stage, "amount": amount, "owner": owner, **data, **more},
            actor=SYSTEM,
            via="system",
        )


def expected(
    owners: set[str] | None = None, period: Period | None = None
) -> dict[tuple[Any, str, str], tuple[int, Decimal, Decimal]]:
    """(month, category, owner) -> (deals, amount, weighted), in plain Python."""
    out: dict[tuple[Any, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for owner, _, stage, amount, close, more in DEALS:
        if owners is not None and owner not in owners:
            continue
        day = date.fromisoformat(close) if close else None
        if period is not None and period.bounded and (day is None or not period.contains(day)):
            continue
        category = more.get("fc") or CATEGORY.get(stage, "omitted")
        if category == "omitted":
            continue
        month = day.replace(day=1) if day else None
        cell = out[(month, category, owner)]
        cell[0] += 1
        cell[1] += Decimal(amount)
        cell[2] += Decimal(amount) * PROB[stage] / 100
    return {k: (v[0], v[1].quantize(CENT), v[2].quantize(CENT)) for k, v in out.items()}


def measured(world: World, actor: Actor, period: Period | None = None) -> dict[Any, Any]:
    result = world.rt.forecasts.evaluate(actor, period=period)
    return {
        (g.keys["month"], g.keys["category"], g.keys["owner"]): (
            g.figures.deals,
            g.figures.amount,
            g.figures.weighted,
        )
        for g in result.breakdown(("month", "category", "owner"))
    }


def test_figures_match_plain_python_for_everyone_and_per_scope(world: World) -> None:
    seed(world)
    assert measured(world, SYSTEM) == expected()
    assert measured(world, world.actor("boss")) == expected()
    assert measured(world, world.actor("a")) == expected({"a"})
    assert measured(world, world.actor("m")) == expected({"a", "b", "m"})
    assert measured(world, world.actor("c")) == expected({"c"})


def test_period_filters_on_the_close_date(world: World) -> None:
    seed(world)
    july = Period("2026-07", date(2026, 7, 1), date(2026, 8, 1), "month")
    got = measured(world, SYSTEM, july)
    assert got == expected(period=july)
    assert {k[0] for k in got} == {date(2026, 7, 1)}


def test_breakdowns_and_totals_add_up(world: World) -> None:
    seed(world)
    result = world.rt.forecasts.evaluate(SYSTEM)
    exp = expected()
    by_category: dict[str, Decimal] = defaultdict(Decimal)
    for (_, category, _), (_, amount, _) in exp.items():
        by_category[category] += amount
    got = {g.keys["category"]: g.figures.amount for g in result.breakdown(("category",))}
    assert got == dict(by_category)
    assert [g.keys["category"] for g in result.breakdown(("category",))] == [
        "pipeline",
        "best_case",
        "commit",
        "closed",
    ]
    assert result.total().amount == sum(v[1] for v in exp.values())
    teams = {g.keys["team"]: g.figures.deals for g in result.breakdown(("team",))}
    assert teams == {
        "m": sum(v[0] for k, v in exp.items() if k[2] in ("a", "b")),
        "c": sum(v[0] for k, v in exp.items() if k[2] == "c"),
    }


def test_the_override_moves_a_deal_and_blank_follows_the_stage(world: World) -> None:
    seed(world)
    result = world.rt.forecasts.evaluate(
        SYSTEM, period=Period("aug", date(2026, 8, 1), date(2026, 9, 1))
    )
    cats = {g.keys["category"]: g.figures.amount for g in result.breakdown(("category",))}
    assert cats == {"commit": Decimal("4700.00")}  # A3 by stage + A6 overridden from lead
    deal = next(d for d in world.rt.forecasts.deals(SYSTEM) if d.title == "A6 lead→commit")
    world.move(deal.id, fc=None)
    result = world.rt.forecasts.evaluate(
        SYSTEM, period=Period("aug", date(2026, 8, 1), date(2026, 9, 1))
    )
    cats = {g.keys["category"]: g.figures.amount for g in result.breakdown(("category",))}
    assert cats == {"commit": Decimal("4000.00"), "pipeline": Decimal("700.00")}
    titles = {d.title for d in world.rt.forecasts.deals(SYSTEM)}
    assert "B2 negotiation omitted" not in titles and "A5 lost" not in titles


def test_historical_rates_come_from_the_audit_log_of_stage_changes(world: World) -> None:
    # Old history, outside the 12-month window: entered lead, then lost.
    world.clock.now = NOW - timedelta(days=500)
    old = world.deal("a", "old", "lead", "100", "2025-03-01")
    world.move(old, stage="lost")
    world.clock.now = NOW - timedelta(days=60)
    path = {
        "w1": ["lead", "proposal", "negotiation", "won"],
        "w2": ["lead", "proposal", "won"],
        "l1": ["lead", "proposal", "lost"],
        "l2": ["lead", "lost"],
        "open": ["lead", "proposal"],
    }
    for name, stages in path.items():
        rid = world.deal("b", name, stages[0], "1000", "2026-09-01")
        for stage in stages[1:]:
            world.clock.now += timedelta(hours=1)
            world.move(rid, stage=stage)
    world.clock.now = NOW
    result = world.rt.forecasts.evaluate(SYSTEM)
    rates = {r.stage: r for r in result.rates}
    # lead: 5 entered (old one is outside the window), 2 won, 2 lost -> 50%
    assert (rates["lead"].entered, rates["lead"].won, rates["lead"].lost) == (5, 2, 2)
    assert rates["lead"].rate == Decimal("50.0")
    # proposal: w1, w2, l1, open entered; 2 won of 3 decided
    assert (rates["proposal"].entered, rates["proposal"].won, rates["proposal"].lost) == (4, 2, 1)
    assert rates["proposal"].rate == Decimal("66.7")
    assert rates["negotiation"].rate == Decimal("100.0")
    assert "won" not in rates and "lost" not in rates
    # The open deal (proposal, 1000) counts at 1000 × 2/3 in the historical figure;
    # the two won deals count in full.
    hist = {g.keys["category"]: g.figures.historical for g in result.breakdown(("category",))}
    assert hist["best_case"] == (Decimal(1000) * Decimal("66.7") / 100).quantize(CENT)
    assert hist["closed"] == Decimal("2000.00")
    assert result.fallback == ()


def test_a_stage_without_decided_history_falls_back_to_the_weighted_amount(world: World) -> None:
    world.deal("a", "fresh", "proposal", "1000", "2026-07-01")
    result = world.rt.forecasts.evaluate(SYSTEM)
    group = result.breakdown(("category",))[0]
    assert group.figures.historical == group.figures.weighted == Decimal("400.00")
    assert result.fallback == ("proposal",)


def test_rates_respect_the_viewers_scope(world: World) -> None:
    world.clock.now = NOW - timedelta(days=30)
    for owner, final in (("a", "won"), ("c", "lost"), ("c", "lost")):
        rid = world.deal(owner, f"{owner} {final}", "lead", "10", "2026-07-01")
        world.move(rid, stage=final)
    world.clock.now = NOW
    a = {r.stage: r.rate for r in world.rt.forecasts.evaluate(world.actor("a")).rates}
    everyone = {r.stage: r.rate for r in world.rt.forecasts.evaluate(SYSTEM).rates}
    assert a["lead"] == Decimal("100.0")
    assert everyone["lead"] == Decimal("33.3")


def test_snapshot_and_compare_name_the_deals_that_moved(world: World) -> None:
    seed(world)
    snaps = world.rt.snapshots
    snap = snaps.take(world.actor("m"), note="before the QBR")
    assert snap.blueprint_digest == world.rt.blueprint.digest
    assert snap.figures["categories"]["commit"]["amount"] == "4700.00"
    ids = {d.title: d.id for d in world.rt.forecasts.deals(SYSTEM)}
    world.move(ids["A2 proposal"], stage="negotiation")  # enters commit
    world.move(ids["A3 negotiation"], amount="4500")  # stays, amount changes
    world.move(ids["A6 lead→commit"], fc="best_case")  # leaves commit
    new = world.deal("b", "B4 new", "negotiation", "600", "2026-07-10")
    comparison = snaps.compare(world.actor("m"), "latest")
    commit = next(c for c in comparison.categories if c.category == "commit")
    assert commit.before == Decimal("4700.00")
    assert commit.now == Decimal("2500") + Decimal("4500") + Decimal("600")
    assert {d.title for d in commit.entered} == {"A2 proposal", "B4 new"}
    assert {d.title for d in commit.left} == {"A6 lead→commit"}
    assert [(d.title, d.before_amount, d.now_amount) for d in commit.changed] == [
        ("A3 negotiation", Decimal("4000.00"), Decimal("4500.00"))
    ]
    assert next(d for d in commit.entered if d.id == new).kind == "added"
    best = next(c for c in comparison.categories if c.category == "best_case")
    assert {d.title for d in best.left} == {"A2 proposal"}
    assert {d.title for d in best.entered} == {"A6 lead→commit"}
    # c's deals are outside m's team: neither in the snapshot nor in the comparison
    assert all(d.owner != "c" for c in comparison.categories for d in c.entered + c.left)
    assert not comparison.blueprint_changed


def test_snapshots_are_private_to_the_taker_their_managers_and_admins(world: World) -> None:
    seed(world)
    snaps = world.rt.snapshots
    mine = snaps.take(world.actor("a"))
    team = snaps.take(world.actor("m"))
    assert snaps.get(world.actor("m"), mine.id).id == mine.id  # a is in m's team
    assert snaps.get(world.actor("boss"), team.id).id == team.id
    with pytest.raises(PermissionDenied):
        snaps.get(world.actor("a"), team.id)
    with pytest.raises(PermissionDenied):
        snaps.get(world.actor("c"), mine.id)
    assert [s.id for s in snaps.history(world.actor("a"))] == [mine.id]
    assert [s.id for s in snaps.history(world.actor("m"))] == [team.id, mine.id]
    with pytest.raises(NotFound):
        snaps.get(world.actor("c"), "latest")
    with pytest.raises(NotFound):
        snaps.get(SYSTEM, 9999)
    with pytest.raises(NotFound):
        snaps.get(SYSTEM, "yesterday")


def test_a_forecast_the_viewer_cannot_read_is_refused(world: World, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        world.rt.forecasts.evaluate(SYSTEM, name="nope")
    outsider = Actor("x", frozenset({"nobody"}))
    with pytest.raises(PermissionDenied):
        world.rt.forecasts.evaluate(outsider)


def test_cli_shows_snapshots_and_compares(world: World) -> None:
    seed(world)
    runner = CliRunner()
    base = [str(world.path), "--db", world.url]
    shown = runner.invoke(main, ["forecast", *base, "--json", "--by", "category"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert [r["keys"]["category"] for r in data["rows"]] == [
        "pipeline",
        "best_case",
        "commit",
        "closed",
    ]
    taken = runner.invoke(main, ["forecast", "snapshot", *base, "--as", "m", "--json"])
    assert taken.exit_code == 0, taken.output
    snap_id = json.loads(taken.output)["id"]
    ids = {d.title: d.id for d in world.rt.forecasts.deals(SYSTEM)}
    world.move(ids["C1 negotiation"], stage="won")
    compared = runner.invoke(
        main, ["forecast", *base, "--compare-to", str(snap_id), "--lang", "en"]
    )
    assert compared.exit_code == 0, compared.output
    assert "Commit" in compared.output
    # m took the snapshot: C1 (c's) is not in it; as the engine it is in now
    assert "C1 negotiation" in compared.output
    table = runner.invoke(main, ["forecast", *base, "--by", "owner", "--as", "a", "--lang", "en"])
    assert table.exit_code == 0 and "Total" in table.output
    listed = runner.invoke(main, ["forecast", "snapshots", *base, "--json"])
    assert [s["id"] for s in json.loads(listed.output)] == [snap_id]
    bad = runner.invoke(main, ["forecast", *base, "--period", "someday"])
    assert bad.exit_code == 1 and "someday" in bad.output


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bp.yaml"
    path.write_text(text, encoding="utf-8")
    report = diagnose(path)
    return [
        f"{p.location.line}:{p.location.column} {p.message.get('en')} {p.hint.get('en')}"
        for p in report.problems
    ]


def test_check_names_unknown_stages_and_fields_with_positions(tmp_path: Path) -> None:
    bad = BLUEPRINT.replace("commit: [negotiation]", "commit: [negotiaton]").replace(
        "amount: amount\n    probability", "amount: amont\n    probability"
    )
    problems = _problems(tmp_path, bad)
    line = bad.splitlines().index("      commit: [negotiaton]") + 1
    assert any(
        p.startswith(f"{line}:") and "unknown stage 'negotiaton'" in p and "negotiation" in p
        for p in problems
    ), problems
    assert any("unknown field 'amont'" in p and "'amount'" in p for p in problems), problems


def test_check_refuses_bad_override_options_and_a_missing_closed_category(tmp_path: Path) -> None:
    bad = BLUEPRINT.replace(
        "options: [pipeline, best_case, commit, closed, omitted]",
        "options: [pipeline, maybe]",
    ).replace("      closed: [won]\n", "")
    problems = _problems(tmp_path, bad)
    assert any("option 'maybe'" in p for p in problems), problems
    assert any("no closed (won) category" in p for p in problems), problems
    twice = BLUEPRINT.replace("best_case: [proposal]", "best_case: [proposal, lead]")
    assert any("in both" in p for p in _problems(tmp_path, twice))


def test_the_crm_template_forecast_is_valid_and_the_override_labelled() -> None:
    bp = load(Path(__file__).parent.parent / "blueprints" / "crm")
    fc = bp.forecasts["sales"]
    field = bp.entities["opportunity"].fields[fc.override or ""]
    assert {o.value for o in field.options} <= {
        "pipeline",
        "best_case",
        "commit",
        "closed",
        "omitted",
    }
    assert all(o.label.zh and o.label.en and o.label.zh != o.label.en for o in field.options)


def test_check_refuses_a_date_time_close_date(tmp_path: Path) -> None:
    bad = BLUEPRINT.replace("close_date: {type: date,", "close_date: {type: datetime,")
    assert any("must be a date field" in p for p in _problems(tmp_path, bad))
    assert any(
        "must be a date field" in p
        for p in _problems(tmp_path, BLUEPRINT.replace("date: close_date", "date: created_at"))
    )


def test_the_crm_demo_has_a_forecast_with_measured_rates(db_url: str) -> None:
    from engine.demo import seed_demo

    bp = load(Path(__file__).parent.parent / "blueprints" / "crm")
    engine = create_engine(db_url)
    try:
        seed_demo(bp, engine)
        rt = build_runtime(bp, engine, settings=Settings())
        result = rt.forecasts.evaluate(SYSTEM)
        assert result.total().deals > 0
        rates = {r.stage: r for r in result.rates}
        assert rates["lead"].won > 0 and rates["lead"].lost > 0 and rates["lead"].rate is not None
        rep = rt.users.get("li.lei").actor
        mine = rt.forecasts.evaluate(rep).breakdown(("owner",))
        assert [g.keys["owner"] for g in mine] == ["li.lei"]
    finally:
        engine.dispose()
