"""Safe schema migrations: compare the blueprint with the live database, then apply.

:func:`plan_migration` reflects the database, compares it with the tables
:func:`~engine.storage.schema.build_schema` wants and lists every change as a
:class:`Change`, marking those that can lose data. It never writes.

:func:`apply_migration` takes the migration lock, plans again under it (so a
second migrator that waited finds nothing left to do), refuses data loss unless
it is allowed, takes a backup first when it is, and applies the whole plan in
one transaction with alembic's operations ("move and copy" batch mode on SQLite
for what SQLite cannot ALTER in place). The blueprint digest, a schema digest, a
schema-state counter and a summary of the migration are recorded in ``ff_meta``;
:func:`ensure_current` compares them with a blueprint so ``formflow serve``
refuses to start on a database that is behind.

Rules:

- A table or a column is renamed only when the entity or field says
  ``renamed_from:``; otherwise a name that disappears is dropped (data loss)
  and the new name is added.
- Data loss: dropping an entity, a table field or a field; narrowing a type or a
  length (VARCHAR(200) -> VARCHAR(50), TEXT -> VARCHAR, decimal -> integer, fewer
  decimal places); converting between kinds that do not always convert (text ->
  date ...); pointing a reference at another entity; a new required field without
  a default on a table that has rows ("would leave existing rows invalid": when
  allowed, those rows keep an empty value).
- Converting values: within a family (text, integer/decimal) the database does
  it after the values are cut or rounded to fit; across families the values are
  converted in Python, the same way on SQLite and PostgreSQL, and a value that
  does not convert becomes empty.
- A new required field with a plain ``default`` gets that default in existing
  rows. A ``default_formula`` cannot be evaluated here; existing rows stay empty.
- System tables (``ff_*``) only ever grow: missing tables, columns and indexes
  are added, nothing is dropped or narrowed.
- Tables that are not Formflow's (no ``e_`` or ``ff_`` prefix) and backups
  (``ff_backup_*``) are never touched.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import BatchOperations, Operations
from sqlalchemy.engine import Connection, Dialect, Engine

from engine.errors import FormflowError, SchemaBehind
from engine.fields import FieldValueError, kind_of
from engine.i18n import T, Text
from engine.model import Blueprint, Field
from engine.storage.database import is_sqlite, writer
from engine.storage.schema import (
    Schema,
    build_schema,
    normalise_unique,
    sql_name,
    unique_key_column,
)

#: Key of the PostgreSQL advisory lock every migration takes ("Formflow" as an int).
MIGRATION_LOCK_KEY = int.from_bytes(b"Formflow", "big")

META_DIGEST = "blueprint_digest"
META_SCHEMA = "schema_digest"
META_VERSION = "schema_version"
META_MIGRATED_AT = "migrated_at"
META_LAST = "last_migration"
META_NAMES = "schema_names"

ENTITY_PREFIX = "e_"
SYSTEM_PREFIX = "ff_"
BACKUP_PREFIX = "ff_backup_"

#: Names SQLite batch mode gives constraints that were created without a name.
BATCH_NAMING = {
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}
_MAX_IDENTIFIER = 63
_BIGINT_DIGITS = 19
_BIG_MAX = 2**63 - 1


# --------------------------------------------------------------------------- public types


class MigrationRefused(FormflowError):
    """The plan loses data and ``allow_data_loss`` was not given; nothing was changed."""

    http_status = 409

    def __init__(self, changes: Sequence[Change]) -> None:
        self.changes: tuple[Change, ...] = tuple(changes)
        zh = ["迁移会丢失数据，未做任何修改："]
        en = ["The migration would lose data; nothing was changed:"]
        for c in self.changes:
            zh.append(f"  - {c.detail.get('zh')}：{(c.reason or Text()).get('zh')}")
            en.append(f"  - {c.detail.get('en')}: {(c.reason or Text()).get('en')}")
        zh.append("确认后请加 --allow-data-loss 重新运行（会先备份）。")
        en.append("If that is intended, re-run with --allow-data-loss (a backup is taken first).")
        super().__init__(Text(zh="\n".join(zh), en="\n".join(en)))


class MigrationFailed(FormflowError):
    """The migration could not be applied; the transaction was rolled back."""

    http_status = 500
    default_message = T("迁移失败，数据库未改变", "The migration failed; the database is unchanged")


@dataclass(frozen=True)
class Change:
    """One step of a plan, described for a person.

    ``table``/``column`` are SQL names (the table's name before a rename for
    drops, after it otherwise). ``blocker`` says why the change cannot be applied
    at all (e.g. duplicate values for a new unique field).
    """

    kind: str
    table: str
    column: str | None
    detail: Text
    data_loss: bool = False
    reason: Text | None = None
    blocker: Text | None = None

    def render(self, lang: str | None = None) -> str:
        mark = _MARKS.get(self.kind, "~")
        line = f"  {mark} {self.detail.get(lang)}"
        if self.data_loss:
            line += " " + _LOSES_DATA.get(lang)
        if self.reason:
            line += f"\n      {self.reason.get(lang)}"
        if self.blocker:
            line += f"\n      {_BLOCKED.get(lang)} {self.blocker.get(lang)}"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "detail": self.detail.as_dict(),
            "data_loss": self.data_loss,
            "reason": self.reason.as_dict() if self.reason else None,
        }


_MARKS = {
    "create_table": "+",
    "add_column": "+",
    "add_index": "+",
    "add_unique": "+",
    "add_foreign_key": "+",
    "drop_table": "-",
    "drop_column": "-",
    "drop_index": "-",
    "drop_unique": "-",
    "drop_foreign_key": "-",
}
_LOSES_DATA = T("[丢失数据]", "[loses data]")
_BLOCKED = T("无法执行：", "cannot be applied:")


@dataclass(frozen=True)
class Plan:
    """What a migration would do, in order. ``empty``: the database is current.

    ``recorded_digest`` is the blueprint digest ``ff_meta`` holds (None for a
    database Formflow never migrated); ``state_current`` is true when ``ff_meta``
    already records this blueprint and schema, so even a plan without table
    changes is not empty when only the blueprint's digest moved (a new label).
    """

    changes: tuple[Change, ...]
    blueprint_digest: str
    recorded_digest: str | None = None
    state_current: bool = False

    @property
    def data_loss(self) -> bool:
        return any(c.data_loss for c in self.changes)

    @property
    def losses(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.data_loss)

    @property
    def blockers(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.blocker)

    @property
    def empty(self) -> bool:
        return not self.changes and self.state_current

    def render(self, lang: str | None = None) -> str:
        short = self.blueprint_digest[:12]
        if self.empty:
            return T(
                f"数据库已是最新（蓝图版本 {short}）。",
                f"The database is up to date (blueprint {short}).",
            ).get(lang)
        if not self.changes:
            return T(
                f"无需修改表结构；将记录新的蓝图版本 {short}。",
                f"No table changes; the new blueprint version {short} will be recorded.",
            ).get(lang)
        n, lost = len(self.changes), len(self.losses)
        head = T(
            f"迁移计划（蓝图版本 {short}）：{n} 项修改，其中 {lost} 项会丢失数据",
            f"Migration plan (blueprint {short}): {n} change{'s' if n != 1 else ''}, "
            f"{lost} losing data",
        )
        lines = [head.get(lang), *(c.render(lang) for c in self.changes)]
        if self.data_loss:
            lines.append(
                T(
                    "标记为[丢失数据]的修改需要加 --allow-data-loss 才会执行，执行前会先备份。",
                    "Changes marked [loses data] run only with --allow-data-loss; "
                    "a backup is taken first.",
                ).get(lang)
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`apply_migration` did.

    ``plan`` is the plan made again under the lock (what was really applied);
    ``applied`` is false when another migrator had already done everything.
    """

    plan: Plan
    applied: bool
    schema_version: int
    backup_file: Path | None = None
    backup_tables: tuple[str, ...] = ()
    notes: tuple[Text, ...] = ()

    def render(self, lang: str | None = None) -> str:
        if not self.applied:
            return T(
                "无需迁移：数据库已是最新。", "Nothing to migrate: the database is up to date."
            ).get(lang)
        n = len(self.plan.changes)
        lines = [
            T(
                f"迁移完成：{n} 项修改，结构版本 {self.schema_version}。",
                f"Migrated: {n} change{'s' if n != 1 else ''}, schema version "
                f"{self.schema_version}.",
            ).get(lang)
        ]
        if self.backup_file is not None:
            shown = self.backup_file
            lines.append(T(f"备份文件：{shown}", f"Backup: {shown}").get(lang))
        if self.backup_tables:
            names = ", ".join(self.backup_tables)
            lines.append(T(f"备份表：{names}", f"Backup tables: {names}").get(lang))
        lines.extend(f"  {note.get(lang)}" for note in self.notes)
        return "\n".join(lines)


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


