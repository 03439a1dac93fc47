"""Approval flows in the app: a record's flow panel, the task actions, the inbox.

* The detail page of a record whose entity has flows shows one panel per flow
  (:func:`flow_panels`): the state, the steps (the path taken, the current one
  with who is asked and how each decided, the steps still to come), the buttons
  of the signed-in user only, and the trail (who, when, what, comment).
* ``POST /e/<entity>/<id>/flow/submit`` and ``.../flow/recall``: the submitter's
  actions; ``POST /tasks/<id>/approve|reject|return|transfer|add-approver``: the
  approver's. Every form carries the CSRF token.
* ``GET /inbox``: "Waiting for me" (paged); ``POST /inbox``: approve the ticked
  tasks with one comment, each in its own transaction, one result per task;
  ``GET /inbox/submitted``: "Submitted by me".

Every action goes through :class:`engine.flows.FlowService`. On success: a
flash and a redirect (303) to the record. When the flow refuses (already
decided, not allowed now, nobody to approve, an invalid value, a missing
comment, a locked record) the record page is shown again with the message as
an error flash, with the error's status (409 or 422). A task that is not the
user's is a 403 page; an unknown task, or one on a record the user may not
see, a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from engine.errors import Conflict, FlowError, FormflowError, RecordInvalid
from engine.flows import FlowState, InboxItem, StepView, SubmissionItem, Task, TrailEntry
from engine.model import Entity, Flow
from engine.records import Actor, Record
from engine.storage.query import Filter, Query
from engine.web import access
from engine.web.auth import current_actor
from engine.web.conditions import FieldState
from engine.web.formatting import display, input_value, record_title, show_count, show_datetime
from engine.web.forms import accepts_input, read_form
from engine.web.i18n import N_, _, current_lang, ngettext
from engine.web.services import services
from engine.web.views.common import entity_or_404
from engine.web.widgets import FieldView, RefCache, field_view

bp = Blueprint("flows", __name__)

INBOX_PAGE = 20
#: At most this many tasks are approved by one bulk request.
BULK_LIMIT = 100
MAX_COMMENT = 2000
SUBMITTER = "submitter"

#: A run's (or a record's) flow state.
FLOW_STATES = {
    "draft": N_("Draft"),
    "pending": N_("Pending"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "returned": N_("Returned"),
    "recalled": N_("Recalled"),
}
#: A step of a run.
STEP_STATES = {
    "not_submitted": N_("Not started"),
    "waiting": N_("Waiting"),
    "open": N_("Now asked"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "cancelled": N_("Cancelled"),
    "skipped": N_("Skipped"),
}
#: One approver's task.
TASK_STATES = {
    "waiting": N_("Waiting"),
    "open": N_("To decide"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "transferred": N_("Transferred"),
    "cancelled": N_("Not needed"),
    "skipped": N_("Skipped"),
}
MODES = {"any": N_("Any one approves"), "all": N_("Everyone approves")}
#: A trail entry's action.
TRAIL_ACTIONS = {
    "submit": N_("submitted"),
    "approve": N_("approved"),
    "reject": N_("rejected"),
    "return": N_("sent back"),
    "transfer": N_("transferred"),
    "add_approver": N_("added an approver"),
    "recall": N_("recalled"),
    "escalate": N_("escalated"),
}
#: Inputs named in flow errors, as the user reads them.
ERROR_KEYS = {"comment": N_("Comment"), "user": N_("User"), "step": N_("Step")}


# -- views of a flow ------------------------------------------------------------------


@dataclass
class Choice:
    value: str
    label: str


@dataclass
class ApproverView:
    name: str
    label: str
    state: str
    state_label: str
    note: str
    decided_at: str
    comment: str


@dataclass
class StepPanel:
    name: str
    label: str
    mode_label: str
    state: str
    state_label: str
    current: bool
    approvers: list[ApproverView]


@dataclass
class TrailView:
    at: str
    who: str
    action: str
    step: str
    detail: str
    comment: str
    round: int | None


@dataclass
class FlowPanel:
    """Everything the flow panel of a record draws, already decided for the user."""

    flow: str
    label: str
    anchor: str
    state: str
    state_label: str
    round: int
    submitted: str
    current_step: str
    asked: list[str]
    steps: list[StepPanel]
    trail: list[TrailView]
    locked: bool
    submit_url: str | None = None
    resubmit: bool = False
    recall_url: str | None = None
    task_id: int | None = None
    approve_url: str | None = None
    reject_url: str | None = None
    return_url: str | None = None
    transfer_url: str | None = None
    add_url: str | None = None
    approve_comment_required: bool = False
    reject_comment_required: bool = False
    return_targets: list[Choice] = field(default_factory=list)
    people: list[Choice] = field(default_factory=list)
    editable: list[FieldView] = field(default_factory=list)


class People:
    """Display names of users for one request: those named on the page, in one query
    (:meth:`know`), and the active users for the pickers only when a picker is drawn."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def know(self, names: Iterable[str | None]) -> None:
        missing = {n for n in names if n and n not in self._labels}
        if missing:
            found = services().users.labels(missing)
            self._labels.update({n: found.get(n, n) for n in missing})

    def label(self, name: str | None) -> str:
        if not name:
            return _("the system")
        if name not in self._labels:
            self.know([name])
        return self._labels[name]

    @staticmethod
    def active() -> list[tuple[str, str]]:
        return [(u.name, u.label) for u in services().users.list(active_only=True)]


