"""Semantic checks: what JSON Schema cannot see.

The schema knows the shape of a blueprint; these checks know its meaning: that
``to: custmer`` names no entity, that ``amount + name`` adds a number to a text,
that computed fields ``a`` and ``b`` use each other, that a flow's status field
has no ``pending`` option. Each problem comes with a location, a bilingual
message and a hint (the fix).

Each check is a small function registered with :func:`semantic_check`; they
run in registration order (the formula check binds compiled formulas before the
cycle check reads them). A later feature adds a check by writing one more
decorated function - no central chain to edit::

    @semantic_check
    def widgets_fit(ctx: Context) -> Iterator[Problem]:
        ...

Checks receive a :class:`Context`: the model, and (when loaded from files) the
raw document with positions, so a problem can point at the exact list item or
value rather than at the enclosing entity.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Location, Problem
from engine.expressions import ANY, DATETIME, NUMBER, TEXT, Scope, Type
from engine.fields import COMMON_KEYS, get_kind, kind_names, kinds
from engine.i18n import T, Text
from engine.loading.describe import did_you_mean, listing
from engine.loading.limits import MAX_ENTITIES, MAX_FIELDS
from engine.loading.positions import Doc, Path
from engine.messages import is_plain_name, placeholders
from engine.model import (
    SYSTEM_COLUMNS,
    Approvers,
    Blueprint,
    Entity,
    Field,
    Flow,
    FlowAction,
    Recipient,
)
from engine.urlguard import literal_problem

__all__ = [
    "API_ROUTE_NAMES",
    "CHECKS",
    "NAME_PATTERN",
    "RESERVED_WORDS",
    "Context",
    "check",
    "semantic_check",
]

#: Names of entities, fields, roles, flows, steps, KPIs... (same as the schema's).
NAME_PATTERN = re.compile(r"[A-Za-z\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]{0,62}\Z")

#: SQL reserved words (PostgreSQL's reserved list plus a few from SQLite/MySQL):
#: entity and field names become table and column names.
_SQL_WORDS = """
    all analyse analyze and any array as asc asymmetric authorization between binary both
    case cast check collate column concurrently constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user
    default deferrable delete desc distinct do drop else end except exists false fetch for
    foreign freeze from full grant group having ilike in index initially inner insert
    intersect into is isnull join lateral leading left like limit localtime localtimestamp
    natural not notnull null offset on only or order outer overlaps placing primary
    references returning right select session_user similar some symmetric table tablesample
    then to trailing true union unique update user using values variadic verbose when where
    window with
