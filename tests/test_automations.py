"""Automations (engine.automations) on SQLite and PostgreSQL, with an injected clock.

Triggers on create, update (ISCHANGED), flow events and dates; actions set,
create, notify and webhook; the outbox (nothing queued for a rolled-back
change); failures that do not undo the user's change; the loop guard; and the
checks ``formflow check`` makes on automations. Time never passes by sleeping:
the tests move the clock and run due jobs by hand.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.automations import DATE_JOB, MAX_DEPTH, SWEEP_JOB
from engine.errors import BlueprintError
from engine.events import Event
from engine.loader import diagnose, load
from engine.mail import MAIL_JOB
from engine.notifications import Notification
from engine.records import Actor, Record
from engine.runtime import Runtime, build_runtime
from engine.settings import MailSettings, Settings
from engine.storage.database import create_engine, writer
from engine.storage.migrate import initialise
from engine.storage.schema import FLOW_RUNS_TABLE
from engine.uploads import UploadService
from engine.webhooks import WEBHOOK_JOB

T0 = datetime(2024, 6, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, a Monday

BLUEPRINT = """
formflow: 1
id: autos
title: Autos
roles:
  rep: Rep
  manager: Manager
  finance: Finance
entities:
  deal:
    label: Deal
    title_field: name
    fields:
      name: {type: text, label: Name, required: true}
      amount: {type: money, label: Amount}
      stage:
        type: choice
        label: Stage
        default: lead
        options:
          - {value: lead, label: {zh: 线索, en: Lead}}
          - {value: won, label: {zh: 赢单, en: Won}}
          - {value: lost, label: {zh: 输单, en: Lost}}
      won_on: {type: date, label: Won on}
      close_date: {type: date, label: Close date}
      status:
        type: choice
        label: Status
        default: draft
        options: [draft, pending, approved, rejected]
      note: {type: text, label: Note, max_length: 20}
      customer: {type: ref, label: Customer, to: customer}
    access:
      rep: {create: true, read: own, update: own, delete: own}
      manager: {create: true, read: team, update: team, delete: team}
  customer:
    label: Customer
    title_field: name
    fields:
      name: {type: text, label: Name, required: true}
    access:
      rep: {create: true, read: all}
  ticket:
    label: Ticket
    title_field: subject
    fields:
      subject: {type: text, label: Subject, required: true}
      deal: {type: ref, label: Deal, to: deal, on_delete: cascade}
flows:
  deal_approval:
    entity: deal
    status_field: status
    steps:
      check:
        approvers: {role: finance}
        remind_after: 24h
automations:
  stamp_won:
    entity: deal
    on: update
    when: "ISCHANGED(stage) and stage == 'won'"
    actions:
      - set: {won_on: "=TODAY()"}
      - notify:
          to: [owner, {manager_of: owner}]
          message:
            zh: "商机 {name} 已赢单（{stage}，客户 {customer}）"
            en: "Deal {name} won ({stage}, {customer})"
  open_ticket:
    entity: deal
    on: create
    when: "amount >= 100000"
    actions:
      - create: {entity: ticket, values: {subject: "=CONCAT('Review ', name)", deal: "=id"}}
  approved_hook:
    entity: deal
    on: approved
    flow: deal_approval
    actions:
      - notify: {to: [finance, submitter], message: "{name} approved"}
      - webhook: {url: "https://hooks.example.com/deal", secret_env: DEAL_HOOK_SECRET}
  too_long_note:
    entity: deal
    on: update
    when: "ISCHANGED(amount) and amount > 500"
    actions:
      - set: {note: "=CONCAT('this note is far too long for the field: ', name)"}
  close_reminder:
    entity: deal
    on: date
    date_field: close_date
    offset: -3d
    when: "stage != 'won'"
    actions:
      - notify:
          to: [owner]
          message: {zh: "商机 {name} 三天后到期", en: "{name} closes in 3 days"}
"""

LOOP = """
formflow: 1
id: loop
title: Loop
entities:
  counter:
    label: Counter
    fields:
      name: {type: text, label: Name}
      n: {type: integer, label: N, default: 0}
automations:
  bump:
    entity: counter
    on: update
    actions:
      - set: {n: "=n + 1"}