def _people() -> People:
    found = g.get("ff_people")
    if not isinstance(found, People):
        found = People()
        g.ff_people = found
    return found


def state_label(state: str) -> str:
    return _(FLOW_STATES[state]) if state in FLOW_STATES else state


def _step_label(fl: Flow | None, name: str | None, lang: str) -> str:
    if not name:
        return ""
    if name == SUBMITTER:
        return _("the submitter")
    step = fl.steps.get(name) if fl is not None else None
    if step is None:
        return name
    return step.label.get(lang) or name


def _approver_view(task: Task, people: People, lang: str) -> ApproverView:
    notes = []
    if task.origin == "added" and task.added_by:
        notes.append(_("added by %(who)s", who=people.label(task.added_by)))
    elif task.origin == "transferred" and task.added_by:
        notes.append(_("transferred by %(who)s", who=people.label(task.added_by)))
    elif task.origin == "escalated":
        notes.append(_("asked after a timeout"))
    if task.state == "transferred" and task.transferred_to:
        notes.append(_("to %(who)s", who=people.label(task.transferred_to)))
    return ApproverView(
        name=task.approver or "",
        label=people.label(task.approver),
        state=task.state,
        state_label=_(TASK_STATES[task.state]) if task.state in TASK_STATES else task.state,
        note="; ".join(notes),
        decided_at=show_datetime(task.decided_at, lang)
        if task.state in ("approved", "rejected", "transferred")
        else "",
        comment=task.comment or "",
    )


def _step_panel(view: StepView, fl: Flow, state: FlowState, people: People, lang: str) -> StepPanel:
    current = state.state == "pending" and view.name == state.current_step
    return StepPanel(
        name=view.name,
        label=view.label.get(lang) or view.name,
        mode_label=_(MODES[view.mode]) if view.mode in MODES else view.mode,
        state=view.state,
        state_label=_(STEP_STATES[view.state]) if view.state in STEP_STATES else view.state,
        current=current,
        approvers=[_approver_view(t, people, lang) for t in view.tasks if t.state != "skipped"],
    )


def _trail_view(entry: TrailEntry, fl: Flow, people: People, lang: str) -> TrailView:
    details = entry.details
    detail = ""
    if entry.action in ("transfer", "add_approver") and details.get("to"):
        detail = _("to %(who)s", who=people.label(str(details["to"])))
    elif entry.action == "return" and details.get("to"):
        detail = _("to %(step)s", step=_step_label(fl, str(details["to"]), lang))
    elif entry.action == "escalate" and details.get("to"):
        names = details["to"] if isinstance(details["to"], list) else [details["to"]]
        detail = _("to %(who)s", who=", ".join(people.label(str(n)) for n in names))
    elif entry.action == "reject" and details.get("return_to"):
        detail = _("back to %(step)s", step=_step_label(fl, str(details["return_to"]), lang))
    if details.get("timeout"):
        detail = ", ".join(d for d in (detail, _("after a timeout")) if d)
    return TrailView(
        at=show_datetime(entry.at, lang),
        who=people.label(entry.who),
        action=_(TRAIL_ACTIONS[entry.action]) if entry.action in TRAIL_ACTIONS else entry.action,
        step=_step_label(fl, entry.step, lang),
        detail=detail,
        comment=entry.comment or "",
        round=entry.round,
    )