"""
SQL_KEYWORDS: frozenset[str] = frozenset(_SQL_WORDS.split())

#: Words a formula cannot use as a name (formulas share Python's expression syntax).
FORMULA_KEYWORDS: frozenset[str] = frozenset(keyword.kwlist)

#: Every word refused as an entity or field name (SQL ones in any letter case).
RESERVED_WORDS: frozenset[str] = SQL_KEYWORDS | FORMULA_KEYWORDS
#: Paths of the JSON API that an entity of the same name would shadow (/api/v1/tasks).
API_ROUTE_NAMES: frozenset[str] = frozenset(
    {"tasks", "forecast", "commissions", "kpis", "dashboards"}
)
#: What the check suggests instead of a name the API has taken.
_API_ROUTE_ALTERNATIVES = {
    "tasks": "approval_tasks",
    "forecast": "forecast_entries",
    "commissions": "commission_records",
    "kpis": "kpi_records",
    "dashboards": "dashboard_records",
}

#: Types of the system columns every record has (see ``model.SYSTEM_COLUMNS``).
SYSTEM_TYPES: dict[str, Type] = {
    "id": NUMBER,
    "created_at": DATETIME,
    "created_by": TEXT,
    "updated_at": DATETIME,
    "updated_by": TEXT,
    "version": NUMBER,
    "owner": TEXT,
}
SYSTEM_USER_FIELDS: frozenset[str] = frozenset({"owner", "created_by", "updated_by"})
TIME_BUCKETS: frozenset[str] = frozenset({"day", "week", "month", "quarter", "year"})
KPI_DIMENSIONS: frozenset[str] = TIME_BUCKETS | {"team"}
#: Field kinds a KPI cannot group by (their values are lists, rows or files).
UNGROUPABLE_KINDS: frozenset[str] = frozenset({"multi_choice", "table", "file"})
NOTIFY_SPECIAL: frozenset[str] = frozenset({"submitter", "approvers"})

Check = Callable[["Context"], Iterable[Problem]]
#: Every registered check, in the order they run.
CHECKS: list[Check] = []


def semantic_check(fn: Check) -> Check:
    """Register ``fn`` as a semantic check (runs after the ones registered before)."""
    CHECKS.append(fn)
    return fn


@dataclass
class Context:
    """What a check sees: the model, and the raw document with positions if any."""

    blueprint: Blueprint
    doc: Doc | None = None
    #: The schema already checked the document (skip what it reports itself).
    schema_checked: bool = False
    _scopes: dict[tuple[str, str | None], Scope] = field(default_factory=dict)

    # -- positions ------------------------------------------------------------------
    def at(self, path: Path, fallback: Location) -> Location:
        """Where the value at ``path`` was written (``fallback`` without a document)."""
        if self.doc is None:
            return fallback
        node, depth = self.doc.pos.deepest(path)
        return node.value if depth else fallback

    def key_at(self, path: Path, fallback: Location) -> Location:
        """Where the key naming ``path`` was written."""
        if self.doc is None or not path:
            return fallback
        parent, depth = self.doc.pos.deepest(path[:-1])
        if depth == len(path) - 1 and path[-1] in parent.keys:
            return parent.keys[path[-1]]
        return self.at(path, fallback)

    def raw(self, path: Path) -> Any:
        """The raw value at ``path`` (None without a document or when absent)."""
        data: Any = self.doc.data if self.doc is not None else None
        for key in path:
            if isinstance(data, dict) and isinstance(key, str):
                data = data.get(key)
            elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
                data = data[key]
            else:
                return None
        return data

    # -- the model --------------------------------------------------------------------
    def entity(self, name: str | None) -> Entity | None:
        return self.blueprint.entities.get(name) if name else None

    def field_names(self, entity: Entity) -> set[str]:
        """Fields a reference may name: the declared ones and the system columns."""
        return set(entity.fields) | set(SYSTEM_TYPES)

    def user_fields(self, entity: Entity) -> set[str]:
        return {n for n, f in entity.fields.items() if f.kind == "user"} | SYSTEM_USER_FIELDS

    def scope(self, entity: Entity, table: str | None = None, **flags: bool) -> Scope:
        """The formula scope of an entity's records (or of one child table's rows)."""
        key = (entity.name, table)
        base = self._scopes.get(key)
        if base is None:
            if table is None:
                fields = {**SYSTEM_TYPES, **field_types(entity.fields)}
                tables = {
                    t.name: field_types(t.fields) for t in entity.fields.values() if t.is_table
                }
                users = frozenset(self.user_fields(entity))
            else:
                child = entity.fields[table].fields
                fields, tables = field_types(child), {}
                users = frozenset(n for n, f in child.items() if f.kind == "user")
            base = Scope(fields, tables, user_fields=users)
            self._scopes[key] = base
        if not flags:
            return base
        return Scope(
            base.fields,
            base.tables,
            allow_changes=flags.get("allow_changes", False),
            aggregate=flags.get("aggregate", False),
            user_fields=base.user_fields,
        )


def field_types(fields: Mapping[str, Field]) -> dict[str, Type]:
    """Formula types of fields (child tables are not plain values; unknown kinds are ANY)."""
    out: dict[str, Type] = {}
    for name, f in fields.items():
        if f.is_table:
            continue
        kind = get_kind(f.kind)
        out[name] = kind.value_type(f) if kind is not None else ANY
    return out


def check(blueprint: Blueprint, doc: Doc | None = None, *, tolerant: bool = False) -> list[Problem]:
    """Every semantic problem of ``blueprint``.

    ``doc`` is the raw document it was built from, for precise positions; the
    JSON-Schema check is assumed to have run on it. ``tolerant``: the document
    already has schema problems, so a check that trips over malformed input is
    skipped instead of raising.
    """
    ctx = Context(blueprint, doc, schema_checked=doc is not None)
    problems: list[Problem] = []
    for fn in CHECKS:
        try:
            problems.extend(fn(ctx))
        except Exception:
            if not tolerant:
                raise
    return problems


# -- helpers -------------------------------------------------------------------------------


def _problem(where: Location, zh: str, en: str, hint: Text | None = None) -> Problem:
    return Problem(where, T(zh, en), hint or Text())


def _unknown(
    where: Location,
    what: tuple[str, str],
    name: str,
    choices: Iterable[str],
    owner: Text | None = None,
) -> Problem:
    """ "unknown field 'x' in entity 'y'; did you mean 'z'?" """
    pool = sorted(set(choices))
    zh_owner = f"（{owner.zh}中）" if owner else ""
    en_owner = f" in {owner.en}" if owner else ""
    hint = did_you_mean(
        name, pool, None if pool else T(f"先定义这个{what[0]}", f"define the {what[1]} first")
    )
    return Problem(
        where,
        T(f"未知的{what[0]} '{name}'{zh_owner}", f"unknown {what[1]} '{name}'{en_owner}"),
        hint,
    )


def _of_entity(name: str) -> Text:
    return T(f"实体 '{name}' ", f"entity '{name}'")


_FIELD = ("字段", "field")
_ENTITY = ("实体", "entity")
_ROLE = ("角色", "role")
_STEP = ("步骤", "step")
_KPI = ("指标", "KPI")
_FLOW = ("流程", "flow")


def _entities(ctx: Context) -> Iterator[tuple[str, Entity]]:
    yield from ctx.blueprint.entities.items()


def all_fields(entity: Entity) -> Iterator[tuple[Path, Field]]:
    """(path, field) for every field of ``entity``, child-table fields included.

    A child field's path is ``entities.E.fields.TABLE.fields.NAME`` (length 6).
    """
    base: Path = ("entities", entity.name, "fields")
    for name, f in entity.fields.items():
        yield (*base, name), f
        for child_name, child in f.fields.items():
            yield (*base, name, "fields", child_name), child


def _field_refs(
    ctx: Context, entity: Entity, names: Iterable[str], path: Path, fallback: Location
) -> Iterator[Problem]:
    """Unknown-field problems for each name listed at ``path`` (a list)."""
    known = ctx.field_names(entity)
    for index, name in enumerate(names):
        if name not in known:
            where = ctx.at((*path, index), fallback)
            yield _unknown(where, _FIELD, name, entity.fields, _of_entity(entity.name))


# -- names ---------------------------------------------------------------------------------


def _name_problem(
    ctx: Context, name: str, where: Location, *, sql: bool = False, column: bool = False
) -> Problem | None:
    """Why ``name`` cannot be used: not a name, a system column, a reserved word.

    ``sql``: the name becomes a table or column name; ``column``: a field name.
    """
    if not ctx.schema_checked and not NAME_PATTERN.match(name):
        return _problem(
            where,
            f"名字 '{name}' 不合规",
            f"'{name}' is not a valid name",
            T(
                "名字以字母（或汉字）开头，只含字母、数字、下划线，最长 63 个字符",
                "start with a letter; use letters, digits and _ (at most 63 characters)",
            ),
        )
    lowered = name.lower()
    reserved = lowered in SQL_KEYWORDS or name in FORMULA_KEYWORDS
    if column and lowered in SYSTEM_COLUMNS:
        return _problem(
            where,
            f"'{name}' 是系统字段，不能再定义",
            f"'{name}' is a system field and cannot be defined",
            T(
                "换个名字；系统字段（id、owner、created_at…）每条记录都自带",
                "use another name; system fields (id, owner, created_at ...) exist on every record",
            ),
        )
    if sql and reserved:
        return _problem(
            where,
            f"'{name}' 是保留字，不能用作名字",
            f"'{name}' is a reserved word and cannot be used as a name",
            T(f"换个名字，如 {name}_value", f"use another name, e.g. {name}_value"),
        )
    return None


@semantic_check
def reserved_names(ctx: Context) -> Iterator[Problem]:
    """Entity and field names become tables, columns and formula names: no reserved words."""
    bp = ctx.blueprint
    for ename, entity in _entities(ctx):
        where = ctx.key_at(("entities", ename), entity.location)
        problem = _name_problem(ctx, ename, where, sql=True)
        if problem is not None:
            yield problem
        elif ename.lower() in API_ROUTE_NAMES:
            yield _problem(
                where,
                f"实体名 '{ename}' 已被 API 占用（/api/v1/{ename.lower()}）",
                f"the entity name '{ename}' is taken by the API (/api/v1/{ename.lower()})",
                T(
                    f"换个名字，如 {_API_ROUTE_ALTERNATIVES[ename.lower()]}",
                    f"use another name, e.g. {_API_ROUTE_ALTERNATIVES[ename.lower()]}",
                ),
            )
        for path, f in all_fields(entity):
            where = ctx.key_at(path, f.location)
            problem = _name_problem(ctx, f.name, where, sql=True, column=True)
            if problem is not None:
                yield problem
    if ctx.schema_checked:
        return
    for section in ("roles", "flows", "kpis", "dashboards", "automations"):
        for name, item in getattr(bp, section).items():
            problem = _name_problem(ctx, name, getattr(item, "location", Location()))
            if problem is not None:
                yield problem


@semantic_check
def names_differ_by_more_than_case(ctx: Context) -> Iterator[Problem]:
    """``Name`` and ``name`` would be the same table or column in SQL."""
    groups: list[list[tuple[str, Location]]] = [[(n, e.location) for n, e in _entities(ctx)]]
    for _, entity in _entities(ctx):
        groups.append([(n, f.location) for n, f in entity.fields.items()])
        for table in entity.tables():
            groups.append([(n, c.location) for n, c in table.fields.items()])
    for names in groups:
        seen: dict[str, str] = {}
        for name, where in names:
            first = seen.setdefault(name.lower(), name)
            if first != name:
                yield _problem(
                    where,
                    f"'{name}' 与 '{first}' 只有大小写不同",
                    f"'{name}' differs from '{first}' only in letter case",
                    T("改用不同的名字", "use clearly different names"),
                )


@semantic_check
def entity_limits(ctx: Context) -> Iterator[Problem]:
    """Limits for models built in code (files are limited while reading)."""
    bp = ctx.blueprint
    if len(bp.entities) > MAX_ENTITIES:
        yield _problem(
            bp.location,
            f"实体太多：最多 {MAX_ENTITIES} 个",
            f"too many entities: at most {MAX_ENTITIES} are allowed",
        )
    for _, entity in _entities(ctx):
        for owner, fields in [(entity.name, entity.fields)] + [
            (f"{entity.name}.{t.name}", t.fields) for t in entity.tables()
        ]:
            if len(fields) > MAX_FIELDS:
                yield _problem(
                    entity.location,
                    f"'{owner}' 的字段太多：最多 {MAX_FIELDS} 个",
                    f"'{owner}' has too many fields: at most {MAX_FIELDS} are allowed",
                )


# -- fields ----------------------------------------------------------------------------------


@semantic_check
def field_kinds(ctx: Context) -> Iterator[Problem]:
    """Every field names a known kind; child tables hold no tables."""
    names = kind_names()
    for _, entity in _entities(ctx):
        for path, f in all_fields(entity):
            if not f.kind:
                if not ctx.schema_checked:
                    yield _problem(
                        f.location,
                        f"字段 '{f.name}' 缺少 'type'",
                        f"field '{f.name}' has no 'type'",
                        T("补上 type: text（或其他字段类型）", "add type: text (or another kind)"),
                    )
                continue
            where = ctx.at((*path, "type"), f.location)
            if get_kind(f.kind) is None:
                yield Problem(
                    where,
                    T(f"未知的字段类型 '{f.kind}'", f"unknown field type '{f.kind}'"),
                    did_you_mean(f.kind, names),
                )
            elif f.is_table and len(path) > 4:
                yield _problem(
                    where,
                    "子表中不能再有子表",
                    "a child table cannot hold another table",
                    T("改用一个新实体，用 ref 关联", "use a separate entity linked with ref"),
                )


@semantic_check
def misplaced_keys(ctx: Context) -> Iterator[Problem]:
    """``options`` on a text field, ``to`` on a money field...: keys of other kinds."""
    if ctx.doc is None:
        return  # kind.check() reports them on a model built in code
    owners: dict[str, list[str]] = {}
    for each in kinds():
        for key in each.keys:
            owners.setdefault(key, []).append(each.name)
    for _, entity in _entities(ctx):
        for path, f in all_fields(entity):
            kind = get_kind(f.kind)
            raw = ctx.raw(path)
            if kind is None or not isinstance(raw, dict):
                continue
            for key in raw:
                if key in owners and key not in kind.keys and key not in COMMON_KEYS:
                    yield _problem(
                        ctx.key_at((*path, key), f.location),
                        f"{kind.name} 类型的字段不能有 '{key}'",
                        f"key '{key}' does not apply to a {kind.name} field",
                        T(
                            f"删除它；'{key}' 只用于这些类型：{listing(owners[key])}",
                            f"remove it; '{key}' is only for {listing(owners[key])} fields",
                        ),
                    )


@semantic_check
def field_definitions(ctx: Context) -> Iterator[Problem]:
    """Each kind checks its own fields: options, patterns, bounds, formats, defaults."""
    for _, entity in _entities(ctx):
        for _, f in all_fields(entity):
            kind = get_kind(f.kind)
            if kind is not None:
                yield from kind.check(f)


@semantic_check
def ref_targets(ctx: Context) -> Iterator[Problem]:
    """``ref`` fields point at an entity of this blueprint."""
    entities = ctx.blueprint.entities
    for _, entity in _entities(ctx):
        for path, f in all_fields(entity):
            if f.kind == "ref" and f.to is not None and f.to not in entities:
                where = ctx.at((*path, "to"), f.location)
                yield _unknown(where, _ENTITY, f.to, entities)
            elif f.kind == "ref" and f.to is None and not ctx.schema_checked:
                yield _problem(
                    f.location,
                    f"引用字段 '{f.name}' 缺少 'to'",
                    f"ref field '{f.name}' has no 'to'",
                    T("写上 to: 目标实体", "add to: <entity>"),
                )


# -- entity settings -------------------------------------------------------------------------


@semantic_check
def entity_field_references(ctx: Context) -> Iterator[Problem]:
    """title_field, list columns/sort/filters/search, sections, rule fields name real fields."""
    for ename, entity in _entities(ctx):
        base: Path = ("entities", ename)
        loc = entity.location
        if entity.title_field and entity.title_field not in ctx.field_names(entity):
            yield _unknown(
                ctx.at((*base, "title_field"), loc),
                _FIELD,
                entity.title_field,
                entity.fields,
                _of_entity(ename),
            )
        view = entity.list
        for key, names in (
            ("columns", view.columns),
            ("sort", tuple(n.removeprefix("-") for n in view.sort)),
            ("filters", view.filters),
            ("search", view.search),
        ):
            yield from _field_refs(ctx, entity, names, (*base, "list", key), loc)
        for index, section in enumerate(entity.sections):
            yield from _field_refs(
                ctx, entity, section.fields, (*base, "sections", index, "fields"), loc
            )
        for index, rule in enumerate(entity.rules):
            if rule.field is not None and rule.field not in ctx.field_names(entity):
                where = ctx.at((*base, "rules", index, "field"), rule.location)
                yield _unknown(where, _FIELD, rule.field, entity.fields, _of_entity(ename))


@semantic_check
def access_rules(ctx: Context) -> Iterator[Problem]:
    """Access names known roles and real fields."""
    roles = ctx.blueprint.roles
    for ename, entity in _entities(ctx):
        for role, access in entity.access.items():
            path: Path = ("entities", ename, "access", role)
            if role not in roles:
                yield _unknown(ctx.key_at(path, access.location), _ROLE, role, roles)
            for key, names in (
                ("hidden_fields", access.hidden_fields),
                ("readonly_fields", access.readonly_fields),
            ):
                yield from _field_refs(ctx, entity, names, (*path, key), access.location)


# -- flows -----------------------------------------------------------------------------------

_FLOW_STATES: tuple[str, ...] = ("draft", "pending", "approved", "rejected")


@semantic_check
def flows(ctx: Context) -> Iterator[Problem]:
    """Flows name a real entity, a choice status field with the flow's states, real steps."""
    bp = ctx.blueprint
    for fname, flow in bp.flows.items():
        path: Path = ("flows", fname)
        entity = ctx.entity(flow.entity)
        if entity is None:
            if flow.entity:
                yield _unknown(
                    ctx.at((*path, "entity"), flow.location), _ENTITY, flow.entity, bp.entities
                )
            continue
        if not flow.steps and not ctx.schema_checked:
            yield _problem(
                flow.location,
                f"流程 '{fname}' 没有步骤",
                f"flow '{fname}' has no steps",
                T("在 steps: 下至少写一个步骤", "add at least one step under steps:"),
            )
        yield from _status_field(ctx, flow, entity, path)
        yield from _flow_actions(ctx, flow, entity, path)
        yield from _approvers(ctx, flow.cc, entity, (*path, "cc"), flow.location)
        order = list(flow.steps)
        for sname, step in flow.steps.items():
            spath = (*path, "steps", sname)
            yield from _approvers(ctx, step.approvers, entity, (*spath, "approvers"), step.location)
            yield from _approvers(ctx, step.cc, entity, (*spath, "cc"), step.location)
            yield from _field_refs(ctx, entity, step.editable, (*spath, "editable"), step.location)
            yield from _editable(ctx, flow, entity, step.editable, spath, step.location)
            target = step.on_reject.return_to
            if (
                target is not None
                and target in flow.steps
                and order.index(target) >= order.index(sname)
            ):
                yield _problem(
                    ctx.at((*spath, "on_reject", "return_to"), step.location),
                    f"步骤 '{sname}' 只能退回到它之前的步骤，'{target}' 不在它之前",
                    f"step '{sname}' can only return to an earlier step; '{target}' is not "
                    "before it",
                    T(
                        f"写 submitter 或 {sname} 之前的步骤名",
                        f"name submitter or a step before {sname}",
                    ),
                )


