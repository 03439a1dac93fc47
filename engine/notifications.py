"""In-app notifications (table ``ff_notifications``), their e-mails, and flow notices.

A notification is one row per user: a ``kind`` (``automation``, ``task``,
``reminder``, ``approved``, ``rejected``, ``returned``, ``cc``,
``automation_error`` …), a bilingual ``title`` and optional ``body`` (stored as
``{"zh": …, "en": …}`` so each reader sees their language), an optional link
to a record (``entity`` + ``record_id``), ``created_at`` and ``read_at``
(unread while empty).

Rules:

* :meth:`NotificationService.notify` writes in the caller's transaction
  (``conn``): a notification exists exactly when the change that caused it
  committed. Recipients are de-duplicated; names that are not active users are
  skipped (a departed rep gets nothing). With a job queue and SMTP configured,
  one ``mail.send`` job per recipient is scheduled in the same transaction
  (:mod:`engine.mail`; the address is read when the mail is sent). Without
  SMTP, no mail job is scheduled and one log line says so.
* Reading and marking are per user: a user sees and marks only their own rows
  (:meth:`~NotificationService.list`, :meth:`~NotificationService.unread_count`,
  :meth:`~NotificationService.mark_read`); ids of other users' rows are ignored.
* :class:`FlowNotices` turns flow events into notifications, so nobody has to
  write an automation for the basics: ``step_entered`` and ``assigned`` tell
  the new approvers they have a task (and the step's CC recipients), a
  ``reminder`` tells the approver again, ``approved`` / ``rejected`` tell the
  submitter (plus the flow's ``notify:`` and CC recipients), ``returned`` to the
  submitter tells the submitter. The person who acted is not told about their
  own action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.events import Event
from engine.i18n import T, Text
from engine.jobs import JobQueue
from engine.mail import Mailer
from engine.model import Blueprint
from engine.storage.database import writer
from engine.storage.schema import FLOW_RUNS_TABLE, NOTIFICATIONS_TABLE, Schema

__all__ = [
    "KINDS",
    "FlowNotices",
    "Link",
    "Notification",
    "NotificationService",
    "flow_submitter",
    "names_in",
    "record_path",
]

log = logging.getLogger(__name__)

#: The kinds the engine writes (a blueprint cannot add others).
KINDS: tuple[str, ...] = (
    "automation",
    "automation_error",
    "task",
    "reminder",
    "cc",
    "approved",
    "rejected",
    "returned",
)
#: (entity, record id) a notification links to.
Link = tuple[str, int]
MAX_LIST = 500


def record_path(entity: str, record_id: int) -> str:
    """The path of a record's page in the web app."""
    return f"/e/{entity}/{record_id}"


def _text(value: Any) -> Text:
    return Text.of(value) if isinstance(value, Mapping | str) else Text()


@dataclass(frozen=True)
class Notification:
    """One row of ``ff_notifications``."""

    id: int
    user: str
    kind: str
    title: Text
    body: Text
    entity: str | None
    record_id: int | None
    created_at: datetime
    read_at: datetime | None

    @property
    def read(self) -> bool:
        return self.read_at is not None

    @property
    def link(self) -> str | None:
        """The linked record's page, if any."""
        if self.entity is None or self.record_id is None:
            return None
        return record_path(self.entity, self.record_id)


def _notification(row: Any) -> Notification:
    m = row._mapping
    return Notification(
        id=int(m["id"]),
        user=m["user"],
        kind=m["kind"],
        title=_text(m["title"]),
        body=_text(m["body"]),
        entity=m["entity"],
        record_id=None if m["record_id"] is None else int(m["record_id"]),
        created_at=m["created_at"],
        read_at=m["read_at"],
    )