def _editable_views(
    ent: Entity, fl: Flow, task: Task, record: Record, actor: Actor, lang: str
) -> list[FieldView]:
    """Inputs of the step's ``editable`` fields the approver can see (tables left out)."""
    step = fl.steps.get(task.step)
    if step is None:
        return []
    hidden = access.hidden_fields(actor, ent)
    refs = RefCache(actor, lang)
    out = []
    for name in step.editable:
        f = ent.fields.get(name)
        if f is None or name in hidden or f.kind == "table" or not accepts_input(f):
            continue
        value = record.values.get(name)
        out.append(
            field_view(
                f,
                name,
                input_value(f, value),
                value,
                lang,
                state=FieldState(),
                readonly=False,
                errors=[],
                refs=refs,
            )
        )
    return out


def _named(state: FlowState) -> set[str | None]:
    """Everyone a panel names: the submitter, approvers, trail entries."""
    names: set[str | None] = {state.submitted_by}
    for view in (*state.path, *state.next_steps):
        for t in view.tasks:
            names.update((t.approver, t.added_by, t.transferred_to))
    for entry in state.trail:
        names.add(entry.who)
        to = entry.details.get("to")
        names.update(to if isinstance(to, list) else [to] if isinstance(to, str) else [])
    return names


def _panel(ent: Entity, fl: Flow, state: FlowState, record: Record, actor: Actor) -> FlowPanel:
    lang = current_lang()
    people = _people()
    people.know(_named(state))
    steps = [_step_panel(v, fl, state, people, lang) for v in (*state.path, *state.next_steps)]
    submitted = ""
    if state.submitted_at is not None:
        submitted = _(
            "%(user)s at %(at)s",
            user=people.label(state.submitted_by),
            at=show_datetime(state.submitted_at, lang),
        )
    pending = state.state == "pending"
    current = state.current_step if pending else None
    panel = FlowPanel(
        flow=fl.name,
        label=state.label.get(lang) or fl.name,
        anchor=f"flow-{fl.name}",
        state=state.state,
        state_label=state_label(state.state),
        round=state.round,
        submitted=submitted,
        current_step=_step_label(fl, current, lang),
        asked=[people.label(t.approver) for t in state.open_tasks if t.step == current],
        steps=steps,
        trail=[_trail_view(e, fl, people, lang) for e in reversed(state.trail)],
        locked=pending and fl.lock_while_pending,
    )
    if "submit" in state.actions:
        panel.submit_url = url_for("flows.submit", entity=ent.name, record_id=record.id)
        panel.resubmit = state.round > 0
    if "recall" in state.actions:
        panel.recall_url = url_for("flows.recall", entity=ent.name, record_id=record.id)
    if state.my_tasks and "approve" in state.actions:
        task = state.my_tasks[0]
        step = fl.steps.get(task.step)
        panel.task_id = task.id
        panel.approve_url = url_for("flows.approve", task_id=task.id)
        panel.reject_url = url_for("flows.reject", task_id=task.id)
        panel.return_url = url_for("flows.return_to", task_id=task.id)
        panel.transfer_url = url_for("flows.transfer", task_id=task.id)
        panel.add_url = url_for("flows.add_approver", task_id=task.id)
        if step is not None:
            panel.approve_comment_required = step.on_approve.require_comment
            panel.reject_comment_required = (
                step.on_reject.require_comment or fl.on_rejected.require_comment
            )
        panel.return_targets = [
            Choice(
                t,
                _("the submitter (%(who)s)", who=people.label(state.submitted_by))
                if t == SUBMITTER
                else _step_label(fl, t, lang),
            )
            for t in state.return_targets
        ]
        asked_here = {t.approver for t in state.open_tasks if t.step == task.step}
        panel.people = [
            Choice(name, f"{label} ({name})" if label != name else name)
            for name, label in people.active()
            if name != actor.name
            and name not in asked_here
            and (fl.allow_self_approval or name != state.submitted_by)
        ]
        panel.editable = _editable_views(ent, fl, task, record, actor, lang)
    return panel