def _status_field(ctx: Context, flow: Flow, entity: Entity, path: Path) -> Iterator[Problem]:
    where = ctx.at((*path, "status_field"), flow.location)
    status = entity.fields.get(flow.status_field)
    if status is None:
        if flow.status_field:
            yield _unknown(where, _FIELD, flow.status_field, entity.fields, _of_entity(entity.name))
        return
    if status.kind != "choice":
        yield _problem(
            where,
            f"状态字段 '{status.name}' 必须是 choice 类型（现在是 {status.kind}）",
            f"the status field '{status.name}' must be a choice field (it is {status.kind})",
            T(
                "把它改成 choice，选项含 draft、pending、approved、rejected",
                "make it a choice with options draft, pending, approved, rejected",
            ),
        )
        return
    values = [o.value for o in status.options]
    for state in _FLOW_STATES:
        value = flow.statuses.get(state, state)
        if value in values:
            continue
        written = state in flow.statuses
        yield _problem(
            ctx.at((*path, "statuses", state), where) if written else where,
            f"状态字段 '{status.name}' 没有选项 '{value}'（流程状态 {state}）",
            f"the status field '{status.name}' has no option '{value}' (flow state {state})",
            T(
                f"给 {status.name} 加上选项 '{value}'，或在 statuses: 中对应到已有选项",
                f"add the option '{value}' to {status.name}, or map {state} to an existing "
                "option under statuses:",
            ),
        )


