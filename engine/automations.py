"""Automations: a blueprint's ``automations:`` run on record, flow and date events.

:class:`AutomationService` subscribes to the record service's
:class:`~engine.events.EventBus` and runs each matching automation inside the
writer's transaction (``event.conn``), so what it does commits or rolls back
with the change that triggered it.

Triggers (``on:``):

* ``create`` / ``update`` / ``delete`` — a record of ``entity`` was written by
  anyone (form, API, flow, another automation; imports emit no events). On
  ``update`` the ``when`` formula may use ``ISCHANGED(field)`` and
  ``PRIORVALUE(field)``; an update that changes nothing is no event.
* ``submitted`` / ``approved`` / ``rejected`` / ``step_entered`` — the flow
  named by ``flow:`` did that to a record (``rejected`` also when a rejection
  sends the record back to the submitter).
* ``date`` — ``offset`` (default 0, ``-3d`` = three days before) from the
  record's ``date_field``. A *date* field's moment is :data:`DATE_HOUR` (09:00)
  on that day in the blueprint's time zone; a date-time field's is its exact
  time. Each record gets one ``automation.date`` job per automation, kept in
  step with the record: scheduled on create, moved when the date field
  changes, cancelled when the record is deleted (its dedupe key is the
  automation, the record and the moment, so it fires at most once per record
  and moment). A periodic ``automation.sweep`` job (every :data:`SWEEP_EVERY`)
  schedules the jobs of records whose moment comes within the next sweep
  period, so records written before the automation existed (or by an import,
  which emits no events) are covered too. A moment already more than
  :data:`DATE_GRACE` in the past is never fired (an imported 2019 close date
  sends no reminder). ``when`` is evaluated when the job runs, on the record
  as it is then.

Actions run in order, all in one savepoint per automation:

* ``set`` — :meth:`RecordService.update` of the record (``via="automation"``,
  as the engine, at ``depth + 1``); values may be ``=`` formulas over the
  record that triggered.
* ``create`` — :meth:`RecordService.create` of a record of another entity
  (``via="automation"``); formulas in ``values`` read the triggering record;
  the new record's owner is the triggering record's owner.
* ``notify`` — in-app notifications (and e-mail when SMTP is configured) via
  :class:`~engine.notifications.NotificationService`. Recipients: a role (all
  its active users; ``admin`` too), a user field (``owner``, ``created_by``,
  a ``user`` field), ``submitter`` (who submitted the record's flow run),
  ``approvers`` (the approvers a flow event names), ``{manager_of: field,
  levels: n}``, ``{users: [names]}``. The message's ``{field}`` placeholders
  are filled safely (:mod:`engine.messages`): choice fields show their label,
  user fields the person's display name, references the referenced record's
  title.
* ``webhook`` — a ``webhook.deliver`` job (:mod:`engine.webhooks`): the
  outbox, delivered by a worker after the change committed.

Automations act as the engine itself (``SYSTEM``): they may write any field,
and the audit row says ``via: automation``. Formulas see ``CURRENT_USER()`` as
the person whose change triggered the automation.

Failures and loops:

* An automation that fails (a ``set`` the record's rules refuse, a formula
  error, a deleted record …) is undone on its own (its savepoint), the error is
  logged and told to the active admins as an ``automation_error``
  notification; the change that triggered it still commits. Other automations
  of the same event still run.
* **Loop guard.** A write made by an automation carries ``depth + 1``. An
  event at depth :data:`MAX_DEPTH` (5) runs no automations: the chain stops
  there, with an error in the log and an ``automation_error`` notification to
  the admins naming the automation that would have run. So an automation that
  triggers itself (``on: update`` that sets a field) runs five times, then
  stops; the user's own change and the five automated writes commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.errors import FormflowError, NotFound, RecordInvalid
from engine.events import Event, EventBus
from engine.expressions import EvalContext
from engine.fields import kind_of
from engine.i18n import LANGUAGES, T, Text
from engine.jobs import Job, JobQueue
from engine.messages import fill
from engine.model import SYSTEM_COLUMNS, Automation, AutomationAction, Blueprint, Formula, Recipient
from engine.notifications import FlowNotices, NotificationService, flow_submitter, names_in
from engine.records import SYSTEM, Record, RecordService
from engine.settings import Settings
from engine.storage.database import writer
from engine.storage.schema import FLOW_RUNS_TABLE
from engine.users import ADMIN_ROLE, UserService
from engine.webhooks import Webhooks, record_json

__all__ = [
    "DATE_GRACE",
    "DATE_HOUR",
    "DATE_JOB",
    "MAX_DEPTH",
    "SWEEP_EVERY",
    "SWEEP_JOB",
    "TRIGGERS",
    "AutomationService",
]

log = logging.getLogger(__name__)

#: The deepest event that still runs automations: a chain stops after this many writes.
MAX_DEPTH = 5
DATE_JOB = "automation.date"
SWEEP_JOB = "automation.sweep"
#: How often the sweep looks for records whose date trigger comes due.
SWEEP_EVERY = timedelta(hours=1)
#: A date trigger whose moment is older than this is not fired any more.
DATE_GRACE = timedelta(days=1)
#: The moment of a date field (not a date-time): this time of day, business time zone.
DATE_HOUR = time(9, 0)
#: Event kind -> the ``on:`` it triggers.
TRIGGERS: Mapping[str, str] = {
    "created": "create",
    "updated": "update",
    "deleted": "delete",
    "submitted": "submitted",
    "approved": "approved",
    "rejected": "rejected",
    "step_entered": "step_entered",
}
_USER_COLUMNS = frozenset({"owner", "created_by", "updated_by"})
_MAX_KEY = 200


def _formula_values(record: Record) -> dict[str, Any]:
    values = dict(record.values)
    for name in SYSTEM_COLUMNS - {"parent_id"}:
        values[name] = getattr(record, name, None)
    return values


def _error_text(exc: BaseException) -> Text:
    if isinstance(exc, RecordInvalid):
        parts = {
            lang: "; ".join(
                f"{field}: {', '.join(messages)}" for field, messages in exc.as_dict(lang).items()
            )
            for lang in LANGUAGES
        }
        return Text(zh=parts["zh"], en=parts["en"])
    if isinstance(exc, FormflowError):
        return exc.text
    return Text.of(f"{type(exc).__name__}: {exc}")


class AutomationService:
    """Runs a blueprint's automations on the events of ``records`` (see the module doc).

    ``notifications`` defaults to a :class:`NotificationService` over the same
    database (scheduling mail when ``settings.mail`` is configured), which also
    gets the flow notices (:class:`~engine.notifications.FlowNotices`) when
    ``flow_notices`` is true. The job handlers (``automation.date``,
    ``automation.sweep``) are registered on ``jobs``.
    """

    def __init__(
        self,
        blueprint: Blueprint,
        records: RecordService,
        users: UserService,
        jobs: JobQueue,
        *,
        clock: Callable[[], datetime] | None = None,
        settings: Settings | None = None,
        notifications: NotificationService | None = None,
        events: EventBus | None = None,
        flow_notices: bool = True,
    ) -> None:
        bus = events or records.events
        if bus is None:
            raise ValueError("AutomationService needs an EventBus (give the RecordService one)")
        self.blueprint = blueprint
        self.records = records
        self.users = users
        self.jobs = jobs
        self.clock = clock or records.clock
        self.settings = settings or Settings()
        self.tz = ZoneInfo(blueprint.timezone)
        self.schema = records.schema
        self.notifications = notifications or NotificationService(
            records.schema,
            records.engine,
            jobs=jobs,
            mail_configured=self.settings.mail.configured,
            clock=self.clock,
        )
        self._runs: sa.Table = self.schema.metadata.tables[FLOW_RUNS_TABLE]
        self._by_trigger: dict[tuple[str, str], list[Automation]] = defaultdict(list)
        self._dated: dict[str, list[Automation]] = defaultdict(list)
        for auto in blueprint.automations.values():
            if auto.on == "date":
                if auto.date_field:
                    self._dated[auto.entity].append(auto)
            else:
                self._by_trigger[(auto.entity, auto.on)].append(auto)
        self._handlers_registered = False
        bus.subscribe(self.on_event)
        if flow_notices:
            bus.subscribe(FlowNotices(blueprint, self.schema, self.notifications))
        self.register_jobs(jobs)

    # -- the event listener ------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Run the automations ``event`` triggers (inside the writer's transaction)."""
        if event.entity in self._dated and event.kind in ("created", "updated", "deleted"):
            self._sync_dates(event)
        on = TRIGGERS.get(event.kind)
        if on is None:
            return
        for auto in self._by_trigger.get((event.entity, on), ()):
            if auto.flow is not None and auto.flow != event.flow:
                continue
            self.run(auto, event)

    def run(self, auto: Automation, event: Event) -> bool:
        """Run one automation for ``event`` in a savepoint; False if it stopped or failed."""
        if event.depth >= MAX_DEPTH:
            self._stopped(auto, event)
            return False
        try:
            with event.conn.begin_nested():
                ctx = self._context(auto, event)
                if auto.when is not None and not bool(auto.when.compiled.evaluate(ctx)):
                    return True
                for action in auto.actions:
                    self._act(auto, action, event, ctx)
        except Exception as exc:  # one automation's failure must not undo the user's change
            self._failed(auto, event, exc)
            return False
        return True

    # -- evaluating ------------------------------------------------------------------

    def _context(self, auto: Automation, event: Event) -> EvalContext:
        record = event.record or event.prior
        values = _formula_values(record) if record is not None else {"id": event.record_id}
        prior = (
            _formula_values(event.prior)
            if event.prior is not None and event.kind == "updated"
            else None
        )
        return EvalContext(
            values=values,
            tables=record.tables if record is not None else {},
            prior=prior,
            user=event.actor.name,
            role=event.actor.role,
            now=self.clock,
            tz=self.tz,
        )

    @staticmethod
    def _value(value: Any, ctx: EvalContext) -> Any:
        if isinstance(value, Formula):
            return value.compiled.evaluate(ctx)
        if isinstance(value, tuple):
            return list(value)
        return value

    # -- actions -----------------------------------------------------------------------

    def _act(
        self, auto: Automation, action: AutomationAction, event: Event, ctx: EvalContext
    ) -> None:
        params = action.params
        conn = event.conn
        if action.kind == "set":
            data = {name: self._value(v, ctx) for name, v in params.items()}
            current = self.records.load(conn, event.entity, event.record_id)
            self.records.update(
                event.entity,
                event.record_id,
                data,
                version=current.version,
                actor=SYSTEM,
                via="automation",
                conn=conn,
                depth=event.depth + 1,
            )
        elif action.kind == "create":
            target = str(params.get("entity") or "")
            values: Mapping[str, Any] = params.get("values") or {}
            data = {name: self._value(v, ctx) for name, v in values.items()}
            source = event.record or event.prior
            if source is not None and source.owner is not None:
                data.setdefault("owner", source.owner)
            self.records.create(
                target, data, actor=SYSTEM, via="automation", conn=conn, depth=event.depth + 1
            )
        elif action.kind == "notify":
            names = self._recipients(params.get("to") or (), event, ctx.values)
            message = self._message(event, params.get("message"))
            link = (event.entity, event.record_id) if event.record is not None else None
            self.notifications.notify(conn, names, message, link, kind="automation")
        elif action.kind == "webhook":
            record = event.record or event.prior
            Webhooks.schedule(
                self.jobs,
                conn,
                url=str(params.get("url") or ""),
                secret_env=params.get("secret_env"),
                event=event.kind,
                entity=event.entity,
                record_id=event.record_id,
                record=record_json(record) if record is not None else None,
                automation=auto.name,
                occurred_at=self.clock(),
            )
        else:  # the checks refuse other kinds; a model built in code may still have one
            raise ValueError(f"unknown automation action {action.kind!r}")

    # -- notify: recipients and messages ----------------------------------------------

    def _recipients(
        self, recipients: Iterable[Any], event: Event, values: Mapping[str, Any]
    ) -> list[str]:
        entity = self.blueprint.entities.get(event.entity)
        user_fields = _USER_COLUMNS | {
            n for n, f in (entity.fields.items() if entity else ()) if f.kind == "user"
        }
        out: list[str] = []
        people: list[Any] | None = None
        for r in recipients:
            if not isinstance(r, Recipient):
                continue
            if r.users:
                out.extend(r.users)
            elif r.manager_of is not None:
                who = values.get(r.manager_of)
                if isinstance(who, str) and who:
                    boss = self.users.manager_of(who, r.levels)
                    if boss is not None:
                        out.append(boss)
            elif r.name == "submitter":
                out.extend(n for n in [flow_submitter(event, self._runs)] if n)
            elif r.name == "approvers":
                out.extend(names_in(event.details.get("approvers")))
            elif r.name in user_fields:
                who = values.get(r.name)
                if isinstance(who, str) and who:
                    out.append(who)
            elif r.name is not None and (r.name in self.blueprint.roles or r.name == ADMIN_ROLE):
                if people is None:
                    people = self.users.list(active_only=True)
                out.extend(u.name for u in people if r.name in u.roles)
        return list(dict.fromkeys(out))

    def _message(self, event: Event, template: Any) -> Text:
        text = template if isinstance(template, Text) else Text.of(template)
        record = event.record or event.prior
        base = _formula_values(record) if record is not None else {"id": event.record_id}
        sides = {}
        for lang in LANGUAGES:
            written = getattr(text, lang)
            if written is None:
                continue
            sides[lang] = fill(written, self._shown(event, base, written, lang))
        return Text(zh=sides.get("zh"), en=sides.get("en"))

    def _shown(
        self, event: Event, values: Mapping[str, Any], template: str, lang: str
    ) -> dict[str, Any]:
        """Values as a message shows them: choice labels, people's names, record titles."""
        entity = self.blueprint.entities.get(event.entity)
        shown = dict(values)
        if entity is None:
            return shown
        for name, value in values.items():
            if value is None or "{" + name + "}" not in template:
                continue
            f = entity.fields.get(name)
            if f is not None and f.options:
                if isinstance(value, list | tuple):
                    shown[name] = [self._label(f.option(str(v)), v, lang) for v in value]
                else:
                    shown[name] = self._label(f.option(str(value)), value, lang)
            elif (f is not None and f.kind == "user") or name in _USER_COLUMNS:
                user = self.users.find(str(value))
                shown[name] = user.label if user is not None else value
            elif f is not None and f.kind == "ref" and f.to:
                shown[name] = self._title(event.conn, f.to, value)
        return shown

    @staticmethod
    def _label(option: Any, value: Any, lang: str) -> Any:
        return (option.label.get(lang) or value) if option is not None else value

    def _title(self, conn: Connection, entity: str, record_id: Any) -> Any:
        target = self.blueprint.entities.get(entity)
        try:
            record = self.records.load(conn, entity, record_id)
        except NotFound:
            return record_id
        if target is None or not target.title_field:
            return f"#{record.id}"
        title = record.values.get(target.title_field)
        return title if title not in (None, "") else f"#{record.id}"

    # -- failures and the loop guard -------------------------------------------------

    def _admins(self) -> list[str]:
        return [u.name for u in self.users.list(active_only=True) if u.is_admin]

    def _tell_admins(self, event: Event, message: Text) -> None:
        link = (event.entity, event.record_id) if event.record is not None else None
        try:
            with event.conn.begin_nested():
                self.notifications.notify(
                    event.conn, self._admins(), message, link, kind="automation_error"
                )
        except Exception:  # telling must never undo the change either
            log.exception("could not notify the admins about an automation problem")

    @staticmethod
    def _name(auto: Automation) -> tuple[str, str]:
        return (auto.label.get("zh") or auto.name, auto.label.get("en") or auto.name)

    def _stopped(self, auto: Automation, event: Event) -> None:
        log.error(
            "automation %s stopped on %s #%s: %s writes in a chain reached the limit of %s"
            " (a loop?)",
            auto.name,
            event.entity,
            event.record_id,
            event.depth,
            MAX_DEPTH,
        )
        zh, en = self._name(auto)
        self._tell_admins(
            event,
            T(
                f"自动化「{zh}」已停止：连锁触发达到 {MAX_DEPTH} 层上限（可能是循环），"
                f"{event.entity} #{event.record_id}",
                f"automation '{en}' stopped: a chain of automated writes reached the limit "
                f"of {MAX_DEPTH} (a loop?) on {event.entity} #{event.record_id}",
            ),
        )

    def _failed(self, auto: Automation, event: Event, exc: BaseException) -> None:
        if isinstance(exc, FormflowError):
            log.error(
                "automation %s failed on %s #%s: %s",
                auto.name,
                event.entity,
                event.record_id,
                _error_text(exc).get("en"),
            )
        else:
            log.exception(
                "automation %s failed on %s #%s", auto.name, event.entity, event.record_id
            )
        zh, en = self._name(auto)
        reason = _error_text(exc)
        self._tell_admins(
            event,
            T(
                f"自动化「{zh}」执行失败（{event.entity} #{event.record_id}）：{reason.get('zh')}",
                f"automation '{en}' failed on {event.entity} #{event.record_id}: "
                f"{reason.get('en')}",
            ),
        )

    # -- date triggers ---------------------------------------------------------------

    def register_jobs(self, queue: JobQueue) -> None:
        """Let ``queue`` run the date and sweep jobs (once per queue)."""
        if queue is self.jobs and self._handlers_registered:
            return
        queue.register(DATE_JOB, self._run_date)
        queue.register(SWEEP_JOB, self._run_sweep)
        if queue is self.jobs:
            self._handlers_registered = True

    def moment(self, auto: Automation, value: Any) -> datetime | None:
        """When a date automation fires for a date field holding ``value`` (UTC), if ever."""
        if isinstance(value, datetime):
            base = value if value.tzinfo is not None else value.replace(tzinfo=self.tz)
        elif isinstance(value, date):
            base = datetime.combine(value, DATE_HOUR, tzinfo=self.tz)
        else:
            return None
        return (base.astimezone(self.tz) + (auto.offset or timedelta(0))).astimezone(UTC)

    @staticmethod
    def _date_key(auto: Automation, entity: str, record_id: int, at: datetime) -> str:
        key = f"automation.date:{auto.name}:{entity}:{record_id}:{at.isoformat()}"
        if len(key) <= _MAX_KEY:
            return key
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"automation.date:{digest}"

    def _date_value(self, auto: Automation, record: Record | None) -> Any:
        if record is None or auto.date_field is None:
            return None
        if auto.date_field in ("created_at", "updated_at"):
            return getattr(record, auto.date_field)
        return record.values.get(auto.date_field)

    def _schedule_date(
        self, conn: Connection, auto: Automation, entity: str, record_id: int, at: datetime
    ) -> int | None:
        now = self.clock()
        if at < now - DATE_GRACE:
            return None
        return self.jobs.schedule(
            conn,
            DATE_JOB,
            max(at, now),
            {
                "automation": auto.name,
                "entity": entity,
                "record_id": record_id,
                "at": at.isoformat(),
            },
            dedupe_key=self._date_key(auto, entity, record_id, at),
        )

    def _sync_dates(self, event: Event) -> None:
        """Keep each record's date jobs in step with its date fields (same transaction)."""
        for auto in self._dated[event.entity]:
            field = auto.date_field or ""
            if event.kind == "updated" and field not in event.changes and field != "updated_at":
                continue
            old = self.moment(auto, self._date_value(auto, event.prior))
            new = self.moment(auto, self._date_value(auto, event.record))
            if old is not None and old != new:
                self.jobs.cancel(
                    event.conn, dedupe_key=self._date_key(auto, event.entity, event.record_id, old)
                )
            if new is not None and event.kind != "deleted":
                self._schedule_date(event.conn, auto, event.entity, event.record_id, new)

    def _run_date(self, job: Job, conn: Connection) -> None:
        payload = job.payload
        auto = self.blueprint.automations.get(str(payload.get("automation")))
        entity = str(payload.get("entity"))
        if auto is None or auto.on != "date" or auto.entity != entity:
            log.info("date job %s: automation %r is gone", job.id, payload.get("automation"))
            return
        try:
            record = self.records.load(conn, entity, payload.get("record_id"))
        except NotFound:
            return
        at = self.moment(auto, self._date_value(auto, record))
        if at is None or at.isoformat() != payload.get("at"):
            log.info("date job %s: the record's date moved; this job is stale", job.id)
            return
        event = Event(
            kind="date",
            entity=entity,
            record_id=record.id,
            actor=SYSTEM,
            conn=conn,
            record=record,
            prior=None,
            changes={},
            depth=0,
            via="automation",
            details={"automation": auto.name, "at": payload.get("at")},
        )
        self.run(auto, event)

    # -- the sweep -------------------------------------------------------------------

    def _slot(self, moment: datetime) -> datetime:
        step = int(SWEEP_EVERY.total_seconds())
        epoch = int(moment.timestamp())
        return datetime.fromtimestamp(epoch - epoch % step, UTC)

    def schedule_sweep(
        self, conn: Connection | None = None, *, at: datetime | None = None
    ) -> int | None:
        """Schedule the sweep of the period starting at ``at`` (default: now's period).

        Idempotent: each period's sweep has one dedupe key. Nothing without date
        automations. A worker calls this when it starts.
        """
        if not self._dated:
            return None
        if conn is None:
            with writer(self.records.engine).begin() as own:
                return self.schedule_sweep(own, at=at)
        slot = self._slot(at or self.clock())
        return self.jobs.schedule(
            conn,
            SWEEP_JOB,
            max(slot, self.clock()) if at is None else slot,
            {"slot": slot.isoformat()},
            dedupe_key=f"automation.sweep:{slot.isoformat()}",
        )

    def sweep(self, conn: Connection) -> int:
        """Schedule the date jobs coming due before the next sweep; how many were new."""
        now = self.clock()
        horizon = now + SWEEP_EVERY + SWEEP_EVERY  # overlap: a late sweep misses nothing
        added = 0
        for entity, autos in self._dated.items():
            et = self.schema.entity(entity)
            for auto in autos:
                field = auto.date_field or ""
                column = et.column(field)
                offset = auto.offset or timedelta(0)
                low, high = now - DATE_GRACE - offset, horizon - offset
                f = et.entity.fields.get(field)
                if f is not None and kind_of(f).storage_of(f) == "date":
                    bounds: tuple[Any, Any] = (
                        low.astimezone(self.tz).date() - timedelta(days=1),
                        high.astimezone(self.tz).date() + timedelta(days=1),
                    )
                else:
                    bounds = (low - timedelta(days=1), high + timedelta(days=1))
                rows = conn.execute(
                    sa.select(et.table.c.id, column).where(column.between(*bounds))
                ).all()
                for record_id, raw in rows:
                    value = kind_of(f).from_storage(f, raw) if f is not None else raw
                    at = self.moment(auto, value)
                    if at is None or not (now - DATE_GRACE <= at <= horizon):
                        continue
                    if self._schedule_date(conn, auto, entity, int(record_id), at) is not None:
                        added += 1
        return added

    def _run_sweep(self, job: Job, conn: Connection) -> None:
        added = self.sweep(conn)
        if added:
            log.info("date sweep: %s date job(s) scheduled", added)
        slot = self._slot(self.clock())
        self.schedule_sweep(conn, at=slot + SWEEP_EVERY)