def flow_panels(ent: Entity, record: Record, actor: Actor) -> list[FlowPanel]:
    """One panel per flow of the record's entity (none when it has no flow)."""
    svc = services()
    out = []
    for fl in svc.blueprint.flows.values():
        if fl.entity != ent.name:
            continue
        state = svc.flows.state(ent.name, record.id, actor=actor, flow=fl.name)
        out.append(_panel(ent, fl, state, record, actor))
    return out


def lock_notice(panels: list[FlowPanel]) -> str | None:
    """The notice of a record locked by a pending flow, else None."""
    for panel in panels:
        if panel.locked:
            return _(
                "Pending approval (%(flow)s, submitted by %(submitted)s): the record is locked "
                "and cannot be changed or deleted until the approval ends.",
                flow=panel.label,
                submitted=panel.submitted,
            )
    return None


def edit_lock(ent: Entity, record: Record, actor: Actor) -> str | None:
    """Why the record cannot be edited now (a pending flow locks it), else None."""
    svc = services()
    lang = current_lang()
    for fl in svc.blueprint.flows.values():
        if fl.entity != ent.name or not fl.lock_while_pending:
            continue
        state = svc.flows.state(ent.name, record.id, actor=actor, flow=fl.name)
        if state.state == "pending":
            return _(
                "Pending approval (%(flow)s, submitted by %(submitted)s): the record is locked "
                "and cannot be changed or deleted until the approval ends.",
                flow=state.label.get(lang) or fl.name,
                submitted=_(
                    "%(user)s at %(at)s",
                    user=_people().label(state.submitted_by),
                    at=show_datetime(state.submitted_at, lang),
                ),
            )
    return None


# -- messages -------------------------------------------------------------------------


def error_text(exc: FormflowError, ent: Entity | None = None) -> str:
    """A flow or record error as one line in the user's language."""
    lang = current_lang()
    if not isinstance(exc, RecordInvalid):
        return exc.message(lang)
    parts = []
    for key, messages in exc.as_dict(lang).items():
        if key == "_record":
            label = ""
        elif key in ERROR_KEYS:
            label = _(ERROR_KEYS[key])
        elif ent is not None and key in ent.fields:
            label = ent.fields[key].label.get(lang) or key
        else:
            label = key
        for message in messages:
            parts.append(f"{label}: {message}" if label else message)
    return "; ".join(parts) if parts else exc.message(lang)


def _refused(ent: Entity, record_id: int, exc: FormflowError) -> tuple[str, int]:
    """The record page again, the refusal as an error flash, with the error's status."""
    from engine.web.views.records import detail

    flash(error_text(exc, ent), "error")
    status = exc.http_status if exc.http_status in (400, 403, 404, 409, 422) else 409
    return detail(ent.name, record_id), status


def _comment() -> str | None:
    text = request.form.get("comment", "").strip()
    return text[:MAX_COMMENT] or None


def _back(ent: Entity, record_id: int, message: str) -> Response:
    flash(message)
    target = url_for("records.detail", entity=ent.name, record_id=record_id)
    return redirect(f"{target}#flow", code=303)


# -- submit and recall ------------------------------------------------------------------


def _record_action(
    entity: str, record_id: int, act: Callable[[Entity, Actor, str | None], FlowState], done: str
) -> Response | tuple[str, int]:
    ent = entity_or_404(entity)
    actor = current_actor()
    flow = request.form.get("flow") or None
    try:
        act(ent, actor, flow)
    except (FlowError, RecordInvalid, Conflict) as exc:
        return _refused(ent, record_id, exc)
    return _back(ent, record_id, done)


