"""Who may do what with which records and fields: roles merged per user.

Each entity's ``access:`` gives every role a ``create`` (true/false or a
formula) and a scope for ``read``, ``update`` and ``delete``: ``none``, ``own``
(records whose owner is the user), ``team`` (owned by the user or anyone below
them in the reporting line, see :meth:`engine.users.UserService.team`), ``all``,
or a boolean formula over the record (``=region == 'east'``; ``CURRENT_USER()``
is the user's name and ``CURRENT_ROLE()`` the role whose formula it is).

The rules:

1. **Unlisted means nothing.** A role that an entity's ``access:`` does not
   list may not create, read, update or delete its records. A role that is not
   in the blueprint (left over on a user after the blueprint changed) is ignored.
2. **Roles add up.** A user with several roles gets, per action, the widest
   named scope of them (none < own < team < all) *or* any of their formula
   scopes: a record is allowed if one role allows it. ``create`` is allowed if
   one role has ``create: true`` or one role's create formula is true for the
   new values. An action whose merged scope is ``all`` ignores formulas.
3. **Fields add up too.** A field is hidden only if every role of the user that
   may read the entity hides it (if none may read, the roles listed on the
   entity count; with no role listed every field is hidden). A field is
   read-only only if every role that may write (``create`` not false, or
   ``update`` not none) lists it as read-only *or hidden*, so two roles never
   combine into writing a field neither could write alone (with no role that
   may write every field is read-only). Field rules are per entity, not per record.
4. **admin and the engine.** The built-in ``admin`` role and the engine itself
   (:data:`engine.records.SYSTEM`, ``name=None``) may do everything: every
   record, every field, any owner, whatever ``access:`` says.
5. **Owner.** Setting or changing a record's owner (:meth:`Permissions.owner_policy`,
   the record service's ``owner_policy``) is allowed to the engine, imports and
   automations, admins, and a user with a role whose ``update`` on the entity is
   ``team`` or ``all``. Which owner (:meth:`Permissions.may_assign_to`): the engine
   any; admins and ``update: all`` any active user (or nobody); ``update: team`` an
   active user in their team; anyone else only themself.
6. **Lists and single records agree.** :meth:`Permissions.read_scope` is the SQL
   WHERE of lists, searches, reference pickers and KPIs; :meth:`Permissions.allows`
   answers the same question for one loaded record, in Python, and gives the same
   answer (tests compare them on real rows). A formula scope on ``read`` must
   translate to SQL (``engine.storage.formula_sql.sql_supported``): ``formflow
   check`` refuses a blueprint whose scope formula does not.
7. **Checking order** (for the record service): a record the user may not read
   is *not found* (its existence is not revealed); one they may read but not
   update or delete is *permission denied*. Writes refuse read-only and hidden
   fields.

8. **Approvers read what they are asked about.** On an entity with an approval
   flow, a user who has a task (in any state: asked now, later, or before;
   transferred or added ones too) on a record may read that record, whatever
   their roles' read scope says: the finance user asked to approve a contract
   opens it. It is read only (update and delete keep their scopes), and hidden
   fields stay hidden: an approver sees the fields their roles show (a role the
   entity does not list sees none). :meth:`Permissions.allows` and
   :meth:`Permissions.read_scope` both grant it (``id IN (the records of this
   entity the user was asked about)``), so lists agree with the detail page.

``team`` costs one small query of ``ff_users`` per call, so a change to the
reporting line counts at once, also one made by another process. Rule 8 costs
one indexed query of the flow tables when the role scope alone does not allow.
The merged access of rules 1–6 (:meth:`Permissions.access`) is kept per roles and
entity; rule 8 depends on the user's tasks, not their roles, so it is never part of
that cached answer: :meth:`~Permissions.allows` and :meth:`~Permissions.read_scope`
ask the flow tables afresh each time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.errors import ExpressionError
from engine.expressions import EvalContext
from engine.i18n import T, Text
from engine.model import SCOPES, SYSTEM_COLUMNS, Access, Blueprint, Entity, Formula
from engine.records import Actor, Record
from engine.storage.formula_sql import to_sql
from engine.storage.schema import FLOW_RUNS_TABLE, FLOW_TASKS_TABLE, EntityTable
from engine.users import ADMIN_ROLE, User, UserService

__all__ = ["ACTIONS", "EffectiveAccess", "Permissions", "Scope", "merge_scopes"]

Action = Literal["read", "update", "delete"]
#: The actions with a record scope.
ACTIONS: tuple[Action, ...] = ("read", "update", "delete")
#: Vias whose writes may set any owner (the engine's own work).
TRUSTED_VIA = frozenset({"import", "automation", "system"})
_RANK = {name: rank for rank, name in enumerate(SCOPES)}  # none < own < team < all


@dataclass(frozen=True)
class Scope:
    """The merged scope of one action: the widest named scope, plus role formulas.

    A record is in scope if ``level`` covers it or one ``formulas`` entry
    ``(role, formula)`` is true for it (evaluated with ``CURRENT_ROLE() == role``).
    """

    level: str = "none"
    formulas: tuple[tuple[str, Formula], ...] = ()

    @property
    def everything(self) -> bool:
        return self.level == "all"

    @property
    def nothing(self) -> bool:
        return self.level == "none" and not self.formulas


ALL = Scope("all")
NONE = Scope("none")


@dataclass(frozen=True)
class EffectiveAccess:
    """What one actor may do with one entity, all their roles merged."""

    entity: str
    create: bool = False
    create_if: tuple[tuple[str, Formula], ...] = ()  # (role, formula): any true allows
    read: Scope = NONE
    update: Scope = NONE
    delete: Scope = NONE
    hidden_fields: frozenset[str] = frozenset()
    readonly_fields: frozenset[str] = frozenset()
    unrestricted: bool = False  # admin or the engine: everything

    def scope(self, action: Action) -> Scope:
        if action == "read":
            return self.read
        if action == "update":
            return self.update
        if action == "delete":
            return self.delete
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")

    @property
    def may_create(self) -> bool:
        """Whether creating is possible at all (a formula may still refuse given values)."""
        return self.unrestricted or self.create or bool(self.create_if)


def merge_scopes(values: list[tuple[str, str | Formula]]) -> Scope:
    """One action's scopes of several roles: the widest named one, plus every formula."""
    level = "none"
    formulas: list[tuple[str, Formula]] = []
    for role, value in values:
        if isinstance(value, Formula):
            formulas.append((role, value))
        elif _RANK.get(value, 0) > _RANK[level]:
            level = value
    if level == "all":
        return ALL
    return Scope(level, tuple(formulas))


