"""Whole-database backups and restores (``formflow backup`` / ``formflow restore``).

* **SQLite**: SQLite's online backup API (``sqlite3.Connection.backup``) copies
  the database page by page, consistently, while the app keeps reading and
  writing it; the backup is an ordinary SQLite file. Restoring copies it back
  the same way (the target is replaced in one step, under its write lock).
* **PostgreSQL**: ``pg_dump --format=custom`` (one consistent snapshot, taken
  while the app runs); ``pg_restore``'s SQL runs in one ``psql`` transaction,
  so a failed restore leaves the database as it was. The tools must be on ``PATH``
  (Debian/Ubuntu: ``apt install postgresql-client``, of the server's major
  version or newer); without them the command says so.

A backup is written to a temporary file beside ``OUT`` and renamed into place
when complete, so ``OUT`` is never half a backup; an existing ``OUT`` is
refused unless ``force``. A restore refuses a target database that has any
table unless ``force``; with ``force`` a SQLite target is replaced and a
PostgreSQL target's ``public`` schema is dropped and restored from the backup.
The kind of the backup file (SQLite or a PostgreSQL custom dump) must match the
target URL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess  # runs pg_dump/pg_restore with argument lists, no shell  # nosec B404
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from engine.errors import FormflowError
from engine.i18n import T, Text
from engine.storage.database import normalise_url

__all__ = ["BackupFailed", "Restored", "backup", "kind_of_file", "restore"]

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
_PAGES_PER_STEP = 1024  # the backup API copies this many pages, then lets writers in


class BackupFailed(FormflowError):
    """A backup or restore that could not be made (nothing was changed)."""

    http_status = 500
    default_message = Text(zh="备份或恢复失败", en="The backup or restore failed")


@dataclass(frozen=True)
class Restored:
    """What a restore brought back: the tables and the schema version it records."""

    tables: int
    schema_version: int | None


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:":
        raise BackupFailed(
            T("内存数据库无法备份或恢复", "an in-memory database cannot be backed up or restored")
        )
    return Path(database)


def kind_of_file(path: Path) -> str:
    """``sqlite``, ``postgresql`` (a custom-format dump) or ``unknown``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise BackupFailed(T(f"无法读取 {path}：{exc}", f"cannot read {path}: {exc}")) from exc
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_MAGIC):
        return "postgresql"
    return "unknown"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupFailed(
            T(
                f"找不到 {name}：请安装 PostgreSQL 客户端工具（如 apt install postgresql-client，"
                "版本不低于服务器的主版本），并确保它在 PATH 中",
                f"{name} is not installed: install the PostgreSQL client tools (e.g. "
                "apt install postgresql-client, the server's major version or newer) "
                "and put them on PATH",
            )
        )
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq connection URI of ``url`` without its password, and the environment."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], what: Text) -> None:
    done = subprocess.run(  # fixed tool path and argument list, no shell  # nosec B603
        command, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        shown = "; ".join(detail[-3:]) if detail else f"exit {done.returncode}"
        raise BackupFailed(T(f"{what.get('zh')}失败：{shown}", f"{what.get('en')} failed: {shown}"))


def _temporary(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial-{os.getpid()}")


def backup(db_url: str, out: Path, *, force: bool = False) -> Path:
    """Write a backup of the database at ``db_url`` to ``out`` (see the module doc)."""
    url = make_url(normalise_url(db_url))
    if out.exists() and not force:
        raise BackupFailed(
            T(
                f"{out} 已存在；换一个文件名，或加 --force 覆盖",
                f"{out} already exists; choose another name or give --force to overwrite it",
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = _temporary(out)
    try:
        if _is_sqlite(url):
            _backup_sqlite(_sqlite_path(url), partial)
        else:
            uri, env = _libpq(url)
            command = [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(partial)]
            _run([*command, "--dbname", uri], env, T("pg_dump 备份", "pg_dump"))
        partial.replace(out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return out


def _backup_sqlite(source_path: Path, target: Path) -> None:
    if not source_path.is_file():
        raise BackupFailed(
            T(f"数据库文件 {source_path} 不存在", f"the database file {source_path} does not exist")
        )
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest, pages=_PAGES_PER_STEP)
    except sqlite3.Error as exc:
        raise BackupFailed(
            T(f"SQLite 备份失败：{exc}", f"the SQLite backup failed: {exc}")
        ) from exc
    finally:
        dest.close()
        source.close()


def _tables(engine: sa.engine.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(sa.inspect(conn).get_table_names())


def _refuse_non_empty(tables: list[str], force: bool) -> None:
    if tables and not force:
        raise BackupFailed(
            T(
                f"目标数据库不是空的（已有 {len(tables)} 张表）；恢复会覆盖它，确认请加 --force",
                f"the target database is not empty ({len(tables)} tables); restoring would "
                "overwrite it: give --force to do so",
            )
        )


def _mismatch(found: str, url: URL) -> BackupFailed:
    wanted = "sqlite" if _is_sqlite(url) else "postgresql"
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL (pg_dump)", "unknown": "?"}
    if found == "unknown":
        return BackupFailed(
            T(
                "该文件不是 Formflow 备份（既非 SQLite 数据库，也非 pg_dump 自定义格式）",
                "this file is not a Formflow backup (neither a SQLite database nor a "
                "pg_dump custom-format dump)",
            )
        )
    return BackupFailed(
        T(
            f"这是 {names[found]} 的备份，不能恢复到 {names[wanted]} 数据库",
            f"this is a {names[found]} backup; it cannot be restored into a "
            f"{names[wanted]} database",
        )
    )


def restore(db_url: str, source: Path, *, force: bool = False) -> Restored:
    """Restore the backup at ``source`` into the database at ``db_url``."""
    url = make_url(normalise_url(db_url))
    if not source.is_file():
        raise BackupFailed(
            T(f"备份文件 {source} 不存在", f"the backup file {source} does not exist")
        )
    found = kind_of_file(source)
    if found != ("sqlite" if _is_sqlite(url) else "postgresql"):
        raise _mismatch(found, url)
    engine = sa.create_engine(url)
    try:
        if _is_sqlite(url):
            target = _sqlite_path(url)
            if target.exists():
                _refuse_non_empty(_tables(engine), force)
            engine.dispose()
            _restore_sqlite(source, target)
        else:
            _refuse_non_empty(_tables(engine), force)
            _restore_postgres(url, source)
        return _restored(engine)
    finally:
        engine.dispose()


def _restore_sqlite(source_path: Path, target_path: Path) -> None:
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        if source.execute("PRAGMA quick_check").fetchone() != ("ok",):
            raise BackupFailed(
                T(f"备份文件 {source_path} 已损坏", f"the backup file {source_path} is damaged")
            )
        target_path.parent.mkdir(parents=True, exist_ok=True)
        dest = sqlite3.connect(str(target_path), timeout=30)
        try:
            source.backup(dest)
        finally:
            dest.close()
    except sqlite3.Error as exc:
        raise BackupFailed(
            T(f"SQLite 恢复失败：{exc}", f"the SQLite restore failed: {exc}")
        ) from exc
    finally:
        source.close()


def _restore_postgres(url: URL, source: Path) -> None:
    """``pg_restore``'s SQL piped into one ``psql`` transaction that first empties ``public``.

    Everything (dropping what the target had, recreating every table, its rows,
    indexes, triggers and sequence positions) commits together or not at all.
    """
    restore_tool, psql = _tool("pg_restore"), _tool("psql")
    uri, env = _libpq(url)
    _run([restore_tool, "--list", str(source)], env, T("读取备份", "reading the backup"))
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as load_err:
        dump = subprocess.Popen(  # fixed tool path and argument list, no shell  # nosec B603
            [restore_tool, "--no-owner", "--file", "-", str(source)],
            stdout=subprocess.PIPE,
            stderr=dump_err,
            env=env,
        )
        load = subprocess.Popen(  # fixed tool path and argument list, no shell  # nosec B603
            [
                psql,
                "--quiet",
                "--no-psqlrc",
                "--single-transaction",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                uri,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=load_err,
            env=env,
        )
        assert dump.stdout is not None and load.stdin is not None
        try:
            load.stdin.write(b"DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
            shutil.copyfileobj(dump.stdout, load.stdin)
        except BrokenPipeError:  # psql stopped at an error: its stderr says which
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                load.stdin.close()
            dump.stdout.close()
        dump.wait()
        load.wait()
        dump_err.seek(0)
        load_err.seek(0)
        errors = (
            dump_err.read().decode(errors="replace"),
            load_err.read().decode(errors="replace"),
        )
    for code, err, what in (
        (load.returncode, errors[1], T("psql 恢复", "psql")),  # first: its error stops both
        (dump.returncode, errors[0], T("pg_restore 恢复", "pg_restore")),
    ):
        if code != 0:
            lines = err.strip().splitlines()
            shown = "; ".join(lines[-3:]) if lines else f"exit {code}"
            raise BackupFailed(
                T(
                    f"{what.get('zh')}失败，数据库未改变：{shown}",
                    f"{what.get('en')} failed; the database is unchanged: {shown}",
                )
            )


def _restored(engine: sa.engine.Engine) -> Restored:
    tables = _tables(engine)
    version: int | None = None
    if "ff_meta" in tables:
        with engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT value FROM ff_meta WHERE key = 'schema_version'")
            ).scalar()
        with contextlib.suppress(TypeError, ValueError):
            version = int(value) if value is not None else None
    return Restored(tables=len(tables), schema_version=version)
