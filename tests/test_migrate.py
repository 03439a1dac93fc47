"""Schema migrations (engine.storage.migrate) on SQLite and PostgreSQL.

Every test runs on both databases: a SQLite file in tmp_path and a fresh
PostgreSQL database made for the test on the server of the session fixture
``pg_url``. Blueprints are built inline as model objects.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from engine.commands.migrate import migrate_command
from engine.errors import SchemaBehind
from engine.i18n import Text
from engine.model import Blueprint, Entity, Field, ListView, frozen_map
from engine.storage.database import create_engine
from engine.storage.migrate import (
    MigrationFailed,
    MigrationRefused,
    MigrationResult,
    Plan,
    apply_migration,
    ensure_current,
    initialise,
    normalise_unique,
    plan_migration,
)
from engine.storage.schema import build_schema

# --------------------------------------------------------------------------- blueprints


def F(name: str, kind: str = "text", **kw: Any) -> Field:  # noqa: N802
    return Field(name=name, kind=kind, label=Text.of(name), **kw)


def E(name: str, *fields: Field, **kw: Any) -> Entity:  # noqa: N802
    return Entity(
        name=name, label=Text.of(name), fields=frozen_map({f.name: f for f in fields}), **kw
    )


def B(*entities: Entity, title: str = "Shop") -> Blueprint:  # noqa: N802
    return Blueprint(
        id="shop",
        title=Text.of(title),
        version=1,
        entities=frozen_map({e.name: e for e in entities}),
    )


# --------------------------------------------------------------------------- databases


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """A factory of engines, each on a new empty database of the parametrised kind."""
    engines: list[Engine] = []
    databases: list[str] = []
    admin: Engine | None = None
    if request.param == "postgresql":
        pg_url = request.getfixturevalue("pg_url")
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")

    def make() -> Engine:
        if admin is None:
            url = f"sqlite:///{tmp_path / f'db{len(engines)}' / 'app.db'}"
            (tmp_path / f"db{len(engines)}").mkdir()
        else:
            name = f"ff_migrate_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            databases.append(name)
            url = admin.url.set(database=name).render_as_string(hide_password=False)
        engine = create_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
    if admin is not None:
        with admin.connect() as conn:
            for name in databases:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(make_engine: Callable[[], Engine]) -> Engine:
    return make_engine()


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def migrate(engine: Engine, blueprint: Blueprint, **kw: Any) -> MigrationResult:
    schema = build_schema(blueprint)
    plan = plan_migration(engine, blueprint, schema)
    return apply_migration(engine, blueprint, schema, plan, **kw)


def plan_of(engine: Engine, blueprint: Blueprint) -> Plan:
    return plan_migration(engine, blueprint, build_schema(blueprint))


def steps(plan: Plan) -> list[tuple[str, str, str | None, bool]]:
    return [(c.kind, c.table, c.column, c.data_loss) for c in plan.changes]


NOW = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)


def insert(engine: Engine, blueprint: Blueprint, entity: str, **values: Any) -> int:
    """A row written straight into the entity's table (system columns filled)."""
    et = build_schema(blueprint).entity(entity)
    row: dict[str, Any] = {"created_at": NOW, "updated_at": NOW}
    for name, value in values.items():
        row[et.columns[name].name] = value
        if name in et.unique_keys:
            row[et.unique_keys[name].name] = None if value is None else normalise_unique(value)
    with engine.begin() as conn:
        new_id = conn.execute(et.table.insert().values(row).returning(et.table.c.id)).scalar_one()
        return int(new_id)


def rows(engine: Engine, table: str, *columns: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in columns)
    with engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(sa.text(f'SELECT {cols} FROM "{table}" ORDER BY id'))
        ]


def tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def columns(engine: Engine, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns(table)]


