"""How every ``formflow`` command ends on an error: one line, the right exit code.

Exit 1 is the user's problem (a bad blueprint, a refused migration); exit 2 is a
bug in Formflow, still reported in one line rather than a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from engine.i18n import Text


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
