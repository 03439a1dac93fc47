"""docs/permissions.md: its example blueprint loads and does what the text says it does."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from engine.checks import check
from engine.errors import NotFound, PermissionDenied, RecordInvalid
from engine.kpis import KpiService
from engine.loader import load
from engine.permissions import Permissions
from engine.records import Actor, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.query import Query
from engine.storage.schema import build_schema
from engine.users import UserService

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "permissions.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@dataclass
class World:
    records: RecordService
    kpis: KpiService
    actors: dict[str, Actor]

    def names(self, who: str) -> list[str]:
        page = self.records.list_records("deal", Query(sort=("name",)), actor=self.actors[who])
        return [row["name"] for row in page.rows]

    def id_of(self, name: str) -> int:
        page = self.records.list_records("deal", Query(), actor=self.actors["sun"])
        return int(next(row["id"] for row in page.rows if row["name"] == name))


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    (tmp_path / "blueprint.yaml").write_text(BLOCKS[0], encoding="utf-8")
    bp = load(tmp_path / "blueprint.yaml")
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine)
    users.add("wang", roles=["sales_manager"])
    users.add("li", roles=["sales_rep"], manager="wang")
    users.add("zhang", roles=["sales_rep"], manager="wang")
    users.add("zhao", roles=["sales_rep"])
    users.add("qian", roles=["east_lead"])
    users.add("sun", roles=["finance"])
    permissions = Permissions(bp, users)
    records = RecordService(bp, schema, engine, access=permissions)
    kpis = KpiService(bp, schema, engine, permissions, users)
    actors = {
        name: users.get(name).actor for name in ("wang", "li", "zhang", "zhao", "qian", "sun")
    }
    world = World(records, kpis, actors)
    for owner, name, region, amount in [
        ("li", "li-east", "east", "100"),
        ("zhang", "zhang-north", "north", "200"),
        ("zhao", "zhao-east", "east", "400"),
        ("wang", "wang-north", "north", "800"),
    ]:
        records.create(
            "deal", {"name": name, "region": region, "amount": amount}, actor=actors[owner]
        )
    yield world
    engine.dispose()


def test_every_yaml_example_is_a_valid_blueprint(tmp_path: Path) -> None:
    assert BLOCKS
    for i, block in enumerate(BLOCKS):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block, encoding="utf-8")
        problems = [p for p in check(load(path)) if p.severity == "error"]
        assert not problems, [p.message.en for p in problems]


def test_reps_see_their_own_managers_their_team(world: World) -> None:
    assert world.names("li") == ["li-east"]
    assert world.names("zhao") == ["zhao-east"]
    assert world.names("wang") == ["li-east", "wang-north", "zhang-north"]
    assert world.names("qian") == ["li-east", "zhao-east"]  # the formula scope
    assert len(world.names("sun")) == 4


def test_another_reps_record_does_not_exist_for_a_rep(world: World) -> None:
    record_id = world.id_of("zhao-east")
    with pytest.raises(NotFound):
        world.records.get("deal", record_id, actor=world.actors["li"])
    assert world.records.get("deal", record_id, actor=world.actors["qian"]).values["region"] == (
        "east"
    )
    with pytest.raises(PermissionDenied):  # read by formula, but no update
        world.records.update(
            "deal", record_id, {"name": "x"}, version=1, actor=world.actors["qian"]
        )


def test_hidden_readonly_fields_and_the_create_formula(world: World) -> None:
    li = world.actors["li"]
    assert all(
        "margin" not in row for row in world.records.list_records("deal", Query(), actor=li).rows
    )
    with pytest.raises(RecordInvalid) as info:
        world.records.create("deal", {"name": "d", "amount": "10", "discount": "5"}, actor=li)
    assert set(info.value.errors) == {"discount"}
    with pytest.raises(PermissionDenied):  # a million or more is the manager's
        world.records.create("deal", {"name": "big", "amount": "1000000"}, actor=li)
    assert world.records.create(
        "deal", {"name": "big", "amount": "1000000"}, actor=world.actors["wang"]
    )
    with pytest.raises(PermissionDenied):  # delete: none for reps
        mine = world.records.list_records("deal", Query(), actor=li).rows[0]
        world.records.delete("deal", mine["id"], actor=li)
    with pytest.raises(PermissionDenied):  # east_lead is not listed for create
        world.records.create("deal", {"name": "e", "amount": "1"}, actor=world.actors["qian"])


def test_finance_may_change_only_the_margin(world: World) -> None:
    sun = world.actors["sun"]
    record_id = world.id_of("li-east")
    done = world.records.update("deal", record_id, {"margin": "30"}, version=1, actor=sun)
    assert done.values["margin"] == Decimal("30.00")
    with pytest.raises(RecordInvalid) as info:
        world.records.update("deal", record_id, {"amount": "1"}, version=2, actor=sun)
    assert set(info.value.errors) == {"amount"}


def test_a_kpi_counts_what_the_viewer_may_read(world: World) -> None:
    def total(who: str) -> Decimal:
        return Decimal(str(world.kpis.evaluate("deal_amount", world.actors[who]).total.value))

    assert total("li") == Decimal("100")
    assert total("wang") == Decimal("1100")
    assert total("qian") == Decimal("500")
    assert total("sun") == Decimal("1500")


def test_the_token_command_as_shown(tmp_path: Path) -> None:
    """The doc's ``formflow token create`` line, run against a copy of the CRM template."""
    from click.testing import CliRunner

    from engine.cli import main

    command = re.search(r"```sh\n(formflow token create .*)\n```", DOC.read_text(encoding="utf-8"))
    assert command
    folder = tmp_path / "crm"
    shutil.copytree(ROOT / "blueprints" / "crm", folder, ignore=shutil.ignore_patterns("*.db"))
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", str(folder)]).exit_code == 0
    added = runner.invoke(
        main, ["user", "add", "li", str(folder), "--role", "sales_rep", "--no-password"]
    )
    assert added.exit_code == 0, added.output
    args = shlex.split(command.group(1))[1:]
    args[args.index("blueprints/crm")] = str(folder)
    made = runner.invoke(main, args)
    assert made.exit_code == 0, made.output
    assert any(line.startswith("ff_") for line in made.output.splitlines())
