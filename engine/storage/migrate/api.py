"""The public functions: plan_migration, apply_migration, initialise, ensure_current."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import SchemaBehind
from engine.i18n import T
from engine.model import Blueprint
from engine.storage.database import is_sqlite
from engine.storage.migrate.applier import _Applier
from engine.storage.migrate.backups import _backup_sqlite, _backup_tables
from engine.storage.migrate.meta import (
    META_DIGEST,
    META_SCHEMA,
    META_VERSION,
    blueprint_digest,
    schema_digest,
)
from engine.storage.migrate.planner import _Planner
from engine.storage.migrate.results import MigrationFailed, MigrationRefused, MigrationResult, Plan
from engine.storage.migrate.shapes import _is_formflow_table
from engine.storage.migrate.state import (
    _behind_message,
    _blocked,
    _check_integrity,
    _migration_lock,
    _read_meta,
    _record_state,
    _schema_version,
)
from engine.storage.schema import (
    Schema,
    build_schema,
)

# --------------------------------------------------------------------------- public functions


def plan_migration(engine: Engine, blueprint: Blueprint, schema: Schema) -> Plan:
    """The changes the database needs to match ``schema``; reads only."""
    with engine.connect() as conn, conn.begin():
        work = _Planner(conn, blueprint, schema).plan()
        return work.as_plan()


def apply_migration(
    engine: Engine,
    blueprint: Blueprint,
    schema: Schema,
    plan: Plan,
    *,
    allow_data_loss: bool = False,
    backup_dir: Path | None = None,
) -> MigrationResult:
    """Apply the blueprint's changes in one transaction, under the migration lock.

    The plan is made again once the lock is held: ``plan`` is what the caller
    showed the user, the plan made under the lock is what is applied (and it is
    in the result). Raises :class:`MigrationRefused` when either loses data and
    ``allow_data_loss`` is false, :class:`MigrationFailed` when the database
    refuses a step (everything is rolled back).
    """
    digest = blueprint_digest(blueprint)
    if plan.blueprint_digest != digest:
        raise ValueError("the plan was made for another blueprint; plan again")
    if plan.data_loss and not allow_data_loss:
        raise MigrationRefused(plan.losses)
    if plan.blockers:
        raise _blocked(plan.blockers)
    with _migration_lock(engine) as conn:
        work = _Planner(conn, blueprint, schema).plan()
        fresh = work.as_plan()
        if fresh.empty:
            return MigrationResult(
                plan=fresh, applied=False, schema_version=_schema_version(work.meta)
            )
        if fresh.data_loss and not allow_data_loss:
            raise MigrationRefused(fresh.losses)
        if fresh.blockers:
            raise _blocked(fresh.blockers)
        backup_file: Path | None = None
        backup_tables: tuple[str, ...] = ()
        now = datetime.now(UTC)
        if fresh.data_loss:
            if is_sqlite(engine):
                backup_file = _backup_sqlite(conn, engine, backup_dir, now)
            else:
                backup_tables = _backup_tables(conn, sorted(work.backup_sources), now)
        try:
            notes = _Applier(conn, work).run()
            _check_integrity(conn)
        except sa.exc.DBAPIError as exc:
            raise MigrationFailed(
                T(
                    f"迁移失败，数据库未改变：{exc.orig}",
                    f"The migration failed; the database is unchanged: {exc.orig}",
                )
            ) from exc
        version = _record_state(
            conn, blueprint, schema, fresh, work.meta, now, backup_file, backup_tables, notes
        )
    return MigrationResult(
        plan=fresh,
        applied=True,
        schema_version=version,
        backup_file=backup_file,
        backup_tables=backup_tables,
        notes=tuple(notes),
    )


def initialise(engine: Engine, blueprint: Blueprint, schema: Schema) -> None:
    """Create every table of a brand-new database and record its state.

    The same as applying the plan of an empty database. A database that already
    records this blueprint is left alone; one with other Formflow tables is
    refused (that is a job for :func:`apply_migration`).
    """
    with _migration_lock(engine) as conn:
        meta = _read_meta(conn)
        if meta.get(META_DIGEST) is not None:
            if meta.get(META_DIGEST) == blueprint_digest(blueprint) and meta.get(
                META_SCHEMA
            ) == schema_digest(schema, conn.dialect):
                return
            raise SchemaBehind(_behind_message(engine, blueprint))
        present = [t for t in sa.inspect(conn).get_table_names() if _is_formflow_table(t)]
        if present:
            raise MigrationFailed(
                T(
                    f"数据库中已有 Formflow 的表（{', '.join(sorted(present))}），"
                    "请用 formflow migrate",
                    f"the database already has Formflow tables ({', '.join(sorted(present))}); "
                    "use `formflow migrate`",
                )
            )
        schema.metadata.create_all(conn)
        _check_integrity(conn)
        plan = Plan(changes=(), blueprint_digest=blueprint_digest(blueprint))
        _record_state(conn, blueprint, schema, plan, meta, datetime.now(UTC), None, (), [])


def ensure_current(engine: Engine, blueprint: Blueprint) -> None:
    """Raise :class:`SchemaBehind` unless ``ff_meta`` records this blueprint and schema."""
    schema = build_schema(blueprint)
    with engine.connect() as conn:
        meta = _read_meta(conn) if sa.inspect(conn).has_table(schema.meta.name) else {}
        current = meta.get(META_DIGEST) == blueprint_digest(blueprint) and meta.get(
            META_SCHEMA
        ) == schema_digest(schema, conn.dialect)
    if not current:
        raise SchemaBehind(_behind_message(engine, blueprint))


@dataclass(frozen=True)
class StoredState:
    """What ``ff_meta`` says the database holds: the migration counter and the digests."""

    version: int
    blueprint_digest: str | None
    schema_digest: str | None


def stored_state(engine: Engine) -> StoredState:
    """The state row of the last migration, in one small query (a cheap poll).

    A database without ``ff_meta`` (never initialised) is version 0 with no digests;
    a database that cannot be reached raises SQLAlchemy's error.
    """
    keys = (META_VERSION, META_DIGEST, META_SCHEMA)
    with engine.connect() as conn:
        try:
            rows = conn.execute(
                sa.text("SELECT key, value FROM ff_meta WHERE key IN (:a, :b, :c)"),
                dict(zip(("a", "b", "c"), keys, strict=True)),
            ).all()
        except sa.exc.ProgrammingError:  # PostgreSQL: no such table
            return StoredState(0, None, None)
        except sa.exc.OperationalError as exc:  # SQLite: no such table; else unreachable
            if "no such table" in str(exc.orig):
                return StoredState(0, None, None)
            raise
    meta = {str(k): str(v) for k, v in rows}
    return StoredState(
        version=_schema_version(meta),
        blueprint_digest=meta.get(META_DIGEST),
        schema_digest=meta.get(META_SCHEMA),
    )
