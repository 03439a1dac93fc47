"""``formflow user add|list`` and ``formflow token create``: people and API tokens.

::

    formflow user add NAME --role ROLE [--role ROLE2] [--manager NAME]
                      [--password-stdin | --no-password] [--display-name TEXT]
                      [--email ADDR] [--locale zh|en] [--db URL] PATH
    formflow user list [--db URL] PATH
    formflow token create USER [--label TEXT] [--db URL] PATH

PATH is the blueprint (its roles are the ones a user may have, plus the
built-in ``admin``); ``--db`` defaults to the SQLite file beside it. The
database must be migrated to the blueprint (``formflow migrate``) first.

Passwords: without ``--password-stdin`` the password is asked for twice with
hidden input; with it, the first line of standard input is the password (for
scripts: ``printf '%s\\n' "$PW" | formflow user add ...``). ``--no-password``
adds a user who can only use API tokens. A password is never printed or logged.

``token create`` prints the token alone on stdout (it is shown only this once;
only its hash is stored) and a note on stderr.

Exit codes: 0 done, 1 a problem the user can fix (a bad blueprint, a database
that is behind or unreachable, an invalid user), 2 a bug.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import sqlalchemy as sa

from engine.commands.output import fail, internal_error, load_blueprint
from engine.errors import FormflowError, RecordInvalid
from engine.i18n import LANGUAGES, Text

__all__ = ["token_group", "user_group"]

F = TypeVar("F", bound=Callable[..., Any])

_PATH = click.argument("path", type=click.Path(exists=True, path_type=Path))


def _common(func: F) -> F:
    """``--db`` and ``--lang``, shared by every command here."""
    func = click.option(
        "--lang",
        type=click.Choice(LANGUAGES),
        default=None,
        help="Language of messages: zh or en (default: the blueprint's default_locale, else zh).",
    )(func)
    return click.option(
        "--db",
        "db_url",
        metavar="URL",
        default=None,
        help="Database URL (default: the SQLite file beside the blueprint).",
    )(func)


@dataclass
class _Session:
    lang: str
    service: Any  # engine.users.UserService (imported lazily: keeps `formflow --help` fast)


def _fail_invalid(exc: RecordInvalid, lang: str) -> NoReturn:
    for field, messages in exc.as_dict(lang).items():
        for message in messages:
            click.echo(f"{field}: {message}", err=True)
    fail(exc.text, lang, 1)


@contextmanager
def _users(path: Path, db_url: str | None, lang: str | None) -> Iterator[_Session]:
    """Load the blueprint, open a migrated database, yield a UserService; map errors to exits."""
    chosen = lang or "zh"
    try:
        from engine.config import database_url
        from engine.storage.database import create_engine
        from engine.storage.migrate import ensure_current
        from engine.storage.schema import build_schema
        from engine.users import UserService

        blueprint, chosen = load_blueprint(path, lang)
        engine = create_engine(database_url(db_url, path))
        try:
            ensure_current(engine, blueprint)
            yield _Session(chosen, UserService(blueprint, build_schema(blueprint), engine))
        finally:
            engine.dispose()
    except RecordInvalid as exc:
        _fail_invalid(exc, chosen)
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


# --------------------------------------------------------------------------- user


@click.group("user")
def user_group() -> None:
    """Add and list the people who sign in."""


def _read_password(from_stdin: bool, lang: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail(Text(zh="标准输入中没有密码", en="no password on standard input"), lang, 1)
        return password
    prompt = Text(zh="密码", en="Password").get(lang)
    again = Text(zh="再输入一次密码", en="Repeat the password").get(lang)
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=again)
    return value


@user_group.command("add")
@click.argument("name")
@_PATH
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    metavar="ROLE",
    help="A role from the blueprint, or admin (repeat for several).",
)
@click.option("--manager", default=None, metavar="NAME", help="The user this one reports to.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.option("--no-password", is_flag=True, help="No password: the user signs in with tokens.")
@click.option("--display-name", default=None, help="The name pages show.")
@click.option("--email", default=None)
@click.option("--locale", default=None, metavar="zh|en", help="The user's language.")
@_common
def user_add_command(
    name: str,
    path: Path,
    roles: Sequence[str],
    manager: str | None,
    password_stdin: bool,
    no_password: bool,
    display_name: str | None,
    email: str | None,
    locale: str | None,
    db_url: str | None,
    lang: str | None,
) -> None:
    """Add the user NAME to the database of the blueprint at PATH."""
    with _users(path, db_url, lang) as session:
        if password_stdin and no_password:
            fail(
                Text(
                    zh="--password-stdin 与 --no-password 不能同时使用",
                    en="use either --password-stdin or --no-password",
                ),
                session.lang,
                1,
            )
        password = None if no_password else _read_password(password_stdin, session.lang)
        user = session.service.add(
            name,
            roles=roles,
            manager=manager,
            password=password,
            display_name=display_name,
            email=email,
            locale=locale,
        )
        click.echo(
            Text(
                zh=f"已添加用户 {user.name}（{', '.join(user.roles)}）",
                en=f"added user {user.name} ({', '.join(user.roles)})",
            ).get(session.lang)
        )


def _width(text: str) -> int:
    """Columns a terminal gives ``text`` (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


@user_group.command("list")
@_PATH
@_common
def user_list_command(path: Path, db_url: str | None, lang: str | None) -> None:
    """List the users of the blueprint at PATH's database."""
    with _users(path, db_url, lang) as session:
        zh = session.lang == "zh"
        header = (
            ["用户名", "显示名", "角色", "上级", "启用"]
            if zh
            else ["name", "display name", "roles", "manager", "active"]
        )
        yes, no = ("是", "否") if zh else ("yes", "no")
        rows = [header] + [
            [
                u.name,
                u.display_name or "",
                ", ".join(u.roles),
                u.manager or "",
                yes if u.active else no,
            ]
            for u in session.service.list()
        ]
        for line in _table(rows):
            click.echo(line)


# --------------------------------------------------------------------------- token


@click.group("token")
def token_group() -> None:
    """API tokens (sent as ``Authorization: Bearer <token>``)."""


@token_group.command("create")
@click.argument("user")
@_PATH
@click.option("--label", default="", help="What the token is for (shown in token lists).")
@_common
def token_create_command(
    user: str, path: Path, label: str, db_url: str | None, lang: str | None
) -> None:
    """Create an API token for USER and print it (only this once)."""
    with _users(path, db_url, lang) as session:
        token = session.service.create_token(user, label)
        click.echo(token)
        click.echo(
            Text(
                zh="请妥善保存此令牌：它只显示这一次，数据库中只保存其摘要。",
                en="Keep this token safe: it is shown only once; the database keeps only its hash.",
            ).get(session.lang),
            err=True,
        )
