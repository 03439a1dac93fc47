"""KPIs in the database: the CRM KPIs against plain Python over the same records, scopes,
every dimension kind, business-time-zone buckets, targets, comparison and bad input.

Every number the engine gives is checked against one computed here, in Python,
from the records as the record service returns them (SQLite and PostgreSQL).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import BlueprintError, NotFound, PermissionDenied
from engine.kpis import KpiError, KpiRequest, KpiResult, KpiService
from engine.kpis.labels import bucket_start
from engine.kpis.periods import PeriodError
from engine.loader import load
from engine.model import Blueprint
from engine.records import SYSTEM, Actor, Record
from engine.runtime import Runtime, build_runtime
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.query import parse_query_args

CRM = Path(__file__).resolve().parent.parent / "blueprints" / "crm" / "blueprint.yaml"
CREATED = datetime(2025, 1, 1, 1, 0, tzinfo=UTC)
#: 2026-05-15 in Shanghai: this quarter is Q2 2026, this year 2026.
TODAY = datetime(2026, 5, 15, 2, 0, tzinfo=UTC)
STAGES = ["lead", "needs", "proposal", "contract", "won", "lost"]
PROBABILITY = {"lead": 10, "needs": 30, "proposal": 60, "contract": 90, "won": 100, "lost": 0}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    bp: Blueprint
    rt: Runtime
    clock: Clock

    @property
    def kpis(self) -> KpiService:
        return self.rt.kpis

    def actor(self, name: str) -> Actor:
        return self.rt.users.get(name).actor

    def all(self, entity: str) -> list[Record]:
        out: list[Record] = []
        query = parse_query_args(self.bp.entity(entity), {"limit": "500"})
        page = self.rt.records.list_records(entity, query)
        out.extend(self.rt.records.get(entity, r["id"]) for r in page.rows)
        assert not page.has_more
        return out


def runtime(db_url: str, path: Path, now: datetime) -> tuple[Blueprint, Runtime, Clock]:
    bp = load(path)
    engine = create_engine(db_url)
    clock = Clock(now)
    rt = build_runtime(bp, engine, clock=clock)
    initialise(engine, bp, rt.schema)
    return bp, rt, clock


def add_people(rt: Runtime) -> None:
    """boss > (m1 > (r1, r2), m2 > r3); root is an admin outside the line."""
    users = rt.users
    users.add("root", roles=["admin"])
    users.add("boss", roles=["sales_manager"], display_name="Boss Wang")
    users.add("m1", roles=["sales_manager"], manager="boss", display_name="Manager One")
    users.add("m2", roles=["sales_manager"], manager="boss")
    users.add("r1", roles=["sales_rep"], manager="m1", display_name="Rep One")
    users.add("r2", roles=["sales_rep"], manager="m1")
    users.add("r3", roles=["sales_rep"], manager="m2")


OWNERS = ["r1", "r2", "r3", "m1", "m2", "boss"]


@pytest.fixture
def crm(db_url: str) -> Iterator[World]:
    bp, rt, clock = runtime(db_url, CRM, CREATED)
    add_people(rt)
    rnd = random.Random(7)
    records = rt.records
    customers = [
        records.create("customer", {"name": f"C{i}", "email": f"c{i}@x.example"}, actor=SYSTEM)
        for i in range(3)
    ]
    start = date(2025, 10, 1)
    for i in range(60):
        stage = rnd.choice(STAGES)
        close = start + timedelta(days=rnd.randrange(0, 290))
        values: dict[str, Any] = {
            "name": f"Deal {i}",
            "customer": customers[i % 3].id,
            "stage": stage,
            "amount": Decimal(rnd.randrange(100, 100000)) / 10,
            "close_date": close if i % 17 else None,
            "owner": OWNERS[i % len(OWNERS)],
            "is_key": i % 4 == 0,
            "presales": ["r1", "m1", None][i % 3],
        }
        if stage == "won":
            values["win_reason"] = "price"
        if stage == "contract" and values["close_date"] is None:
            values["close_date"] = close
        records.create("opportunity", values, actor=SYSTEM, via="system")
    for i in range(40):
        signed = start + timedelta(days=rnd.randrange(0, 290))
        records.create(
            "contract",
            {
                "subject": f"K{i}",
                "customer": customers[i % 3].id,
                "total": Decimal(rnd.randrange(1000, 900000)) / 100,
                "start_date": signed,
                "end_date": signed + timedelta(days=365),
                "status": ["approved", "approved", "draft", "pending"][i % 4],
                "signed_on": signed if i % 9 else None,
                "owner": OWNERS[i % len(OWNERS)],
            },
            actor=SYSTEM,
            via="system",
        )
    for rep in ("r1", "r2", "r3", "m1"):
        for month in range(1, 7):
            records.create(
                "sales_target",
                {
                    "rep": rep,
                    "period_start": date(2026, month, 1),
                    "amount": Decimal(50000 + 1000 * month),
                    "owner": "m1" if rep != "r3" else "m2",
                },
                actor=SYSTEM,
                via="system",
            )
    clock.now = TODAY
    yield World(bp, rt, clock)
    rt.engine.dispose()


# -- the oracle ------------------------------------------------------------------------


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(Decimal(a) - Decimal(b)) <= Decimal("0.00001")


def month_of(day: date) -> date:
    return date(day.year, day.month, 1)


def quarter_of(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def in_range(day: date | None, start: date | None, end: date | None) -> bool:
    if start is None and end is None:
        return True
    return day is not None and (start is None or day >= start) and (end is None or day < end)


def group(
    records: Iterable[Record], key: Callable[[Record], tuple[Any, ...]]
) -> dict[tuple[Any, ...], list[Record]]:
    out: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return out


def revenue(records: list[Record]) -> Decimal:
    return sum((r["total"] for r in records), Decimal(0))


def win_rate(records: list[Record]) -> Decimal | None:
    won = sum(1 for r in records if r["stage"] == "won")
    decided = sum(1 for r in records if r["stage"] in ("won", "lost"))
    return None if decided == 0 else Decimal(100 * won) / Decimal(decided)


def pipeline(records: list[Record]) -> Decimal:
    return sum(
        (r["weighted"] or Decimal(0) for r in records if r["stage"] not in ("won", "lost")),
        Decimal(0),
    )


def as_rows(result: KpiResult) -> dict[tuple[Any, ...], Any]:
    return {tuple(row.keys[d] for d in result.by): row.value for row in result.rows}


# -- the CRM KPIs ------------------------------------------------------------------------


def test_revenue_by_owner_and_month_with_targets(crm: World) -> None:
    root = crm.actor("root")
    result = crm.kpis.evaluate("revenue", root, by=["owner", "month"], period="this_year")
    assert result.period.start == date(2026, 1, 1) and result.period.end == date(2027, 1, 1)
    counted = [
        c
        for c in crm.all("contract")
        if c["status"] == "approved"
        and in_range(c["signed_on"], date(2026, 1, 1), None)
        and c["signed_on"] < date(2027, 1, 1)
    ]
    expected = {
        k: revenue(v)
        for k, v in group(counted, lambda c: (c.owner, month_of(c["signed_on"]))).items()
    }
    got = as_rows(result)
    assert set(got) == set(expected)
    assert all(close(got[k], expected[k]) for k in expected)
    assert close(result.total.value, revenue(counted))
    assert result.format == "money"
    targets = {(t["rep"], t["period_start"]): t["amount"] for t in crm.all("sales_target")}
    for row in result.rows:
        want = targets.get((row.keys["owner"], row.keys["month"]))
        assert close(row.target, want)
        if want:
            assert close(row.attainment, Decimal(row.value) * 100 / want)
            assert close(row.gap, want - Decimal(row.value))
        else:
            assert row.attainment is None and row.gap is None
    assert close(result.total.target, sum(targets.values()))
    assert result.rows[0].labels["month"] in {f"2026年{m}月" for m in range(1, 13)}
    english = crm.kpis.evaluate("revenue", root, by="owner", period="this_year", lang="en")
    labels = {row.keys["owner"]: row.labels["owner"] for row in english.rows}
    assert labels.get("r1", "Rep One") == "Rep One" and labels.get("m2", "m2") == "m2"


def test_win_rate_by_owner_and_quarter_against_constant_target(crm: World) -> None:
    root = crm.actor("root")
    opps = crm.all("opportunity")
    for period, start, end in [
        ("this_year", date(2026, 1, 1), date(2027, 1, 1)),
        ("last_year", date(2025, 1, 1), date(2026, 1, 1)),
        (None, None, None),
    ]:
        result = crm.kpis.evaluate("win_rate", root, by="owner,quarter", period=period)
        inside = [o for o in opps if in_range(o["close_date"], start, end)]
        expected = {
            k: win_rate(v)
            for k, v in group(
                inside,
                lambda o: (o.owner, quarter_of(o["close_date"]) if o["close_date"] else None),
            ).items()
        }
        got = as_rows(result)
        assert set(got) == set(expected)
        assert all(close(got[k], expected[k]) for k in expected)
        assert close(result.total.value, win_rate(inside))
        assert result.total.target == 30
        assert all(row.target == 30 for row in result.rows)
        for row in result.rows:
            if row.value is None:
                assert row.attainment is None and row.gap is None
            else:
                assert close(row.attainment, Decimal(row.value) * 100 / 30)


def test_pipeline_by_stage_follows_the_stage_order(crm: World) -> None:
    root = crm.actor("root")
    result = crm.kpis.evaluate("pipeline", root, by=["stage"], lang="en")
    opps = crm.all("opportunity")
    expected = {
        k: pipeline(v)
        for k, v in group(
            [o for o in opps if o["stage"] not in ("won", "lost")], lambda o: (o["stage"],)
        ).items()
    }
    got = as_rows(result)
    assert set(got) == set(expected)
    assert all(close(got[k], expected[k]) for k in expected)
    assert [row.keys["stage"] for row in result.rows] == [s for s in STAGES if (s,) in expected]
    assert result.rows[0].labels["stage"] in ("Prospecting", "Needs analysis")
    assert close(result.total.value, pipeline(opps))
    assert result.total.target == 5000000
    assert close(result.total.gap, 5000000 - pipeline(opps))


# -- scopes ------------------------------------------------------------------------------


@pytest.mark.parametrize("kpi", ["revenue", "win_rate", "pipeline"])
def test_a_reps_kpi_is_the_kpi_over_exactly_their_records(crm: World, kpi: str) -> None:
    opps, contracts = crm.all("opportunity"), crm.all("contract")

    def oracle(owners: set[str]) -> Any:
        if kpi == "revenue":
            return revenue(
                [c for c in contracts if c.owner in owners and c["status"] == "approved"]
            )
        mine = [o for o in opps if o.owner in owners]
        return win_rate(mine) if kpi == "win_rate" else pipeline(mine)

    for viewer, owners in [
        ("r1", {"r1"}),
        ("r3", {"r3"}),
        ("m1", {"m1", "r1", "r2"}),
        ("boss", set(OWNERS)),
    ]:
        result = crm.kpis.evaluate(kpi, crm.actor(viewer))
        assert close(result.total.value, oracle(owners)), viewer
        by_owner = crm.kpis.evaluate(kpi, crm.actor(viewer), by="owner")
        assert {row.keys["owner"] for row in by_owner.rows} <= owners
    filtered = crm.kpis.evaluate(kpi, crm.actor("root"), filters={"owner": "r1"})
    assert close(filtered.total.value, oracle({"r1"}))
    team = crm.kpis.evaluate(kpi, crm.actor("root"), filters={"team": "m1"})
    assert close(team.total.value, oracle({"m1", "r1", "r2"}))
    # a rep asking for the team still sees only their own records
    rep_team = crm.kpis.evaluate(kpi, crm.actor("r1"), filters={"team": "m1"})
    assert close(rep_team.total.value, oracle({"r1"}))


def test_targets_follow_the_viewers_scope_and_filters(crm: World) -> None:
    targets = crm.all("sales_target")

    def total(reps: set[str], months: range) -> Decimal:
        return sum(
            (
                t["amount"]
                for t in targets
                if t["rep"] in reps and t["period_start"].month in months
            ),
            Decimal(0),
        )

    rep = crm.kpis.evaluate("revenue", crm.actor("r1"), period="this_quarter")
    assert rep.total.target == total({"r1"}, range(4, 7))
    team = crm.kpis.evaluate(
        "revenue", crm.actor("root"), period="this_quarter", filters={"team": "m1"}
    )
    assert team.total.target == total({"m1", "r1", "r2"}, range(4, 7))
    by_team = crm.kpis.evaluate("revenue", crm.actor("root"), by="team", period="this_year")
    targets_by_team = {row.keys["team"]: row.target for row in by_team.rows}
    if "m1" in targets_by_team:
        assert targets_by_team["m1"] == total({"m1", "r1", "r2"}, range(1, 13))
    nothing = crm.kpis.evaluate("revenue", crm.actor("root"), period="last_year")
    assert nothing.total.target is None and nothing.total.attainment is None


def test_team_means_the_direct_report_of_the_root(crm: World) -> None:
    opps = crm.all("opportunity")
    expected_admin = {"r1": "m1", "r2": "m1", "m1": "m1", "r3": "m2", "m2": "m2", "boss": "boss"}
    for viewer, mapping, filters in [
        ("root", expected_admin, {}),
        ("boss", expected_admin, {}),
        ("m1", {"r1": "r1", "r2": "r2", "m1": "m1"}, {}),
        ("root", {"r3": "r3", "m2": "m2"}, {"team": "m2"}),
    ]:
        result = crm.kpis.evaluate("pipeline", crm.actor(viewer), by="team", filters=filters)
        expected = {
            (team,): pipeline([o for o in opps if mapping.get(o.owner) == team])
            for team in set(mapping.values())
        }
        got = as_rows(result)
        assert set(got) <= set(expected)
        assert all(close(got[k], expected[k]) for k in got), viewer
        assert close(sum((Decimal(v) for v in got.values()), Decimal(0)), sum(expected.values()))
    labels = crm.kpis.evaluate("pipeline", crm.actor("root"), by="team", lang="en")
    assert {row.labels["team"] for row in labels.rows} <= {"Manager One", "m2", "Boss Wang"}


def test_a_hidden_field_cannot_be_a_dimension(crm: World) -> None:
    with pytest.raises(PermissionDenied) as info:
        crm.kpis.evaluate("pipeline", crm.actor("r1"), by="weighted")
    assert "weighted" in info.value.message("en")
    # a manager sees the field, so may group by it
    crm.kpis.evaluate("pipeline", crm.actor("m1"), by="weighted")


def test_a_kpi_over_an_entity_the_viewer_cannot_read_is_refused(crm: World) -> None:
    assert [k.name for k in crm.kpis.visible(crm.actor("r1"))] == list(crm.bp.kpis)
    guest = Actor("guest", frozenset({"visitor"}))  # a role the blueprint no longer has
    assert crm.kpis.visible(guest) == []
    with pytest.raises(PermissionDenied):
        crm.kpis.evaluate("pipeline", guest)


# -- dimensions, drill-down -------------------------------------------------------------


def test_ref_boolean_user_and_choice_dimensions(crm: World) -> None:
    root = crm.actor("root")
    opps = [o for o in crm.all("opportunity") if o["stage"] not in ("won", "lost")]
    names = {c.id: c["name"] for c in crm.all("customer")}
    for dim in ("customer", "is_key", "presales", "stage"):
        result = crm.kpis.evaluate("pipeline", root, by=dim, lang="en")
        expected = {k: pipeline(v) for k, v in group(opps, lambda o, dim=dim: (o[dim],)).items()}
        got = as_rows(result)
        assert set(got) == set(expected), dim
        assert all(close(got[k], expected[k]) for k in expected)
        for row in result.rows:
            value, label = row.keys[dim], row.labels[dim]
            if dim == "customer":
                assert label == names[value]
            elif dim == "is_key":
                assert label == ("Yes" if value else "No")
            elif dim == "presales":
                assert label == {"r1": "Rep One", "m1": "Manager One", None: "(blank)"}[value]


def test_drill_down_lists_exactly_the_records_of_a_row(crm: World) -> None:
    root = crm.actor("root")
    entity = crm.bp.entity("opportunity")
    result = crm.kpis.evaluate("pipeline", root, by="owner,stage,month", period="this_year")
    assert result.drill_exact
    opps = crm.all("opportunity")
    for row, params in zip(result.rows, result.drill, strict=True):
        query = parse_query_args(entity, {**params, "limit": "500"})
        page = crm.rt.records.list_records("opportunity", query)
        listed = [o for o in opps if o.id in {r["id"] for r in page.rows}]
        assert close(row.value, pipeline(listed))
        assert all(o.owner == row.keys["owner"] for o in listed)
    total = parse_query_args(entity, {**result.drill_total, "limit": "500"})
    listed_ids = {r["id"] for r in crm.rt.records.list_records("opportunity", total).rows}
    assert close(result.total.value, pipeline([o for o in opps if o.id in listed_ids]))


def test_evaluate_many_equals_one_by_one(crm: World) -> None:
    root = crm.actor("root")
    requests = [
        KpiRequest("revenue", ("owner", "month"), "this_year"),
        KpiRequest("win_rate", (), "this_year", compare=True),
        KpiRequest("pipeline", ("stage",)),
        KpiRequest("pipeline", ("nonsense",)),
    ]
    answers = crm.kpis.evaluate_many(requests, root, lang="en")
    for request, answer in zip(requests[:3], answers, strict=False):
        one = crm.kpis.evaluate(
            request.name,
            root,
            by=request.by,
            period=request.period,
            compare=request.compare,
            lang="en",
        )
        assert isinstance(answer, KpiResult) and answer.rows == one.rows
        assert answer.total == one.total
    assert isinstance(answers[3], KpiError)


def test_compare_with_the_previous_period(crm: World) -> None:
    root = crm.actor("root")
    contracts = [c for c in crm.all("contract") if c["status"] == "approved"]
    result = crm.kpis.evaluate("revenue", root, by="month", period="this_quarter", compare=True)
    assert result.previous_period is not None
    assert result.previous_period.start == date(2026, 1, 1)
    assert result.previous_period.end == date(2026, 4, 1)
    this = revenue(
        [c for c in contracts if in_range(c["signed_on"], date(2026, 4, 1), date(2026, 7, 1))]
    )
    before = revenue(
        [c for c in contracts if in_range(c["signed_on"], date(2026, 1, 1), date(2026, 4, 1))]
    )
    assert close(result.total.value, this) and close(result.total.previous, before)
    if before:
        assert close(result.total.change, (this - before) * 100 / before)
    # each month is compared with the month one quarter earlier; every month is there
    assert [row.keys["month"] for row in result.rows] == [
        date(2026, 4, 1),
        date(2026, 5, 1),
        date(2026, 6, 1),
    ]
    for row in result.rows:
        month = row.keys["month"]
        earlier = date(month.year, month.month - 3, 1)
        want = revenue(
            [c for c in contracts if c["signed_on"] and month_of(c["signed_on"]) == earlier]
        )
        assert close(row.previous, want)
    whole = crm.kpis.evaluate("revenue", root, compare=True)
    assert whole.previous_period is None and whole.total.previous is None


# -- a small blueprint for the edges --------------------------------------------------------

EDGES = """
formflow: 1
id: edges
title: Edges
timezone: Asia/Shanghai
roles:
  rep: {zh: 销售, en: Rep}