def shape(engine: Engine) -> dict[str, Any]:
    """Every Formflow table's columns, indexes, unique constraints and foreign keys."""
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        if table.startswith("ff_backup_"):
            continue
        out[table] = (
            [(c["name"], str(c["type"])) for c in insp.get_columns(table)],
            sorted(
                (str(i["name"]), tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
            sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in insp.get_foreign_keys(table)
            ),
        )
    return out


def meta(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {k: v for k, v in conn.execute(sa.text("SELECT key, value FROM ff_meta"))}


def index_names(engine: Engine, *tables: str) -> set[str]:
    """Plain indexes (not the ones PostgreSQL makes for unique constraints)."""
    insp = sa.inspect(engine)
    return {
        str(i["name"])
        for t in tables
        for i in insp.get_indexes(t)
        if not i.get("duplicates_constraint")
    }


def varchar_length(engine: Engine, table: str, column: str) -> int | None:
    col = next(c for c in sa.inspect(engine).get_columns(table) if c["name"] == column)
    return getattr(col["type"], "length", None)


SYSTEM_TABLES = {
    "ff_audit",
    "ff_exports",
    "ff_flow_runs",
    "ff_flow_tasks",
    "ff_forecast_snapshot_deals",
    "ff_forecast_snapshots",
    "ff_idempotency",
    "ff_imports",
    "ff_jobs",
    "ff_login_attempts",
    "ff_meta",
    "ff_notifications",
    "ff_sequences",
    "ff_tokens",
    "ff_uploads",
    "ff_users",
}

V1 = B(E("customer", F("name", max_length=200), F("fax")))


# --------------------------------------------------------------------------- new databases


def test_a_new_system_table_is_added_to_an_existing_database(
    make_engine: Callable[[], Engine],
) -> None:
    """A database made before ff_jobs / ff_flow_* / ff_notifications existed gets them."""
    bp = V1
    older = build_schema(bp)
    newer = ("ff_flow_tasks", "ff_flow_runs", "ff_jobs", "ff_notifications")
    for name in newer:  # what an older engine built
        older.metadata.remove(older.metadata.tables[name])
    engine = make_engine()
    initialise(engine, bp, older)
    assert not tables(engine) & set(newer)
    with pytest.raises(SchemaBehind):
        ensure_current(engine, bp)
    plan = plan_of(engine, bp)
    assert {(c.kind, c.table, c.data_loss) for c in plan.changes} >= {
        ("create_table", "ff_jobs", False),
        ("create_table", "ff_flow_runs", False),
        ("create_table", "ff_flow_tasks", False),
        ("create_table", "ff_notifications", False),
    }
    apply_migration(engine, bp, build_schema(bp), plan)
    assert tables(engine) >= set(newer)
    ensure_current(engine, bp)
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("ff_flow_tasks")}
    assert "ix_ff_flow_tasks_inbox" in indexes
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("ff_notifications")}
    assert "ix_ff_notifications_user" in indexes
    assert plan_of(engine, bp).changes == ()


def test_initialise_creates_tables_and_records_state(make_engine: Callable[[], Engine]) -> None:
    bp = B(
        E(
            "customer",
            F("name"),
            F("code", unique=True),
            F("contacts", "table", fields=frozen_map({"person": F("person")})),
        )
    )
    schema = build_schema(bp)
    first = make_engine()
    initialise(first, bp, schema)
    assert tables(first) == SYSTEM_TABLES | {"e_customer", "e_customer__contacts"}
    recorded = meta(first)
    assert recorded["schema_version"] == "1"
    assert recorded["blueprint_digest"] == plan_of(first, bp).blueprint_digest
    assert json.loads(recorded["last_migration"])["changes"] == []
    ensure_current(first, bp)
    assert plan_of(first, bp).empty

    initialise(first, bp, schema)  # already current: nothing happens
    assert meta(first)["schema_version"] == "1"

    # the same as migrating an empty database
    second = make_engine()
    plan = plan_of(second, bp)
    assert [(c.kind, c.table) for c in plan.changes] == [
        ("create_table", "e_customer"),
        ("create_table", "e_customer__contacts"),
        ("create_table", "ff_audit"),
        ("create_table", "ff_exports"),
        ("create_table", "ff_flow_runs"),
        ("create_table", "ff_flow_tasks"),
        ("create_table", "ff_forecast_snapshot_deals"),
        ("create_table", "ff_forecast_snapshots"),
        ("create_table", "ff_idempotency"),
        ("create_table", "ff_imports"),
        ("create_table", "ff_jobs"),
        ("create_table", "ff_login_attempts"),
        ("create_table", "ff_meta"),
        ("create_table", "ff_notifications"),
        ("create_table", "ff_sequences"),
        ("create_table", "ff_tokens"),
        ("create_table", "ff_uploads"),
        ("create_table", "ff_users"),
    ]
    assert plan.changes[0].detail.get("en") == "create entity 'customer'"
    assert plan.changes[1].detail.get("en") == "create table field 'contacts' of customer"
    result = migrate(second, bp)
    assert result.applied and result.schema_version == 1
    assert shape(second) == shape(first)
    assert meta(second)["schema_digest"] == recorded["schema_digest"]


def test_initialise_refuses_a_database_with_other_formflow_tables(engine: Engine) -> None:
    migrate(engine, V1)
    other = B(E("customer", F("name")))
    with pytest.raises(SchemaBehind):
        initialise(engine, other, build_schema(other))
    assert "fax" in columns(engine, "e_customer")


# --------------------------------------------------------------------------- growing


def test_add_entity_with_child_table_and_reference(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    lines = F(
        "lines", "table", fields=frozen_map({"product": F("product"), "qty": F("qty", "integer")})
    )
    v2 = B(
        V1.entity("customer"),
        E("deal", F("customer", "ref", to="customer"), F("amount", "money"), lines),
    )
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("create_table", "e_deal", None, False),
        ("create_table", "e_deal__lines", None, False),
    ]
    result = migrate(engine, v2)
    assert result.applied and result.schema_version == 2
    assert {"e_deal", "e_deal__lines"} <= tables(engine)
    insp = sa.inspect(engine)
    [deal_fk] = insp.get_foreign_keys("e_deal")
    assert (deal_fk["constrained_columns"], deal_fk["referred_table"]) == (
        ["customer"],
        "e_customer",
    )
    assert deal_fk["options"]["ondelete"] == "RESTRICT"
    [line_fk] = insp.get_foreign_keys("e_deal__lines")
    assert (line_fk["constrained_columns"], line_fk["referred_table"]) == (["parent_id"], "e_deal")
    assert line_fk["options"]["ondelete"] == "CASCADE"
    assert rows(engine, "e_customer", "name", "fax") == [("Acme", "555")]
    assert plan_of(engine, v2).empty


