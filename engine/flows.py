"""Approval flows: a state machine over the record service (see docs/flows.md).

A record is *submitted* to a flow; that starts a *run* (``ff_flow_runs``, one
per submission, numbered by ``round``). At submit time every step's ``when``
is evaluated and every step's approvers are resolved and stored as *tasks*
(``ff_flow_tasks``, one per approver and step), so the trail shows who was
asked; skipped steps get one ``skipped`` row. The first step's tasks are
``open``, later ones ``waiting``.

Run states and the record's status field (``flow.statuses`` maps them)::

    (draft) --submit--> pending --last step approved----------> approved
                           |  |--reject (no return_to)--------> rejected
                           |  |--reject / return to submitter-> returned  (status: draft)
                           |  '--recall (before any decision)-> recalled  (status: draft)
                           '--return to an earlier step: stays pending at that step
    rejected | returned | recalled --submit again--> pending (a new run, round + 1)

Task states: ``waiting`` (a later step), ``open`` (asked now), ``approved``,
``rejected``, ``transferred`` (转交: a new task went to someone else),
``cancelled`` (no longer needed: another approver decided an ``any`` step, the
run ended or was recalled or returned), ``skipped`` (the step's ``when`` was
false). ``origin`` says why a task exists: ``resolved`` at submit, ``added``
(加签), ``transferred``, ``escalated`` (a timeout asked the approver's manager).

Modes: ``any`` (或签) — the first approval decides the step and cancels the
other open tasks; ``all`` (会签) — every open task must approve (an added
approver too); an escalated task stands in for the task it escalated, so
either of the two approving covers that place. In both modes one rejection
rejects the step.

Every action is one transaction: the run and task rows, the record's status
and ``set`` fields (through :meth:`RecordService.update` with ``via="flow"``),
an ``ff_audit`` row (``action`` one of :data:`AUDIT_ACTIONS`, the flow trail),
the scheduled reminder/timeout jobs and the emitted events commit together or
not at all. Each action locks the record's row first (PostgreSQL ``FOR
UPDATE``; SQLite's write transaction is exclusive), then re-reads the run and
its tasks, so two approvers acting at the same instant produce exactly one
decision; the other gets :class:`AlreadyDecided` naming who decided and when.

Fallbacks (also in docs/flows.md):

* ``manager_of`` on a user without a manager at that level (or an inactive
  one, or a blank user field) asks the active admins instead.
* Self-approval: unless ``allow_self_approval``, the submitter is taken out of
  every approver set; a step left with nobody asks the active admins other
  than the submitter.
* A step that resolves to nobody otherwise (a role with no active members, a
  user field that is blank, named users all inactive) refuses the submit with
  :class:`NoApprovers` naming the step and the reason. A name that is not a
  user at all (in ``users:`` or from a formula) is refused the same way.
* ``when`` and the approvers are decided at submit: an approver's edits to
  ``editable`` fields do not re-route the run (return it to be resubmitted).
* A rejection's target is the step's ``on_reject.return_to``, else the flow's
  ``on_rejected.return_to``: ``submitter`` returns the run (status draft); a
  step that is before the current one and active in this run re-opens that
  step (回退) and asks its approvers again, and the steps after it again too;
  any other target, or none, rejects the run.
* Without a :class:`JobQueue` there are no reminders or timeouts.
* Deleting a record (with the service's event bus) ends its pending runs as
  ``recalled`` and cancels their tasks and timers, in the delete's transaction.

Events (:mod:`engine.events`, inside the transaction; ``details`` keys):

* ``submitted``: ``run_id``, ``round``, ``comment``, ``approvers`` (step ->
  names), ``skipped`` (steps).
* ``step_entered``: a step opened: ``run_id``, ``round``, ``approvers``,
  ``task_ids``, ``cc``.
* ``assigned``: tasks opened at a step already open (transfer, 加签,
  escalation): ``approvers``, ``task_ids``, ``reason``, ``by``.
* ``approved`` / ``rejected``: the run ended (``rejected`` also when a
  rejection sends it back to the submitter; ``outcome`` says ``rejected`` or
  ``returned``): ``run_id``, ``round``, ``comment``, ``by``, ``notify``
  (resolved names from ``on_approved``/``on_rejected`` and the step's
  ``on_approve``/``on_reject``), ``cc``, ``outcome``.
* ``returned``: sent back by ``return_to`` (or a rejection) to the submitter
  or to an earlier step: ``to``, ``comment``, ``by``, ``run_id``, ``round``.
* ``recalled``: ``run_id``, ``round``, ``by``.
* ``reminder``: a reminder job came due for an open task: ``task_id``,
  ``approver``, ``run_id``, ``opened_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.errors import (
    AlreadyDecided,
    FlowError,
    NoApprovers,
    NotFound,
    PermissionDenied,
    RecordInvalid,
    TransitionNotAllowed,
)
from engine.events import Event, EventBus
from engine.expressions import EvalContext
from engine.fields import FieldValueError, kind_of
from engine.i18n import T, Text
from engine.jobs import Job, JobQueue
from engine.model import SYSTEM_COLUMNS, Approvers, Blueprint, Flow, FlowAction, Formula, Step
from engine.records import SYSTEM, Actor, Record, RecordService
from engine.storage.database import writer
from engine.storage.schema import FLOW_RUNS_TABLE, FLOW_TASKS_TABLE, Schema
from engine.users import ADMIN_ROLE, Hierarchy, UserService

__all__ = [
    "AUDIT_ACTIONS",
    "REMIND_JOB",
    "RUN_STATES",
    "TASK_STATES",
    "TIMEOUT_JOB",
    "FlowService",
    "FlowState",
    "InboxItem",
    "Run",
    "StepView",
    "SubmissionItem",
    "Task",
    "TrailEntry",
]

log = logging.getLogger(__name__)

RUN_STATES: tuple[str, ...] = ("pending", "approved", "rejected", "recalled", "returned")
TASK_STATES: tuple[str, ...] = (
    "waiting",
    "open",
    "approved",
    "rejected",
    "transferred",
    "cancelled",
    "skipped",
)
ORIGINS: tuple[str, ...] = ("resolved", "added", "transferred", "escalated")
#: ``ff_audit.action`` of flow actions (with ``via="flow"``): the flow trail.
AUDIT_ACTIONS: tuple[str, ...] = (
    "submit",
    "approve",
    "reject",
    "return",
    "transfer",
    "add_approver",
    "recall",
    "escalate",
)
REMIND_JOB = "flow.remind"
TIMEOUT_JOB = "flow.timeout"
SUBMITTER = "submitter"
#: The run state -> the flow state whose status value the record gets.
_STATUS_OF_RUN = {
    "pending": "pending",
    "approved": "approved",
    "rejected": "rejected",
    "recalled": "draft",
    "returned": "draft",
}
_DECIDED = ("approved", "rejected")
_EMPTY: Mapping[str, Any] = MappingProxyType({})

MSG_COMMENT = T("请填写审批意见", "a comment is required")
MSG_NOT_EDITABLE = T("此步骤不能修改这个字段", "this field cannot be changed at this step")
MSG_AUTO_APPROVE = "超时自动通过 / approved automatically after the timeout"
MSG_AUTO_REJECT = "超时自动驳回 / rejected automatically after the timeout"
MSG_AUTO_RETURN = "超时自动退回 / returned automatically after the timeout"


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class Run:
    """One submission of a record to a flow (a row of ``ff_flow_runs``)."""

    id: int
    flow: str
    entity: str
    record_id: int
    round: int
    state: str
    current_step: str | None
    submitted_by: str | None
    submitted_at: datetime
    comment: str | None
    finished_at: datetime | None
    finished_by: str | None
    version: int


@dataclass(frozen=True)
class Task:
    """One approver asked at one step (a row of ``ff_flow_tasks``)."""

    id: int
    run_id: int
    step: str
    visit: int
    approver: str | None
    state: str
    origin: str
    parent_id: int | None
    added_by: str | None
    transferred_to: str | None
    comment: str | None
    created_at: datetime
    opened_at: datetime | None
    decided_at: datetime | None
    remind_at: datetime | None
    due_at: datetime | None


@dataclass(frozen=True)
class StepView:
    """A step of a run as a page shows it: its latest visit's tasks and what came of them.

    ``state``: skipped | waiting | open | approved | rejected | cancelled (the
    run ended or was recalled before the step decided) | not_submitted.
    """

    name: str
    label: Text
    mode: str
    state: str
    visit: int
    approvers: tuple[str, ...]
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class TrailEntry:
    """One flow action on a record: who, when, what, with which comment."""

    id: int
    at: datetime
    who: str | None  # None: the engine (a timeout)
    action: str  # one of AUDIT_ACTIONS
    flow: str | None
    step: str | None
    round: int | None
    comment: str | None
    task_id: int | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class FlowState:
    """Where a record stands in a flow, and what ``actor`` may do about it.

    ``state`` is ``draft`` before the first submit, else the latest run's state.
    ``actions`` holds the names of the methods the actor may call now:
    submit, recall, approve, reject, return_to, transfer, add_approver.
    """

    flow: str
    label: Text
    entity: str
    record_id: int
    state: str
    run_id: int | None
    round: int
    current_step: str | None
    submitted_by: str | None
    submitted_at: datetime | None
    finished_at: datetime | None
    path: tuple[StepView, ...]  # steps reached so far (decided, open, skipped), in order
    next_steps: tuple[StepView, ...]  # steps still to come
    open_tasks: tuple[Task, ...]
    my_tasks: tuple[Task, ...]  # the actor's open tasks
    actions: tuple[str, ...]
    trail: tuple[TrailEntry, ...]
    return_targets: tuple[str, ...] = ()  # where return_to may send the run now


@dataclass(frozen=True)
class InboxItem:
    """An open task of the actor: "waiting for me"."""

    task_id: int
    flow: str
    flow_label: Text
    step: str
    step_label: Text
    entity: str
    entity_label: Text
    record_id: int
    title: Any
    round: int
    submitted_by: str | None
    submitted_at: datetime
    opened_at: datetime | None
    due_at: datetime | None
    origin: str
    added_by: str | None


@dataclass(frozen=True)
class SubmissionItem:
    """A run the actor submitted ("submitted by me"): the latest round of a record."""

    run: Run
    flow_label: Text
    entity_label: Text
    step_label: Text  # the current step's (blank once the run ended)
    title: Any


@dataclass
class _People:
    """One snapshot of ``ff_users`` read in the action's transaction."""

    roles: dict[str, tuple[str, ...]]
    active: set[str]
    hierarchy: Hierarchy

    def exists(self, name: str) -> bool:
        return name in self.roles

    def with_role(self, role: str) -> list[str]:
        return sorted(n for n, r in self.roles.items() if role in r and n in self.active)

    def admins(self) -> list[str]:
        return self.with_role(ADMIN_ROLE)