entities:
  deal:
    label: Deal
    fields:
      amount: {type: money, label: Amount}
      stage: {type: choice, label: Stage, options: [open, won, lost]}
      at: {type: datetime, label: At}
      day: {type: date, label: Day}
    access:
      rep: {create: true, read: own, update: own}
kpis:
  total:
    {label: Total, entity: deal, measure: "SUM(amount)", date: day,
     by: [day, week, month, quarter, year]}
  count:
    {label: Count, entity: deal, measure: "COUNT()", date: at,
     by: [day, week, month, quarter, year, stage]}
  average: {label: Average, entity: deal, measure: "AVG(amount)"}
  smallest: {label: Smallest, entity: deal, measure: "MIN(amount)", by: [stage]}
  ratio:
    label: Ratio
    entity: deal
    measure: "100 * COUNT(stage == 'won') / COUNT(stage in ['won', 'lost'])"
    format: percent
    target: 0
  cost:
    {label: Cost, entity: deal, measure: "SUM(amount)", by: [stage], target: 20, better: lower}
"""


@pytest.fixture
def edges(db_url: str, tmp_path: Path) -> Iterator[World]:
    path = tmp_path / "edges.yaml"
    path.write_text(EDGES, encoding="utf-8")
    bp, rt, clock = runtime(db_url, path, TODAY)
    rt.users.add("root", roles=["admin"])
    rt.users.add("rep", roles=["rep"])
    yield World(bp, rt, clock)
    rt.engine.dispose()


def deal(world: World, **values: Any) -> Record:
    return world.rt.records.create("deal", values, actor=SYSTEM, via="system")


def test_an_empty_table_gives_zero_sums_and_blank_averages(edges: World) -> None:
    root = edges.actor("root")
    assert edges.kpis.evaluate("total", root).total.value == 0
    assert edges.kpis.evaluate("count", root).total.value == 0
    assert edges.kpis.evaluate("average", root).total.value is None
    assert edges.kpis.evaluate("smallest", root).total.value is None
    assert edges.kpis.evaluate("ratio", root).total.value is None
    grouped = edges.kpis.evaluate("total", root, by="month")
    assert grouped.rows == [] and grouped.total.value == 0
    filled = edges.kpis.evaluate("total", root, by="month", period="this_quarter")
    assert [r.value for r in filled.rows] == [0, 0, 0]


def test_blank_amounts_are_ignored_and_division_by_zero_is_blank(edges: World) -> None:
    root = edges.actor("root")
    deal(edges, amount=Decimal("10.50"), stage="open")
    deal(edges, amount=None, stage="open")
    deal(edges, amount=Decimal("4.50"), stage=None)
    assert edges.kpis.evaluate("total", root).total.value == Decimal("15")
    assert edges.kpis.evaluate("average", root).total.value == Decimal("7.5")
    assert edges.kpis.evaluate("count", root).total.value == 3
    ratio = edges.kpis.evaluate("ratio", root, lang="en")
    assert ratio.total.value is None  # nothing won or lost yet: 0 / 0
    assert ratio.total.target == 0 and ratio.total.attainment is None and ratio.total.gap is None
    smallest = edges.kpis.evaluate("smallest", root, by="stage", lang="en")
    assert {r.keys["stage"]: r.value for r in smallest.rows} == {
        "open": Decimal("10.5"),
        None: Decimal("4.5"),
    }
    assert smallest.rows[-1].labels["stage"] == "(blank)"
    assert smallest.total.value == Decimal("4.5")  # MIN total: its own query


def test_a_lower_is_better_kpi_counts_attainment_down_from_twice_the_target(
    edges: World,
) -> None:
    root = edges.actor("root")
    empty = edges.kpis.evaluate("cost", root)
    assert empty.better == "lower"
    assert (empty.total.value, empty.total.attainment, empty.total.gap) == (0, 200, -20)
    deal(edges, amount=Decimal("10.50"), stage="open")
    deal(edges, amount=Decimal("4.50"), stage="open")
    deal(edges, amount=Decimal("30"), stage="won")
    result = edges.kpis.evaluate("cost", root, by="stage")
    # 100 * (2 - value / target), and the gap is what is left to cut (value - target).
    assert {r.keys["stage"]: (r.value, r.attainment, r.gap) for r in result.rows} == {
        "open": (15, 125, -5),
        "won": (30, 50, 10),
    }
    assert (result.total.value, result.total.attainment, result.total.gap) == (45, -25, 25)
    # The same sums under the default (higher is better): value / target.
    higher = edges.kpis.evaluate("total", root)
    assert higher.better == "higher" and higher.total.target is None


def test_datetimes_bucket_in_the_business_time_zone(edges: World) -> None:
    root = edges.actor("root")
    # 23:30 UTC on 31 March is 07:30 on 1 April in Shanghai: April, Q2, a Wednesday.
    late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    deal(edges, at=late, stage="won")
    deal(edges, at=datetime(2026, 3, 31, 15, 59, tzinfo=UTC), stage="won")  # 23:59 local
    deal(edges, at=datetime(2025, 12, 31, 16, 0, tzinfo=UTC), stage="lost")  # 00:00 1 Jan
    moments = [
        late,
        datetime(2026, 3, 31, 15, 59, tzinfo=UTC),
        datetime(2025, 12, 31, 16, 0, tzinfo=UTC),
    ]
    local = [m.astimezone(edges.rt.kpis.tz).date() for m in moments]
    for bucket in ("day", "week", "month", "quarter", "year"):
        result = edges.kpis.evaluate("count", root, by=bucket)
        expected: dict[tuple[Any, ...], int] = defaultdict(int)
        for day in local:
            expected[(bucket_start(bucket, day),)] += 1
        assert as_rows(result) == dict(expected), bucket
    april = edges.kpis.evaluate(
        "count", root, period="custom", start="2026-04-01", end="2026-04-30"
    )
    assert april.total.value == 1
    march = edges.kpis.evaluate(
        "count", root, period="custom", start="2026-03-01", end="2026-03-31"
    )
    assert march.total.value == 1
    weeks = edges.kpis.evaluate("count", root, by="week", lang="zh")
    assert weeks.rows[-1].keys["week"] == date(2026, 3, 30)  # the Monday
    assert weeks.rows[-1].labels["week"] == "2026年第14周"
    months = edges.kpis.evaluate("count", root, by="month", lang="zh")
    assert [r.labels["month"] for r in months.rows] == ["2026年1月", "2026年3月", "2026年4月"]


def test_dates_bucket_as_written(edges: World) -> None:
    root = edges.actor("root")
    days = [date(2026, 1, 4), date(2026, 1, 5), date(2025, 12, 29), date(2024, 2, 29)]
    for i, day in enumerate(days):
        deal(edges, day=day, amount=Decimal(i + 1))
    for bucket in ("day", "week", "month", "quarter", "year"):
        result = edges.kpis.evaluate("total", root, by=bucket)
        expected: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
        for i, day in enumerate(days):
            expected[(bucket_start(bucket, day),)] += Decimal(i + 1)
        assert as_rows(result) == dict(expected), bucket
    quarters = edges.kpis.evaluate("total", root, by="quarter", lang="en")
    assert [r.labels["quarter"] for r in quarters.rows] == ["2024-Q1", "2025-Q4", "2026-Q1"]


def test_bad_requests_are_refused_with_a_reason(edges: World) -> None:
    root = edges.actor("root")
    with pytest.raises(NotFound):
        edges.kpis.evaluate("nope", root)
    with pytest.raises(KpiError) as info:
        edges.kpis.evaluate("total", root, by="colour")
    assert "colour" in info.value.message("en") and "stage" in info.value.message("en")
    with pytest.raises(KpiError):
        edges.kpis.evaluate("average", root, by="month")  # no date field
    with pytest.raises(KpiError):
        edges.kpis.evaluate("average", root, period="this_month")
    with pytest.raises(PeriodError) as bad_date:
        edges.kpis.evaluate("total", root, period="custom", start="2026-02-30", end="2026-03-01")
    assert "2026-02-30" in bad_date.value.message("en")
    with pytest.raises(PeriodError):
        edges.kpis.evaluate("total", root, period="next_decade")
    with pytest.raises(PeriodError):
        edges.kpis.evaluate("total", root, start="2026-03-01", end="2026-02-01")
    with pytest.raises(KpiError):
        edges.kpis.evaluate("total", root, filters={"region": "east"})
    with pytest.raises(KpiError):
        edges.kpis.evaluate("total", root, filters={"team": "ghost"})


def test_a_reps_numbers_are_their_own(edges: World) -> None:
    edges.rt.records.create("deal", {"amount": Decimal(5)}, actor=edges.actor("rep"))
    deal(edges, amount=Decimal(100))
    assert edges.kpis.evaluate("total", edges.actor("rep")).total.value == 5
    assert edges.kpis.evaluate("total", edges.actor("root")).total.value == 105


# -- formflow check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "measure", "reason"),
    [
        (None, "SUM(amount % 7)", "%"),
        (None, "SUM(LEN(name))", "LEN"),
        ("amount % 2 == 1", "SUM(amount)", "%"),
        ("LEN(name) > 3", "COUNT()", "LEN"),
    ],
)
def test_check_refuses_what_cannot_run_in_the_database(
    tmp_path: Path, where: str | None, measure: str, reason: str
) -> None:
    text = EDGES.replace(
        "      day: {type: date, label: Day}",
        "      day: {type: date, label: Day}\n      name: {type: text, label: Name}",
    )
    kpi = f'  broken: {{label: Broken, entity: deal, measure: "{measure}"'
    kpi += f', where: "{where}"}}' if where else "}"
    path = tmp_path / "broken.yaml"
    path.write_text(text + kpi + "\n", encoding="utf-8")
    with pytest.raises(BlueprintError) as info:
        load(path)
    problems = info.value.problems
    assert len(problems) == 1
    problem = problems[0]
    assert problem.location.line == text.count("\n") + 1
    assert problem.location.column > 1
    assert reason in problem.message.get("en")
    assert "database" in problem.message.get("en")


def test_check_refuses_grouping_by_a_list_field(tmp_path: Path) -> None:
    text = EDGES.replace(
        "      day: {type: date, label: Day}",
        "      day: {type: date, label: Day}\n"
        "      tags: {type: multi_choice, label: Tags, options: [a, b]}",
    )
    path = tmp_path / "tags.yaml"
    path.write_text(
        text + '  by_tags: {label: T, entity: deal, measure: "COUNT()", by: [tags]}\n',
        encoding="utf-8",
    )
    with pytest.raises(BlueprintError) as info:
        load(path)
    assert "tags" in str(info.value.problems[0].message.get("en"))


def test_better_takes_higher_or_lower_only(tmp_path: Path) -> None:
    path = tmp_path / "better.yaml"
    path.write_text(EDGES.replace("better: lower}", "better: smaller}"), encoding="utf-8")
    with pytest.raises(BlueprintError) as info:
        load(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    row = next(i for i, text in enumerate(lines) if "better: smaller" in text)
    column = lines[row].index("smaller")
    assert info.value.problems[0].render("en") == (
        f"{path}:{row + 1}:{column + 1}: "
        "'smaller' is not a valid value for KPI 'cost': better; use one of: higher, lower"
    )


def test_an_entity_may_not_be_called_kpis(tmp_path: Path) -> None:
    path = tmp_path / "kpis.yaml"
    path.write_text(
        EDGES.replace("  deal:\n", "  kpis:\n").split("kpis:\n  total")[0], encoding="utf-8"
    )
    with pytest.raises(BlueprintError) as info:
        load(path)
    message = info.value.problems[0].render("en")
    assert "taken by the API (/api/v1/kpis)" in message and "kpi_records" in message


def test_a_nan_amount_in_the_database_is_blank_not_a_crash(edges: World) -> None:
    """NaN cannot be entered through the record service; one written to the database
    by other means (PostgreSQL keeps numeric NaN; SQLite stores it as NULL) never crashes."""
    root = edges.actor("root")
    deal(edges, amount=Decimal("10"), stage="open")
    nan = deal(edges, amount=Decimal("5"), stage="won")
    table = edges.rt.schema.entity("deal").table
    with edges.rt.engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id == nan.id)
            .values(
                amount=sa.literal_column("'NaN'")
                if edges.rt.engine.dialect.name == "postgresql"
                else float("nan")
            )
        )
    total = edges.kpis.evaluate("total", root).total.value
    smallest = edges.kpis.evaluate("smallest", root, by="stage")
    if edges.rt.engine.dialect.name == "postgresql":
        assert total is None  # NaN poisons the sum: shown blank
    else:
        assert total == 10  # SQLite stored NULL: skipped like any blank amount
    assert {r.keys["stage"] for r in smallest.rows} == {"open", "won"}
