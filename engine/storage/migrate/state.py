"""The migration lock and the state row in ``ff_meta``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.i18n import T, Text
from engine.model import Blueprint
from engine.storage.database import is_sqlite, writer
from engine.storage.migrate.meta import (
    META_DIGEST,
    META_LAST,
    META_MIGRATED_AT,
    META_NAMES,
    META_SCHEMA,
    META_VERSION,
    MIGRATION_LOCK_KEY,
    blueprint_digest,
    schema_digest,
)
from engine.storage.migrate.results import Change, MigrationFailed, Plan
from engine.storage.migrate.shapes import _display_names
from engine.storage.schema import (
    Schema,
)

# --------------------------------------------------------------------------- locking, state


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock.

    SQLite: ``BEGIN IMMEDIATE`` (the database's write lock) with foreign keys
    off, so batch mode can drop and recreate tables without cascading deletes;
    ``PRAGMA foreign_key_check`` runs before commit. PostgreSQL: a
    transaction-level advisory lock, released at commit or rollback.
    """
    if is_sqlite(engine):
        with writer(engine).connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, or it is a no-op
            try:
                with conn.begin():
                    yield conn
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
    else:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            yield conn


def _check_integrity(conn: Connection) -> None:
    """SQLite: foreign keys still hold; the audit table's triggers are in place."""
    if conn.dialect.name != "sqlite":
        _ensure_pg_audit_trigger(conn)
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        shown = ", ".join(f"{row[0]} #{row[1]} -> {row[2]}" for row in broken[:5])
        raise MigrationFailed(
            T(
                f"迁移后外键不一致（{shown}），已回滚",
                f"foreign keys do not hold after the migration ({shown}); rolled back",
            )
        )
    if sa.inspect(conn).has_table("ff_audit"):
        from engine.storage.schema import SQLITE_APPEND_ONLY

        for stmt in SQLITE_APPEND_ONLY:
            conn.exec_driver_sql(stmt)


def _ensure_pg_audit_trigger(conn: Connection) -> None:
    if not sa.inspect(conn).has_table("ff_audit"):
        return
    found = conn.execute(
        sa.text(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'ff_audit_no_change' "
            "AND tgrelid = 'ff_audit'::regclass"
        )
    ).first()
    if found is None:
        from engine.storage.schema import PG_APPEND_ONLY

        for stmt in PG_APPEND_ONLY:
            conn.exec_driver_sql(stmt)


def _read_meta(conn: Connection) -> dict[str, str]:
    if not sa.inspect(conn).has_table("ff_meta"):
        return {}
    rows = conn.execute(sa.text("SELECT key, value FROM ff_meta")).all()
    return {str(k): str(v) for k, v in rows}


def _schema_version(meta: Mapping[str, str]) -> int:
    try:
        return int(meta.get(META_VERSION, "0"))
    except ValueError:
        return 0


def _record_state(
    conn: Connection,
    blueprint: Blueprint,
    schema: Schema,
    plan: Plan,
    meta: Mapping[str, str],
    now: datetime,
    backup_file: Path | None,
    backup_tables: tuple[str, ...],
    notes: Sequence[Text],
) -> int:
    version = _schema_version(meta) + 1
    summary = {
        "at": now.isoformat(),
        "from": meta.get(META_DIGEST),
        "to": plan.blueprint_digest,
        "changes": [c.as_dict() for c in plan.changes],
        "backup_file": str(backup_file) if backup_file else None,
        "backup_tables": list(backup_tables),
        "notes": [n.as_dict() for n in notes],
    }
    values = {
        META_DIGEST: blueprint_digest(blueprint),
        META_SCHEMA: schema_digest(schema, conn.dialect),
        META_VERSION: str(version),
        META_MIGRATED_AT: now.isoformat(),
        META_LAST: json.dumps(summary, ensure_ascii=False),
        META_NAMES: json.dumps(_display_names(blueprint, schema), ensure_ascii=False),
    }
    table = schema.meta
    conn.execute(sa.delete(table).where(table.c.key.in_(list(values))))
    conn.execute(sa.insert(table), [{"key": k, "value": v} for k, v in values.items()])
    return version


def _behind_message(engine: Engine, blueprint: Blueprint) -> Text:
    path = blueprint.source_files[0] if blueprint.source_files else "PATH"
    url = engine.url.render_as_string(hide_password=True)
    return T(
        f"数据库结构落后于蓝图；请运行 `formflow migrate {path} --db {url}`",
        f"the database schema is behind the blueprint; run `formflow migrate {path} --db {url}`",
    )


def _blocked(changes: Sequence[Change]) -> MigrationFailed:
    zh = ["迁移无法执行，未做任何修改："]
    en = ["The migration cannot be applied; nothing was changed:"]
    for c in changes:
        zh.append(f"  - {c.detail.get('zh')}：{(c.blocker or Text()).get('zh')}")
        en.append(f"  - {c.detail.get('en')}: {(c.blocker or Text()).get('en')}")
    return MigrationFailed(Text(zh="\n".join(zh), en="\n".join(en)))