@bp.route("/e/<entity>/<int:record_id>/flow/submit", methods=["POST"])
def submit(entity: str, record_id: int) -> Response | tuple[str, int]:
    comment = _comment()
    return _record_action(
        entity,
        record_id,
        lambda ent, actor, flow: services().flows.submit(
            ent.name, record_id, actor=actor, flow=flow, comment=comment
        ),
        _("Submitted for approval"),
    )


@bp.route("/e/<entity>/<int:record_id>/flow/recall", methods=["POST"])
def recall(entity: str, record_id: int) -> Response | tuple[str, int]:
    return _record_action(
        entity,
        record_id,
        lambda ent, actor, flow: services().flows.recall(
            ent.name, record_id, actor=actor, flow=flow
        ),
        _("The submission was recalled"),
    )


# -- task actions -----------------------------------------------------------------------


def _task_record(task_id: int) -> tuple[Entity, int]:
    """The entity and record a task is about (404 when there is no such task)."""
    svc = services()
    run = svc.flows.run(svc.flows.task(task_id).run_id)
    ent = svc.blueprint.entities.get(run.entity)
    if ent is None:
        abort(404)
    return ent, run.record_id


def _task_action(
    task_id: int, act: Callable[[Actor, Entity], FlowState], done: Callable[[], str]
) -> Response | tuple[str, int]:
    ent, record_id = _task_record(task_id)
    actor = current_actor()
    try:
        act(actor, ent)
    except (FlowError, RecordInvalid, Conflict) as exc:
        return _refused(ent, record_id, exc)
    return _back(ent, record_id, done())


def _approval_values(ent: Entity, task_id: int) -> dict[str, Any]:
    """The step's ``editable`` fields as the approve form sent them."""
    svc = services()
    task = svc.flows.task(task_id)
    run = svc.flows.run(task.run_id)
    fl = svc.blueprint.flows.get(run.flow)
    step = fl.steps.get(task.step) if fl is not None else None
    if step is None:
        return {}
    wanted = {
        n for n in step.editable if n in ent.fields and ent.fields[n].kind != "table"
    } - access.hidden_fields(current_actor(), ent)
    data, _state = read_form(ent, request.form, wanted)
    return data


@bp.route("/tasks/<int:task_id>/approve", methods=["POST"])
def approve(task_id: int) -> Response | tuple[str, int]:
    comment = _comment()
    return _task_action(
        task_id,
        lambda actor, ent: services().flows.approve(
            task_id, actor=actor, comment=comment, values=_approval_values(ent, task_id)
        ),
        lambda: _("Approved"),
    )


@bp.route("/tasks/<int:task_id>/reject", methods=["POST"])
def reject(task_id: int) -> Response | tuple[str, int]:
    comment = _comment()
    return _task_action(
        task_id,
        lambda actor, ent: services().flows.reject(task_id, actor=actor, comment=comment),
        lambda: _("Rejected"),
    )


@bp.route("/tasks/<int:task_id>/return", methods=["POST"])
def return_to(task_id: int) -> Response | tuple[str, int]:
    comment = _comment()
    step = request.form.get("step", "").strip() or SUBMITTER
    return _task_action(
        task_id,
        lambda actor, ent: services().flows.return_to(task_id, step, actor=actor, comment=comment),
        lambda: _("Sent back"),
    )


@bp.route("/tasks/<int:task_id>/transfer", methods=["POST"])
def transfer(task_id: int) -> Response | tuple[str, int]:
    comment = _comment()
    user = request.form.get("user", "").strip()
    return _task_action(
        task_id,
        lambda actor, ent: services().flows.transfer(task_id, user, actor=actor, comment=comment),
        lambda: _("Transferred to %(who)s", who=_people().label(user)),
    )


@bp.route("/tasks/<int:task_id>/add-approver", methods=["POST"])
def add_approver(task_id: int) -> Response | tuple[str, int]:
    comment = _comment()
    user = request.form.get("user", "").strip()
    return _task_action(
        task_id,
        lambda actor, ent: services().flows.add_approver(
            task_id, user, actor=actor, comment=comment
        ),
        lambda: _("%(who)s is asked too", who=_people().label(user)),
    )


# -- the inbox --------------------------------------------------------------------------