def _flow_actions(ctx: Context, flow: Flow, entity: Entity, path: Path) -> Iterator[Problem]:
    actions: list[tuple[Path, FlowAction]] = [
        ((*path, "on_approved"), flow.on_approved),
        ((*path, "on_rejected"), flow.on_rejected),
    ]
    for sname, step in flow.steps.items():
        actions.append(((*path, "steps", sname, "on_approve"), step.on_approve))
        actions.append(((*path, "steps", sname, "on_reject"), step.on_reject))
    for apath, action in actions:
        fallback = ctx.at(apath, flow.location)
        yield from _set_fields(ctx, entity, action.set, (*apath, "set"), fallback)
        if flow.status_field in action.set:
            yield _problem(
                ctx.key_at((*apath, "set", flow.status_field), fallback),
                f"'{flow.status_field}' 是流程的状态字段，由流程自己设置",
                f"'{flow.status_field}' is the flow's status field; the flow sets it itself",
                T("从 set: 中去掉它", "remove it from set:"),
            )
        if action.return_to and apath[-1] in ("on_approve", "on_approved"):
            yield Problem(
                ctx.at((*apath, "return_to"), fallback),
                T(
                    "return_to 只在驳回时起作用（on_reject / on_rejected）",
                    "return_to only applies to rejections (on_reject / on_rejected)",
                ),
                severity="warning",
            )
        if action.return_to and action.return_to not in ("submitter", *flow.steps):
            yield _unknown(
                ctx.at((*apath, "return_to"), fallback),
                _STEP,
                action.return_to,
                ["submitter", *flow.steps],
                T(f"流程 '{flow.name}' ", f"flow '{flow.name}'"),
            )
        yield from _notify(ctx, entity, action.notify, (*apath, "notify"), fallback)


