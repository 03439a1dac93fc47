"""The ``formflow`` command line.

``main`` is a click group; each command is one small function (or its own
module) registered on it, so ``serve``, ``migrate``, ``user``, ``import`` ...
are added later without touching the others::

    @main.command("serve")
    def serve_command(...): ...

or, from a module of its own, ``main.add_command(serve_command)``.

Conventions every command follows: messages are bilingual (``--lang zh|en``,
default the blueprint's ``default_locale``, else zh); a problem the user can
fix is printed as one line and exits 1; anything unexpected is a bug, printed
as one line (never a traceback) and exits 2.

``formflow check PATH`` checks a blueprint (a folder or a file):

* good: exit 0 and one summary line, e.g.
  ``blueprints/crm: OK — 6 entities, 48 fields, 2 flows, 3 KPIs, 1 dashboard``;
* bad: exit 1 and every problem as ``file:line:col: message; hint``, one per
  line, sorted, paths relative to the current directory (the count goes to
  stderr).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from engine.commands.output import fail, internal_error
from engine.errors import FormflowError, Location, Problem
from engine.i18n import LANGUAGES, Text
from engine.loader import Report, diagnose
from engine.model import Blueprint

__all__ = ["main", "render_problem", "summary"]

LANG_OPTION = click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of messages: zh or en (default: the blueprint's default_locale, else zh).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Formflow: blueprints in, sales apps out."""


def relative(location: Location) -> str:
    """``location`` with its file relative to the current directory when possible."""
    file = location.file
    if os.path.isabs(file):
        with contextlib.suppress(ValueError):  # another drive (Windows)
            file = os.path.relpath(file)
    return str(Location(file, location.line, location.column))


def render_problem(problem: Problem, lang: str) -> str:
    """``file:line:col: message; hint`` (with ``warning:`` before a warning's message)."""
    text = problem.message.get(lang)
    if problem.severity != "error":
        text = ("警告：" if lang == "zh" else "warning: ") + text
    hint = problem.hint.get(lang)
    if hint:
        text = f"{text}; {hint}"
    return f"{relative(problem.location)}: {text}"


def _plural(count: int, en: str, zh: str, lang: str) -> str:
    if lang == "zh":
        return f"{count} 个{zh}"
    if count == 1:
        return f"{count} {en}"
    return f"{count} {en}s" if not en.endswith("y") else f"{count} {en[:-1]}ies"


def summary(blueprint: Blueprint, shown_path: str, lang: str) -> str:
    """The one-line summary of a good blueprint."""
    fields = sum(
        len(e.fields) + sum(len(t.fields) for t in e.tables()) for e in blueprint.entities.values()
    )
    parts = [
        _plural(len(blueprint.entities), "entity", "实体", lang),
        _plural(fields, "field", "字段", lang),
        _plural(len(blueprint.flows), "flow", "流程", lang),
        _plural(len(blueprint.kpis), "KPI", "指标", lang),
        _plural(len(blueprint.dashboards), "dashboard", "看板", lang),
    ]
    if blueprint.automations:
        parts.append(_plural(len(blueprint.automations), "automation", "自动化", lang))
    if lang == "zh":
        return f"{shown_path}：通过 — " + "、".join(parts)
    return f"{shown_path}: OK — " + ", ".join(parts)


def _sorted(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.location, p.message.get("en")))


@main.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@LANG_OPTION
def check_command(path: Path, lang: str | None) -> None:
    """Check the blueprint at PATH (a folder or a .yaml/.yml/.json file)."""
    chosen = lang or "zh"
    try:
        report: Report = diagnose(path)
        chosen = lang or report.locale or "zh"
        for problem in _sorted(report.problems):
            click.echo(render_problem(problem, chosen))
        errors = len(report.errors)
        if errors or report.blueprint is None:
            click.echo(
                Text(zh=f"共 {errors} 个问题", en=f"{errors} problem(s)").get(chosen), err=True
            )
            sys.exit(1)
        click.echo(summary(report.blueprint, str(path), chosen))
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


def _register_commands() -> None:
    """Commands that live in modules of their own (``engine/commands/``)."""
    from engine.commands.backup import backup_command, restore_command
    from engine.commands.export import export_command
    from engine.commands.forks import diff_command, new_command
    from engine.commands.imports import import_command
    from engine.commands.incentives import commission_command, forecast_group
    from engine.commands.kpi import kpi_command
    from engine.commands.migrate import migrate_command
    from engine.commands.serve import serve_command
    from engine.commands.test import test_command
    from engine.commands.users import token_group, user_group
    from engine.commands.worker import worker_command

    main.add_command(import_command)
    main.add_command(migrate_command)
    main.add_command(serve_command)
    main.add_command(user_group)
    main.add_command(token_group)
    main.add_command(worker_command)
    main.add_command(export_command)
    main.add_command(forecast_group)
    main.add_command(commission_command)
    main.add_command(kpi_command)
    main.add_command(test_command)
    main.add_command(new_command)
    main.add_command(diff_command)
    main.add_command(backup_command)
    main.add_command(restore_command)


_register_commands()


if __name__ == "__main__":  # pragma: no cover - ``python -m engine.cli``
    main()
