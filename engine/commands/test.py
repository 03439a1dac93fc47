"""``formflow test PATH``: run a blueprint's test cases (see docs/testing.md).

Each case runs in a throwaway database (a temporary SQLite file; with ``--db``
a schema of its own on that PostgreSQL database) through the engine's real
services. Exit 0 when every case passed (or was skipped), 1 when one failed, had
an error, or the blueprint itself has problems, 2 for a bug in Formflow.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from engine.commands.output import fail, internal_error
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, Text
from engine.testing import collect, run_suite
from engine.testing.report import (
    as_json,
    case_line,
    details,
    problem_line,
    problems_json,
    summary,
)
from engine.testing.runner import Outcome, selected

__all__ = ["test_command"]


@click.command("test")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--db",
    "db_url",
    default=None,
    help="A PostgreSQL URL: each case gets a throwaway schema there "
    "(default: temporary SQLite files).",
)
@click.option(
    "-k", "keyword", default=None, help="Run only the cases whose name contains this text."
)
@click.option("-v", "--verbose", is_flag=True, help="Also list what each case checked.")
@click.option(
    "--json", "as_json_output", is_flag=True, help="Print the results as JSON (for tools)."
)
@click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="Language of messages: zh or en (default: the blueprint's default_locale, else zh).",
)
def test_command(
    path: Path,
    db_url: str | None,
    keyword: str | None,
    verbose: bool,
    as_json_output: bool,
    lang: str | None,
) -> None:
    """Run the test cases of the blueprint at PATH (tests: and tests/*.yaml)."""
    chosen = lang or "zh"
    try:
        started = time.perf_counter()
        suite = collect(path)
        chosen = lang or suite.locale or "zh"
        if not suite.ok:
            if as_json_output:
                click.echo(problems_json(suite.problems))
                sys.exit(1)
            for problem in sorted(suite.problems, key=lambda p: p.location):
                click.echo(problem_line(problem, chosen))
            count = sum(1 for p in suite.problems if p.severity == "error")
            fail(
                Text(
                    zh=f"蓝图有 {count} 个问题，未运行测试",
                    en=f"{count} problem(s) in the blueprint; no tests ran",
                ),
                chosen,
                1,
            )
        if not selected(suite, keyword) and not as_json_output:
            message = (
                Text(zh=f"没有名称包含 '{keyword}' 的用例", en=f"no case name contains '{keyword}'")
                if keyword
                else Text(zh="这个蓝图没有测试用例", en="this blueprint has no test cases")
            )
            fail(message, chosen, 1 if keyword else 0)

        def show(outcome: Outcome) -> None:
            if not as_json_output:
                click.echo(case_line(outcome, chosen))

        outcomes = run_suite(suite, db_url=db_url, keyword=keyword, on_outcome=show)
        seconds = time.perf_counter() - started
        if as_json_output:
            click.echo(as_json(outcomes, seconds))
        else:
            for line in details(outcomes, chosen, verbose=verbose):
                click.echo(line)
            click.echo("")
            click.echo(summary(outcomes, seconds, chosen))
        bad = any(o.status in ("failed", "error") for o in outcomes)
        sys.exit(1 if bad else 0)
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)
