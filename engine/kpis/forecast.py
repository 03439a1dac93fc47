"""Sales forecasts computed in the database (see docs/forecasts.md).

Three figures per expected close month, forecast category and owner:

* **amount**: the deals' amount;
* **weighted**: amount × probability / 100 (the blueprint's probability formula);
* **historical**: amount × the stage's measured win rate, where a stage's rate
  is, of the deals that entered that stage in the lookback window (from the
  audit log of stage changes) and have since been decided, the fraction won.
  A stage with no decided deal in the window has no rate; its deals count at
  their weighted amount there (``fallback`` names those stages). Closed (won)
  deals count in full.

A deal's category is its override field when set, else its stage's category.
Omitted deals (lost, or overridden to ``omitted``) are left out. Everything is
one grouped query over the deals plus one over the audit log, both inside the
viewer's read scope; Python only adds up the (few) grouped rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from engine.errors import NotFound, PermissionDenied
from engine.expressions import EvalContext
from engine.i18n import T, Text
from engine.kpis.periods import Period, _add_months
from engine.model import FORECAST_CATEGORIES, SYSTEM_COLUMNS, Blueprint, Forecast
from engine.permissions import Permissions
from engine.records import Actor
from engine.storage.formula_sql import to_sql
from engine.storage.schema import EntityTable, Schema
from engine.users import UserService

#: The category names people read (``omitted`` is never shown as a row).
CATEGORY_LABELS: dict[str, Text] = {
    "pipeline": T("在途", "Pipeline"),
    "best_case": T("乐观", "Best case"),
    "commit": T("承诺", "Commit"),
    "closed": T("已成交", "Closed"),
    "omitted": T("不计入", "Omitted"),
}
CENT = Decimal("0.01")
PERCENT = Decimal("0.1")
#: Dimensions a forecast may be broken down by.
FORECAST_DIMENSIONS: tuple[str, ...] = ("month", "category", "owner", "team")


def money(value: Any) -> Decimal:
    """A database sum as money: Decimal, 2 places, blank as 0 (never float arithmetic)."""
    if value is None:
        return Decimal("0.00")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return number.quantize(CENT)


@dataclass(frozen=True)
class Cell:
    """One group: month (first day; None = no close date) × category × owner × stage."""

    month: date | None
    category: str
    owner: str | None
    stage: str | None
    deals: int
    amount: Decimal
    weighted: Decimal
    historical: Decimal


@dataclass(frozen=True)
class StageRate:
    """A stage's measured win rate over the lookback window (percent; None: no decided deal)."""

    stage: str
    label: str
    entered: int
    won: int
    lost: int
    rate: Decimal | None


@dataclass(frozen=True)
class Figures:
    deals: int = 0
    amount: Decimal = Decimal("0.00")
    weighted: Decimal = Decimal("0.00")
    historical: Decimal = Decimal("0.00")

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.deals + other.deals,
            self.amount + other.amount,
            self.weighted + other.weighted,
            self.historical + other.historical,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "deals": self.deals,
            "amount": str(self.amount),
            "weighted": str(self.weighted),
            "historical": str(self.historical),
        }


@dataclass(frozen=True)
class Group:
    """A row of a breakdown: its key values, labels and figures."""

    keys: dict[str, Any]
    labels: dict[str, str]
    figures: Figures


