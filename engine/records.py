"""The record service: the one door every write goes through.

Forms, the JSON API, imports, flow actions and automations all call
:class:`RecordService`, so they enforce exactly the same rules: type coercion,
required / required_if, unique, min/max, lengths, patterns, options, ref
existence, cross-field rules, defaults, computed fields and autonumbers;
optimistic locking; an append-only audit row for every change.

Input rules (documented for API clients):

* unknown keys are refused with a field error;
* ``id``, ``created_at``, ``created_by``, ``updated_at``, ``updated_by`` are
  ignored (they are the database's), so a client may send back what it read;
* ``version`` in the data is the expected version of an update;
* computed (``formula``) and ``autonumber`` fields are ignored: they are always
  computed by the engine;
* ``owner`` may be set only by actors the owner policy allows (the system,
  imports and automations, admins), otherwise it is refused;
* a flow's status field may only be changed by the flow (``via="flow"``);
* a ``file`` field (or child-table column) takes a *new* key only from the user
  who uploaded it, for that entity and field (``ff_uploads``, see
  :mod:`engine.uploads`); an unchanged key is no change. Only the engine itself
  (``SYSTEM``) may set any key;
* while a record is pending in a flow with ``lock_while_pending``, updates and
  deletes are refused (:class:`engine.errors.RecordLocked`) except from the
  vias in :data:`LOCK_EXEMPT_VIAS`;
* ``via="flow"`` writes come from :class:`engine.flows.FlowService`, which has
  already authorised the actor for the flow action (the approver of the task,
  the submitter): the record service does not check their record permissions
  or field locks again, and validates everything else as usual.

Events: with an :class:`engine.events.EventBus`, :meth:`RecordService.create`,
:meth:`~RecordService.update` and :meth:`~RecordService.delete` emit
``created`` / ``updated`` / ``deleted`` after the write, inside its
transaction (``create_many`` emits none; see :mod:`engine.events`). Each of the
three takes ``conn`` to take part in a caller's transaction (a flow action, an
automation run by a listener) and ``depth``, passed on in the event.
"""

from __future__ import annotations

import functools
import gc
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Protocol, TypeVar, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from engine.batch import Batch, Columns, batch_of
from engine.errors import (
    Conflict,
    ExpressionError,
    NotFound,
    PermissionDenied,
    RecordInvalid,
    RecordLocked,
)
from engine.events import Event, EventBus
from engine.expressions import EvalContext
from engine.fields import FieldKind, FieldValueError, kind_of
from engine.fields import autonumber as autonumber_kind
from engine.fields.dates import using_timezone
from engine.i18n import T, Text
from engine.model import Blueprint, Entity, Field
from engine.storage.database import is_sqlite, writer
from engine.storage.query import DEFAULT_COUNT_CAP, Page, Query, run_query
from engine.storage.schema import (
    FLOW_RUNS_TABLE,
    ChildTable,
    EntityTable,
    Schema,
    normalise_unique,
)

#: Keys a client may send back that the engine owns; silently ignored.
IGNORED_KEYS = frozenset({"id", "created_at", "created_by", "updated_at", "updated_by"})
VIA = ("form", "api", "import", "flow", "automation", "system")
#: Writes that may change a record while its flow locks it (``lock_while_pending``):
#: the flow itself, the engine, and the blueprint's own automations (an automation
#: on "submitted" that stamps a field is part of the process, not an edit).
LOCK_EXEMPT_VIAS = frozenset({"flow", "system", "automation"})
RECORD_ERROR = "_record"
_A_DATE = date(987, 6, 5)
_A_DATE_TEXT = "0987-06-05"
#: Types whose falsy values are never blank (0 is a value, not an empty field).
_NUMBERS = (int, Decimal, float, bool)
#: Records :meth:`RecordService.create_many` prepares at a time (a big batch in slices).
PREPARE_SLICE = 4096
#: Records per "import" audit row of a batch (keeps one record's history read small).
IMPORT_AUDIT_CHUNK = 1000

MSG_REQUIRED = T("必填", "is required")
MSG_UNKNOWN = T("没有这个字段", "unknown field")
MSG_UNIQUE = T("已存在相同的值：{value}", "already exists: {value}")
MSG_REF_MISSING = T(
    "引用的{entity}记录 #{id} 不存在", "the referenced {entity} #{id} does not exist"
)
MSG_OWNER = T("无权指定负责人", "you may not set the owner")
MSG_STATUS = T("状态只能由审批流程修改", "the status is changed by the approval flow only")
MSG_FLOW_LOCKED = T(
    "记录正在审批（{flow}，{who} 于 {at} 提交），审批结束或撤回前不能修改",
    "the record is pending approval ({flow}, submitted by {who} at {at}) and cannot be "
    "changed until the flow ends or is recalled",
)
MSG_LOCKED = T("你无权修改此字段", "you may not change this field")
MSG_READONLY = T("此字段当前为只读", "this field is read-only now")
MSG_ROW_FORGED = T("第 {n} 行不属于此记录", "row {n} does not belong to this record")
MSG_MIN_ROWS = T("至少需要 {n} 行", "needs at least {n} rows")
MSG_MAX_ROWS = T("最多 {n} 行", "allows at most {n} rows")
MSG_NOT_LIST = T("应为行的列表", "expected a list of rows")
MSG_FILE_FORGED = T(
    "没有你为此字段上传的这个文件", "no file you uploaded for this field has this key"
)
MSG_REFERENCED = T(
    "仍被 {count} 条{entity}记录引用，不能删除",
    "is still referenced by {count} {entity} record(s) and cannot be deleted",
)


@dataclass(frozen=True)
class Actor:
    """Who is acting. ``name=None`` is the engine itself (migrations, demo seeding)."""

    name: str | None
    roles: frozenset[str] = frozenset()

    @property
    def is_system(self) -> bool:
        return self.name is None

    @property
    def role(self) -> str | None:
        return sorted(self.roles)[0] if self.roles else None


SYSTEM = Actor(name=None, roles=frozenset({"system"}))


def default_owner_policy(actor: Actor, entity: Entity, via: str) -> bool:
    """May ``actor`` set the owner of a record? The permission layer may replace this."""
    return actor.is_system or via in ("import", "automation", "system") or "admin" in actor.roles


@dataclass
class Record:
    """A stored record: field values, child rows and the system columns."""

    entity: str
    id: int
    values: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    version: int = 1
    owner: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    warnings: list[Text] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.tables:
            return self.tables[name]
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except AttributeError:
            return default


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user: str | None
    action: str
    via: str
    version: int
    changes: dict[str, Any]


class _Errors:
    def __init__(self) -> None:
        self.by_field: dict[str, list[Text]] = defaultdict(list)

    def add(self, name: str, message: Text) -> None:
        if message not in self.by_field[name]:
            self.by_field[name].append(message)

    def required(self, name: str) -> None:
        """``name`` is blank but required: say so, unless it already has an error (a
        value that could not be read is left blank, and "is required" would mislead)."""
        if not self.by_field.get(name):
            self.add(name, MSG_REQUIRED)

    def __bool__(self) -> bool:
        return any(self.by_field.values())

    def raise_if_any(self) -> None:
        if self:
            raise RecordInvalid(self.by_field)


def _computed_order(fields: Mapping[str, Field]) -> list[Field]:
    """Computed fields in dependency order (the loader already refused cycles)."""
    computed = {n: f for n, f in fields.items() if f.formula is not None}
    order: list[Field] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        f = computed[name]
        assert f.formula is not None
        for dep in f.formula.compiled.names:
            if dep in computed:
                visit(dep)
        order.append(f)

    for name in computed:
        visit(name)
    return order


def _upsert_increment(engine: Engine, seq: sa.Table, key: str, amount: int = 1) -> Any:
    """``INSERT ... ON CONFLICT DO UPDATE SET value = value + 1 RETURNING value``.

    The row lock this takes serialises concurrent allocations on PostgreSQL; on
    SQLite the write transaction already does. Numbers therefore never repeat.
    """
    if is_sqlite(engine):
        from sqlalchemy.dialects import sqlite

        lite = sqlite.insert(seq).values(key=key, value=amount)
        return lite.on_conflict_do_update(
            index_elements=[seq.c.key], set_={"value": seq.c.value + amount}
        ).returning(seq.c.value)
    from sqlalchemy.dialects import postgresql

    pg = postgresql.insert(seq).values(key=key, value=amount)
    return pg.on_conflict_do_update(
        index_elements=[seq.c.key], set_={"value": seq.c.value + amount}
    ).returning(seq.c.value)


def _per_language(template: Text, **params: Any) -> Text:
    """Fill ``template``; a Text parameter contributes its own language to each side."""

    def side(lang: str) -> str:
        values = {k: v.get(lang) if isinstance(v, Text) else v for k, v in params.items()}
        return template.get(lang).format(**values)

    return Text(zh=side("zh"), en=side("en"))