def _is_admin(actor: Actor) -> bool:
    return actor.is_system or ADMIN_ROLE in actor.roles


class Permissions:
    """The permission layer of one blueprint; ask it before reading or writing records."""

    def __init__(
        self,
        blueprint: Blueprint,
        users: UserService,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.users = users
        self.clock = clock or users.clock
        self.tz = ZoneInfo(blueprint.timezone)
        self._merged: dict[tuple[bool, frozenset[str], str], EffectiveAccess] = {}
        #: Entities with an approval flow: their approvers may read (rule 8).
        self._flow_entities = frozenset(f.entity for f in blueprint.flows.values())

    # -- merging -----------------------------------------------------------------

    def _entity(self, entity: Entity | str) -> Entity:
        return entity if isinstance(entity, Entity) else self.blueprint.entity(entity)

    def _grants(self, actor: Actor, entity: Entity) -> list[Access]:
        """The actor's roles that the entity lists, in a stable order."""
        return [entity.access[r] for r in sorted(actor.roles) if r in entity.access]

    def access(self, actor: Actor, entity: Entity | str) -> EffectiveAccess:
        """Everything ``actor`` may do with ``entity``, their roles merged (see the rules).

        The answer depends only on the roles (and whether the actor is the engine),
        so it is worked out once per roles and entity (a page asks many times).
        """
        name = entity.name if isinstance(entity, Entity) else entity
        roles = actor.roles if isinstance(actor.roles, frozenset) else frozenset(actor.roles)
        key = (actor.is_system, roles, name)
        found = self._merged.get(key)
        if found is None:
            if len(self._merged) >= 4096:
                self._merged.clear()
            found = self._merged[key] = self._merge(actor, self._entity(entity))
        return found

    def _merge(self, actor: Actor, ent: Entity) -> EffectiveAccess:
        every = frozenset(ent.fields)
        if _is_admin(actor):
            return EffectiveAccess(
                ent.name, create=True, read=ALL, update=ALL, delete=ALL, unrestricted=True
            )
        grants = self._grants(actor, ent)
        if not grants:
            return EffectiveAccess(ent.name, hidden_fields=every, readonly_fields=every)
        readers = [a for a in grants if a.read != "none"] or grants
        writers = [a for a in grants if a.create is not False or a.update != "none"]
        hidden = frozenset.intersection(*(frozenset(a.hidden_fields) for a in readers))
        if writers:
            readonly = frozenset.intersection(
                *(frozenset(a.readonly_fields) | frozenset(a.hidden_fields) for a in writers)
            )
        else:
            readonly = every
        return EffectiveAccess(
            ent.name,
            create=any(a.create is True for a in grants),
            create_if=tuple((a.role, a.create) for a in grants if isinstance(a.create, Formula)),
            read=merge_scopes([(a.role, a.read) for a in grants]),
            update=merge_scopes([(a.role, a.update) for a in grants]),
            delete=merge_scopes([(a.role, a.delete) for a in grants]),
            hidden_fields=hidden,
            readonly_fields=readonly,
        )

    def hidden_fields(self, actor: Actor, entity: Entity | str) -> frozenset[str]:
        """Fields ``actor`` may not see (not selected, searched, filtered or shown)."""
        return self.access(actor, entity).hidden_fields

    def readonly_fields(self, actor: Actor, entity: Entity | str) -> frozenset[str]:
        """Fields ``actor`` may not write (hidden ones from a writing role included)."""
        return self.access(actor, entity).readonly_fields

    # -- formulas ------------------------------------------------------------------

    def _context(
        self,
        actor: Actor,
        role: str | None,
        values: Mapping[str, Any],
        tables: Mapping[str, Any] | None = None,
    ) -> EvalContext:
        return EvalContext(
            values=values,
            tables=tables or {},
            user=actor.name,
            role=role,
            now=self.clock,
            tz=self.tz,
        )

    @staticmethod
    def _true(formula: Formula, ctx: EvalContext) -> bool:
        """A scope or create formula's verdict; an error or a blank counts as false."""
        try:
            return formula.compiled.evaluate(ctx) is True
        except ExpressionError:
            return False

    # -- creating ------------------------------------------------------------------

    def can_create(
        self, actor: Actor, entity: Entity | str, values: Mapping[str, Any] | None = None
    ) -> bool:
        """May ``actor`` create a record with these (coerced) values?

        Without ``values``: may they create at all (whether to offer "New"); a
        create formula then counts as yes and is checked on the values later.
        Formulas see the entity's fields (missing ones blank), ``owner`` (the
        actor unless ``values`` names one) and blank system columns.
        """
        ent = self._entity(entity)
        acc = self.access(actor, ent)
        if acc.unrestricted or acc.create:
            return True
        if not acc.create_if:
            return False
        if values is None:
            return True
        full: dict[str, Any] = dict.fromkeys(SYSTEM_COLUMNS - {"parent_id"})
        full.update(dict.fromkeys(f for f in ent.fields if not ent.fields[f].is_table))
        full["owner"] = actor.name
        full.update(values)
        tables = {f.name: values.get(f.name) or [] for f in ent.tables()}
        return any(
            self._true(formula, self._context(actor, role, full, tables))
            for role, formula in acc.create_if
        )

    # -- one record ----------------------------------------------------------------

    def allows(self, actor: Actor, entity: Entity | str, action: Action, record: Record) -> bool:
        """May ``actor`` read / update / delete this loaded record? Agrees with read_scope."""
        acc = self.access(actor, entity)
        if acc.unrestricted:
            return True
        if self._in_scope(actor, acc.scope(action), record):
            return True
        return action == "read" and self._was_asked(actor, acc.entity, record.id)

    def _in_scope(self, actor: Actor, scope: Scope, record: Record) -> bool:
        if scope.everything:
            return True
        if scope.level == "own" and record.owner is not None and record.owner == actor.name:
            return True
        if (
            scope.level == "team"
            and record.owner is not None
            and actor.name is not None
            and record.owner in self.users.team(actor.name)
        ):
            return True
        if not scope.formulas:
            return False
        values = dict(record.values)
        for name in SYSTEM_COLUMNS - {"parent_id"}:
            values[name] = getattr(record, name, None)
        return any(
            self._true(formula, self._context(actor, role, values, record.tables))
            for role, formula in scope.formulas
        )

    def can_read(self, actor: Actor, entity: Entity | str) -> bool:
        """May ``actor`` read any record of ``entity`` at all (whether to show it in menus)?"""
        return not self.access(actor, entity).read.nothing

    def can_update(self, actor: Actor, entity: Entity | str, record: Record) -> bool:
        """``allows(actor, entity, "update", record)`` (whether to offer "Edit")."""
        return self.allows(actor, entity, "update", record)

    def can_delete(self, actor: Actor, entity: Entity | str, record: Record) -> bool:
        """``allows(actor, entity, "delete", record)`` (whether to offer "Delete")."""
        return self.allows(actor, entity, "delete", record)

    # -- lists -----------------------------------------------------------------------

    def read_scope(self, actor: Actor, et: EntityTable) -> ColumnElement[bool] | None:
        """The WHERE that keeps only records ``actor`` may read; None: every record."""
        return self.scope_clause(actor, et, "read")

    def scope_clause(
        self, actor: Actor, et: EntityTable, action: Action
    ) -> ColumnElement[bool] | None:
        """The WHERE of any action's scope (read_scope is the one lists use)."""
        acc = self.access(actor, et.entity)
        if acc.unrestricted:
            return None
        scope = acc.scope(action)
        if scope.everything:
            return None
        clauses = self._scope_clauses(actor, et, action, scope)
        if action == "read":
            asked = self._asked_clause(actor, et)
            if asked is not None:
                clauses.append(asked)
        if not clauses:
            return sa.false()
        return clauses[0] if len(clauses) == 1 else sa.or_(*clauses)

    def _scope_clauses(
        self, actor: Actor, et: EntityTable, action: Action, scope: Scope
    ) -> list[ColumnElement[bool]]:
        owner = et.table.c.owner
        clauses: list[ColumnElement[bool]] = []
        if scope.level == "own" and actor.name is not None:
            clauses.append(owner == actor.name)
        elif scope.level == "team" and actor.name is not None:
            team = sorted(self.users.team(actor.name))
            clauses.append(owner == team[0] if len(team) == 1 else owner.in_(team))
        if scope.formulas:
            columns: dict[str, Any] = {
                name: et.table.c[name] for name in SYSTEM_COLUMNS if name in et.table.c
            }
            columns.update(et.columns)
            for role, formula in scope.formulas:
                ctx = self._context(actor, role, {})
                try:
                    clauses.append(to_sql(formula.compiled, columns, ctx=ctx, condition=True))
                except ExpressionError as exc:
                    raise _untranslatable(et.entity.name, role, action, exc) from exc
        return clauses

    # -- approvers (rule 8) ------------------------------------------------------------

    def _asked_records(self, actor: Actor, entity: str) -> sa.Select[Any]:
        """The ids of ``entity``'s records on which ``actor`` has a flow task."""
        tables = self.users.schema.metadata.tables
        runs, tasks = tables[FLOW_RUNS_TABLE], tables[FLOW_TASKS_TABLE]
        return (
            sa.select(runs.c.record_id)
            .join(tasks, tasks.c.run_id == runs.c.id)
            .where(tasks.c.approver == actor.name, runs.c.entity == entity)
        )

    def _was_asked(self, actor: Actor, entity: str, record_id: int) -> bool:
        """Whether ``actor`` has (or had) a task on this record (one indexed query)."""
        if entity not in self._flow_entities or actor.name is None:
            return False
        stmt = self._asked_records(actor, entity).where(
            self.users.schema.metadata.tables[FLOW_RUNS_TABLE].c.record_id == record_id
        )
        with self.users.engine.connect() as conn:
            return conn.execute(stmt.limit(1)).first() is not None

    def _asked_clause(self, actor: Actor, et: EntityTable) -> ColumnElement[bool] | None:
        """``id IN (records actor was asked about)``; None when there are none.

        The subquery only joins the WHERE when the user has a task on the entity at
        all (one indexed query), so a user never asked keeps their plain scope.
        """
        entity = et.entity.name
        if entity not in self._flow_entities or actor.name is None:
            return None
        asked = self._asked_records(actor, entity)
        with self.users.engine.connect() as conn:
            if conn.execute(asked.limit(1)).first() is None:
                return None
        return et.table.c.id.in_(asked)

    # -- owners ----------------------------------------------------------------------

    def owner_policy(self, actor: Actor, entity: Entity, via: str) -> bool:
        """May ``actor`` set or change a record's owner at all? (RecordService's hook.)"""
        if _is_admin(actor) or via in TRUSTED_VIA:
            return True
        return self.access(actor, entity).update.level in ("team", "all")

    def may_assign_to(self, actor: Actor, entity: Entity | str, new_owner: str | None) -> bool:
        """May ``actor`` make ``new_owner`` (None: nobody) the owner of a record?"""
        if actor.is_system:
            return True
        level = "all" if ADMIN_ROLE in actor.roles else self.access(actor, entity).update.level
        if new_owner is None:
            return level == "all"
        target = self.users.find(new_owner)
        if target is None or not target.active:
            return False
        if level == "all":
            return True
        if level == "team" and actor.name is not None:
            return new_owner in self.users.team(actor.name)
        return new_owner == actor.name

    def assignees(self, actor: Actor, entity: Entity | str) -> list[User]:
        """The active users ``actor`` may make the owner of a record, by name.

        Exactly the active users for whom :meth:`may_assign_to` is true (whether
        nobody is allowed too is ``may_assign_to(actor, entity, None)``), in two small
        queries whatever the number of users: what owner and user pickers offer.
        """
        active = self.users.list(active_only=True)
        if actor.is_system:
            return active
        level = "all" if ADMIN_ROLE in actor.roles else self.access(actor, entity).update.level
        if level == "all":
            return active
        if level == "team" and actor.name is not None:
            team = self.users.team(actor.name)
            return [u for u in active if u.name in team]
        return [u for u in active if u.name == actor.name]


def _untranslatable(entity: str, role: str, action: str, exc: ExpressionError) -> ExpressionError:
    reason = exc.text
    return ExpressionError(
        Text(
            zh=f"实体 {entity} 中角色 {role} 的 {action} 范围公式无法在数据库中计算："
            f"{reason.get('zh')}",
            en=f"the {action} scope formula of role '{role}' on entity '{entity}' "
            f"cannot be computed in the database: {reason.get('en')}",
        ),
        source=exc.source,
        offset=exc.offset,
        hint=T(
            "请改写为能在数据库中计算的公式（比较、AND/OR、IN、ISBLANK……）",
            "rewrite it with what the database can compute (comparisons, AND/OR, IN, ISBLANK ...)",
        ),
    )