def _editable(
    ctx: Context,
    flow: Flow,
    entity: Entity,
    names: Iterable[str],
    path: Path,
    fallback: Location,
) -> Iterator[Problem]:
    """An approver edits plain fields: not the status, nothing the engine computes."""
    for index, name in enumerate(names):
        f = entity.fields.get(name)
        if name == flow.status_field:
            why = T("它是流程的状态字段", "it is the flow's status field")
        elif f is not None and (f.computed or f.kind == "autonumber"):
            why = T("它由系统计算", "the engine computes it")
        else:
            continue
        yield Problem(
            ctx.at((*path, "editable", index), fallback),
            T(
                f"审批人不能修改 '{name}'：{why.zh}",
                f"approvers cannot edit '{name}': {why.en}",
            ),
            T("从 editable 中去掉它", "remove it from editable"),
        )


def _set_fields(
    ctx: Context, entity: Entity, values: Mapping[str, Any], path: Path, fallback: Location
) -> Iterator[Problem]:
    known = set(entity.fields)
    for name in values:
        if name not in known:
            where = ctx.key_at((*path, name), fallback)
            yield _unknown(where, _FIELD, name, known, _of_entity(entity.name))


def _notify(
    ctx: Context,
    entity: Entity,
    names: Iterable[str],
    path: Path,
    fallback: Location,
    *,
    start: int = 0,
) -> Iterator[Problem]:
    choices = set(ctx.blueprint.roles) | ctx.user_fields(entity) | NOTIFY_SPECIAL
    for index, name in enumerate(names, start):
        if name not in choices:
            yield Problem(
                ctx.at((*path, index), fallback),
                T(
                    f"通知对象 '{name}' 既不是角色也不是用户字段",
                    f"'{name}' is neither a role nor a user field",
                ),
                did_you_mean(
                    name,
                    choices,
                    T(
                        "写角色名、用户字段（如 owner）、submitter 或 approvers",
                        "name a role, a user field (e.g. owner), submitter or approvers",
                    ),
                ),
            )


