"""``formflow kpi PATH NAME``: one KPI, computed in the database, as a table or JSON.

::

    formflow kpi PATH NAME [--db URL] [--by owner,month] [--period this_month|...|custom]
                 [--from DATE --to DATE] [--compare] [--team USER] [--owner USER]
                 [--as USER] [--json] [--lang zh|en]

The same numbers as ``GET /api/v1/kpis/NAME`` and the dashboards
(:class:`engine.kpis.KpiService`; meaning in docs/kpis.md).

* ``--by``: dimensions, comma-separated (default: none, the total only).
* ``--period``: ``this_month``, ``last_month``, ``this_quarter``, ``last_quarter``,
  ``this_year``, ``last_year``, ``all`` (the default), or ``custom`` with
  ``--from``/``--to`` (inclusive dates; either may be left out). ``--from``/``--to``
  alone mean ``custom``.
* ``--as USER``: the KPI over what that (active) user may read. Without it the
  KPI runs as the engine itself: every record.
* ``--json``: the result as JSON (the API's shape) on standard output.

Exit codes: 0 done, 1 a problem the user can fix (a bad blueprint, KPI, period,
dimension or user, a database that is behind or unreachable), 2 a bug.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa

from engine.commands.output import fail, internal_error, load_blueprint
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, T, Text
from engine.model import Entity

if TYPE_CHECKING:  # the engine's services load when the command runs, not with the CLI
    from engine.kpis.result import KpiResult

__all__ = ["dimension_label", "kpi_command", "render_table"]


@click.command("kpi")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("name")
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: the SQLite file beside the blueprint).",
)
@click.option("--by", default=None, metavar="DIMS", help="Group by, e.g. owner,month.")
@click.option(
    "--period",
    default=None,
    metavar="NAME",
    help="this_month, last_month, this_quarter, last_quarter, this_year, last_year, all, custom.",
)
@click.option("--from", "start", default=None, metavar="DATE", help="First day (custom period).")
@click.option("--to", "end", default=None, metavar="DATE", help="Last day (custom period).")
@click.option("--compare", is_flag=True, help="Also show the previous period and the change.")
@click.option("--team", default=None, metavar="USER", help="Only records of this manager's team.")
@click.option("--owner", default=None, metavar="USER", help="Only records this user owns.")
@click.option(
    "--as",
    "as_user",
    metavar="USER",
    default=None,
    help="Compute over what this user may read (default: everything, as the engine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of labels and messages: zh or en (default: the blueprint's).",
)
def kpi_command(
    path: Path,
    name: str,
    db_url: str | None,
    by: str | None,
    period: str | None,
    start: str | None,
    end: str | None,
    compare: bool,
    team: str | None,
    owner: str | None,
    as_user: str | None,
    as_json: bool,
    lang: str | None,
) -> None:
    """Compute the KPI NAME of the blueprint at PATH and print it."""
    chosen = lang or "zh"
    try:
        from engine.config import database_url
        from engine.kpis.formatting import result_json
        from engine.records import SYSTEM
        from engine.runtime import build_runtime
        from engine.storage.database import create_engine
        from engine.storage.migrate import ensure_current

        blueprint, chosen = load_blueprint(path, lang)
        engine = create_engine(database_url(db_url, path))
        try:
            ensure_current(engine, blueprint)
            runtime = build_runtime(blueprint, engine)
            actor = SYSTEM
            if as_user is not None:
                user = runtime.users.find(as_user)
                if user is None or not user.active:
                    fail(
                        Text(
                            zh=f"没有启用的用户 {as_user}", en=f"no active user called {as_user!r}"
                        ),
                        chosen,
                        1,
                    )
                actor = user.actor
            filters = {k: v for k, v in (("team", team), ("owner", owner)) if v}
            result = runtime.kpis.evaluate(
                name,
                actor,
                by=by,
                period=period,
                start=start,
                end=end,
                filters=filters,
                compare=compare,
                lang=chosen,
            )
        finally:
            engine.dispose()
        if as_json:
            click.echo(json.dumps(result_json(result), ensure_ascii=False, indent=2))
        else:
            entity = blueprint.entity(blueprint.kpis[name].entity)
            headers = [dimension_label(entity, d, chosen) for d in result.by]
            click.echo(render_table(result, chosen, blueprint.currency, headers))
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except sa.exc.OperationalError as exc:
        fail(
            Text(zh=f"无法使用数据库：{exc.orig}", en=f"cannot use the database: {exc.orig}"),
            chosen,
            1,
        )
    except (click.exceptions.Exit, click.Abort):  # click's own endings
        raise
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


def _width(text: str) -> int:
    """Columns a terminal gives ``text`` (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space


def render_table(result: KpiResult, lang: str, currency: str, headers: list[str]) -> str:
    """The result as an aligned text table: dimensions, value, target, attainment, gap."""
    from engine.kpis.formatting import format_change, format_number, format_percentage

    fmt = result.format
    has_target = result.total.target is not None or any(r.target is not None for r in result.rows)
    comparing = result.previous_period is not None
    head = [*headers]
    head.append(T("数值", "Value").get(lang))
    if has_target:
        head += [T("目标", "Target").get(lang), T("达成率", "Attained").get(lang)]
        head.append(T("差额", "Gap").get(lang))
    if comparing:
        head += [T("上期", "Previous").get(lang), T("变化", "Change").get(lang)]
    body: list[list[str]] = []
    total_label = T("合计", "Total").get(lang)
    for row in [*result.rows, result.total]:
        cells = (
            [row.labels.get(d, "") for d in result.by]
            if row is not result.total
            else [total_label] + [""] * (len(result.by) - 1)
        )
        if not result.by and row is result.total:
            cells = []
        cells.append(format_number(row.value, fmt, lang, currency))
        if has_target:
            cells += [
                format_number(row.target, fmt, lang, currency),
                format_percentage(row.attainment, lang),
                format_number(row.gap, fmt, lang, currency),
            ]
        if comparing:
            cells += [
                format_number(row.previous, fmt, lang, currency),
                format_change(row.change, lang),
            ]
        body.append(cells)
    widths = [max(_width(line[i]) for line in [head, *body]) for i in range(len(head))]
    numeric = len(result.by)

    def line(cells: list[str]) -> str:
        return "  ".join(_pad(c, widths[i], i >= numeric) for i, c in enumerate(cells)).rstrip()

    period = result.period
    span = ""
    if period.start is not None or period.end is not None:
        last = period.end - timedelta(days=1) if period.end else None
        span = f" {period.start or '…'} ~ {last or '…'}"
    title = f"{result.label} ({period.name}{span})"
    rule = "  ".join("-" * w for w in widths)
    out = [title, line(head), rule]
    out += [line(cells) for cells in body[:-1]]
    if result.by:
        out.append(rule)
    out.append(line(body[-1]))
    return "\n".join(out)


_DIMS = {
    "owner": ("负责人", "Owner"),
    "team": ("团队", "Team"),
    "day": ("日", "Day"),
    "week": ("周", "Week"),
    "month": ("月", "Month"),
    "quarter": ("季度", "Quarter"),
    "year": ("年", "Year"),
}


def dimension_label(entity: Entity, name: str, lang: str) -> str:
    """A dimension's column header: the field's label, else the dimension's own name."""
    f = entity.fields.get(name)
    if f is not None:
        return f.label.get(lang) or name
    zh, en = _DIMS.get(name, (name, name))
    return T(zh, en).get(lang)
