"""``formflow migrate PATH [--db URL] [--plan] [--allow-data-loss] [--backup-dir DIR]``.

Compares the blueprint at PATH with the database and applies the difference
(see :mod:`engine.storage.migrate`). Prints the plan first, then what was done.

* ``--plan``: print the plan, change nothing, exit 0 (also when it would lose data).
* A plan that loses data is refused (exit 1) unless ``--allow-data-loss`` is
  given; then a backup is taken first and its place is printed.
* ``--db`` defaults to the SQLite file beside the blueprint
  (``engine.storage.database.default_url``), unless ``FORMFLOW_DB`` (environment or
  config file, :mod:`engine.config`) names one.

Exit codes follow the CLI's convention: 0 done, 1 a problem the user can fix
(a bad blueprint, refused data loss, a database that cannot be reached or that
refused a step), 2 a bug (one line, never a traceback).
"""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa

from engine.commands.output import fail, internal_error
from engine.errors import BlueprintError, FormflowError
from engine.i18n import LANGUAGES, Text

__all__ = ["migrate_command"]


@click.command("migrate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: the SQLite file beside the blueprint).",
)
@click.option("--plan", "plan_only", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--allow-data-loss",
    is_flag=True,
    help="Apply changes that drop or narrow data (a backup is taken first).",
)
@click.option(
    "--backup-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the SQLite backup (default: beside the database file).",
)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of messages: zh or en (default: the blueprint's default_locale, else zh).",
)
def migrate_command(
    path: Path,
    db_url: str | None,
    plan_only: bool,
    allow_data_loss: bool,
    backup_dir: Path | None,
    lang: str | None,
) -> None:
    """Bring the database at --db up to the blueprint at PATH."""
    from engine.config import database_url
    from engine.loader import load  # the loader pulls in the whole checker: only when run
    from engine.storage.database import create_engine
    from engine.storage.migrate import (
        MigrationRefused,
        apply_migration,
        plan_migration,
    )
    from engine.storage.schema import build_schema

    chosen = lang or "zh"
    try:
        try:
            blueprint = load(path, lang=lang)
        except BlueprintError as exc:
            click.echo(exc.render(chosen))
            fail(exc.text, chosen, 1)
        chosen = lang or blueprint.default_locale or "zh"
        url = database_url(db_url, path)
        engine = create_engine(_plan_url(url) if plan_only else url)
        try:
            schema = build_schema(blueprint)
            plan = plan_migration(engine, blueprint, schema)
            click.echo(plan.render(chosen))
            if plan_only or plan.empty:
                return
            try:
                result = apply_migration(
                    engine,
                    blueprint,
                    schema,
                    plan,
                    allow_data_loss=allow_data_loss,
                    backup_dir=backup_dir,
                )
            except MigrationRefused as exc:
                fail(exc.text, chosen, 1)
            click.echo(result.render(chosen))
        finally:
            engine.dispose()
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except sa.exc.OperationalError as exc:
        fail(
            Text(zh=f"无法使用数据库：{exc.orig}", en=f"cannot use the database: {exc.orig}"),
            chosen,
            1,
        )
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


def _plan_url(url: str) -> str:
    """``--plan`` on a SQLite file that does not exist yet plans against an empty
    in-memory database, so planning never creates the file."""
    made = sa.engine.make_url(url)
    database = made.database
    if made.get_backend_name() == "sqlite" and database and database != ":memory:":
        return url if Path(database).exists() else "sqlite://"
    return url