def test_add_fields_keeps_existing_rows(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    insert(engine, V1, "customer", name="Bolt", fax=None)
    v2 = B(
        E(
            "customer",
            F("name", max_length=200),
            F("fax"),
            F("industry"),
            F("code", unique=True),
            F("parent", "ref", to="customer"),
            F("revenue", "money"),
        )
    )
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("add_column", "e_customer", "industry", False),
        ("add_column", "e_customer", "code", False),
        ("add_column", "e_customer", "parent", False),
        ("add_column", "e_customer", "revenue", False),
        ("add_index", "e_customer", "parent", False),
    ]
    assert plan.changes[0].detail.get("en") == "add field 'industry' to customer"
    assert plan.changes[0].detail.get("zh") == "为 customer 添加字段 industry"
    migrate(engine, v2)
    assert rows(engine, "e_customer", "name", "fax", "industry", "code", "code__key", "parent") == [
        ("Acme", "555", None, None, None, None),
        ("Bolt", None, None, None, None, None),
    ]
    [fk] = sa.inspect(engine).get_foreign_keys("e_customer")
    assert (fk["constrained_columns"], fk["referred_table"]) == (["parent"], "e_customer")
    # the new unique key is enforced by the database
    insert(engine, v2, "customer", name="C", code="X-1")
    with pytest.raises(sa.exc.IntegrityError):
        insert(engine, v2, "customer", name="D", code=" x-1 ")
    assert plan_of(engine, v2).empty


def test_add_index_for_a_new_list_filter(engine: Engine) -> None:
    v1 = B(E("customer", F("name"), F("industry")))
    migrate(engine, v1)
    insert(engine, v1, "customer", name="Acme", industry="retail")
    v2 = B(E("customer", F("name"), F("industry"), list=ListView(filters=("industry",))))
    plan = plan_of(engine, v2)
    assert steps(plan) == [("add_index", "e_customer", "industry", False)]
    assert plan.changes[0].detail.get("en") == "index industry of customer"
    migrate(engine, v2)
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("e_customer")}
    assert indexes["ix_e_customer_industry"] == ["industry"]
    assert rows(engine, "e_customer", "name", "industry") == [("Acme", "retail")]


# --------------------------------------------------------------------------- renames


def test_rename_field_keeps_values(engine: Engine) -> None:
    v1 = B(E("customer", F("name"), F("code", unique=True), F("region", index=True)))
    migrate(engine, v1)
    insert(engine, v1, "customer", name="Acme", code="A-1", region="north")
    v2 = B(
        E(
            "customer",
            F("full_name", renamed_from="name"),
            F("ref_code", unique=True, renamed_from="code"),
            F("area", index=True, renamed_from="region"),
        )
    )
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("rename_column", "e_customer", "full_name", False),
        ("rename_column", "e_customer", "ref_code", False),
        ("rename_column", "e_customer", "area", False),
    ]
    assert plan.changes[0].detail.get("en") == (
        "rename field 'name' of customer to 'full_name' (values kept)"
    )
    migrate(engine, v2)
    assert columns(engine, "e_customer")[-4:] == ["full_name", "ref_code", "ref_code__key", "area"]
    assert rows(engine, "e_customer", "full_name", "ref_code", "ref_code__key", "area") == [
        ("Acme", "A-1", "a-1", "north")
    ]
    assert index_names(engine, "e_customer") == {"ix_e_customer_owner", "ix_e_customer_area"}
    with pytest.raises(sa.exc.IntegrityError):
        insert(engine, v2, "customer", full_name="Other", ref_code="a-1")
    assert plan_of(engine, v2).empty


def test_rename_entity_keeps_records_children_and_references(engine: Engine) -> None:
    contacts = F("contacts", "table", fields=frozen_map({"person": F("person")}))
    v1 = B(
        E("customer", F("name"), contacts),
        E("deal", F("customer", "ref", to="customer"), F("title")),
    )
    migrate(engine, v1)
    acme = insert(engine, v1, "customer", name="Acme")
    insert(engine, v1, "deal", customer=acme, title="Big one")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO e_customer__contacts (parent_id, position, person) "
                "VALUES (:p, 0, 'Ann')"
            ),
            {"p": acme},
        )
    v2 = B(
        E("client", F("name"), contacts, renamed_from="customer"),
        E("deal", F("customer", "ref", to="client"), F("title")),
    )
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("rename_table", "e_client", None, False),
        ("rename_table", "e_client__contacts", None, False),
    ]
    assert [c.detail.get("en") for c in plan.changes] == [
        "rename entity 'customer' to 'client' (records kept)",
        "table field 'contacts' follows its entity to 'client' (rows kept)",
    ]
    assert not plan.data_loss
    migrate(engine, v2)
    assert {"e_client", "e_client__contacts"} <= tables(engine)
    assert not {t for t in tables(engine) if t.startswith("e_customer")}
    assert rows(engine, "e_client", "id", "name") == [(acme, "Acme")]
    assert rows(engine, "e_client__contacts", "parent_id", "person") == [(acme, "Ann")]
    assert rows(engine, "e_deal", "customer", "title") == [(acme, "Big one")]
    insp = sa.inspect(engine)
    assert [f["referred_table"] for f in insp.get_foreign_keys("e_deal")] == ["e_client"]
    assert [f["referred_table"] for f in insp.get_foreign_keys("e_client__contacts")] == [
        "e_client"
    ]
    assert index_names(engine, "e_client", "e_client__contacts") == {
        "ix_e_client_owner",
        "ix_e_client__contacts_parent_id",
    }
    assert plan_of(engine, v2).empty
    # the old name is free again: a new entity may take it
    v3 = B(*v2.entities.values(), E("customer", F("name")))
    migrate(engine, v3)
    assert plan_of(engine, v3).empty


