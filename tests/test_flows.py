"""The approval-flow state machine (engine.flows) on SQLite and PostgreSQL.

Blueprints are inline; time is an injected clock (timeouts and reminders run
by moving it, never by sleeping); concurrency is real threads on real
connections. Every test runs on both databases (the ``db_url`` fixture).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import (
    AlreadyDecided,
    FlowError,
    NoApprovers,
    NotFound,
    PermissionDenied,
    RecordInvalid,
    RecordLocked,
    TransitionNotAllowed,
)
from engine.events import FLOW_EVENT_KINDS, Event, EventBus
from engine.flows import AUDIT_ACTIONS, REMIND_JOB, TIMEOUT_JOB, FlowService
from engine.jobs import JobQueue
from engine.loader import load
from engine.permissions import Permissions
from engine.records import SYSTEM, Actor, Record, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import FLOW_RUNS_TABLE, FLOW_TASKS_TABLE, Schema, build_schema
from engine.uploads import UploadService
from engine.users import UserService

T0 = datetime(2024, 6, 3, 1, 0, tzinfo=UTC)  # Monday 09:00 in Asia/Shanghai

FIELDS = {
    "name": {"type": "text", "label": "Name", "required": True},
    "total": {"type": "money", "label": "Total"},
    "payment_terms": {"type": "text", "label": "Payment terms"},
    "scan": {"type": "text", "label": "Scan"},
    "reviewer": {"type": "user", "label": "Reviewer"},
    "route": {"type": "text", "label": "Route"},
    "signed_on": {"type": "date", "label": "Signed on"},
    "note": {"type": "text", "label": "Note"},
    "status": {
        "type": "choice",
        "label": "Status",
        "default": "draft",
        "options": ["draft", "pending", "approved", "rejected"],
    },
}
ACCESS = {
    "rep": {"create": True, "read": "own", "update": "own"},
    "manager": {"create": True, "read": "team", "update": "team"},
    "director": {"create": True, "read": "all", "update": "own"},
    "finance": {"read": "all"},
    "checker": {"read": "all"},
}


def _entity(label: str) -> dict[str, Any]:
    return {"label": label, "title_field": "name", "fields": FIELDS, "access": ACCESS}


def _memo_flow(step: dict[str, Any], **flow: Any) -> dict[str, Any]:
    return {"entity": "memo", "status_field": "status", "steps": {"only": step}, **flow}


BLUEPRINT: dict[str, Any] = {
    "formflow": 1,
    "id": "flows",
    "title": "Flows",
    "roles": {
        "rep": "Rep",
        "manager": "Manager",
        "director": "Director",
        "finance": "Finance",
        "checker": "Checker",
        "legal": "Legal",
    },
    "entities": {
        "contract": _entity("Contract"),
        "deal": _entity("Deal"),
        "ticket": _entity("Ticket"),
        "memo": _entity("Memo"),
    },
    "flows": {
        "contract_approval": {
            "label": {"zh": "合同审批", "en": "Contract approval"},
            "entity": "contract",
            "status_field": "status",
            "submit_when": "total > 0",
            "steps": {
                "manager_review": {
                    "label": {"zh": "经理审批", "en": "Manager review"},
                    "approvers": {"manager_of": "owner"},
                    "editable": ["payment_terms"],
                    "remind_after": "24h",
                    "timeout": {"after": "3d", "action": "escalate"},
                },
                "finance_review": {
                    "label": {"zh": "财务会签", "en": "Finance review"},
                    "when": "total >= 100000",
                    "approvers": {"role": "finance"},
                    "mode": "all",
                    "editable": ["scan"],
                    "validate": "not ISBLANK(scan)",
                    "validate_message": {"zh": "请先上传合同扫描件", "en": "Upload the scan"},
                    "on_reject": {"return_to": "manager_review"},
                },
                "director_review": {
                    "approvers": {"users": ["boss"]},
                    "on_approve": {"set": {"note": "director ok"}},
                },
            },
            "on_approved": {"set": {"signed_on": "=TODAY()"}, "notify": ["owner"]},
            "on_rejected": {
                "require_comment": True,
                "return_to": "submitter",
                "notify": ["owner", "approvers"],
            },
            "cc": {"role": "director"},
        },
        "deal_approval": {
            "entity": "deal",
            "status_field": "status",
            "lock_while_pending": False,
            "steps": {"check": {"approvers": {"role": "checker"}, "mode": "any"}},
        },
        "ticket_flow": {
            "entity": "ticket",
            "status_field": "status",
            "steps": {
                "t_approve": {
                    "when": "route == 'approve'",
                    "approvers": {"users": ["c1"]},
                    "timeout": {"after": "1d", "action": "approve"},
                },
                "t_reject": {
                    "when": "route == 'reject'",
                    "approvers": {"users": ["c1"]},
                    "timeout": {"after": "1d", "action": "reject"},
                },
                "t_return": {
                    "when": "route == 'return'",
                    "approvers": {"users": ["c1"]},
                    "timeout": {"after": "1d", "action": "return"},
                },
                "t_escalate": {
                    "when": "route == 'escalate'",
                    "approvers": {"field": "reviewer"},
                    "mode": "all",
                    "timeout": {"after": "1d", "action": "escalate"},
                },
            },
        },
        "memo_legal": _memo_flow({"label": "财务会签", "approvers": {"role": "legal"}}),
        "memo_users": _memo_flow({"approvers": {"users": ["c1", "retired", "c2"]}, "mode": "all"}),
        "memo_ghost": _memo_flow({"approvers": {"users": ["c1", "ghost"]}}),
        "memo_field": _memo_flow({"approvers": {"field": "reviewer"}}),
        "memo_formula": _memo_flow({"approvers": {"formula": "IF(total > 100, 'fin1', reviewer)"}}),
        "memo_levels": _memo_flow({"approvers": {"manager_of": "owner", "levels": 2}}),
        "memo_self": _memo_flow({"approvers": {"users": ["li.lei"]}}, allow_self_approval=True),
        "memo_noself": _memo_flow({"approvers": {"users": ["li.lei"]}}),
        "memo_comment": _memo_flow(
            {"approvers": {"users": ["c1"]}, "on_approve": {"require_comment": True}}
        ),
    },
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class World:
    engine: Engine
    schema: Schema
    clock: Clock
    records: RecordService
    users: UserService
    flows: FlowService
    jobs: JobQueue
    seen: list[Event]
    bus: EventBus

    def actor(self, name: str) -> Actor:
        return self.users.get(name).actor

    def new(self, entity: str, owner: str = "li.lei", **values: Any) -> Record:
        data = {"name": f"{entity} of {owner}", **values}
        return self.records.create(entity, data, actor=self.actor(owner), via="form")

    def open_task(self, entity: str, record_id: int, who: str) -> int:
        state = self.flows.state(entity, record_id, actor=self.actor(who))
        [task] = state.my_tasks
        return task.id

    def status(self, entity: str, record_id: int) -> str:
        return str(self.records.get(entity, record_id).values["status"])

    def kinds(self, *wanted: str) -> list[tuple[str, str | None]]:
        return [(e.kind, e.step) for e in self.seen if not wanted or e.kind in wanted]


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.json"
    path.write_text(json.dumps(BLUEPRINT), encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url, pool_size=24)
    initialise(engine, bp, schema)
    clock = Clock()
    users = UserService(bp, schema, engine, clock=clock)
    users.add("admin", roles=["admin"])
    users.add("boss", roles=["director"])
    users.add("wang.fang", roles=["manager"], manager="boss")
    users.add("li.lei", roles=["rep"], manager="wang.fang")
    users.add("zhao.qiang", roles=["rep"], manager="wang.fang")
    users.add("nomgr", roles=["rep"])
    users.add("fin1", roles=["finance"])
    users.add("fin2", roles=["finance"])
    users.add("c1", roles=["checker"])
    users.add("c2", roles=["checker"])
    users.add("retired", roles=["checker"])
    users.deactivate("retired")
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    records = RecordService(
        bp, schema, engine, clock=clock, access=Permissions(bp, users), events=bus
    )
    jobs = JobQueue(engine, schema, clock)
    flows = FlowService(bp, schema, engine, records, users, clock=clock, events=bus, jobs=jobs)
    yield World(engine, schema, clock, records, users, flows, jobs, seen, bus)
    engine.dispose()


def _count(world: World, table: sa.Table, *where: Any) -> int:
    with world.engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(conn.execute(stmt).scalar_one())


def _audits(world: World, action: str) -> int:
    a = world.schema.audit
    return _count(world, a, a.c.action == action, a.c.via == "flow")


def _submitted_contract(world: World, total: str = "150000", **values: Any) -> Record:
    contract = world.new("contract", total=total, **values)
    world.flows.submit("contract", contract.id, actor=world.actor("li.lei"), comment="please")
    return contract


# --------------------------------------------------------------------------- submit


def test_submit_resolves_every_step_and_opens_the_first(world: World) -> None:
    contract = world.new("contract", total="150000")
    state = world.flows.submit(
        "contract", contract.id, actor=world.actor("li.lei"), comment="please"
    )
    assert state.state == "pending" and state.round == 1
    assert state.current_step == "manager_review"
    assert world.status("contract", contract.id) == "pending"
    assert [(v.name, v.state, v.approvers) for v in state.path] == [
        ("manager_review", "open", ("wang.fang",))
    ]
    assert [(v.name, v.state, v.approvers) for v in state.next_steps] == [
        ("finance_review", "waiting", ("fin1", "fin2")),
        ("director_review", "waiting", ("boss",)),
    ]
    assert [t.approver for t in state.open_tasks] == ["wang.fang"]
    assert state.actions == ("recall",)  # li.lei: the submitter
    [submit] = state.trail
    assert (submit.action, submit.who, submit.comment) == ("submit", "li.lei", "please")
    assert submit.details["approvers"] == {
        "manager_review": ["wang.fang"],
        "finance_review": ["fin1", "fin2"],
        "director_review": ["boss"],
    }
    assert world.kinds("submitted", "step_entered") == [
        ("submitted", None),
        ("step_entered", "manager_review"),
    ]
    entered = next(e for e in world.seen if e.kind == "step_entered")
    assert entered.details["approvers"] == ["wang.fang"] and entered.flow == "contract_approval"
    task = world.flows.task(state.open_tasks[0].id)
    assert task.remind_at == T0 + timedelta(hours=24)
    assert task.due_at == T0 + timedelta(days=3)


def test_a_step_whose_when_is_false_is_recorded_as_skipped(world: World) -> None:
    contract = _submitted_contract(world, total="5000")
    state = world.flows.state("contract", contract.id, actor=world.actor("li.lei"))
    assert [(v.name, v.state) for v in state.path] == [
        ("manager_review", "open"),
        ("finance_review", "skipped"),
    ]
    assert [v.name for v in state.next_steps] == ["director_review"]
    assert state.trail[0].details["skipped"] == ["finance_review"]


def test_submit_when_refuses_and_writes_nothing(world: World) -> None:
    contract = world.new("contract", total="0")
    with pytest.raises(RecordInvalid) as info:
        world.flows.submit("contract", contract.id, actor=world.actor("li.lei"))
    assert "total > 0" in info.value.message("en")
    assert world.status("contract", contract.id) == "draft"
    assert _count(world, world.schema.metadata.tables[FLOW_RUNS_TABLE]) == 0


def test_who_may_submit(world: World) -> None:
    contract = world.new("contract", total="10")
    with pytest.raises(NotFound):  # another rep cannot even see it
        world.flows.submit("contract", contract.id, actor=world.actor("zhao.qiang"))
    with pytest.raises(PermissionDenied):  # finance reads all but may not edit
        world.flows.submit("contract", contract.id, actor=world.actor("fin1"))
    state = world.flows.submit("contract", contract.id, actor=world.actor("wang.fang"))
    assert state.submitted_by == "wang.fang"
    with pytest.raises(TransitionNotAllowed, match="pending"):
        world.flows.submit("contract", contract.id, actor=world.actor("li.lei"))
    with pytest.raises(NotFound):
        world.flows.submit("contract", 9999, actor=world.actor("li.lei"))
    with pytest.raises(NotFound):
        world.flows.submit("contract", contract.id, actor=SYSTEM, flow="deal_approval")


def test_a_pending_record_is_locked_against_edits(world: World) -> None:
    contract = _submitted_contract(world, total="10")
    with pytest.raises(RecordLocked) as info:
        world.records.update(
            "contract",
            contract.id,
            {"note": "sneaky"},
            version=2,
            actor=world.actor("li.lei"),
            via="form",
        )
    assert "Contract approval" in info.value.message("en")
    assert "合同审批" in info.value.message("zh")
    deal = world.new("deal")  # deal_approval does not lock
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    world.records.update(
        "deal", deal.id, {"note": "fine"}, version=2, actor=world.actor("li.lei"), via="form"
    )


# --------------------------------------------------------------------------- approvers


def test_a_role_without_active_members_is_a_clear_error(world: World) -> None:
    memo = world.new("memo")
    with pytest.raises(NoApprovers) as info:
        world.flows.submit("memo", memo.id, actor=world.actor("li.lei"), flow="memo_legal")
    assert info.value.message("en") == (
        "step 财务会签 has no approvers: role legal has no active members"
    )
    assert info.value.message("zh") == "步骤 财务会签 没有审批人：角色 legal 没有启用的成员"
    assert info.value.http_status == 422 and isinstance(info.value, FlowError)
    assert world.status("memo", memo.id) == "draft"
    assert _count(world, world.schema.metadata.tables[FLOW_TASKS_TABLE]) == 0


def test_named_users_skip_inactive_and_refuse_unknown(world: World) -> None:
    memo = world.new("memo")
    state = world.flows.submit("memo", memo.id, actor=world.actor("li.lei"), flow="memo_users")
    assert [t.approver for t in state.open_tasks] == ["c1", "c2"]
    other = world.new("memo")
    with pytest.raises(NoApprovers, match="ghost"):
        world.flows.submit("memo", other.id, actor=world.actor("li.lei"), flow="memo_ghost")


def test_a_user_field_a_formula_and_two_levels_up(world: World) -> None:
    li = world.actor("li.lei")
    memo = world.new("memo", reviewer="c2")
    state = world.flows.submit("memo", memo.id, actor=li, flow="memo_field")
    assert [t.approver for t in state.open_tasks] == ["c2"]
    blank = world.new("memo")
    with pytest.raises(NoApprovers, match="reviewer is blank"):
        world.flows.submit("memo", blank.id, actor=li, flow="memo_field")
    big = world.new("memo", total="500", reviewer="c1")
    small = world.new("memo", total="5", reviewer="c1")
    assert [
        t.approver
        for t in world.flows.submit("memo", big.id, actor=li, flow="memo_formula").open_tasks
    ] == ["fin1"]
    assert [
        t.approver
        for t in world.flows.submit("memo", small.id, actor=li, flow="memo_formula").open_tasks
    ] == ["c1"]
    up = world.new("memo")
    state = world.flows.submit("memo", up.id, actor=li, flow="memo_levels")
    assert [t.approver for t in state.open_tasks] == ["boss"]  # li.lei -> wang.fang -> boss


def test_no_manager_falls_back_to_the_admins(world: World) -> None:
    contract = world.new("contract", owner="nomgr", total="10")
    state = world.flows.submit("contract", contract.id, actor=world.actor("nomgr"))
    assert [t.approver for t in state.open_tasks] == ["admin"]
    one_level = world.new("memo", owner="wang.fang")  # wang.fang -> boss -> nobody
    state = world.flows.submit(
        "memo", one_level.id, actor=world.actor("wang.fang"), flow="memo_levels"
    )
    assert [t.approver for t in state.open_tasks] == ["admin"]


def test_the_submitter_never_approves_their_own_unless_allowed(world: World) -> None:
    boss = world.actor("boss")
    contract = world.records.create("contract", {"name": "Boss's", "total": "10"}, actor=boss)
    state = world.flows.submit("contract", contract.id, actor=boss)
    steps = {v.name: v.approvers for v in (*state.path, *state.next_steps)}
    assert steps["manager_review"] == ("admin",)  # boss has no manager
    assert steps["director_review"] == ("admin",)  # boss removed: the admins instead
    memo = world.new("memo")
    state = world.flows.submit("memo", memo.id, actor=world.actor("li.lei"), flow="memo_noself")
    assert [t.approver for t in state.open_tasks] == ["admin"]
    allowed = world.new("memo")
    li = world.actor("li.lei")
    state = world.flows.submit("memo", allowed.id, actor=li, flow="memo_self")
    assert state.my_tasks and state.my_tasks[0].approver == "li.lei"
    state = world.flows.approve(state.my_tasks[0].id, actor=li)
    assert state.state == "approved"


# --------------------------------------------------------------------------- deciding


def test_the_whole_contract_flow_to_approved(world: World) -> None:
    contract = _submitted_contract(world)
    wang = world.actor("wang.fang")
    task = world.open_task("contract", contract.id, "wang.fang")
    with pytest.raises(RecordInvalid) as info:
        world.flows.approve(task, actor=wang, values={"total": "1"})  # not editable here
    assert info.value.errors["total"][0].get("en") == "this field cannot be changed at this step"
    state = world.flows.approve(task, actor=wang, comment="ok", values={"payment_terms": "30d"})
    assert state.current_step == "finance_review"
    assert world.records.get("contract", contract.id).values["payment_terms"] == "30d"
    assert {t.approver for t in state.open_tasks} == {"fin1", "fin2"}
    assert world.flows.inbox_count(world.actor("fin1")) == 1
    world.flows.approve(world.open_task("contract", contract.id, "fin1"), actor=world.actor("fin1"))
    state = world.flows.state("contract", contract.id, actor=wang)
    assert state.current_step == "finance_review"  # 会签: fin2 must approve too
    fin2_task = world.open_task("contract", contract.id, "fin2")
    with pytest.raises(RecordInvalid) as info:  # validate: the scan must be there
        world.flows.approve(fin2_task, actor=world.actor("fin2"))
    assert info.value.errors["_record"][0].get("en") == "Upload the scan"
    assert world.flows.task(fin2_task).state == "open"  # nothing of the refused approval kept
    state = world.flows.approve(fin2_task, actor=world.actor("fin2"), values={"scan": "s.pdf"})
    assert state.current_step == "director_review"
    world.seen.clear()
    state = world.flows.approve(
        world.open_task("contract", contract.id, "boss"), actor=world.actor("boss")
    )
    assert state.state == "approved" and state.current_step is None
    record = world.records.get("contract", contract.id)
    assert record.values["status"] == "approved"
    assert record.values["note"] == "director ok"
    assert record.values["signed_on"] == date(2024, 6, 3)
    [approved] = [e for e in world.seen if e.kind == "approved"]
    assert approved.details["notify"] == ["li.lei"]
    assert approved.details["cc"] == ["boss"]
    assert approved.step == "director_review" and approved.actor.name == "boss"
    assert [(v.name, v.state) for v in state.path] == [
        ("manager_review", "approved"),
        ("finance_review", "approved"),
        ("director_review", "approved"),
    ]
    assert [(e.action, e.who) for e in state.trail] == [
        ("submit", "li.lei"),
        ("approve", "wang.fang"),
        ("approve", "fin1"),
        ("approve", "fin2"),
        ("approve", "boss"),
    ]
    assert state.trail[1].comment == "ok"
    world.records.update(  # unlocked again
        "contract",
        contract.id,
        {"note": "after"},
        version=record.version,
        actor=world.actor("li.lei"),
        via="form",
    )
    with pytest.raises(TransitionNotAllowed, match="already approved"):
        world.flows.submit("contract", contract.id, actor=world.actor("li.lei"))


def test_any_mode_the_first_approval_decides(world: World) -> None:
    deal = world.new("deal")
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    c1, c2 = world.open_task("deal", deal.id, "c1"), world.open_task("deal", deal.id, "c2")
    world.flows.approve(c1, actor=world.actor("c1"))
    with pytest.raises(AlreadyDecided) as info:
        world.flows.approve(c2, actor=world.actor("c2"))
    assert info.value.message("en") == "already decided by c1 at 2024-06-03T01:00:00+00:00"
    assert info.value.details["by"] == "c1" and info.value.http_status == 409
    assert world.flows.task(c2).state == "cancelled"
    assert world.status("deal", deal.id) == "approved"


def test_bad_input_on_tasks(world: World) -> None:
    deal = world.new("deal")
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    task = world.open_task("deal", deal.id, "c1")
    with pytest.raises(PermissionDenied, match="belongs to c1"):
        world.flows.approve(task, actor=world.actor("wang.fang"))
    with pytest.raises(PermissionDenied):
        world.flows.reject(task, actor=world.actor("li.lei"), comment="mine")
    for forged in (999_999, -1, "abc", None):
        with pytest.raises(NotFound, match="no approval task"):
            world.flows.approve(forged, actor=world.actor("c1"))  # type: ignore[arg-type]
    world.flows.approve(task, actor=world.actor("c1"))
    with pytest.raises(AlreadyDecided, match="you already approved this"):
        world.flows.approve(task, actor=world.actor("c1"))
    contract = _submitted_contract(world)
    waiting = world.flows.state("contract", contract.id, actor=SYSTEM).next_steps[0].tasks[0]
    with pytest.raises(TransitionNotAllowed, match="has not started"):
        world.flows.approve(waiting.id, actor=world.actor(waiting.approver or ""))


def test_a_comment_is_required_where_the_flow_says_so(world: World) -> None:
    memo = world.new("memo")
    world.flows.submit("memo", memo.id, actor=world.actor("li.lei"), flow="memo_comment")
    task = world.open_task("memo", memo.id, "c1")
    with pytest.raises(RecordInvalid) as info:
        world.flows.approve(task, actor=world.actor("c1"), comment="  ")
    assert info.value.errors["comment"][0].get("zh") == "请填写审批意见"
    world.flows.approve(task, actor=world.actor("c1"), comment="fine")


def test_rejection_returns_to_the_submitter_who_resubmits(world: World) -> None:
    contract = _submitted_contract(world)
    wang = world.actor("wang.fang")
    task = world.open_task("contract", contract.id, "wang.fang")
    with pytest.raises(RecordInvalid):
        world.flows.reject(task, actor=wang, comment="")
    world.seen.clear()
    state = world.flows.reject(task, actor=wang, comment="price too low")
    assert state.state == "returned" and state.open_tasks == ()
    assert world.status("contract", contract.id) == "draft"
    [rejected] = [e for e in world.seen if e.kind == "rejected"]
    assert rejected.details["outcome"] == "returned"
    assert rejected.details["comment"] == "price too low"
    assert rejected.details["notify"] == ["li.lei", "wang.fang", "fin1", "fin2", "boss"]
    li = world.actor("li.lei")
    record = world.records.update(
        "contract", contract.id, {"total": "160000"}, version=3, actor=li, via="form"
    )
    assert "submit" in world.flows.state("contract", contract.id, actor=li).actions
    state = world.flows.submit("contract", contract.id, actor=li, comment="raised")
    assert state.round == 2 and state.state == "pending" and record.version == 4
    rounds = [(e.action, e.round) for e in state.trail]
    assert rounds == [("submit", 1), ("reject", 1), ("submit", 2)]
    assert state.trail[1].comment == "price too low"


def test_a_final_rejection_and_a_new_round(world: World) -> None:
    deal = world.new("deal")
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    state = world.flows.reject(
        world.open_task("deal", deal.id, "c2"), actor=world.actor("c2"), comment="no"
    )
    assert state.state == "rejected" and world.status("deal", deal.id) == "rejected"
    with pytest.raises(AlreadyDecided, match="already decided by c2"):
        world.flows.approve(
            world.flows.state("deal", deal.id, actor=SYSTEM).path[0].tasks[0].id,
            actor=world.actor("c1"),
        )
    state = world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    assert state.round == 2 and world.status("deal", deal.id) == "pending"


def test_all_mode_one_rejection_goes_back_to_the_named_step(world: World) -> None:
    contract = _submitted_contract(world)
    world.flows.approve(
        world.open_task("contract", contract.id, "wang.fang"), actor=world.actor("wang.fang")
    )
    world.flows.approve(world.open_task("contract", contract.id, "fin1"), actor=world.actor("fin1"))
    world.seen.clear()
    state = world.flows.reject(
        world.open_task("contract", contract.id, "fin2"), actor=world.actor("fin2"), comment="no"
    )
    assert state.state == "pending" and state.current_step == "manager_review"
    assert [t.approver for t in state.open_tasks] == ["wang.fang"]
    views = {v.name: v for v in (*state.path, *state.next_steps)}
    assert views["manager_review"].visit == 2
    assert views["finance_review"].state == "waiting" and views["finance_review"].visit == 2
    assert world.kinds("returned", "step_entered") == [
        ("returned", "finance_review"),
        ("step_entered", "manager_review"),
    ]
    assert world.status("contract", contract.id) == "pending"
    world.flows.approve(
        world.open_task("contract", contract.id, "wang.fang"), actor=world.actor("wang.fang")
    )
    state = world.flows.state("contract", contract.id, actor=SYSTEM)
    assert {t.approver for t in state.open_tasks} == {"fin1", "fin2"}  # asked again


def test_return_to_an_earlier_step_or_the_submitter(world: World) -> None:
    contract = _submitted_contract(world)
    world.flows.approve(
        world.open_task("contract", contract.id, "wang.fang"), actor=world.actor("wang.fang")
    )
    fin1 = world.actor("fin1")
    task = world.open_task("contract", contract.id, "fin1")
    assert world.flows.state("contract", contract.id, actor=fin1).return_targets == (
        "submitter",
        "manager_review",
    )
    with pytest.raises(TransitionNotAllowed, match="earlier step"):
        world.flows.return_to(task, "director_review", actor=fin1, comment="x")
    with pytest.raises(RecordInvalid):  # the flow requires a comment on rejections
        world.flows.return_to(task, "manager_review", actor=fin1, comment=None)
    state = world.flows.return_to(task, "manager_review", actor=fin1, comment="terms?")
    assert state.current_step == "manager_review"
    assert world.flows.task(task).state == "rejected"
    task = world.open_task("contract", contract.id, "wang.fang")
    state = world.flows.return_to(task, "submitter", actor=world.actor("wang.fang"), comment="redo")
    assert state.state == "returned" and world.status("contract", contract.id) == "draft"
    assert [e.action for e in state.trail] == ["submit", "approve", "return", "return"]


def test_transfer_hands_the_task_over(world: World) -> None:
    contract = _submitted_contract(world)
    wang = world.actor("wang.fang")
    task = world.open_task("contract", contract.id, "wang.fang")
    for bad in ("retired", "nobody", "wang.fang", "li.lei"):
        with pytest.raises(RecordInvalid):
            world.flows.transfer(task, bad, actor=wang)
    world.seen.clear()
    state = world.flows.transfer(task, "boss", actor=wang, comment="on leave")
    assert [t.approver for t in state.open_tasks] == ["boss"]
    assert world.kinds("assigned") == [("assigned", "manager_review")]
    assert world.seen[-1].details["reason"] == "transferred"
    with pytest.raises(TransitionNotAllowed, match="transferred this to boss"):
        world.flows.approve(task, actor=wang)
    assert world.flows.inbox_count(wang) == 0
    assert [i.added_by for i in world.flows.inbox(world.actor("boss"))] == ["wang.fang"]
    state = world.flows.approve(
        world.open_task("contract", contract.id, "boss"), actor=world.actor("boss")
    )
    assert state.current_step == "finance_review"
    actions = [(e.action, e.who, e.details.get("to")) for e in state.trail]
    assert actions[1:] == [("transfer", "wang.fang", "boss"), ("approve", "boss", None)]


def test_an_added_approver_must_also_approve_in_all_mode(world: World) -> None:
    contract = _submitted_contract(world)
    world.flows.approve(
        world.open_task("contract", contract.id, "wang.fang"), actor=world.actor("wang.fang")
    )
    fin1 = world.actor("fin1")
    task = world.open_task("contract", contract.id, "fin1")
    with pytest.raises(RecordInvalid, match="already asked"):
        world.flows.add_approver(task, "fin2", actor=fin1)
    state = world.flows.add_approver(task, "c1", actor=fin1, comment="legal view")
    assert {t.approver for t in state.open_tasks} == {"fin1", "fin2", "c1"}
    world.flows.approve(task, actor=fin1, values={"scan": "s.pdf"})
    world.flows.approve(world.open_task("contract", contract.id, "fin2"), actor=world.actor("fin2"))
    state = world.flows.state("contract", contract.id, actor=SYSTEM)
    assert state.current_step == "finance_review"  # c1 still has to approve
    state = world.flows.approve(
        world.open_task("contract", contract.id, "c1"), actor=world.actor("c1")
    )
    assert state.current_step == "director_review"


def test_an_added_approver_can_decide_an_any_step(world: World) -> None:
    deal = world.new("deal")
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    task = world.open_task("deal", deal.id, "c1")
    world.flows.add_approver(task, "fin1", actor=world.actor("c1"))
    state = world.flows.approve(world.open_task("deal", deal.id, "fin1"), actor=world.actor("fin1"))
    assert state.state == "approved"
    assert world.flows.task(task).state == "cancelled"


def test_recall_before_the_first_decision_only(world: World) -> None:
    contract = _submitted_contract(world)
    li = world.actor("li.lei")
    task = world.open_task("contract", contract.id, "wang.fang")
    with pytest.raises(PermissionDenied, match="only the submitter"):
        world.flows.recall("contract", contract.id, actor=world.actor("wang.fang"))
    world.seen.clear()
    state = world.flows.recall("contract", contract.id, actor=li)
    assert state.state == "recalled" and world.status("contract", contract.id) == "draft"
    assert world.kinds("recalled") == [("recalled", "manager_review")]
    with pytest.raises(TransitionNotAllowed, match=r"recalled by li\.lei"):
        world.flows.approve(task, actor=world.actor("wang.fang"))
    assert world.jobs.jobs(state="pending") == []  # its reminder and timeout are gone
    with pytest.raises(TransitionNotAllowed, match="no pending"):
        world.flows.recall("contract", contract.id, actor=li)
    state = world.flows.submit("contract", contract.id, actor=li)
    world.flows.approve(
        world.open_task("contract", contract.id, "wang.fang"), actor=world.actor("wang.fang")
    )
    with pytest.raises(TransitionNotAllowed, match=r"wang\.fang already decided"):
        world.flows.recall("contract", contract.id, actor=li)


# --------------------------------------------------------------------------- reading


def test_inbox_lists_what_waits_for_me(world: World) -> None:
    first = _submitted_contract(world)
    second = world.new("contract", owner="zhao.qiang", total="10")
    world.flows.submit("contract", second.id, actor=world.actor("zhao.qiang"))
    wang = world.actor("wang.fang")
    items = world.flows.inbox(wang)
    assert [(i.record_id, i.step, i.title) for i in items] == [
        (first.id, "manager_review", "contract of li.lei"),
        (second.id, "manager_review", "contract of zhao.qiang"),
    ]
    assert items[0].step_label.get("zh") == "经理审批"
    assert items[0].flow_label.get("en") == "Contract approval"
    assert world.flows.inbox_count(wang) == 2
    assert [i.record_id for i in world.flows.inbox(wang, limit=1, offset=1)] == [second.id]
    assert world.flows.inbox_count(world.actor("fin1")) == 0
    for item in items:  # bulk approve from the inbox
        world.flows.approve(item.task_id, actor=wang)
    assert world.flows.inbox_count(wang) == 0
    assert world.flows.inbox_count(world.actor("fin1")) == 1  # the 10 one skips finance


def test_state_shows_actions_for_each_actor(world: World) -> None:
    contract = _submitted_contract(world)
    assert world.flows.state("contract", contract.id, actor=world.actor("wang.fang")).actions == (
        "approve",
        "reject",
        "return_to",
        "transfer",
        "add_approver",
    )
    assert world.flows.state("contract", contract.id, actor=world.actor("fin1")).actions == ()
    with pytest.raises(NotFound):  # neither reader, submitter nor approver
        world.flows.state("contract", contract.id, actor=world.actor("zhao.qiang"))
    draft = world.new("contract", total="1")
    state = world.flows.state("contract", draft.id, actor=world.actor("li.lei"))
    assert state.state == "draft" and state.actions == ("submit",) and state.path == ()
    assert [v.name for v in state.next_steps] == [
        "manager_review",
        "finance_review",
        "director_review",
    ]
    trail = world.flows.trail("contract", contract.id)
    assert [e.action for e in trail] == ["submit"]


# --------------------------------------------------------------------------- timers


def test_a_reminder_comes_due_and_a_decision_cancels_the_rest(world: World) -> None:
    contract = _submitted_contract(world)
    world.clock.advance(timedelta(hours=23))
    assert world.jobs.run_due("w") == 0
    world.clock.advance(timedelta(hours=1))
    assert world.jobs.run_due("w") == 1
    [reminder] = [e for e in world.seen if e.kind == "reminder"]
    assert reminder.details["approver"] == "wang.fang" and reminder.step == "manager_review"
    world.flows.approve(
        world.open_task("contract", contract.id, "wang.fang"), actor=world.actor("wang.fang")
    )
    kinds = {(j.kind, j.state) for j in world.jobs.jobs()}
    assert (REMIND_JOB, "done") in kinds and (TIMEOUT_JOB, "cancelled") in kinds
    world.clock.advance(timedelta(days=10))
    world.jobs.run_due("w")  # the finance tasks' timers: none configured
    assert [e.kind for e in world.seen].count("reminder") == 1


def test_a_timeout_escalates_to_the_approvers_manager(world: World) -> None:
    contract = _submitted_contract(world)
    world.clock.advance(timedelta(days=3))
    world.seen.clear()
    assert world.jobs.run_due("w") == 2  # the reminder and the timeout
    state = world.flows.state("contract", contract.id, actor=SYSTEM)
    assert {(t.approver, t.origin) for t in state.open_tasks} == {
        ("wang.fang", "resolved"),
        ("boss", "escalated"),
    }
    assert world.kinds("assigned") == [("assigned", "manager_review")]
    assert state.trail[-1].action == "escalate" and state.trail[-1].who is None
    state = world.flows.approve(
        world.open_task("contract", contract.id, "boss"), actor=world.actor("boss")
    )
    assert state.current_step == "finance_review"
    world.clock.advance(timedelta(days=3))
    world.jobs.run_due("w")  # boss's own timeout was cancelled with the decision
    assert _audits(world, "escalate") == 1


def test_timeouts_approve_reject_and_return(world: World) -> None:
    li = world.actor("li.lei")
    approve = world.new("ticket", route="approve")
    reject = world.new("ticket", route="reject")
    back = world.new("ticket", route="return")
    for ticket in (approve, reject, back):
        world.flows.submit("ticket", ticket.id, actor=li)
    world.clock.advance(timedelta(days=1))
    assert world.jobs.run_due("w") == 3
    assert world.status("ticket", approve.id) == "approved"
    assert world.status("ticket", reject.id) == "rejected"
    assert world.status("ticket", back.id) == "draft"
    trail = world.flows.trail("ticket", approve.id)
    assert (trail[-1].action, trail[-1].who, trail[-1].details["timeout"]) == (
        "approve",
        None,
        True,
    )
    assert world.flows.state("ticket", back.id, actor=li).state == "returned"


def test_an_escalation_in_all_mode_covers_its_place(world: World) -> None:
    ticket = world.new("ticket", route="escalate", reviewer="wang.fang")
    world.flows.submit("ticket", ticket.id, actor=world.actor("li.lei"))
    world.clock.advance(timedelta(days=1))
    world.jobs.run_due("w")
    world.flows.approve(world.open_task("ticket", ticket.id, "boss"), actor=world.actor("boss"))
    assert world.status("ticket", ticket.id) == "approved"


def test_a_timeout_job_run_twice_escalates_once(world: World) -> None:
    """A worker killed mid-run: its job is re-claimed after the lease, with no double effect."""
    contract = _submitted_contract(world)
    world.clock.advance(timedelta(days=3))
    claimed = world.jobs.claim("killed", lease=timedelta(minutes=1))
    timeout = next(j for j in claimed if j.kind == TIMEOUT_JOB)
    world.clock.advance(timedelta(minutes=2))
    assert world.jobs.run_due("w2") == 2
    assert not world.jobs.run(timeout, "killed")
    state = world.flows.state("contract", contract.id, actor=SYSTEM)
    assert sorted(t.approver or "" for t in state.open_tasks) == ["boss", "wang.fang"]
    assert _audits(world, "escalate") == 1


# --------------------------------------------------------------------------- transactions


def test_a_failing_listener_undoes_the_whole_action(world: World) -> None:
    deal = world.new("deal")
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    task = world.open_task("deal", deal.id, "c1")

    def refuse(event: Event) -> None:
        if event.kind == "approved":
            raise RuntimeError("webhook outbox full")

    world.bus.subscribe(refuse)
    with pytest.raises(RuntimeError):
        world.flows.approve(task, actor=world.actor("c1"))
    assert world.flows.task(task).state == "open"
    assert world.status("deal", deal.id) == "pending"
    assert _audits(world, "approve") == 0
    world.bus.unsubscribe(refuse)
    world.flows.approve(task, actor=world.actor("c1"))
    assert world.status("deal", deal.id) == "approved"


def test_concurrent_pairs_of_approvers_make_one_decision_each(world: World) -> None:
    """100 records, two checkers approving each at the same instant (或签)."""
    pairs = 100
    li = world.actor("li.lei")
    deals = [world.new("deal", name=f"d{i}") for i in range(pairs)]
    tasks = []
    for deal in deals:
        state = world.flows.submit("deal", deal.id, actor=li)
        by = {t.approver: t.id for t in state.open_tasks}
        tasks.append((by["c1"], by["c2"]))
    c1, c2 = world.actor("c1"), world.actor("c2")
    outcomes: list[tuple[int, str, str]] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        barrier = threading.Barrier(2)

        def one(task_id: int, actor: Actor) -> None:
            barrier.wait()
            try:
                world.flows.approve(task_id, actor=actor)
                result = "approved"
            except AlreadyDecided:
                result = "already"
            with lock:
                outcomes.append((index, actor.name or "", result))

        threads = [
            threading.Thread(target=one, args=(tasks[index][0], c1)),
            threading.Thread(target=one, args=(tasks[index][1], c2)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(race, range(pairs)))
    assert len(outcomes) == 2 * pairs
    for index in range(pairs):
        results = sorted(r for i, _, r in outcomes if i == index)
        assert results == ["already", "approved"], (index, results)
    assert _audits(world, "approve") == pairs
    t = world.schema.metadata.tables[FLOW_TASKS_TABLE]
    assert _count(world, t, t.c.state == "approved") == pairs
    assert _count(world, t, t.c.state == "cancelled") == pairs
    assert {world.status("deal", d.id) for d in deals} == {"approved"}


def test_deleting_a_pending_record_ends_its_run(world: World) -> None:
    deal = world.new("deal")  # deal_approval does not lock the record
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    assert world.flows.inbox_count(world.actor("c1")) == 1
    world.records.delete("deal", deal.id, actor=SYSTEM, via="system")
    assert world.flows.inbox_count(world.actor("c1")) == 0
    runs = world.schema.metadata.tables[FLOW_RUNS_TABLE]
    assert _count(world, runs, runs.c.state == "recalled") == 1
    assert world.jobs.jobs(state="pending") == []


def test_the_flow_audit_row_carries_the_records_new_version(world: World) -> None:
    deal = world.new("deal")
    world.flows.submit("deal", deal.id, actor=world.actor("li.lei"))
    world.flows.approve(world.open_task("deal", deal.id, "c1"), actor=world.actor("c1"))
    history = world.records.history("deal", deal.id)
    assert [(h.action, h.via, h.version) for h in history] == [
        ("create", "form", 1),
        ("update", "flow", 2),
        ("submit", "flow", 2),
        ("update", "flow", 3),
        ("approve", "flow", 3),
    ]


def test_docs_cover_every_action_and_event() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs"
    text = (docs / "flows.md").read_text(encoding="utf-8")
    public = [n for n in vars(FlowService) if not n.startswith("_") and n != "register_jobs"]
    for name in [*public, *FLOW_EVENT_KINDS, *AUDIT_ACTIONS, REMIND_JOB, TIMEOUT_JOB]:
        assert f"`{name}" in text or f" {name}" in text, f"{name} is not in docs/flows.md"
    assert "(flows.md)" in (docs / "architecture.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the CRM template


CRM = Path(__file__).resolve().parent.parent / "blueprints" / "crm"


def test_the_crm_contract_approval_end_to_end(db_url: str, tmp_path: Path) -> None:
    """The issue's scenario on the real template: a rep's ¥150,000 contract goes through the
    manager and both finance approvers (会签); another is rejected back to the rep."""
    bp = load(CRM)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    try:
        initialise(engine, bp, schema)
        clock = Clock()
        users = UserService(bp, schema, engine, clock=clock)
        users.add("admin", roles=["admin"])
        users.add("wang.fang", roles=["sales_manager"])
        users.add("li.lei", roles=["sales_rep"], manager="wang.fang")
        users.add("fin.a", roles=["finance"])
        users.add("fin.b", roles=["finance"])
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(seen.append)
        records = RecordService(
            bp, schema, engine, clock=clock, access=Permissions(bp, users), events=bus
        )
        jobs = JobQueue(engine, schema, clock)
        flows = FlowService(bp, schema, engine, records, users, clock=clock, events=bus, jobs=jobs)
        rep = users.get("li.lei").actor
        customer = records.create(
            "customer", {"name": "ACME", "email": "a@acme.example"}, actor=rep, via="form"
        )
        # The finance step validates not ISBLANK(scan): the rep uploads the signed copy
        # (a file key is taken only from the user who uploaded it).
        uploads = UploadService(bp, schema, engine, tmp_path / "uploads")
        scan = uploads.store("contract", "scan", "contract.pdf", io.BytesIO(b"%PDF-1.4"), actor=rep)
        base = {
            "subject": "设备采购",
            "customer": customer.id,
            "start_date": "2024-06-01",
            "end_date": "2025-05-31",
            "scan": scan.key,
        }
        big = records.create("contract", {**base, "total": "150000"}, actor=rep, via="form")
        flows.submit("contract", big.id, actor=rep)

        def act(who: str, record: Record) -> int:
            [task] = flows.state("contract", record.id, actor=users.get(who).actor).my_tasks
            return task.id

        flows.approve(act("wang.fang", big), actor=users.get("wang.fang").actor)
        flows.approve(act("fin.a", big), actor=users.get("fin.a").actor)
        assert flows.state("contract", big.id, actor=rep).state == "pending"
        flows.approve(act("fin.b", big), actor=users.get("fin.b").actor)
        state = flows.state("contract", big.id, actor=rep)
        assert state.state == "approved"
        record = records.get("contract", big.id, actor=rep)
        assert record.values["status"] == "approved"
        assert record.values["signed_on"] == date(2024, 6, 3)
        assert [e.who for e in state.trail] == ["li.lei", "wang.fang", "fin.a", "fin.b"]
        assert next(e for e in seen if e.kind == "approved").details["notify"] == ["li.lei"]

        small = records.create("contract", {**base, "total": "8000"}, actor=rep, via="form")
        state = flows.submit("contract", small.id, actor=rep)
        assert [v.state for v in state.path] == ["open", "skipped"]  # finance only ≥ 100,000
        manager = users.get("wang.fang").actor
        with pytest.raises(RecordInvalid):
            flows.reject(act("wang.fang", small), actor=manager, comment=None)
        flows.reject(act("wang.fang", small), actor=manager, comment="价格太低 / price too low")
        state = flows.state("contract", small.id, actor=rep)
        assert state.state == "returned" and "submit" in state.actions
        assert state.trail[-1].comment == "价格太低 / price too low"
        assert records.get("contract", small.id).values["status"] == "draft"
        records.update(  # the rep may edit a returned contract again
            "contract", small.id, {"total": "9000"}, version=3, actor=rep, via="form"
        )
    finally:
        engine.dispose()


def test_a_run_whose_every_step_is_skipped_is_approved_at_once(world: World) -> None:
    ticket = world.new("ticket", route="nowhere")
    state = world.flows.submit("ticket", ticket.id, actor=world.actor("li.lei"))
    assert state.state == "approved" and {v.state for v in state.path} == {"skipped"}
    assert world.status("ticket", ticket.id) == "approved"
    assert world.kinds("submitted", "approved") == [("submitted", None), ("approved", None)]
