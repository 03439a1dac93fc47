"""The permission layer: merged roles, record scopes in SQL and in Python, fields, owners."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.errors import ExpressionError, RecordInvalid
from engine.expressions import NUMBER, compile_formula
from engine.expressions import Scope as FormulaScope
from engine.loader import load
from engine.model import Access, Formula
from engine.permissions import ALL, NONE, EffectiveAccess, Permissions, Scope, merge_scopes
from engine.records import SYSTEM, Actor, Record, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import UserService

BLUEPRINT = """
formflow: 1
id: crm
title: CRM
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
  finance: {zh: 财务, en: Finance}
  intake: {zh: 录入, en: Intake}
  guest: {zh: 访客, en: Guest}
entities:
  deal:
    label: Deal
    fields:
      name: {type: text, label: Name}
      amount: {type: money, label: Amount}
      region: {type: choice, label: Region, options: [east, west]}
      stage: {type: choice, label: Stage, options: [open, won, lost]}
      margin: {type: money, label: Margin}
      discount: {type: percent, label: Discount}
    access:
      rep:
        create: true
        read: own
        update: own
        hidden_fields: [margin]
        readonly_fields: [discount]
      manager:
        create: true
        read: team
        update: team
        delete: "=stage == 'lost' and CURRENT_ROLE() == 'manager'"
        readonly_fields: [discount]
      finance:
        create: "=amount <= 1000"
        read: "=amount >= 10000 or region == 'east'"
        update: "=created_by == CURRENT_USER()"
        readonly_fields: [amount, discount]
      intake:
        create: true
        hidden_fields: [margin, amount]
  note:
    label: Note
    fields:
      text: {type: text, label: Text}
    access:
      manager: {create: true, read: all, update: all, delete: all}