@dataclass
class InboxRow:
    task_id: int
    title: str
    url: str
    entity: str
    flow: str
    step: str
    submitted_by: str
    submitted_at: str
    values: list[tuple[str, str]]
    result: BulkResult | None = None


@dataclass
class BulkResult:
    task_id: int
    title: str
    url: str | None
    outcome: str  # approved | decided | invalid | refused
    message: str


def _amount_fields(ent: Entity, hidden: frozenset[str]) -> list[str]:
    """Up to three money/percent columns of an entity's list (what a decision is about)."""
    names = ent.list.columns or tuple(ent.fields)
    wanted = ("money", "percent")
    return [
        n
        for n in names
        if n in ent.fields
        and n not in hidden
        and (ent.fields[n].kind in wanted or (ent.fields[n].result or "") in wanted)
    ][:3]


def _inbox_rows(items: list[InboxItem], actor: Actor, lang: str) -> list[InboxRow]:
    svc = services()
    people = _people()
    values: dict[tuple[str, int], list[tuple[str, str]]] = {}
    by_entity: dict[str, list[int]] = {}
    for item in items:
        by_entity.setdefault(item.entity, []).append(item.record_id)
    for name, ids in by_entity.items():
        ent = svc.blueprint.entities.get(name)
        if ent is None:
            continue
        fields = _amount_fields(ent, access.hidden_fields(actor, ent))
        if not fields:
            continue
        query = Query(filters=(Filter("id", "in", sorted(set(ids))),), limit=len(set(ids)))
        try:
            page = svc.records.list_records(name, query, actor=actor, with_count=False)
        except FormflowError:
            continue
        for row in page.rows:
            values[(name, int(row["id"]))] = [
                (ent.fields[n].label.get(lang) or n, display(ent.fields[n], row.get(n), lang))
                for n in fields
                if row.get(n) is not None
            ]
    people.know(item.submitted_by for item in items)
    rows = []
    for item in items:
        ent = svc.blueprint.entities.get(item.entity)
        title = (
            record_title(ent, {ent.title_field or "": item.title}, item.record_id, lang)
            if ent is not None
            else f"#{item.record_id}"
        )
        rows.append(
            InboxRow(
                task_id=item.task_id,
                title=title,
                url=url_for("records.detail", entity=item.entity, record_id=item.record_id),
                entity=item.entity_label.get(lang) or item.entity,
                flow=item.flow_label.get(lang) or item.flow,
                step=item.step_label.get(lang) or item.step,
                submitted_by=people.label(item.submitted_by),
                submitted_at=show_datetime(item.submitted_at, lang),
                values=values.get((item.entity, item.record_id), []),
            )
        )
    return rows


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return max(1, min(int(raw), 10_000)) if raw.isdigit() else 1


