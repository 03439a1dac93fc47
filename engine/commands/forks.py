"""``formflow new DIR --from crm`` and ``formflow diff DIR``: forks of a template.

``new`` writes a small overlay that ``extends:`` the template (see
:mod:`engine.forks` and docs/forks.md); ``diff`` lists what an overlay adds,
removes and changes against its base, as a tree or ``--json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from engine.commands.output import fail, internal_error
from engine.errors import BlueprintError, FormflowError
from engine.forks import change_json, diff, new_fork, render_tree
from engine.i18n import LANGUAGES, Text
from engine.loader import diagnose

__all__ = ["diff_command", "new_command"]

_LANG = click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of messages: zh or en (default zh).",
)


@click.command("new")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "base",
    required=True,
    help="The template to start from: a starter template's name (crm) or a folder.",
)
@_LANG
def new_command(folder: Path, base: str, lang: str | None) -> None:
    """Create FOLDER as your own template: an overlay that extends another one."""
    chosen = lang or "zh"
    try:
        files = new_fork(folder, base)
        report = diagnose(folder)
        if not report.ok:
            fail(
                Text(zh="新模板未通过检查", en="the new template does not pass the check"),
                chosen,
                1,
            )
        for file in files:
            click.echo(Text(zh=f"已创建 {file}", en=f"created {file}").get(chosen))
        click.echo(
            Text(
                zh=f"下一步：编辑 {folder / 'blueprint.yaml'}，然后 formflow check {folder}",
                en=f"next: edit {folder / 'blueprint.yaml'}, then formflow check {folder}",
            ).get(chosen)
        )
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


@click.command("diff")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@_LANG
def diff_command(folder: Path, as_json: bool, lang: str | None) -> None:
    """Show what the overlay at FOLDER changes against the template it extends."""
    chosen = lang or "zh"
    try:
        changes = diff(folder)
        if as_json:
            click.echo(json.dumps([change_json(c) for c in changes], ensure_ascii=False, indent=2))
            sys.exit(0)
        if not changes:
            click.echo(Text(zh="与模板没有差别", en="no changes against the template").get(chosen))
            sys.exit(0)
        for line in render_tree(changes, chosen):
            click.echo(line)
        counts = {
            k: sum(1 for c in changes if c.kind == k) for k in ("added", "removed", "changed")
        }
        click.echo(
            Text(
                zh=f"新增 {counts['added']}，删除 {counts['removed']}，修改 {counts['changed']}",
                en=f"{counts['added']} added, {counts['removed']} removed, "
                f"{counts['changed']} changed",
            ).get(chosen)
        )
    except BlueprintError as exc:
        for problem in exc.problems:
            click.echo(
                f"{os.path.relpath(problem.location.file) if problem.location.file else ''}:"
                f"{problem.location.line}:{problem.location.column}: {problem.message.get(chosen)}"
            )
        sys.exit(1)
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)
