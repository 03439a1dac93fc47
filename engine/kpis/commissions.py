"""Commission statements: what a rep earns for a period, explained line by line.

A plan (``commissions:`` in the blueprint, see docs/commissions.md) pays on a
KPI with a target. For one rep and one period the statement shows the KPI's
value over the rep's records (e.g. signed revenue), the rep's target, the
attainment (100 × value / target) and then the tiers:

* ``marginal`` (the default, as most sales plans): each slice of the value is
  paid at its own tier's rate. With tiers ``[{upto: 100, rate: 3}, {rate: 5}]``
  and a target of 100,000, a value of 120,000 pays 100,000 × 3% + 20,000 × 5%.
* ``flat``: the whole value is paid at the rate of the tier the attainment
  reaches (attainment exactly on a bound belongs to the lower tier).

Without a target (none set, or 0) the attainment is blank and the whole value
is paid at the first tier's rate; the statement says so. A cap limits the
payout per period. Money is Decimal throughout: each line is rounded to cents
(half-even, as money fields are), the total is the sum of the lines shown.

The value and the target come from the KPI engine (:class:`KpiService`, one
aggregate query over the rep's records, as every dashboard computes it); the
records behind the value are listed with one more query, capped at
:data:`MAX_RECORDS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from engine.errors import NotFound, PermissionDenied
from engine.expressions import EvalContext
from engine.i18n import T, Text
from engine.kpis.periods import Period, PeriodError, _add_months, resolve_period
from engine.kpis.service import KpiService
from engine.model import SYSTEM_COLUMNS, Blueprint, CommissionPlan, Kpi, PayTerms
from engine.permissions import Permissions
from engine.records import SYSTEM, Actor
from engine.storage.formula_sql import to_sql
from engine.storage.schema import EntityTable, Schema
from engine.users import User, UserService

CENT = Decimal("0.01")
MAX_RECORDS = 500
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-?Q(\d)$", re.IGNORECASE)
_SIMPLE_SUM = re.compile(r"^\s*SUM\(\s*([A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff]*)\s*\)\s*$")
#: The periods ``--period`` / ``?period=`` accept besides YYYY-MM and YYYY-Qn.
STATEMENT_PERIODS: tuple[str, ...] = ("this_month", "last_month", "this_quarter", "last_quarter")


def cents(value: Decimal) -> Decimal:
    """Rounded as money fields are: 2 places, half-even."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def statement_period(text: str | None, today: date, unit: str) -> Period:
    """``this_month`` / ``last_month`` / ``this_quarter`` / ``last_quarter`` / ``YYYY-MM`` /
    ``YYYY-Qn`` as a period of ``unit`` (month or quarter); impossible ones refused."""
    raw = (text or f"this_{unit}").strip()
    match, quarter = _MONTH.match(raw), _QUARTER.match(raw)
    if match:
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12 or year < 1900:
            raise PeriodError(
                T(
                    f"'{raw}' 不是有效的月份（YYYY-MM，月份 1–12）",
                    f"'{raw}' is not a month (YYYY-MM, month 1-12)",
                )
            )
        start = date(year, month, 1)
        period = Period(raw, start, _add_months(start, 1), "month")
    elif quarter:
        year, q = int(quarter.group(1)), int(quarter.group(2))
        if not 1 <= q <= 4 or year < 1900:
            raise PeriodError(
                T(
                    f"'{raw}' 不是有效的季度（YYYY-Q1…Q4）",
                    f"'{raw}' is not a quarter (YYYY-Q1 to Q4)",
                )
            )
        start = date(year, 3 * (q - 1) + 1, 1)
        period = Period(raw, start, _add_months(start, 3), "quarter")
    elif raw in STATEMENT_PERIODS:
        period = resolve_period(raw, today)
    else:
        known = ", ".join((*STATEMENT_PERIODS, "YYYY-MM", "YYYY-Qn"))
        raise PeriodError(
            T(
                f"未知的结算期间 '{raw}'，可用：{known}",
                f"unknown period '{raw}'; use one of: {known}",
            )
        )
    if period.unit != unit:
        zh_unit = "月" if unit == "month" else "季度"
        raise PeriodError(
            T(
                f"该提成方案按{zh_unit}结算，'{raw}' 不是一个{zh_unit}",
                f"the plan settles by {unit}; '{raw}' is not a {unit}",
            )
        )
    return period