def _pager(endpoint: str, page: int, total: int) -> dict[str, str | None]:
    last = max(1, -(-total // INBOX_PAGE))
    return {
        "prev_url": url_for(endpoint, page=page - 1) if page > 1 else None,
        "next_url": url_for(endpoint, page=page + 1) if page < last else None,
        "position": _("Page %(page)s of %(pages)s", page=page, pages=last),
    }


def _render_inbox(results: list[BulkResult] | None = None, comment: str = "") -> str:
    svc = services()
    actor = current_actor()
    lang = current_lang()
    page = _page_number()
    total = svc.flows.inbox_count(actor)
    items = svc.flows.inbox(actor, limit=INBOX_PAGE, offset=(page - 1) * INBOX_PAGE)
    summary = None
    if results is not None:
        done = sum(1 for r in results if r.outcome == "approved")
        summary = ngettext(
            "%(num)s of %(total)s task approved",
            "%(num)s of %(total)s tasks approved",
            done,
            total=show_count(len(results), lang),
            num=show_count(done, lang),
        )
    return render_template(
        "inbox.html",
        tab="waiting",
        rows=_inbox_rows(items, actor, lang),
        total=total,
        total_text=ngettext(
            "%(num)s task waiting", "%(num)s tasks waiting", total, num=show_count(total, lang)
        ),
        results=results,
        summary=summary,
        comment=comment,
        bulk_limit=BULK_LIMIT,
        submitted_count=svc.flows.submissions_count(actor),
        **_pager("flows.inbox", page, total),
    )


def _bulk_approve(task_ids: list[int], comment: str | None) -> list[BulkResult]:
    svc = services()
    actor = current_actor()
    lang = current_lang()
    results = []
    for task_id in task_ids:
        title, url, ent = f"#{task_id}", None, None
        try:
            run = svc.flows.run(svc.flows.task(task_id).run_id)
            ent = svc.blueprint.entities.get(run.entity)
            record = svc.records.get(run.entity, run.record_id, actor=actor)
            if ent is not None:
                title = record_title(ent, record.values, record.id, lang)
                url = url_for("records.detail", entity=ent.name, record_id=record.id)
            svc.flows.approve(task_id, actor=actor, comment=comment)
        except RecordInvalid as exc:
            results.append(
                BulkResult(
                    task_id,
                    title,
                    url,
                    "invalid",
                    _("Needs a value or failed a check: %(why)s", why=error_text(exc, ent)),
                )
            )
        except FlowError as exc:
            outcome = "decided" if exc.http_status == 409 else "refused"
            results.append(BulkResult(task_id, title, url, outcome, error_text(exc, ent)))
        except FormflowError as exc:  # not yours, gone, locked: reported, the rest go on
            results.append(BulkResult(task_id, title, url, "refused", error_text(exc, ent)))
        else:
            results.append(BulkResult(task_id, title, url, "approved", _("Approved")))
    return results


@bp.route("/inbox", methods=["GET", "POST"])
def inbox() -> str | tuple[str, int]:
    if request.method == "GET":
        return _render_inbox()
    raw = request.form.getlist("task")
    ids = list(dict.fromkeys(int(v) for v in raw if v.isdigit()))
    if not ids:
        flash(_("Tick the tasks to approve first"), "error")
        return _render_inbox(), 422
    if len(ids) > BULK_LIMIT:
        flash(_("At most %(num)s tasks at once", num=BULK_LIMIT), "error")
        return _render_inbox(), 422
    comment = _comment()
    results = _bulk_approve(ids, comment)
    return _render_inbox(results, comment or "")


@bp.route("/inbox/submitted")
def submitted() -> str:
    svc = services()
    actor = current_actor()
    lang = current_lang()
    page = _page_number()
    total = svc.flows.submissions_count(actor)
    items = svc.flows.submissions(actor, limit=INBOX_PAGE, offset=(page - 1) * INBOX_PAGE)
    return render_template(
        "inbox.html",
        tab="submitted",
        submissions=[_submission_row(item, lang) for item in items],
        total=svc.flows.inbox_count(actor),
        submitted_count=total,
        **_pager("flows.submitted", page, total),
    )


def _submission_row(item: SubmissionItem, lang: str) -> dict[str, Any]:
    run = item.run
    ent = services().blueprint.entities.get(run.entity)
    title = (
        record_title(ent, {ent.title_field or "": item.title}, run.record_id, lang)
        if ent is not None
        else f"#{run.record_id}"
    )
    return {
        "title": title,
        "url": url_for("records.detail", entity=run.entity, record_id=run.record_id)
        if ent is not None
        else None,
        "entity": item.entity_label.get(lang) or run.entity,
        "flow": item.flow_label.get(lang) or run.flow,
        "state": run.state,
        "state_label": state_label(run.state),
        "step": item.step_label.get(lang) if run.state == "pending" else "",
        "submitted_at": show_datetime(run.submitted_at, lang),
        "finished_at": show_datetime(run.finished_at, lang),
    }


# -- the count in the menu and on the home page ----------------------------------------


def inbox_count() -> int | None:
    """The signed-in user's open tasks (None when the blueprint has no flows)."""
    cached = g.get("ff_inbox_count")
    if isinstance(cached, int):
        return cached
    svc = services()
    if not svc.blueprint.flows or not current_user.is_authenticated:
        return None
    count = svc.flows.inbox_count(current_actor())
    g.ff_inbox_count = count
    return count


@bp.app_context_processor
def _flow_globals() -> dict[str, Any]:
    return {"inbox_count": inbox_count}