@dataclass
class _Resolved:
    """Who a step asks, or why nobody."""

    names: list[str] = field(default_factory=list)
    reason: Text | None = None
    fallback: bool = False


def _text(value: Any) -> Text:
    return value if isinstance(value, Text) else Text.of(value)


def _label(label: Text, name: str) -> Text:
    return label if label else Text.of(name)


def _fill(template: Text, **params: Any) -> Text:
    """``template`` with ``{name}`` filled per language (a Text parameter gives its own)."""

    def side(lang: str) -> str:
        values = {k: v.get(lang) if isinstance(v, Text) else v for k, v in params.items()}
        return template.get(lang).format(**values)

    return Text(zh=side("zh"), en=side("en"))


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "?"


def _who(name: str | None) -> Text:
    return Text.of(name) if name else T("系统", "the system")


def _dedupe(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))


def _run(row: Any) -> Run:
    m = row._mapping
    return Run(
        id=int(m["id"]),
        flow=m["flow"],
        entity=m["entity"],
        record_id=int(m["record_id"]),
        round=int(m["round"]),
        state=m["state"],
        current_step=m["current_step"],
        submitted_by=m["submitted_by"],
        submitted_at=m["submitted_at"],
        comment=m["comment"],
        finished_at=m["finished_at"],
        finished_by=m["finished_by"],
        version=int(m["version"]),
    )


def _task(row: Any) -> Task:
    m = row._mapping
    return Task(
        id=int(m["id"]),
        run_id=int(m["run_id"]),
        step=m["step"],
        visit=int(m["visit"]),
        approver=m["approver"],
        state=m["state"],
        origin=m["origin"],
        parent_id=m["parent_id"],
        added_by=m["added_by"],
        transferred_to=m["transferred_to"],
        comment=m["comment"],
        created_at=m["created_at"],
        opened_at=m["opened_at"],
        decided_at=m["decided_at"],
        remind_at=m["remind_at"],
        due_at=m["due_at"],
    )


@dataclass
class _Ctx:
    """What one action works on, read under the record's lock."""

    conn: Connection
    flow: Flow
    run: Run
    record: Record
    tasks: list[Task]
    now: datetime
    people: _People | None = None
    events: list[Event] = field(default_factory=list)
    audits: list[tuple[str | None, str, dict[str, Any]]] = field(default_factory=list)

    def task(self, task_id: int) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)