"""

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class World:
    users: UserService
    perms: Permissions
    records: RecordService


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine, clock=lambda: NOW)
    # boss > (m1 > (r1, r2), m2 > r3); fin and solo stand alone
    users.add("boss", roles=["manager"])
    users.add("m1", roles=["manager"], manager="boss")
    users.add("m2", roles=["manager", "finance"], manager="boss")
    users.add("r1", roles=["rep"], manager="m1")
    users.add("r2", roles=["rep", "finance"], manager="m1")
    users.add("r3", roles=["rep"], manager="m2")
    users.add("fin", roles=["finance"])
    users.add("solo", roles=["rep"])
    users.add("root", roles=["admin"])
    users.add("in", roles=["intake"])
    users.add("gone", roles=["rep"], manager="m1")
    users.deactivate("gone")
    perms = Permissions(bp, users)
    records = RecordService(bp, schema, engine, clock=lambda: NOW)
    yield World(users, perms, records)
    engine.dispose()


def actor(world: World, name: str) -> Actor:
    return world.users.get(name).actor


def make(world: World, owner: str | None, creator: str | None = None, **values: object) -> Record:
    """A deal owned by ``owner``, created by ``creator`` (an admin actor may set the owner)."""
    who = Actor(creator, frozenset({"admin"})) if creator else SYSTEM
    return world.records.create("deal", {**values, "owner": owner}, actor=who)


# --------------------------------------------------------------------------- merging


def test_single_roles(world: World) -> None:
    rep = world.perms.access(actor(world, "r1"), "deal")
    assert rep == EffectiveAccess(
        "deal",
        create=True,
        read=Scope("own"),
        update=Scope("own"),
        delete=NONE,
        hidden_fields=frozenset({"margin"}),
        readonly_fields=frozenset({"discount", "margin"}),  # hidden counts as read-only
    )
    fin = world.perms.access(actor(world, "fin"), "deal")
    entity = world.perms.blueprint.entity("deal")
    f_access = entity.access["finance"]
    assert fin.create is False
    assert fin.create_if == (("finance", f_access.create),)
    assert fin.read == Scope("none", (("finance", f_access.read),))
    assert fin.update == Scope("none", (("finance", f_access.update),))
    assert fin.delete.nothing
    assert fin.hidden_fields == frozenset()
    assert fin.readonly_fields == frozenset({"amount", "discount"})
    assert fin.may_create


def test_merged_access_is_reused_per_roles_and_entity(world: World) -> None:
    perms = world.perms
    r1, solo, r2 = actor(world, "r1"), actor(world, "solo"), actor(world, "r2")
    first = perms.access(r1, "deal")
    # Same roles (another person, or the entity given as an object): the same answer.
    assert perms.access(solo, perms.blueprint.entity("deal")) is first
    assert perms.access(Actor("x", frozenset({"rep"})), "deal") is first
    # Other roles, another entity or the engine itself: worked out separately.
    assert perms.access(r2, "deal") != first
    assert perms.access(Actor(None, frozenset({"rep"})), "deal").unrestricted
    assert not perms.access(Actor("x", frozenset({"rep"})), "deal").unrestricted


def test_merged_roles_take_the_widest(world: World) -> None:
    entity = world.perms.blueprint.entity("deal")
    both = world.perms.access(actor(world, "r2"), "deal")  # rep + finance
    assert both.create is True
    assert both.read == Scope("own", (("finance", entity.access["finance"].read),))
    assert both.update == Scope("own", (("finance", entity.access["finance"].update),))
    # margin: hidden for rep, visible for finance, and finance reads -> visible
    assert both.hidden_fields == frozenset()
    # read-only only where both writing roles say so
    assert both.readonly_fields == frozenset({"discount"})
    mgr_fin = world.perms.access(actor(world, "m2"), "deal")
    assert mgr_fin.read.level == "team"
    assert [role for role, _ in mgr_fin.read.formulas] == ["finance"]
    assert [role for role, _ in mgr_fin.delete.formulas] == ["manager"]


def test_all_wins_over_formulas() -> None:
    f = Formula("=True")
    assert merge_scopes([("a", "own"), ("b", f), ("c", "all")]) == ALL
    assert merge_scopes([("a", "own"), ("b", "team"), ("c", "none")]) == Scope("team")
    assert merge_scopes([("a", f)]) == Scope("none", (("a", f),))
    assert merge_scopes([]) == NONE


def test_hidden_fields_need_every_reading_role(world: World) -> None:
    # intake may create but not read: its own hidden fields count (no role reads)
    intake = world.perms.access(actor(world, "in"), "deal")
    assert intake.hidden_fields == frozenset({"margin", "amount"})
    assert intake.readonly_fields == frozenset({"margin", "amount"})
    assert intake.read.nothing
    mixed = Actor("x", frozenset({"rep", "intake"}))  # rep reads, intake does not
    assert world.perms.hidden_fields(mixed, "deal") == frozenset({"margin"})
    # the writing roles: rep {discount, margin} and intake {margin, amount}
    assert world.perms.readonly_fields(mixed, "deal") == frozenset({"margin"})


def test_unlisted_and_unknown_roles_get_nothing(world: World) -> None:
    every = frozenset(world.perms.blueprint.entity("note").fields)
    for who in (
        actor(world, "r1"),
        Actor("x", frozenset({"guest"})),
        Actor("x", frozenset({"gone-role"})),
        Actor("x"),
    ):
        acc = world.perms.access(who, "note")
        assert acc == EffectiveAccess("note", hidden_fields=every, readonly_fields=every)
        assert not acc.may_create
        assert world.perms.can_create(who, "note", {}) is False
    assert world.perms.access(actor(world, "m1"), "note").read == ALL


def test_admin_and_system_get_everything(world: World) -> None:
    for who in (actor(world, "root"), SYSTEM, Actor("x", frozenset({"admin", "guest"}))):
        for entity in ("deal", "note"):
            acc = world.perms.access(who, entity)
            assert acc.unrestricted
            assert (acc.read, acc.update, acc.delete) == (ALL, ALL, ALL)
            assert acc.hidden_fields == frozenset() == acc.readonly_fields
            assert world.perms.read_scope(who, world.records.schema.entity(entity)) is None
            assert world.perms.can_create(who, entity, {})
    rec = make(world, "r1")
    assert world.perms.allows(SYSTEM, "deal", "delete", rec)
    assert world.perms.allows(actor(world, "root"), "deal", "update", rec)


def test_effective_access_scope_names_the_action() -> None:
    acc = EffectiveAccess("deal", read=ALL)
    assert acc.scope("read") is ALL
    with pytest.raises(ValueError, match="unknown action 'list'"):
        acc.scope("list")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- create


def test_can_create(world: World) -> None:
    fin = actor(world, "fin")
    assert world.perms.can_create(fin, "deal", {"amount": Decimal("1000")})
    assert not world.perms.can_create(fin, "deal", {"amount": Decimal("1000.01")})
    assert not world.perms.can_create(fin, "deal", {})  # blank amount: the formula is false
    assert world.perms.can_create(actor(world, "r1"), "deal", {"amount": Decimal("5e6")})
    assert not world.perms.can_create(Actor("x", frozenset({"guest"})), "deal", {})
    # without values: may they create at all (the "New" button)
    assert world.perms.can_create(fin, "deal")
    assert world.perms.can_create(actor(world, "in"), "deal")
    assert not world.perms.can_create(Actor("x", frozenset({"guest"})), "deal")
    assert not world.perms.can_create(actor(world, "r1"), "note")


def test_page_helpers(world: World) -> None:
    perms = world.perms
    assert perms.can_read(actor(world, "r1"), "deal")
    assert perms.can_read(actor(world, "fin"), "deal")  # a formula scope may match
    assert not perms.can_read(actor(world, "in"), "deal")  # create only
    assert not perms.can_read(actor(world, "r1"), "note")
    assert perms.can_read(SYSTEM, "note")
    rec = make(world, "r1", stage="lost")
    assert perms.can_update(actor(world, "r1"), "deal", rec)
    assert not perms.can_delete(actor(world, "r1"), "deal", rec)
    assert perms.can_delete(actor(world, "m1"), "deal", rec)
    assert not perms.can_update(actor(world, "r3"), "deal", rec)


# --------------------------------------------------------------------------- one record


def test_allows_own_team_and_formulas(world: World) -> None:
    perms = world.perms
    rec = make(world, "r1", creator="fin", amount=Decimal("500"), region="west", stage="lost")
    assert perms.allows(actor(world, "r1"), "deal", "read", rec)
    assert perms.allows(actor(world, "r1"), "deal", "update", rec)
    assert not perms.allows(actor(world, "r1"), "deal", "delete", rec)
    assert not perms.allows(actor(world, "r3"), "deal", "read", rec)
    assert not perms.allows(actor(world, "solo"), "deal", "read", rec)
    for boss in ("m1", "boss"):
        assert perms.allows(actor(world, boss), "deal", "read", rec)
        assert perms.allows(actor(world, boss), "deal", "update", rec)
        assert perms.allows(actor(world, boss), "deal", "delete", rec)  # lost + manager
    assert not perms.allows(actor(world, "m2"), "deal", "read", rec)  # other team, formula no
    fin = actor(world, "fin")
    assert not perms.allows(fin, "deal", "read", rec)  # small and west
    assert perms.allows(fin, "deal", "update", rec)  # fin created it
    east = make(world, "r3", region="east")
    assert perms.allows(fin, "deal", "read", east)
    assert not perms.allows(fin, "deal", "update", east)
    assert perms.allows(actor(world, "m2"), "deal", "read", east)
    open_deal = make(world, "r1", stage="open")
    assert not perms.allows(actor(world, "m1"), "deal", "delete", open_deal)
    nobody = make(world, None, amount=Decimal("5"))
    for name in ("r1", "m1", "boss", "fin"):
        assert not perms.allows(actor(world, name), "deal", "read", nobody)


def test_team_follows_changes_at_once(world: World) -> None:
    rec = make(world, "r3")
    assert not world.perms.allows(actor(world, "m1"), "deal", "read", rec)
    world.users.set_manager("r3", "m1")
    assert world.perms.allows(actor(world, "m1"), "deal", "read", rec)
    assert not world.perms.allows(actor(world, "m2"), "deal", "read", rec)


# --------------------------------------------------------------------------- SQL == Python


def _ids(world: World, clause: sa.ColumnElement[bool] | None) -> set[int]:
    table = world.records.schema.entity("deal").table
    stmt = sa.select(table.c.id)
    if clause is not None:
        stmt = stmt.where(clause)
    with world.records.engine.connect() as conn:
        return {int(i) for i in conn.execute(stmt).scalars()}


def test_read_scope_agrees_with_allows_on_real_rows(world: World) -> None:
    rng = random.Random(20260301)
    owners = ["r1", "r2", "r3", "m1", "m2", "boss", "fin", "solo", "gone", "ex-employee", None]
    creators = ["fin", "r2", "m2", None]
    records: list[Record] = []
    for i in range(60):
        amount = rng.choice(
            [None, Decimal("0"), Decimal("999.99"), Decimal("10000"), Decimal("2e5")]
        )
        records.append(
            make(
                world,
                rng.choice(owners),
                creator=rng.choice(creators),
                name=f"deal {i}",
                amount=amount,
                region=rng.choice([None, "east", "west"]),
                stage=rng.choice([None, "open", "won", "lost"]),
            )
        )
    loaded = [world.records.get("deal", r.id) for r in records]
    et = world.records.schema.entity("deal")
    actors = [actor(world, n) for n in ("r1", "r2", "r3", "m1", "m2", "boss", "fin", "solo", "in")]
    actors += [Actor("guest-user", frozenset({"guest"})), Actor("m1", frozenset({"rep"}))]
    seen_partial = 0
    for who in actors:
        for action in ("read", "update", "delete"):
            clause = world.perms.scope_clause(who, et, action)  # type: ignore[arg-type]
            in_sql = _ids(world, clause)
            in_python = {
                r.id
                for r in loaded
                if world.perms.allows(who, "deal", action, r)  # type: ignore[arg-type]
            }
            assert in_sql == in_python, (who, action)
            if 0 < len(in_sql) < len(loaded):
                seen_partial += 1
        assert _ids(world, world.perms.read_scope(who, et)) == _ids(
            world, world.perms.scope_clause(who, et, "read")
        )
    assert seen_partial >= 12  # the scopes really filter, they are not all or nothing


def test_read_scope_shapes(world: World) -> None:
    et = world.records.schema.entity("deal")
    guest = Actor("g", frozenset({"guest"}))
    clause = world.perms.read_scope(guest, et)
    assert clause is not None
    assert _ids(world, clause) == set()
    make(world, "r1")
    make(world, "r2")
    assert len(_ids(world, world.perms.read_scope(actor(world, "r1"), et))) == 1
    assert len(_ids(world, world.perms.read_scope(actor(world, "m1"), et))) == 2
    assert world.perms.read_scope(actor(world, "root"), et) is None


def test_untranslatable_read_formula_is_a_clear_error(world: World) -> None:
    # The loader refuses nothing here yet: a formula SQL cannot compute fails when listed.
    bp = world.perms.blueprint
    deal = bp.entity("deal")
    formula = Formula("MOD(amount, 7) == 1")
    formula.bind(compile_formula(formula.source, FormulaScope({"amount": NUMBER})))
    odd = dataclasses.replace(
        deal,
        access={**deal.access, "guest": Access(role="guest", read=formula)},
    )
    bp2 = dataclasses.replace(bp, entities={**bp.entities, "deal": odd})
    perms = Permissions(bp2, world.users)
    et = dataclasses.replace(world.records.schema.entity("deal"), entity=odd)
    with pytest.raises(ExpressionError) as info:
        perms.read_scope(Actor("g", frozenset({"guest"})), et)
    message = info.value.message("en")
    assert message.startswith(
        "the read scope formula of role 'guest' on entity 'deal' cannot be computed "
        "in the database: "
    )
    assert "MOD" in message


# --------------------------------------------------------------------------- owners


def test_owner_policy(world: World) -> None:
    deal = world.perms.blueprint.entity("deal")
    perms = world.perms
    assert perms.owner_policy(SYSTEM, deal, "api")
    assert perms.owner_policy(actor(world, "root"), deal, "form")
    assert perms.owner_policy(actor(world, "r1"), deal, "import")
    assert perms.owner_policy(actor(world, "r1"), deal, "automation")
    assert not perms.owner_policy(actor(world, "r1"), deal, "form")
    assert not perms.owner_policy(actor(world, "fin"), deal, "api")  # a formula update scope
    assert perms.owner_policy(actor(world, "m1"), deal, "form")  # update: team
    note = world.perms.blueprint.entity("note")
    assert perms.owner_policy(actor(world, "m1"), note, "api")  # update: all
    assert not perms.owner_policy(actor(world, "r1"), note, "api")


def test_may_assign_to(world: World) -> None:
    perms = world.perms
    m1 = actor(world, "m1")
    assert perms.may_assign_to(m1, "deal", "r1")
    assert perms.may_assign_to(m1, "deal", "m1")
    assert not perms.may_assign_to(m1, "deal", "r3")  # another team
    assert not perms.may_assign_to(m1, "deal", "boss")  # above, not below
    assert not perms.may_assign_to(m1, "deal", "gone")  # in the team but inactive
    assert not perms.may_assign_to(m1, "deal", None)
    assert not perms.may_assign_to(m1, "deal", "ghost")
    assert perms.may_assign_to(m1, "note", "r3")  # update: all
    assert perms.may_assign_to(m1, "note", None)
    assert not perms.may_assign_to(m1, "note", "gone")
    r1 = actor(world, "r1")
    assert perms.may_assign_to(r1, "deal", "r1")
    assert not perms.may_assign_to(r1, "deal", "r2")
    root = actor(world, "root")
    assert perms.may_assign_to(root, "deal", "r3")
    assert perms.may_assign_to(root, "deal", None)
    assert not perms.may_assign_to(root, "deal", "ghost")
    assert perms.may_assign_to(SYSTEM, "deal", "ghost")  # the engine: imports of old data
    world.users.set_manager("r3", "m1")
    assert perms.may_assign_to(m1, "deal", "r3")


def test_permissions_plug_into_the_record_service(world: World) -> None:
    """The owner hook has the record service's signature (the lead wires the rest)."""
    svc = RecordService(
        world.perms.blueprint,
        world.records.schema,
        world.records.engine,
        clock=lambda: NOW,
        owner_policy=world.perms.owner_policy,
    )
    moved = svc.create("deal", {"name": "x", "owner": "r1"}, actor=actor(world, "m1"), via="form")
    assert moved.owner == "r1"
    with pytest.raises(RecordInvalid) as info:
        svc.create("deal", {"name": "y", "owner": "r2"}, actor=actor(world, "r1"), via="form")
    assert info.value.as_dict("en") == {"owner": ["you may not set the owner"]}


def test_assignees_are_exactly_whom_may_assign_to_allows(world: World) -> None:
    perms = world.perms
    everyone = [u.name for u in world.users.list(active_only=True)]  # never an inactive user
    for who in (SYSTEM, *(actor(world, n) for n in ("root", "m1", "r1", "fin"))):
        for entity in ("deal", "note"):
            offered = [u.name for u in perms.assignees(who, entity)]
            assert offered == sorted(offered)
            assert offered == [n for n in everyone if perms.may_assign_to(who, entity, n)], (
                who,
                entity,
            )
    assert "gone" not in [u.name for u in perms.assignees(actor(world, "root"), "deal")]
    assert [u.name for u in perms.assignees(actor(world, "r1"), "deal")] == ["r1"]
