"""How every ``formflow`` command ends on an error: one line, the right exit code.

Exit 1 is the user's problem (a bad blueprint, a refused migration); exit 2 is a
bug in Formflow, still reported in one line rather than a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from engine.errors import BlueprintError
from engine.i18n import Text

if TYPE_CHECKING:
    from engine.model import Blueprint


def fail(message: Text, lang: str, code: int = 1) -> NoReturn:
    """Print ``message`` in ``lang`` on stderr and exit with ``code``."""
    click.echo(message.get(lang), err=True)
    sys.exit(code)


def internal_error(exc: BaseException, lang: str) -> NoReturn:
    """An exception Formflow did not expect: one line asking for a bug report, exit 2."""
    name = type(exc).__name__
    fail(
        Text(
            zh=f"formflow 内部错误（请报告此问题）：{name}: {exc}",
            en=f"formflow internal error (please report this bug): {name}: {exc}",
        ),
        lang,
        2,
    )


def load_blueprint(path: Path | str, lang: str | None) -> tuple[Blueprint, str]:
    """The blueprint at ``path`` and the language to answer in, or exit 1 listing its problems.

    Every command that works on a database starts this way; the language is ``--lang``,
    else the blueprint's default locale, else Chinese.
    """
    from engine.loader import load

    chosen = lang or "zh"
    try:
        blueprint = load(path, lang=lang)
    except BlueprintError as exc:
        click.echo(exc.render(chosen), err=True)
        fail(exc.text, chosen, 1)
    return blueprint, lang or blueprint.default_locale or "zh"
