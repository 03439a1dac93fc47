"""``formflow export PATH ENTITY``: an entity's records as a CSV or XLSX file.

::

    formflow export PATH ENTITY [--db URL] [--format csv|xlsx] [--out FILE]
                    [--as USER] [--filter field:op:value ...] [--search TEXT]
                    [--sort FIELD] [--headers labels|names] [--refs titles|ids]
                    [--lang zh|en]

The same export as the list page's buttons (:mod:`engine.exports`, format in
docs/exports.md): ``--filter`` takes the list's operators (``stage:eq:won``,
``amount:gte:1000``, ``close_date:between:2026-01-01,2026-03-31``; repeat it),
``--search`` is the search box, ``--sort`` the list's sort (``-amount,name``).

* ``--as USER``: export what that (active) user may read, without the fields
  hidden from them. Without it the export runs as the engine itself: every
  record, every field (whoever can run this command can read the database).
* ``--out FILE``: default the export's own name (``商机-20261127-163000.csv``)
  in the current folder; ``-`` writes to standard output. A file is written
  beside its final name and renamed when complete, so a failed export leaves
  no half file.
* Every export is audited in ``ff_exports`` (``via`` = ``cli``).

Exit codes: 0 done, 1 a problem the user can fix (a bad blueprint, filter or
user, a database that is behind or unreachable), 2 a bug.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa

from engine.commands.output import fail, internal_error, load_blueprint
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, Text

if TYPE_CHECKING:
    from engine.exports import Export

__all__ = ["export_command"]


@click.command("export")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("entity")
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: the SQLite file beside the blueprint).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True
)
@click.option(
    "--out",
    "out",
    metavar="FILE",
    default=None,
    help="Where to write (default: the export's name in this folder; - for stdout).",
)
@click.option(
    "--as",
    "as_user",
    metavar="USER",
    default=None,
    help="Export what this user may read (default: everything, as the engine).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FIELD:OP:VALUE",
    help="A list filter, e.g. stage:eq:won or amount:gte:1000 (repeat for more).",
)
@click.option("--search", default=None, metavar="TEXT", help="Search, as the list's search box.")
@click.option("--sort", default=None, metavar="FIELD", help="Sort, e.g. -amount,name.")
@click.option(
    "--headers",
    type=click.Choice(["labels", "names"]),
    default="labels",
    show_default=True,
    help="Header row: '中文 / English' labels or field names.",
)
@click.option(
    "--refs",
    type=click.Choice(["titles", "ids"]),
    default="titles",
    show_default=True,
    help="References as the target's title or its id.",
)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of messages and the file name: zh or en (default: the blueprint's).",
)
def export_command(
    path: Path,
    entity: str,
    db_url: str | None,
    fmt: str,
    out: str | None,
    as_user: str | None,
    filters: Sequence[str],
    search: str | None,
    sort: str | None,
    headers: str,
    refs: str,
    lang: str | None,
) -> None:
    """Export the records of ENTITY (blueprint at PATH) to a CSV or XLSX file."""
    chosen = lang or "zh"
    try:
        from engine.config import database_url
        from engine.exports import ExportService, export_query, filter_args
        from engine.records import SYSTEM
        from engine.runtime import build_runtime
        from engine.storage.database import create_engine
        from engine.storage.migrate import ensure_current

        blueprint, chosen = load_blueprint(path, lang)
        ent = blueprint.entities.get(entity)
        if ent is None:
            names = ", ".join(blueprint.entities)
            fail(
                Text(
                    zh=f"没有实体 {entity}（可用：{names}）", en=f"no entity {entity!r} ({names})"
                ),
                chosen,
                1,
            )
        engine = create_engine(database_url(db_url, path))
        try:
            ensure_current(engine, blueprint)
            runtime = build_runtime(blueprint, engine)
            users = runtime.users
            exports = ExportService(
                blueprint, runtime.schema, engine, runtime.records, permissions=runtime.permissions
            )
            actor = SYSTEM
            if as_user is not None:
                user = users.find(as_user)
                if user is None or not user.active:
                    fail(
                        Text(
                            zh=f"没有启用的用户 {as_user}", en=f"no active user called {as_user!r}"
                        ),
                        chosen,
                        1,
                    )
                actor = user.actor
            args = filter_args(filters)
            if search:
                args["q"] = [search]
            if sort:
                args["sort"] = [sort]
            query = export_query(ent, args, hidden=exports.hidden(actor, ent))
            export = exports.start(
                ent.name,
                query,
                fmt=fmt,
                actor=actor,
                via="cli",
                headers=headers,
                refs=refs,
                lang=chosen,
            )
            if out == "-":
                rows = export.write_to(sys.stdout.buffer)
                sys.stdout.buffer.flush()
                shown = "-"
            else:
                target = Path(out) if out else Path(export.file_name)
                rows = _write_file(export, target)
                shown = str(target)
        finally:
            engine.dispose()
        click.echo(
            Text(
                zh=f"已导出 {rows} 条记录到 {shown}", en=f"exported {rows} record(s) to {shown}"
            ).get(chosen),
            err=True,
        )
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except sa.exc.OperationalError as exc:
        fail(
            Text(zh=f"无法使用数据库：{exc.orig}", en=f"cannot use the database: {exc.orig}"),
            chosen,
            1,
        )
    except OSError as exc:
        fail(Text(zh=f"无法写入文件：{exc}", en=f"cannot write the file: {exc}"), chosen, 1)
    except (click.exceptions.Exit, click.Abort):  # click's own endings
        raise
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


def _write_file(export: Export, target: Path) -> int:
    """Write beside ``target``, then rename: no half file is ever left under its name.

    The file is created private (mode 0600, ``mkstemp``): an export holds records."""
    folder = target.resolve().parent
    fd, part = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as stream:
            rows = export.write_to(stream)
        if export.status != "done":
            raise OSError(f"the export ended as {export.status}")
        os.replace(part, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
    return rows