"""


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class World:
    rt: Runtime
    clock: Clock
    rep: Actor
    manager: Actor

    def run_jobs(self) -> int:
        total = 0
        while True:
            claimed = self.rt.jobs.run_due("test-worker")
            total += claimed
            if not claimed:
                return total

    def inbox(self, user: str) -> list[Notification]:
        return self.rt.notifications.list(user)

    def titles(self, user: str, lang: str = "en") -> list[str]:
        return [n.title.get(lang) for n in self.inbox(user)]

    def count(self, entity: str) -> int:
        table = self.rt.schema.entity(entity).table
        with self.rt.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _runtime(
    tmp_path: Path, db_url: str, text: str, clock: Clock, settings: Settings | None = None
) -> Runtime:
    path = tmp_path / "blueprint.yaml"
    path.write_text(text, encoding="utf-8")
    bp = load(path)
    engine = create_engine(db_url)
    rt = build_runtime(bp, engine, clock=clock, settings=settings or Settings())
    initialise(engine, bp, rt.schema)
    return rt


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    clock = Clock()
    rt = _runtime(tmp_path, db_url, BLUEPRINT, clock)
    rt.users.add("boss", roles=["manager"])
    rt.users.add("li.lei", roles=["rep"], manager="boss", display_name="李雷")
    rt.users.add("sun.li", roles=["finance"])
    rt.users.add("admin", roles=["admin"])
    yield World(rt, clock, rt.users.get("li.lei").actor, rt.users.get("boss").actor)
    rt.engine.dispose()


def _deal(world: World, **values: Any) -> Record:
    data = {"name": "Pumps", "amount": "1000", **values}
    return world.rt.records.create("deal", data, actor=world.rep, via="form")


# --------------------------------------------------------------------------- record triggers


def test_update_with_ischanged_sets_a_field_and_notifies(world: World) -> None:
    customer = world.rt.records.create("customer", {"name": "ACME"})
    deal = _deal(world, customer=customer.id)
    world.rt.records.update("deal", deal.id, {"note": "x"}, version=1, actor=world.rep)
    assert world.rt.records.get("deal", deal.id).values["won_on"] is None  # stage unchanged
    world.rt.records.update("deal", deal.id, {"stage": "won"}, version=2, actor=world.rep)
    after = world.rt.records.get("deal", deal.id)
    assert after.values["won_on"] == date(2024, 6, 3)  # TODAY() in Shanghai, from the clock
    assert after.version == 4  # the user's change, then the automation's
    assert after.updated_by is None  # the automation acts as the engine
    history = world.rt.records.history("deal", deal.id)
    assert [(h.action, h.via, h.user) for h in history] == [
        ("create", "form", "li.lei"),
        ("update", "api", "li.lei"),
        ("update", "api", "li.lei"),
        ("update", "automation", None),
    ]
    assert history[-1].changes == {"won_on": [None, "2024-06-03"]}
    # owner and the owner's manager, with the choice label, the person and the customer's title
    assert world.titles("li.lei") == ["Deal Pumps won (Won, ACME)"]
    assert world.titles("boss", "zh") == ["商机 Pumps 已赢单（赢单，客户 ACME）"]
    [note] = world.inbox("boss")
    assert note.kind == "automation" and note.link == f"/e/deal/{deal.id}" and not note.read
    # changing something else later does not trigger it again
    world.rt.records.update("deal", deal.id, {"note": "later"}, version=4, actor=world.rep)
    assert len(world.inbox("li.lei")) == 1


def test_create_trigger_creates_a_record_in_another_entity(world: World) -> None:
    small = _deal(world, amount="10")
    big = _deal(world, name="Turbines", amount="150000")
    assert world.count("ticket") == 1
    [row] = world.rt.records.list_records("ticket").rows
    assert row["subject"] == "Review Turbines"
    assert row["deal"] == big.id
    assert row["owner"] == "li.lei"  # the triggering record's owner
    assert small.id != big.id


def test_a_rolled_back_change_leaves_no_automation_effect(world: World) -> None:
    engine = world.rt.engine
    with pytest.raises(RuntimeError), writer(engine).begin() as conn:
        world.rt.records.create(
            "deal",
            {"name": "Ghost", "amount": "200000", "close_date": "2024-07-01"},
            actor=world.rep,
            conn=conn,
        )
        assert world.rt.jobs.jobs(kind=DATE_JOB, conn=conn)  # scheduled inside
        raise RuntimeError("the caller gives up")
    assert world.count("deal") == 0 and world.count("ticket") == 0
    assert world.rt.jobs.jobs(kind=DATE_JOB) == []


def test_a_failing_automation_is_undone_alone_and_told_to_admins(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    deal = _deal(world)
    with caplog.at_level(logging.ERROR, logger="engine.automations"):
        world.rt.records.update("deal", deal.id, {"amount": "600"}, version=1, actor=world.rep)
    after = world.rt.records.get("deal", deal.id)
    assert str(after.values["amount"]) == "600.00"  # the user's change committed
    assert after.values["note"] is None  # the automation's set was refused and undone
    assert "too_long_note failed" in caplog.text
    [problem] = world.inbox("admin")
    assert problem.kind == "automation_error"
    assert "too_long_note" in problem.title.get("en") and "note" in problem.title.get("en")


# --------------------------------------------------------------------------- flow events


def _flow_event(world: World, kind: str, record: Record, conn: Any, **details: Any) -> Event:
    who = details.pop("actor", "sun.li")
    return Event(
        kind=kind,
        entity="deal",
        record_id=record.id,
        actor=world.rt.users.get(who).actor,
        conn=conn,
        record=record,
        prior=None,
        changes={},
        flow=details.pop("flow", "deal_approval"),
        step="check",
        via="flow",
        details=details,
    )


def _submitted_run(world: World, conn: Any, record: Record) -> int:
    runs = world.rt.schema.metadata.tables[FLOW_RUNS_TABLE]
    result = conn.execute(
        runs.insert().values(
            flow="deal_approval",
            entity="deal",
            record_id=record.id,
            round=1,
            state="approved",
            submitted_by="li.lei",
            submitted_at=world.clock(),
            version=1,
        )
    )
    return int(result.inserted_primary_key[0])


def test_flow_event_triggers_notify_submitter_and_queue_a_signed_webhook(world: World) -> None:
    deal = _deal(world)
    with writer(world.rt.engine).begin() as conn:
        run_id = _submitted_run(world, conn, deal)
        world.rt.events.emit(_flow_event(world, "approved", deal, conn, run_id=run_id, by="sun.li"))
        # another flow's event does not trigger it
        world.rt.events.emit(_flow_event(world, "approved", deal, conn, flow="other"))
    assert "Pumps approved" in world.titles("li.lei")  # the submitter
    assert "Pumps approved" in world.titles("sun.li")  # the finance role
    [hook] = world.rt.jobs.jobs(kind=WEBHOOK_JOB)
    assert hook.payload["url"] == "https://hooks.example.com/deal"
    assert hook.payload["secret_env"] == "DEAL_HOOK_SECRET"
    body = hook.payload["body"]
    assert body["event"] == "approved" and body["automation"] == "approved_hook"
    assert body["record"]["name"] == "Pumps" and body["record"]["amount"] == "1000.00"
    assert body["record_id"] == deal.id and body["delivery"]


def test_flow_notices_tell_approvers_and_the_submitter(world: World) -> None:
    deal = _deal(world)
    with writer(world.rt.engine).begin() as conn:
        run_id = _submitted_run(world, conn, deal)
        world.rt.events.emit(
            _flow_event(
                world,
                "step_entered",
                deal,
                conn,
                run_id=run_id,
                approvers=["sun.li"],
                actor="li.lei",
            )
        )
        world.rt.events.emit(
            _flow_event(world, "reminder", deal, conn, run_id=run_id, approver="sun.li")
        )
        world.rt.events.emit(
            _flow_event(
                world,
                "rejected",
                deal,
                conn,
                run_id=run_id,
                comment="too cheap",
                outcome="rejected",
                notify=["boss"],
                cc=[],
            )
        )
    assert [n.kind for n in world.inbox("sun.li")] == ["reminder", "task"]
    assert world.inbox("sun.li")[1].title.get("zh") == "待你审批：deal_approval · Pumps"
    rejected = world.inbox("li.lei")
    assert [n.kind for n in rejected] == ["rejected"]
    assert rejected[0].body.get("en") == "Comment: too cheap"
    assert [n.kind for n in world.inbox("boss")] == ["rejected"]


def test_a_real_flow_run_tells_people_and_triggers_automations(world: World) -> None:
    """FlowService events reach the notices and the automations (no synthetic events)."""
    finance = world.rt.users.get("sun.li").actor
    deal = _deal(world)
    world.rt.flows.submit("deal", deal.id, actor=world.rep, comment="请审批")
    assert [n.kind for n in world.inbox("sun.li")] == ["task"]
    assert (
        world.inbox("sun.li")[0].title.get("en")
        == "Waiting for your approval: deal_approval · Pumps"
    )
    world.clock.advance(timedelta(hours=24))
    world.run_jobs()  # the step's reminder
    assert [n.kind for n in world.inbox("sun.li")] == ["reminder", "task"]
    [task] = world.rt.flows.inbox(finance)
    world.rt.flows.approve(task.task_id, actor=finance, comment="同意")
    mine = {n.kind: n for n in world.inbox("li.lei")}
    assert mine["approved"].title.get("zh") == "已通过：deal_approval · Pumps"
    assert mine["approved"].body.get("zh") == "意见：同意"
    assert mine["automation"].title.get("en") == "Pumps approved"  # to: [finance, submitter]
    assert "Pumps approved" in world.titles("sun.li")
    [hook] = world.rt.jobs.jobs(kind=WEBHOOK_JOB)
    assert hook.payload["body"]["event"] == "approved"
    assert hook.payload["body"]["record"]["status"] == "approved"


# --------------------------------------------------------------------------- the loop guard


def test_a_self_triggering_automation_stops_at_the_documented_depth(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    rt = _runtime(tmp_path, db_url, LOOP, clock)
    rt.users.add("admin", roles=["admin"])
    try:
        rec = rt.records.create("counter", {"name": "a"})
        with caplog.at_level(logging.ERROR, logger="engine.automations"):
            after = rt.records.update("counter", rec.id, {"name": "b"}, version=1)
        assert after.values["name"] == "b"  # the user's own write is not undone
        final = rt.records.get("counter", rec.id)
        assert final.values["n"] == MAX_DEPTH == 5  # five automated writes, then it stops
        assert final.version == 2 + MAX_DEPTH
        assert "bump stopped" in caplog.text and "limit of 5" in caplog.text
        [stop] = rt.notifications.list("admin")
        assert stop.kind == "automation_error" and "bump" in stop.title.get("en")
    finally:
        rt.engine.dispose()


# --------------------------------------------------------------------------- date triggers


def _date_jobs(world: World, state: str = "pending") -> list[Any]:
    return world.rt.jobs.jobs(kind=DATE_JOB, state=state)


def test_a_date_trigger_fires_at_its_moment_and_follows_the_record(world: World) -> None:
    deal = _deal(world, close_date="2024-06-20")
    [job] = _date_jobs(world)
    # three days before the close date, 09:00 in Shanghai
    assert job.due_at == datetime(2024, 6, 17, 1, 0, tzinfo=UTC)
    world.run_jobs()
    assert world.inbox("li.lei") == []  # not due yet
    # moving the date moves the job
    world.rt.records.update("deal", deal.id, {"close_date": "2024-06-25"}, version=1)
    [job] = _date_jobs(world)
    assert job.due_at == datetime(2024, 6, 22, 1, 0, tzinfo=UTC)
    assert len(world.rt.jobs.jobs(kind=DATE_JOB, state="cancelled")) == 1
    world.clock.now = datetime(2024, 6, 22, 1, 0, tzinfo=UTC)
    world.run_jobs()
    assert world.titles("li.lei") == ["Pumps closes in 3 days"]
    assert [j.id for j in _date_jobs(world, "done")] == [job.id]
    world.run_jobs()
    assert len(world.inbox("li.lei")) == 1  # once


def test_a_date_trigger_checks_when_at_fire_time_and_dies_with_the_record(world: World) -> None:
    won = _deal(world, name="Won", close_date="2024-06-10")
    gone = _deal(world, name="Gone", close_date="2024-06-10")
    world.rt.records.update("deal", won.id, {"stage": "won"}, version=1)
    world.rt.records.delete("deal", gone.id)
    world.clock.now = datetime(2024, 6, 8, 0, 0, tzinfo=UTC)
    world.run_jobs()
    assert [t for t in world.titles("li.lei") if "closes" in t] == []  # won: when is false
    assert [j.payload["record_id"] for j in _date_jobs(world, "cancelled")] == [gone.id]


def test_the_sweep_covers_records_written_without_events(world: World) -> None:
    # An import emits no events: these records get no date jobs when written.
    world.rt.records.create_many(
        "deal",
        [
            {"name": "Soon", "close_date": "2024-06-06", "owner": "li.lei"},  # fires 06-03 09:00
            {"name": "Later", "close_date": "2024-06-30", "owner": "li.lei"},
            {"name": "Ancient", "close_date": "2019-01-10", "owner": "li.lei"},
        ],
    )
    assert _date_jobs(world) == []
    world.rt.automations.schedule_sweep()
    world.rt.automations.schedule_sweep()  # idempotent: one sweep per period
    assert len(world.rt.jobs.jobs(kind=SWEEP_JOB)) == 1
    world.run_jobs()
    assert world.titles("li.lei") == ["Soon closes in 3 days"]
    # the sweep scheduled its successor; later sweeps reach "Later", never "Ancient"
    assert len(world.rt.jobs.jobs(kind=SWEEP_JOB, state="pending")) == 1
    for _ in range(30 * 24):
        world.clock.advance(timedelta(hours=1))
        world.run_jobs()
        if len(world.inbox("li.lei")) > 1:
            break
    assert world.titles("li.lei")[0] == "Later closes in 3 days"
    assert world.clock.now == datetime(2024, 6, 27, 1, 0, tzinfo=UTC)
    assert not any("Ancient" in t for t in world.titles("li.lei"))


# --------------------------------------------------------------------------- mail outbox


def test_notify_queues_mail_only_when_smtp_is_configured(tmp_path: Path, db_url: str) -> None:
    clock = Clock()
    mail = MailSettings(host="smtp.example.com", sender="crm@example.com")
    rt = _runtime(tmp_path, db_url, BLUEPRINT, clock, Settings(mail=mail))
    try:
        rt.users.add("li.lei", roles=["rep"], email="li@example.com")
        actor = rt.users.get("li.lei").actor
        deal = rt.records.create("deal", {"name": "P", "close_date": "2024-06-05"}, actor=actor)
        rt.records.update("deal", deal.id, {"stage": "won"}, version=1, actor=actor)
        [job] = rt.jobs.jobs(kind=MAIL_JOB)
        assert job.payload["user"] == "li.lei"
        assert job.payload["subject"]["zh"].startswith("商机 P 已赢单")
        assert job.payload["link"] == f"/e/deal/{deal.id}"
    finally:
        rt.engine.dispose()


def test_without_smtp_no_mail_job_is_queued(world: World) -> None:
    deal = _deal(world)
    world.rt.records.update("deal", deal.id, {"stage": "won"}, version=1, actor=world.rep)
    assert world.inbox("li.lei")
    assert world.rt.jobs.jobs(kind=MAIL_JOB) == []


# --------------------------------------------------------------------------- checks


def _problems(tmp_path: Path, automations: str) -> list[tuple[str, str]]:
    head = BLUEPRINT.split("automations:")[0]
    path = tmp_path / "check.yaml"
    path.write_text(head + "automations:\n" + automations, encoding="utf-8")
    report = diagnose(path)
    return [(p.severity, p.message.get("en")) for p in report.problems]


def test_checks_refuse_bad_recipients_placeholders_and_urls(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """
  a:
    entity: deal
    on: update
    actions:
      - notify: {to: [nobody, {manager_of: name}], message: "{name.__class__} {nme} {name}"}
      - webhook: {url: "http://169.254.169.254/latest/meta-data"}
  b:
    entity: deal
    on: delete
    actions:
      - set: {note: gone}
      - webhook: {url: "http://localhost:9000/hook"}
