"""Tables generated from the checked model.

Ids are never reused, also on SQLite (AUTOINCREMENT): a deleted record's id and
history stay its own.

One table per entity (``e_<entity>``) and per child table
(``e_<entity>__<table>``), plus Formflow's own system tables (``ff_*``).
Blueprint names may be Chinese; PostgreSQL limits identifiers to 63 bytes, so a
non-ASCII name is stored under a short stable hash of it (the mapping lives here
and nowhere else: everything above storage speaks field names).

Unique text fields get a hidden ``<column>__key`` column holding the normalised
value (case-folded, whitespace collapsed) under a unique index, so uniqueness is
enforced by the database itself, also under concurrent writers.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine.fields import kind_of
from engine.model import Blueprint, Entity, Field
from engine.storage.types import UTCDateTime, big_id

#: Text values longer than this are stored as unbounded TEXT.
MAX_VARCHAR = 4000
DEFAULT_TEXT_LENGTH = 1000
#: 10^15 with up to 8 decimal places (the money kind's limits).
MONEY_DIGITS = 23


def sql_name(name: str, prefix: str = "") -> str:
    """A SQL-safe identifier for a blueprint name (stable, at most 63 bytes)."""
    if name.isascii() and len(prefix) + len(name) <= 63:
        return prefix + name
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    ascii_part = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch == "_"))[:24]
    return f"{prefix}{ascii_part}_{digest}" if ascii_part else f"{prefix}x{digest}"


def normalise_unique(value: object) -> str:
    """The key two unique values must not share: NFKC, case-folded, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(value))
    return " ".join(text.casefold().split())


def unique_key_column(column: str) -> str:
    return f"{column}__key"


def storage_kind(field: Field) -> str:
    """The abstract storage type of a field (a computed ``formula`` stores its result)."""
    return kind_of(field).storage_of(field)


def column_type(field: Field) -> sa.types.TypeEngine[Any]:
    storage = storage_kind(field)
    if storage == "text":
        length = field.max_length or DEFAULT_TEXT_LENGTH
        if field.kind == "long_text" or length > MAX_VARCHAR:
            return sa.Text()
        return sa.String(length)
    if storage == "integer":
        return sa.BigInteger()
    if storage == "decimal":
        scale = field.precision if field.precision is not None else 2
        return sa.Numeric(MONEY_DIGITS, scale, asdecimal=True)
    if storage == "date":
        return sa.Date()
    if storage == "datetime":
        return UTCDateTime()
    if storage == "boolean":
        return sa.Boolean()
    if storage == "json":
        return sa.JSON()
    if storage == "ref":
        return big_id()
    raise ValueError(f"field {field.name!r} of kind {field.kind!r} has no column type ({storage})")


@dataclass(frozen=True)
class ChildTable:
    """The rows of a ``table`` field."""

    field: Field
    table: sa.Table
    columns: Mapping[str, sa.Column[Any]]  # child field name -> column


@dataclass(frozen=True)
class EntityTable:
    entity: Entity
    table: sa.Table
    columns: Mapping[str, sa.Column[Any]]  # field name -> column (no table fields)
    unique_keys: Mapping[str, sa.Column[Any]]  # unique text field -> its __key column
    children: Mapping[str, ChildTable]

    def column(self, name: str) -> sa.Column[Any]:
        """A field's column, or a system column (id, owner, created_at, ...)."""
        if name in self.columns:
            return self.columns[name]
        return self.table.c[name]


@dataclass(frozen=True)
class Schema:
    metadata: sa.MetaData
    entities: Mapping[str, EntityTable]
    audit: sa.Table
    sequences: sa.Table
    idempotency: sa.Table
    meta: sa.Table
    users: sa.Table
    uploads: sa.Table
    exports: sa.Table

    def entity(self, name: str) -> EntityTable:
        return self.entities[name]


