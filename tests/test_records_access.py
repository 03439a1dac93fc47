"""The record service enforces permissions itself, on every path (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from engine.errors import NotFound, PermissionDenied, RecordInvalid
from engine.loader import load
from engine.permissions import Permissions
from engine.records import SYSTEM, Actor, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.query import Query
from engine.storage.schema import build_schema
from engine.users import UserService

BLUEPRINT = """
formflow: 1
id: access
title: Access
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
  finance: {zh: 财务, en: Finance}
entities:
  deal:
    label: {zh: 商机, en: Deal}
    title_field: name
    fields:
      name: {type: text, label: Name, required: true}
      amount: {type: money, label: Amount}
      margin: {type: money, label: Margin}
      discount: {type: percent, label: Discount}
      checked_by: {type: user, label: Checked by, readonly: true}
    access:
      rep: {create: true, read: own, update: own, delete: none,
            hidden_fields: [margin], readonly_fields: [discount]}
      manager: {create: true, read: team, update: team, delete: team}
      finance: {create: false, read: all}
  note:
    label: Note
    fields:
      deal: {type: ref, label: Deal, to: deal, required: true}
    access:
      rep: {create: true, read: own, update: own}
"""


@dataclass
class World:
    records: RecordService
    rep: Actor  # li.lei, in wang.fang's team
    other_rep: Actor  # zhao.qiang, in chen.jing's team
    manager: Actor  # wang.fang
    finance: Actor


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine)
    users.add("wang.fang", roles=["manager"])
    users.add("chen.jing", roles=["manager"])
    users.add("li.lei", roles=["rep"], manager="wang.fang")
    users.add("zhao.qiang", roles=["rep"], manager="chen.jing")
    users.add("sun.li", roles=["finance"])
    records = RecordService(bp, schema, engine, access=Permissions(bp, users))

    def actor(name: str) -> Actor:
        user = users.get(name)
        return user.actor

    yield World(
        records=records,
        rep=actor("li.lei"),
        other_rep=actor("zhao.qiang"),
        manager=actor("wang.fang"),
        finance=actor("sun.li"),
    )
    engine.dispose()


def test_a_rep_lists_and_reads_only_their_own(world: World) -> None:
    mine = world.records.create("deal", {"name": "Mine", "margin": None}, actor=world.rep)
    theirs = world.records.create("deal", {"name": "Theirs"}, actor=world.other_rep)
    page = world.records.list_records("deal", Query(), actor=world.rep)
    assert [r["name"] for r in page.rows] == ["Mine"]
    assert "margin" not in page.rows[0]
    assert "margin" not in world.records.get("deal", mine.id, actor=world.rep).values
    for call in (
        lambda: world.records.get("deal", theirs.id, actor=world.rep),
        lambda: world.records.history("deal", theirs.id, actor=world.rep),
        lambda: world.records.update("deal", theirs.id, {"name": "x"}, version=1, actor=world.rep),
        lambda: world.records.delete("deal", theirs.id, actor=world.rep),
    ):
        with pytest.raises(NotFound):  # a guessed id is not confirmed to exist
            call()
    assert world.records.get("deal", theirs.id).values["name"] == "Theirs"


def test_a_manager_sees_the_team_and_nothing_else(world: World) -> None:
    world.records.create("deal", {"name": "Rep's"}, actor=world.rep)
    world.records.create("deal", {"name": "Other team's"}, actor=world.other_rep)
    own = world.records.create("deal", {"name": "Manager's"}, actor=world.manager)
    page = world.records.list_records("deal", Query(sort=("name",)), actor=world.manager)
    assert [r["name"] for r in page.rows] == ["Manager's", "Rep's"]
    assert world.records.list_records("deal", Query(), actor=world.finance).count == 3
    assert own.owner == "wang.fang"


def test_readable_but_not_changeable_is_forbidden(world: World) -> None:
    deal = world.records.create("deal", {"name": "Big"}, actor=world.rep)
    assert world.records.get("deal", deal.id, actor=world.finance).values["name"] == "Big"
    with pytest.raises(PermissionDenied):
        world.records.update("deal", deal.id, {"name": "x"}, version=1, actor=world.finance)
    with pytest.raises(PermissionDenied):
        world.records.delete("deal", deal.id, actor=world.rep)  # delete: none
    with pytest.raises(PermissionDenied):
        world.records.create("deal", {"name": "No"}, actor=world.finance)
    with pytest.raises(PermissionDenied):
        world.records.create_many("deal", [{"name": "No"}], actor=world.finance)


def test_hidden_and_readonly_fields_cannot_be_written(world: World) -> None:
    with pytest.raises(RecordInvalid) as info:
        world.records.create(
            "deal", {"name": "Sneaky", "margin": "5", "discount": "10"}, actor=world.rep
        )
    assert info.value.as_dict("en") == {
        "margin": ["you may not change this field"],
        "discount": ["you may not change this field"],
    }
    deal = world.records.create("deal", {"name": "Fine", "amount": "10"}, actor=world.rep)
    set_by_manager = world.records.update(
        "deal", deal.id, {"discount": "15", "margin": "3"}, version=1, actor=world.manager
    )
    assert set_by_manager.values["discount"] == Decimal("15.00")
    # sending back the value the record already has is not a change
    again = world.records.update(
        "deal", deal.id, {"discount": "15", "amount": "12"}, version=2, actor=world.rep
    )
    assert again.values["amount"] == Decimal("12.00") and "margin" not in again.values


def test_owner_assignment_follows_the_team(world: World) -> None:
    with pytest.raises(RecordInvalid) as info:
        world.records.create("deal", {"name": "Gift", "owner": "wang.fang"}, actor=world.rep)
    assert set(info.value.errors) == {"owner"}
    handed = world.records.create("deal", {"name": "Hand", "owner": "li.lei"}, actor=world.manager)
    assert handed.owner == "li.lei"
    with pytest.raises(RecordInvalid):
        world.records.create("deal", {"name": "Out", "owner": "zhao.qiang"}, actor=world.manager)
    system = world.records.create("deal", {"name": "Sys", "owner": "zhao.qiang"}, actor=SYSTEM)
    assert system.owner == "zhao.qiang"


def test_a_ref_to_an_unreadable_record_reads_as_missing(world: World) -> None:
    theirs = world.records.create("deal", {"name": "Theirs"}, actor=world.other_rep)
    mine = world.records.create("deal", {"name": "Mine"}, actor=world.rep)
    with pytest.raises(RecordInvalid) as info:
        world.records.create("note", {"deal": theirs.id}, actor=world.rep)
    assert info.value.as_dict("en") == {
        "deal": [f"the referenced Deal #{theirs.id} does not exist"]
    }
    with pytest.raises(RecordInvalid):
        world.records.create_many("note", [{"deal": theirs.id}], actor=world.rep)
    assert (
        world.records.create("note", {"deal": mine.id}, actor=world.rep).values["deal"] == mine.id
    )


def test_readonly_fields_are_set_by_the_engine_not_by_forms(world: World) -> None:
    with pytest.raises(RecordInvalid) as info:
        world.records.create(
            "deal", {"name": "A", "checked_by": "li.lei"}, actor=world.rep, via="form"
        )
    assert info.value.as_dict("en") == {"checked_by": ["you may not change this field"]}
    done = world.records.create(
        "deal", {"name": "B", "checked_by": "li.lei"}, actor=SYSTEM, via="automation"
    )
    assert done.values["checked_by"] == "li.lei"


def test_titles_only_for_readable_records(world: World) -> None:
    mine = world.records.create("deal", {"name": "Mine"}, actor=world.rep)
    theirs = world.records.create("deal", {"name": "Theirs"}, actor=world.other_rep)
    ids = [mine.id, theirs.id, 99999]
    assert world.records.title_values("deal", ids, actor=world.rep) == {mine.id: "Mine"}
    assert world.records.title_values("deal", ids) == {mine.id: "Mine", theirs.id: "Theirs"}


def test_history_of_a_loaded_record_is_still_checked(world: World) -> None:
    theirs = world.records.create("deal", {"name": "Theirs"}, actor=world.other_rep)
    entries = world.records.history("deal", theirs.id, actor=world.other_rep, loaded=theirs)
    assert [e.action for e in entries] == ["create"]
    with pytest.raises(NotFound):
        world.records.history("deal", theirs.id, actor=world.rep, loaded=theirs)