@dataclass
class ForecastResult:
    name: str
    label: str
    period: Period
    cells: list[Cell]
    rates: list[StageRate]
    since: date
    #: stages without a measured rate (their deals count at the weighted amount)
    fallback: tuple[str, ...] = ()
    owner_labels: dict[str, str] = field(default_factory=dict)
    teams: dict[str, str | None] = field(default_factory=dict)  # owner -> manager
    lang: str = "zh"

    def label_of(self, dim: str, value: Any) -> str:
        if dim == "category":
            return CATEGORY_LABELS[value].get(self.lang) if value in CATEGORY_LABELS else str(value)
        if dim == "month":
            return value.strftime("%Y-%m") if value else T("无日期", "no date").get(self.lang)
        if dim in ("owner", "team"):
            if value is None:
                return T("（无）", "(none)").get(self.lang)
            return self.owner_labels.get(str(value), str(value))
        return str(value)

    def key_of(self, cell: Cell, dim: str) -> Any:
        if dim == "team":
            return self.teams.get(cell.owner or "") or cell.owner
        return getattr(cell, dim)

    def breakdown(self, by: Iterable[str]) -> list[Group]:
        """The cells added up by ``by`` (month, category, owner, team), in a stable order."""
        dims = tuple(by)
        sums: dict[tuple[Any, ...], Figures] = {}
        for cell in self.cells:
            key = tuple(self.key_of(cell, d) for d in dims)
            sums[key] = sums.get(key, Figures()) + _figures(cell)
        order = {c: i for i, c in enumerate(FORECAST_CATEGORIES)}

        def sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
            out: list[Any] = []
            for d, v in zip(dims, key, strict=True):
                if d == "category":
                    out.append(order.get(v, 99))
                elif d == "month":
                    out.append(v or date.max)
                else:
                    out.append(v or "")
            return tuple(out)

        return [
            Group(
                dict(zip(dims, key, strict=True)),
                {d: self.label_of(d, v) for d, v in zip(dims, key, strict=True)},
                sums[key],
            )
            for key in sorted(sums, key=sort_key)
        ]

    def total(self) -> Figures:
        out = Figures()
        for cell in self.cells:
            out += _figures(cell)
        return out

    def as_json(self, by: Iterable[str] = ("month", "category")) -> dict[str, Any]:
        dims = tuple(by)
        return {
            "forecast": self.name,
            "label": self.label,
            "period": {
                "name": self.period.name,
                "start": self.period.start.isoformat() if self.period.start else None,
                "end": self.period.end.isoformat() if self.period.end else None,
            },
            "by": list(dims),
            "rows": [
                {"keys": _json_keys(g.keys), "labels": g.labels, **g.figures.as_json()}
                for g in self.breakdown(dims)
            ],
            "categories": [
                {
                    "category": g.keys["category"],
                    "label": g.labels["category"],
                    **g.figures.as_json(),
                }
                for g in self.breakdown(("category",))
            ],
            "total": self.total().as_json(),
            "history": {
                "since": self.since.isoformat(),
                "rates": [
                    {
                        "stage": r.stage,
                        "label": r.label,
                        "entered": r.entered,
                        "won": r.won,
                        "lost": r.lost,
                        "rate": None if r.rate is None else str(r.rate),
                    }
                    for r in self.rates
                ],
                "fallback": list(self.fallback),
            },
        }


def _json_keys(keys: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in keys.items()}


def _figures(cell: Cell) -> Figures:
    return Figures(cell.deals, cell.amount, cell.weighted, cell.historical)


@dataclass(frozen=True)
class Deal:
    """One deal's contribution (what a snapshot keeps so a later diff can name deals)."""

    id: int
    title: str | None
    owner: str | None
    stage: str | None
    category: str
    month: date | None
    amount: Decimal
    weighted: Decimal