def test_field_gone_and_new_one_without_renamed_from_is_drop_and_add(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    v2 = B(E("customer", F("name", max_length=200), F("phone")))
    assert steps(plan_of(engine, v2)) == [
        ("drop_column", "e_customer", "fax", True),
        ("add_column", "e_customer", "phone", False),
    ]


# --------------------------------------------------------------------------- data loss


def test_drop_field_is_refused_then_applied_with_a_backup(engine: Engine, tmp_path: Path) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    insert(engine, V1, "customer", name="Bolt", fax=None)
    v2 = B(E("customer", F("name", max_length=200)))
    plan = plan_of(engine, v2)
    assert steps(plan) == [("drop_column", "e_customer", "fax", True)]
    assert plan.changes[0].reason is not None
    assert plan.changes[0].reason.get("en") == "1 record has a value in it; the values are deleted"
    before = shape(engine)

    with pytest.raises(MigrationRefused) as refused:
        apply_migration(engine, v2, build_schema(v2), plan)
    message = refused.value.message("en")
    assert "remove field 'fax' from customer" in message
    assert "--allow-data-loss" in message
    assert "--allow-data-loss" in refused.value.message("zh")
    assert shape(engine) == before
    assert rows(engine, "e_customer", "name", "fax") == [("Acme", "555"), ("Bolt", None)]
    assert meta(engine)["schema_version"] == "1"

    backups = tmp_path / "backups"
    result = apply_migration(
        engine, v2, build_schema(v2), plan, allow_data_loss=True, backup_dir=backups
    )
    assert result.applied and result.schema_version == 2
    assert columns(engine, "e_customer")[-1] == "name"
    assert rows(engine, "e_customer", "name") == [("Acme",), ("Bolt",)]
    if engine.dialect.name == "sqlite":
        assert result.backup_tables == ()
        assert result.backup_file is not None and result.backup_file.parent == backups
        assert re.fullmatch(r"app\.backup-\d{14}\.db", result.backup_file.name)
        with sqlite3.connect(result.backup_file) as copy:
            assert copy.execute("SELECT name, fax FROM e_customer ORDER BY id").fetchall() == [
                ("Acme", "555"),
                ("Bolt", None),
            ]
    else:
        assert result.backup_file is None
        [backup] = result.backup_tables
        assert re.fullmatch(r"ff_backup_e_customer_\d{14}", backup)
        assert rows(engine, backup, "name", "fax") == [("Acme", "555"), ("Bolt", None)]
    summary = json.loads(meta(engine)["last_migration"])
    assert summary["changes"][0]["kind"] == "drop_column"
    assert summary["backup_tables"] == list(result.backup_tables)
    assert summary["backup_file"] == (str(result.backup_file) if result.backup_file else None)
    assert plan_of(engine, v2).empty


def test_drop_entity_is_data_loss(engine: Engine) -> None:
    v1 = B(
        E("customer", F("name")),
        E("lead", F("name"), F("notes", "table", fields=frozen_map({"text": F("text")}))),
    )
    migrate(engine, v1)
    insert(engine, v1, "lead", name="Maybe")
    v2 = B(E("customer", F("name")))
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("drop_table", "e_lead__notes", None, True),
        ("drop_table", "e_lead", None, True),
    ]
    assert plan.changes[1].detail.get("en") == "remove entity 'lead' and its records"
    assert plan.changes[1].reason is not None
    assert plan.changes[1].reason.get("en") == "1 row is deleted"
    with pytest.raises(MigrationRefused):
        migrate(engine, v2)
    assert {"e_lead", "e_lead__notes"} <= tables(engine)
    migrate(engine, v2, allow_data_loss=True)
    assert not {"e_lead", "e_lead__notes"} & tables(engine)


