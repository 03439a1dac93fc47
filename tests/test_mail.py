"""E-mail (engine.mail) against a real SMTP server the test starts (aiosmtpd), never a mock.

The server listens on 127.0.0.1 on a free port and keeps what it receives; the
tests check recipients, the decoded subject and the UTF-8 Chinese body. The
outbox path (notification -> ``mail.send`` job -> worker) runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.errors import SettingInvalid
from engine.i18n import T
from engine.jobs import JobQueue
from engine.loader import load
from engine.mail import MAIL_JOB, Mailer, MailError
from engine.notifications import NotificationService
from engine.settings import MailSettings, Settings
from engine.storage.database import create_engine, writer
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import UserService

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


@dataclass
class Inbox:
    """What the test SMTP server received."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def _body(msg: EmailMessage) -> str:
    """The decoded text body (the wire uses CRLF line ends)."""
    content = msg.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Smtp:
    inbox: Inbox
    port: int
    logins: list[tuple[str, str]]

    def settings(self, **kw: Any) -> MailSettings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "sender": "销售系统 <crm@example.com>",
            "timeout": 10.0,
            **kw,
        }
        return MailSettings(**values)


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = Inbox()
    logins: list[tuple[str, str]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if isinstance(data, LoginPassword):
            logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=data.password == b"s3cret", handled=False)
        return AuthResult(success=False, handled=False)

    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield Smtp(inbox, port, logins)
    finally:
        controller.stop()


class _Users:
    """The part of UserService a Mailer uses, for the tests without a database."""

    def find(self, name: str) -> Any:
        return None


def test_send_delivers_a_utf8_chinese_message(smtp: Smtp) -> None:
    mailer = Mailer(smtp.settings(), _Users())  # type: ignore[arg-type]
    mailer.send(
        ["li@example.com"], "合同 HT-0007 已通过审批", "您好：\n合同已通过审批，请跟进收款。"
    )
    [(sender, rcpts, msg)] = smtp.inbox.messages
    assert sender == "crm@example.com"
    assert rcpts == ["li@example.com"]
    assert msg["Subject"] == "合同 HT-0007 已通过审批"
    assert msg["From"] == "销售系统 <crm@example.com>"
    assert msg.get_content_charset() == "utf-8"
    assert _body(msg) == "您好：\n合同已通过审批，请跟进收款。\n"


def test_send_logs_in_when_a_user_is_set(smtp: Smtp) -> None:
    Mailer(smtp.settings(user="crm", password="s3cret"), _Users()).send(  # type: ignore[arg-type]
        ["a@example.com"], "hi", "body"
    )
    assert smtp.logins == [("crm", "s3cret")] and len(smtp.inbox.messages) == 1
    bad = Mailer(smtp.settings(user="crm", password="wrong"), _Users())  # type: ignore[arg-type]
    with pytest.raises(MailError) as caught:
        bad.send(["a@example.com"], "hi", "body")
    assert "SMTPAuthenticationError" in caught.value.message("en")
    assert len(smtp.inbox.messages) == 1


def test_an_unreachable_server_is_a_mail_error() -> None:
    settings = MailSettings(host="127.0.0.1", port=_free_port(), security="none", sender="a@b.c")
    with pytest.raises(MailError):
        Mailer(settings, _Users()).send(["x@example.com"], "s", "b")  # type: ignore[arg-type]


def test_settings_come_from_config_then_environment() -> None:
    env = {
        "FORMFLOW_SMTP_HOST": "smtp.env",
        "FORMFLOW_SMTP_PORT": "2525",
        "FORMFLOW_SMTP_FROM": "x@y",
    }
    s = Settings.from_config({"FORMFLOW_SMTP_HOST": "smtp.config"}, env).mail
    assert (s.host, s.effective_port, s.security, s.sender, s.configured) == (
        "smtp.config",
        2525,
        "starttls",
        "x@y",
        True,
    )
    assert Settings.from_config({}, {}).mail.configured is False
    assert MailSettings(security="ssl").effective_port == 465
    assert "s3cret" not in repr(MailSettings(password="s3cret"))
    with pytest.raises(SettingInvalid):
        Settings.from_config({"FORMFLOW_SMTP_PORT": "twenty-five"}, {})
    with pytest.raises(SettingInvalid):
        Settings.from_config({"FORMFLOW_SMTP_SECURITY": "tls1"}, {})


