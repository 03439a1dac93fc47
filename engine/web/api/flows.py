"""Approval flows in the JSON API (docs/api.md, "Approval flows").

* ``GET /api/v1/<entity>/<id>/flow[?flow=name]``: where the record stands.
* ``POST /api/v1/<entity>/<id>/flow/submit`` ``{"flow"?, "comment"?}`` and
  ``.../flow/recall`` ``{"flow"?}``: the submitter's actions.
* ``GET /api/v1/tasks[?limit=&offset=]``: the caller's open tasks (the inbox).
* ``POST /api/v1/tasks/<task_id>/approve`` ``{"comment"?, "values"?}``,
  ``/reject`` ``{"comment"}``, ``/return`` ``{"step", "comment"}``,
  ``/transfer`` and ``/add-approver`` ``{"user", "comment"?}``.

Every action answers 200 with the flow state as the caller sees it afterwards.
Errors (JSON, in the request language): 400 a malformed body, 403 a task that is
not the caller's (on a record they may see), 404 an unknown or forged task, a
record the caller may not see, an entity without that flow; 409 already decided
(with ``by``, ``at``, ``decision``), an action the state does not allow, a
locked record; 422 a missing comment, an invalid value (``errors`` by field),
nobody to approve a step (``step``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import request, url_for
from werkzeug.wrappers import Response

from engine.fields import business_timezone
from engine.flows import FlowState, InboxItem, StepView, Task, TrailEntry
from engine.i18n import T
from engine.records import Actor
from engine.web.api.base import api_actor, bp, entity_or_404, request_lang
from engine.web.api.encoding import json_object
from engine.web.api.errors import ApiError, json_response
from engine.web.api.routes import METHODS, V1, _dispatch
from engine.web.services import services

#: Largest page of ``GET /api/v1/tasks``.
MAX_TASKS = 100
MAX_COMMENT = 2000

#: The keys each action's body may hold (anything else is refused).
BODY_KEYS: Mapping[str, frozenset[str]] = {
    "submit": frozenset({"flow", "comment"}),
    "recall": frozenset({"flow"}),
    "approve": frozenset({"comment", "values"}),
    "reject": frozenset({"comment"}),
    "return": frozenset({"step", "comment"}),
    "transfer": frozenset({"user", "comment"}),
    "add-approver": frozenset({"user", "comment"}),
}


def _moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    zone = business_timezone()
    return (value.astimezone(zone) if value.tzinfo else value).isoformat()


def task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "step": task.step,
        "visit": task.visit,
        "approver": task.approver,
        "state": task.state,
        "origin": task.origin,
        "added_by": task.added_by,
        "transferred_to": task.transferred_to,
        "comment": task.comment,
        "opened_at": _moment(task.opened_at),
        "decided_at": _moment(task.decided_at),
        "due_at": _moment(task.due_at),
    }


def _step_json(view: StepView, lang: str) -> dict[str, Any]:
    return {
        "name": view.name,
        "label": view.label.get(lang) or view.name,
        "mode": view.mode,
        "state": view.state,
        "visit": view.visit,
        "approvers": list(view.approvers),
        "tasks": [task_json(t) for t in view.tasks if t.state != "skipped"],
    }


def _trail_json(entry: TrailEntry, hidden: frozenset[str]) -> dict[str, Any]:
    details = dict(entry.details)
    values = details.get("values")
    if isinstance(values, Mapping):  # an approver's edits: fields hidden from the caller go
        details["values"] = {k: v for k, v in values.items() if k not in hidden}
    return {
        "id": entry.id,
        "at": _moment(entry.at),
        "who": entry.who,
        "action": entry.action,
        "step": entry.step,
        "round": entry.round,
        "comment": entry.comment,
        "task_id": entry.task_id,
        "details": details,
    }


def state_json(state: FlowState, actor: Actor) -> dict[str, Any]:
    """A record's place in a flow, and what the caller may do now."""
    lang = request_lang()
    hidden = services().permissions.hidden_fields(actor, state.entity)
    return {
        "flow": state.flow,
        "label": state.label.get(lang) or state.flow,
        "entity": state.entity,
        "record_id": state.record_id,
        "state": state.state,
        "round": state.round,
        "run_id": state.run_id,
        "current_step": state.current_step if state.state == "pending" else None,
        "submitted_by": state.submitted_by,
        "submitted_at": _moment(state.submitted_at),
        "finished_at": _moment(state.finished_at),
        "steps": [_step_json(v, lang) for v in (*state.path, *state.next_steps)],
        "open_tasks": [task_json(t) for t in state.open_tasks],
        "my_tasks": [task_json(t) for t in state.my_tasks],
        "actions": list(state.actions),
        "return_targets": list(state.return_targets),
        "trail": [_trail_json(e, hidden) for e in state.trail],
    }


def inbox_json(item: InboxItem, lang: str) -> dict[str, Any]:
    return {
        "task_id": item.task_id,
        "flow": item.flow,
        "flow_label": item.flow_label.get(lang) or item.flow,
        "step": item.step,
        "step_label": item.step_label.get(lang) or item.step,
        "entity": item.entity,
        "entity_label": item.entity_label.get(lang) or item.entity,
        "record_id": item.record_id,
        "record_url": url_for("api.record", entity=item.entity, record_id=item.record_id),
        "title": None if item.title is None else str(item.title),
        "round": item.round,
        "submitted_by": item.submitted_by,
        "submitted_at": _moment(item.submitted_at),
        "opened_at": _moment(item.opened_at),
        "due_at": _moment(item.due_at),
        "origin": item.origin,
        "added_by": item.added_by,
    }