@dataclass(frozen=True)
class TierLine:
    """One tier of the statement: the slice of the value it covers and what it pays."""

    index: int
    rate: Decimal  # percent
    lower: Decimal | None  # attainment % where the tier starts (marginal) / None for flat
    upper: Decimal | None  # attainment % where it ends; None: open
    base: Decimal  # the amount paid at this rate
    payout: Decimal
    applies: bool  # flat: the tier reached; marginal: base > 0

    def as_json(self) -> dict[str, Any]:
        return {
            "tier": self.index + 1,
            "rate": str(self.rate),
            "from_attainment": None if self.lower is None else str(self.lower),
            "to_attainment": None if self.upper is None else str(self.upper),
            "base": str(self.base),
            "payout": str(self.payout),
            "applies": self.applies,
        }


@dataclass(frozen=True)
class SourceRecord:
    id: int
    title: str | None
    day: Any
    amount: Decimal | None


@dataclass
class Statement:
    plan: str
    plan_label: Text
    rep: str
    rep_label: str
    period: Period
    kpi: str
    kpi_label: Text
    entity: str
    value: Decimal
    target: Decimal | None
    attainment: Decimal | None
    mode: str
    lines: list[TierLine]
    subtotal: Decimal
    cap: Decimal | None
    capped: bool
    total: Decimal
    records: list[SourceRecord] = field(default_factory=list)
    records_total: int = 0
    notes: list[Text] = field(default_factory=list)

    def as_json(self, lang: str = "zh") -> dict[str, Any]:
        return {
            "plan": self.plan,
            "plan_label": self.plan_label.get(lang),
            "rep": self.rep,
            "rep_label": self.rep_label,
            "period": {
                "name": self.period.name,
                "start": self.period.start.isoformat() if self.period.start else None,
                "end": self.period.end.isoformat() if self.period.end else None,
            },
            "kpi": self.kpi,
            "kpi_label": self.kpi_label.get(lang),
            "value": str(self.value),
            "target": None if self.target is None else str(self.target),
            "attainment": None if self.attainment is None else str(self.attainment),
            "mode": self.mode,
            "lines": [line.as_json() for line in self.lines],
            "subtotal": str(self.subtotal),
            "cap": None if self.cap is None else str(self.cap),
            "capped": self.capped,
            "total": str(self.total),
            "records": [
                {
                    "id": r.id,
                    "title": r.title,
                    "date": r.day.isoformat() if r.day is not None else None,
                    "amount": None if r.amount is None else str(r.amount),
                }
                for r in self.records
            ],
            "records_total": self.records_total,
            "notes": [n.get(lang) for n in self.notes],
        }


def pay(
    value: Decimal, target: Decimal | None, terms: PayTerms
) -> tuple[list[TierLine], Decimal | None]:
    """The tier lines for ``value`` against ``target``, and the attainment (None: no target)."""
    value = max(value, Decimal(0))
    tiers = terms.tiers
    if not target or target <= 0:
        first = tiers[0]
        only = TierLine(0, first.rate, None, None, value, cents(value * first.rate / 100), True)
        return [only], None
    attainment = (Decimal(100) * value / target).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)
    exact = Decimal(100) * value / target
    lines: list[TierLine] = []
    if terms.mode == "flat":
        reached = next(
            (i for i, t in enumerate(tiers) if t.upto is None or exact <= t.upto), len(tiers) - 1
        )
        lower = Decimal(0)
        for i, t in enumerate(tiers):
            applies = i == reached
            base = value if applies else Decimal(0)
            lines.append(
                TierLine(i, t.rate, lower, t.upto, base, cents(base * t.rate / 100), applies)
            )
            lower = t.upto if t.upto is not None else lower
        return lines, attainment
    lower_pct = Decimal(0)
    for i, t in enumerate(tiers):
        low = target * lower_pct / 100
        high = None if t.upto is None else target * t.upto / 100
        top = value if high is None else min(value, high)
        base = max(top - low, Decimal(0))
        lines.append(
            TierLine(
                i, t.rate, lower_pct, t.upto, cents(base), cents(base * t.rate / 100), base > 0
            )
        )
        if t.upto is not None:
            lower_pct = t.upto
    return lines, attainment


