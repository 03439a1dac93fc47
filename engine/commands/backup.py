"""``formflow backup PATH [--db URL] OUT`` and ``formflow restore PATH [--db URL] IN``.

The database of the blueprint at PATH (``--db``, else ``FORMFLOW_DB``, else the
SQLite file beside it) is copied to the file OUT, or replaced by the backup IN
(:mod:`engine.storage.backup`): SQLite with its online backup API, safe while
the app writes; PostgreSQL with ``pg_dump``/``pg_restore`` (custom format),
which must be installed.

* ``backup`` refuses an existing OUT unless ``--force``; OUT appears only
  when the backup is complete.
* ``restore`` refuses a database that has any table unless ``--force`` (then
  the whole database is replaced by the backup). Running app processes pick the
  restored schema up like a migration; run ``formflow migrate`` when the
  blueprint has moved on since the backup.

Exit codes: 0 done, 1 a problem the user can fix (a missing tool, a non-empty
target, a file of the wrong kind), 2 a bug.
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.commands.output import fail, internal_error
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, Text

__all__ = ["backup_command", "restore_command"]

_DB = click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: FORMFLOW_DB, else the SQLite file beside the blueprint).",
)
_LANG = click.option(
    "--lang", type=click.Choice(LANGUAGES), default=None, help="Language of messages."
)


@click.command("backup")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_DB
@click.option("--force", is_flag=True, help="Overwrite OUT when it exists.")
@_LANG
def backup_command(
    path: Path, out: Path, db_url: str | None, force: bool, lang: str | None
) -> None:
    """Back up the database of the blueprint at PATH to the file OUT."""
    chosen = lang or "zh"
    try:
        from engine.config import database_url
        from engine.storage.backup import backup

        written = backup(database_url(db_url, path), out, force=force)
        size = written.stat().st_size
        click.echo(
            Text(
                zh=f"已备份到 {written}（{size:,} 字节）",
                en=f"backed up to {written} ({size:,} bytes)",
            ).get(chosen)
        )
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("source", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@_DB
@click.option("--force", is_flag=True, help="Replace a database that is not empty.")
@_LANG
def restore_command(
    path: Path, source: Path, db_url: str | None, force: bool, lang: str | None
) -> None:
    """Restore the backup IN into the database of the blueprint at PATH."""
    chosen = lang or "zh"
    try:
        from engine.config import database_url
        from engine.storage.backup import restore

        done = restore(database_url(db_url, path), source, force=force)
        version = "?" if done.schema_version is None else str(done.schema_version)
        click.echo(
            Text(
                zh=f"已从 {source} 恢复：{done.tables} 张表，结构版本 {version}",
                en=f"restored from {source}: {done.tables} tables, schema version {version}",
            ).get(chosen)
        )
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)