def _approvers(
    ctx: Context, approvers: Approvers | None, entity: Entity, path: Path, fallback: Location
) -> Iterator[Problem]:
    if approvers is None:
        return
    roles = ctx.blueprint.roles
    if approvers.role is not None and approvers.role not in roles:
        yield _unknown(ctx.at((*path, "role"), fallback), _ROLE, approvers.role, roles)
    users = ctx.user_fields(entity)
    for key, name in (("manager_of", approvers.manager_of), ("field", approvers.field)):
        if name is None:
            continue
        where = ctx.at((*path, key), fallback)
        if name not in ctx.field_names(entity):
            yield _unknown(where, _FIELD, name, sorted(users), _of_entity(entity.name))
        elif name not in users:
            yield _problem(
                where,
                f"'{name}' 不是用户字段",
                f"'{name}' is not a user field",
                T(f"{key} 要写 user 类型的字段，如 owner", f"{key} needs a user field, e.g. owner"),
            )


# -- KPIs, dashboards, automations ---------------------------------------------------------


def _date_field(
    ctx: Context, entity: Entity, name: str | None, where: Location
) -> Iterator[Problem]:
    if name is None:
        return
    f = entity.fields.get(name)
    if f is None and name not in ("created_at", "updated_at"):
        dates = [n for n, x in entity.fields.items() if x.kind in ("date", "datetime")]
        yield _unknown(where, _FIELD, name, dates or entity.fields, _of_entity(entity.name))
    elif (
        f is not None
        and f.kind not in ("date", "datetime")
        and not (f.kind == "formula" and f.result in ("date", "datetime"))
    ):
        yield _problem(
            where,
            f"'{name}' 不是日期字段（现在是 {f.kind}）",
            f"'{name}' is not a date field (it is {f.kind})",
            T("写 date 或 datetime 类型的字段", "name a date or datetime field"),
        )