def blueprint_digest(blueprint: Blueprint) -> str:
    """The blueprint's digest (the loader's); for a hand-built model, one of its repr."""
    if blueprint.digest:
        return blueprint.digest
    return "repr-" + hashlib.sha256(repr(blueprint).encode("utf-8")).hexdigest()


def schema_digest(schema: Schema, dialect: Dialect) -> str:
    """A digest of the DDL of every table and index, as ``dialect`` writes it."""
    prep = dialect.identifier_preparer
    digest = hashlib.sha256()
    for table in sorted(schema.metadata.tables.values(), key=lambda t: t.name):
        digest.update(str(sa.schema.CreateTable(table).compile(dialect=dialect)).encode())
        for index in sorted(table.indexes, key=lambda i: _index_name(i, prep)):
            digest.update(str(sa.schema.CreateIndex(index).compile(dialect=dialect)).encode())
    return digest.hexdigest()


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


# --------------------------------------------------------------------------- backups


def _timestamp(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S")


def _backup_sqlite(
    conn: Connection, engine: Engine, backup_dir: Path | None, now: datetime
) -> Path:
    """Copy the whole database with SQLite's online backup API, before any change."""
    database = engine.url.database
    in_memory = not database or database == ":memory:"
    if backup_dir is None:
        if in_memory:
            raise MigrationFailed(
                T(
                    "内存数据库无法在旁边备份；请指定 --backup-dir",
                    "an in-memory database has no folder for its backup; give --backup-dir",
                )
            )
        backup_dir = Path(database or ".").resolve().parent
    backup_dir.mkdir(parents=True, exist_ok=True)
    stem = "memory" if in_memory else Path(database or "db").stem
    base = f"{stem}.backup-{_timestamp(now)}"
    target = backup_dir / f"{base}.db"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"{base}-{n}.db"
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, sqlite3.Connection)
    # The migrating connection holds the write lock (no change made yet), so a
    # second connection reads exactly the state the migration starts from. A
    # connection cannot back itself up while it is inside a write transaction.
    source = raw if in_memory else sqlite3.connect(str(Path(database or "").resolve()))
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest)
    finally:
        dest.close()
        if source is not raw:
            source.close()
    return target


def backup_table_name(table: str, now: datetime) -> str:
    """``ff_backup_<table>_<yyyymmddhhmmss>``, shortened with a hash past 63 bytes."""
    stamp = _timestamp(now)
    name = f"{BACKUP_PREFIX}{table}_{stamp}"
    if len(name.encode("utf-8")) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(table.encode("utf-8")).hexdigest()[:8]
    room = _MAX_IDENTIFIER - len(BACKUP_PREFIX) - len(stamp) - len(digest) - 2
    head = table.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{BACKUP_PREFIX}{head}_{digest}_{stamp}"


def _backup_tables(conn: Connection, tables: Sequence[str], now: datetime) -> tuple[str, ...]:
    """PostgreSQL: copy each table about to lose data, in the same transaction."""
    prep = conn.dialect.identifier_preparer
    made: list[str] = []
    for table in tables:
        name = backup_table_name(table, now)
        conn.exec_driver_sql(
            f"CREATE TABLE {prep.quote(name)} AS SELECT * FROM {prep.quote(table)}"
        )
        made.append(name)
    return tuple(made)


# --------------------------------------------------------------------------- type signatures


@dataclass(frozen=True)
class _Sig:
    """What matters about a column type for a migration."""

    family: str  # text | integer | decimal | float | date | datetime | boolean | json | other
    length: int | None = None  # text: None is unbounded
    size: int = 0  # integer: bytes
    precision: int | None = None
    scale: int | None = None
    name: str = ""

    def __str__(self) -> str:
        if self.family == "text":
            return "TEXT" if self.length is None else f"VARCHAR({self.length})"
        if self.family == "integer":
            return {2: "SMALLINT", 4: "INTEGER"}.get(self.size, "BIGINT")
        if self.family == "decimal":
            if self.precision is None:
                return "NUMERIC"
            return f"NUMERIC({self.precision},{self.scale or 0})"
        return self.name or self.family.upper()

    @property
    def int_digits(self) -> int | None:
        """Digits before the decimal point a value may have (None: unbounded)."""
        if self.family == "integer":
            return {2: 4, 4: 9}.get(self.size, _BIGINT_DIGITS)
        if self.family == "decimal" and self.precision is not None:
            return self.precision - (self.scale or 0)
        return None