@pytest.mark.parametrize(
    ("old", "new", "value", "kept", "why"),
    [
        (
            F("name", max_length=200),
            F("name", max_length=50),
            "x" * 120,
            "x" * 50,
            "1 existing value affected: values longer than 50 characters are cut",
        ),
        (
            F("name", "long_text"),
            F("name", max_length=20),
            "y" * 30,
            "y" * 20,
            "1 existing value affected: values longer than 20 characters are cut",
        ),
        (
            F("name", "money", precision=2),
            F("name", "money", precision=0),
            Decimal("12.74"),
            Decimal("13"),
            "1 existing value affected: values are rounded to 0 decimal places",
        ),
        (
            F("name", "money"),
            F("name", "integer"),
            Decimal("7.60"),
            8,
            "1 existing value affected: values are rounded to 0 decimal places; "
            "values with more than 19 digits before the point are cleared",
        ),
    ],
    ids=["varchar", "text-to-varchar", "scale", "decimal-to-integer"],
)
def test_narrowing_is_refused_then_cuts_or_rounds(
    engine: Engine, old: Field, new: Field, value: Any, kept: Any, why: str
) -> None:
    v1 = B(E("customer", old, F("other")))
    migrate(engine, v1)
    insert(engine, v1, "customer", name=value, other="a")
    v2 = B(E("customer", new, F("other")))
    plan = plan_of(engine, v2)
    assert steps(plan) == [("alter_type", "e_customer", "name", True)]
    assert plan.changes[0].reason is not None
    assert plan.changes[0].reason.get("en") == why
    before = shape(engine)
    with pytest.raises(MigrationRefused):
        apply_migration(engine, v2, build_schema(v2), plan)
    assert shape(engine) == before
    migrate(engine, v2, allow_data_loss=True)
    [(stored, other)] = rows(engine, "e_customer", "name", "other")
    assert other == "a"
    if isinstance(kept, Decimal):
        assert Decimal(str(stored)) == kept
    else:
        assert stored == kept
    assert plan_of(engine, v2).empty


def test_widening_is_safe(engine: Engine) -> None:
    v1 = B(E("customer", F("name", max_length=50), F("score", "integer")))
    migrate(engine, v1)
    insert(engine, v1, "customer", name="Acme", score=7)
    v2 = B(E("customer", F("name", max_length=300), F("score", "decimal", precision=2)))
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("alter_type", "e_customer", "name", False),
        ("alter_type", "e_customer", "score", False),
    ]
    assert plan.changes[0].detail.get("en") == (
        "change field 'name' of customer from VARCHAR(50) to VARCHAR(300)"
    )
    result = migrate(engine, v2)
    assert result.backup_file is None and result.backup_tables == ()
    assert varchar_length(engine, "e_customer", "name") == 300
    [(name, score)] = rows(engine, "e_customer", "name", "score")
    assert (name, Decimal(str(score))) == ("Acme", Decimal("7"))


def test_ids_are_not_reused_after_a_recreating_migration(engine: Engine) -> None:
    v1 = B(E("customer", F("name", max_length=50)))
    migrate(engine, v1)
    ids = [insert(engine, v1, "customer", name=n) for n in ("a", "b", "c")]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM e_customer WHERE id = :id"), {"id": ids[-1]})
    v2 = B(E("customer", F("name", max_length=80)))  # SQLite recreates the table
    migrate(engine, v2)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            ddl = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = 'e_customer'")
            ).scalar_one()
        assert "AUTOINCREMENT" in ddl
    assert insert(engine, v2, "customer", name="d") == ids[-1] + 1


def test_kind_change_across_families_converts_values(engine: Engine) -> None:
    v1 = B(E("customer", F("size", index=True), F("since")))
    migrate(engine, v1)
    for raw, since in (("12", "2024-01-02"), (" 7 ", "soon"), ("lots", None), (None, None)):
        insert(engine, v1, "customer", size=raw, since=since)
    v2 = B(E("customer", F("size", "integer", index=True), F("since", "date")))
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("alter_type", "e_customer", "size", True),
        ("alter_type", "e_customer", "since", True),
    ]
    assert plan.changes[0].reason is not None
    assert plan.changes[0].reason.get("en") == (
        "3 existing values are converted: values that are not valid BIGINT are cleared"
    )
    result = migrate(engine, v2, allow_data_loss=True)
    assert [n.get("en") for n in result.notes] == [
        "e_customer.size: 1 value did not convert to BIGINT and was cleared",
        "e_customer.since: 1 value did not convert to DATE and was cleared",
    ]
    table = build_schema(v2).entity("customer").table
    with engine.connect() as conn:
        converted = conn.execute(sa.select(table.c.size, table.c.since).order_by(table.c.id)).all()
    assert [tuple(r) for r in converted] == [
        (12, date(2024, 1, 2)),
        (7, None),
        (None, None),
        (None, None),
    ]
    assert "ix_e_customer_size" in index_names(engine, "e_customer")
    assert plan_of(engine, v2).empty