# --------------------------------------------------------------------------- the outbox


BLUEPRINT = """
formflow: 1
id: mails
title: Mails
default_locale: zh
roles:
  rep: Rep
entities:
  deal:
    label: Deal
    fields:
      name: {type: text, label: Name}
"""


@dataclass
class World:
    schema: Any
    users: UserService
    jobs: JobQueue
    notes: NotificationService
    engine: Any
    clock: list[datetime]


def _world(tmp_path: Path, db_url: str) -> World:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    clock = [NOW]
    users = UserService(bp, schema, engine, clock=lambda: clock[0])
    users.add("li.lei", roles=["rep"], email="li@example.com")
    users.add("tom", roles=["rep"], email="tom@example.com", locale="en")
    users.add("nomail", roles=["rep"])
    jobs = JobQueue(engine, schema, lambda: clock[0])
    notes = NotificationService(
        schema, engine, jobs=jobs, mail_configured=True, clock=lambda: clock[0]
    )
    return World(schema, users, jobs, notes, engine, clock)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    w = _world(tmp_path, db_url)
    yield w
    w.engine.dispose()


def test_a_notification_is_mailed_by_a_worker_in_the_users_language(
    world: World, smtp: Smtp
) -> None:
    mailer = Mailer(
        smtp.settings(base_url="https://crm.example.com/"), world.users, default_lang="zh"
    )
    mailer.register_jobs(world.jobs)
    message = T("合同 HT-0007 已通过审批", "Contract HT-0007 was approved")
    with writer(world.engine).begin() as conn:
        world.notes.notify(
            conn,
            ["li.lei", "tom", "nomail"],
            message,
            ("deal", 7),
            body=T("请跟进收款", "Follow up"),
        )
    assert smtp.inbox.messages == []  # nothing is sent inside the transaction
    assert world.jobs.run_due("w") == 3
    got = {rcpts[0]: msg for _, rcpts, msg in smtp.inbox.messages}
    assert set(got) == {"li@example.com", "tom@example.com"}  # nomail has no address
    assert got["li@example.com"]["Subject"] == "合同 HT-0007 已通过审批"
    assert _body(got["li@example.com"]) == "请跟进收款\n\nhttps://crm.example.com/e/deal/7\n"
    assert got["tom@example.com"]["Subject"] == "Contract HT-0007 was approved"
    assert [j.state for j in world.jobs.jobs(kind=MAIL_JOB)] == ["done"] * 3


def test_a_failing_server_is_retried_with_backoff(
    world: World, smtp: Smtp, caplog: pytest.LogCaptureFixture
) -> None:
    down = MailSettings(host="127.0.0.1", port=_free_port(), security="none", sender="a@b.c")
    Mailer(down, world.users).register_jobs(world.jobs)
    with writer(world.engine).begin() as conn:
        world.notes.notify(conn, ["li.lei"], T("测试", "test"))
    world.jobs.run_due("w")
    [job] = world.jobs.jobs(kind=MAIL_JOB)
    assert job.state == "pending" and job.attempts == 1 and "MailError" in (job.last_error or "")
    assert job.due_at == NOW + timedelta(seconds=30)
    # the server is back (a worker with the right settings): the retry delivers once
    fixed = JobQueue(world.engine, world.schema, lambda: world.clock[0])
    Mailer(smtp.settings(), world.users).register_jobs(fixed)
    world.clock[0] = NOW + timedelta(seconds=30)
    assert fixed.run_due("w2") == 1
    assert len(smtp.inbox.messages) == 1
    done = fixed.get(job.id)
    assert done is not None and done.state == "done" and done.attempts == 2


def test_without_smtp_a_due_mail_job_is_skipped_with_a_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    Mailer(MailSettings(), world.users).register_jobs(world.jobs)
    with writer(world.engine).begin() as conn:
        world.notes.notify(conn, ["li.lei"], T("测试", "test"))
    with caplog.at_level(logging.INFO, logger="engine.mail"):
        assert world.jobs.run_due("w") == 1
    assert "SMTP is not configured" in caplog.text
    assert [j.state for j in world.jobs.jobs(kind=MAIL_JOB)] == ["done"]