""",
    )
    messages = "\n".join(m for _, m in problems)
    assert "'nobody' is neither a role nor a user field" in messages
    assert "'name' is not a user field" in messages
    assert "the placeholder {name.__class__} must be a plain field name" in messages
    assert "unknown field 'nme'" in messages
    assert "169.254.169.254 is a link-local address" in messages
    assert "a deleted record has no fields to set" in messages
    warnings = [m for s, m in problems if s == "warning"]
    assert len(warnings) == 1 and "localhost" in warnings[0]


def test_checks_accept_good_recipients(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """
  a:
    entity: deal
    on: create
    actions:
      - notify:
          to: [owner, admin, finance, {manager_of: owner, levels: 2}, {users: [li.lei]}]
          message: "{name} {{literal}} {owner} {id}"
""",
    )
    assert problems == []


def test_the_crm_template_loads_with_its_automations() -> None:
    bp = load(Path(__file__).resolve().parent.parent / "blueprints" / "crm")
    assert {"close_date_reminder", "contract_approved"} <= set(bp.automations)


def test_a_blueprint_error_is_raised_for_bad_urls(tmp_path: Path) -> None:
    head = BLUEPRINT.split("automations:")[0]
    path = tmp_path / "bad.yaml"
    path.write_text(
        head
        + """automations:
  a:
    entity: deal
    on: create
    actions:
      - webhook: {url: "http://[::ffff:169.254.169.254]/"}