def test_unique_flags_and_references_change_in_place(engine: Engine) -> None:
    v1 = B(
        E("客户", F("名称"), F("传真"), F("code", "integer", unique=True), F("tag", unique=True)),
        E("region", F("name")),
        E("deal", F("customer", "ref", to="客户"), F("region", "integer")),
    )
    migrate(engine, v1)
    acme = insert(engine, v1, "客户", 名称="甲", 传真="1", code=5, tag="T")
    north = insert(engine, v1, "region", name="north")
    insert(engine, v1, "deal", customer=acme, region=north)
    insert(engine, v1, "deal", customer=None, region=north + 100)
    v2 = B(
        E("客户", F("名称"), F("code", "integer"), F("tag"), F("vip", "integer", unique=True)),
        E("region", F("name")),
        E(
            "deal",
            F("customer", "ref", to="region", on_delete="set_null"),
            F("region", "ref", to="region"),
        ),
    )
    plan = plan_of(engine, v2)
    customer = build_schema(v2).entity("客户").table.name
    assert [(c.kind, c.column, c.data_loss) for c in plan.changes] == [
        ("drop_column", build_schema(v1).entity("客户").columns["传真"].name, True),
        ("drop_unique", "tag__key", False),
        ("add_column", "vip", False),
        ("drop_unique", "code", False),
        ("add_index", "region", False),
        ("add_foreign_key", "customer", True),
        ("add_foreign_key", "region", True),
    ]
    assert [c.detail.get("en") for c in plan.changes[:2]] == [
        "remove field '传真' from 客户",
        "field 'tag' of 客户 is no longer unique",
    ]
    assert [c.reason.get("en") for c in plan.changes[5:] if c.reason] == [
        "1 existing reference to the old entity is cleared",
        "1 value matches no record and is cleared",
    ]
    migrate(engine, v2, allow_data_loss=True)
    assert rows(engine, "e_deal", "customer", "region") == [(None, north), (None, None)]
    fks = {
        f["constrained_columns"][0]: (f["referred_table"], f["options"].get("ondelete"))
        for f in sa.inspect(engine).get_foreign_keys("e_deal")
    }
    assert fks == {"customer": ("e_region", "SET NULL"), "region": ("e_region", "RESTRICT")}
    uniques = [
        tuple(u["column_names"]) for u in sa.inspect(engine).get_unique_constraints(customer)
    ]
    assert uniques == [("vip",)]
    insert(engine, v2, "客户", 名称="乙", code=5, tag="T")  # neither is unique any more
    assert plan_of(engine, v2).empty

    v3 = B(
        E(
            "客户",
            F("名称"),
            F("code", "integer", unique=True),
            F("tag", unique=True),
            F("vip", "integer"),
        ),
        E("region", F("name")),
        E(
            "deal",
            F("customer", "ref", to="region", on_delete="cascade"),
            F("region", "ref", to="region"),
        ),
    )
    with pytest.raises(MigrationFailed):  # code 5 and tag "T" are there twice now
        migrate(engine, v3)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DELETE FROM "{customer}" WHERE id <> :id'), {"id": acme})
    plan = plan_of(engine, v3)
    assert [(c.kind, c.column, c.data_loss) for c in plan.changes] == [
        ("add_unique", "tag__key", False),
        ("drop_unique", "vip", False),
        ("add_unique", "code", False),
        ("add_foreign_key", "customer", False),
    ]
    migrate(engine, v3)
    assert rows(engine, customer, "code", "tag", "tag__key") == [(5, "T", "t")]
    [fk] = [
        f
        for f in sa.inspect(engine).get_foreign_keys("e_deal")
        if f["constrained_columns"] == ["customer"]
    ]
    assert fk["options"]["ondelete"] == "CASCADE"
    with pytest.raises(sa.exc.IntegrityError):
        insert(engine, v3, "客户", 名称="丙", code=5)
    assert plan_of(engine, v3).empty


def test_required_field_without_default_on_non_empty_table_is_refused(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax=None)
    v2 = B(E("customer", F("name", max_length=200), F("fax"), F("industry", required=True)))
    plan = plan_of(engine, v2)
    assert steps(plan) == [("add_column", "e_customer", "industry", True)]
    assert plan.changes[0].reason is not None
    assert plan.changes[0].reason.get("en") == (
        "customer has 1 record that would have no value in required field 'industry' "
        "(give it a default; when allowed, they stay empty)"
    )
    with pytest.raises(MigrationRefused):
        apply_migration(engine, v2, build_schema(v2), plan)
    assert "industry" not in columns(engine, "e_customer")
    result = migrate(engine, v2, allow_data_loss=True)
    assert [n.get("en") for n in result.notes] == [
        "1 existing record of customer was left empty in required field 'industry'"
    ]
    assert rows(engine, "e_customer", "name", "industry") == [("Acme", None)]


def test_required_field_with_default_fills_existing_rows(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax=None)
    insert(engine, V1, "customer", name="Bolt", fax=None)
    v2 = B(
        E(
            "customer",
            F("name", max_length=200),
            F("fax"),
            F("industry", required=True, default="retail"),
            F("seats", "integer", required=True, default=3),
        )
    )
    plan = plan_of(engine, v2)
    assert steps(plan) == [
        ("add_column", "e_customer", "industry", False),
        ("add_column", "e_customer", "seats", False),
    ]
    assert plan.changes[0].detail.get("en") == (
        "add field 'industry' to customer (the 2 existing records get its default)"
    )
    migrate(engine, v2)
    assert rows(engine, "e_customer", "name", "industry", "seats") == [
        ("Acme", "retail", 3),
        ("Bolt", "retail", 3),
    ]


def test_required_field_on_an_empty_table_is_safe(engine: Engine) -> None:
    migrate(engine, V1)
    v2 = B(E("customer", F("name", max_length=200), F("fax"), F("industry", required=True)))
    assert steps(plan_of(engine, v2)) == [("add_column", "e_customer", "industry", False)]


