"""Record events (engine.events) and writes in a caller's transaction, on SQLite and PostgreSQL.

Listeners run inside the writer's transaction: what they write through
``event.conn`` commits or rolls back with the change. Every test runs on both
databases (the ``db_url`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import NotFound, PermissionDenied, RecordInvalid, RecordLocked
from engine.events import Event, EventBus
from engine.loader import load
from engine.permissions import Permissions
from engine.records import SYSTEM, Actor, RecordService
from engine.storage.database import create_engine, writer
from engine.storage.migrate import initialise
from engine.storage.schema import FLOW_RUNS_TABLE, Schema, build_schema
from engine.users import UserService

BLUEPRINT = """
formflow: 1
id: events
title: Events
roles:
  rep: Rep
entities:
  deal:
    label: Deal
    title_field: name
    fields:
      name: {type: text, label: Name, required: true, unique: true}
      amount: {type: money, label: Amount}
      status:
        type: choice
        label: Status
        default: draft
        options: [draft, pending, approved, rejected]
    access:
      rep: {create: true, read: own, update: own, delete: own}
  log:
    label: Log
    fields:
      deal: {type: ref, label: Deal, to: deal, on_delete: cascade}
      what: {type: text, label: What}
flows:
  deal_approval:
    entity: deal
    status_field: status
    steps:
      check:
        approvers: {role: rep}
