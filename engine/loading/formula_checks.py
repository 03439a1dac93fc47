"""Formula checks: compile every formula where it stands, then look for cycles.

Every formula of a blueprint (computed fields, defaults, conditions, rules,
access scopes, flow guards and ``set:`` values, KPI measures and filters,
automation conditions and values) is compiled once here, with

* the right scope: the entity's fields and system columns, its child tables
  (``lines.qty`` inside an aggregate), or a child table's own columns;
* the right expectation: BOOL for conditions, the field's own type for a
  computed value or a default, NUMBER for a KPI measure;
* the right permissions: ``ISCHANGED``/``PRIORVALUE`` only in rules that run
  on update only and in automations ``on: update``; aggregates only in KPIs,
  whose measures and ``where`` filters must also translate to SQL
  (:func:`sql_supported`).

The compiled result is bound to the :class:`~engine.model.Formula`, so after
loading ``formula.compiled`` is always there. An :class:`ExpressionError`'s
offset inside the formula maps to the file position with
:func:`formula_location`. Then computed fields and formula defaults that
depend on each other in a circle are reported with the circle spelled out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.checks import Context, all_fields, semantic_check
from engine.errors import ExpressionError, Location, Problem
from engine.expressions import BOOL, NUMBER, Scope, Type, compile_formula
from engine.fields import get_kind
from engine.i18n import T, Text
from engine.model import Entity, Field, Formula
from engine.storage.formula_sql import sql_supported

__all__ = ["formula_cycles", "formula_location", "formulas"]


_KPI_SQL_HINT = T(
    "指标只能用数据库能计算的聚合，如 SUM、COUNT、AVG",
    "a KPI can use only aggregates the database computes, e.g. SUM, COUNT, AVG",
)
_SCOPE_SQL_HINT = T(
    "记录范围公式会用来筛选列表，只能用数据库能计算的运算和函数",
    "a record scope filters lists in the database: use only operators and functions "
    "the database computes",
)


@dataclass(frozen=True)
class _Site:
    """One formula and how to compile it."""

    formula: Formula
    scope: Scope
    expect: Type | None
    sql: bool = False  # a KPI measure or a record scope: must also translate to SQL
    sql_hint: Text = _KPI_SQL_HINT


def _formula_sites(ctx: Context) -> Iterator[_Site]:
    yield from _entity_sites(ctx)
    yield from _flow_sites(ctx)
    yield from _kpi_sites(ctx)
    yield from _forecast_sites(ctx)
    yield from _automation_sites(ctx)


def _entity_sites(ctx: Context) -> Iterator[_Site]:
    for _, entity in ctx.blueprint.entities.items():
        scope = ctx.scope(entity)
        for path, f in all_fields(entity):
            table = path[-3] if len(path) > 4 else None
            fscope = ctx.scope(entity, str(table)) if table is not None else scope
            kind = get_kind(f.kind)
            own = kind.value_type(f) if kind is not None else None
            if f.formula is not None:
                yield _Site(f.formula, fscope, own)
            if f.default_formula is not None:
                yield _Site(f.default_formula, fscope, own)
            for cond in (f.required_if, f.visible_if, f.readonly_if):
                if cond is not None:
                    yield _Site(cond, fscope, BOOL)
            for bound in (f.min, f.max):
                if isinstance(bound, Formula):
                    yield _Site(bound, fscope, own)
        for rule in entity.rules:
            changes = set(rule.on) == {"update"}
            yield _Site(rule.check, ctx.scope(entity, allow_changes=changes), BOOL)
        for access in entity.access.values():
            if isinstance(access.create, Formula):
                yield _Site(access.create, scope, BOOL)
            for value in (access.read, access.update, access.delete):
                if isinstance(value, Formula):  # also a WHERE clause of lists
                    yield _Site(value, scope, BOOL, sql=True, sql_hint=_SCOPE_SQL_HINT)


def _flow_sites(ctx: Context) -> Iterator[_Site]:
    for flow in ctx.blueprint.flows.values():
        entity = ctx.entity(flow.entity)
        if entity is None:
            continue
        scope = ctx.scope(entity)
        actions = [flow.on_approved, flow.on_rejected]
        for cond in (flow.submit_when,):
            if cond is not None:
                yield _Site(cond, scope, BOOL)
        for step in flow.steps.values():
            for cond in (step.when, step.validate):
                if cond is not None:
                    yield _Site(cond, scope, BOOL)
            for approvers in (step.approvers, step.cc):
                if approvers is not None and approvers.formula is not None:
                    yield _Site(approvers.formula, scope, None)
            actions += [step.on_approve, step.on_reject]
        if flow.cc is not None and flow.cc.formula is not None:
            yield _Site(flow.cc.formula, scope, None)
        for action in actions:
            yield from _value_sites(entity, entity, action.set, scope)


def _kpi_sites(ctx: Context) -> Iterator[_Site]:
    for kpi in ctx.blueprint.kpis.values():
        entity = ctx.entity(kpi.entity)
        if entity is None:
            continue
        yield _Site(kpi.measure, ctx.scope(entity, aggregate=True), NUMBER, sql=True)
        if kpi.where is not None:  # the WHERE of the KPI's query: SQL too
            yield _Site(kpi.where, ctx.scope(entity), BOOL, sql=True)
        target = kpi.target
        tentity = ctx.entity(target.entity) if target is not None else None
        if target is not None and tentity is not None and target.measure is not None:
            yield _Site(target.measure, ctx.scope(tentity, aggregate=True), NUMBER, sql=True)


_FORECAST_SQL_HINT = T(
    "预测的概率在数据库中按商机计算，只能用数据库能计算的运算和函数",
    "a forecast's probability is computed per deal in the database: use only operators "
    "and functions the database computes",
)


def _forecast_sites(ctx: Context) -> Iterator[_Site]:
    for forecast in ctx.blueprint.forecasts.values():
        entity = ctx.entity(forecast.entity)
        if entity is None or forecast.probability is None:
            continue
        scope = ctx.scope(entity)
        yield _Site(forecast.probability, scope, NUMBER, sql=True, sql_hint=_FORECAST_SQL_HINT)


def _automation_sites(ctx: Context) -> Iterator[_Site]:
    for auto in ctx.blueprint.automations.values():
        entity = ctx.entity(auto.entity)
        if entity is None:
            continue
        scope = ctx.scope(entity, allow_changes=auto.on == "update")
        if auto.when is not None:
            yield _Site(auto.when, scope, BOOL)
        for action in auto.actions:
            if action.kind == "set":
                yield from _value_sites(entity, entity, action.params, scope)
            elif action.kind == "create":
                target = ctx.entity(action.params.get("entity"))
                if target is not None:
                    yield from _value_sites(entity, target, action.params.get("values", {}), scope)


def _value_sites(
    source: Entity, target: Entity, values: Mapping[str, Any], scope: Scope
) -> Iterator[_Site]:
    """Formulas in ``set:`` / ``values:`` maps: typed as the target field."""
    for name, value in values.items():
        if isinstance(value, Formula):
            f = target.fields.get(name)
            kind = get_kind(f.kind) if f is not None else None
            expect = kind.value_type(f) if kind is not None and f is not None else None
            yield _Site(value, scope, expect)


def formula_location(formula: Formula, offset: tuple[int, int]) -> Location:
    """The file position of ``offset`` (0-based line, column) inside ``formula``.

    On the formula's first line the column counts from the formula's first
    character; on later lines (a ``|`` block scalar) from the block's
    indentation, which is the column the formula starts at.
    """
    line, column = offset
    start = formula.location
    if not start.line:
        return start
    if line == 0:
        return Location(start.file, start.line, start.column + column)
    return Location(start.file, start.line + line, start.column + column)


@semantic_check
def formulas(ctx: Context) -> Iterator[Problem]:
    """Compile every formula with its scope and expected type; bind the result."""
    for site in _formula_sites(ctx):
        try:
            compiled = compile_formula(site.formula.source, site.scope, expect=site.expect)
        except ExpressionError as exc:
            yield Problem(formula_location(site.formula, exc.offset), exc.text, exc.hint)
            continue
        site.formula.bind(compiled)
        if site.sql:
            reason = sql_supported(compiled)
            if reason is not None:
                yield Problem(site.formula.location, reason, site.sql_hint)


@semantic_check
def formula_cycles(ctx: Context) -> Iterator[Problem]:
    """Computed fields and formula defaults must not depend on themselves."""
    for _, entity in ctx.blueprint.entities.items():
        yield from _cycles(entity.fields)
        for table in entity.tables():
            yield from _cycles(table.fields)


def _cycles(fields: Mapping[str, Field]) -> Iterator[Problem]:
    graph: dict[str, list[str]] = {}
    for name, f in fields.items():
        deps: list[str] = []
        for formula in (f.formula, f.default_formula):
            if formula is not None and formula.is_compiled:
                deps += sorted(n for n in formula.compiled.names if n in fields)
        graph[name] = deps
    reported: set[frozenset[str]] = set()
    for start in fields:
        cycle = _find_cycle(graph, start)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        first = fields[cycle[0]]
        formula = first.formula or first.default_formula
        chain = " → ".join([*cycle, cycle[0]])
        yield Problem(
            formula.location if formula is not None else first.location,
            T(f"公式循环引用：{chain}", f"formulas depend on each other in a cycle: {chain}"),
            T(
                "打破循环：其中一个字段不能再用另一个",
                "break the cycle: one of these fields must not use the other",
            ),
        )


def _find_cycle(graph: Mapping[str, list[str]], start: str) -> list[str] | None:
    """The cycle through ``start`` (as a path starting there), if any."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for dep in graph.get(node, []):
            if dep == start:
                return trail
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*trail, dep]))
    return None


# Steps that can never run read the compiled conditions: registered after the checks
# above, whichever of engine.checks and this module was imported first.
from engine.loading import flow_conditions as _flow_conditions  # noqa: E402, F401