def _sig(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> _Sig:
    t: Any = type_
    variants = getattr(t, "_variant_mapping", None)
    if variants and dialect.name in variants:
        t = variants[dialect.name]
    if isinstance(t, sa.types.TypeDecorator):
        t = t.load_dialect_impl(dialect)
    if isinstance(t, sa.Boolean):
        return _Sig("boolean", name="BOOLEAN")
    if isinstance(t, sa.JSON):
        return _Sig("json", name="JSON")
    if isinstance(t, sa.DateTime):
        return _Sig("datetime", name="DATETIME")
    if isinstance(t, sa.Date):
        return _Sig("date", name="DATE")
    if isinstance(t, sa.Float):
        return _Sig("float", name="FLOAT")
    if isinstance(t, sa.Numeric):
        return _Sig("decimal", precision=t.precision, scale=t.scale)
    if isinstance(t, sa.Integer):
        size = 8 if isinstance(t, sa.BigInteger) else 2 if isinstance(t, sa.SmallInteger) else 4
        if dialect.name == "sqlite":
            size = 8  # every SQLite INTEGER holds 64 bits; INTEGER and BIGINT are one type
        return _Sig("integer", size=size)
    if isinstance(t, sa.String):
        length = None if isinstance(t, sa.Text) else t.length
        return _Sig("text", length=length)
    return _Sig("other", name=type(t).__name__.upper())


@dataclass(frozen=True)
class _TypeChange:
    loss: bool
    mode: str  # "sql": the database converts after cut/round; "python": converted row by row
    why: Text | None = None  # what can be lost, in general terms


def _compare_types(old: _Sig, new: _Sig) -> _TypeChange | None:
    """How ``old`` becomes ``new`` (None: nothing to do)."""
    if old == new:
        return None
    if old.family == new.family == "text":
        if new.length is None or (old.length is not None and new.length >= old.length):
            return _TypeChange(False, "sql")
        return _TypeChange(
            True,
            "sql",
            T(
                f"超过 {new.length} 个字符的值会被截断",
                f"values longer than {new.length} characters are cut",
            ),
        )
    if old.family in ("integer", "decimal") and new.family in ("integer", "decimal"):
        old_digits, new_digits = old.int_digits, new.int_digits
        lost_digits = new_digits is not None and (old_digits is None or new_digits < old_digits)
        old_scale = old.scale or 0 if old.family == "decimal" else 0
        new_scale = new.scale or 0 if new.family == "decimal" else 0
        if old.family == "decimal" and old.precision is None and old.scale is None:
            old_scale = 1_000  # unconstrained NUMERIC: any number of decimals
        lost_scale = new_scale < old_scale
        if not (lost_digits or lost_scale):
            return _TypeChange(False, "sql")
        zh, en = [], []
        if lost_scale:
            zh.append(f"小数位超过 {new_scale} 位的值会被四舍五入")
            places = "place" if new_scale == 1 else "places"
            en.append(f"values are rounded to {new_scale} decimal {places}")
        if lost_digits:
            zh.append(f"整数部分超过 {new_digits} 位的值会被清空")
            en.append(f"values with more than {new_digits} digits before the point are cleared")
        return _TypeChange(True, "sql", Text(zh="；".join(zh), en="; ".join(en)))
    if old.family == new.family:
        return _TypeChange(False, "sql")  # e.g. DATETIME vs TIMESTAMP spelling
    if new.family == "text":
        safe = new.length is None or (
            old.family in ("integer", "decimal", "float", "date", "datetime", "boolean")
            and new.length >= 64
        )
        if safe:
            return _TypeChange(False, "python")
        return _TypeChange(
            True,
            "python",
            T(
                f"转换为文本后超过 {new.length} 个字符的值会被截断",
                f"values longer than {new.length} characters as text are cut",
            ),
        )
    return _TypeChange(
        True,
        "python",
        T(f"无法转换为 {new} 的值会被清空", f"values that are not valid {new} are cleared"),
    )


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class _Fk:
    column: str
    referred: str
    ondelete: str
    name: str | None = None


@dataclass
class _Shape:
    """A table's columns, indexes (by name), unique constraints and foreign keys."""

    name: str
    columns: dict[str, sa.types.TypeEngine[Any]]
    indexes: dict[str, tuple[tuple[str, ...], bool]]
    uniques: dict[tuple[str, ...], str | None]
    fks: dict[str, _Fk]


def _ondelete(value: Any) -> str:
    text = str(value or "NO ACTION").upper()
    return text


def _index_name(index: sa.Index, prep: Any) -> str:
    name = prep.format_constraint(index, _alembic_quote=False)
    return str(name)


def _target_shape(table: sa.Table, dialect: Dialect) -> _Shape:
    prep = dialect.identifier_preparer
    indexes = {
        _index_name(ix, prep): (tuple(c.name for c in ix.columns), bool(ix.unique))
        for ix in table.indexes
    }
    uniques: dict[tuple[str, ...], str | None] = {
        tuple(c.name for c in uc.columns): None
        for uc in table.constraints
        if isinstance(uc, sa.UniqueConstraint)
    }
    fks = {
        fk.parent.name: _Fk(
            fk.parent.name, fk.target_fullname.rsplit(".", 1)[0], _ondelete(fk.ondelete)
        )
        for fk in table.foreign_keys
    }
    return _Shape(table.name, {c.name: c.type for c in table.columns}, indexes, uniques, fks)


def _reflect(conn: Connection, names: Sequence[str]) -> dict[str, _Shape]:
    insp = sa.inspect(conn)
    out: dict[str, _Shape] = {}
    for name in names:
        columns = {c["name"]: c["type"] for c in insp.get_columns(name)}
        indexes: dict[str, tuple[tuple[str, ...], bool]] = {}
        for ix in insp.get_indexes(name):
            if ix.get("duplicates_constraint") or not ix.get("name"):
                continue
            cols = tuple(c for c in ix["column_names"] if c is not None)
            indexes[str(ix["name"])] = (cols, bool(ix["unique"]))
        uniques: dict[tuple[str, ...], str | None] = {
            tuple(uc["column_names"]): uc.get("name") for uc in insp.get_unique_constraints(name)
        }
        fks: dict[str, _Fk] = {}
        for fk in insp.get_foreign_keys(name):
            if len(fk["constrained_columns"]) != 1:
                continue
            col = fk["constrained_columns"][0]
            options = fk.get("options") or {}
            fks[col] = _Fk(
                col, fk["referred_table"], _ondelete(options.get("ondelete")), fk.get("name")
            )
        out[name] = _Shape(name, columns, indexes, uniques, fks)
    return out


def _is_formflow_table(name: str) -> bool:
    if name.startswith(BACKUP_PREFIX) or name.startswith("_alembic_tmp"):
        return False
    return name.startswith(ENTITY_PREFIX) or name.startswith(SYSTEM_PREFIX)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Target:
    """A table the blueprint wants, with what the planner needs to describe it."""

    table: sa.Table
    kind: str  # entity | child | system
    owner: str  # entity name, "entity.table_field", or the system table's name
    previous: tuple[str, ...]  # older table names (renamed_from), most likely first
    fields: Mapping[str, Field]  # column -> field
    key_of: Mapping[str, str]  # unique key column -> its field's column
    previous_columns: Mapping[str, str]  # column -> older column name

    def field_name(self, column: str) -> str:
        if column in self.fields:
            return self.fields[column].name
        if column in self.key_of:
            return self.field_name(self.key_of[column])
        return column


def _targets(blueprint: Blueprint, schema: Schema) -> dict[str, _Target]:
    out: dict[str, _Target] = {}
    for ename, et in schema.entities.items():
        entity = et.entity
        old_table = sql_name(entity.renamed_from, ENTITY_PREFIX) if entity.renamed_from else None
        fields = {col.name: entity.fields[f] for f, col in et.columns.items()}
        key_of = {key.name: et.columns[f].name for f, key in et.unique_keys.items()}
        prev: dict[str, str] = {}
        for f, col in et.columns.items():
            fld = entity.fields[f]
            if fld.renamed_from:
                prev[col.name] = sql_name(fld.renamed_from)
                if f in et.unique_keys:
                    prev[et.unique_keys[f].name] = unique_key_column(sql_name(fld.renamed_from))
        out[et.table.name] = _Target(
            et.table, "entity", ename, (old_table,) if old_table else (), fields, key_of, prev
        )
        parents = [et.table.name] + ([old_table] if old_table else [])
        for cname, child in et.children.items():
            tf = child.field
            names = [tf.name] + ([tf.renamed_from] if tf.renamed_from else [])
            previous = [sql_name(n, f"{p}__") for p in parents for n in names]
            previous = [p for p in dict.fromkeys(previous) if p != child.table.name]
            cfields = {col.name: tf.fields[f] for f, col in child.columns.items()}
            cprev = {
                col.name: sql_name(tf.fields[f].renamed_from or "")
                for f, col in child.columns.items()
                if tf.fields[f].renamed_from
            }
            out[child.table.name] = _Target(
                child.table, "child", f"{ename}.{cname}", tuple(previous), cfields, {}, cprev
            )
    system = (schema.audit, schema.idempotency, schema.meta, schema.sequences, schema.users)
    for table in system:
        out[table.name] = _Target(table, "system", table.name, (), {}, {}, {})
    return out


def _display_names(blueprint: Blueprint, schema: Schema) -> dict[str, str]:
    """SQL name -> blueprint name, kept in ff_meta to describe later drops."""
    names: dict[str, str] = {}
    for target in _targets(blueprint, schema).values():
        if target.kind == "system":
            continue
        names[target.table.name] = target.owner
        for col, fld in target.fields.items():
            names[f"{target.table.name}.{col}"] = fld.name
    return names


# --------------------------------------------------------------------------- planning


@dataclass
class _Convert:
    column: str  # final name
    old: _Sig
    new: _Sig
    new_type: sa.types.TypeEngine[Any]
    foreign_keys: tuple[str, ...] = ()  # tables a converted value must exist in


@dataclass
class _SqlAlter:
    column: str  # final name
    old: _Sig
    new: _Sig
    old_type: sa.types.TypeEngine[Any]
    new_type: sa.types.TypeEngine[Any]


@dataclass
class _TableWork:
    """Changes to one existing table, in the terms the applier needs."""

    target: _Target
    live: _Shape
    renames: list[tuple[str, str]] = field(default_factory=list)  # (live, final)
    index_drops: list[str] = field(default_factory=list)
    index_adds: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)
    unique_drops: list[tuple[str, ...]] = field(default_factory=list)  # final column names
    unique_adds: list[tuple[str, ...]] = field(default_factory=list)
    fk_drops: list[_Fk] = field(default_factory=list)  # final column names
    fk_adds: list[_Fk] = field(default_factory=list)
    sql_alters: list[_SqlAlter] = field(default_factory=list)
    converts: list[_Convert] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)  # final names of columns dropped
    adds: list[sa.Column[Any]] = field(default_factory=list)
    clear_all: list[str] = field(default_factory=list)  # ref columns now pointing elsewhere
    clear_dangling: list[_Fk] = field(default_factory=list)  # new FKs on existing columns
    key_fills: list[tuple[str, str]] = field(default_factory=list)  # (key column, source column)
    default_fills: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.target.table.name

    def structural(self) -> bool:
        """Needs ALTERs SQLite can only do by recreating the table."""
        return bool(
            self.unique_drops
            or self.fk_drops
            or self.fk_adds
            or self.sql_alters
            or self.converts
            or self.drops
            or any(c.foreign_keys for c in self.adds)
        )