def _system_tables(md: sa.MetaData) -> dict[str, sa.Table]:
    users = sa.Table(
        "ff_users",
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(150), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200)),
        sa.Column("email", sa.String(320)),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("manager", sa.String(150), index=True),
        sa.Column("password_hash", sa.String(300)),
        sa.Column("locale", sa.String(10)),
        sa.Column("active", sa.Boolean, nullable=False, default=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    # API tokens: only the sha256 of a token is stored; ``revoked_at`` set = revoked.
    # Looked up as ``schema.metadata.tables["ff_tokens"]`` (see engine.users).
    sa.Table(
        "ff_tokens",
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(150), nullable=False, index=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sqlite_autoincrement=True,
    )
    audit = sa.Table(
        "ff_audit",
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(150)),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Index("ix_ff_audit_record", "entity", "record_id", "id"),
        sqlite_autoincrement=True,
    )
    sequences = sa.Table(
        "ff_sequences",
        md,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    idempotency = sa.Table(
        "ff_idempotency",
        md,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    # Uploaded files (engine.uploads): the bytes live in the upload folder under
    # ``path``; a record's file field holds ``key``. ``entity``/``field`` say for
    # which field it was uploaded, ``user`` who uploaded it.
    uploads = sa.Table(
        "ff_uploads",
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("path", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("user", sa.String(150), index=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    # Exports (engine.exports): one row per export, written when its download ends:
    # who, when, what (entity, format, the query as ``filters``), how many rows,
    # the file name, and whether it finished (``status``: done/aborted/failed).
    exports = sa.Table(
        "ff_exports",
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(150), index=True),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sqlite_autoincrement=True,
    )
    _job_table(md)
    _flow_tables(md)
    _notification_table(md)
    _forecast_snapshot_tables(md)
    _login_attempts_table(md)
    # Import jobs (engine.imports): one row per import, CLI or web, with its state
    # (queued / running / done / failed), counts, progress (0..1), the first errors
    # and where the annotated report is. ``worker`` is ``host:pid`` of the process
    # running it, so a job whose process died is recognised and marked failed.
    # Looked up as ``schema.metadata.tables["ff_imports"]`` (see engine.imports.jobs).
    sa.Table(
        "ff_imports",
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(150), index=True),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("update_on", sa.String(200)),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.BigInteger, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.JSON),
        sa.Column("errors", sa.JSON),
        sa.Column("errors_total", sa.BigInteger, nullable=False),
        sa.Column("warnings", sa.JSON),
        sa.Column("report_path", sa.String(1000)),
        sa.Column("worker", sa.String(300)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sqlite_autoincrement=True,
    )
    meta = sa.Table(
        "ff_meta",
        md,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    return {
        "users": users,
        "audit": audit,
        "sequences": sequences,
        "idempotency": idempotency,
        "meta": meta,
        "uploads": uploads,
        "exports": exports,
    }


#: The durable job queue (``engine.jobs``), looked up as ``schema.metadata.tables[JOBS_TABLE]``.
JOBS_TABLE = "ff_jobs"
#: One row per submission of a record to a flow (``engine.flows``).
FLOW_RUNS_TABLE = "ff_flow_runs"
#: One row per approver asked at a step of a run (``engine.flows``).
FLOW_TASKS_TABLE = "ff_flow_tasks"


#: In-app notifications (``engine.notifications``).
NOTIFICATIONS_TABLE = "ff_notifications"


def _notification_table(md: sa.MetaData) -> sa.Table:
    """``ff_notifications``: one row per message to one user; ``read_at`` set = read."""
    return sa.Table(
        NOTIFICATIONS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(150), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("title", sa.JSON, nullable=False),  # {"zh": ..., "en": ...}
        sa.Column("body", sa.JSON),  # {"zh": ..., "en": ...} or null
        sa.Column("entity", sa.String(100)),
        sa.Column("record_id", sa.BigInteger),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime()),
        sa.Index("ix_ff_notifications_user", "user", "read_at", "id"),
        sqlite_autoincrement=True,
    )


#: Forecast snapshots (``engine.kpis.snapshots``): one row per snapshot ...
FORECAST_SNAPSHOTS_TABLE = "ff_forecast_snapshots"
#: ... and one row per deal it counted, so a later comparison can name deals.
FORECAST_SNAPSHOT_DEALS_TABLE = "ff_forecast_snapshot_deals"


def _forecast_snapshot_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """``ff_forecast_snapshots`` (who, when, which forecast and period, the blueprint
    version, the figures by month × category × owner) and ``ff_forecast_snapshot_deals``."""
    snapshots = sa.Table(
        FORECAST_SNAPSHOTS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("forecast", sa.String(100), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(150)),
        sa.Column("period", sa.JSON, nullable=False),
        sa.Column("blueprint_digest", sa.String(64), nullable=False),
        sa.Column("figures", sa.JSON, nullable=False),
        sa.Column("note", sa.String(500)),
        sa.Index("ix_ff_forecast_snapshots_forecast", "forecast", "id"),
        sqlite_autoincrement=True,
    )
    deals = sa.Table(
        FORECAST_SNAPSHOT_DEALS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("snapshot_id", sa.BigInteger, nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("title", sa.String(500)),
        sa.Column("owner", sa.String(150)),
        sa.Column("stage", sa.String(100)),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("month", sa.Date),
        sa.Column("amount", sa.Numeric(30, 2, asdecimal=True), nullable=False),
        sa.Column("weighted", sa.Numeric(30, 2, asdecimal=True), nullable=False),
        sa.Index("ix_ff_forecast_snapshot_deals_snapshot", "snapshot_id", "record_id"),
        sqlite_autoincrement=True,
    )
    return snapshots, deals


#: Failed sign-ins, per account and per client address (``engine.logins``).
LOGIN_ATTEMPTS_TABLE = "ff_login_attempts"


def _login_attempts_table(md: sa.MetaData) -> sa.Table:
    """``ff_login_attempts``: one row per failed sign-in and what it counts against.

    ``scope`` is ``account`` (``subject`` = the name typed, lower-cased) or ``ip``
    (the client address); rows older than the window are deleted as new ones come.
    """
    return sa.Table(
        LOGIN_ATTEMPTS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Index("ix_ff_login_attempts_subject", "scope", "subject", "at"),
        sqlite_autoincrement=True,
    )


def _job_table(md: sa.MetaData) -> sa.Table:
    """``ff_jobs``: timers and outbox work, claimed by workers under a lease."""
    return sa.Table(
        JOBS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(200), unique=True),
        sa.Column("state", sa.String(20), nullable=False),  # pending|running|done|failed|cancelled
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("max_attempts", sa.Integer, nullable=False, default=5),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_until", UTCDateTime()),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime()),
        sa.Index("ix_ff_jobs_due", "state", "due_at"),
        sqlite_autoincrement=True,
    )


def _flow_tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """``ff_flow_runs`` and ``ff_flow_tasks``: the approval state of records."""
    runs = sa.Table(
        FLOW_RUNS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("flow", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(100), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        # pending | approved | rejected | recalled | returned
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("current_step", sa.String(100)),
        sa.Column("submitted_by", sa.String(150)),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("finished_by", sa.String(150)),
        sa.Column("version", sa.Integer, nullable=False, default=1),
        sa.UniqueConstraint("entity", "record_id", "flow", "round", name="uq_ff_flow_runs_round"),
        sa.Index("ix_ff_flow_runs_state", "entity", "state"),
        sqlite_autoincrement=True,
    )
    tasks = sa.Table(
        FLOW_TASKS_TABLE,
        md,
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            big_id(),
            sa.ForeignKey(f"{FLOW_RUNS_TABLE}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("visit", sa.Integer, nullable=False),  # 1, then 2 after a return to it ...
        sa.Column("approver", sa.String(150)),  # None for a skipped step
        # waiting | open | approved | rejected | transferred | cancelled | skipped
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),  # resolved|added|transferred|escalated
        sa.Column("parent_id", sa.BigInteger),  # the task this one was transferred/escalated from
        sa.Column("added_by", sa.String(150)),
        sa.Column("transferred_to", sa.String(150)),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("opened_at", UTCDateTime()),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("remind_at", UTCDateTime()),
        sa.Column("due_at", UTCDateTime()),
        sa.Index("ix_ff_flow_tasks_inbox", "approver", "state"),
        sqlite_autoincrement=True,
    )
    return runs, tasks


def _indexed_fields(blueprint: Blueprint, entity: Entity) -> set[str]:
    """Fields that lists filter on, KPIs group by or date-range over, and flow states."""
    names = set(entity.list.filters)
    for kpi in blueprint.kpis.values():
        if kpi.entity == entity.name:
            names.update(kpi.by)
            if kpi.date:
                names.add(kpi.date)
    for flow in blueprint.flows.values():
        if flow.entity == entity.name:
            names.add(flow.status_field)
    return names


def _entity_table(md: sa.MetaData, blueprint: Blueprint, entity: Entity) -> EntityTable:
    tname = sql_name(entity.name, "e_")
    indexed = _indexed_fields(blueprint, entity)
    cols: list[sa.Column[Any]] = [
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column("version", sa.Integer, nullable=False, default=1),
        sa.Column("owner", sa.String(150), index=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(150)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(150)),
    ]
    columns: dict[str, sa.Column[Any]] = {}
    unique_keys: dict[str, sa.Column[Any]] = {}
    for f in entity.fields.values():
        if f.kind == "table":
            continue
        cname = sql_name(f.name)
        fk: list[sa.ForeignKey] = []
        if storage_kind(f) == "ref" and f.to:
            ondelete = {"restrict": "RESTRICT", "set_null": "SET NULL", "cascade": "CASCADE"}
            fk.append(
                sa.ForeignKey(
                    f"{sql_name(f.to, 'e_')}.id", ondelete=ondelete.get(f.on_delete, "RESTRICT")
                )
            )
        text_unique = f.unique and storage_kind(f) == "text"
        col = sa.Column(
            cname,
            column_type(f),
            *fk,
            nullable=True,
            unique=f.unique and not text_unique,
            index=(not f.unique) and (f.index or f.kind in ("ref", "user") or f.name in indexed),
        )
        cols.append(col)
        columns[f.name] = col
        if text_unique:
            key = sa.Column(unique_key_column(cname), sa.String(MAX_VARCHAR), unique=True)
            cols.append(key)
            unique_keys[f.name] = key
    table = sa.Table(tname, md, *cols, sqlite_autoincrement=True)
    children = {
        f.name: _child_table(md, tname, f) for f in entity.fields.values() if f.kind == "table"
    }
    return EntityTable(
        entity=entity,
        table=table,
        columns={k: table.c[v.name] for k, v in columns.items()},
        unique_keys={k: table.c[v.name] for k, v in unique_keys.items()},
        children=children,
    )


def _child_table(md: sa.MetaData, parent: str, field: Field) -> ChildTable:
    cols: list[sa.Column[Any]] = [
        sa.Column("id", big_id(), primary_key=True, autoincrement=True),
        sa.Column(
            "parent_id",
            big_id(),
            sa.ForeignKey(f"{parent}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("position", sa.Integer, nullable=False),
    ]
    columns: dict[str, sa.Column[Any]] = {}
    for f in field.fields.values():
        fk: list[sa.ForeignKey] = []
        if storage_kind(f) == "ref" and f.to:
            fk.append(sa.ForeignKey(f"{sql_name(f.to, 'e_')}.id", ondelete="RESTRICT"))
        col = sa.Column(sql_name(f.name), column_type(f), *fk, nullable=True)
        cols.append(col)
        columns[f.name] = col
    table = sa.Table(sql_name(field.name, f"{parent}__"), md, *cols, sqlite_autoincrement=True)
    return ChildTable(
        field=field, table=table, columns={k: table.c[v.name] for k, v in columns.items()}
    )


SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER IF NOT EXISTS ff_audit_no_update BEFORE UPDATE ON ff_audit "
    "BEGIN SELECT RAISE(ABORT, 'ff_audit is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS ff_audit_no_delete BEFORE DELETE ON ff_audit "
    "BEGIN SELECT RAISE(ABORT, 'ff_audit is append-only'); END",
]
PG_APPEND_ONLY = [
    "CREATE OR REPLACE FUNCTION ff_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'ff_audit is append-only'; END $$",
    "CREATE TRIGGER ff_audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON ff_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION ff_audit_append_only()",
]


def _make_audit_append_only(audit: sa.Table) -> None:
    """Refuse UPDATE/DELETE on the audit log in the database itself (triggers).

    On PostgreSQL a deployment should also run the app under a role without
    UPDATE/DELETE/TRUNCATE privileges on ff_audit (see docs/deploy.md).
    """
    for stmt in SQLITE_APPEND_ONLY:
        sa.event.listen(audit, "after_create", sa.DDL(stmt).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
    for stmt in PG_APPEND_ONLY:
        sa.event.listen(audit, "after_create", sa.DDL(stmt).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]


def build_schema(blueprint: Blueprint) -> Schema:
    """The SQLAlchemy tables for a blueprint (no database is touched)."""
    md = sa.MetaData()
    system = _system_tables(md)
    _make_audit_append_only(system["audit"])
    entities = {name: _entity_table(md, blueprint, e) for name, e in blueprint.entities.items()}
    return Schema(metadata=md, entities=entities, **system)