class FlowService:
    """Submit records to flows and decide their steps (see the module doc)."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        records: RecordService,
        users: UserService,
        *,
        clock: Callable[[], datetime] | None = None,
        events: EventBus | None = None,
        jobs: JobQueue | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.write_engine = writer(engine)
        self.records = records
        self.users = users
        self.clock = clock or records.clock
        self.events = events
        self.jobs = jobs
        self.tz = ZoneInfo(blueprint.timezone)
        self.runs: sa.Table = schema.metadata.tables[FLOW_RUNS_TABLE]
        self.tasks: sa.Table = schema.metadata.tables[FLOW_TASKS_TABLE]
        self._flow_entities = frozenset(f.entity for f in blueprint.flows.values())
        if jobs is not None:
            self.register_jobs(jobs)
        if events is not None:
            events.subscribe(self._on_record_event)

    # -- public API: actions -----------------------------------------------------------

    def submit(
        self,
        entity: str,
        record_id: int,
        *,
        actor: Actor,
        flow: str | None = None,
        comment: str | None = None,
    ) -> FlowState:
        """Start a run (or a new round after rejected / returned / recalled)."""
        with self.write_engine.begin() as conn:
            record = self._lock_record(conn, entity, record_id)
            self._may_submit(actor, record)
            fl = self._flow_for(entity, flow)
            now = self.clock()
            last = self._latest_run(conn, fl.name, entity, record.id)
            if last is not None and last.state == "pending":
                raise TransitionNotAllowed(
                    _fill(
                        T(
                            "已于 {at} 由 {who} 提交，正在审批中",
                            "already submitted by {who} at {at} and pending",
                        ),
                        who=_who(last.submitted_by),
                        at=_when(last.submitted_at),
                    )
                )
            if last is not None and last.state == "approved":
                raise TransitionNotAllowed(
                    _fill(
                        T("已于 {at} 审批通过", "already approved at {at}"),
                        at=_when(last.finished_at),
                    )
                )
            values = self._formula_values(record)
            if fl.submit_when is not None and not self._true(fl.submit_when, values, actor):
                raise RecordInvalid(
                    {
                        "_record": [
                            T(
                                f"不满足提交条件：{fl.submit_when.source}",
                                f"cannot be submitted: {fl.submit_when.source} is not met",
                            )
                        ]
                    }
                )
            people = self._people(conn)
            submitter = actor.name
            plan: list[tuple[Step, list[str] | None]] = []
            for step in fl.steps.values():
                if step.when is not None and not self._true(step.when, values, actor):
                    plan.append((step, None))
                    continue
                plan.append((step, self._approvers_of(fl, step, record, values, people, submitter)))
            round_no = (last.round if last is not None else 0) + 1
            try:
                run_id = int(
                    conn.execute(
                        self.runs.insert().values(
                            flow=fl.name,
                            entity=entity,
                            record_id=record.id,
                            round=round_no,
                            state="pending",
                            current_step=None,
                            submitted_by=submitter,
                            submitted_at=now,
                            comment=comment or None,
                            version=1,
                        )
                    ).inserted_primary_key[0]  # type: ignore[index]
                )
            except sa.exc.IntegrityError:
                raise TransitionNotAllowed(
                    T("已经提交过了", "this was submitted already")
                ) from None
            rows = []
            for step, names in plan:
                if names is None:
                    rows.append(self._task_row(run_id, step.name, 1, None, "skipped", now))
                    continue
                for name in names:
                    rows.append(self._task_row(run_id, step.name, 1, name, "waiting", now))
            if rows:
                conn.execute(self.tasks.insert(), rows)
            run = self._run_by_id(conn, run_id)
            ctx = _Ctx(conn, fl, run, record, self._tasks_of(conn, run_id), now, people)
            asked = {s.name: n for s, n in plan if n is not None}
            skipped = [s.name for s, n in plan if n is None]
            self._audit(
                ctx,
                actor,
                "submit",
                step=None,
                comment=comment,
                extra={"approvers": asked, "skipped": skipped},
            )
            first = next((s for s, n in plan if n is not None), None)
            details: dict[str, Any] = {"comment": comment, "approvers": asked, "skipped": skipped}
            if first is None:  # every step skipped: approved at once
                self._finish(ctx, actor, "approved", comment, final_set=fl.on_approved.set)
                self._event(ctx, "submitted", actor, None, details)
                self._event_outcome(ctx, "approved", actor, None, comment, fl.on_approved)
            else:
                self._set_record(ctx, actor, {fl.status_field: self._status(fl, "pending")})
                self._event(ctx, "submitted", actor, None, details)
                self._enter_step(ctx, actor, first)
            self._flush(ctx)
        return self.state(entity, record.id, actor=actor, flow=fl.name)

    def approve(
        self,
        task_id: int,
        *,
        actor: Actor,
        comment: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> FlowState:
        """Approve an open task of ``actor``; ``values``: the step's ``editable`` fields."""
        with self.write_engine.begin() as conn:
            ctx, task = self._begin_task_action(conn, task_id, actor)
            self._approve(ctx, task, actor, comment, values or {})
            self._flush(ctx)
        return self.state(ctx.run.entity, ctx.run.record_id, actor=actor, flow=ctx.flow.name)

    def reject(self, task_id: int, *, actor: Actor, comment: str | None) -> FlowState:
        """Reject: the step's / flow's ``return_to`` decides where the run goes."""
        with self.write_engine.begin() as conn:
            ctx, task = self._begin_task_action(conn, task_id, actor)
            self._reject(ctx, task, actor, comment)
            self._flush(ctx)
        return self.state(ctx.run.entity, ctx.run.record_id, actor=actor, flow=ctx.flow.name)

    def return_to(self, task_id: int, step: str, *, actor: Actor, comment: str | None) -> FlowState:
        """Send the run back to ``"submitter"`` or to an earlier step (回退)."""
        with self.write_engine.begin() as conn:
            ctx, task = self._begin_task_action(conn, task_id, actor)
            self._require_reject_comment(ctx.flow, ctx.flow.steps[task.step], comment)
            self._return(ctx, task, actor, step, comment)
            self._flush(ctx)
        return self.state(ctx.run.entity, ctx.run.record_id, actor=actor, flow=ctx.flow.name)

    def transfer(
        self, task_id: int, to_user: str, *, actor: Actor, comment: str | None = None
    ) -> FlowState:
        """转交: ``to_user`` gets the task instead of ``actor``."""
        with self.write_engine.begin() as conn:
            ctx, task = self._begin_task_action(conn, task_id, actor)
            self._check_new_approver(ctx, task, to_user, actor)
            self._update_task(
                ctx,
                task,
                "transferred",
                decided_at=ctx.now,
                comment=comment or None,
                transferred_to=to_user,
            )
            [new] = self._add_tasks(ctx, task.step, task.visit, [to_user], "transferred", task)
            self._audit(
                ctx,
                actor,
                "transfer",
                step=task.step,
                comment=comment,
                task=task,
                extra={"to": to_user, "new_task": new.id},
            )
            self._event(
                ctx,
                "assigned",
                actor,
                task.step,
                {
                    "approvers": [to_user],
                    "task_ids": [new.id],
                    "reason": "transferred",
                    "by": actor.name,
                    "comment": comment,
                },
            )
            self._flush(ctx)
        return self.state(ctx.run.entity, ctx.run.record_id, actor=actor, flow=ctx.flow.name)

    def add_approver(
        self, task_id: int, user: str, *, actor: Actor, comment: str | None = None
    ) -> FlowState:
        """加签: ``user`` is asked at the same step too (in ``all`` mode they must approve)."""
        with self.write_engine.begin() as conn:
            ctx, task = self._begin_task_action(conn, task_id, actor)
            self._check_new_approver(ctx, task, user, actor)
            [new] = self._add_tasks(ctx, task.step, task.visit, [user], "added", task)
            self._audit(
                ctx,
                actor,
                "add_approver",
                step=task.step,
                comment=comment,
                task=task,
                extra={"to": user, "new_task": new.id},
            )
            self._event(
                ctx,
                "assigned",
                actor,
                task.step,
                {
                    "approvers": [user],
                    "task_ids": [new.id],
                    "reason": "added",
                    "by": actor.name,
                    "comment": comment,
                },
            )
            self._flush(ctx)
        return self.state(ctx.run.entity, ctx.run.record_id, actor=actor, flow=ctx.flow.name)

    def recall(
        self, entity: str, record_id: int, *, actor: Actor, flow: str | None = None
    ) -> FlowState:
        """The submitter takes a pending submission back, before anyone decided."""
        with self.write_engine.begin() as conn:
            record = self._lock_record(conn, entity, record_id)
            self._may_see(actor, record, self._runs_of(conn, entity, record.id), conn)
            run = self._pending_run(conn, entity, record.id, flow)
            if run is None:
                raise TransitionNotAllowed(
                    T("没有审批中的提交可以撤回", "there is no pending submission to recall")
                )
            if not actor.is_system and actor.name != run.submitted_by:
                raise PermissionDenied(
                    _fill(
                        T("只有提交人 {who} 可以撤回", "only the submitter {who} may recall"),
                        who=_who(run.submitted_by),
                    )
                )
            fl = self.blueprint.flows[run.flow]
            ctx = _Ctx(conn, fl, run, record, self._tasks_of(conn, run.id), self.clock())
            decided = [t for t in ctx.tasks if t.state in _DECIDED]
            if decided:
                first = min(decided, key=lambda t: (t.decided_at or ctx.now, t.id))
                raise TransitionNotAllowed(
                    _fill(
                        T(
                            "{who} 已于 {at} 审批，不能撤回",
                            "{who} already decided at {at}; it cannot be recalled",
                        ),
                        who=_who(first.approver),
                        at=_when(first.decided_at),
                    )
                )
            self._cancel_tasks(ctx, [t for t in ctx.tasks if t.state in ("open", "waiting")])
            self._finish(ctx, actor, "recalled", None)
            self._audit(ctx, actor, "recall", step=run.current_step, comment=None)
            self._event(ctx, "recalled", actor, run.current_step, {"by": actor.name})
            self._flush(ctx)
        return self.state(entity, record.id, actor=actor, flow=fl.name)

    # -- public API: reading -------------------------------------------------------------

    def state(
        self, entity: str, record_id: int, *, actor: Actor, flow: str | None = None
    ) -> FlowState:
        """Where the record stands in ``flow`` (default: its pending or latest one)."""
        with self.engine.connect() as conn:
            record = self.records.load(conn, entity, record_id)
            runs = self._runs_of(conn, entity, record.id)
            self._may_see(actor, record, runs, conn)
            if flow is not None:
                fl = self._flow_for(entity, flow)
            else:
                pending = [r for r in runs if r.state == "pending"]
                chosen = pending[-1] if pending else (runs[-1] if runs else None)
                fl = self._flow_for(entity, chosen.flow if chosen else None)
            mine = [r for r in runs if r.flow == fl.name]
            run = mine[-1] if mine else None
            tasks = self._tasks_of(conn, run.id) if run else []
            trail = self._trail(conn, entity, record.id, fl.name)
        return self._state_of(fl, record, run, tasks, trail, actor)

    def trail(self, entity: str, record_id: int, *, actor: Actor = SYSTEM) -> list[TrailEntry]:
        """Every flow action on the record, oldest first (all flows, all rounds)."""
        with self.engine.connect() as conn:
            record = self.records.load(conn, entity, record_id)
            self._may_see(actor, record, self._runs_of(conn, entity, record.id), conn)
            return list(self._trail(conn, entity, record.id, None))

    def inbox(self, actor: Actor, *, limit: int = 50, offset: int = 0) -> list[InboxItem]:
        """The actor's open tasks ("待我审批 / waiting for me"), oldest first."""
        if actor.name is None:
            return []
        t, r = self.tasks, self.runs
        stmt = (
            sa.select(
                t,
                r.c.flow,
                r.c.entity,
                r.c.record_id,
                r.c.round,
                r.c.submitted_by,
                r.c.submitted_at,
            )
            .join(r, r.c.id == t.c.run_id)
            .where(t.c.approver == actor.name, t.c.state == "open", r.c.state == "pending")
            .order_by(t.c.opened_at, t.c.id)
            .limit(max(0, limit))
            .offset(max(0, offset))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        by_entity: dict[str, set[int]] = {}
        for row in rows:
            by_entity.setdefault(row.entity, set()).add(int(row.record_id))
        titles = {e: self.records.title_values(e, ids, actor=actor) for e, ids in by_entity.items()}
        items = []
        for row in rows:
            task = _task(row)
            fl = self.blueprint.flows.get(row.flow)
            step = fl.steps.get(task.step) if fl is not None else None
            ent = self.blueprint.entities.get(row.entity)
            items.append(
                InboxItem(
                    task_id=task.id,
                    flow=row.flow,
                    flow_label=_label(fl.label, row.flow) if fl else Text.of(row.flow),
                    step=task.step,
                    step_label=_label(step.label, task.step) if step else Text.of(task.step),
                    entity=row.entity,
                    entity_label=_label(ent.label, row.entity) if ent else Text.of(row.entity),
                    record_id=int(row.record_id),
                    title=titles.get(row.entity, {}).get(int(row.record_id)),
                    round=int(row.round),
                    submitted_by=row.submitted_by,
                    submitted_at=row.submitted_at,
                    opened_at=task.opened_at,
                    due_at=task.due_at,
                    origin=task.origin,
                    added_by=task.added_by,
                )
            )
        return items

    def inbox_count(self, actor: Actor) -> int:
        """How many open tasks wait for the actor."""
        if actor.name is None:
            return 0
        t, r = self.tasks, self.runs
        stmt = (
            sa.select(sa.func.count())
            .select_from(t.join(r, r.c.id == t.c.run_id))
            .where(t.c.approver == actor.name, t.c.state == "open", r.c.state == "pending")
        )
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def task(self, task_id: int) -> Task:
        """One task (for pages and tests); NotFound for an unknown id."""
        with self.engine.connect() as conn:
            return self._task_by_id(conn, task_id)

    def run(self, run_id: int) -> Run:
        """One run (which record a task is about); NotFound for an unknown id."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.runs).where(self.runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(T(f"没有审批记录 #{run_id}", f"no approval run #{run_id}"))
        return _run(row)

    def _submissions_stmt(self, actor: Actor) -> sa.Select[Any]:
        """The actor's submissions, each record's latest round of each flow only."""
        r = self.runs
        later = r.alias("later")
        newer = (
            sa.select(later.c.id)
            .where(
                later.c.flow == r.c.flow,
                later.c.entity == r.c.entity,
                later.c.record_id == r.c.record_id,
                later.c.round > r.c.round,
            )
            .exists()
        )
        return sa.select(r).where(r.c.submitted_by == actor.name, ~newer)

    def submissions(
        self, actor: Actor, *, limit: int = 50, offset: int = 0
    ) -> list[SubmissionItem]:
        """What the actor submitted ("submitted by me"), newest first: each record's
        latest round of each flow, whatever its state."""
        if actor.name is None:
            return []
        r = self.runs
        stmt = (
            self._submissions_stmt(actor)
            .order_by(r.c.submitted_at.desc(), r.c.id.desc())
            .limit(max(0, limit))
            .offset(max(0, offset))
        )
        with self.engine.connect() as conn:
            runs = [_run(row) for row in conn.execute(stmt).all()]
        by_entity: dict[str, set[int]] = {}
        for run in runs:
            by_entity.setdefault(run.entity, set()).add(run.record_id)
        titles = {
            e: self.records.title_values(e, ids, actor=actor)
            for e, ids in by_entity.items()
            if e in self.blueprint.entities
        }
        items = []
        for run in runs:
            fl = self.blueprint.flows.get(run.flow)
            step = fl.steps.get(run.current_step) if fl and run.current_step else None
            ent = self.blueprint.entities.get(run.entity)
            items.append(
                SubmissionItem(
                    run=run,
                    flow_label=_label(fl.label, run.flow) if fl else Text.of(run.flow),
                    entity_label=_label(ent.label, run.entity) if ent else Text.of(run.entity),
                    step_label=(
                        _label(step.label, step.name)
                        if step is not None
                        else Text.of(run.current_step or "")
                    ),
                    title=titles.get(run.entity, {}).get(run.record_id),
                )
            )
        return items

    def submissions_count(self, actor: Actor) -> int:
        """How many records the actor has submissions of (see :meth:`submissions`)."""
        if actor.name is None:
            return 0
        stmt = sa.select(sa.func.count()).select_from(self._submissions_stmt(actor).subquery())
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- jobs -------------------------------------------------------------------------

    def register_jobs(self, queue: JobQueue) -> None:
        """Let ``queue`` run this service's reminder and timeout jobs."""
        queue.register(REMIND_JOB, self._on_remind)
        queue.register(TIMEOUT_JOB, self._on_timeout)

    def _on_remind(self, job: Job, conn: Connection) -> None:
        task = self._find_task(conn, int(job.payload.get("task_id", 0)))
        if task is None or task.state != "open":
            return
        run = self._run_by_id(conn, task.run_id)
        if run.state != "pending":
            return
        fl = self.blueprint.flows.get(run.flow)
        if fl is None:
            return
        try:
            record = self.records.load(conn, run.entity, run.record_id)
        except NotFound:  # deleted without the event bus that would have ended the run
            return
        ctx = _Ctx(conn, fl, run, record, [], self.clock())
        self._event(
            ctx,
            "reminder",
            SYSTEM,
            task.step,
            {"task_id": task.id, "approver": task.approver, "opened_at": task.opened_at},
        )
        self._flush(ctx)

    def _on_timeout(self, job: Job, conn: Connection) -> None:
        task_id = int(job.payload.get("task_id", 0))
        task = self._find_task(conn, task_id)
        if task is None or task.state != "open":
            return
        try:
            ctx, task = self._begin_task_action(conn, task_id, SYSTEM)
        except (FlowError, NotFound):  # decided, recalled or gone meanwhile: nothing to do
            return
        step = ctx.flow.steps.get(task.step)
        if step is None or step.timeout is None:
            return
        action = step.timeout.action
        if action == "approve":
            self._approve(ctx, task, SYSTEM, MSG_AUTO_APPROVE, {}, timeout=True)
        elif action == "reject":
            self._reject(ctx, task, SYSTEM, MSG_AUTO_REJECT, timeout=True)
        elif action == "return":
            self._return(ctx, task, SYSTEM, SUBMITTER, MSG_AUTO_RETURN, timeout=True)
        else:  # escalate
            self._escalate(ctx, task)
        self._flush(ctx)

    def _on_record_event(self, event: Event) -> None:
        """A deleted record's pending runs end (as recalled); their tasks and timers go."""
        if event.kind != "deleted" or event.entity not in self._flow_entities:
            return
        conn, r = event.conn, self.runs
        now = self.clock()
        pending = conn.execute(
            sa.select(r).where(
                r.c.entity == event.entity,
                r.c.record_id == event.record_id,
                r.c.state == "pending",
            )
        ).all()
        for row in pending:
            run = _run(row)
            for task in self._tasks_of(conn, run.id):
                if task.state in ("open", "waiting"):
                    conn.execute(
                        self.tasks.update()
                        .where(self.tasks.c.id == task.id)
                        .values(state="cancelled", decided_at=now)
                    )
                    if self.jobs is not None:
                        for kind in (REMIND_JOB, TIMEOUT_JOB):
                            self.jobs.cancel(conn, dedupe_key=f"{kind}:{task.id}")
            conn.execute(
                r.update()
                .where(r.c.id == run.id)
                .values(
                    state="recalled",
                    finished_at=now,
                    finished_by=event.actor.name,
                    current_step=None,
                    version=run.version + 1,
                )
            )

    # -- reading helpers ---------------------------------------------------------------

    def _lock_record(self, conn: Connection, entity: str, record_id: Any) -> Record:
        if entity not in self.blueprint.entities:
            raise NotFound(T(f"没有实体 {entity}", f"no entity {entity!r}"))
        return self.records.load(conn, entity, record_id, for_update=True)

    def _flow_for(self, entity: str, name: str | None) -> Flow:
        if name is not None:
            fl = self.blueprint.flows.get(name)
            if fl is None or fl.entity != entity:
                raise NotFound(
                    T(f"实体 {entity} 没有流程 {name}", f"entity {entity!r} has no flow {name!r}")
                )
            return fl
        mine = [f for f in self.blueprint.flows.values() if f.entity == entity]
        if not mine:
            raise NotFound(T(f"实体 {entity} 没有审批流程", f"entity {entity!r} has no flow"))
        if len(mine) > 1:
            names = ", ".join(f.name for f in mine)
            raise FlowError(
                T(
                    f"实体 {entity} 有多个流程（{names}），请指定一个",
                    f"entity {entity!r} has several flows ({names}); name one",
                )
            )
        return mine[0]

    def _run_by_id(self, conn: Connection, run_id: int, *, for_update: bool = False) -> Run:
        stmt = sa.select(self.runs).where(self.runs.c.id == run_id)
        if for_update and conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        return _run(conn.execute(stmt).one())

    def _runs_of(self, conn: Connection, entity: str, record_id: int) -> list[Run]:
        r = self.runs
        rows = conn.execute(
            sa.select(r).where(r.c.entity == entity, r.c.record_id == record_id).order_by(r.c.id)
        ).all()
        return [_run(x) for x in rows]

    def _latest_run(self, conn: Connection, flow: str, entity: str, record_id: int) -> Run | None:
        r = self.runs
        row = conn.execute(
            sa.select(r)
            .where(r.c.entity == entity, r.c.record_id == record_id, r.c.flow == flow)
            .order_by(r.c.round.desc())
            .limit(1)
        ).first()
        return None if row is None else _run(row)

    def _pending_run(
        self, conn: Connection, entity: str, record_id: int, flow: str | None
    ) -> Run | None:
        runs = [
            r
            for r in self._runs_of(conn, entity, record_id)
            if r.state == "pending" and (flow is None or r.flow == flow)
        ]
        if len(runs) > 1:
            names = ", ".join(r.flow for r in runs)
            raise FlowError(
                T(
                    f"有多个审批中的流程（{names}），请指定一个",
                    f"several flows are pending ({names}); name one",
                )
            )
        return runs[0] if runs else None

    def _tasks_of(self, conn: Connection, run_id: int) -> list[Task]:
        t = self.tasks
        rows = conn.execute(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.id)).all()
        return [_task(x) for x in rows]

    def _find_task(self, conn: Connection, task_id: int) -> Task | None:
        row = conn.execute(sa.select(self.tasks).where(self.tasks.c.id == task_id)).first()
        return None if row is None else _task(row)

    def _task_by_id(self, conn: Connection, task_id: Any) -> Task:
        try:
            tid = int(task_id)
        except (TypeError, ValueError):
            tid = -1
        task = self._find_task(conn, tid) if 0 < tid < 2**63 else None
        if task is None:
            raise NotFound(T(f"没有审批任务 #{task_id}", f"no approval task #{task_id}"))
        return task

    def _people(self, conn: Connection) -> _People:
        u = self.schema.users
        rows = conn.execute(sa.select(u.c.name, u.c.roles, u.c.manager, u.c.active)).all()
        return _People(
            roles={r.name: tuple(r.roles or ()) for r in rows},
            active={r.name for r in rows if r.active},
            hierarchy=Hierarchy({r.name: r.manager for r in rows}),
        )

    def _ctx_people(self, ctx: _Ctx) -> _People:
        if ctx.people is None:
            ctx.people = self._people(ctx.conn)
        return ctx.people

    # -- permissions -----------------------------------------------------------------

    def _may_submit(self, actor: Actor, record: Record) -> None:
        if actor.is_system:
            return
        access = self.records.access
        if access is None:
            return
        if not access.allows(actor, record.entity, "read", record):
            raise NotFound()
        if actor.name != record.owner and not access.allows(actor, record.entity, "update", record):
            raise PermissionDenied(
                T(
                    "只有负责人或能修改记录的人可以提交审批",
                    "only the owner or someone who may edit the record may submit it",
                )
            )

    def _may_see(self, actor: Actor, record: Record, runs: Sequence[Run], conn: Connection) -> None:
        """Readers of the record, and everyone who submitted or was asked, see its flow."""
        access = self.records.access
        if actor.is_system or access is None:
            return
        if access.allows(actor, record.entity, "read", record):
            return
        if any(r.submitted_by == actor.name for r in runs):
            return
        if runs:
            t = self.tasks
            asked = conn.execute(
                sa.select(t.c.id)
                .where(t.c.run_id.in_([r.id for r in runs]), t.c.approver == actor.name)
                .limit(1)
            ).first()
            if asked is not None:
                return
        raise NotFound()

    def _begin_task_action(self, conn: Connection, task_id: Any, actor: Actor) -> tuple[_Ctx, Task]:
        """Lock the task's record, re-read run and tasks, check the task is the actor's and open."""
        first = self._task_by_id(conn, task_id)
        run = self._run_by_id(conn, first.run_id)
        record = self._lock_record(conn, run.entity, run.record_id)
        run = self._run_by_id(conn, first.run_id, for_update=True)
        fl = self.blueprint.flows.get(run.flow)
        if fl is None or first.step not in fl.steps:
            raise TransitionNotAllowed(
                T(
                    f"流程 {run.flow} 或其步骤 {first.step} 已不在蓝图中",
                    f"the flow {run.flow!r} or its step {first.step!r} is no longer in the "
                    "blueprint",
                )
            )
        ctx = _Ctx(conn, fl, run, record, self._tasks_of(conn, run.id), self.clock())
        task = ctx.task(first.id)
        if not actor.is_system and task.approver != actor.name:
            # Someone who may not even see the record learns nothing about the task.
            self._may_see(actor, record, self._runs_of(conn, run.entity, record.id), conn)
            raise PermissionDenied(
                _fill(
                    T("这是 {who} 的审批任务，不是你的", "this task belongs to {who}, not to you"),
                    who=_who(task.approver),
                )
            )
        self._check_open(ctx, task)
        return ctx, task

    def _check_open(self, ctx: _Ctx, task: Task) -> None:
        run = ctx.run
        if task.state == "open" and run.state == "pending":
            return
        step = _label(ctx.flow.steps[task.step].label, task.step)
        if task.state in _DECIDED:
            verb = T("通过", "approved") if task.state == "approved" else T("驳回", "rejected")
            raise AlreadyDecided(
                _fill(
                    T("你已于 {at} {verb}了此任务", "you already {verb} this at {at}"),
                    at=_when(task.decided_at),
                    verb=verb,
                ),
                by=task.approver,
                at=_when(task.decided_at),
                decision=task.state,
            )
        if task.state == "transferred":
            raise TransitionNotAllowed(
                _fill(
                    T("你已于 {at} 转交给 {to}", "you transferred this to {to} at {at}"),
                    at=_when(task.decided_at),
                    to=task.transferred_to or "?",
                )
            )
        if task.state == "waiting":
            raise TransitionNotAllowed(
                _fill(T("步骤 {step} 还没开始", "step {step} has not started yet"), step=step)
            )
        if task.state == "skipped":
            raise TransitionNotAllowed(
                _fill(T("步骤 {step} 已跳过", "step {step} was skipped"), step=step)
            )
        if run.state == "recalled":
            raise TransitionNotAllowed(
                _fill(
                    T(
                        "提交已由 {who} 于 {at} 撤回",
                        "the submission was recalled by {who} at {at}",
                    ),
                    who=_who(run.finished_by),
                    at=_when(run.finished_at),
                )
            )
        decider = self._decider(ctx, task)
        if decider is not None:
            who, at, decision = decider.approver, decider.decided_at, decider.state
        else:
            who, at, decision = run.finished_by, run.finished_at, run.state
        raise AlreadyDecided(
            _fill(
                T("已由 {who} 于 {at} 审批", "already decided by {who} at {at}"),
                who=_who(who),
                at=_when(at),
            ),
            by=who,
            at=_when(at),
            decision=decision,
        )

    @staticmethod
    def _decider(ctx: _Ctx, task: Task) -> Task | None:
        """The decision that made ``task`` unnecessary: its step's latest, else the run's latest."""
        decided = [t for t in ctx.tasks if t.state in _DECIDED and t.decided_at is not None]
        same = [t for t in decided if t.step == task.step and t.visit == task.visit]
        pool = same or decided
        return max(pool, key=lambda t: (t.decided_at, t.id)) if pool else None

    # -- formulas and approvers ----------------------------------------------------------

    @staticmethod
    def _formula_values(record: Record) -> dict[str, Any]:
        values = dict(record.values)
        for name in SYSTEM_COLUMNS - {"parent_id"}:
            values[name] = getattr(record, name, None)
        return values

    def _context(
        self, values: Mapping[str, Any], record: Record | None, actor: Actor
    ) -> EvalContext:
        return EvalContext(
            values=values,
            tables=record.tables if record is not None else {},
            user=actor.name,
            role=actor.role,
            now=self.clock,
            tz=self.tz,
        )

    def _true(self, formula: Formula, values: Mapping[str, Any], actor: Actor) -> bool:
        return bool(formula.compiled.evaluate(self._context(values, None, actor)))

    def _approvers_of(
        self,
        fl: Flow,
        step: Step,
        record: Record,
        values: Mapping[str, Any],
        people: _People,
        submitter: str | None,
    ) -> list[str]:
        """Who ``step`` asks, after the fallbacks; NoApprovers when nobody."""
        label = _label(step.label, step.name)
        found = self._resolve(step.approvers, record, values, people, strict=True, step=label)
        names = found.names
        if not fl.allow_self_approval and submitter is not None and submitter in names:
            names = [n for n in names if n != submitter]
            if not names:
                names = [a for a in people.admins() if a != submitter]
                found.reason = T(
                    "除提交人外没有其他审批人，且没有其他启用的管理员",
                    "nobody but the submitter could approve, and there is no other active admin",
                )
        if not names:
            raise NoApprovers(
                _fill(
                    T("步骤 {step} 没有审批人：{reason}", "step {step} has no approvers: {reason}"),
                    step=label,
                    reason=found.reason or T("没有找到任何人", "nobody was found"),
                ),
                step=step.name,
            )
        return names

    def _resolve(
        self,
        spec: Approvers,
        record: Record,
        values: Mapping[str, Any],
        people: _People,
        *,
        strict: bool,
        step: Text,
    ) -> _Resolved:
        """The active users ``spec`` names (see the module doc for the fallbacks)."""
        out = _Resolved()
        if spec.role is not None:
            out.names = people.with_role(spec.role)
            if not out.names:
                out.reason = T(
                    f"角色 {spec.role} 没有启用的成员", f"role {spec.role} has no active members"
                )
            return out
        if spec.users:
            wanted = self._known(spec.users, people, strict, step, T("users", "users"))
            out.names = [n for n in wanted if n in people.active]
            if not out.names:
                out.reason = T(
                    f"指定的用户（{', '.join(spec.users)}）都已停用",
                    f"the named users ({', '.join(spec.users)}) are all inactive",
                )
            return out
        if spec.manager_of is not None:
            who = values.get(spec.manager_of)
            manager = people.hierarchy.manager_of(who, spec.levels) if who else None
            if manager is not None and manager in people.active:
                out.names = [manager]
            else:
                out.names = people.admins()
                out.fallback = True
                out.reason = T("没有上级，也没有启用的管理员", "no manager and no active admin")
            return out
        if spec.field is not None:
            who = values.get(spec.field)
            if not who:
                out.reason = T(f"字段 {spec.field} 为空", f"the field {spec.field} is blank")
                return out
            self._known([str(who)], people, strict, step, Text.of(spec.field))
            if who in people.active:
                out.names = [str(who)]
            else:
                out.reason = T(f"用户 {who} 已停用", f"user {who} is inactive")
            return out
        if spec.formula is not None:
            raw = spec.formula.compiled.evaluate(self._context(values, record, SYSTEM))
            items = raw if isinstance(raw, list | tuple | set | frozenset) else [raw]
            names = _dedupe(str(x).strip() for x in items if x is not None and str(x).strip())
            wanted = self._known(names, people, strict, step, Text.of(spec.formula.source))
            out.names = [n for n in wanted if n in people.active]
            if not out.names:
                out.reason = T(
                    f"公式 {spec.formula.source} 没有给出启用的用户",
                    f"the formula {spec.formula.source} gave no active user",
                )
            return out
        out.reason = T("没有写审批人", "no approvers are configured")
        return out

    @staticmethod
    def _known(
        names: Iterable[str], people: _People, strict: bool, step: Text, source: Text
    ) -> list[str]:
        names = _dedupe(names)
        unknown = [n for n in names if not people.exists(n)]
        if unknown and strict:
            raise NoApprovers(
                _fill(
                    T(
                        "步骤 {step} 的审批人（{source}）中有不存在的用户：{names}",
                        "step {step}: the approvers ({source}) name users that do not exist: "
                        "{names}",
                    ),
                    step=step,
                    source=source,
                    names=", ".join(unknown),
                ),
                unknown=unknown,
            )
        return [n for n in names if people.exists(n)]

    def _lenient(self, ctx: _Ctx, spec: Approvers | None) -> list[str]:
        """cc / notify resolution: whoever it names, no errors."""
        if spec is None:
            return []
        try:
            found = self._resolve(
                spec,
                ctx.record,
                self._formula_values(ctx.record),
                self._ctx_people(ctx),
                strict=False,
                step=Text(),
            )
        except FlowError:
            return []
        return [] if found.fallback else found.names

    def _notify(self, ctx: _Ctx, *actions: FlowAction) -> list[str]:
        """The names behind ``notify:`` entries: roles, user fields, submitter, approvers."""
        people = self._ctx_people(ctx)
        values = self._formula_values(ctx.record)
        out: list[str] = []
        for action in actions:
            for name in action.notify:
                if name == SUBMITTER:
                    out.append(ctx.run.submitted_by or "")
                elif name == "approvers":
                    out.extend(t.approver or "" for t in ctx.tasks if t.state != "skipped")
                elif name in self.blueprint.roles or name == ADMIN_ROLE:
                    out.extend(people.with_role(name))
                elif values.get(name):
                    out.append(str(values[name]))
        return [n for n in _dedupe(out) if n in people.active]

    # -- writing helpers ---------------------------------------------------------------

    @staticmethod
    def _status(fl: Flow, state: str) -> str:
        return fl.statuses.get(state, state)

    def _task_row(
        self,
        run_id: int,
        step: str,
        visit: int,
        approver: str | None,
        state: str,
        now: datetime,
        *,
        origin: str = "resolved",
        parent_id: int | None = None,
        added_by: str | None = None,
    ) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "step": step,
            "visit": visit,
            "approver": approver,
            "state": state,
            "origin": origin,
            "parent_id": parent_id,
            "added_by": added_by,
            "transferred_to": None,
            "comment": None,
            "created_at": now,
            "opened_at": None,
            "decided_at": None,
            "remind_at": None,
            "due_at": None,
        }

    def _update_task(self, ctx: _Ctx, task: Task, state: str, **values: Any) -> Task:
        """Move ``task`` on from the state it was read in; refuses if it moved meanwhile."""
        t = self.tasks
        result = ctx.conn.execute(
            t.update()
            .where(t.c.id == task.id, t.c.state == task.state)
            .values(state=state, **values)
        )
        if result.rowcount != 1:  # cannot happen under the record lock; never decide twice
            raise AlreadyDecided(
                T("任务刚刚被他人处理", "the task was just decided by someone else")
            )
        row = ctx.conn.execute(sa.select(t).where(t.c.id == task.id)).one()
        updated = _task(row)
        ctx.tasks = [updated if x.id == task.id else x for x in ctx.tasks]
        if state != "open":
            self._cancel_jobs(ctx, task.id)
        return updated

    def _cancel_tasks(self, ctx: _Ctx, tasks: Iterable[Task]) -> None:
        for task in tasks:
            self._update_task(ctx, task, "cancelled", decided_at=ctx.now)

    def _add_tasks(
        self,
        ctx: _Ctx,
        step: str,
        visit: int,
        names: Sequence[str],
        origin: str,
        parent: Task | None,
        *,
        state: str = "open",
    ) -> list[Task]:
        added = []
        for name in names:
            row = self._task_row(
                ctx.run.id,
                step,
                visit,
                name,
                "waiting",
                ctx.now,
                origin=origin,
                parent_id=parent.id if parent is not None else None,
                added_by=(parent.approver if parent is not None else None)
                if origin != "escalated"
                else None,
            )
            inserted = ctx.conn.execute(self.tasks.insert().values(**row)).inserted_primary_key
            new_id = int(inserted[0])  # type: ignore[index]
            task = _task(
                ctx.conn.execute(sa.select(self.tasks).where(self.tasks.c.id == new_id)).one()
            )
            ctx.tasks.append(task)
            if state == "open":
                task = self._open(ctx, task)
            added.append(task)
        return added

    def _open(self, ctx: _Ctx, task: Task) -> Task:
        step = ctx.flow.steps[task.step]
        remind = step.remind_after or ctx.flow.remind_after
        remind_at = ctx.now + remind if remind else None
        due_at = ctx.now + step.timeout.after if step.timeout is not None else None
        opened = self._update_task(
            ctx, task, "open", opened_at=ctx.now, remind_at=remind_at, due_at=due_at
        )
        if self.jobs is not None:
            payload = {"task_id": task.id, "run_id": ctx.run.id}
            if remind_at is not None:
                self.jobs.schedule(
                    ctx.conn, REMIND_JOB, remind_at, payload, dedupe_key=f"{REMIND_JOB}:{task.id}"
                )
            if due_at is not None:
                self.jobs.schedule(
                    ctx.conn, TIMEOUT_JOB, due_at, payload, dedupe_key=f"{TIMEOUT_JOB}:{task.id}"
                )
        return opened

    def _cancel_jobs(self, ctx: _Ctx, task_id: int) -> None:
        if self.jobs is None:
            return
        for kind in (REMIND_JOB, TIMEOUT_JOB):
            self.jobs.cancel(ctx.conn, dedupe_key=f"{kind}:{task_id}")

    def _bump_run(self, ctx: _Ctx, **values: Any) -> None:
        r = self.runs
        result = ctx.conn.execute(
            r.update()
            .where(r.c.id == ctx.run.id, r.c.version == ctx.run.version)
            .values(version=ctx.run.version + 1, **values)
        )
        if result.rowcount != 1:  # cannot happen under the record lock
            raise AlreadyDecided(
                T("流程刚刚被他人处理", "the flow was just moved on by someone else")
            )
        ctx.run = self._run_by_id(ctx.conn, ctx.run.id)

    def _set_record(self, ctx: _Ctx, actor: Actor, data: Mapping[str, Any]) -> None:
        if not data:
            return
        ctx.record = self.records.update(
            ctx.run.entity,
            ctx.record.id,
            data,
            version=ctx.record.version,
            actor=actor,
            via="flow",
            conn=ctx.conn,
        )
        ctx.record = self.records.load(ctx.conn, ctx.run.entity, ctx.record.id)

    def _set_values(
        self,
        ctx: _Ctx,
        actor: Actor,
        *sets: Mapping[str, Any],
        edits: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``set:`` maps evaluated against the record (formulas) or taken as written.

        ``edits``: the approver's ``editable`` values saved with the same update; the
        formulas see them (a manager who lowers a discount approves the lower one).
        """
        out: dict[str, Any] = {}
        values = self._formula_values(ctx.record)
        fields = self.blueprint.entities[ctx.run.entity].fields
        for name, raw in (edits or {}).items():
            f = fields.get(name)
            if f is None or f.kind == "table":
                continue
            try:
                values[name] = kind_of(f).coerce(f, raw)
            except (FieldValueError, TypeError, ValueError, ArithmeticError):
                continue  # the update reports it against the field
        for mapping in sets:
            for name, value in mapping.items():
                if isinstance(value, Formula):
                    out[name] = value.compiled.evaluate(self._context(values, ctx.record, actor))
                else:
                    out[name] = value
        return out

    def _audit(
        self,
        ctx: _Ctx,
        actor: Actor,
        action: str,
        *,
        step: str | None,
        comment: str | None,
        task: Task | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        changes: dict[str, Any] = {
            "flow": ctx.flow.name,
            "run": ctx.run.id,
            "round": ctx.run.round,
            "step": step,
            "task": task.id if task is not None else None,
            "comment": comment or None,
        }
        changes.update(extra or {})
        ctx.audits.append((actor.name, action, changes))

    def _event(
        self, ctx: _Ctx, kind: str, actor: Actor, step: str | None, details: Mapping[str, Any]
    ) -> None:
        if self.events is None:
            return
        base = {"run_id": ctx.run.id, "round": ctx.run.round}
        base.update(details)
        ctx.events.append(
            Event(
                kind=kind,
                entity=ctx.run.entity,
                record_id=ctx.run.record_id,
                actor=actor,
                conn=ctx.conn,
                record=ctx.record,
                prior=None,
                changes=_EMPTY,
                flow=ctx.flow.name,
                step=step,
                via="flow",
                details=MappingProxyType(base),
            )
        )

    def _event_outcome(
        self,
        ctx: _Ctx,
        kind: str,
        actor: Actor,
        step: str | None,
        comment: str | None,
        *actions: FlowAction,
        outcome: str | None = None,
    ) -> None:
        self._event(
            ctx,
            kind,
            actor,
            step,
            {
                "comment": comment,
                "by": actor.name,
                "notify": self._notify(ctx, *actions),
                "cc": self._lenient(ctx, ctx.flow.cc),
                "outcome": outcome or kind,
            },
        )

    def _flush(self, ctx: _Ctx) -> None:
        """Write the action's audit rows (with the record's final version), then tell the
        listeners, still inside the transaction, in the order things happened."""
        audits, ctx.audits = ctx.audits, []
        for user, action, changes in audits:
            ctx.conn.execute(
                self.schema.audit.insert().values(
                    at=ctx.now,
                    user=user,
                    entity=ctx.run.entity,
                    record_id=ctx.run.record_id,
                    action=action,
                    via="flow",
                    version=ctx.record.version,
                    changes=changes,
                )
            )
        if self.events is None:
            return
        pending, ctx.events = ctx.events, []
        for event in pending:
            self.events.emit(event)

    # -- the state machine -------------------------------------------------------------

    def _active_steps(self, ctx: _Ctx) -> list[str]:
        """The run's steps that are not skipped, in blueprint order."""
        used = {t.step for t in ctx.tasks if t.state != "skipped"}
        return [name for name in ctx.flow.steps if name in used]

    def _latest_visit(self, ctx: _Ctx, step: str) -> list[Task]:
        mine = [t for t in ctx.tasks if t.step == step]
        if not mine:
            return []
        visit = max(t.visit for t in mine)
        return [t for t in mine if t.visit == visit]

    def _enter_step(self, ctx: _Ctx, actor: Actor, step: Step) -> None:
        """Open the step's waiting tasks, point the run at it, tell the listeners."""
        waiting = [t for t in self._latest_visit(ctx, step.name) if t.state == "waiting"]
        opened = [self._open(ctx, t) for t in waiting]
        self._bump_run(ctx, current_step=step.name)
        self._event(
            ctx,
            "step_entered",
            actor,
            step.name,
            {
                "approvers": [t.approver for t in opened],
                "task_ids": [t.id for t in opened],
                "cc": self._lenient(ctx, step.cc),
            },
        )

    def _finish(
        self,
        ctx: _Ctx,
        actor: Actor,
        state: str,
        comment: str | None,
        *,
        final_set: Mapping[str, Any] | None = None,
        step_set: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """End the run in ``state``: the status, the ``set`` fields, the run row."""
        data: dict[str, Any] = dict(values or {})
        data.update(self._set_values(ctx, actor, step_set or {}, final_set or {}, edits=values))
        data[ctx.flow.status_field] = self._status(ctx.flow, _STATUS_OF_RUN[state])
        self._cancel_tasks(ctx, [t for t in ctx.tasks if t.state in ("open", "waiting")])
        self._set_record(ctx, actor, data)
        self._bump_run(
            ctx, state=state, finished_at=ctx.now, finished_by=actor.name, current_step=None
        )

    def _approve(
        self,
        ctx: _Ctx,
        task: Task,
        actor: Actor,
        comment: str | None,
        values: Mapping[str, Any],
        *,
        timeout: bool = False,
    ) -> None:
        fl = ctx.flow
        step = fl.steps[task.step]
        if step.on_approve.require_comment and not (comment or "").strip():
            raise RecordInvalid({"comment": [MSG_COMMENT]})
        bad = [k for k in values if k not in step.editable]
        if bad:
            raise RecordInvalid({k: [MSG_NOT_EDITABLE] for k in bad})
        decided = self._update_task(
            ctx, task, "approved", decided_at=ctx.now, comment=comment or None
        )
        visit = self._latest_visit(ctx, step.name)
        if step.mode == "any":
            self._cancel_tasks(ctx, [t for t in visit if t.state == "open"])
        else:  # all: an escalation and the task it escalated cover one place
            family = self._family(ctx, decided)
            self._cancel_tasks(ctx, [t for t in visit if t.state == "open" and t.id in family])
        visit = self._latest_visit(ctx, step.name)
        step_done = not any(t.state == "open" for t in visit)
        self._audit(
            ctx,
            actor,
            "approve",
            step=step.name,
            comment=comment,
            task=decided,
            extra={"values": dict(values), "step_done": step_done, "timeout": timeout},
        )
        if not step_done:  # 会签 goes on: ``validate`` holds the step's own approval
            self._set_record(ctx, actor, values)
            return
        active = self._active_steps(ctx)
        later = active[active.index(step.name) + 1 :]
        if later:
            data = dict(values)
            data.update(self._set_values(ctx, actor, step.on_approve.set, edits=values))
            self._set_record(ctx, actor, data)
            self._check_validate(ctx, step, actor)
            self._enter_step(ctx, actor, fl.steps[later[0]])
            return
        self._finish(
            ctx,
            actor,
            "approved",
            comment,
            final_set=fl.on_approved.set,
            step_set=step.on_approve.set,
            values=values,
        )
        self._check_validate(ctx, step, actor)
        self._event_outcome(
            ctx, "approved", actor, step.name, comment, step.on_approve, fl.on_approved
        )

    def _check_validate(self, ctx: _Ctx, step: Step, actor: Actor) -> None:
        """The step's ``validate`` must hold for the record as the approval stores it."""
        if step.validate is None:
            return
        if self._true(step.validate, self._formula_values(ctx.record), actor):
            return
        message = step.validate_message or T(
            f"不满足步骤 {step.name} 的条件：{step.validate.source}",
            f"the condition of step {step.name} is not met: {step.validate.source}",
        )
        raise RecordInvalid({"_record": [message]})

    @staticmethod
    def _family(ctx: _Ctx, task: Task) -> set[int]:
        """``task``, the task it escalates, and every escalation of either (one place)."""
        by_id = {t.id: t for t in ctx.tasks}
        root = task
        while root.origin == "escalated" and root.parent_id in by_id:
            root = by_id[root.parent_id]
        family = {root.id}
        grew = True
        while grew:
            grew = False
            for t in ctx.tasks:
                if t.origin == "escalated" and t.parent_id in family and t.id not in family:
                    family.add(t.id)
                    grew = True
        return family

    def _require_reject_comment(self, fl: Flow, step: Step, comment: str | None) -> None:
        if (step.on_reject.require_comment or fl.on_rejected.require_comment) and not (
            comment or ""
        ).strip():
            raise RecordInvalid({"comment": [MSG_COMMENT]})

    def _reject(
        self, ctx: _Ctx, task: Task, actor: Actor, comment: str | None, *, timeout: bool = False
    ) -> None:
        fl = ctx.flow
        step = fl.steps[task.step]
        self._require_reject_comment(fl, step, comment)
        decided = self._update_task(
            ctx, task, "rejected", decided_at=ctx.now, comment=comment or None
        )
        target = step.on_reject.return_to or fl.on_rejected.return_to
        earlier = self._earlier_steps(ctx, step.name)
        self._audit(
            ctx,
            actor,
            "reject",
            step=step.name,
            comment=comment,
            task=decided,
            extra={"return_to": target, "timeout": timeout},
        )
        if target is not None and target in earlier:
            self._cancel_tasks(
                ctx, [t for t in self._latest_visit(ctx, step.name) if t.state == "open"]
            )
            self._set_record(ctx, actor, self._set_values(ctx, actor, step.on_reject.set))
            self._back_to_step(ctx, actor, target, comment)
            return
        state = "returned" if target == SUBMITTER else "rejected"
        self._finish(
            ctx, actor, state, comment, final_set=fl.on_rejected.set, step_set=step.on_reject.set
        )
        self._event_outcome(
            ctx,
            "rejected",
            actor,
            step.name,
            comment,
            step.on_reject,
            fl.on_rejected,
            outcome=state,
        )

    def _earlier_steps(self, ctx: _Ctx, step: str) -> list[str]:
        active = self._active_steps(ctx)
        return active[: active.index(step)] if step in active else []

    def _return(
        self,
        ctx: _Ctx,
        task: Task,
        actor: Actor,
        target: str,
        comment: str | None,
        *,
        timeout: bool = False,
    ) -> None:
        earlier = self._earlier_steps(ctx, task.step)
        if target != SUBMITTER and target not in earlier:
            choices = ", ".join([SUBMITTER, *earlier])
            raise TransitionNotAllowed(
                T(
                    f"只能退回到提交人或之前经过的步骤（{choices}），不能退回到 {target}",
                    f"a run goes back to the submitter or to an earlier step ({choices}), "
                    f"not to {target!r}",
                ),
                choices=[SUBMITTER, *earlier],
            )
        decided = self._update_task(
            ctx, task, "rejected", decided_at=ctx.now, comment=comment or None
        )
        self._audit(
            ctx,
            actor,
            "return",
            step=task.step,
            comment=comment,
            task=decided,
            extra={"to": target, "timeout": timeout},
        )
        if target == SUBMITTER:
            self._finish(ctx, actor, "returned", comment)
            self._event(
                ctx,
                "returned",
                actor,
                task.step,
                {"to": SUBMITTER, "comment": comment, "by": actor.name},
            )
            return
        self._cancel_tasks(
            ctx, [t for t in self._latest_visit(ctx, task.step) if t.state == "open"]
        )
        self._back_to_step(ctx, actor, target, comment)

    def _back_to_step(self, ctx: _Ctx, actor: Actor, target: str, comment: str | None) -> None:
        """回退: ask ``target``'s approvers again, and those of every step up to the current one."""
        active = self._active_steps(ctx)
        current = ctx.run.current_step or target
        upto = active[active.index(target) : active.index(current) + 1]
        for name in upto:
            previous = [t for t in self._latest_visit(ctx, name) if t.state != "transferred"]
            names = _dedupe(t.approver or "" for t in previous)
            visit = max(t.visit for t in previous) + 1 if previous else 1
            for approver in names:
                row = self._task_row(ctx.run.id, name, visit, approver, "waiting", ctx.now)
                ctx.conn.execute(self.tasks.insert().values(**row))
        ctx.tasks = self._tasks_of(ctx.conn, ctx.run.id)
        self._event(
            ctx,
            "returned",
            actor,
            ctx.run.current_step,
            {"to": target, "comment": comment, "by": actor.name},
        )
        self._enter_step(ctx, actor, ctx.flow.steps[target])

    def _check_new_approver(self, ctx: _Ctx, task: Task, user: str, actor: Actor) -> None:
        """Whom a task may be transferred to or added: an active user, not asked yet."""
        people = self._ctx_people(ctx)
        problem: Text | None = None
        if not isinstance(user, str) or user not in people.active:
            problem = T(f"没有启用的用户 {user}", f"there is no active user {user!r}")
        elif user == actor.name:
            problem = T("不能转交或加签给自己", "you cannot transfer or add the task to yourself")
        elif user == ctx.run.submitted_by and not ctx.flow.allow_self_approval:
            problem = T(
                f"{user} 是提交人，此流程不允许审批自己提交的记录",
                f"{user} submitted the record, and this flow does not allow self-approval",
            )
        elif any(
            t.approver == user and t.state == "open" for t in self._latest_visit(ctx, task.step)
        ):
            problem = T(f"{user} 已经在审批此步骤", f"{user} is already asked at this step")
        if problem is not None:
            raise RecordInvalid({"user": [problem]})

    def _escalate(self, ctx: _Ctx, task: Task) -> None:
        """A timeout asks the approver's manager (else the admins) at the same step too."""
        people = self._ctx_people(ctx)
        manager = people.hierarchy.manager_of(task.approver) if task.approver else None
        names = [manager] if manager and manager in people.active else people.admins()
        holding = {t.approver for t in self._latest_visit(ctx, task.step) if t.state == "open"}
        names = [
            n
            for n in names
            if n not in holding and (ctx.flow.allow_self_approval or n != ctx.run.submitted_by)
        ]
        added = self._add_tasks(ctx, task.step, task.visit, names, "escalated", task)
        self._audit(
            ctx,
            SYSTEM,
            "escalate",
            step=task.step,
            comment=None,
            task=task,
            extra={"to": names, "new_tasks": [t.id for t in added]},
        )
        if added:
            self._event(
                ctx,
                "assigned",
                SYSTEM,
                task.step,
                {
                    "approvers": names,
                    "task_ids": [t.id for t in added],
                    "reason": "escalated",
                    "by": None,
                    "escalated_from": task.approver,
                },
            )

    # -- state and trail -----------------------------------------------------------------

    def _trail(
        self, conn: Connection, entity: str, record_id: int, flow: str | None
    ) -> tuple[TrailEntry, ...]:
        a = self.schema.audit
        rows = conn.execute(
            sa.select(a)
            .where(
                a.c.entity == entity,
                a.c.record_id == record_id,
                a.c.via == "flow",
                a.c.action.in_(AUDIT_ACTIONS),
            )
            .order_by(a.c.id)
        ).all()
        out = []
        for r in rows:
            changes = dict(r.changes or {})
            if flow is not None and changes.get("flow") != flow:
                continue
            out.append(
                TrailEntry(
                    id=int(r.id),
                    at=r.at,
                    who=r.user,
                    action=r.action,
                    flow=changes.get("flow"),
                    step=changes.get("step"),
                    round=changes.get("round"),
                    comment=changes.get("comment"),
                    task_id=changes.get("task"),
                    details=MappingProxyType(changes),
                )
            )
        return tuple(out)

    def _state_of(
        self,
        fl: Flow,
        record: Record,
        run: Run | None,
        tasks: list[Task],
        trail: tuple[TrailEntry, ...],
        actor: Actor,
    ) -> FlowState:
        views = [self._step_view(fl, name, tasks, run) for name in fl.steps]
        if run is None:
            path: tuple[StepView, ...] = ()
            upcoming = tuple(views)
        else:
            path = tuple(v for v in views if v.state not in ("waiting", "not_submitted"))
            upcoming = tuple(v for v in views if v.state == "waiting")
        open_tasks = (
            tuple(t for t in tasks if t.state == "open") if run and run.state == "pending" else ()
        )
        mine = tuple(t for t in open_tasks if t.approver == actor.name and actor.name is not None)
        actions: list[str] = []
        state = run.state if run is not None else "draft"
        if state != "pending" and state != "approved" and self._could_submit(actor, record):
            actions.append("submit")
        if state == "pending" and run is not None:
            if (actor.name is not None and actor.name == run.submitted_by) and not any(
                t.state in _DECIDED for t in tasks
            ):
                actions.append("recall")
            if mine:
                actions += ["approve", "reject", "return_to", "transfer", "add_approver"]
        targets: tuple[str, ...] = ()
        if mine and run is not None:
            ctx_tasks = tasks
            used = {t.step for t in ctx_tasks if t.state != "skipped"}
            active = [n for n in fl.steps if n in used]
            step = mine[0].step
            targets = (SUBMITTER, *active[: active.index(step)])
        return FlowState(
            flow=fl.name,
            label=_label(fl.label, fl.name),
            entity=record.entity,
            record_id=record.id,
            state=state,
            run_id=run.id if run else None,
            round=run.round if run else 0,
            current_step=run.current_step if run else None,
            submitted_by=run.submitted_by if run else None,
            submitted_at=run.submitted_at if run else None,
            finished_at=run.finished_at if run else None,
            path=path,
            next_steps=upcoming,
            open_tasks=open_tasks,
            my_tasks=mine,
            actions=tuple(actions),
            trail=trail,
            return_targets=targets,
        )

    @staticmethod
    def _step_view(fl: Flow, name: str, tasks: list[Task], run: Run | None) -> StepView:
        step = fl.steps[name]
        mine = [t for t in tasks if t.step == name]
        if run is None or not mine:
            return StepView(name, _label(step.label, name), step.mode, "not_submitted", 0, (), ())
        visit = max(t.visit for t in mine)
        latest = tuple(t for t in mine if t.visit == visit)
        states = {t.state for t in latest}
        if states == {"skipped"}:
            state = "skipped"
        elif "open" in states:
            state = "open"
        elif "rejected" in states:
            state = "rejected"
        elif states <= {"waiting"}:
            state = "waiting"
        elif "approved" in states and (
            step.mode == "any"
            or all(t.state in ("approved", "cancelled", "transferred") for t in latest)
        ):
            state = "approved"
        else:
            state = "cancelled"
        approvers = tuple(t.approver for t in latest if t.approver and t.state != "skipped")
        return StepView(name, _label(step.label, name), step.mode, state, visit, approvers, latest)

    def _could_submit(self, actor: Actor, record: Record) -> bool:
        try:
            self._may_submit(actor, record)
        except (NotFound, PermissionDenied):
            return False
        return True
