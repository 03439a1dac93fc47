"""Checks of ``forecasts:`` and ``commissions:`` (see docs/forecasts.md, docs/commissions.md).

A forecast names a real entity, an amount (a number field), a stage (a choice
field) whose options the categories map, a date field, and an optional
override choice field whose options are categories. A commission plan pays on
a KPI that has a target and a date (attainment per rep and period needs
both), matched to the rep by ``owner``; its tiers rise and end open.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from engine.checks import Context, _date_field, _of_entity, _problem, _unknown, semantic_check
from engine.errors import Location, Problem
from engine.i18n import T
from engine.loading.describe import listing
from engine.loading.positions import Path
from engine.model import FORECAST_CATEGORIES, Field, Forecast, PayTerms

_FIELD = ("字段", "field")
_ENTITY = ("实体", "entity")
_STAGE = ("阶段", "stage")
_ROLE = ("角色", "role")
_KPI = ("指标", "KPI")
_CATEGORY = ("预测类别", "forecast category")
NUMBER_KINDS = frozenset({"money", "decimal", "integer", "percent"})
PLAN_PERIODS = ("month", "quarter")
PAY_MODES = ("marginal", "flat")


def _numeric(f: Field) -> bool:
    return f.kind in NUMBER_KINDS or (f.kind == "formula" and f.result in NUMBER_KINDS)


@semantic_check
def forecasts(ctx: Context) -> Iterator[Problem]:
    """Forecasts name real fields and stages, each stage in one category at most."""
    bp = ctx.blueprint
    for name, fc in bp.forecasts.items():
        path: Path = ("forecasts", name)
        entity = ctx.entity(fc.entity)
        if entity is None:
            yield _unknown(ctx.at((*path, "entity"), fc.location), _ENTITY, fc.entity, bp.entities)
            continue
        owner = _of_entity(entity.name)
        amount = entity.fields.get(fc.amount)
        if amount is None:
            numbers = [n for n, f in entity.fields.items() if _numeric(f)]
            yield _unknown(
                ctx.at((*path, "amount"), fc.location), _FIELD, fc.amount, numbers, owner
            )
        elif not _numeric(amount):
            yield _problem(
                ctx.at((*path, "amount"), fc.location),
                f"'{fc.amount}' 不是数字字段（现在是 {amount.kind}）",
                f"'{fc.amount}' is not a number field (it is {amount.kind})",
                T(
                    "写 money、decimal 或 integer 类型的字段",
                    "name a money, decimal or integer field",
                ),
            )
        yield from _date_field(ctx, entity, fc.date, ctx.at((*path, "date"), fc.location))
        close = entity.fields.get(fc.date)
        if (close is None and fc.date in ("created_at", "updated_at")) or (
            close is not None
            and (
                close.kind == "datetime" or (close.kind == "formula" and close.result == "datetime")
            )
        ):
            yield _problem(
                ctx.at((*path, "date"), fc.location),
                f"预计成交日期 '{fc.date}' 须为日期字段（现在是日期时间）",
                f"the close date '{fc.date}' must be a date field (it is a date-time)",
                T(
                    "预测按日期归入月份；写 date 类型的字段",
                    "forecasts bucket by day: name a date field",
                ),
            )
        stage = entity.fields.get(fc.stage)
        stages: list[str] = []
        if stage is None:
            choices = [n for n, f in entity.fields.items() if f.kind == "choice"]
            yield _unknown(ctx.at((*path, "stage"), fc.location), _FIELD, fc.stage, choices, owner)
        elif stage.kind != "choice":
            yield _problem(
                ctx.at((*path, "stage"), fc.location),
                f"'{fc.stage}' 不是单选字段（现在是 {stage.kind}）",
                f"'{fc.stage}' is not a choice field (it is {stage.kind})",
                T("阶段字段须为 choice 类型", "the stage must be a choice field"),
            )
        else:
            stages = [o.value for o in stage.options]
        seen: dict[str, str] = {}
        for category, members in fc.categories.items():
            cpath = (*path, "categories", category)
            if category not in FORECAST_CATEGORIES:
                yield _unknown(
                    ctx.key_at(cpath, fc.location), _CATEGORY, category, FORECAST_CATEGORIES
                )
                continue
            for index, value in enumerate(members):
                where = ctx.at((*cpath, index), fc.location)
                if stages and value not in stages:
                    yield _unknown(where, _STAGE, value, stages, T(f"字段 '{fc.stage}' ", fc.stage))
                elif value in seen:
                    yield _problem(
                        where,
                        f"阶段 '{value}' 同时在 {seen[value]} 和 {category} 中",
                        f"the stage '{value}' is in both {seen[value]} and {category}",
                        T(
                            "每个阶段只能属于一个预测类别",
                            "a stage belongs to one category at most",
                        ),
                    )
                seen[value] = category
        if not fc.categories.get("closed"):
            yield _problem(
                ctx.at((*path, "categories"), fc.location),
                "预测缺少 closed（赢单）类别",
                "the forecast has no closed (won) category",
                T(
                    "在 categories.closed 中列出赢单阶段，如 [won]",
                    "list the won stage(s) under categories.closed, e.g. [won]",
                ),
            )
        if fc.override is not None:
            yield from _override(ctx, fc.override, entity.fields.get(fc.override), path, fc)
        if not 1 <= fc.history_months <= 120:
            yield _problem(
                ctx.at((*path, "history", "months"), fc.location),
                f"history.months 应为 1 到 120：{fc.history_months}",
                f"history.months must be from 1 to 120: {fc.history_months}",
            )


def _override(
    ctx: Context, name: str, f: Field | None, path: Path, fc: Forecast
) -> Iterator[Problem]:
    where = ctx.at((*path, "override"), fc.location)
    entity = ctx.entity(fc.entity)
    if f is None:
        choices = [n for n, x in entity.fields.items() if x.kind == "choice"] if entity else []
        yield _unknown(where, _FIELD, name, choices, _of_entity(fc.entity))
        return
    if f.kind != "choice":
        yield _problem(
            where,
            f"'{name}' 不是单选字段（现在是 {f.kind}）",
            f"'{name}' is not a choice field (it is {f.kind})",
            T("覆盖字段须为 choice 类型", "the override must be a choice field"),
        )
        return
    allowed = (*FORECAST_CATEGORIES, "omitted")
    for option in f.options:
        if option.value not in allowed:
            yield _problem(
                option.location if option.location.line else where,
                f"覆盖字段 '{name}' 的选项 '{option.value}' 不是预测类别",
                f"option '{option.value}' of the override '{name}' is not a forecast category",
                T(
                    f"选项值只能是：{listing(allowed)}",
                    f"option values must be: {listing(allowed)}",
                ),
            )


@semantic_check
def commissions(ctx: Context) -> Iterator[Problem]:
    """Commission plans pay on a KPI with a target and a date, by rising tiers."""
    bp = ctx.blueprint
    for name, plan in bp.commissions.items():
        path: Path = ("commissions", name)
        for index, role in enumerate(plan.roles):
            if role not in bp.roles:
                yield _unknown(
                    ctx.at((*path, "roles", index), plan.location), _ROLE, role, bp.roles
                )
        if plan.period not in PLAN_PERIODS:
            yield _unknown(
                ctx.at((*path, "period"), plan.location),
                ("期间", "period"),
                plan.period,
                PLAN_PERIODS,
            )
        yield from _terms(ctx, plan.terms, path, plan.location)
        for role, terms in plan.by_role.items():
            rpath = (*path, "by_role", role)
            if role not in bp.roles:
                yield _unknown(ctx.key_at(rpath, plan.location), _ROLE, role, bp.roles)
            elif plan.roles and role not in plan.roles:
                yield _problem(
                    ctx.key_at(rpath, plan.location),
                    f"角色 '{role}' 不在方案的 roles 中",
                    f"the role '{role}' is not among the plan's roles",
                    T(f"加到 roles: 中，或删掉 by_role.{role}", "add it to roles:, or remove it"),
                )
            yield from _terms(ctx, terms, rpath, plan.location)
        kpi = bp.kpis.get(plan.kpi)
        where = ctx.at((*path, "kpi"), plan.location)
        if kpi is None:
            yield _unknown(where, _KPI, plan.kpi, bp.kpis)
            continue
        target = kpi.target
        if kpi.better == "lower":
            # Tiers pay slices of the value: on a cost or an incident count they would
            # pay more for more of it.
            yield _problem(
                where,
                f"指标 '{kpi.name}' 越低越好（better: lower），不能作为提成基数："
                "提成按业绩分段计提，越多付得越多",
                f"the KPI '{kpi.name}' is better lower (better: lower), so it cannot be paid on: "
                "commissions pay slices of the value, more for more",
                T(
                    "改为按越高越好的指标计提（如签约额），或删掉该指标的 better: lower",
                    "pay on a KPI that is better higher (e.g. signed revenue), "
                    "or remove better: lower from the KPI",
                ),
            )
        elif target is None or (target.entity is None and target.value is None):
            yield _problem(
                where,
                f"指标 '{kpi.name}' 没有目标，无法计算达成率",
                f"the KPI '{kpi.name}' has no target, so there is no attainment to pay on",
                T(
                    f"给指标 '{kpi.name}' 加上 target:（如销售目标实体）",
                    f"give the KPI '{kpi.name}' a target: (e.g. a sales target entity)",
                ),
            )
        elif target.entity is not None and "owner" not in target.match:
            yield _problem(
                where,
                f"指标 '{kpi.name}' 的目标没有按 owner 匹配到销售",
                f"the target of KPI '{kpi.name}' is not matched to a rep by owner",
                T(
                    "在 target.match 中加上 owner: <目标实体的人员字段>",
                    "add owner: <the target entity's user field> under target.match",
                ),
            )
        if kpi.date is None:
            yield _problem(
                where,
                f"指标 '{kpi.name}' 没有 date 字段，无法按期间结算",
                f"the KPI '{kpi.name}' has no date field, so it cannot be settled per period",
                T("给指标加上 date: 某个日期字段", "give the KPI date: <a date field>"),
            )


def _terms(ctx: Context, terms: PayTerms, path: Path, fallback: Location) -> Iterator[Problem]:
    loc = ctx.at(path, fallback)
    if terms.mode not in PAY_MODES:
        yield _unknown(ctx.at((*path, "mode"), loc), ("计算方式", "mode"), terms.mode, PAY_MODES)
    if not terms.tiers:
        yield _problem(
            ctx.at((*path, "tiers"), loc),
            "缺少提成档位 tiers",
            "the plan has no tiers",
            T(
                "如 tiers: [{upto: 100, rate: 3}, {rate: 5}]",
                "e.g. tiers: [{upto: 100, rate: 3}, {rate: 5}]",
            ),
        )
    previous = Decimal(0)
    for index, tier in enumerate(terms.tiers):
        where = tier.location if tier.location.line else loc
        last = index == len(terms.tiers) - 1
        if tier.rate < 0:
            yield _problem(
                where, f"提成比例不能为负：{tier.rate}", f"a rate cannot be negative: {tier.rate}"
            )
        if tier.upto is None and not last:
            yield _problem(
                where,
                "只有最后一档可以不写 upto",
                "only the last tier may leave out upto",
                T("给这一档写上 upto（达成率 %）", "give this tier an upto (attainment %)"),
            )
        elif tier.upto is not None and last:
            yield _problem(
                where,
                f"最后一档不能有上限（upto: {tier.upto}）",
                f"the last tier must be open-ended (it has upto: {tier.upto})",
                T(
                    "删掉最后一档的 upto，或再加一档 {rate: …}",
                    "remove its upto, or add a tier {rate: ...}",
                ),
            )
        if tier.upto is not None and tier.upto <= previous:
            yield _problem(
                where,
                f"档位上限应递增：{tier.upto} 不大于 {previous}",
                f"tier bounds must rise: {tier.upto} is not above {previous}",
            )
        if tier.upto is not None:
            previous = tier.upto
    if terms.cap is not None and terms.cap < 0:
        yield _problem(
            ctx.at((*path, "cap"), loc),
            f"封顶金额不能为负：{terms.cap}",
            f"the cap cannot be negative: {terms.cap}",
        )