class CommissionService:
    """Commission statements per rep and period (who may read whose: see :meth:`may_read`)."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        permissions: Permissions,
        users: UserService,
        kpis: KpiService,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.kpis = kpis
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.permissions = permissions
        self.users = users
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tz = ZoneInfo(blueprint.timezone)

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    # -- plans and people -------------------------------------------------------------------
    def plan_for(self, user: User, name: str | None = None) -> CommissionPlan:
        """The plan ``name``, or the first plan for one of ``user``'s roles."""
        plans = self.blueprint.commissions
        if name is not None:
            if name not in plans:
                raise NotFound(
                    T(f"没有名为 '{name}' 的提成方案", f"no commission plan called '{name}'")
                )
            return plans[name]
        for plan in plans.values():
            if not plan.roles or set(plan.roles) & set(user.roles):
                return plan
        raise NotFound(
            T(
                f"没有适用于 {user.label} 的提成方案（角色：{', '.join(user.roles) or '-'}）",
                f"no commission plan applies to {user.label} "
                f"(roles: {', '.join(user.roles) or '-'})",
            )
        )

    def rep(self, name: str) -> User:
        user = self.users.find(name)
        if user is None:
            raise NotFound(T(f"用户 '{name}' 不存在", f"no user '{name}'"))
        return user

    def may_read(self, actor: Actor, rep: str, plan: CommissionPlan | None = None) -> bool:
        """Oneself; a manager their team; admins; and who reads every record of the KPI's entity."""
        if actor.is_system or actor.name == rep or "admin" in actor.roles:
            return True
        if actor.name is not None and rep in self.users.team(actor.name):
            return True
        return plan is not None and self._reads_all(actor, plan)

    def _reads_all(self, actor: Actor, plan: CommissionPlan) -> bool:
        kpi = self.blueprint.kpis.get(plan.kpi)
        if kpi is None:
            return False
        return self.permissions.read_scope(actor, self.schema.entity(kpi.entity)) is None

    def reps(self, actor: Actor) -> list[User]:
        """People with a plan whose statement ``actor`` may read (the web page's picker).

        Two queries (the users and the reporting line), whatever the number of users."""
        plans = list(self.blueprint.commissions.values())
        everyone = (
            actor.is_system
            or "admin" in actor.roles
            or any(self._reads_all(actor, p) for p in plans)
        )
        team = self.users.team(actor.name) if actor.name and not everyone else frozenset()
        out = []
        for user in self.users.list(active_only=True):
            if not any(not p.roles or set(p.roles) & set(user.roles) for p in plans):
                continue
            if everyone or user.name == actor.name or user.name in team:
                out.append(user)
        return out

    # -- the statement ---------------------------------------------------------------------
    def statement(
        self,
        actor: Actor,
        rep: str,
        period: str | None = None,
        *,
        plan: str | None = None,
        records: bool = True,
    ) -> Statement:
        user = self.rep(rep)
        chosen = self.plan_for(user, plan)
        if not self.may_read(actor, user.name, chosen):
            raise PermissionDenied(
                T(
                    f"只能查看自己或本团队成员的提成（{user.label} 不在你的团队中）",
                    "you may see only your own or your team's commissions "
                    f"({user.label} is not in your team)",
                )
            )
        span = statement_period(period, self.today(), chosen.period)
        kpi = self.blueprint.kpis[chosen.kpi]
        terms = chosen.terms_for(user.roles)
        raw_value, target = self._value_and_target(kpi, user.name, span)
        value = cents(raw_value)
        lines, attainment = pay(value, target, terms)
        subtotal = sum((line.payout for line in lines), Decimal("0.00"))
        capped = terms.cap is not None and subtotal > terms.cap
        total = cents(terms.cap) if capped and terms.cap is not None else subtotal
        notes: list[Text] = []
        if attainment is None:
            notes.append(
                T(
                    "本期没有目标（或目标为 0），达成率为空；全部金额按第一档比例计提",
                    "no target for this period (or a target of 0): attainment is blank and "
                    "the whole value is paid at the first tier's rate",
                )
            )
        if capped:
            notes.append(
                T(
                    f"提成 {subtotal} 超过封顶 {terms.cap}，按封顶发放",
                    f"the payout {subtotal} is above the cap {terms.cap}; the cap is paid",
                )
            )
        found, count = self._records(kpi, user.name, span) if records else ([], 0)
        return Statement(
            plan=chosen.name,
            plan_label=chosen.label,
            rep=user.name,
            rep_label=user.label,
            period=span,
            kpi=kpi.name,
            kpi_label=kpi.label,
            entity=kpi.entity,
            value=value,
            target=None if target is None else cents(target),
            attainment=attainment,
            mode=terms.mode,
            lines=lines,
            subtotal=subtotal,
            cap=terms.cap,
            capped=capped,
            total=total,
            records=found,
            records_total=count,
            notes=notes,
        )

    # -- queries ---------------------------------------------------------------------------
    def _columns(self, et: EntityTable) -> dict[str, Any]:
        columns: dict[str, Any] = {n: et.table.c[n] for n in SYSTEM_COLUMNS if n in et.table.c}
        columns.update(et.columns)
        return columns

    def _ctx(self, rep: str) -> EvalContext:
        return EvalContext(values={}, user=rep, now=self.clock, tz=self.tz)

    def _in_period(self, et: EntityTable, name: str, span: Period) -> list[ColumnElement[bool]]:
        column = et.column(name)
        entity = et.entity
        f = entity.fields.get(name)
        is_date = f is not None and (
            f.kind == "date" or (f.kind == "formula" and f.result == "date")
        )
        out: list[ColumnElement[bool]] = []
        for bound, op in ((span.start, "ge"), (span.end, "lt")):
            if bound is None:
                continue
            value: Any = (
                bound if is_date else datetime.combine(bound, time(), self.tz).astimezone(UTC)
            )
            out.append(column >= value if op == "ge" else column < value)
        return out

    def _filters(
        self, kpi: Kpi, et: EntityTable, rep: str, span: Period
    ) -> list[ColumnElement[bool]]:
        where = [et.table.c.owner == rep, *self._in_period(et, kpi.date or "created_at", span)]
        if kpi.where is not None:
            where.append(
                to_sql(kpi.where.compiled, self._columns(et), ctx=self._ctx(rep), condition=True)
            )
        return where

    def _value_and_target(self, kpi: Kpi, rep: str, span: Period) -> tuple[Decimal, Decimal | None]:
        """The KPI over ``rep``'s records in ``span`` and the rep's target (the KPI engine's)."""
        total = self.kpis.evaluate(kpi.name, SYSTEM, period=span, filters={"owner": rep}).total
        value = Decimal(0) if total.value is None else Decimal(total.value)
        return value, None if total.target is None else Decimal(total.target)

    def _records(self, kpi: Kpi, rep: str, span: Period) -> tuple[list[SourceRecord], int]:
        et = self.schema.entity(kpi.entity)
        where = self._filters(kpi, et, rep, span)
        title_name = et.entity.title_field
        title: Any = (
            et.columns[title_name] if title_name and title_name in et.columns else sa.null()
        )
        match = _SIMPLE_SUM.match(kpi.measure.source)
        amount: Any = (
            et.columns[match.group(1)] if match and match.group(1) in et.columns else sa.null()
        )
        day = et.column(kpi.date or "created_at")
        stmt = (
            sa.select(et.table.c.id, title.label("title"), day.label("day"), amount.label("amount"))
            .where(*where)
            .order_by(day, et.table.c.id)
            .limit(MAX_RECORDS)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            count = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(et.table).where(*where)
                ).scalar()
                or 0
            )
        found = [
            SourceRecord(
                int(r.id),
                None if r.title is None else str(r.title),
                r.day,
                None
                if r.amount is None
                else cents(r.amount if isinstance(r.amount, Decimal) else Decimal(str(r.amount))),
            )
            for r in rows
        ]
        return found, count


def plans_json(plans: Mapping[str, CommissionPlan], lang: str) -> list[dict[str, Any]]:
    """The plans as the API lists them."""
    return [
        {
            "name": p.name,
            "label": p.label.get(lang),
            "kpi": p.kpi,
            "period": p.period,
            "roles": list(p.roles),
            "mode": p.terms.mode,
            "tiers": [
                {"upto": None if t.upto is None else str(t.upto), "rate": str(t.rate)}
                for t in p.terms.tiers
            ],
            "cap": None if p.terms.cap is None else str(p.terms.cap),
        }
        for p in plans.values()
    ]