def test_new_unique_field_with_duplicate_values_is_blocked(engine: Engine) -> None:
    v1 = B(E("customer", F("code")))
    migrate(engine, v1)
    first = insert(engine, v1, "customer", code="A1")
    insert(engine, v1, "customer", code="a1 ")
    v2 = B(E("customer", F("code", unique=True)))
    plan = plan_of(engine, v2)
    assert steps(plan) == [("add_unique", "e_customer", "code__key", False)]
    assert plan.changes[0].blocker is not None
    assert plan.changes[0].blocker.get("en") == (
        "1 value appears more than once ('a1'); fix those records first"
    )
    before = shape(engine)
    with pytest.raises(MigrationFailed):
        apply_migration(engine, v2, build_schema(v2), plan)
    assert shape(engine) == before
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE e_customer SET code = 'B2' WHERE id = :id"), {"id": first})
    migrate(engine, v2)
    assert rows(engine, "e_customer", "code", "code__key") == [("B2", "b2"), ("a1 ", "a1")]


# --------------------------------------------------------------------------- plan, state, locks


def test_plan_writes_nothing(engine: Engine) -> None:
    plan = plan_of(engine, V1)
    assert not plan.empty and len(plan.changes) == 1 + len(SYSTEM_TABLES)
    assert tables(engine) == set()
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    before, before_meta = shape(engine), meta(engine)
    v2 = B(E("lead", F("name")), E("customer", F("name", max_length=20), F("phone")))
    plan = plan_of(engine, v2)
    assert plan.data_loss
    assert "[loses data]" in plan.render("en") and "[丢失数据]" in plan.render("zh")
    assert shape(engine) == before
    assert meta(engine) == before_meta
    assert rows(engine, "e_customer", "name", "fax") == [("Acme", "555")]