class NotificationService:
    """Write, list, count and mark notifications (see the module doc).

    ``jobs`` and ``mail_configured``: schedule ``mail.send`` jobs for notifications.
    """

    def __init__(
        self,
        schema: Schema,
        engine: Engine,
        *,
        jobs: JobQueue | None = None,
        mail_configured: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.schema = schema
        self.engine = engine
        self.write_engine = writer(engine)
        self.jobs = jobs
        self.mail_configured = mail_configured
        self.clock = clock or (lambda: datetime.now(UTC))
        self.table: sa.Table = schema.metadata.tables[NOTIFICATIONS_TABLE]
        self.users: sa.Table = schema.users
        t = self.table
        # Built once: every page's header asks, and building a statement costs several
        # times what the indexed count itself does.
        self._unread = (
            sa.select(sa.func.count())
            .select_from(t)
            .where(t.c.user == sa.bindparam("user"), t.c.read_at.is_(None))
        )

    # -- writing (in the caller's transaction) ---------------------------------------

    def notify(
        self,
        conn: Connection,
        users: Iterable[str | None],
        message: Text,
        link: Link | None = None,
        *,
        kind: str = "automation",
        body: Text | None = None,
        email: bool = True,
    ) -> list[int]:
        """Tell ``users`` (active ones, once each) ``message``; the new rows' ids.

        In ``conn``'s transaction; with mail configured also one ``mail.send``
        job per recipient (``email=False``: in-app only).
        """
        wanted = list(dict.fromkeys(n for n in users if n))
        if not wanted:
            return []
        u = self.users
        active = set(
            conn.execute(
                sa.select(u.c.name).where(u.c.name.in_(wanted), u.c.active.is_(True))
            ).scalars()
        )
        names = [n for n in wanted if n in active]
        skipped = [n for n in wanted if n not in active]
        if skipped:
            log.info("notification %r not sent to %s: no such active user", kind, skipped)
        if not names:
            return []
        now = self.clock()
        entity, record_id = link if link is not None else (None, None)
        title = message.as_dict()
        text = body.as_dict() if body else None
        ids: list[int] = []
        for name in names:
            result = conn.execute(
                self.table.insert().values(
                    user=name,
                    kind=kind,
                    title=title,
                    body=text,
                    entity=entity,
                    record_id=record_id,
                    created_at=now,
                )
            )
            ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
        if email and self.jobs is not None:
            if self.mail_configured:
                path = record_path(entity, record_id) if entity and record_id else None
                for name, nid in zip(names, ids, strict=True):
                    Mailer.schedule(
                        self.jobs,
                        conn,
                        user=name,
                        subject=message,
                        body=body or message,
                        link=path,
                        dedupe_key=f"mail:notification:{nid}",
                    )
            else:
                log.info("notification %r: no e-mail sent, SMTP is not configured", kind)
        return ids

    # -- reading and marking (each user their own) ------------------------------------

    def list(
        self, user: str, *, unread_only: bool = False, limit: int = 50, before: int | None = None
    ) -> list[Notification]:
        """``user``'s notifications, newest first (``before``: ids below this one)."""
        t = self.table
        stmt = sa.select(t).where(t.c.user == user)
        if unread_only:
            stmt = stmt.where(t.c.read_at.is_(None))
        if before is not None:
            stmt = stmt.where(t.c.id < before)
        stmt = stmt.order_by(t.c.id.desc()).limit(max(1, min(limit, MAX_LIST)))
        with self.engine.connect() as conn:
            return [_notification(r) for r in conn.execute(stmt).all()]

    def unread_count(self, user: str) -> int:
        """How many of ``user``'s notifications are unread."""
        with self.engine.connect() as conn:
            return int(conn.execute(self._unread, {"user": user}).scalar_one())

    def mark_read(self, user: str, ids: Iterable[int] | Literal["all"]) -> int:
        """Mark ``user``'s notifications ``ids`` (or ``"all"``) read; how many changed."""
        t = self.table
        where = [t.c.user == user, t.c.read_at.is_(None)]
        if ids != "all":
            wanted = sorted({int(i) for i in ids})
            if not wanted:
                return 0
            where.append(t.c.id.in_(wanted))
        with self.write_engine.begin() as conn:
            result = conn.execute(t.update().where(*where).values(read_at=self.clock()))
        return int(result.rowcount)


# -- flow notices ---------------------------------------------------------------------


def names_in(value: Any) -> list[str]:
    """Names from an event detail: a name, a list of names, or step -> names."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Mapping):
        return [n for names in value.values() for n in names_in(names)]
    if isinstance(value, list | tuple):
        return [str(n) for n in value if isinstance(n, str) and n]
    return []


def flow_submitter(event: Event, runs: sa.Table) -> str | None:
    """Who submitted the flow run an event is about.

    ``submitted``: the actor. Otherwise ``details["submitted_by"]`` when the flow
    service gives it, else the run's row (``ff_flow_runs.submitted_by``, read in
    the event's own transaction, where a run submitted a moment ago is visible):
    by ``details["run_id"]``, or for a record event the record's latest run.
    """
    if event.kind == "submitted":
        return event.actor.name
    given = event.details.get("submitted_by")
    if isinstance(given, str) and given:
        return given
    run_id = event.details.get("run_id")
    stmt = sa.select(runs.c.submitted_by)
    if run_id is not None:
        stmt = stmt.where(runs.c.id == int(run_id))
    else:
        stmt = stmt.where(
            runs.c.entity == event.entity, runs.c.record_id == event.record_id
        ).order_by(runs.c.id.desc())
    row = event.conn.execute(stmt.limit(1)).first()
    return None if row is None else row.submitted_by


class FlowNotices:
    """Subscribe with ``bus.subscribe(FlowNotices(...))``: flow events -> notifications."""

    def __init__(self, blueprint: Blueprint, schema: Schema, notifications: NotificationService):
        self.blueprint = blueprint
        self.notifications = notifications
        self.runs: sa.Table = schema.metadata.tables[FLOW_RUNS_TABLE]

    def __call__(self, event: Event) -> None:
        if event.flow is None or event.flow not in self.blueprint.flows:
            return
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    # -- wording ---------------------------------------------------------------------

    def _subject(self, event: Event) -> tuple[str, str]:
        """(zh, en) of "flow · record title (step)"."""
        flow = self.blueprint.flows[event.flow or ""]
        entity = self.blueprint.entities.get(event.entity)
        title = None
        if entity is not None and entity.title_field and event.record is not None:
            title = event.record.values.get(entity.title_field)
        what = str(title) if title not in (None, "") else f"#{event.record_id}"
        zh = f"{flow.label.get('zh') or flow.name} · {what}"
        en = f"{flow.label.get('en') or flow.name} · {what}"
        step = flow.steps.get(event.step or "")
        if step is not None and len(flow.steps) > 1:
            zh += f"（{step.label.get('zh') or step.name}）"
            en += f" ({step.label.get('en') or step.name})"
        return zh, en

    def _tell(
        self, event: Event, users: Iterable[str], kind: str, zh: str, en: str, *, mine: bool = False
    ) -> None:
        names = [n for n in users if mine or n != event.actor.name]
        comment = event.details.get("comment")
        body = T(f"意见：{comment}", f"Comment: {comment}") if comment else None
        title = T(zh, en)
        self.notifications.notify(
            event.conn,
            names,
            title,
            (event.entity, event.record_id),
            kind=kind,
            body=body,
        )

    def _submitter(self, event: Event) -> str | None:
        return flow_submitter(event, self.runs)

    # -- events ------------------------------------------------------------------------

    def _on_step_entered(self, event: Event) -> None:
        zh, en = self._subject(event)
        approvers = names_in(event.details.get("approvers"))
        self._tell(event, approvers, "task", f"待你审批：{zh}", f"Waiting for your approval: {en}")
        cc = [n for n in names_in(event.details.get("cc")) if n not in approvers]
        self._tell(event, cc, "cc", f"抄送：{zh}", f"For your information: {en}")

    def _on_assigned(self, event: Event) -> None:
        zh, en = self._subject(event)
        approvers = names_in(event.details.get("approvers"))
        self._tell(event, approvers, "task", f"待你审批：{zh}", f"Waiting for your approval: {en}")

    def _on_reminder(self, event: Event) -> None:
        zh, en = self._subject(event)
        approver = names_in(event.details.get("approver"))
        self._tell(
            event,
            approver,
            "reminder",
            f"提醒：{zh} 仍在等待你审批",
            f"Reminder: {en} is still waiting for your approval",
            mine=True,
        )

    def _outcome(self, event: Event, kind: str, zh_word: str, en_word: str) -> None:
        zh, en = self._subject(event)
        people = [self._submitter(event) or ""]
        people += names_in(event.details.get("notify")) + names_in(event.details.get("cc"))
        self._tell(event, people, kind, f"{zh_word}：{zh}", f"{en_word}: {en}")

    def _on_approved(self, event: Event) -> None:
        self._outcome(event, "approved", "已通过", "Approved")

    def _on_rejected(self, event: Event) -> None:
        if event.details.get("outcome") == "returned":
            self._outcome(event, "returned", "已退回", "Returned")
        else:
            self._outcome(event, "rejected", "已驳回", "Rejected")

    def _on_returned(self, event: Event) -> None:
        if event.details.get("to") != "submitter":
            return  # back to an earlier step: step_entered tells its approvers
        zh, en = self._subject(event)
        self._tell(
            event, [self._submitter(event) or ""], "returned", f"已退回：{zh}", f"Returned: {en}"
        )