@semantic_check
def kpis(ctx: Context) -> Iterator[Problem]:
    """KPIs name a real entity, date field, dimensions and target."""
    bp = ctx.blueprint
    for name, kpi in bp.kpis.items():
        path: Path = ("kpis", name)
        entity = ctx.entity(kpi.entity)
        if entity is None:
            if kpi.entity:
                yield _unknown(
                    ctx.at((*path, "entity"), kpi.location), _ENTITY, kpi.entity, bp.entities
                )
            continue
        yield from _date_field(ctx, entity, kpi.date, ctx.at((*path, "date"), kpi.location))
        dims = ctx.field_names(entity) | KPI_DIMENSIONS
        for index, dim in enumerate(kpi.by):
            if dim not in dims:
                yield _unknown(
                    ctx.at((*path, "by", index), kpi.location),
                    ("维度", "dimension"),
                    dim,
                    [*entity.fields, *sorted(KPI_DIMENSIONS)],
                    T(f"指标 '{name}' ", f"KPI '{name}'"),
                )
            elif dim in entity.fields and entity.fields[dim].kind in UNGROUPABLE_KINDS:
                yield _problem(
                    ctx.at((*path, "by", index), kpi.location),
                    f"不能按 '{dim}' 分组：{entity.fields[dim].kind} 字段的值是列表或文件",
                    f"cannot group by '{dim}': a {entity.fields[dim].kind} field holds a "
                    "list or a file",
                    T(
                        "按选项、人员、引用、布尔、文本或日期字段分组",
                        "group by a choice, user, ref, boolean, text or date field",
                    ),
                )
            elif dim in TIME_BUCKETS and kpi.date is None:
                yield _problem(
                    ctx.at((*path, "by", index), kpi.location),
                    f"按 {dim} 分组需要指定 date 字段",
                    f"grouping by {dim} needs a date field",
                    T("加上 date: 某个日期字段", "add date: <a date field>"),
                )
        target = kpi.target
        if target is None or target.entity is None:
            continue
        tpath = (*path, "target")
        tentity = ctx.entity(target.entity)
        if tentity is None:
            yield _unknown(
                ctx.at((*tpath, "entity"), kpi.location), _ENTITY, target.entity, bp.entities
            )
            continue
        yield from _date_field(ctx, tentity, target.date, ctx.at((*tpath, "date"), kpi.location))
        for dim, tfield in target.match.items():
            if dim not in kpi.by:
                yield _problem(
                    ctx.key_at((*tpath, "match", dim), kpi.location),
                    f"目标匹配的 '{dim}' 不在指标的 by 中",
                    f"the target matches on '{dim}', which is not in the KPI's by",
                    T(
                        f"把 {dim} 加到 by: 中，或删掉这一项",
                        f"add {dim} to by:, or remove it here",
                    ),
                )
            if tfield not in ctx.field_names(tentity):
                yield _unknown(
                    ctx.at((*tpath, "match", dim), kpi.location),
                    _FIELD,
                    tfield,
                    tentity.fields,
                    _of_entity(tentity.name),
                )


@semantic_check
def dashboards(ctx: Context) -> Iterator[Problem]:
    """Dashboards show known KPIs, by their dimensions, to known roles."""
    bp = ctx.blueprint
    for name, board in bp.dashboards.items():
        path: Path = ("dashboards", name)
        for index, role in enumerate(board.roles):
            if role not in bp.roles:
                yield _unknown(
                    ctx.at((*path, "roles", index), board.location), _ROLE, role, bp.roles
                )
        for index, widget in enumerate(board.widgets):
            wpath = (*path, "widgets", index)
            if widget.kind == "commission":
                if not bp.commissions:
                    yield _problem(
                        ctx.at((*wpath, "kind"), widget.location),
                        "提成组件需要蓝图中定义 commissions（提成方案）",
                        "a commission widget needs commission plans (commissions:)",
                        T(
                            "先在 commissions: 中定义提成方案，或换用其他组件类型",
                            "define a plan under commissions: first, or use another kind",
                        ),
                    )
                if widget.kpi is not None:
                    yield _problem(
                        ctx.at((*wpath, "kpi"), widget.location),
                        "提成组件不写 kpi：它展示查看者所适用提成方案的结算",
                        "a commission widget takes no kpi: it shows the viewer's plan",
                        T("删除 kpi", "remove kpi"),
                    )
                continue
            if widget.kpi is None:
                yield _problem(
                    ctx.at((*wpath, "kind"), widget.location),
                    f"{widget.kind} 组件需要 kpi（展示哪个指标）",
                    f"a {widget.kind} widget needs a kpi (the KPI it shows)",
                    T(
                        f"可用：{listing(bp.kpis)}" if bp.kpis else "先在 kpis: 中定义指标",
                        f"use one of: {listing(bp.kpis)}" if bp.kpis else "define a KPI first",
                    ),
                )
                continue
            kpi = bp.kpis.get(widget.kpi)
            if kpi is None:
                yield _unknown(ctx.at((*wpath, "kpi"), widget.location), _KPI, widget.kpi, bp.kpis)
                continue
            for bindex, dim in enumerate(widget.by):
                if dim not in kpi.by:
                    yield _problem(
                        ctx.at((*wpath, "by", bindex), widget.location),
                        f"指标 '{kpi.name}' 不能按 '{dim}' 分组",
                        f"KPI '{kpi.name}' cannot be grouped by '{dim}'",
                        T(
                            f"可用：{listing(kpi.by)}"
                            if kpi.by
                            else f"先在指标的 by: 中加上 {dim}",
                            f"use one of: {listing(kpi.by)}"
                            if kpi.by
                            else f"add {dim} to the KPI's by: first",
                        ),
                    )