@dataclass
class _Work:
    """A plan with everything needed to apply it."""

    blueprint_digest: str
    meta: dict[str, str]
    state_current: bool
    changes: list[Change] = field(default_factory=list)
    table_renames: list[tuple[str, str]] = field(default_factory=list)
    creates: list[sa.Table] = field(default_factory=list)
    alters: list[_TableWork] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    backup_sources: set[str] = field(default_factory=set)
    notes: list[Text] = field(default_factory=list)

    def as_plan(self) -> Plan:
        return Plan(
            changes=tuple(self.changes),
            blueprint_digest=self.blueprint_digest,
            recorded_digest=self.meta.get(META_DIGEST),
            state_current=self.state_current,
        )

    def add(self, change: Change, *, source: str | None = None) -> None:
        self.changes.append(change)
        if change.data_loss and source is not None:
            self.backup_sources.add(source)


class _Planner:
    def __init__(self, conn: Connection, blueprint: Blueprint, schema: Schema) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.blueprint = blueprint
        self.schema = schema
        self.targets = _targets(blueprint, schema)
        live_names = [n for n in sa.inspect(conn).get_table_names() if _is_formflow_table(n)]
        self.live = _reflect(conn, live_names)
        self.meta = _read_meta(conn)
        try:
            self.names: dict[str, str] = json.loads(self.meta.get(META_NAMES, "{}"))
        except ValueError:
            self.names = {}

    # -- helpers --

    def _count(self, table: str, where: sa.ColumnElement[bool] | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(sa.table(table))
        if where is not None:
            query = query.where(where)
        return int(self.conn.execute(query).scalar_one())

    def _live_label(self, table: str, column: str | None = None) -> str:
        key = table if column is None else f"{table}.{column}"
        if key in self.names:
            return self.names[key]
        if column is not None:
            return column
        if table.startswith(ENTITY_PREFIX):
            return table[len(ENTITY_PREFIX) :]
        return table

    # -- the plan --

    def plan(self) -> _Work:
        digest = blueprint_digest(self.blueprint)
        state_current = self.meta.get(META_DIGEST) == digest and self.meta.get(
            META_SCHEMA
        ) == schema_digest(self.schema, self.dialect)
        work = _Work(blueprint_digest=digest, meta=self.meta, state_current=state_current)
        claimed: dict[str, str] = {}  # live table -> target table
        # blueprint order (each entity, then its table fields), system tables last;
        # creating follows the foreign keys (create_all orders the tables)
        order = [target.table for target in self.targets.values()]
        for table in order:
            target = self.targets[table.name]
            if table.name in self.live:
                claimed[table.name] = table.name
                continue
            for old in target.previous:
                if old in self.live and old not in self.targets and old not in claimed:
                    claimed[old] = table.name
                    work.table_renames.append((old, table.name))
                    self._rename_table_change(work, target, old)
                    break
            else:
                work.creates.append(table)
                work.changes.append(self._create_change(target))
        renamed = {old: new for old, new in work.table_renames}
        for table in order:
            target = self.targets[table.name]
            live_name = next((k for k, v in claimed.items() if v == table.name), None)
            if live_name is None:
                continue
            tw = self._compare_table(work, target, self.live[live_name], renamed)
            if tw is not None:
                work.alters.append(tw)
        dropped = [n for n in self.live if n not in claimed and n.startswith(ENTITY_PREFIX)]
        for name in self._drop_order(dropped):
            rows = self._count(name)
            label = self._live_label(name)
            if "__" in name[len(ENTITY_PREFIX) :] and "." in label:
                entity, _, tf = label.partition(".")
                detail = T(f"删除 {entity} 的子表 {tf}", f"remove table field '{tf}' of {entity}")
            else:
                detail = T(f"删除实体 {label} 及其记录", f"remove entity '{label}' and its records")
            work.drops.append(name)
            work.add(
                Change(
                    "drop_table",
                    name,
                    None,
                    detail,
                    True,
                    T(
                        f"其 {rows} 行数据将被删除",
                        f"{_n(rows, 'row')} {_be(rows)} deleted",
                    ),
                ),
                source=name,
            )
        return work

    def _drop_order(self, names: Sequence[str]) -> list[str]:
        """Tables that refer to others first, so no foreign key ever dangles."""
        left = sorted(names)
        order: list[str] = []
        while left:
            referenced = {
                fk.referred for n in left for fk in self.live[n].fks.values() if fk.referred != n
            }
            ready = [n for n in left if n not in referenced] or left[:1]  # a cycle: any
            order.extend(ready)
            left = [n for n in left if n not in ready]
        return order

    def _create_change(self, target: _Target) -> Change:
        name = target.table.name
        if target.kind == "entity":
            detail = T(f"新建实体 {target.owner}", f"create entity '{target.owner}'")
        elif target.kind == "child":
            entity, _, tf = target.owner.partition(".")
            detail = T(f"新建 {entity} 的子表 {tf}", f"create table field '{tf}' of {entity}")
        else:
            detail = T(f"新建系统表 {name}", f"create system table {name}")
        return Change("create_table", name, None, detail)

    def _rename_table_change(self, work: _Work, target: _Target, old: str) -> None:
        old_label = self._live_label(old)
        if target.kind == "child":
            entity, _, tf = target.owner.partition(".")
            old_tf = old_label.partition(".")[2] or old_label
            if old_tf == tf:  # its entity was renamed
                detail = T(
                    f"子表 {tf} 随实体改名为 {entity}（保留数据）",
                    f"table field '{tf}' follows its entity to '{entity}' (rows kept)",
                )
            else:
                detail = T(
                    f"将 {entity} 的子表 {old_tf} 改名为 {tf}（保留数据）",
                    f"rename table field '{old_tf}' of {entity} to '{tf}' (rows kept)",
                )
        else:
            detail = T(
                f"将实体 {old_label} 改名为 {target.owner}（保留记录）",
                f"rename entity '{old_label}' to '{target.owner}' (records kept)",
            )
        work.changes.append(Change("rename_table", target.table.name, None, detail))

    def _compare_table(
        self, work: _Work, target: _Target, live: _Shape, renamed: Mapping[str, str]
    ) -> _TableWork | None:
        table = target.table
        name = table.name
        system = target.kind == "system"
        want = _target_shape(table, self.dialect)
        tw = _TableWork(target=target, live=live)
        owner = target.owner
        rows: int | None = None

        def row_count() -> int:
            nonlocal rows
            if rows is None:
                rows = self._count(live.name)
            return rows

        # columns: same name, renamed_from, or new
        col_map: dict[str, str] = {}  # final -> live
        for col in table.columns:
            if col.name in live.columns:
                col_map[col.name] = col.name
                continue
            old = target.previous_columns.get(col.name)
            if (
                old
                and old in live.columns
                and old not in want.columns
                and old not in col_map.values()
            ):
                col_map[col.name] = old
                tw.renames.append((old, col.name))
                if col.name not in target.key_of:
                    field_name = target.field_name(col.name)
                    old_name = self._live_label(live.name, old)
                    work.changes.append(
                        Change(
                            "rename_column",
                            name,
                            col.name,
                            T(
                                f"将 {owner} 的字段 {old_name} 改名为 {field_name}（保留数据）",
                                f"rename field '{old_name}' of {owner} to '{field_name}' "
                                "(values kept)",
                            ),
                        )
                    )
        live_to_final = {v: k for k, v in col_map.items()}
        dropped_live = [c for c in live.columns if c not in live_to_final]
        if system:
            dropped_live = []

        # types
        converted: set[str] = set()
        for final, old_name in col_map.items():
            if system:
                break
            old_sig = _sig(live.columns[old_name], self.dialect)
            new_sig = _sig(table.c[final].type, self.dialect)
            change = _compare_types(old_sig, new_sig)
            if change is None:
                continue
            if change.mode == "python":
                converted.add(final)
                refs = tuple(
                    fk.target_fullname.rsplit(".", 1)[0] for fk in table.c[final].foreign_keys
                )
                tw.converts.append(_Convert(final, old_sig, new_sig, table.c[final].type, refs))
            else:
                tw.sql_alters.append(
                    _SqlAlter(final, old_sig, new_sig, live.columns[old_name], table.c[final].type)
                )
            reason: Text | None = None
            if change.loss:
                reason = self._loss_reason(live.name, old_name, old_sig, new_sig, change)
            field_name = target.field_name(final)
            work.add(
                Change(
                    "alter_type",
                    name,
                    final,
                    T(
                        f"将 {owner} 的字段 {field_name} 从 {old_sig} 改为 {new_sig}",
                        f"change field '{field_name}' of {owner} from {old_sig} to {new_sig}",
                    ),
                    change.loss,
                    reason,
                ),
                source=live.name,
            )

        # dropped columns (a unique key column goes with its field, or with "unique")
        for old_name in dropped_live:
            tw.drops.append(old_name)
            if old_name.endswith("__key") and old_name[: -len("__key")] in live.columns:
                field_col = old_name[: -len("__key")]
                if field_col in live_to_final:
                    field_name = target.field_name(live_to_final[field_col])
                    work.changes.append(
                        Change(
                            "drop_unique",
                            name,
                            old_name,
                            T(
                                f"{owner} 的字段 {field_name} 不再唯一",
                                f"field '{field_name}' of {owner} is no longer unique",
                            ),
                        )
                    )
                continue
            label = self._live_label(live.name, old_name)
            filled = self._count(live.name, sa.column(old_name).is_not(None))
            work.add(
                Change(
                    "drop_column",
                    name,
                    old_name,
                    T(f"从 {owner} 删除字段 {label}", f"remove field '{label}' from {owner}"),
                    True,
                    T(
                        f"有 {filled} 条记录填了该字段，这些值将被删除",
                        f"{_n(filled, 'record')} {_have(filled)} a value in it; "
                        "the values are deleted",
                    ),
                ),
                source=live.name,
            )
        # converted columns are dropped and added again: their indexes go with them
        gone_live = set(dropped_live) | {col_map[c] for c in converted}

        # new columns
        for col in table.columns:
            if col.name in col_map:
                continue
            tw.adds.append(_column_copy(col))
            if col.name in target.key_of:
                source = target.key_of[col.name]
                tw.key_fills.append((col.name, source))
                if source in col_map:
                    field_name = target.field_name(source)
                    uq_change = Change(
                        "add_unique",
                        name,
                        col.name,
                        T(
                            f"将 {owner} 的字段 {field_name} 设为唯一",
                            f"make field '{field_name}' of {owner} unique",
                        ),
                        blocker=self._duplicates(live.name, col_map[source], normalise=True),
                    )
                    work.changes.append(uq_change)
                continue
            fld = target.fields.get(col.name)
            label = target.field_name(col.name)
            detail = (
                T(f"为 {owner} 添加字段 {label}", f"add field '{label}' to {owner}")
                if not system
                else T(f"为 {name} 添加列 {col.name}", f"add column {col.name} to {name}")
            )
            loss, reason = False, None
            if fld is not None and fld.required and row_count() > 0:
                value, usable = _default_value(fld)
                if usable:
                    tw.default_fills.append((col.name, value))
                    detail = T(
                        f"为 {owner} 添加字段 {label}（现有 {row_count()} 条记录填入默认值）",
                        f"add field '{label}' to {owner} (the {row_count()} existing records "
                        "get its default)",
                    )
                elif fld.default_formula is not None:
                    detail = T(
                        f"为 {owner} 添加字段 {label}（默认公式只用于新记录，现有记录留空）",
                        f"add field '{label}' to {owner} (its default formula applies to new "
                        "records; existing ones stay empty)",
                    )
                else:
                    n = row_count()
                    loss = True
                    work.notes.append(
                        T(
                            f"{owner} 的 {n} 条现有记录在必填字段 {label} 中留空",
                            f"{_n(n, 'existing record')} of {owner} {_was(n)} left empty "
                            f"in required field '{label}'",
                        )
                    )
                    reason = T(
                        f"{owner} 已有 {n} 条记录，它们的必填字段 {label} 将没有值"
                        "（可为该字段设置默认值；若允许丢失数据，这些记录会留空）",
                        f"{owner} has {_n(n, 'record')} that would have no value "
                        f"in required field '{label}' (give it a default; when allowed, they "
                        "stay empty)",
                    )
            work.add(Change("add_column", name, col.name, detail, loss, reason), source=live.name)

        # indexes, by name (a renamed table or column gets its indexes renamed)
        def live_cols(cols: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(live_to_final.get(c, c) for c in cols)

        live_ix = {n: (live_cols(cols), u) for n, (cols, u) in live.indexes.items()}
        touched = {live_to_final.get(c, c) for c in gone_live}
        index_drops = [
            n
            for n, (cols, u) in live_ix.items()
            if n not in want.indexes or want.indexes[n] != (cols, u) or touched & set(cols)
        ]
        index_adds = [
            n for n, (cols, u) in want.indexes.items() if n not in live_ix or n in index_drops
        ]
        if system:
            index_drops = [n for n in index_drops if touched & set(live_ix[n][0])]
        tw.index_drops = index_drops
        tw.index_adds = [(n, *want.indexes[n]) for n in index_adds]
        dropped_defs = {live_ix[n] for n in index_drops}
        added_defs = {want.indexes[n] for n in index_adds}
        for ix in index_drops:
            cols, _u = live_ix[ix]
            if live_ix[ix] in added_defs or touched & set(cols):
                continue  # renamed along with its table or column
            label = ", ".join(target.field_name(c) for c in cols)
            work.changes.append(
                Change(
                    "drop_index",
                    name,
                    cols[0] if cols else None,
                    T(
                        f"删除 {owner} 上的索引 {ix}（{label}）",
                        f"remove index {ix} ({label}) of {owner}",
                    ),
                )
            )
        for ix in index_adds:
            cols = want.indexes[ix][0]
            if want.indexes[ix] in dropped_defs:
                continue
            label = ", ".join(target.field_name(c) for c in cols)
            work.changes.append(
                Change(
                    "add_index",
                    name,
                    cols[0] if cols else None,
                    T(f"为 {owner} 的 {label} 建索引", f"index {label} of {owner}"),
                )
            )

        # unique constraints, by columns
        live_uq = {
            live_cols(cols): uq for cols, uq in live.uniques.items() if not (set(cols) & gone_live)
        }
        for cols in live_uq:
            if cols not in want.uniques and not system:
                tw.unique_drops.append(cols)
                if not any(c in target.key_of for c in cols):
                    label = ", ".join(target.field_name(c) for c in cols)
                    work.changes.append(
                        Change(
                            "drop_unique",
                            name,
                            cols[0],
                            T(
                                f"{owner} 的字段 {label} 不再唯一",
                                f"field '{label}' of {owner} is no longer unique",
                            ),
                        )
                    )
        for cols in want.uniques:
            if cols in live_uq:
                continue
            tw.unique_adds.append(cols)
            existing = all(c in col_map for c in cols) and not (set(cols) & converted)
            if existing and not any(c in target.key_of for c in cols):
                label = ", ".join(target.field_name(c) for c in cols)
                work.changes.append(
                    Change(
                        "add_unique",
                        name,
                        cols[0],
                        T(
                            f"将 {owner} 的字段 {label} 设为唯一",
                            f"make field '{label}' of {owner} unique",
                        ),
                        blocker=self._duplicates(live.name, col_map[cols[0]], normalise=False)
                        if len(cols) == 1
                        else None,
                    )
                )

        # foreign keys, by column
        live_fk = {
            live_to_final[c]: fk
            for c, fk in live.fks.items()
            if c in live_to_final and c not in gone_live
        }
        for fcol, fk in live_fk.items():
            referred = renamed.get(fk.referred, fk.referred)
            wanted = want.fks.get(fcol)
            if system:
                continue
            if wanted is not None and (wanted.referred, wanted.ondelete) == (referred, fk.ondelete):
                continue
            tw.fk_drops.append(_Fk(fcol, referred, fk.ondelete, fk.name))
            label = target.field_name(fcol)
            if wanted is None:
                work.changes.append(
                    Change(
                        "drop_foreign_key",
                        name,
                        fcol,
                        T(
                            f"{owner} 的字段 {label} 不再引用 {self._live_label(referred)}",
                            f"field '{label}' of {owner} no longer refers to "
                            f"{self._live_label(referred)}",
                        ),
                    )
                )
            elif wanted.referred != referred:
                filled = self._count(live.name, sa.column(col_map[fcol]).is_not(None))
                tw.clear_all.append(fcol)
                tw.fk_adds.append(wanted)
                work.add(
                    Change(
                        "add_foreign_key",
                        name,
                        fcol,
                        T(
                            f"{owner} 的字段 {label} 改为引用 "
                            f"{self._entity_label(wanted.referred)}",
                            f"field '{label}' of {owner} now refers to "
                            f"{self._entity_label(wanted.referred)}",
                        ),
                        True,
                        T(
                            f"{filled} 个现有引用指向旧的实体，将被清空",
                            f"{_n(filled, 'existing reference')} to the old entity "
                            f"{_be(filled)} cleared",
                        ),
                    ),
                    source=live.name,
                )
            else:
                tw.fk_adds.append(wanted)
                work.changes.append(
                    Change(
                        "add_foreign_key",
                        name,
                        fcol,
                        T(
                            f"{owner} 的字段 {label} 删除时的处理改为 {wanted.ondelete}",
                            f"field '{label}' of {owner}: on delete {wanted.ondelete}",
                        ),
                    )
                )
        for fcol, wanted in want.fks.items():
            if system or fcol in live_fk or fcol not in col_map or fcol in converted:
                continue  # new and converted columns get their foreign key when added
            label = target.field_name(fcol)
            dangling = self._dangling(live.name, col_map[fcol], wanted.referred, renamed)
            tw.fk_adds.append(wanted)
            tw.clear_dangling.append(wanted)
            work.add(
                Change(
                    "add_foreign_key",
                    name,
                    fcol,
                    T(
                        f"{owner} 的字段 {label} 引用 {self._entity_label(wanted.referred)}",
                        f"field '{label}' of {owner} refers to "
                        f"{self._entity_label(wanted.referred)}",
                    ),
                    dangling > 0,
                    T(
                        f"{dangling} 个值找不到对应记录，将被清空",
                        f"{_n(dangling, 'value')} {_match(dangling)} no record and "
                        f"{_be(dangling)} cleared",
                    )
                    if dangling
                    else None,
                ),
                source=live.name,
            )
        busy = any(
            (
                tw.renames,
                tw.index_drops,
                tw.index_adds,
                tw.unique_drops,
                tw.unique_adds,
                tw.fk_drops,
                tw.fk_adds,
                tw.sql_alters,
                tw.converts,
                tw.drops,
                tw.adds,
            )
        )
        return tw if busy else None

    def _entity_label(self, table: str) -> str:
        for target in self.targets.values():
            if target.table.name == table:
                return target.owner
        return self._live_label(table)

    def _loss_reason(
        self, table: str, column: str, old: _Sig, new: _Sig, change: _TypeChange
    ) -> Text | None:
        col: sa.ColumnClause[Any] = sa.column(column)
        if change.mode == "python":
            n = self._count(table, col.is_not(None))
            base = change.why or Text()
            return T(
                f"{n} 个现有值需要转换：{base.zh}",
                f"{_n(n, 'existing value')} {_be(n)} converted: {base.en}",
            )
        n = self._count(table, _lossy_where(col, old, new))
        if n == 0:
            return T(
                f"现有数据不受影响（{(change.why or Text()).zh}）",
                f"no existing value is affected ({(change.why or Text()).en})",
            )
        why = change.why or Text()
        return T(
            f"{n} 个现有值受影响：{why.zh}",
            f"{_n(n, 'existing value')} affected: {why.en}",
        )

    def _duplicates(self, table: str, column: str, *, normalise: bool) -> Text | None:
        """Values that appear more than once (would break a new unique constraint)."""
        values: list[Any] = list(
            self.conn.execute(
                sa.select(sa.column(column))
                .select_from(sa.table(table))
                .where(sa.column(column).is_not(None))
            ).scalars()
        )
        seen: dict[Any, int] = {}
        for value in values:
            key = normalise_unique(value) if normalise else value
            seen[key] = seen.get(key, 0) + 1
        dupes = [k for k, n in seen.items() if n > 1]
        if not dupes:
            return None
        shown = ", ".join(repr(d) for d in sorted(dupes, key=str)[:5])
        return T(
            f"有 {len(dupes)} 个值重复（{shown}）；请先修正这些记录",
            f"{_n(len(dupes), 'value')} {_appear(len(dupes))} more than once "
            f"({shown}); fix those records first",
        )

    def _dangling(self, table: str, column: str, referred: str, renamed: Mapping[str, str]) -> int:
        source = next((old for old, new in renamed.items() if new == referred), referred)
        if source not in self.live:
            return self._count(table, sa.column(column).is_not(None))
        ids: sa.Select[Any] = sa.select(sa.column("id")).select_from(sa.table(source))
        return self._count(
            table, sa.and_(sa.column(column).is_not(None), sa.column(column).not_in(ids))
        )


def _column_copy(col: sa.Column[Any], *, foreign_keys: bool = True) -> sa.Column[Any]:
    """A detached copy of a target column for ADD COLUMN (no unique/index flags)."""
    fks = [
        sa.ForeignKey(fk.target_fullname, ondelete=fk.ondelete)
        for fk in (col.foreign_keys if foreign_keys else ())
    ]
    return sa.Column(col.name, col.type, *fks, nullable=True)


def _default_value(fld: Field) -> tuple[Any, bool]:
    """The field's plain default as stored, and whether there is one."""
    if fld.default is None:
        return None, False
    kind = kind_of(fld)
    try:
        value = kind.coerce(fld, fld.default)
    except FieldValueError:
        return None, False
    if value is None:
        return None, False
    return kind.to_storage(fld, value), True


def _lossy_where(col: sa.ColumnClause[Any], old: _Sig, new: _Sig) -> sa.ColumnElement[bool]:
    """Rows whose value does not fit ``new`` as it is (for counting and fixing)."""
    if new.family == "text":
        assert new.length is not None
        return sa.func.length(col) > new.length
    parts: list[sa.ColumnElement[bool]] = []
    digits = new.int_digits
    if digits is not None:
        parts.append(sa.func.abs(col) >= _limit(digits))
    scale = new.scale or 0 if new.family == "decimal" else 0
    if old.family == "decimal":
        parts.append(col != sa.func.round(col, scale))
    return sa.and_(col.is_not(None), sa.or_(*parts)) if parts else sa.false()


def _limit(digits: int) -> sa.ColumnElement[Any]:
    if digits >= _BIGINT_DIGITS:
        return sa.literal(_BIG_MAX, sa.BigInteger())
    return sa.literal(10**digits, sa.BigInteger())


# --------------------------------------------------------------------------- value conversion


class _NoValue(Exception):
    """A value that does not convert to the new type."""


_TRUE = {"1", "true", "t", "yes", "y", "on", "是", "对"}
_FALSE = {"0", "false", "f", "no", "n", "off", "否", "不"}


def _decode(raw: Any, old: _Sig) -> Any:
    """A raw DBAPI value of the old column as a Python value of its family."""
    if raw is None:
        return None
    family = old.family
    if family == "boolean":
        if isinstance(raw, str):
            return raw.strip().lower() in _TRUE
        return bool(raw)
    if family == "json":
        return json.loads(raw) if isinstance(raw, str) else raw
    if family == "date":
        if isinstance(raw, datetime):
            return raw.date()
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
    if family == "datetime":
        if isinstance(raw, datetime):
            value = raw
        elif isinstance(raw, date):
            value = datetime(raw.year, raw.month, raw.day)
        else:
            value = datetime.fromisoformat(str(raw))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if family in ("decimal", "float"):
        return Decimal(str(raw))
    if family == "integer":
        return int(raw)
    return raw


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(",", "")
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise _NoValue from exc
    raise _NoValue


def _encode(value: Any, new: _Sig) -> Any:
    """``value`` as a value of the new column's type, or raise :class:`_NoValue`."""
    family = new.family
    if family == "text":
        text = _as_text(value)
        return text if new.length is None else text[: new.length]
    if family in ("integer", "decimal", "float"):
        number = _as_decimal(value)
        if not number.is_finite():
            raise _NoValue
        scale = 0 if family == "integer" else (new.scale or 0)
        if family != "float" and (family == "integer" or new.scale is not None):
            number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        digits = new.int_digits
        if digits is not None and abs(number) >= 10**digits:
            raise _NoValue
        if family == "integer":
            return int(number)
        return float(number) if family == "float" else number
    if family == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, Decimal, float)):
            return value != 0
        text = _as_text(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _NoValue
    if family == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(_as_text(value).strip()[:10])
        except ValueError as exc:
            raise _NoValue from exc
    if family == "datetime":
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        else:
            try:
                moment = datetime.fromisoformat(_as_text(value).strip())
            except ValueError as exc:
                raise _NoValue from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if family == "json":
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        return value
    raise _NoValue


# --------------------------------------------------------------------------- applying


class _Applier:
    """Carries out a :class:`_Work` on a locked connection, in a fixed order.

    1. rename tables; 2. create tables; 3. change each existing table; 4. drop
    tables. For one table: rename columns, drop indexes, read values to
    convert, cut/round values for narrowed types, clear references to another
    entity, then the structural part (drop constraints, alter types, drop and
    add columns, add foreign keys: one batch "move and copy" on SQLite), then
    fill converted values, unique keys and defaults, then add unique constraints
    and indexes.
    """

    def __init__(self, conn: Connection, work: _Work) -> None:
        self.conn = conn
        self.work = work
        self.sqlite = conn.dialect.name == "sqlite"
        self.op = Operations(MigrationContext.configure(connection=conn))
        self.notes: list[Text] = []

    def run(self) -> list[Text]:
        for old, new in self.work.table_renames:
            self.op.rename_table(old, new)
        if self.work.creates:
            # create_all orders the new tables by their foreign keys (and breaks cycles)
            self.work.creates[0].metadata.create_all(self.conn, tables=self.work.creates)
        for tw in self.work.alters:
            self._alter(tw)
        for name in self.work.drops:
            self.op.drop_table(name)
        return [*self.work.notes, *self.notes]

    def _alter(self, tw: _TableWork) -> None:
        name = tw.name
        op = self.op
        for old, new in tw.renames:
            op.alter_column(name, old, new_column_name=new, existing_type=tw.live.columns[old])
        for index in tw.index_drops:
            op.drop_index(index, table_name=name)
        converted = {c.column: self._read_converted(name, c) for c in tw.converts}
        for alter in tw.sql_alters:
            self._fit_values(name, alter)
        for cleared in tw.clear_all:
            self.conn.execute(sa.update(sa.table(name, sa.column(cleared))).values({cleared: None}))
        for fk in tw.clear_dangling:
            ids: sa.Select[Any] = sa.select(sa.column("id")).select_from(sa.table(fk.referred))
            target = sa.table(name, sa.column(fk.column))
            self.conn.execute(
                sa.update(target)
                .where(target.c[fk.column].is_not(None), target.c[fk.column].not_in(ids))
                .values({fk.column: None})
            )
        if tw.structural():
            if self.sqlite:
                self._structural_sqlite(tw)
            else:
                self._structural_pg(tw)
        elif tw.adds:
            for col in tw.adds:
                op.add_column(name, col)
        for conv in tw.converts:
            self._write_converted(name, conv, converted[conv.column])
        for key, source in tw.key_fills:
            self._fill_keys(name, key, source)
        for col_name, value in tw.default_fills:
            column = tw.target.table.c[col_name]
            target = sa.table(name, sa.column(col_name, column.type))
            self.conn.execute(sa.update(target).values({col_name: value}))
        if tw.unique_adds:
            if self.sqlite:
                with self._batch(tw) as batch:
                    for cols in tw.unique_adds:
                        batch.create_unique_constraint(_uq_name(name, cols), list(cols))
            else:
                for cols in tw.unique_adds:
                    op.create_unique_constraint(None, name, list(cols))
        for index, cols, unique in tw.index_adds:
            op.create_index(index, name, list(cols), unique=unique)

    def _structural_pg(self, tw: _TableWork) -> None:
        name, op = tw.name, self.op
        for cols in tw.unique_drops:
            uq = next(n for c, n in tw.live.uniques.items() if _renamed(c, tw) == cols)
            op.drop_constraint(str(uq), name, type_="unique")
        for fk in tw.fk_drops:
            op.drop_constraint(str(fk.name), name, type_="foreignkey")
        for alter in tw.sql_alters:
            op.alter_column(name, alter.column, type_=alter.new_type, existing_type=alter.old_type)
        for dropped in tw.drops:
            op.drop_column(name, dropped)
        for conv in tw.converts:
            op.drop_column(name, conv.column)
        for col in tw.adds:
            op.add_column(name, col)
        for conv in tw.converts:
            op.add_column(name, _column_copy(tw.target.table.c[conv.column]))
        for fk in tw.fk_adds:
            op.create_foreign_key(
                None, name, fk.referred, [fk.column], ["id"], ondelete=fk.ondelete
            )

    @contextmanager
    def _batch(self, tw: _TableWork) -> Iterator[BatchOperations]:
        """SQLite "move and copy" of one table, keeping AUTOINCREMENT and its counter.

        Reflection does not see ``AUTOINCREMENT``; without it the new table would
        reuse the ids of deleted records, so the flag comes from the target table
        and the ``sqlite_sequence`` high-water mark is put back afterwards.
        """
        name = tw.name
        autoincrement = bool(tw.target.table.dialect_options["sqlite"].get("autoincrement"))
        seq: int | None = None
        if autoincrement and sa.inspect(self.conn).has_table("sqlite_sequence"):
            seq = self.conn.execute(
                sa.text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": name}
            ).scalar()
        with self.op.batch_alter_table(
            name,
            recreate="always",
            naming_convention=BATCH_NAMING,
            table_kwargs={"sqlite_autoincrement": True} if autoincrement else {},
        ) as batch:
            yield batch
        if seq is not None:
            updated = self.conn.execute(
                sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :name AND seq < :seq"),
                {"seq": seq, "name": name},
            ).rowcount
            exists = self.conn.execute(
                sa.text("SELECT 1 FROM sqlite_sequence WHERE name = :name"), {"name": name}
            ).first()
            if not updated and exists is None:
                self.conn.execute(
                    sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
                    {"name": name, "seq": seq},
                )

    def _structural_sqlite(self, tw: _TableWork) -> None:
        name = tw.name
        reflected = _reflect(self.conn, [name])[name]
        with self._batch(tw) as batch:
            for cols in tw.unique_drops:
                uq = reflected.uniques.get(cols)
                batch.drop_constraint(uq or _uq_name(name, cols), type_="unique")
            for fk in tw.fk_drops:
                live = reflected.fks[fk.column]
                batch.drop_constraint(
                    live.name or f"fk_{name}_{fk.column}_{live.referred}", type_="foreignkey"
                )
            for alter in tw.sql_alters:
                batch.alter_column(alter.column, type_=alter.new_type, existing_type=alter.old_type)
            for dropped in tw.drops:
                batch.drop_column(dropped)
            for conv in tw.converts:
                batch.drop_column(conv.column)
            # batch mode wants named constraints: new columns get their foreign
            # keys as separate, named constraints
            added = [*tw.adds, *(tw.target.table.c[conv.column] for conv in tw.converts)]
            new_fks: list[_Fk] = []
            for col in added:
                batch.add_column(_column_copy(col, foreign_keys=False))
                new_fks.extend(
                    _Fk(col.name, fk.target_fullname.rsplit(".", 1)[0], _ondelete(fk.ondelete))
                    for fk in col.foreign_keys
                )
            for fk in [*new_fks, *tw.fk_adds]:
                batch.create_foreign_key(
                    f"fk_{name}_{fk.column}_{fk.referred}",
                    fk.referred,
                    [fk.column],
                    ["id"],
                    ondelete=fk.ondelete,
                )

    def _fit_values(self, name: str, alter: _SqlAlter) -> None:
        """Cut or round values so the narrower type takes them as they are."""
        target = sa.table(name, sa.column(alter.column))
        col = target.c[alter.column]
        old, new = alter.old, alter.new
        if new.family == "text":
            if new.length is not None and (old.length is None or new.length < old.length):
                self.conn.execute(
                    sa.update(target)
                    .where(sa.func.length(col) > new.length)
                    .values({alter.column: sa.func.substr(col, 1, new.length)})
                )
            return
        digits = new.int_digits
        if digits is not None and (old.int_digits is None or digits < old.int_digits):
            self.conn.execute(
                sa.update(target)
                .where(sa.func.abs(col) >= _limit(digits))
                .values({alter.column: None})
            )
        if old.family == "decimal":
            scale = new.scale or 0 if new.family == "decimal" else 0
            if old.scale is None or scale < old.scale:
                self.conn.execute(
                    sa.update(target)
                    .where(col != sa.func.round(col, scale))
                    .values({alter.column: sa.func.round(col, scale)})
                )

    def _read_converted(self, name: str, conv: _Convert) -> list[tuple[Any, Any]]:
        rows: Sequence[Any] = self.conn.execute(
            sa.select(sa.column("id"), sa.column(conv.column))
            .select_from(sa.table(name))
            .where(sa.column(conv.column).is_not(None))
        ).all()
        out: list[tuple[Any, Any]] = []
        failed = 0
        for row_id, raw in rows:
            try:
                out.append((row_id, _encode(_decode(raw, conv.old), conv.new)))
            except (_NoValue, ValueError, TypeError, ArithmeticError):
                failed += 1
        if failed:
            self.notes.append(
                T(
                    f"{name}.{conv.column}：{failed} 个值无法转换为 {conv.new}，已清空",
                    f"{name}.{conv.column}: {_n(failed, 'value')} did not convert to "
                    f"{conv.new} and {_was(failed)} cleared",
                )
            )
        return out

    def _write_converted(self, name: str, conv: _Convert, values: list[tuple[Any, Any]]) -> None:
        for fk in conv.foreign_keys:
            ids: set[Any] = set(
                self.conn.execute(sa.select(sa.column("id")).select_from(sa.table(fk))).scalars()
            )
            kept = [(i, v) for i, v in values if v in ids]
            if len(kept) < len(values):
                n = len(values) - len(kept)
                self.notes.append(
                    T(
                        f"{name}.{conv.column}：{n} 个值找不到对应记录，已清空",
                        f"{name}.{conv.column}: {_n(n, 'value')} matched no record and "
                        f"{_was(n)} cleared",
                    )
                )
            values = kept
        if not values:
            return
        target = sa.table(name, sa.column("id"), sa.column(conv.column, conv.new_type))
        stmt = (
            sa.update(target)
            .where(target.c.id == sa.bindparam("_id"))
            .values({conv.column: sa.bindparam("_value", type_=conv.new_type)})
        )
        self.conn.execute(stmt, [{"_id": i, "_value": v} for i, v in values])

    def _fill_keys(self, name: str, key: str, source: str) -> None:
        rows: Sequence[Any] = self.conn.execute(
            sa.select(sa.column("id"), sa.column(source))
            .select_from(sa.table(name))
            .where(sa.column(source).is_not(None))
        ).all()
        if not rows:
            return
        target = sa.table(name, sa.column("id"), sa.column(key))
        stmt = (
            sa.update(target)
            .where(target.c.id == sa.bindparam("_id"))
            .values({key: sa.bindparam("_key")})
        )
        self.conn.execute(stmt, [{"_id": i, "_key": normalise_unique(v)} for i, v in rows])


def _n(count: int, noun: str) -> str:
    """``1 record`` / ``2 records``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _be(count: int) -> str:
    return "is" if count == 1 else "are"


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _have(count: int) -> str:
    return "has" if count == 1 else "have"


def _match(count: int) -> str:
    return "matches" if count == 1 else "match"


def _appear(count: int) -> str:
    return "appears" if count == 1 else "appear"


def _renamed(cols: tuple[str, ...], tw: _TableWork) -> tuple[str, ...]:
    mapping = dict(tw.renames)
    return tuple(mapping.get(c, c) for c in cols)


def _uq_name(table: str, cols: tuple[str, ...]) -> str:
    return f"uq_{table}_{cols[0]}"


__all__ = [
    "MIGRATION_LOCK_KEY",
    "Change",
    "MigrationFailed",
    "MigrationRefused",
    "MigrationResult",
    "Plan",
    "apply_migration",
    "backup_table_name",
    "blueprint_digest",
    "ensure_current",
    "initialise",
    "normalise_unique",
    "plan_migration",
    "schema_digest",
]