class ForecastService:
    """Evaluates the blueprint's forecasts for a viewer (scopes apply)."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        permissions: Permissions,
        users: UserService,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.permissions = permissions
        self.users = users
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tz = ZoneInfo(blueprint.timezone)

    # -- definitions -------------------------------------------------------------------
    def definition(self, name: str | None = None) -> Forecast:
        """The forecast called ``name`` (the first one when None)."""
        forecasts = self.blueprint.forecasts
        if name is None and forecasts:
            return next(iter(forecasts.values()))
        if name is not None and name in forecasts:
            return forecasts[name]
        known = ", ".join(forecasts) or "-"
        raise NotFound(
            T(
                f"没有名为 '{name}' 的销售预测（已定义：{known}）",
                f"no forecast called '{name}' (defined: {known})",
            )
            if name
            else T("蓝图中没有定义销售预测（forecasts:）", "the blueprint defines no forecasts:")
        )

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def may_view(self, actor: Actor, fc: Forecast) -> bool:
        """Whether ``actor`` may read the deals and the fields the forecast needs."""
        if actor.is_system:
            return True
        if not self.permissions.can_read(actor, fc.entity):
            return False
        hidden = self.permissions.hidden_fields(actor, fc.entity)
        return not hidden & {fc.amount, fc.stage, fc.date}

    def _require(self, actor: Actor, fc: Forecast) -> EntityTable:
        if not self.may_view(actor, fc):
            raise PermissionDenied(
                T(
                    f"没有权限查看销售预测 '{fc.label.zh or fc.name}'",
                    f"you may not see the forecast '{fc.label.en or fc.name}'",
                )
            )
        return self.schema.entity(fc.entity)

    # -- SQL pieces ----------------------------------------------------------------------
    def _category(self, fc: Forecast, et: EntityTable) -> ColumnElement[Any]:
        stage = et.column(fc.stage)
        whens = [
            (stage.in_(list(stages)), sa.literal(c))
            for c, stages in fc.categories.items()
            if stages
        ]
        by_stage: ColumnElement[Any] = (
            sa.case(*whens, else_=sa.literal("omitted")) if whens else sa.literal("omitted")
        )
        if fc.override is None:
            return by_stage
        override = et.column(fc.override)
        return sa.case(
            (sa.and_(override.is_not(None), override != ""), override),
            else_=by_stage,
        )

    def _month(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.engine.dialect.name == "postgresql":
            return sa.func.to_char(column, "YYYY-MM")
        return sa.func.substr(column, 1, 7)

    def _probability(self, fc: Forecast, et: EntityTable, actor: Actor) -> ColumnElement[Any]:
        if fc.probability is None:
            return sa.literal(Decimal(100), sa.Numeric())
        columns: dict[str, Any] = {n: et.table.c[n] for n in SYSTEM_COLUMNS if n in et.table.c}
        columns.update(et.columns)
        ctx = EvalContext(values={}, user=actor.name, role=actor.role, now=self.clock, tz=self.tz)
        return sa.func.coalesce(to_sql(fc.probability.compiled, columns, ctx=ctx), 0)

    def _where(
        self, fc: Forecast, et: EntityTable, actor: Actor, period: Period, owner: str | None
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        scope = self.permissions.read_scope(actor, et) if not actor.is_system else None
        if scope is not None:
            where.append(scope)
        column = et.column(fc.date)
        if period.start is not None:
            where.append(column >= period.start)
        if period.end is not None:
            where.append(column < period.end)
        if owner is not None:
            where.append(et.table.c.owner == owner)
        return where

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(
        self,
        actor: Actor,
        *,
        name: str | None = None,
        period: Period | None = None,
        owner: str | None = None,
        lang: str = "zh",
    ) -> ForecastResult:
        """The forecast over the deals ``actor`` may read closing in ``period``."""
        fc = self.definition(name)
        et = self._require(actor, fc)
        period = period or Period("all")
        # Grouped by the raw stage and override (few distinct values): the category
        # follows from them in Python, which keeps the CASE out of the GROUP BY.
        month = self._month(et.column(fc.date)).label("month")
        stage = et.column(fc.stage).label("stage")
        override: Any = (
            et.column(fc.override).label("override") if fc.override else sa.null().label("override")
        )
        amount = sa.func.coalesce(et.column(fc.amount), 0)
        weighted = amount * self._probability(fc, et, actor) / 100
        keys: list[Any] = [month, stage, et.table.c.owner]
        if fc.override:
            keys.append(override)
        stmt = (
            sa.select(
                month,
                stage,
                override,
                et.table.c.owner,
                sa.func.count().label("deals"),
                sa.type_coerce(sa.func.sum(amount), sa.Numeric(asdecimal=True)).label("amount"),
                sa.type_coerce(sa.func.sum(weighted), sa.Numeric(asdecimal=True)).label("weighted"),
            )
            .where(*self._where(fc, et, actor, period, owner))
            .group_by(*keys)
        )
        since = _add_months(self.today().replace(day=1), -fc.history_months)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            rates = self._rates(conn, fc, et, actor, since, lang)
        by_stage = {r.stage: r.rate for r in rates}
        fallback: set[str] = set()
        cells: list[Cell] = []
        for row in rows:
            category = row.override or fc.category_of(row.stage)
            if category not in FORECAST_CATEGORIES:
                continue  # omitted
            amt, wtd = money(row.amount), money(row.weighted)
            if category == "closed" or row.stage in fc.categories.get("closed", ()):
                hist = amt
            elif by_stage.get(row.stage) is not None:
                hist = (amt * by_stage[row.stage] / 100).quantize(CENT)  # type: ignore[operator]
            else:
                hist = wtd
                if row.stage is not None:
                    fallback.add(row.stage)
            cells.append(
                Cell(
                    date.fromisoformat(row.month + "-01") if row.month else None,
                    category,
                    row.owner,
                    row.stage,
                    int(row.deals),
                    amt,
                    wtd,
                    hist,
                )
            )
        owners = {c.owner for c in cells if c.owner}
        users = self.users.find_many(owners)
        return ForecastResult(
            name=fc.name,
            label=fc.label.get(lang),
            period=period,
            cells=cells,
            rates=rates,
            since=since,
            fallback=tuple(s for s in self._stage_order(fc) if s in fallback),
            owner_labels={n: u.label for n, u in users.items()},
            teams={n: u.manager for n, u in users.items()},
            lang=lang,
        )

    def _stage_order(self, fc: Forecast) -> list[str]:
        f = self.blueprint.entity(fc.entity).fields[fc.stage]
        return [o.value for o in f.options]

    def _rates(
        self,
        conn: sa.Connection,
        fc: Forecast,
        et: EntityTable,
        actor: Actor,
        since: date,
        lang: str,
    ) -> list[StageRate]:
        """Per stage: deals that entered it since ``since``, how many are now won / lost."""
        audit = self.schema.audit
        entered = audit.c.changes[(fc.stage, 1)].as_string().label("entered")
        current = et.column(fc.stage)
        won_stages = list(fc.categories.get("closed", ()))
        listed = {s for stages in fc.categories.values() for s in stages}
        lost_stages = [s for s in self._stage_order(fc) if s not in listed]
        start = datetime.combine(since, datetime.min.time(), self.tz).astimezone(UTC)
        where: list[ColumnElement[bool]] = [
            audit.c.entity == fc.entity,
            audit.c.action.in_(("create", "update")),
            audit.c.at >= start,
            entered.is_not(None),
        ]
        scope = self.permissions.read_scope(actor, et) if not actor.is_system else None
        if scope is not None:
            where.append(scope)
        record = et.table.c.id
        stmt = (
            sa.select(
                entered,
                sa.func.count(sa.distinct(record)).label("n"),
                sa.func.count(sa.distinct(sa.case((current.in_(won_stages), record)))).label("won"),
                sa.func.count(sa.distinct(sa.case((current.in_(lost_stages), record)))).label(
                    "lost"
                ),
            )
            .select_from(audit.join(et.table, audit.c.record_id == record))
            .where(*where)
            .group_by(entered)
        )
        found = {row.entered: row for row in conn.execute(stmt)}
        options = {
            o.value: o.label for o in self.blueprint.entity(fc.entity).fields[fc.stage].options
        }
        out: list[StageRate] = []
        for stage in self._stage_order(fc):
            if stage in lost_stages or stage in won_stages:
                continue
            row = found.get(stage)
            entered_n, won, lost = (int(row.n), int(row.won), int(row.lost)) if row else (0, 0, 0)
            decided = won + lost
            rate = (Decimal(100) * won / decided).quantize(PERCENT) if decided else None
            out.append(StageRate(stage, options[stage].get(lang), entered_n, won, lost, rate))
        return out

    def deals(
        self, actor: Actor, *, name: str | None = None, period: Period | None = None
    ) -> list[Deal]:
        """Every counted deal with its contribution (for snapshots); one query."""
        fc = self.definition(name)
        et = self._require(actor, fc)
        period = period or Period("all")
        category = self._category(fc, et).label("category")
        amount = sa.func.coalesce(et.column(fc.amount), 0)
        weighted = amount * self._probability(fc, et, actor) / 100
        title_name = self.blueprint.entity(fc.entity).title_field
        title: Any = (
            et.columns[title_name] if title_name and title_name in et.columns else sa.null()
        )
        stmt = (
            sa.select(
                et.table.c.id,
                title.label("title"),
                et.table.c.owner,
                et.column(fc.stage).label("stage"),
                category,
                et.column(fc.date).label("day"),
                sa.type_coerce(amount, sa.Numeric(asdecimal=True)).label("amount"),
                sa.type_coerce(weighted, sa.Numeric(asdecimal=True)).label("weighted"),
            )
            .where(*self._where(fc, et, actor, period, None), category != "omitted")
            .order_by(et.table.c.id)
        )
        with self.engine.connect() as conn:
            return [
                Deal(
                    int(r.id),
                    None if r.title is None else str(r.title),
                    r.owner,
                    r.stage,
                    r.category,
                    r.day.replace(day=1) if r.day else None,
                    money(r.amount),
                    money(r.weighted),
                )
                for r in conn.execute(stmt)
            ]
