"""E-mail through the configured SMTP server, as ``mail.send`` jobs (an outbox).

Nothing is sent while a write is in progress: a notification schedules one
``mail.send`` job per recipient in the writer's transaction (see
:mod:`engine.notifications`), so a rolled-back change sends nothing; a worker
(``formflow worker``) sends it afterwards and retries with backoff when the
server fails (:mod:`engine.jobs`). A job names the *user*, not the address:
the address (``ff_users.email``) and the language (the user's locale, else the
blueprint's) are read when the mail is sent, so a corrected address counts and
a deactivated user gets nothing.

Settings (:class:`engine.settings.MailSettings`; each is a config key of the
web app / worker, else the environment variable of the same name):

* ``FORMFLOW_SMTP_HOST`` — the server; without it (or without a sender) mail is
  not configured: no mail jobs are scheduled and a ``mail.send`` job that comes
  due anyway is completed with a log line, not sent;
* ``FORMFLOW_SMTP_PORT`` — default 587 with STARTTLS, 465 with SSL, 25 without;
* ``FORMFLOW_SMTP_SECURITY`` — ``starttls`` (default), ``ssl`` or ``none``;
* ``FORMFLOW_SMTP_USER`` / ``FORMFLOW_SMTP_PASSWORD`` — log in when a user is set;
* ``FORMFLOW_SMTP_FROM`` — the sender, e.g. ``Formflow <crm@example.com>``;
* ``FORMFLOW_SMTP_TIMEOUT`` — seconds, default 30;
* ``FORMFLOW_BASE_URL`` — e.g. ``https://crm.example.com``: links in mails
  point there (without it a mail names the page's path).

``mail.send`` is an external job (:meth:`engine.jobs.JobQueue.register_external`):
the SMTP conversation holds no database transaction. Delivery is at least
once: a worker killed after the server took the mail but before the job was
marked done sends it again.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy.engine import Connection

from engine.errors import FormflowError
from engine.i18n import T, Text, normalise_lang
from engine.jobs import Job, JobQueue
from engine.settings import MailSettings
from engine.users import UserService

__all__ = ["MAIL_ATTEMPTS", "MAIL_JOB", "MailError", "Mailer"]

log = logging.getLogger(__name__)

MAIL_JOB = "mail.send"
MAIL_ATTEMPTS = 8


class MailError(FormflowError):
    """The SMTP server refused or could not be reached (the job is retried)."""

    http_status = 502
    default_message = Text(zh="邮件发送失败", en="The e-mail could not be sent")


class Mailer:
    """Sends mails through SMTP and runs ``mail.send`` jobs.

    ``default_lang`` is the language of users without a locale.
    """

    def __init__(
        self, settings: MailSettings, users: UserService, *, default_lang: str = "zh"
    ) -> None:
        self.settings = settings
        self.users = users
        self.default_lang = normalise_lang(default_lang)

    # -- scheduling (in the caller's transaction) ------------------------------------

    @staticmethod
    def schedule(
        jobs: JobQueue,
        conn: Connection,
        *,
        user: str,
        subject: Text,
        body: Text,
        link: str | None = None,
        dedupe_key: str | None = None,
    ) -> int | None:
        """Queue a mail to ``user`` (sent by a worker after ``conn`` commits)."""
        return jobs.schedule(
            conn,
            MAIL_JOB,
            jobs.clock(),
            {"user": user, "subject": subject.as_dict(), "body": body.as_dict(), "link": link},
            dedupe_key=dedupe_key,
            max_attempts=MAIL_ATTEMPTS,
        )

    def register_jobs(self, queue: JobQueue) -> None:
        """Let ``queue`` run ``mail.send`` jobs with this mailer."""
        queue.register_external(MAIL_JOB, self._run_job)

    # -- sending -------------------------------------------------------------------

    def message(
        self, to: Sequence[str], subject: str, body: str, *, sender: str | None = None
    ) -> EmailMessage:
        """The UTF-8 message (plain text) from the configured sender to ``to``."""
        msg = EmailMessage()
        msg["From"] = sender or self.settings.sender or ""
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain=_domain(self.settings.sender))
        msg.set_content(body, charset="utf-8")
        return msg

    def send(self, to: Sequence[str], subject: str, body: str) -> None:
        """Hand one message to the SMTP server now; :class:`MailError` when that fails."""
        s = self.settings
        if not s.configured:
            raise MailError(T("未配置 SMTP 服务器", "SMTP is not configured"))
        msg = self.message(to, subject, body)
        try:
            if s.security == "ssl":
                context = ssl.create_default_context()
                with smtplib.SMTP_SSL(
                    s.host or "", s.effective_port, timeout=s.timeout, context=context
                ) as smtp:
                    self._deliver(smtp, msg)
            else:
                with smtplib.SMTP(s.host or "", s.effective_port, timeout=s.timeout) as smtp:
                    if s.security == "starttls":
                        smtp.starttls(context=ssl.create_default_context())
                    self._deliver(smtp, msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(
                T(
                    f"邮件发送失败：{type(exc).__name__}: {exc}",
                    f"sending mail failed: {type(exc).__name__}: {exc}",
                )
            ) from None

    def _deliver(self, smtp: smtplib.SMTP, msg: EmailMessage) -> None:
        if self.settings.user:
            smtp.login(self.settings.user, self.settings.password or "")
        smtp.send_message(msg)

    def _run_job(self, job: Job) -> None:
        name = str(job.payload.get("user") or "")
        if not self.settings.configured:
            log.info("mail to %s not sent: SMTP is not configured (job %s)", name or "?", job.id)
            return
        user = self.users.find(name)
        if user is None or not user.active or not user.email:
            log.info("mail to %s not sent: no such active user with an e-mail address", name)
            return
        address, lang = user.email, normalise_lang(user.locale or self.default_lang)
        subject = Text.of(job.payload.get("subject")).get(lang)
        body = Text.of(job.payload.get("body")).get(lang)
        link = job.payload.get("link")
        if link:
            base = (self.settings.base_url or "").rstrip("/")
            body = f"{body}\n\n{base}{link}" if body else f"{base}{link}"
        self.send([address], subject, body)
        log.info("mail sent to %s (job %s)", name, job.id)


def _domain(sender: str | None) -> str | None:
    if not sender or "@" not in sender:
        return None
    return sender.rsplit("@", 1)[1].strip(" >") or None