@semantic_check
def automations(ctx: Context) -> Iterator[Problem]:
    """Automations watch a real entity (and flow), set real fields, notify real people."""
    bp = ctx.blueprint
    for name, auto in bp.automations.items():
        path: Path = ("automations", name)
        entity = ctx.entity(auto.entity)
        if entity is None:
            if auto.entity:
                yield _unknown(
                    ctx.at((*path, "entity"), auto.location), _ENTITY, auto.entity, bp.entities
                )
            continue
        if auto.flow is not None:
            flow = bp.flows.get(auto.flow)
            where = ctx.at((*path, "flow"), auto.location)
            if flow is None:
                yield _unknown(where, _FLOW, auto.flow, bp.flows)
            elif flow.entity != entity.name:
                yield _problem(
                    where,
                    f"流程 '{flow.name}' 审批的是 '{flow.entity}'，不是 '{entity.name}'",
                    f"flow '{flow.name}' approves '{flow.entity}', not '{entity.name}'",
                    T("让 entity 与流程的实体一致", "use the flow's entity as entity:"),
                )
        yield from _date_field(
            ctx, entity, auto.date_field, ctx.at((*path, "date_field"), auto.location)
        )
        for index, action in enumerate(auto.actions):
            apath = (*path, "actions", index, action.kind)
            params = action.params
            if action.kind == "set":
                yield from _set_fields(ctx, entity, params, apath, action.location)
            elif action.kind == "create":
                target = ctx.entity(params.get("entity"))
                if target is None:
                    if params.get("entity"):
                        yield _unknown(
                            ctx.at((*apath, "entity"), action.location),
                            _ENTITY,
                            params["entity"],
                            bp.entities,
                        )
                    continue
                yield from _set_fields(
                    ctx, target, params.get("values", {}), (*apath, "values"), action.location
                )
            elif action.kind == "notify":
                yield from _recipients(
                    ctx, entity, params.get("to", ()), (*apath, "to"), action.location
                )
                yield from _message(
                    ctx, entity, params.get("message"), (*apath, "message"), action.location
                )
            elif action.kind == "webhook":
                yield from _webhook_url(ctx, params.get("url"), (*apath, "url"), action.location)
            if action.kind == "set" and auto.on == "delete":
                yield _problem(
                    ctx.at((*path, "actions", index), action.location),
                    "删除后记录已不存在，不能 set 它的字段",
                    "a deleted record has no fields to set",
                    T(
                        "on: delete 时改用 create、notify 或 webhook",
                        "on: delete, use create, notify or webhook",
                    ),
                )


#: The built-in role an automation may notify besides the blueprint's roles.
ADMIN_RECIPIENT = "admin"


def _recipients(
    ctx: Context, entity: Entity, recipients: Iterable[Any], path: Path, fallback: Location
) -> Iterator[Problem]:
    """``notify: to:`` entries: roles, user fields, submitter/approvers, manager_of, users."""
    users = ctx.user_fields(entity)
    for index, recipient in enumerate(recipients):
        if not isinstance(recipient, Recipient):
            continue
        where = ctx.at((*path, index), recipient.location)
        if recipient.name is not None:
            if recipient.name != ADMIN_RECIPIENT:
                yield from _notify(ctx, entity, [recipient.name], path, where, start=index)
        elif recipient.manager_of is not None:
            name = recipient.manager_of
            mwhere = ctx.at((*path, index, "manager_of"), where)
            if name not in ctx.field_names(entity):
                yield _unknown(mwhere, _FIELD, name, sorted(users), _of_entity(entity.name))
            elif name not in users:
                yield _problem(
                    mwhere,
                    f"'{name}' 不是用户字段",
                    f"'{name}' is not a user field",
                    T(
                        "manager_of 要写 user 类型的字段，如 owner",
                        "manager_of needs a user field, e.g. owner",
                    ),
                )


def _message(
    ctx: Context, entity: Entity, message: Any, path: Path, fallback: Location
) -> Iterator[Problem]:
    """``{field}`` placeholders of a notify message name the entity's fields."""
    if not isinstance(message, Text):
        return
    known = ctx.field_names(entity)
    where = ctx.at(path, fallback)
    for text in dict.fromkeys(t for t in (message.zh, message.en) if t):
        try:
            found = placeholders(text)
        except ValueError:
            yield _problem(
                where,
                f"消息中的花括号不成对：{text}",
                f"unbalanced braces in the message: {text}",
                T(
                    "占位符写作 {字段名}；要显示花括号本身写 {{ 或 }}",
                    "write a placeholder as {field}; write {{ or }} for a brace itself",
                ),
            )
            continue
        for name in found:
            if not is_plain_name(name):
                yield _problem(
                    where,
                    f"占位符 {{{name}}} 只能是字段名",
                    f"the placeholder {{{name}}} must be a plain field name",
                    T(
                        "写 {字段名}，不能写属性、下标或格式",
                        "write {field}: no attributes, indexes or formats",
                    ),
                )
            elif name not in known:
                yield _unknown(where, _FIELD, name, known, _of_entity(entity.name))


def _webhook_url(ctx: Context, url: Any, path: Path, fallback: Location) -> Iterator[Problem]:
    """A webhook URL written as a literal bad address is refused before it is ever sent."""
    if not isinstance(url, str) or not url:
        return
    found = literal_problem(url)
    if found is None:
        return
    severity, message = found
    yield Problem(
        ctx.at(path, fallback),
        message,
        T(
            "webhook 只发往公网地址；内网接收方需在设置 FORMFLOW_WEBHOOK_ALLOW_HOSTS 中写明",
            "webhooks go to public addresses only; an internal receiver must be named in "
            "the FORMFLOW_WEBHOOK_ALLOW_HOSTS setting",
        ),
        severity=severity,
    )


# The formula checks (compile every formula, then look for cycles) live in their
# own module; importing it registers them after the checks above.
from engine.loading import formula_checks as _formula_checks  # noqa: E402, F401
from engine.loading import incentive_checks as _incentive_checks  # noqa: E402, F401
