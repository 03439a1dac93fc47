"""``formflow user add|list`` and ``formflow token create`` against a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli import main
from engine.loader import load
from engine.storage.database import create_engine, default_url
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import UserService

BLUEPRINT = """
formflow: 1
id: crm
title: CRM
default_locale: en
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
entities:
  deal:
    label: Deal
    fields:
      name: {type: text, label: Name}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A blueprint and its database, created as ``initialise`` creates a new one."""
    path = tmp_path / "crm.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    engine = create_engine(default_url(path))
    initialise(engine, bp, build_schema(bp))
    engine.dispose()
    return path


def test_formflow_migrate_creates_the_token_table(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    assert run("migrate", str(path))[0] == 0
    assert run("user", "add", "bot", "--role", "rep", "--no-password", str(path))[0] == 0
    code, _, err = run("token", "create", "bot", str(path))
    assert code == 0, err


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def service(path: Path) -> UserService:
    bp = load(path)
    return UserService(bp, build_schema(bp), create_engine(f"sqlite:///{path.with_suffix('.db')}"))


def test_user_add_with_password_on_stdin(project: Path) -> None:
    code, out, err = run(
        "user",
        "add",
        "li.lei",
        "--role",
        "rep",
        "--role",
        "manager",
        "--display-name",
        "李雷",
        "--email",
        "li@x.cn",
        "--password-stdin",
        str(project),
        input="s3cret-pass\nignored\n",
    )
    assert (code, out, err) == (0, "added user li.lei (rep, manager)\n", "")
    users = service(project)
    user = users.get("li.lei")
    assert (user.roles, user.display_name, user.email) == (("rep", "manager"), "李雷", "li@x.cn")
    assert users.authenticate("li.lei", "s3cret-pass") == user
    users.engine.dispose()


def test_user_add_prompts_twice_hidden(project: Path) -> None:
    code, out, err = run(
        "user", "add", "han", "--role", "rep", str(project), input="pass-word-1\npass-word-1\n"
    )
    assert code == 0, err
    assert "pass-word-1" not in out + err  # hidden input is not echoed
    assert out.endswith("added user han (rep)\n")
    assert "Password: " in out and "Repeat the password: " in out
    users = service(project)
    assert users.authenticate("han", "pass-word-1") is not None
    users.engine.dispose()


def test_user_add_with_manager_and_list(project: Path) -> None:
    assert run("user", "add", "boss", "--role", "manager", "--no-password", str(project))[0] == 0
    code, _, err = run(
        "user", "add", "张伟", "--role", "rep", "--manager", "boss", "--no-password", str(project)
    )
    assert code == 0, err
    code, out, err = run("user", "list", str(project))
    assert code == 0, err
    assert out.splitlines() == [
        "name  display name  roles    manager  active",
        "boss                manager           yes",
        "张伟                rep      boss     yes",
    ]
    code, out, _ = run("user", "list", "--lang", "zh", str(project))
    assert out.splitlines()[0] == "用户名  显示名  角色     上级  启用"


def test_user_add_errors(project: Path) -> None:
    code, out, err = run(
        "user",
        "add",
        "li",
        "--role",
        "rpe",
        "--password-stdin",
        str(project),
        input="long-enough\n",
    )
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "roles: unknown role 'rpe'; did you mean 'rep'?",
        "Invalid user: roles: unknown role 'rpe'; did you mean 'rep'?",
    ]
    code, _, err = run(
        "user", "add", "li", "--role", "rep", "--password-stdin", str(project), input="short\n"
    )
    assert (code, err.splitlines()[0]) == (1, "password: at least 8 characters")
    assert "short" not in err.replace("at least", "")
    code, _, err = run("user", "add", "li", "--role", "rep", "--password-stdin", str(project))
    assert (code, err) == (1, "no password on standard input\n")
    code, _, err = run(
        "user", "add", "li", "--role", "rep", "--password-stdin", "--no-password", str(project)
    )
    assert (code, err) == (1, "use either --password-stdin or --no-password\n")
    code, _, err = run(
        "user", "add", "li", "--role", "rep", "--manager", "x", "--no-password", str(project)
    )
    assert (code, err.splitlines()[0]) == (1, "manager: no user 'x'")
    assert run("user", "add", "li", str(project))[0] == 2  # --role is required (click usage)
    users = service(project)
    assert users.list() == []
    users.engine.dispose()


def test_token_create_prints_it_once(project: Path) -> None:
    run("user", "add", "bot", "--role", "rep", "--no-password", str(project))
    code, out, err = run("token", "create", "bot", "--label", "ci", str(project))
    assert code == 0, err
    token = out.strip()
    assert out == token + "\n"
    assert token.startswith("ff_")
    assert err == "Keep this token safe: it is shown only once; the database keeps only its hash.\n"
    users = service(project)
    user = users.verify_token(token)
    assert user is not None and user.name == "bot"
    assert [t.label for t in users.tokens("bot")] == ["ci"]
    with users.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM ff_tokens")).scalar_one()
    assert stored != token and token not in stored
    users.engine.dispose()
    code, out, err = run("token", "create", "ghost", str(project))
    assert (code, out, err) == (1, "", "no user 'ghost'\n")


def test_database_must_be_migrated(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    code, _, err = run("user", "list", str(path))
    assert code == 1
    assert err.startswith("the database schema is behind the blueprint; run `formflow migrate ")
    code, _, err = run("token", "create", "x", "--db", f"sqlite:///{tmp_path}/other.db", str(path))
    assert code == 1 and "formflow migrate" in err


def test_bad_blueprint(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("formflow: 1\nid: x\n", encoding="utf-8")
    code, out, err = run("user", "list", str(path))
    assert code == 1
    assert out == ""
    assert "bad.yaml" in err


def test_explicit_db_url(project: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{project.with_suffix('.db')}"
    code, _, err = run(
        "user", "add", "li", "--role", "rep", "--no-password", "--db", url, str(project)
    )
    assert code == 0, err
    code, out, _ = run("user", "list", "--db", url, str(project))
    assert out.splitlines()[1].startswith("li ")