"""

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


@dataclass
class World:
    engine: Engine
    schema: Schema
    records: RecordService
    bus: EventBus
    seen: list[Event]


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine, clock=lambda: NOW)
    users.add("li.lei", roles=["rep"])
    users.add("zhao.qiang", roles=["rep"])
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    records = RecordService(
        bp, schema, engine, clock=lambda: NOW, access=Permissions(bp, users), events=bus
    )
    yield World(engine, schema, records, bus, seen)
    engine.dispose()


def _count(world: World, entity: str) -> int:
    table = world.schema.entity(entity).table
    with world.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_create_update_delete_emit_events_with_changes(world: World) -> None:
    rep = SYSTEM
    deal = world.records.create("deal", {"name": "A", "amount": "10"}, actor=rep, via="form")
    world.records.update("deal", deal.id, {"amount": "20"}, version=1, actor=rep, via="api")
    world.records.delete("deal", deal.id, actor=rep, via="api")
    kinds = [(e.kind, e.entity, e.record_id, e.via) for e in world.seen]
    assert kinds == [
        ("created", "deal", deal.id, "form"),
        ("updated", "deal", deal.id, "api"),
        ("deleted", "deal", deal.id, "api"),
    ]
    created, updated, deleted = world.seen
    assert created.prior is None and created.record is not None
    assert created.record.values["name"] == "A"
    assert created.changes["name"] == [None, "A"]
    assert updated.prior is not None and updated.record is not None
    assert str(updated.changes["amount"][0]) == "10.00"
    assert str(updated.changes["amount"][1]) == "20.00"
    assert updated.record.version == 2
    assert deleted.record is None and deleted.prior is not None
    assert all(e.depth == 0 and e.flow is None for e in world.seen)


def test_an_unchanged_update_and_a_refused_write_emit_nothing(world: World) -> None:
    deal = world.records.create("deal", {"name": "A"})
    world.seen.clear()
    world.records.update("deal", deal.id, {"name": "A"}, version=1)
    with pytest.raises(RecordInvalid):
        world.records.create("deal", {"name": "A"})  # unique
    assert world.seen == []


def test_a_listener_writes_in_the_same_transaction(world: World) -> None:
    def log(event: Event) -> None:
        if event.entity == "deal" and event.kind == "created":
            world.records.create(
                "log",
                {"deal": event.record_id, "what": "created"},
                via="automation",
                conn=event.conn,
                depth=event.depth + 1,
            )

    world.bus.subscribe(log)
    deal = world.records.create("deal", {"name": "A"})
    assert _count(world, "log") == 1
    nested = [e for e in world.seen if e.entity == "log"]
    assert [e.depth for e in nested] == [1]
    assert nested[0].record is not None and nested[0].record.values["deal"] == deal.id


def test_a_failing_listener_undoes_the_write(world: World) -> None:
    def refuse(event: Event) -> None:
        if event.entity == "log":
            return
        world.records.create("log", {"what": "x"}, via="automation", conn=event.conn)
        raise RuntimeError("listener failed")

    world.bus.subscribe(refuse)
    with pytest.raises(RuntimeError, match="listener failed"):
        world.records.create("deal", {"name": "A"})
    assert _count(world, "deal") == 0
    assert _count(world, "log") == 0
    with world.engine.connect() as conn:
        audit = conn.execute(sa.select(sa.func.count()).select_from(world.schema.audit))
        assert audit.scalar_one() == 0


def test_writes_join_a_callers_transaction_and_roll_back_with_it(world: World) -> None:
    with pytest.raises(RuntimeError), writer(world.engine).begin() as conn:
        deal = world.records.create("deal", {"name": "A"}, conn=conn)
        world.records.update("deal", deal.id, {"amount": "5"}, version=1, conn=conn)
        assert world.records.load(conn, "deal", deal.id).values["amount"] is not None
        raise RuntimeError("caller gives up")
    assert _count(world, "deal") == 0
    with writer(world.engine).begin() as conn:
        deal = world.records.create("deal", {"name": "B"}, conn=conn)
        world.records.delete("deal", deal.id, conn=conn)
        kept = world.records.create("deal", {"name": "C"}, conn=conn)
    assert _count(world, "deal") == 1
    assert world.records.get("deal", kept.id).values["name"] == "C"


def test_a_refused_write_leaves_the_callers_transaction_usable(world: World) -> None:
    world.records.create("deal", {"name": "Taken"})
    with writer(world.engine).begin() as conn:
        with pytest.raises(RecordInvalid):  # unique, found by the pre-check
            world.records.create("deal", {"name": "Taken"}, conn=conn)
        with pytest.raises(RecordInvalid):  # required
            world.records.create("deal", {"amount": "1"}, conn=conn)
        world.records.create("deal", {"name": "Fine"}, conn=conn)
    assert _count(world, "deal") == 2


def test_permissions_still_apply_in_a_callers_transaction(world: World) -> None:
    li = world.records.create("deal", {"name": "Li's"}, actor=Actor("li.lei", frozenset({"rep"})))
    other = Actor("zhao.qiang", frozenset({"rep"}))
    with writer(world.engine).begin() as conn:
        with pytest.raises(NotFound):  # not theirs: not even confirmed to exist
            world.records.update("deal", li.id, {"amount": "1"}, version=1, actor=other, conn=conn)
        with pytest.raises(PermissionDenied):
            world.records.create("log", {"what": "x"}, actor=other, conn=conn)


def test_batches_emit_no_events(world: World) -> None:
    world.records.create_many("deal", [{"name": "A"}, {"name": "B"}])
    assert world.seen == []


def test_a_pending_locking_flow_refuses_edits_but_not_the_flow(world: World) -> None:
    deal = world.records.create("deal", {"name": "A"})
    runs = world.schema.metadata.tables[FLOW_RUNS_TABLE]
    with writer(world.engine).begin() as conn:
        conn.execute(
            runs.insert().values(
                flow="deal_approval",
                entity="deal",
                record_id=deal.id,
                round=1,
                state="pending",
                submitted_by="li.lei",
                submitted_at=NOW,
                version=1,
            )
        )
    with pytest.raises(RecordLocked) as info:
        world.records.update("deal", deal.id, {"amount": "1"}, version=1, via="form")
    assert "pending approval" in info.value.message("en")
    assert "li.lei" in info.value.message("en")
    assert "审批" in info.value.message("zh")
    assert info.value.http_status == 409
    with pytest.raises(RecordLocked):
        world.records.delete("deal", deal.id, via="api")
    with pytest.raises(RecordLocked):
        world.records.update("deal", deal.id, {"amount": "1"}, version=1, via="import")
    for via in ("flow", "automation", "system"):
        deal = world.records.update(
            "deal", deal.id, {"amount": str(deal.version)}, version=deal.version, via=via
        )
    assert deal.version == 4
    with writer(world.engine).begin() as conn:
        conn.execute(runs.update().values(state="approved"))
    world.records.update("deal", deal.id, {"amount": "9"}, version=4, via="form")