# -- bodies -----------------------------------------------------------------------------


def _body(action: str) -> dict[str, Any]:
    """The action's JSON body (an empty body is ``{}``), with only its known keys."""
    if not request.get_data(cache=True).strip():
        return {}
    data = json_object()
    unknown = sorted(set(data) - BODY_KEYS[action])
    if unknown:
        allowed = ", ".join(sorted(BODY_KEYS[action])) or "-"
        raise ApiError(
            400,
            T(
                f"未知的键：{', '.join(unknown)}（可用：{allowed}）",
                f"unknown keys: {', '.join(unknown)} (allowed: {allowed})",
            ),
        )
    return data


def _text(data: Mapping[str, Any], key: str, *, limit: int = MAX_COMMENT) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, T(f"{key} 应为字符串", f"{key} must be a string"))
    text = value.strip()
    if len(text) > limit:
        raise ApiError(
            400, T(f"{key} 最多 {limit} 个字符", f"{key} must be at most {limit} characters")
        )
    return text or None


def _required(data: Mapping[str, Any], key: str) -> str:
    value = _text(data, key, limit=150)
    if value is None:
        raise ApiError(400, T(f"缺少 {key}", f"{key} is required"))
    return value


# -- one record's flow --------------------------------------------------------------------


@bp.route(f"{V1}/<entity>/<int:record_id>/flow", methods=METHODS)
def record_flow(entity: str, record_id: int) -> Response:
    ent = entity_or_404(entity)

    def get() -> Response:
        actor = api_actor()
        flow = request.args.get("flow") or None
        state = services().flows.state(ent.name, record_id, actor=actor, flow=flow)
        return json_response(state_json(state, actor))

    return _dispatch({"GET": get})


@bp.route(f"{V1}/<entity>/<int:record_id>/flow/submit", methods=METHODS)
def flow_submit(entity: str, record_id: int) -> Response:
    ent = entity_or_404(entity)

    def post() -> Response:
        data = _body("submit")
        actor = api_actor()
        state = services().flows.submit(
            ent.name,
            record_id,
            actor=actor,
            flow=_text(data, "flow", limit=100),
            comment=_text(data, "comment"),
        )
        return json_response(state_json(state, actor))

    return _dispatch({"POST": post})


@bp.route(f"{V1}/<entity>/<int:record_id>/flow/recall", methods=METHODS)
def flow_recall(entity: str, record_id: int) -> Response:
    ent = entity_or_404(entity)

    def post() -> Response:
        data = _body("recall")
        actor = api_actor()
        state = services().flows.recall(
            ent.name, record_id, actor=actor, flow=_text(data, "flow", limit=100)
        )
        return json_response(state_json(state, actor))

    return _dispatch({"POST": post})


# -- tasks --------------------------------------------------------------------------------


def _paging() -> tuple[int, int]:
    def number(name: str, default: int, low: int, high: int) -> int:
        raw = request.args.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ApiError(
                400,
                T(
                    f"{name} 应为 {low} 到 {high} 的整数",
                    f"{name} must be a whole number {low}-{high}",
                ),
                param=name,
            )
        return int(raw)

    return number("limit", 50, 1, MAX_TASKS), number("offset", 0, 0, 10**9)


@bp.route(f"{V1}/tasks", methods=METHODS)
def tasks() -> Response:
    def get() -> Response:
        actor = api_actor()
        limit, offset = _paging()
        flows = services().flows
        items = flows.inbox(actor, limit=limit, offset=offset)
        count = flows.inbox_count(actor)
        lang = request_lang()
        return json_response(
            {
                "data": [inbox_json(i, lang) for i in items],
                "count": count,
                "has_more": offset + len(items) < count,
            }
        )

    return _dispatch({"GET": get})


def _task_action(task_id: int, action: str) -> Response:
    def post() -> Response:
        data = _body(action)
        actor = api_actor()
        flows = services().flows
        comment = _text(data, "comment")
        if action == "approve":
            values = data.get("values") or {}
            if not isinstance(values, dict):
                raise ApiError(400, T("values 应为 JSON 对象", "values must be a JSON object"))
            state = flows.approve(task_id, actor=actor, comment=comment, values=values)
        elif action == "reject":
            state = flows.reject(task_id, actor=actor, comment=comment)
        elif action == "return":
            step = _required(data, "step")
            state = flows.return_to(task_id, step, actor=actor, comment=comment)
        elif action == "transfer":
            state = flows.transfer(task_id, _required(data, "user"), actor=actor, comment=comment)
        else:
            user = _required(data, "user")
            state = flows.add_approver(task_id, user, actor=actor, comment=comment)
        return json_response(state_json(state, actor))

    return _dispatch({"POST": post})


@bp.route(f"{V1}/tasks/<int:task_id>/approve", methods=METHODS)
def task_approve(task_id: int) -> Response:
    return _task_action(task_id, "approve")


@bp.route(f"{V1}/tasks/<int:task_id>/reject", methods=METHODS)
def task_reject(task_id: int) -> Response:
    return _task_action(task_id, "reject")


@bp.route(f"{V1}/tasks/<int:task_id>/return", methods=METHODS)
def task_return(task_id: int) -> Response:
    return _task_action(task_id, "return")


@bp.route(f"{V1}/tasks/<int:task_id>/transfer", methods=METHODS)
def task_transfer(task_id: int) -> Response:
    return _task_action(task_id, "transfer")


@bp.route(f"{V1}/tasks/<int:task_id>/add-approver", methods=METHODS)
def task_add_approver(task_id: int) -> Response:
    return _task_action(task_id, "add-approver")