def test_concurrent_migrations_apply_once(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    v2 = B(
        E(
            "customer",
            F("name", max_length=300),
            F("fax"),
            F("industry"),
            list=ListView(filters=("industry",)),
        ),
        E("deal", F("customer", "ref", to="customer"), F("amount", "money")),
    )
    schema = build_schema(v2)
    barrier = threading.Barrier(2)
    results: list[MigrationResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        own = create_engine(url_of(engine))
        try:
            plan = plan_migration(own, v2, schema)
            barrier.wait(timeout=30)
            results.append(apply_migration(own, v2, schema, plan))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(r.applied for r in results) == [False, True]
    loser = next(r for r in results if not r.applied)
    assert loser.plan.empty and loser.plan.changes == ()
    winner = next(r for r in results if r.applied)
    assert [c.kind for c in winner.plan.changes] == [
        "create_table",
        "alter_type",
        "add_column",
        "add_index",
    ]
    assert meta(engine)["schema_version"] == "2"
    assert plan_of(engine, v2).empty
    assert rows(engine, "e_customer", "name", "fax", "industry") == [("Acme", "555", None)]


def test_ensure_current_before_and_after_migrate(engine: Engine) -> None:
    with pytest.raises(SchemaBehind) as behind:
        ensure_current(engine, V1)
    assert "formflow migrate" in behind.value.message("en")
    assert "formflow migrate" in behind.value.message("zh")
    migrate(engine, V1)
    ensure_current(engine, V1)

    relabelled = B(*V1.entities.values(), title="Shop 2")  # no DDL, a new digest
    with pytest.raises(SchemaBehind):
        ensure_current(engine, relabelled)
    plan = plan_of(engine, relabelled)
    assert plan.changes == () and not plan.empty
    assert plan.render("en").startswith("No table changes; the new blueprint version")
    result = migrate(engine, relabelled)
    assert result.applied and result.schema_version == 2
    ensure_current(engine, relabelled)
    with pytest.raises(SchemaBehind):
        ensure_current(engine, V1)


def test_schema_behind_default_message() -> None:
    assert SchemaBehind().message("en") == (
        "the database schema is behind the blueprint; run `formflow migrate PATH --db URL`"
    )
    assert SchemaBehind().message("zh") == (
        "数据库结构落后于蓝图；请运行 `formflow migrate PATH --db URL`"
    )


def test_audit_log_stays_append_only_after_a_recreating_migration(engine: Engine) -> None:
    migrate(engine, V1)
    insert(engine, V1, "customer", name="Acme", fax="555")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ff_audit (at, entity, record_id, action, via, version, changes) "
                "VALUES (:at, 'customer', 1, 'create', 'form', 1, '{}')"
            ),
            {"at": NOW.replace(tzinfo=None)},
        )
    # drop a column and narrow another: SQLite recreates e_customer (batch mode)
    v2 = B(E("customer", F("name", max_length=100)))
    migrate(engine, v2, allow_data_loss=True)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            triggers = (
                conn.execute(
                    sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
                )
                .scalars()
                .all()
            )
        assert triggers == ["ff_audit_no_delete", "ff_audit_no_update"]
    for statement in ("UPDATE ff_audit SET action = 'x'", "DELETE FROM ff_audit"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert rows(engine, "ff_audit", "action") == [("create",)]
    assert rows(engine, "e_customer", "name") == [("Acme",)]


# --------------------------------------------------------------------------- the command


def write_blueprint(folder: Path, fields: str) -> Path:
    path = folder / "shop.yaml"
    path.write_text(
        "formflow: 1\nid: shop\ntitle: Shop\ndefault_locale: en\n"
        "entities:\n  customer:\n    label: Customer\n    fields:\n" + fields,
        encoding="utf-8",
    )
    return path


def test_command_plans_applies_and_refuses(engine: Engine, tmp_path: Path) -> None:
    url = url_of(engine)
    path = write_blueprint(
        tmp_path,
        "      name: {type: text, label: Name}\n      fax: {type: text, label: Fax}\n",
    )
    runner = CliRunner()

    planned = runner.invoke(migrate_command, [str(path), "--db", url, "--plan"])
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.splitlines()[1] == "  + create entity 'customer'"
    assert tables(engine) == set()

    applied = runner.invoke(migrate_command, [str(path), "--db", url])
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.splitlines()[-1] == "Migrated: 17 changes, schema version 1."
    insert(engine, B(E("customer", F("name"), F("fax"))), "customer", name="Acme", fax="555")

    again = runner.invoke(migrate_command, [str(path), "--db", url, "--lang", "zh"])
    assert again.exit_code == 0
    assert again.stdout.startswith("数据库已是最新")

    write_blueprint(tmp_path, "      name: {type: text, label: Name}\n")
    refused = runner.invoke(migrate_command, [str(path), "--db", url])
    assert refused.exit_code == 1
    assert "  - remove field 'fax' from customer [loses data]" in refused.stdout
    assert "re-run with --allow-data-loss" in refused.stderr
    assert "fax" in columns(engine, "e_customer")

    backups = tmp_path / "backups"
    allowed = runner.invoke(
        migrate_command,
        [str(path), "--db", url, "--allow-data-loss", "--backup-dir", str(backups)],
    )
    assert allowed.exit_code == 0, allowed.output
    assert "fax" not in columns(engine, "e_customer")
    if engine.dialect.name == "sqlite":
        [backup] = backups.iterdir()
        assert f"Backup: {backup}" in allowed.stdout
    else:
        assert "Backup tables: ff_backup_e_customer_" in allowed.stdout


def test_command_default_database_and_bad_blueprint(tmp_path: Path) -> None:
    path = write_blueprint(tmp_path, "      name: {type: text, label: Name}\n")
    runner = CliRunner()
    planned = runner.invoke(migrate_command, [str(path), "--plan"])
    assert planned.exit_code == 0
    assert not (tmp_path / "shop.db").exists()  # --plan never creates the database
    applied = runner.invoke(migrate_command, [str(path)])
    assert applied.exit_code == 0, applied.output
    assert (tmp_path / "shop.db").exists()

    write_blueprint(tmp_path, "      name: {type: nosuchkind, label: Name}\n")
    broken = runner.invoke(migrate_command, [str(path)])
    assert broken.exit_code == 1
    assert "nosuchkind" in broken.output


def test_an_older_database_gets_the_uploads_table(engine: Engine) -> None:
    """A database made before ff_uploads existed is behind; migrating adds the table."""
    migrate(engine, V1)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ff_uploads"))
        conn.execute(sa.text("UPDATE ff_meta SET value = 'older' WHERE key = 'schema_digest'"))
    with pytest.raises(SchemaBehind):
        ensure_current(engine, V1)
    plan = plan_of(engine, V1)
    assert [(c.kind, c.table) for c in plan.changes] == [("create_table", "ff_uploads")]
    assert not plan.data_loss
    migrate(engine, V1)
    assert "ff_uploads" in tables(engine)
    ensure_current(engine, V1)
    assert plan_of(engine, V1).empty


def test_an_older_database_gets_the_exports_table(engine: Engine) -> None:
    """A database made before ff_exports existed is behind; migrating adds the table."""
    migrate(engine, V1)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ff_exports"))
        conn.execute(sa.text("UPDATE ff_meta SET value = 'older' WHERE key = 'schema_digest'"))
    with pytest.raises(SchemaBehind):
        ensure_current(engine, V1)
    plan = plan_of(engine, V1)
    assert [(c.kind, c.table) for c in plan.changes] == [("create_table", "ff_exports")]
    assert not plan.data_loss
    migrate(engine, V1)
    assert "ff_exports" in tables(engine)
    assert {c["name"] for c in sa.inspect(engine).get_columns("ff_exports")} >= {
        "user",
        "at",
        "entity",
        "format",
        "rows",
        "filters",
        "file_name",
    }
    ensure_current(engine, V1)
    assert plan_of(engine, V1).empty


def test_an_older_database_gets_the_imports_table(engine: Engine) -> None:
    """A database made before ff_imports existed is behind; migrating adds the table."""
    migrate(engine, V1)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ff_imports"))
        conn.execute(sa.text("UPDATE ff_meta SET value = 'older' WHERE key = 'schema_digest'"))
    with pytest.raises(SchemaBehind):
        ensure_current(engine, V1)
    plan = plan_of(engine, V1)
    assert [(c.kind, c.table) for c in plan.changes] == [("create_table", "ff_imports")]
    assert not plan.data_loss
    migrate(engine, V1)
    assert "ff_imports" in tables(engine)
    ensure_current(engine, V1)
    assert plan_of(engine, V1).empty
