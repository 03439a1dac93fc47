"""Backups taken before a migration that may lose data."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from engine.i18n import T
from engine.storage.migrate.meta import _MAX_IDENTIFIER, BACKUP_PREFIX
from engine.storage.migrate.results import MigrationFailed

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
    digest = hashlib.sha1(table.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
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
            f"CREATE TABLE {prep.quote(name)} AS SELECT * FROM {prep.quote(table)}"  # nosec B608
        )
        made.append(name)
    return tuple(made)
