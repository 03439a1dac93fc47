"""``formflow import PATH ENTITY FILE``: import a CSV or XLSX file into an entity.

::

    formflow import PATH ENTITY FILE [--db URL] [--partial] [--update-on FIELD]
                    [--dry-run] [--mapping FILE] [--as USER] [--report OUT.xlsx]
                    [--lang zh|en]

PATH is the blueprint, ENTITY the entity to import into, FILE the ``.csv`` or
``.xlsx`` file (docs/imports.md: formats, column mapping, child rows, limits).

* all or nothing by default: any invalid row means nothing is written;
  ``--partial`` writes the good rows and reports the others;
* ``--update-on FIELD``: a row whose FIELD (a unique field or an autonumber)
  matches a stored record updates it, the others are created;
* ``--dry-run``: check everything, write nothing;
* ``--mapping FILE``: YAML or JSON ``column header: field`` (``null`` skips);
* ``--as USER``: import as that user, with their permissions (refs resolve
  within what they may read); without it the import runs as the engine itself;
* ``--report OUT.xlsx``: the annotated report (the bad rows, their errors).

Progress goes to stderr: a bar on a terminal, else a line every 5%. The summary
goes to stdout; the first errors to stderr. The import is recorded in
``ff_imports`` and audited (``ff_audit``, via ``import``, the file name as source).

Exit codes: 0 every row imported (or, with ``--dry-run``, would be); 1 some rows
failed (with ``--partial`` the good ones are written) or the file was refused or
a problem the user can fix; 2 a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from engine.commands.output import fail, internal_error, load_blueprint
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, Text

__all__ = ["import_command"]

#: Errors printed before "... and N more".
SHOWN_ERRORS = 20


class _Bar:
    """Progress on stderr: click's bar on a terminal, else a line every 5%."""

    def __init__(self, size: int, lang: str) -> None:
        self.size = max(size, 1)
        self.lang = lang
        self.done = 0
        self.step = -1
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        if self.tty:
            label = "导入中" if lang == "zh" else "Importing"
            self.bar = click.progressbar(length=self.size, label=label, file=sys.stderr)
            self.bar.__enter__()

    def __call__(self, fraction: float, rows: int) -> None:
        position = int(fraction * self.size)
        if self.bar is not None:
            if position > self.done:
                self.bar.update(position - self.done)
                self.done = position
            return
        step = int(fraction * 20)
        if step > self.step:
            self.step = step
            if self.lang == "zh":
                line = f"进度 {fraction:.0%}（已读 {rows:,} 条）"
            else:
                line = f"progress {fraction:.0%} ({rows:,} rows read)"
            click.echo(line, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("entity")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: the SQLite file beside the blueprint).",
)
@click.option("--partial", is_flag=True, help="Write the good rows, report the others.")
@click.option(
    "--update-on",
    metavar="FIELD",
    default=None,
    help="Update the record whose FIELD (unique) matches; create the others.",
)
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON file mapping column headers to fields (null skips a column).",
)
@click.option(
    "--as",
    "as_user",
    metavar="USER",
    default=None,
    help="Import as this user, with their permissions (default: the engine itself).",
)
@click.option(
    "--report",
    "report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the annotated report (bad rows and their errors) to this .xlsx file.",
)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of messages: zh or en (default: the blueprint's default_locale, else zh).",
)
def import_command(
    path: Path,
    entity: str,
    file: Path,
    db_url: str | None,
    partial: bool,
    update_on: str | None,
    dry_run: bool,
    mapping_file: Path | None,
    as_user: str | None,
    report: Path | None,
    lang: str | None,
) -> None:
    """Import FILE (.csv or .xlsx) into ENTITY of the blueprint at PATH."""
    chosen = lang or "zh"
    try:
        from engine.config import database_url
        from engine.imports import ImportOptions, ImportService, load_mapping_file
        from engine.records import SYSTEM
        from engine.runtime import build_runtime
        from engine.storage.database import create_engine
        from engine.storage.migrate import ensure_current

        blueprint, chosen = load_blueprint(path, lang)
        chosen = chosen if chosen in LANGUAGES else "zh"
        engine = create_engine(database_url(db_url, path))
        try:
            ensure_current(engine, blueprint)
            runtime = build_runtime(blueprint, engine)
            users = runtime.users
            actor = SYSTEM
            if as_user is not None:
                user = users.find(as_user)
                if user is None or not user.active:
                    fail(
                        Text(zh=f"没有启用的用户 {as_user}", en=f"no active user named {as_user}"),
                        chosen,
                        1,
                    )
                actor = user.actor
            service = ImportService(runtime.records)
            options = ImportOptions(
                partial=partial,
                update_on=update_on,
                dry_run=dry_run,
                mapping=load_mapping_file(mapping_file) if mapping_file else None,
                lang=chosen,
            )
            service.check(entity, options, actor)
            service.jobs.reap()
            job_id = service.jobs.create(
                user=actor.name,
                entity=entity,
                file_name=file.name,
                mode=options.mode,
                update_on=update_on,
                dry_run=dry_run,
            )
            bar = _Bar(file.stat().st_size, chosen)
            try:
                result = service.run(
                    entity,
                    file,
                    actor=actor,
                    options=options,
                    file_name=file.name,
                    report_path=report,
                    always_report=report is not None,
                    progress=bar,
                    job_id=job_id,
                )
            finally:
                bar.close()
        finally:
            engine.dispose()
        for warning in result.warnings:
            prefix = "警告：" if chosen == "zh" else "warning: "
            click.echo(prefix + warning.get(chosen), err=True)
        for error in result.errors[:SHOWN_ERRORS]:
            click.echo(error.render(chosen), err=True)
        more = result.errors_total - min(len(result.errors), SHOWN_ERRORS)
        if more > 0:
            click.echo(
                Text(zh=f"……另有 {more:,} 个错误", en=f"... and {more:,} more errors").get(chosen),
                err=True,
            )
        if result.report_path is not None:
            click.echo(
                Text(zh=f"报告：{result.report_path}", en=f"Report: {result.report_path}").get(
                    chosen
                ),
                err=True,
            )
        if not result.ok:
            fail(Text(zh=result.summary("zh"), en=result.summary("en")), chosen, 1)
        click.echo(result.summary(chosen))
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except sa.exc.OperationalError as exc:
        fail(
            Text(zh=f"无法使用数据库：{exc.orig}", en=f"cannot use the database: {exc.orig}"),
            chosen,
            1,
        )
    except (click.exceptions.Exit, click.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)