def _create_changes(
    values: Mapping[str, Any], owner: str | None, tables: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """The ``changes`` of a record's "create" audit entry."""
    changes: dict[str, Any] = {}
    for k, v in values.items():
        if v is not None:
            # What the engine's JSON serializer writes for these (str / ISO):
            # converted here in bulk, the stored JSON is the same text.
            t = type(v)
            if t is Decimal:
                v = str(v)
            elif t is date:
                v = v.isoformat()
            changes[k] = [None, v]
    if owner is not None:
        changes["owner"] = [None, owner]
    for tname, trows in tables.items():
        if trows:
            changes[tname] = {"added": len(trows), "changed": 0, "removed": 0}
    return changes


def _child_item(child: ChildTable, m: Mapping[Any, Any]) -> dict[str, Any]:
    """One stored child row as ``{"id": ..., field: canonical value ...}``."""
    item: dict[str, Any] = {"id": m["id"]}
    for cname, col in child.columns.items():
        cf = child.field.fields[cname]
        item[cname] = kind_of(cf).from_storage(cf, m[col])
    return item


def _id_ranges(ids: Sequence[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` -> ``[[1, 3], [7, 7]]``."""
    ranges: list[list[int]] = []
    for rid in ids:
        if ranges and ranges[-1][1] == rid - 1:
            ranges[-1][1] = rid
        else:
            ranges.append([rid, rid])
    return ranges


_A_DECIMAL = Decimal("-1234567.89")


def _reuses_text(column: sa.Column[Any], proc: Callable[[Any], Any], kind: type) -> bool:
    """Whether SQLite's bind processor of ``column`` gives ``float(str(d))`` for a
    Decimal ``d`` (``kind`` Decimal) or ``d.isoformat()`` for a date: then the text
    of a column's values, made for the audit, is converted instead of the values."""
    if kind is Decimal:
        return isinstance(column.type, sa.Numeric) and proc(_A_DECIMAL) == float(str(_A_DECIMAL))
    return isinstance(column.type, sa.Date) and proc(_A_DATE) == _A_DATE_TEXT


def _json_plain(value: Any) -> Any:
    """A value as the engine's JSON serializer writes a Decimal or a date (else as is)."""
    t = type(value)
    if t is Decimal:
        return str(value)
    if t is date:
        return value.isoformat()
    return value


def _synthesised_create(changes: Mapping[str, Any], record_id: int) -> dict[str, Any] | None:
    """The "create" ``changes`` of ``record_id`` from an "import" audit row, or None."""
    index = 0
    for first, last in changes.get("ids", []):
        if first <= record_id <= last:
            index += record_id - first
            break
        index += last - first + 1
    else:
        return None
    out: dict[str, Any] = {
        name: [None, column[index]]
        for name, column in changes.get("values", {}).items()
        if column[index] is not None
    }
    owners = changes.get("owner")
    if owners and owners[index] is not None:
        out["owner"] = [None, owners[index]]
    for tname, counts in (changes.get("tables") or {}).items():
        if counts[index]:
            out[tname] = {"added": counts[index], "changed": 0, "removed": 0}
    return out


def _compute_error(exc: ExpressionError) -> Text:
    return Text(zh=f"无法计算：{exc.message('zh')}", en=f"cannot be computed: {exc.message('en')}")


@dataclass(slots=True)
class _FieldPlan:
    """One top-level field, with everything the per-row loops need pre-resolved."""

    name: str
    field: Field
    kind: Any
    coerce: Callable[[Field, Any], Any]
    validate: Callable[[Field, Any], list[Text]]
    #: ``kind.check_value`` (what ``validate`` runs on a value that is not None), or
    #: None when the kind has no value checks at all (the base hook returns []).
    check: Callable[[Field, Any], list[Text]] | None
    #: No visible_if / required_if / readonly_if: required is just ``required``.
    plain_checks: bool
    #: Blank is an error (``required`` and not an autonumber), for ``plain_checks``.
    required: bool
    is_table: bool
    skip_input: bool  # computed or autonumber: input ignored
    has_default: bool
    storage_decimal: bool
    places: int


@dataclass(slots=True)
class _EntityPlan:
    """Per-entity plan built once: the record loops do no registry look-ups."""

    inputs: dict[str, _FieldPlan]
    plain: list[_FieldPlan]  # not table / autonumber / computed (get None or a default)
    defaults: list[_FieldPlan]  # of ``plain``, those with a default or default formula
    tables: list[_FieldPlan]
    computed: list[_FieldPlan]  # in dependency order
    checks: list[_FieldPlan]  # every field, in blueprint order
    rules: dict[str, list[Any]]  # action (create / update) -> rules that run on it
    # storage: (value key, column name, to_storage or None)
    storage: list[tuple[str, str, Callable[[Field, Any], Any] | None, Field]]
    unique_keys: list[tuple[str, str]]
    plain_names: list[str]  # names of ``plain``
    # per input key: (mode, coerce, field); mode 0 = a value, 1 = ignored, 2 = a table
    input_modes: dict[str, tuple[int, Callable[[Field, Any], Any], Field]]
    # per computed field, in order: (name, compiled formula, coerce, field, quantum)
    # (quantum: the Decimal a computed amount is rounded to, None if not decimal)
    computed_steps: list[tuple[str, Any, Callable[[Field, Any], Any], Field, Decimal | None]]
    # per field, in blueprint order: (plain_checks, name, field, required, check, plan)
    validators: list[
        tuple[bool, str, Field, bool, Callable[[Field, Any], list[Text]] | None, _FieldPlan]
    ]
    #: Input keys a batch prepares column by column: plain values, ignored (computed,
    #: autonumber, system) keys. Anything else (owner, child tables, unknown keys)
    #: sends its row through :meth:`RecordService._prepare`.
    batch_keys: frozenset[str]


_F = TypeVar("_F", bound=Callable[..., Any])


def _in_business_timezone(method: _F) -> _F:
    """Read naive dates and times in the blueprint's time zone while ``method`` runs."""

    @functools.wraps(method)
    def wrapper(self: RecordService, *args: Any, **kwargs: Any) -> Any:
        with using_timezone(self.tz):
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


class _IdempotentReplay(Exception):
    """Another request with the same idempotency key may have committed first."""

    def __init__(self, failure: RecordInvalid | None = None) -> None:
        super().__init__()
        self.failure = failure  # what to raise if it was not the same request after all


class AccessPolicy(Protocol):
    """What the record service asks the permission layer (``engine.permissions``).

    Declared here so the record service needs no import of the layer that builds
    on it; :class:`engine.permissions.Permissions` implements it.
    """

    def allows(
        self, actor: Actor, entity: str, action: Literal["read", "update", "delete"], record: Record
    ) -> bool: ...

    def can_create(
        self, actor: Actor, entity: str, values: Mapping[str, Any] | None = None
    ) -> bool: ...

    def read_scope(self, actor: Actor, et: EntityTable) -> ColumnElement[bool] | None: ...

    def hidden_fields(self, actor: Actor, entity: str) -> frozenset[str]: ...

    def readonly_fields(self, actor: Actor, entity: str) -> frozenset[str]: ...

    def owner_policy(self, actor: Actor, entity: Entity, via: str) -> bool: ...

    def may_assign_to(self, actor: Actor, entity: str, new_owner: str | None) -> bool: ...


#: A list count that reached its cap ("10,000+") or is the planner's estimate is
#: reused this long (seconds) for the same entity, filters, search and reader.
BIG_COUNT_SECONDS = 10.0
BIG_COUNT_ENTRIES = 256

#: The connection of the innermost :meth:`RecordService.reading` block, by engine.
_READING: ContextVar[tuple[Engine, Connection] | None] = ContextVar("_READING", default=None)


class RecordService:
    """Create, update, delete and read records of a blueprint's entities.

    With an ``access`` policy every call is checked for its ``actor``: a record the
    actor may not read is :class:`NotFound` (its existence is not confirmed); one
    they may read but not change is :class:`PermissionDenied`; lists only hold
    readable rows; hidden fields are left out of what is returned; writing a
    hidden or read-only field is a field error. Without a policy (engine-internal
    use, tests of the rules themselves) nothing is restricted.
    """

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        owner_policy: Callable[[Actor, Entity, str], bool] | None = None,
        access: AccessPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        events: EventBus | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.events = events
        self.schema = schema
        self.engine = engine
        self.write_engine = writer(engine)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tz: tzinfo = ZoneInfo(blueprint.timezone)
        self.access = access
        self.owner_policy = owner_policy or (
            access.owner_policy if access is not None else default_owner_policy
        )
        self._order = {name: _computed_order(e.fields) for name, e in blueprint.entities.items()}
        self._child_order = {
            (name, t.name): _computed_order(t.fields)
            for name, e in blueprint.entities.items()
            for t in e.tables()
        }
        self._ids_in: dict[str, sa.Select[Any]] = {}  # ref checks, built once per target
        self._readonly = {
            name: frozenset(n for n, f in e.fields.items() if f.readonly)
            for name, e in blueprint.entities.items()
        }
        # Per entity: top-level file fields and (table, column) file columns.
        self._file_fields = {
            name: (
                tuple(n for n, f in e.fields.items() if f.kind == "file"),
                tuple(
                    (t.name, c)
                    for t in e.tables()
                    for c, cf in t.fields.items()
                    if cf.kind == "file"
                ),
            )
            for name, e in blueprint.entities.items()
        }

        self._status_fields: dict[str, set[str]] = defaultdict(set)
        #: entity -> flows that lock its records while pending
        self._locking_flows: dict[str, list[str]] = defaultdict(list)
        for flow in blueprint.flows.values():
            self._status_fields[flow.entity].add(flow.status_field)
            if flow.lock_while_pending:
                self._locking_flows[flow.entity].append(flow.name)
        self._plans: dict[str, _EntityPlan] = {}
        self._monotonic = monotonic
        # (entity, filters, search, hidden, actor, cap) -> (when, count, capped, estimated)
        self._big_counts: dict[tuple[Any, ...], tuple[float, int, bool, bool]] = {}
        self._audit_insert = schema.audit.insert()
        # Statements of the reads every page makes, built once (per entity where needed).
        self._by_id: dict[str, sa.Select[Any]] = {}
        self._titles_in: dict[str, sa.Select[Any]] = {}
        audit = schema.audit
        self._history_stmt = (
            sa.select(audit)
            .where(
                audit.c.entity == sa.bindparam("entity"),
                audit.c.record_id == sa.bindparam("record_id"),
                audit.c.action != "import",
            )
            .order_by(audit.c.id)
        )
        self._imports_stmt = (
            sa.select(audit)
            .where(
                audit.c.entity == sa.bindparam("entity"),
                audit.c.action == "import",
                audit.c.record_id <= sa.bindparam("record_id"),
                audit.c.at == sa.bindparam("at"),
            )
            .order_by(audit.c.record_id.desc(), audit.c.id.desc())
        )

    # -- reading -------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Run the reads inside the block on one connection and one read transaction.

        A page that shows a record, the titles it refers to and its history reads
        them on one pooled connection instead of one each (on SQLite also from one
        snapshot; PostgreSQL's default READ COMMITTED sees each statement's latest).
        Only reads (:meth:`get`, :meth:`list_records`, :meth:`title_values`,
        :meth:`history`) use it; writes always take their own write transaction, so
        do not read back a write made inside the block. Blocks nest.
        """
        current = _READING.get()
        if current is not None and current[0] is self.engine:
            yield
            return
        with self.engine.connect() as conn:
            token = _READING.set((self.engine, conn))
            try:
                yield
            finally:
                _READING.reset(token)

    @contextmanager
    def _reader(self) -> Iterator[Connection]:
        """The connection of the current :meth:`reading` block, else a new one."""
        current = _READING.get()
        if current is not None and current[0] is self.engine:
            yield current[1]
            return
        with self.engine.connect() as conn:
            yield conn

    def _et(self, entity: str) -> EntityTable:
        try:
            return self.schema.entity(entity)
        except KeyError:
            raise NotFound(T(f"没有实体 {entity}", f"no entity {entity!r}")) from None

    def _row_to_record(self, conn: Connection, et: EntityTable, row: Any) -> Record:
        values: dict[str, Any] = {}
        m = row._mapping
        for name, col in et.columns.items():
            f = et.entity.fields[name]
            values[name] = kind_of(f).from_storage(f, m[col])
        tables: dict[str, list[dict[str, Any]]] = {}
        for tname, child in et.children.items():
            rows = conn.execute(
                sa.select(child.table)
                .where(child.table.c.parent_id == m["id"])
                .order_by(child.table.c.position, child.table.c.id)
            ).all()
            tables[tname] = [_child_item(child, r._mapping) for r in rows]
        return Record(
            entity=et.entity.name,
            id=m["id"],
            values=values,
            tables=tables,
            version=m["version"],
            owner=m["owner"],
            created_at=m["created_at"],
            created_by=m["created_by"],
            updated_at=m["updated_at"],
            updated_by=m["updated_by"],
        )

    def _load(
        self, conn: Connection, et: EntityTable, record_id: Any, *, for_update: bool = False
    ) -> Record:
        try:
            rid = int(record_id)
        except (TypeError, ValueError):
            raise NotFound() from None
        if not 0 < rid < 2**63:  # no such id; PostgreSQL would refuse it as out of range
            raise NotFound()
        stmt = self._by_id.get(et.entity.name)
        if stmt is None:
            stmt = self._by_id[et.entity.name] = sa.select(et.table).where(
                et.table.c.id == sa.bindparam("id")
            )
        if for_update and not is_sqlite(self.engine):
            stmt = stmt.with_for_update()
        row = conn.execute(stmt, {"id": rid}).first()
        if row is None:
            raise NotFound()
        return self._row_to_record(conn, et, row)

    def _checked(
        self, record: Record, actor: Actor, action: Literal["read", "update", "delete"]
    ) -> Record:
        """``record`` if ``actor`` may ``action`` it: NotFound when unreadable, else 403."""
        policy = self.access
        if policy is None:
            return record
        if not policy.allows(actor, record.entity, "read", record):
            raise NotFound()
        if action != "read" and not policy.allows(actor, record.entity, action, record):
            raise PermissionDenied()
        return record

    def _shown(self, record: Record, actor: Actor) -> Record:
        """The record without the fields hidden from ``actor``."""
        if self.access is None:
            return record
        hidden = self.access.hidden_fields(actor, record.entity)
        if not hidden:
            return record
        return replace(
            record,
            values={k: v for k, v in record.values.items() if k not in hidden},
            tables={k: v for k, v in record.tables.items() if k not in hidden},
        )

    def _locked_fields(self, actor: Actor, entity: str, via: str) -> frozenset[str]:
        """Fields ``actor`` may not write: ``readonly: true`` ones from forms and the API
        (flows, automations, imports and the engine set them), plus those their roles
        hide or make read-only."""
        locked = self._readonly[entity] if via in ("form", "api") else frozenset()
        if self.access is None or actor.is_system or via == "flow":
            return locked
        return (
            locked
            | self.access.hidden_fields(actor, entity)
            | self.access.readonly_fields(actor, entity)
        )

    def _may_create(
        self, actor: Actor, entity: str, values: Mapping[str, Any] | None = None
    ) -> None:
        if self.access is not None and not self.access.can_create(actor, entity, values):
            raise PermissionDenied()

    def load(
        self, conn: Connection, entity: str, record_id: Any, *, for_update: bool = False
    ) -> Record:
        """One whole record read in the caller's transaction, without permission checks.

        For services that authorise their actors themselves (flows, automations);
        ``for_update`` locks the row on PostgreSQL (SQLite's write transaction
        already excludes other writers). NotFound when there is no such record.
        """
        return self._load(conn, self._et(entity), record_id, for_update=for_update)

    def get(self, entity: str, record_id: Any, *, actor: Actor = SYSTEM) -> Record:
        """One record, if ``actor`` may read it (NotFound otherwise)."""
        et = self._et(entity)
        with self._reader() as conn:
            record = self._checked(self._load(conn, et, record_id), actor, "read")
        return self._shown(record, actor)

    def list_records(
        self,
        entity: str,
        query: Query | None = None,
        *,
        actor: Actor = SYSTEM,
        count_cap: int = DEFAULT_COUNT_CAP,
        with_count: bool = True,
    ) -> Page:
        """One page of an entity's records (filters, search, sort, keyset or offset paging).

        Never waits on a full COUNT(*): the count stops at ``count_cap``. A count
        that reached the cap (or PostgreSQL's estimate of a bigger table) is reused
        for :data:`BIG_COUNT_SECONDS` for the same filters, search and reader, and
        forgotten at once when this service writes; an exact count below the cap
        is always fresh.
        """
        et = self._et(entity)
        query = query or Query()
        scope = self.access.read_scope(actor, et) if self.access is not None else None
        hidden = self.access.hidden_fields(actor, entity) if self.access is not None else ()
        key: tuple[Any, ...] | None = None
        known = None
        if with_count:
            key = (entity, query.filters, query.search, frozenset(hidden), actor, count_cap)
            try:
                hit = self._big_counts.get(key)
            except TypeError:  # a filter value that cannot be a key (a list): count
                key, hit = None, None
            if hit is not None and 0 <= self._monotonic() - hit[0] < BIG_COUNT_SECONDS:
                known = hit[1:]
        with self._reader() as conn:
            page = run_query(
                conn,
                et,
                query,
                scope=scope,
                hidden=hidden,
                count_cap=count_cap,
                with_count=with_count,
                known_count=known,
            )
        if (
            key is not None
            and known is None
            and page.count is not None
            and (page.count_capped or page.count_is_estimate)
        ):
            if len(self._big_counts) >= BIG_COUNT_ENTRIES:
                self._big_counts.clear()
            self._big_counts[key] = (
                self._monotonic(),
                page.count,
                page.count_capped,
                page.count_is_estimate,
            )
        return page

    def title_values(
        self, entity: str, ids: Iterable[int], *, actor: Actor = SYSTEM
    ) -> dict[int, Any]:
        """``{id: title field value}`` for the given ids that ``actor`` may read.

        What pages need to name referenced records; one small query per 500 ids.
        The value is None when the entity has no title field or it is hidden.
        """
        et = self._et(entity)
        name = et.entity.title_field
        if name not in et.columns or (
            self.access is not None and name in self.access.hidden_fields(actor, entity)
        ):
            name = None
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return {}
        key = f"{entity}:{name or ''}"
        stmt = self._titles_in.get(key)
        if stmt is None:
            col: Any = et.columns[name] if name else sa.null()
            stmt = sa.select(et.table.c.id, col).where(
                et.table.c.id.in_(sa.bindparam("ids", expanding=True))
            )
            self._titles_in[key] = stmt
        if self.access is not None and not actor.is_system:
            scope = self.access.read_scope(actor, et)
            if scope is not None:
                stmt = stmt.where(scope)
        field_ = et.entity.fields[name] if name else None
        out: dict[int, Any] = {}
        with self._reader() as conn:
            for start in range(0, len(wanted), 500):
                for rid, value in conn.execute(stmt, {"ids": wanted[start : start + 500]}):
                    if field_ is not None and value is not None:
                        value = kind_of(field_).from_storage(field_, value)
                    out[int(rid)] = value
        return out

    def child_rows(
        self, entity: str, ids: Iterable[int], *, actor: Actor = SYSTEM
    ) -> dict[str, dict[int, list[dict[str, Any]]]]:
        """``{table field: {record id: rows}}``: the child rows of the given records.

        What exports need beside a list page (whose rows hold no child tables): only
        records ``actor`` may read, only table fields they may see; rows in their
        order, each with its ``id``. One query per table field and 500 ids.
        """
        et = self._et(entity)
        wanted = sorted({int(i) for i in ids})
        hidden: frozenset[str] = frozenset()
        scope = None
        if self.access is not None:
            hidden = self.access.hidden_fields(actor, entity)
            scope = self.access.read_scope(actor, et)
        parents = sa.select(et.table.c.id).where(
            et.table.c.id.in_(sa.bindparam("ids", expanding=True))
        )
        if scope is not None:
            parents = parents.where(scope)
        out: dict[str, dict[int, list[dict[str, Any]]]] = {}
        with self.engine.connect() as conn:
            for tname, child in et.children.items():
                if tname in hidden:
                    continue
                c = child.table.c
                stmt = (
                    sa.select(child.table)
                    .where(c.parent_id.in_(parents))
                    .order_by(c.parent_id, c.position, c.id)
                )
                groups: dict[int, list[dict[str, Any]]] = {}
                for start in range(0, len(wanted), 500):
                    for r in conn.execute(stmt, {"ids": wanted[start : start + 500]}):
                        m = r._mapping
                        groups.setdefault(int(m["parent_id"]), []).append(_child_item(child, m))
                out[tname] = groups
        return out

    def history(
        self,
        entity: str,
        record_id: Any,
        *,
        actor: Actor = SYSTEM,
        loaded: Record | None = None,
    ) -> list[AuditEntry]:
        """The audit trail of one record, oldest first.

        ``loaded``: the record as :meth:`get` just returned it, to spare reading it
        again (a detail page shows both); it is still checked for ``actor``.
        """
        et = self._et(entity)
        with self._reader() as conn:
            if loaded is not None and loaded.entity == entity and loaded.id == record_id:
                record = self._checked(loaded, actor, "read")
            else:
                record = self._checked(self._load(conn, et, record_id), actor, "read")
            rows = conn.execute(
                self._history_stmt, {"entity": entity, "record_id": record.id}
            ).all()
            entries = [
                AuditEntry(
                    id=r.id,
                    at=r.at,
                    user=r.user,
                    action=r.action,
                    via=r.via,
                    version=r.version,
                    changes=dict(r.changes),
                )
                for r in rows
            ]
            if not any(e.action == "create" for e in entries):
                created = self._imported_create(conn, et, record)
                if created is not None:
                    entries.insert(0, created)
        return entries

    def _imported_create(
        self, conn: Connection, et: EntityTable, record: Record
    ) -> AuditEntry | None:
        """A batch-imported record's "create" entry, from its batch's "import" row.

        The batch row was written at the record's ``created_at``, with a
        ``record_id`` (its first id) no greater than the record's id.
        """
        candidates = conn.execute(
            self._imports_stmt,
            {"entity": et.entity.name, "record_id": record.id, "at": record.created_at},
        )
        for r in candidates:
            changes = _synthesised_create(r.changes, record.id)
            if changes is not None:
                return AuditEntry(
                    id=r.id,
                    at=r.at,
                    user=r.user,
                    action="create",
                    via=r.via,
                    version=1,
                    changes=changes,
                )
        return None

    # -- preparing values ------------------------------------------------------

    def _context(
        self,
        values: Mapping[str, Any],
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        actor: Actor,
        prior: Mapping[str, Any] | None,
        warnings: list[Text],
    ) -> EvalContext:
        return EvalContext(
            values=values,
            tables=tables,
            prior=prior,
            user=actor.name,
            role=actor.role,
            now=self.clock,
            tz=self.tz,
            warnings=warnings,
        )

    def _coerce(self, f: Field, raw: Any, key: str, errors: _Errors) -> Any:
        try:
            return kind_of(f).coerce(f, raw)
        except FieldValueError as exc:
            errors.add(key, exc.text)
            return None

    def _coerce_rows(
        self,
        entity: Entity,
        table: Field,
        raw: Any,
        existing: list[dict[str, Any]] | None,
        errors: _Errors,
    ) -> list[dict[str, Any]]:
        if not isinstance(raw, list | tuple):
            errors.add(table.name, MSG_NOT_LIST)
            return list(existing or [])
        existing_ids = {r["id"] for r in existing or []}
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(raw):
            key = f"{table.name}[{i}]"
            if not isinstance(item, Mapping):
                errors.add(key, MSG_NOT_LIST)
                continue
            row: dict[str, Any] = {}
            rid = item.get("id")
            if rid not in (None, ""):
                try:
                    rid_int = int(rid)
                except (TypeError, ValueError):
                    rid_int = -1
                if rid_int not in existing_ids:
                    errors.add(key, MSG_ROW_FORGED.format(n=i + 1))
                    continue
                row["id"] = rid_int
            for name, value in item.items():
                if name in ("id", "parent_id", "position"):
                    continue
                cf = table.fields.get(name)
                if cf is None:
                    errors.add(f"{key}.{name}", MSG_UNKNOWN)
                    continue
                if cf.formula is not None or cf.kind == "autonumber":
                    continue
                row[name] = self._coerce(cf, value, f"{key}.{name}", errors)
            for name, cf in table.fields.items():
                if name not in row and cf.formula is None:
                    row[name] = self._default(cf, row, {}, SYSTEM, [], errors, f"{key}.{name}")
            rows.append(row)
        return rows

    def _default(
        self,
        f: Field,
        values: Mapping[str, Any],
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        actor: Actor,
        warnings: list[Text],
        errors: _Errors,
        key: str,
    ) -> Any:
        if f.default_formula is not None:
            try:
                raw = f.default_formula.compiled.evaluate(
                    self._context(values, tables, actor, None, warnings)
                )
            except ExpressionError as exc:
                errors.add(key, _compute_error(exc))
                return None
            return self._coerce(f, raw, key, errors)
        if f.default is not None:
            return self._coerce(f, f.default, key, errors)
        return None

    def _eval_computed(
        self,
        f: Field,
        values: Mapping[str, Any],
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        actor: Actor,
        prior: Mapping[str, Any] | None,
        warnings: list[Text],
        errors: _Errors,
        key: str,
    ) -> Any:
        assert f.formula is not None
        try:
            raw = f.formula.compiled.evaluate(self._context(values, tables, actor, prior, warnings))
        except ExpressionError as exc:
            errors.add(key, _compute_error(exc))
            return None
        if raw is None:
            return None
        kind = kind_of(f)
        if isinstance(raw, Decimal) and kind.storage_of(f) == "decimal":
            # A computed amount is rounded to the field's precision, not refused.
            places = f.precision if f.precision is not None else 2
            raw = raw.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        try:
            return kind.coerce(f, raw)
        except FieldValueError as exc:
            errors.add(key, exc.text)
            return None

    def _validate_value(
        self, f: Field, value: Any, key: str, errors: _Errors, *, required: bool
    ) -> None:
        blank = value is None or value == "" or value == []
        if blank:
            if required and f.kind != "autonumber":
                errors.required(key)
            return
        for msg in kind_of(f).validate(f, value):
            errors.add(key, msg)

    def _check_refs(
        self,
        conn: Connection,
        entity: Entity,
        values: Mapping[str, Any],
        tables: Mapping[str, list[dict[str, Any]]],
        errors: _Errors,
        actor: Actor,
    ) -> None:
        """Every ref must name a record that exists and that ``actor`` may read.

        An unreadable target gets the same message as a missing one, so refs
        cannot be used to probe which records exist.
        """
        wanted: dict[str, set[int]] = defaultdict(set)
        places: list[tuple[str, str, int]] = []
        for name, f in entity.fields.items():
            if f.kind == "ref" and f.to and values.get(name) is not None:
                wanted[f.to].add(values[name])
                places.append((name, f.to, values[name]))
            if f.kind == "table":
                for i, row in enumerate(tables.get(name, [])):
                    for cname, cf in f.fields.items():
                        if cf.kind == "ref" and cf.to and row.get(cname) is not None:
                            wanted[cf.to].add(row[cname])
                            places.append((f"{name}[{i}].{cname}", cf.to, row[cname]))
        found = {t: self._existing_ids(conn, t, ids, actor) for t, ids in wanted.items()}
        for key, target, rid in places:
            if rid not in found[target]:
                label = self.blueprint.entities[target].label
                errors.add(key, _per_language(MSG_REF_MISSING, entity=label, id=rid))

    def _new_file_keys(
        self,
        entity: str,
        values: Mapping[str, Any],
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        prior: Record | None,
    ) -> list[tuple[str, str, str]]:
        """``(error key, field path, key)`` of every file key this write brings in."""
        top, columns = self._file_fields[entity]
        out: list[tuple[str, str, str]] = []
        for name in top:
            key = values.get(name)
            if key is not None and (prior is None or prior.values.get(name) != key):
                out.append((name, name, key))
        for tname, cname in columns:
            before = (
                {r.get(cname) for r in prior.tables.get(tname, [])} if prior is not None else set()
            )
            for i, row in enumerate(tables.get(tname, [])):
                key = row.get(cname)
                if key is not None and key not in before:
                    out.append((f"{tname}[{i}].{cname}", f"{tname}.{cname}", key))
        return out

    def _uploads_of(
        self, conn: Connection, entity: str, actor: Actor, keys: Iterable[str]
    ) -> set[tuple[str, str]]:
        """``(field path, key)`` of the given keys that ``actor`` uploaded for ``entity``."""
        wanted = sorted(set(keys))
        table = self.schema.uploads
        found: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), 500):
            rows = conn.execute(
                sa.select(table.c.field, table.c.key).where(
                    table.c.key.in_(wanted[start : start + 500]),
                    table.c.entity == entity,
                    table.c.user == actor.name,
                )
            )
            found.update((r.field, r.key) for r in rows)
        return found

    def _check_uploads(
        self,
        conn: Connection,
        entity: str,
        values: Mapping[str, Any],
        tables: Mapping[str, Sequence[Mapping[str, Any]]],
        prior: Record | None,
        errors: _Errors,
        actor: Actor,
    ) -> None:
        """A new file key must be an upload ``actor`` made for this entity and field."""
        if actor.is_system:
            return
        places = self._new_file_keys(entity, values, tables, prior)
        if not places:
            return
        mine = self._uploads_of(conn, entity, actor, (k for _, _, k in places))
        for error_key, path, key in places:
            if (path, key) not in mine:
                errors.add(error_key, MSG_FILE_FORGED)

    def _check_unique(
        self,
        conn: Connection,
        et: EntityTable,
        values: Mapping[str, Any],
        own_id: int | None,
        errors: _Errors,
    ) -> None:
        for name, f in et.entity.fields.items():
            if not f.unique or values.get(name) is None:
                continue
            if name in et.unique_keys:
                col = et.unique_keys[name]
                probe: Any = normalise_unique(values[name])
            else:
                col = et.columns[name]
                probe = values[name]
            stmt = sa.select(et.table.c.id).where(col == probe)
            if own_id is not None:
                stmt = stmt.where(et.table.c.id != own_id)
            if conn.execute(stmt.limit(1)).first() is not None:
                errors.add(name, MSG_UNIQUE.format(value=values[name]))

    def _status_default(self, f: Field) -> Any:
        if f.default is None:
            return None
        try:
            return kind_of(f).coerce(f, f.default)
        except FieldValueError:
            return None

    # -- the create path, planned per entity -------------------------------------

    def _plan(self, et: EntityTable) -> _EntityPlan:
        plan = self._plans.get(et.entity.name)
        if plan is None:
            plan = self._plans[et.entity.name] = self._build_plan(et)
        return plan

    def _build_plan(self, et: EntityTable) -> _EntityPlan:
        entity = et.entity
        by_name: dict[str, _FieldPlan] = {}
        for name, f in entity.fields.items():
            kind = kind_of(f)
            by_name[name] = _FieldPlan(
                name=name,
                field=f,
                kind=kind,
                coerce=kind.coerce,
                validate=kind.validate,
                check=(
                    None
                    if getattr(kind.check_value, "__func__", None) is FieldKind.check_value
                    else kind.check_value
                ),
                plain_checks=f.visible_if is None
                and f.required_if is None
                and f.readonly_if is None,
                required=bool(f.required) and f.kind != "autonumber",
                is_table=f.kind == "table",
                skip_input=f.formula is not None or f.kind == "autonumber",
                has_default=f.default_formula is not None or f.default is not None,
                storage_decimal=kind.storage_of(f) == "decimal",
                places=f.precision if f.precision is not None else 2,
            )
        plans = list(by_name.values())
        plain = [p for p in plans if not p.is_table and not p.skip_input]
        base_to_storage = FieldKind.to_storage
        storage = []
        for name, col in et.columns.items():
            p = by_name[name]
            to_storage = p.kind.to_storage
            custom = getattr(to_storage, "__func__", None) is not base_to_storage
            storage.append((name, col.name, to_storage if custom else None, p.field))
        reserved = IGNORED_KEYS | {"version", "owner"}
        computed = [by_name[f.name] for f in self._order[entity.name]]
        return _EntityPlan(
            inputs={k: v for k, v in by_name.items() if k not in reserved},
            plain=plain,
            defaults=[p for p in plain if p.has_default],
            tables=[p for p in plans if p.is_table],
            computed=computed,
            checks=plans,
            rules={a: [r for r in entity.rules if a in r.on] for a in ("create", "update")},
            storage=storage,
            unique_keys=[(name, col.name) for name, col in et.unique_keys.items()],
            plain_names=[p.name for p in plain],
            input_modes={
                k: (2 if v.is_table else 1 if v.skip_input else 0, v.coerce, v.field)
                for k, v in by_name.items()
                if k not in reserved
            },
            computed_steps=[
                (
                    p.name,
                    cast(Any, p.field.formula).compiled,
                    p.coerce,
                    p.field,
                    Decimal(1).scaleb(-p.places) if p.storage_decimal else None,
                )
                for p in computed
            ],
            validators=[
                (p.plain_checks and not p.is_table, p.name, p.field, p.required, p.check, p)
                for p in plans
            ],
            batch_keys=frozenset(
                k for k, v in by_name.items() if k not in reserved and not v.is_table
            )
            | IGNORED_KEYS
            | {"version"},
        )

    def _prepare(
        self,
        et: EntityTable,
        plan: _EntityPlan,
        data: Mapping[str, Any],
        actor: Actor,
        via: str,
        prior: Record | None,
        errors: _Errors,
    ) -> tuple[
        dict[str, Any], dict[str, list[dict[str, Any]]], str | None, list[Text], EvalContext
    ]:
        """Coerce input, merge it with the prior record (or defaults), compute formulas.

        Returns the values, child rows, owner, warnings and the evaluation context
        the checks reuse. The one preparation path for create, update and batches.
        """
        entity = et.entity
        provided: dict[str, Any] = {}
        tables: dict[str, list[dict[str, Any]]] = (
            {k: [dict(r) for r in v] for k, v in prior.tables.items()} if prior else {}
        )
        owner = prior.owner if prior else actor.name
        status_fields = self._status_fields.get(entity.name)
        locked = self._locked_fields(actor, entity.name, via)
        inputs = plan.input_modes
        for key, raw in data.items():
            step = inputs.get(key)
            if step is None:
                if key in IGNORED_KEYS or key == "version":
                    continue
                if key == "owner":
                    if prior is not None and raw == prior.owner:
                        continue
                    new_owner = None if raw in (None, "") else str(raw)
                    if not self.owner_policy(actor, entity, via) or (
                        self.access is not None
                        and not self.access.may_assign_to(actor, entity.name, new_owner)
                    ):
                        errors.add("owner", MSG_OWNER)
                        continue
                    owner = new_owner
                    continue
                errors.add(key, MSG_UNKNOWN)
                continue
            mode, coerce, f = step
            if mode:
                if mode == 2:
                    before = prior.tables.get(key) if prior else None
                    tables[key] = self._coerce_rows(entity, f, raw, before, errors)
                continue  # 1: computed or autonumber, input ignored
            try:
                value = coerce(f, raw)
            except FieldValueError as exc:
                errors.add(key, exc.text)
                value = None
            if locked and key in locked:
                current = prior.values.get(key) if prior else None
                if value is not None and value != current:
                    errors.add(key, MSG_LOCKED)
                continue
            if status_fields and key in status_fields and via not in ("flow", "system"):
                # Only the flow moves the status; a create may name the initial one.
                current = prior.values.get(key) if prior else self._status_default(f)
                if value is not None and value != current:
                    errors.add(key, MSG_STATUS)
                    continue
            provided[key] = value
        warnings: list[Text] = []
        if prior is not None:
            values = dict(prior.values)
            values.update(provided)
        else:
            defaults = [p for p in plan.defaults if p.name not in provided]
            values = provided  # a new dict of this call's own: no copy needed
            for p in plan.tables:
                tables.setdefault(p.name, [])
            for name in plan.plain_names:
                if name not in values:
                    values[name] = None
            for p in defaults:
                values[p.name] = self._default(
                    p.field, values, tables, actor, warnings, errors, p.name
                )
        ctx = self._context(values, tables, actor, prior.values if prior else None, warnings)
        if plan.tables:
            self._compute_children(entity, tables, actor, warnings, errors)
        # Computed fields: what _eval_planned does, unrolled over the planned steps.
        for name, compiled, coerce, f, quantum in plan.computed_steps:
            try:
                raw = compiled.evaluate(ctx)
            except ExpressionError as exc:
                errors.add(name, _compute_error(exc))
                values[name] = None
                continue
            if raw is None:
                values[name] = None
                continue
            if quantum is not None and isinstance(raw, Decimal):
                # A computed amount is rounded to the field's precision, not refused.
                raw = raw.quantize(quantum, rounding=ROUND_HALF_UP)
            try:
                values[name] = coerce(f, raw)
            except FieldValueError as exc:
                errors.add(name, exc.text)
                values[name] = None
        return values, tables, owner, warnings, ctx

    def _compute_children(
        self,
        entity: Entity,
        tables: dict[str, list[dict[str, Any]]],
        actor: Actor,
        warnings: list[Text],
        errors: _Errors,
    ) -> None:
        for table in entity.tables():
            order = self._child_order[(entity.name, table.name)]
            for i, row in enumerate(tables.get(table.name, [])):
                for cf in order:
                    row[cf.name] = self._eval_computed(
                        cf, row, {}, actor, None, warnings, errors, f"{table.name}[{i}].{cf.name}"
                    )

    def _eval_planned(self, p: _FieldPlan, ctx: EvalContext, errors: _Errors) -> Any:
        """:meth:`_eval_computed` with a shared context."""
        formula = p.field.formula
        assert formula is not None
        try:
            raw = formula.compiled.evaluate(ctx)
        except ExpressionError as exc:
            errors.add(p.name, _compute_error(exc))
            return None
        if raw is None:
            return None
        if p.storage_decimal and isinstance(raw, Decimal):
            raw = raw.quantize(Decimal(1).scaleb(-p.places), rounding=ROUND_HALF_UP)
        try:
            return p.coerce(p.field, raw)
        except FieldValueError as exc:
            errors.add(p.name, exc.text)
            return None

    def _validate(
        self,
        plan: _EntityPlan,
        values: dict[str, Any],
        tables: dict[str, list[dict[str, Any]]],
        ctx: EvalContext,
        errors: _Errors,
        actor: Actor,
        prior: Record | None = None,
    ) -> None:
        """Every check on a prepared record except the database ones (refs, unique)."""
        prior_ctx = (
            self._context(prior.values, prior.tables, actor, prior.values, [])
            if prior is not None
            else None
        )
        for plain_checks, name, f, required_plain, check, p in plan.validators:
            if plain_checks:
                # The checks below, for a field without visible_if/required_if/readonly_if.
                value = values.get(name)
                if value is None or (not value and (value == "" or value == [])):
                    if required_plain:
                        errors.required(name)
                    continue
                if check is not None:
                    for msg in check(f, value):
                        errors.add(name, msg)
                continue
            if p.is_table:
                rows = tables.get(name, [])
                if f.min_rows is not None and len(rows) < f.min_rows:
                    errors.add(name, MSG_MIN_ROWS.format(n=f.min_rows))
                if f.max_rows is not None and len(rows) > f.max_rows:
                    errors.add(name, MSG_MAX_ROWS.format(n=f.max_rows))
                for i, row in enumerate(rows):
                    for cname, cf in f.fields.items():
                        self._validate_value(
                            cf, row.get(cname), f"{name}[{i}].{cname}", errors, required=cf.required
                        )
                continue
            visible = f.visible_if is None or self._planned_condition(f.visible_if, ctx)
            required = visible and (
                f.required
                or (f.required_if is not None and self._planned_condition(f.required_if, ctx))
            )
            value = values.get(name)
            if (
                prior_ctx is not None
                and f.readonly_if is not None
                and value != prior.values.get(name)  # type: ignore[union-attr]
                and self._planned_condition(f.readonly_if, prior_ctx)
            ):
                errors.add(name, MSG_READONLY)
            if value is None or (not value and (value == "" or value == [])):
                if required and f.kind != "autonumber":
                    errors.required(name)
                continue
            for msg in p.validate(f, value):
                errors.add(name, msg)
        for rule in plan.rules["update" if prior is not None else "create"]:
            if not self._planned_condition(rule.check, ctx):
                errors.add(rule.field or RECORD_ERROR, rule.message)

    @staticmethod
    def _planned_condition(formula: Any, ctx: EvalContext) -> bool:
        try:
            return bool(formula.compiled.evaluate(ctx))
        except ExpressionError:
            return False

    def _storage_row(self, plan: _EntityPlan, values: Mapping[str, Any]) -> dict[str, Any]:
        """Field values -> column values, including the unique ``__key`` columns."""
        out: dict[str, Any] = {}
        for name, col, to_storage, f in plan.storage:
            if name in values:
                v = values[name]
                out[col] = v if to_storage is None else to_storage(f, v)
        for name, col in plan.unique_keys:
            v = values.get(name)
            out[col] = None if v is None else normalise_unique(v)
        return out

    # -- writing ---------------------------------------------------------------

    def _allocate_autonumbers(
        self, conn: Connection, et: EntityTable, values: dict[str, Any], now: datetime
    ) -> None:
        seq = self.schema.sequences
        local_now = now.astimezone(self.tz)
        for name, f in et.entity.fields.items():
            if f.kind != "autonumber" or values.get(name):
                continue
            key = f"{et.entity.name}.{name}:{autonumber_kind.sequence_key(f, local_now)}"
            stmt = _upsert_increment(self.engine, seq, key)
            number = conn.execute(stmt).scalar_one()
            values[name] = autonumber_kind.render(f, number, local_now)

    def _write_children(
        self,
        conn: Connection,
        et: EntityTable,
        record_id: int,
        tables: Mapping[str, list[dict[str, Any]]],
        prior: Record | None,
    ) -> dict[str, Any]:
        """Insert/update/delete child rows; return the audit diff per table."""
        changes: dict[str, Any] = {}
        for tname, child in et.children.items():
            rows = tables.get(tname, [])
            before = {r["id"]: r for r in (prior.tables.get(tname, []) if prior else [])}
            kept: set[int] = set()
            diff: dict[str, Any] = {"added": 0, "changed": 0, "removed": 0}
            for pos, row in enumerate(rows):
                payload = {"position": pos}
                for cname, col in child.columns.items():
                    cf = child.field.fields[cname]
                    payload[col.name] = kind_of(cf).to_storage(cf, row.get(cname))
                rid = row.get("id")
                if rid is not None and rid in before:
                    kept.add(rid)
                    old = {k: v for k, v in before[rid].items() if k != "id"}
                    new = {k: v for k, v in row.items() if k != "id"}
                    if old != new or list(before).index(rid) != pos:
                        conn.execute(
                            child.table.update()
                            .where(child.table.c.id == rid, child.table.c.parent_id == record_id)
                            .values(**payload)
                        )
                        diff["changed"] += 1
                else:
                    new_id = conn.execute(
                        child.table.insert(), {"parent_id": record_id, **payload}
                    ).inserted_primary_key
                    row["id"] = new_id[0] if new_id else None
                    diff["added"] += 1
            gone = [rid for rid in before if rid not in kept]
            if gone:
                conn.execute(
                    child.table.delete().where(
                        child.table.c.parent_id == record_id, child.table.c.id.in_(gone)
                    )
                )
                diff["removed"] = len(gone)
            if prior is None or any(diff.values()):
                if prior is None and not rows:
                    continue
                changes[tname] = diff
        return changes

    def _audit(
        self,
        conn: Connection,
        *,
        entity: str,
        record_id: int,
        action: str,
        via: str,
        version: int,
        actor: Actor,
        changes: Mapping[str, Any],
        at: datetime,
    ) -> None:
        self._big_counts.clear()  # every write: the next list counts afresh
        # A prebuilt INSERT with parameters: .values(...) would build a new statement
        # (and its cache key) on every write.
        conn.execute(
            self._audit_insert,
            {
                "at": at,
                "user": actor.name,
                "entity": entity,
                "record_id": record_id,
                "action": action,
                "via": via,
                "version": version,
                "changes": dict(changes),
            },
        )

    @_in_business_timezone
    def create(
        self,
        entity: str,
        data: Mapping[str, Any],
        *,
        actor: Actor = SYSTEM,
        via: str = "api",
        idempotency_key: str | None = None,
        conn: Connection | None = None,
        depth: int = 0,
    ) -> Record:
        """Validate and store a new record; all problems come back in one RecordInvalid.

        With an ``idempotency_key``, a retry returns the first record instead of a
        second one, also when the two requests race (the loser's write is undone).
        With ``conn`` the write takes part in the caller's transaction (under a
        savepoint, so a refused write leaves that transaction usable) and commits
        with it. ``depth`` is passed on in the ``created`` event.
        """
        if conn is not None:
            try:
                with conn.begin_nested():
                    return self._create_in(
                        conn, self._et(entity), data, actor, via, idempotency_key, depth, own=False
                    )
            except _IdempotentReplay as exc:  # the key was taken within the caller's transaction
                raise exc.failure or Conflict(
                    T("幂等键已被使用", "the idempotency key is already used")
                ) from None
        try:
            return self._create(entity, data, actor, via, idempotency_key, depth)
        except (_IdempotentReplay, RecordInvalid) as exc:
            # A racing twin may have committed while this one ran (its record then
            # looks like a duplicate here): if the key is taken now, that is the answer.
            if not idempotency_key:
                raise
            et = self._et(entity)
            with self.engine.connect() as conn:
                existing = self._idempotent(conn, et, idempotency_key)
            if existing is None:
                if isinstance(exc, _IdempotentReplay) and exc.failure is not None:
                    raise exc.failure from None
                raise
            return self._shown(self._checked(existing, actor, "read"), actor)

    def _create(
        self,
        entity: str,
        data: Mapping[str, Any],
        actor: Actor,
        via: str,
        idempotency_key: str | None,
        depth: int = 0,
    ) -> Record:
        et = self._et(entity)
        self._may_create(actor, entity)
        with self.write_engine.begin() as conn:
            return self._create_in(conn, et, data, actor, via, idempotency_key, depth, own=True)

    def _create_in(
        self,
        conn: Connection,
        et: EntityTable,
        data: Mapping[str, Any],
        actor: Actor,
        via: str,
        idempotency_key: str | None,
        depth: int,
        *,
        own: bool,
    ) -> Record:
        """The create inside a transaction; ``own``: this call began it (may roll it back)."""
        entity = et.entity.name
        if not own:
            self._may_create(actor, entity)
        if idempotency_key:
            existing = self._idempotent(conn, et, idempotency_key)
            if existing is not None:
                return self._shown(self._checked(existing, actor, "read"), actor)
        errors = _Errors()
        plan = self._plan(et)
        values, tables, owner, warnings, ctx = self._prepare(
            et, plan, data, actor, via, None, errors
        )
        self._may_create(actor, entity, {**values, **tables, "owner": owner})
        self._validate(plan, values, tables, ctx, errors, actor)
        self._check_refs(conn, et.entity, values, tables, errors, actor)
        self._check_uploads(conn, entity, values, tables, None, errors, actor)
        self._check_unique(conn, et, values, None, errors)
        errors.raise_if_any()
        now = self.clock()
        self._allocate_autonumbers(conn, et, values, now)
        row = self._storage_row(plan, values)
        row.update(
            version=1,
            owner=owner,
            created_at=now,
            created_by=actor.name,
            updated_at=now,
            updated_by=actor.name,
        )
        try:
            result = conn.execute(et.table.insert(), row)
        except sa.exc.IntegrityError:
            if own:
                conn.rollback()
            failure = self._integrity_error(et, values)
            if idempotency_key:  # perhaps the same request, committed a moment ago
                raise _IdempotentReplay(failure) from None
            raise failure from None
        record_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        child_changes = self._write_children(conn, et, record_id, tables, None)
        changes = {k: [None, v] for k, v in values.items() if v is not None}
        if owner is not None:
            changes["owner"] = [None, owner]
        changes.update(child_changes)
        self._audit(
            conn,
            entity=entity,
            record_id=record_id,
            action="create",
            via=via,
            version=1,
            actor=actor,
            changes=changes,
            at=now,
        )
        if idempotency_key:
            try:
                conn.execute(
                    self.schema.idempotency.insert().values(
                        key=idempotency_key, entity=entity, record_id=record_id, created_at=now
                    )
                )
            except sa.exc.IntegrityError:
                raise _IdempotentReplay() from None  # undoes this transaction
        record = Record(
            entity=entity,
            id=record_id,
            values=values,
            tables=tables,
            version=1,
            owner=owner,
            created_at=now,
            created_by=actor.name,
            updated_at=now,
            updated_by=actor.name,
            warnings=warnings,
        )
        if self.events is not None:
            self.events.emit(
                Event(
                    kind="created",
                    entity=entity,
                    record_id=record_id,
                    actor=actor,
                    conn=conn,
                    record=record,
                    prior=None,
                    changes=changes,
                    depth=depth,
                    via=via,
                )
            )
        return self._shown(record, actor)

    def _idempotent(self, conn: Connection, et: EntityTable, key: str) -> Record | None:
        idem = self.schema.idempotency
        row = conn.execute(
            sa.select(idem.c.record_id, idem.c.entity).where(idem.c.key == key)
        ).first()
        if row is None:
            return None
        if row.entity != et.entity.name:
            raise Conflict(
                T("幂等键已用于其他实体", "the idempotency key was used for another entity")
            )
        return self._load(conn, et, row.record_id)

    def _integrity_error(self, et: EntityTable, values: Mapping[str, Any]) -> RecordInvalid:
        """A constraint the pre-checks could not see (a concurrent writer won the race)."""
        errors = _Errors()
        for name, f in et.entity.fields.items():
            if f.unique and values.get(name) is not None:
                errors.add(name, MSG_UNIQUE.format(value=values[name]))
        if not errors:
            errors.add(RECORD_ERROR, T("违反数据库约束", "violates a database constraint"))
        return RecordInvalid(errors.by_field)

    @_in_business_timezone
    def preview(
        self,
        entity: str,
        data: Mapping[str, Any],
        *,
        actor: Actor = SYSTEM,
        record_id: Any = None,
        via: str = "form",
    ) -> tuple[dict[str, Any], dict[str, list[Text]]]:
        """What a save of ``data`` would store, and every error it would raise; writes nothing.

        The form calls this as the user types, so computed fields, required_if and
        visible_if show live, by exactly the rules a save applies.
        """
        et = self._et(entity)
        plan = self._plan(et)
        errors = _Errors()
        with self.engine.connect() as conn:
            prior = None
            if record_id not in (None, ""):
                prior = self._checked(self._load(conn, et, record_id), actor, "read")
            else:
                self._may_create(actor, entity)
            values, tables, _owner, _warnings, ctx = self._prepare(
                et, plan, data, actor, via, prior, errors
            )
            self._validate(plan, values, tables, ctx, errors, actor, prior)
            self._check_refs(conn, et.entity, values, tables, errors, actor)
            self._check_uploads(conn, entity, values, tables, prior, errors, actor)
            self._check_unique(conn, et, values, prior.id if prior else None, errors)
        return {**values, **tables}, dict(errors.by_field)

    @_in_business_timezone
    def update(
        self,
        entity: str,
        record_id: Any,
        data: Mapping[str, Any],
        *,
        version: int | None = None,
        actor: Actor = SYSTEM,
        via: str = "api",
        conn: Connection | None = None,
        depth: int = 0,
    ) -> Record:
        """Apply changes to a record whose current version is ``version``.

        A stale version raises :class:`Conflict` naming who changed it and when;
        nothing is overwritten silently. A record its flow locks while pending is
        :class:`RecordLocked` unless ``via`` is in :data:`LOCK_EXEMPT_VIAS`. With
        ``conn`` the write takes part in the caller's transaction (under a
        savepoint); ``depth`` is passed on in the ``updated`` event.
        """
        et = self._et(entity)
        if version is None and data.get("version") is not None:
            version = data["version"]
        if conn is not None:
            with conn.begin_nested():
                return self._update_in(
                    conn, et, record_id, data, version, actor, via, depth, own=False
                )
        with self.write_engine.begin() as own_conn:
            return self._update_in(
                own_conn, et, record_id, data, version, actor, via, depth, own=True
            )

    def _update_in(
        self,
        conn: Connection,
        et: EntityTable,
        record_id: Any,
        data: Mapping[str, Any],
        version: Any,
        actor: Actor,
        via: str,
        depth: int,
        *,
        own: bool,
    ) -> Record:
        """The update inside a transaction; ``own``: this call began it (may roll it back)."""
        entity = et.entity.name
        prior = self._load(conn, et, record_id, for_update=True)
        if via != "flow":  # the flow service authorised its actor already
            prior = self._checked(prior, actor, "update")
        self._check_flow_lock(conn, entity, prior.id, via)
        if version is None:
            raise Conflict(
                T("更新需提供记录版本", "an update must name the record version"),
                current_version=prior.version,
            )
        try:
            expected = int(version)
        except (TypeError, ValueError):
            expected = -1
        if expected != prior.version:
            raise self._conflict(prior)
        errors = _Errors()
        plan = self._plan(et)
        values, tables, owner, warnings, ctx = self._prepare(
            et, plan, data, actor, via, prior, errors
        )
        self._validate(plan, values, tables, ctx, errors, actor, prior)
        self._check_refs(conn, et.entity, values, tables, errors, actor)
        self._check_uploads(conn, entity, values, tables, prior, errors, actor)
        self._check_unique(conn, et, values, prior.id, errors)
        errors.raise_if_any()
        changes: dict[str, Any] = {
            k: [prior.values.get(k), v] for k, v in values.items() if prior.values.get(k) != v
        }
        if owner != prior.owner:
            changes["owner"] = [prior.owner, owner]
        now = self.clock()
        child_changes = self._write_children(conn, et, prior.id, tables, prior)
        changes.update(child_changes)
        if not changes:
            return self._shown(prior, actor)
        row = self._storage_row(plan, values)
        row.update(version=prior.version + 1, owner=owner, updated_at=now, updated_by=actor.name)
        try:
            result = conn.execute(
                et.table.update()
                .where(et.table.c.id == prior.id, et.table.c.version == prior.version)
                .values(**row)
            )
        except sa.exc.IntegrityError:
            if own:
                conn.rollback()
            raise self._integrity_error(et, values) from None
        if result.rowcount != 1:
            if not own:
                raise self._conflict(self._load(conn, et, prior.id))
            conn.rollback()
            with self.engine.connect() as fresh:
                raise self._conflict(self._load(fresh, et, prior.id))
        self._audit(
            conn,
            entity=entity,
            record_id=prior.id,
            action="update",
            via=via,
            version=prior.version + 1,
            actor=actor,
            changes=changes,
            at=now,
        )
        record = self._load(conn, et, prior.id)
        if self.events is not None:
            self.events.emit(
                Event(
                    kind="updated",
                    entity=entity,
                    record_id=prior.id,
                    actor=actor,
                    conn=conn,
                    record=record,
                    prior=prior,
                    changes=changes,
                    depth=depth,
                    via=via,
                )
            )
        record.warnings = warnings
        return self._shown(record, actor)

    def _conflict(self, current: Record) -> Conflict:
        when = current.updated_at.isoformat(timespec="seconds") if current.updated_at else "?"
        who = current.updated_by or T("系统", "the system").get("en")
        return Conflict(
            T(
                f"记录已被 {current.updated_by or '系统'} 于 {when} 修改"
                f"（当前版本 {current.version}），请刷新后重试",
                f"the record was changed by {who} at {when} (now version {current.version});"
                " reload and try again",
            ),
            current_version=current.version,
            updated_by=current.updated_by,
            updated_at=when,
        )

    def delete(
        self,
        entity: str,
        record_id: Any,
        *,
        version: int | None = None,
        actor: Actor = SYSTEM,
        via: str = "api",
        conn: Connection | None = None,
        depth: int = 0,
    ) -> None:
        """Delete a record (and its child rows); refused while other records reference it.

        Refused as :class:`RecordLocked` while its flow locks it (see :meth:`update`).
        With ``conn`` it takes part in the caller's transaction (under a savepoint).
        """
        et = self._et(entity)
        if conn is not None:
            with conn.begin_nested():
                self._delete_in(conn, et, record_id, version, actor, via, depth)
            return
        with self.write_engine.begin() as own_conn:
            self._delete_in(own_conn, et, record_id, version, actor, via, depth)

    def _delete_in(
        self,
        conn: Connection,
        et: EntityTable,
        record_id: Any,
        version: int | None,
        actor: Actor,
        via: str,
        depth: int,
    ) -> None:
        entity = et.entity.name
        prior = self._checked(self._load(conn, et, record_id, for_update=True), actor, "delete")
        self._check_flow_lock(conn, entity, prior.id, via)
        if version is not None and int(version) != prior.version:
            raise self._conflict(prior)
        errors = _Errors()
        for other in self.blueprint.entities.values():
            for f in other.fields.values():
                if f.kind == "ref" and f.to == entity and f.on_delete == "restrict":
                    ot = self.schema.entity(other.name)
                    count = conn.execute(
                        sa.select(sa.func.count())
                        .select_from(ot.table)
                        .where(ot.columns[f.name] == prior.id)
                    ).scalar_one()
                    if count:
                        msg = _per_language(MSG_REFERENCED, count=count, entity=other.label)
                        errors.add(RECORD_ERROR, msg)
        errors.raise_if_any()
        now = self.clock()
        old = {k: [v, None] for k, v in prior.values.items() if v is not None}
        conn.execute(et.table.delete().where(et.table.c.id == prior.id))
        self._audit(
            conn,
            entity=entity,
            record_id=prior.id,
            action="delete",
            via=via,
            version=prior.version + 1,
            actor=actor,
            changes=old,
            at=now,
        )
        if self.events is not None:
            self.events.emit(
                Event(
                    kind="deleted",
                    entity=entity,
                    record_id=prior.id,
                    actor=actor,
                    conn=conn,
                    record=None,
                    prior=prior,
                    changes=old,
                    depth=depth,
                    via=via,
                )
            )

    def _check_flow_lock(self, conn: Connection, entity: str, record_id: int, via: str) -> None:
        """Refuse a write to a record pending in a flow that locks it (see the module doc)."""
        flows = self._locking_flows.get(entity)
        if not flows or via in LOCK_EXEMPT_VIAS:
            return
        runs = self.schema.metadata.tables[FLOW_RUNS_TABLE]
        row = conn.execute(
            sa.select(runs.c.flow, runs.c.submitted_by, runs.c.submitted_at)
            .where(
                runs.c.entity == entity,
                runs.c.record_id == record_id,
                runs.c.state == "pending",
                runs.c.flow.in_(flows),
            )
            .limit(1)
        ).first()
        if row is None:
            return
        at = row.submitted_at.isoformat(timespec="seconds") if row.submitted_at else "?"
        raise RecordLocked(
            _per_language(
                MSG_FLOW_LOCKED,
                flow=self.blueprint.flows[row.flow].label or Text.of(row.flow),
                who=row.submitted_by or "-",
                at=at,
            ),
            flow=row.flow,
            submitted_by=row.submitted_by,
            submitted_at=at,
        )

    @_in_business_timezone
    def create_many(
        self,
        entity: str,
        rows: Iterable[Mapping[str, Any]] | Columns,
        *,
        actor: Actor = SYSTEM,
        via: str = "import",
        conn: Connection | None = None,
        source: str | None = None,
    ) -> list[int]:
        """Create many records in one transaction: all are stored, or none.

        The same rules as :meth:`create`, checked in bulk: values, formulas and
        rules per row in memory; ref existence and uniqueness (within the batch
        and against the database) with one query per chunk; rows, child rows and
        audit entries written with executemany. Raises :class:`BatchInvalid` with
        every bad row's errors (by 0-based row index). ``rows`` is a sequence of
        mappings or :class:`~engine.batch.Columns` (one list per field, where
        :data:`~engine.batch.MISSING` is a key the record leaves out). Pass ``conn``
        to take part in a caller's transaction (imports stream several chunks in one).

        ``via="import"`` is audited per batch, not per record: one "import" entry
        per :data:`IMPORT_AUDIT_CHUNK` records saying who, when, how many, from
        which ``source`` (the file name) and every record's values at creation;
        :meth:`history` shows each record's "create" entry from it. Other ``via``
        values get one "create" entry per record, as :meth:`create` writes.
        """
        if conn is None:
            with self.write_engine.begin() as own:
                return self.create_many(entity, rows, actor=actor, via=via, conn=own, source=source)
        # A batch allocates many long-lived objects and no reference cycles, so the
        # cyclic collector would only rescan them over and over: pause it meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._create_many(entity, rows, actor, via, conn, source)
        finally:
            if collecting:
                gc.enable()

    def _create_many(
        self,
        entity: str,
        rows: Iterable[Mapping[str, Any]] | Columns,
        actor: Actor,
        via: str,
        conn: Connection,
        source: str | None,
    ) -> list[int]:
        et = self._et(entity)
        self._may_create(actor, entity)
        self._big_counts.clear()
        plan = self._plan(et)
        prepared, bad, columns = self._prepare_slices(et, plan, batch_of(rows), actor, via)
        for i, key, message in self._bulk_db_checks(conn, et, prepared, actor):
            bad.setdefault(i, {}).setdefault(key, []).append(message)
        if bad:
            raise BatchInvalid(bad)
        if not prepared:
            return []
        now = self.clock()
        records = [v for _, v, _, _ in prepared]
        for name in self._allocate_autonumbers_bulk(conn, et, records, now):
            columns.pop(name, None)

        def column(name: str) -> list[Any]:
            """The values of field ``name``, one per record (taken from them once)."""
            values = columns.get(name)
            if values is None:
                values = columns[name] = [v.get(name) for v in records]
            return values

        system = {
            "version": 1,
            "created_at": now,
            "created_by": actor.name,
            "updated_at": now,
            "updated_by": actor.name,
        }
        n = len(records)
        # The INSERT's parameters column by column (what _storage_row gives per record).
        payload: dict[str, list[Any]] = {}
        for name, col_name, to_storage, f in plan.storage:
            values = column(name)
            payload[col_name] = values if to_storage is None else [to_storage(f, x) for x in values]
        for name, col_name in plan.unique_keys:
            payload[col_name] = [None if x is None else normalise_unique(x) for x in column(name)]
        payload["owner"] = [o for _, _, _, o in prepared]
        # An import's audit holds each field's values as JSON text (Decimal as str, date
        # as ISO): made once, and the INSERT reuses those of whole Decimal and date
        # columns (float(str(d)) is how float(d) is computed; SQLite stores a date as ISO).
        plain, whole = self._json_columns(plan, column) if via == "import" else ({}, {})
        texts = {
            col_name: (whole[name], plain[name])
            for name, col_name, to_storage, _f in plan.storage
            if to_storage is None and name in whole
        }
        try:
            ids = self._insert_columns(conn, et.table, payload, n, constants=system, texts=texts)
        except sa.exc.IntegrityError:
            raise self._integrity_error(et, prepared[0][1]) from None
        child_rows: dict[str, list[dict[str, Any]]] = {t: [] for t in et.children}
        added: dict[str, list[int]] = {t: [] for t in et.children}
        if et.children:  # (a loop over every record only for entities with child tables)
            for rid, (_, _, tables, _) in zip(ids, prepared, strict=True):
                for tname, child in et.children.items():
                    trows = tables.get(tname, [])
                    added[tname].append(len(trows))
                    for pos, trow in enumerate(trows):
                        crow: dict[str, Any] = {"parent_id": rid, "position": pos}
                        for cname, col in child.columns.items():
                            cf = child.field.fields[cname]
                            crow[col.name] = kind_of(cf).to_storage(cf, trow.get(cname))
                        child_rows[tname].append(crow)
        for tname, crows in child_rows.items():
            if crows:
                self._insert_rows(conn, et.children[tname].table, crows, want_ids=False)
        if via == "import":
            audit_rows = self._import_audit_rows(
                et, prepared, plain, ids, added, actor, now, source
            )
        else:
            audit_rows = [
                {
                    "at": now,
                    "user": actor.name,
                    "entity": entity,
                    "record_id": rid,
                    "action": "create",
                    "via": via,
                    "version": 1,
                    "changes": _create_changes(values, owner, tables),
                }
                for rid, (_, values, tables, owner) in zip(ids, prepared, strict=True)
            ]
        self._insert_rows(conn, self.schema.audit, audit_rows, want_ids=False)
        return ids

    def _prepare_slices(
        self,
        et: EntityTable,
        plan: _EntityPlan,
        rows: Batch,
        actor: Actor,
        via: str,
    ) -> tuple[
        list[tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]], str | None]],
        dict[int, dict[str, list[Text]]],
        dict[str, list[Any]],
    ]:
        """:meth:`_prepare_many` of a big batch, a slice at a time (what it returns).

        Each record is prepared on its own data alone, so slicing changes nothing
        but the working set: columns of a few thousand values stay in the CPU caches.
        """
        if len(rows) <= PREPARE_SLICE:
            return self._prepare_many(et, plan, rows, actor, via)
        prepared: list[tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]], str | None]]
        prepared = []
        bad: dict[int, dict[str, list[Text]]] = {}
        columns: dict[str, list[Any]] = {}
        whole = True  # every slice came back with its columns
        for start in range(0, len(rows), PREPARE_SLICE):
            part, part_bad, part_columns = self._prepare_many(
                et, plan, rows.part(start, start + PREPARE_SLICE), actor, via
            )
            prepared.extend((i + start, v, t, o) for i, v, t, o in part)
            bad.update((i + start, errors) for i, errors in part_bad.items())
            if whole and part_columns:
                for name, values in part_columns.items():
                    columns.setdefault(name, []).extend(values)
            else:
                whole = False
        return prepared, bad, (columns if whole else {})

    def _prepare_many(
        self,
        et: EntityTable,
        plan: _EntityPlan,
        rows: Batch,
        actor: Actor,
        via: str,
    ) -> tuple[
        list[tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]], str | None]],
        dict[int, dict[str, list[Text]]],
        dict[str, list[Any]],
    ]:
        """:meth:`_prepare` and :meth:`_validate` of a whole batch, column by column.

        Each field is coerced and checked over its column with one call of its
        kind (``coerce_many`` / ``validate_many``); defaults, computed fields,
        conditions and rules run per record through ``Compiled.evaluate_many``
        with one context. That finds *which* records are bad; those, and records
        the column plan does not cover (an ``owner``, child rows, a locked, status
        or unknown key), then go through :meth:`_prepare` and :meth:`_validate`
        one by one, so their values and messages are exactly a single create's.
        Returns ``(index, values, tables, owner)`` per record and the errors of
        the bad ones, both in index order, and the values by field (the columns,
        when no record went one by one; else empty).
        """
        entity = et.entity
        n = len(rows)
        locked = self._locked_fields(actor, entity.name, via)
        keys = plan.batch_keys - locked
        if via not in ("flow", "system"):
            keys -= self._status_fields.get(entity.name, set())
        slow = rows.giving_other(keys)
        fast: Sequence[int] = [i for i in range(n) if i not in slow] if slow else range(n)
        frows = rows if not slow else rows.select(fast)
        m = len(frows)
        suspect: set[int] = set()  # positions in frows

        # 1. Coerce every input column; note where a key is missing (defaults go there).
        names = plan.plain_names
        columns: dict[str, list[Any]] = {}
        missing: dict[str, list[int]] = {}
        for p in plan.plain:
            name = p.name
            raw, absent = frows.column(name)
            if absent:
                missing[name] = absent
            column, errors = p.kind.coerce_many(p.field, raw)
            suspect.update(errors)
            columns[name] = column
        records: list[dict[str, Any]] = [{} for _ in range(m)]
        for name in names:  # filled column by column: cheaper than a dict(zip()) per record
            for record, value in zip(records, columns[name], strict=True):
                record[name] = value
        table_names = [p.name for p in plan.tables]
        tables_of: list[dict[str, list[dict[str, Any]]]] = (
            [{t: [] for t in table_names} for _ in range(m)]
            if table_names
            else [{} for _ in range(m)]
        )
        warnings: list[Text] = []
        # Child tables are empty for every record here (rows with any go one by one).
        ctx = self._context({}, {t: [] for t in table_names}, actor, None, warnings)

        # 2. Defaults, in the plan's order, where the key was missing.
        for p in plan.defaults:
            where = missing.get(p.name)
            if not where:
                continue
            f = p.field
            column = columns[p.name]
            if f.default_formula is not None:
                compiled = f.default_formula.compiled
                results, errs = compiled.evaluate_many(ctx, [records[j] for j in where])
                suspect.update(where[k] for k in errs)
                fitted, failed = p.kind.coerce_many(f, results)
                suspect.update(where[k] for k in failed)
                for j, v in zip(where, fitted, strict=True):
                    records[j][p.name] = column[j] = v
            elif f.default is not None:
                try:
                    value = p.coerce(f, f.default)
                except FieldValueError:
                    suspect.update(where)
                    continue
                for j in where:
                    records[j][p.name] = column[j] = value

        # 3. Computed fields in dependency order.
        steps = zip(plan.computed, plan.computed_steps, strict=True)
        for computed, (name, compiled, _coerce, f, quantum) in steps:
            results, errs = compiled.evaluate_many(ctx, records)
            suspect.update(errs)
            if quantum is not None:
                results = [
                    r.quantize(quantum, rounding=ROUND_HALF_UP) if isinstance(r, Decimal) else r
                    for r in results
                ]
            column, failed = computed.kind.coerce_many(f, results)
            suspect.update(failed)
            columns[name] = column
            for record, v in zip(records, column, strict=True):
                record[name] = v

        # 4. The checks of _validate, per field over its column.
        for plain_checks, name, f, required_plain, _check, p in plan.validators:
            if f.kind == "autonumber":
                continue  # numbered after the checks: blank here, and never required
            if p.is_table:
                if f.min_rows is not None and f.min_rows > 0:
                    suspect.update(range(m))
                continue
            column = columns.get(name)
            if column is None:
                column = [record.get(name) for record in records]
            blank = (
                []
                if all(column)  # None, "" and [] are all falsy
                else [
                    j
                    for j, v in enumerate(column)
                    if v is None or (not v and type(v) not in _NUMBERS and (v == "" or v == []))
                ]
            )
            if blank:
                if plain_checks:
                    if required_plain:
                        suspect.update(blank)
                elif f.kind != "autonumber" and (f.required or f.required_if is not None):
                    needs = self._needs_value(ctx, f, [records[j] for j in blank])
                    suspect.update(j for j, need in zip(blank, needs, strict=True) if need)
                if any(column[j] is not None for j in blank):  # "" or []: not validated
                    column = list(column)
                    for j in blank:
                        column[j] = None
            suspect.update(p.kind.validate_many(f, column))
        for rule in plan.rules["create"]:
            results, errs = rule.check.compiled.evaluate_many(ctx, records)
            suspect.update(j for j, r in enumerate(results) if not r)

        # 5. Who may create what they wrote.
        policy = None if actor.is_system else self.access
        if policy is not None:
            owner = actor.name
            for j, record in enumerate(records):
                if not policy.can_create(
                    actor, entity.name, {**record, **tables_of[j], "owner": owner}
                ):
                    suspect.add(j)

        # 6. The rows the columns did not settle, one by one as a single create.
        if slow or suspect:
            position = dict(enumerate(fast)) if slow else None
            again = slow | {position[j] if position else j for j in suspect}
        else:
            again = set()
        prepared: list[tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]], str | None]]
        if slow:
            prepared = [None] * n  # type: ignore[list-item]
            for j, i in enumerate(fast):
                prepared[i] = (i, records[j], tables_of[j], actor.name)
        else:
            prepared = [(i, records[i], tables_of[i], actor.name) for i in range(n)]
        bad: dict[int, dict[str, list[Text]]] = {}
        for i in sorted(again):
            values, tables, owner, errors = self._prepare_one(et, plan, rows.record(i), actor, via)
            if errors:
                bad[i] = errors.by_field
            prepared[i] = (i, values, tables, owner)
        return prepared, bad, ({} if again else columns)

    def _needs_value(self, ctx: EvalContext, f: Field, records: list[dict[str, Any]]) -> list[bool]:
        """Per record: whether ``f`` is required there (visible, and required or required_if)."""
        needs = [True] * len(records)
        if f.visible_if is not None:
            shown, _errs = f.visible_if.compiled.evaluate_many(ctx, records)
            needs = [bool(v) for v in shown]
        if not f.required and f.required_if is not None:
            wanted, _errs = f.required_if.compiled.evaluate_many(ctx, records)
            needs = [a and bool(b) for a, b in zip(needs, wanted, strict=True)]
        return needs

    def _prepare_one(
        self,
        et: EntityTable,
        plan: _EntityPlan,
        data: Mapping[str, Any],
        actor: Actor,
        via: str,
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], str | None, _Errors]:
        """One record of a batch as :meth:`create` prepares and checks it (no database)."""
        errors = _Errors()
        values, tables, owner, _warnings, ctx = self._prepare(
            et, plan, data, actor, via, None, errors
        )
        self._validate(plan, values, tables, ctx, errors, actor)
        policy = None if actor.is_system else self.access
        if policy is not None and not policy.can_create(
            actor, et.entity.name, {**values, **tables, "owner": owner}
        ):
            errors.add(RECORD_ERROR, PermissionDenied.default_message)
        return values, tables, owner, errors

    def _import_audit_rows(
        self,
        et: EntityTable,
        prepared: Sequence[tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]], Any]],
        plain: Mapping[str, list[Any]],
        ids: Sequence[int],
        added: Mapping[str, Sequence[int]],
        actor: Actor,
        now: datetime,
        source: str | None,
    ) -> list[dict[str, Any]]:
        """One "import" audit row per :data:`IMPORT_AUDIT_CHUNK` records of a batch.

        ``record_id`` is the first id of the chunk; ``changes`` holds ``rows`` (how
        many), ``source``, ``ids`` (as ``[first, last]`` ranges) and, column-wise
        (one list per field, one item per record, in ``ids`` order), ``values``
        (JSON form, ``None`` for blank), and when any is set ``owner`` and
        ``tables`` (child rows added per record). :func:`_synthesised_create`
        turns a record's column back into its "create" entry. ``plain``: the
        values by field, from :meth:`_json_columns`.
        """
        out: list[dict[str, Any]] = []
        for start in range(0, len(prepared), IMPORT_AUDIT_CHUNK):
            end = start + IMPORT_AUDIT_CHUNK
            part = prepared[start:end]
            part_ids = ids[start:end]
            columns = {name: values[start:end] for name, values in plain.items()}
            changes: dict[str, Any] = {
                "rows": len(part),
                "source": source,
                "ids": _id_ranges(part_ids),
                "values": columns,
            }
            owners = [o for _, _, _, o in part]
            if any(o is not None for o in owners):
                changes["owner"] = owners
            counts = {t: list(n[start : start + IMPORT_AUDIT_CHUNK]) for t, n in added.items()}
            if any(any(n) for n in counts.values()):
                changes["tables"] = counts
            out.append(
                {
                    "at": now,
                    "user": actor.name,
                    "entity": et.entity.name,
                    "record_id": part_ids[0],
                    "action": "import",
                    "via": "import",
                    "version": 1,
                    "changes": changes,
                }
            )
        return out

    @staticmethod
    def _json_columns(
        plan: _EntityPlan, column: Callable[[str], list[Any]]
    ) -> tuple[dict[str, list[Any]], dict[str, type]]:
        """Each field's values as the engine's JSON serializer writes them (Decimal as
        str, date as ISO), converted in bulk: the stored JSON is the same text.

        Also ``{field: Decimal or date}`` for the columns that held only that type.
        """
        plain: dict[str, list[Any]] = {}
        whole: dict[str, type] = {}
        for p in plan.checks:
            if p.is_table:
                continue
            values = column(p.name)
            t = type(values[0]) if values else None
            if t is Decimal or t is date:
                convert: Callable[[Any], Any] = str if t is Decimal else date.isoformat
                if set(map(type, values)) == {t}:  # (one pass in C, then map: no blanks)
                    values = list(map(convert, values))
                    whole[p.name] = t
                else:
                    values = [convert(x) if type(x) is t else _json_plain(x) for x in values]
            plain[p.name] = values
        return plain, whole

    def _insert_rows(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[dict[str, Any]],
        *,
        want_ids: bool = True,
    ) -> list[int]:
        """Insert ``rows`` (all with the same keys) with one executemany; their new ids.

        On SQLite the rows go straight to the driver's ``executemany`` with the
        values already converted by the columns' own SQLAlchemy bind processors
        (so they are stored exactly as a Core insert would store them), and the ids
        are assigned explicitly after the highest id ever used: the transaction holds
        SQLite's write lock, and that is the id SQLite itself would have given each row.
        Elsewhere, SQLAlchemy's insertmanyvalues with RETURNING in parameter order.
        """
        if not rows:
            return []
        columns = {key: [r[key] for r in rows] for key in rows[0]}
        return self._insert_columns(conn, table, columns, len(rows), want_ids=want_ids)

    def _insert_columns(
        self,
        conn: Connection,
        table: sa.Table,
        columns: Mapping[str, Sequence[Any]],
        count: int,
        *,
        want_ids: bool = True,
        constants: Mapping[str, Any] | None = None,
        texts: Mapping[str, tuple[type, list[str]]] | None = None,
    ) -> list[int]:
        """:meth:`_insert_rows` of ``count`` rows given column by column (``column -> values``).

        ``constants``: columns with one value for every row (converted once).
        ``texts``: ``column -> (Decimal or date, values as str / ISO text)`` for
        columns of only that type whose text is at hand already (SQLite reuses it).
        """
        if not count:
            return []
        dialect = conn.dialect
        if constants:
            columns = {**columns, **{k: [v] * count for k, v in constants.items()}}
        keys = list(columns)
        if dialect.name != "sqlite":
            rows = [dict(zip(keys, t, strict=True)) for t in zip(*columns.values(), strict=True)]
            if not want_ids:
                conn.execute(table.insert(), rows)
                return []
            result = conn.execute(
                table.insert().returning(table.c.id, sort_by_parameter_order=True), rows
            )
            return [int(r[0]) for r in result]
        ids: list[int] = []
        if want_ids:
            # AUTOINCREMENT tables: past the highest id ever used, not just the highest
            # id present, so a deleted record's id is never handed out again.
            last = conn.execute(sa.select(sa.func.max(table.c.id))).scalar()
            used = conn.exec_driver_sql(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table.name,)
            ).scalar()
            first = max(int(last or 0), int(used or 0)) + 1
            ids = list(range(first, first + count))
        processors = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in keys]
        names: list[str] = ["id"] if want_ids else []
        params: list[Sequence[Any]] = [ids] if want_ids else []
        nulls: list[str] = []
        for key, proc in zip(keys, processors, strict=True):
            column = columns[key]
            text = texts.get(key) if texts else None
            if text is not None and proc is not None and _reuses_text(table.c[key], proc, text[0]):
                column = list(map(float, text[1])) if text[0] is Decimal else text[1]
            elif proc is not None:
                first_value = column[0]
                if (constants and key in constants) or (
                    column[-1] is first_value and all(v is first_value for v in column)
                ):
                    done = proc(first_value)
                    column = [done] * len(column)
                elif isinstance(table.c[key].type, sa.Date) and proc(_A_DATE) == _A_DATE_TEXT:
                    # SQLite's date processor writes what date.isoformat() does.
                    if set(map(type, column)) == {date}:
                        column = list(map(date.isoformat, column))
                    else:
                        column = [v.isoformat() if type(v) is date else proc(v) for v in column]
                else:
                    column = list(map(proc, column))
            if column.count(None) == count:
                # NULL in every row: written as the literal, not bound row by row (the
                # driver runs each None it binds through its adapter lookup; a column
                # left blank throughout an import chunk is common).
                nulls.append(key)
                continue
            names.append(key)
            params.append(column)
        preparer = dialect.identifier_preparer
        sql = (
            f"INSERT INTO {preparer.format_table(table)} "  # quoted names, bound values  # nosec B608
            f"({', '.join(preparer.quote(n) for n in names + nulls)}) "
            f"VALUES ({', '.join(['?'] * len(names) + ['NULL'] * len(nulls))})"
        )
        conn.exec_driver_sql(sql, list(zip(*params, strict=True)) if params else [()] * count)
        return ids

    def _bulk_db_checks(
        self,
        conn: Connection,
        et: EntityTable,
        prepared: Sequence[tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]], Any]],
        actor: Actor,
    ) -> Iterator[tuple[int, str, Text]]:
        """Ref existence and uniqueness for a whole batch, one query per field and chunk."""
        entity = et.entity
        by_index = (
            {i: v for i, v, _, _ in prepared}
            if any(f.unique for f in entity.fields.values())
            else {}
        )
        if not actor.is_system and any(self._file_fields[entity.name]):
            places = [
                (i, place)
                for i, v, t, _ in prepared
                for place in self._new_file_keys(entity.name, v, t, None)
            ]
            mine = self._uploads_of(conn, entity.name, actor, (p[2] for _, p in places))
            for i, (error_key, path, key) in places:
                if (path, key) not in mine:
                    yield i, error_key, MSG_FILE_FORGED
        for name, f in entity.fields.items():
            if f.kind == "ref" and f.to:
                refs = [v.get(name) for _, v, _, _ in prepared]
                wanted = set(refs)
                wanted.discard(None)
                found = self._existing_ids(conn, f.to, wanted, actor)
                if not wanted <= found:  # (else every ref is there: no record to look at)
                    label = self.blueprint.entities[f.to].label
                    for (i, _, _, _), ref in zip(prepared, refs, strict=True):
                        if ref is not None and ref not in found:
                            yield i, name, _per_language(MSG_REF_MISSING, entity=label, id=ref)
            if f.unique:
                seen: dict[Any, int] = {}
                probes: dict[Any, list[int]] = defaultdict(list)
                for i, v, _, _ in prepared:
                    value = v.get(name)
                    if value is None:
                        continue
                    probe = normalise_unique(value) if name in et.unique_keys else value
                    if probe in seen:
                        yield i, name, MSG_UNIQUE.format(value=value)
                    else:
                        seen[probe] = i
                    probes[probe].append(i)
                col = et.unique_keys.get(name, et.columns[name])
                keys = list(probes)
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    taken = conn.execute(sa.select(col).where(col.in_(chunk))).scalars()
                    for probe in taken:
                        for i in probes.get(probe, []):
                            value = by_index[i].get(name)
                            yield i, name, MSG_UNIQUE.format(value=value)
        for tname, child in et.children.items():
            for cname, cf in child.field.fields.items():
                if cf.kind != "ref" or not cf.to:
                    continue
                wanted = {
                    r[cname]
                    for _, _, t, _ in prepared
                    for r in t.get(tname, [])
                    if r.get(cname) is not None
                }
                found = self._existing_ids(conn, cf.to, wanted, actor)
                label = self.blueprint.entities[cf.to].label
                for i, _, t, _ in prepared:
                    for n, r in enumerate(t.get(tname, [])):
                        if r.get(cname) is not None and r[cname] not in found:
                            msg = _per_language(MSG_REF_MISSING, entity=label, id=r[cname])
                            yield i, f"{tname}[{n}].{cname}", msg

    def _existing_ids(
        self, conn: Connection, entity: str, wanted: set[Any], actor: Actor
    ) -> set[int]:
        """The ids in ``wanted`` that exist in ``entity`` and that ``actor`` may read."""
        if not wanted:
            return set()
        stmt = self._ids_in.get(entity)
        if stmt is None:
            table = self.schema.entity(entity).table
            stmt = self._ids_in[entity] = sa.select(table.c.id).where(
                table.c.id.in_(sa.bindparam("ids", expanding=True))
            )
        if self.access is not None and not actor.is_system:
            scope = self.access.read_scope(actor, self.schema.entity(entity))
            if scope is not None:
                stmt = stmt.where(scope)
        ids = sorted(wanted)
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            found.update(conn.execute(stmt, {"ids": ids[start : start + 500]}).scalars())
        return found

    def _allocate_autonumbers_bulk(
        self, conn: Connection, et: EntityTable, rows: Sequence[dict[str, Any]], now: datetime
    ) -> list[str]:
        """Reserve one block of sequence numbers per autonumber field for a batch.

        Returns the names of the fields it numbered.
        """
        local_now = now.astimezone(self.tz)
        numbered: list[str] = []
        for name, f in et.entity.fields.items():
            if f.kind != "autonumber":
                continue
            need = [v for v in rows if not v.get(name)]
            if not need:
                continue
            key = f"{et.entity.name}.{name}:{autonumber_kind.sequence_key(f, local_now)}"
            last = conn.execute(
                _upsert_increment(self.engine, self.schema.sequences, key, len(need))
            ).scalar_one()
            first = int(last) - len(need) + 1
            numbers = autonumber_kind.render_many(f, first, len(need), local_now)
            for values, number in zip(need, numbers, strict=True):
                values[name] = number
            numbered.append(name)
        return numbered


class BatchInvalid(RecordInvalid):
    """Some rows of a batch are invalid; ``rows`` maps row index -> field errors."""

    def __init__(self, rows: Mapping[int, Mapping[str, list[Text]]]) -> None:
        self.rows = {i: dict(errs) for i, errs in rows.items()}
        flat: dict[str, list[Text]] = {}
        for i, errs in self.rows.items():
            for name, msgs in errs.items():
                flat[f"row {i + 1}: {name}"] = list(msgs)
        super().__init__(flat)