""",
        encoding="utf-8",
    )
    with pytest.raises(BlueprintError):
        load(path)


def test_every_setting_is_documented() -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    source = (root / "engine" / "settings.py").read_text(encoding="utf-8")
    docs = (root / "docs" / "automations.md").read_text(encoding="utf-8")
    names = set(re.findall(r'"(FORMFLOW_[A-Z_]+)"', source))
    assert len(names) >= 12
    assert not {n for n in names if f"`{n}`" not in docs}, "settings missing from the docs"


def test_the_crm_contract_approved_automation_runs_on_a_real_approval(
    db_url: str, tmp_path: Path
) -> None:
    """The template's ``contract_approved``: finance told, a follow-up visit created."""
    bp = load(Path(__file__).resolve().parent.parent / "blueprints" / "crm")
    engine = create_engine(db_url)
    clock = Clock()
    try:
        rt = build_runtime(bp, engine, clock=clock, settings=Settings())
        initialise(engine, bp, rt.schema)
        users = rt.users
        users.add("admin", roles=["admin"])
        users.add("wang.fang", roles=["sales_manager"])
        users.add("li.lei", roles=["sales_rep"], manager="wang.fang")
        users.add("fin.a", roles=["finance"])
        users.add("fin.b", roles=["finance"])
        rep = users.get("li.lei").actor
        customer = rt.records.create(
            "customer", {"name": "ACME", "email": "a@acme.example"}, actor=rep, via="form"
        )
        uploads = UploadService(bp, rt.schema, engine, tmp_path / "uploads")
        scan = uploads.store("contract", "scan", "contract.pdf", io.BytesIO(b"%PDF-1.4"), actor=rep)
        contract = rt.records.create(
            "contract",
            {
                "subject": "设备采购",
                "customer": customer.id,
                "start_date": "2024-06-01",
                "end_date": "2025-05-31",
                "scan": scan.key,
                "total": "150000",
            },
            actor=rep,
            via="form",
        )
        rt.flows.submit("contract", contract.id, actor=rep)
        for who in ("wang.fang", "fin.a", "fin.b"):
            actor = users.get(who).actor
            assert rt.notifications.list(who, limit=1)[0].kind == "task"
            [task] = rt.flows.state("contract", contract.id, actor=actor).my_tasks
            rt.flows.approve(task.id, actor=actor)
        number = rt.records.get("contract", contract.id).values["contract_no"]
        for who in ("fin.a", "fin.b"):
            titles = [n.title.get("zh") for n in rt.notifications.list(who)]
            assert f"合同 {number} 已通过审批，请跟进收款" in titles
        [visit] = rt.records.list_records("visit").rows
        assert visit["subject"] == f"合同签约回访 / Contract follow-up: {number}"
        assert visit["customer"] == customer.id and visit["owner"] == "li.lei"
        assert visit["next_date"] == date(2024, 7, 3)  # TODAY() + 30 on the injected clock
        assert rt.notifications.list("admin") == []  # no automation failed
    finally:
        engine.dispose()
