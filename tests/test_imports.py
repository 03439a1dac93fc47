"""Imports through the record service, on SQLite and PostgreSQL (the CRM blueprint).

All or nothing, partial, update-on, dry runs, refs by title or id within the
importer's read scope, unique values within the file and against the database,
child rows (repeated parent rows and child sheets), formula payloads kept as
text, the ff_imports job and the audit, an export-shaped round trip, and a
``formflow import`` killed with SIGKILL half-way leaving the database as it was.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from engine.errors import RecordInvalid
from engine.imports import ImportLimits, ImportOptions, ImportService, load_mapping_file
from engine.loader import load
from engine.permissions import Permissions
from engine.records import SYSTEM, Actor, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import UserService
from tests.conftest import reset_postgres

ROOT = Path(__file__).resolve().parent.parent
CRM = ROOT / "blueprints" / "crm"
FUTURE = "2031-06-30"


@dataclass
class World:
    records: RecordService
    service: ImportService
    users: UserService
    tmp: Path
    url: str

    def actor(self, name: str) -> Actor:
        return self.users.get(name).actor

    def count(self, table: str) -> int:
        with self.records.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())

    def names(self, entity: str = "customer") -> list[str]:
        table = self.records.schema.entity(entity).table
        with self.records.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(table.c.name).order_by(table.c.id))]

    def csv(self, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
        path = self.tmp / name
        path.write_bytes(text.encode(encoding))
        return path

    def run(
        self,
        entity: str,
        path: Path,
        actor: Actor = SYSTEM,
        file_name: str | None = None,
        **options: Any,
    ) -> Any:
        return self.service.run(
            entity,
            path,
            actor=actor,
            options=ImportOptions(lang="en", **options),
            file_name=file_name,
            report_path=self.tmp / "report.xlsx",
        )


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from _world(db_url, tmp_path, ImportLimits(chunk_size=3))


def _world(db_url: str, tmp_path: Path, limits: ImportLimits) -> Iterator[World]:
    bp = load(CRM)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine)
    users.add("admin", roles=["admin"])
    users.add("wang.fang", roles=["sales_manager"])
    users.add("li.lei", roles=["sales_rep"], manager="wang.fang")
    users.add("han.meimei", roles=["sales_rep"], manager="wang.fang")
    users.add("sun.li", roles=["finance"])
    records = RecordService(bp, schema, engine, access=Permissions(bp, users))
    yield World(records, ImportService(records, limits=limits), users, tmp_path, db_url)
    engine.dispose()


def customers_csv(rows: list[tuple[str, str]], header: str = "客户名称 / Name,电话 / Phone") -> str:
    return header + "\n" + "".join(f"{a},{b}\n" for a, b in rows)


# --------------------------------------------------------------------------- modes


def test_headers_by_name_label_and_both_labels(world: World) -> None:
    path = world.csv(
        "客户名称 / Name,level,Industry,电话,标签 / Tags,annual_revenue\n"
        'Acme 公司,A,Retail,021-5555 0001,"vip, new",2000000\n'
        "Beta 公司,B 级（普通客户）,金融,021-5555 0002,,\n",
        encoding="utf-8-sig",
    )
    result = world.run("customer", path, file_name="客户.csv")
    assert result.ok and result.committed, [e.render("en") for e in result.errors]
    assert (result.created, result.failed, result.rows_read) == (2, 0, 2)
    acme = world.records.list_records("customer").rows[0]
    by_name = {r["name"]: r for r in world.records.list_records("customer").rows}
    acme = by_name["Acme 公司"]
    assert acme["level"] == "A" and acme["industry"] == "retail" and acme["tags"] == ["vip", "new"]
    assert acme["annual_revenue"] == Decimal(2000000)
    assert by_name["Beta 公司"]["level"] == "B" and by_name["Beta 公司"]["industry"] == "finance"
    assert by_name["Beta 公司"]["tags"] == ["new"]  # a blank cell takes the default on create


def test_all_or_nothing_reports_every_bad_row_of_every_chunk(world: World) -> None:
    before = (world.count("e_customer"), world.count("ff_audit"))
    rows = [(f"客户{i:02d}", "021-5555 0000") for i in range(10)]
    rows[1] = ("客户01", "")  # no phone, no email: the create rule fails (chunk 1)
    rows[7] = ("X", "021-5555 0000")  # too short (min_length 2): chunk 3
    result = world.run("customer", world.csv(customers_csv(rows)))
    assert not result.committed and result.state == "failed"
    assert result.failed == 2 and result.rows_read == 10
    assert sorted({e.row for e in result.errors}) == [3, 9]  # the header is row 1
    short = next(e for e in result.errors if e.row == 9)
    assert short.column == "客户名称 / Name" and short.value == "X"
    assert "at least 2" in short.message.get("en") and "至少" in short.message.get("zh")
    assert (world.count("e_customer"), world.count("ff_audit")) == before
    assert "nothing written" in result.summary("en") and "未写入" in result.summary("zh")


def test_partial_writes_the_good_rows(world: World) -> None:
    rows = [(f"客户{i:02d}", "021-5555 0000") for i in range(8)]
    rows[4] = ("客户04", "")
    result = world.run("customer", world.csv(customers_csv(rows)), partial=True)
    assert result.committed and result.state == "done" and not result.ok
    assert (result.created, result.failed) == (7, 1)
    assert world.names() == [r[0] for i, r in enumerate(rows) if i != 4]
    assert [e.row for e in result.errors] == [6]


def test_dry_run_writes_nothing(world: World) -> None:
    before = (world.count("e_customer"), world.count("ff_audit"), world.count("ff_sequences"))
    path = world.csv(customers_csv([("甲公司", "021-5555 0000"), ("乙公司", "021-5555 0000")]))
    result = world.run("customer", path, dry_run=True)
    assert result.ok and not result.committed and result.created == 2
    assert "would create 2" in result.summary("en")
    assert (world.count("e_customer"), world.count("ff_audit"), world.count("ff_sequences")) == (
        before
    )


def test_the_error_list_is_capped_with_a_count(db_url: str, tmp_path: Path) -> None:
    for world in _world(db_url, tmp_path, ImportLimits(chunk_size=7, max_errors=5)):
        rows = [(f"客户{i:02d}", "") for i in range(20)]
        result = world.run("customer", world.csv(customers_csv(rows)), partial=True)
        assert result.failed == 20 and len(result.errors) == 5 and result.errors_total == 20
        report = openpyxl.load_workbook(tmp_path / "report.xlsx", read_only=True)
        values = [r for r in report.worksheets[0].iter_rows(values_only=True)]
        assert len(values) == 1 + 5 + 1  # header, 5 rows, "15 more rows ..."
        assert "15 more rows" in str(values[-1][0])


# --------------------------------------------------------------------------- unique, refs


def test_duplicate_unique_values_within_the_file_and_against_the_database(world: World) -> None:
    world.records.create("customer", {"name": "已有公司", "phone": "021-5555 0000"})
    rows = [
        ("甲公司", "021-5555 0000"),
        ("甲公司", "021-5555 0000"),  # same chunk
        ("乙公司", "021-5555 0000"),
        ("丙公司", "021-5555 0000"),
        ("已有公司", "021-5555 0000"),  # against the database
        ("  乙公司 ", "021-5555 0000"),  # two chunks after the first: still a duplicate
    ]
    result = world.run("customer", world.csv(customers_csv(rows)), partial=True)
    assert sorted(e.row for e in result.errors) == [3, 6, 7]
    assert all("already exists" in e.message.get("en") for e in result.errors)
    assert world.names() == ["已有公司", "甲公司", "乙公司", "丙公司"]


def _customer(world: World, name: str, owner: str | None = None) -> int:
    data = {"name": name, "phone": "021-5555 0000"}
    if owner:
        data["owner"] = owner
    return world.records.create("customer", data).id


def test_refs_by_title_or_id_and_a_missing_record(world: World) -> None:
    acme = _customer(world, "Acme 公司")
    beta = _customer(world, "Beta 公司")
    path = world.csv(
        "商机名称 / Name,客户 / Customer,Amount,Stage\n"
        "D1,acme 公司,100,lead\n"  # by title (unique: case-insensitive)
        f"D2,#{beta},200,lead\n"  # by id
        f"D3,{acme},300,lead\n"
        "D4,没有这家公司,400,lead\n"  # missing
    )
    result = world.run("opportunity", path, partial=True)
    assert result.created == 3 and result.failed == 1
    [missing] = result.errors
    assert (missing.row, missing.column, missing.value) == (5, "客户 / Customer", "没有这家公司")
    assert "no Customer '没有这家公司'" in missing.message.get("en")
    assert "找不到客户“没有这家公司”" in missing.message.get("zh")
    stored = {r["name"]: r["customer"] for r in world.records.list_records("opportunity").rows}
    assert stored == {"D1": acme, "D2": beta, "D3": acme}


def test_an_ambiguous_title_asks_for_the_id(world: World) -> None:
    acme = _customer(world, "Acme 公司")
    for _ in range(2):
        world.records.create("contact", {"customer": acme, "name": "王芳"})
    path = world.csv(f"name,customer,contact,amount\nD1,{acme},王芳,100\n")
    result = world.run("opportunity", path)
    assert not result.committed
    [error] = result.errors
    assert error.column == "contact" and "2 Contact records are '王芳'" in error.message.get("en")


def test_refs_resolve_within_the_importers_read_scope(world: World) -> None:
    _customer(world, "李雷的客户", owner="li.lei")
    _customer(world, "韩梅梅的客户", owner="han.meimei")
    path = world.csv("name,customer,amount\nD1,李雷的客户,100\nD2,韩梅梅的客户,100\n")
    result = world.run("opportunity", path, world.actor("li.lei"), partial=True)
    assert result.created == 1 and result.failed == 1
    assert result.errors[0].value == "韩梅梅的客户"
    assert "no Customer" in result.errors[0].message.get("en")  # as if it did not exist
    assert world.records.list_records("opportunity").rows[0]["owner"] == "li.lei"


def test_formula_payloads_are_imported_as_plain_text(world: World) -> None:
    payloads = ["=cmd|' /C calc'!A0", "+1+cmd", "-2+3", "@SUM(1,1)", '=HYPERLINK("http://x")']
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "phone", "address"])
    for i, text in enumerate(payloads):
        writer.writerow([f"客户{i}", "021-5555 0000", text])
    result = world.run("customer", world.csv(buffer.getvalue()))
    assert result.ok, [e.render("en") for e in result.errors]
    stored = [r["address"] for r in world.records.list_records("customer", actor=SYSTEM).rows]
    assert sorted(stored) == sorted(payloads)


# --------------------------------------------------------------------------- update-on


def test_update_on_a_unique_field(world: World) -> None:
    acme = _customer(world, "Acme 公司")
    before = world.records.get("customer", acme)
    path = world.csv(
        "name,phone,employees,level\n"
        "ACME 公司,021-5555 9999,,B\n"  # matches (normalised): updated, employees cleared
        "新公司,021-5555 1111,10,C\n"
    )
    world.records.update("customer", acme, {"employees": 5}, version=before.version)
    result = world.run("customer", path, update_on="name")
    assert result.ok and (result.created, result.updated) == (1, 1)
    after = world.records.get("customer", acme)
    assert after.values["phone"] == "02155559999" and after.values["employees"] is None
    assert after.values["name"] == "ACME 公司" and after.version == before.version + 2
    history = world.records.history("customer", acme)
    assert history[-1].via == "import" and history[-1].action == "update"


def test_update_on_needs_a_unique_field(world: World) -> None:
    result = world.run("customer", world.csv("name,phone\nA公司,1\n"), update_on="industry")
    assert result.refused is not None and "unique" in result.refused.get("en")
    result = world.run("customer", world.csv("phone\n1\n"), update_on="name")
    assert result.refused is not None and "no column" in result.refused.get("en")


def test_update_joins_the_callers_transaction(world: World) -> None:
    rid = _customer(world, "甲公司")
    with world.records.write_engine.connect() as conn:
        tx = conn.begin()
        world.records.update("customer", rid, {"phone": "021-5555 7777"}, version=1, conn=conn)
        with pytest.raises(RecordInvalid):  # refused under its savepoint
            world.records.update("customer", rid, {"name": "X"}, version=2, conn=conn)
        tx.rollback()
    assert world.records.get("customer", rid).values["phone"] == "02155550000"


# --------------------------------------------------------------------------- child rows


def test_child_rows_as_repeated_parent_rows(world: World) -> None:
    acme = _customer(world, "Acme 公司")
    path = world.csv(
        "name,customer,amount,close_date,产品明细.产品 / Line items.Product,lines.qty,"
        "Line items.Unit price\n"
        f"大单,Acme 公司,1000,{FUTURE},P1,2,10\n"
        f"大单,Acme 公司,1000,{FUTURE},P2,1,5\n"  # repeated parent cells
        ",,,,P3,3,1\n"  # blank parent cells
        f"小单,#{acme},10,{FUTURE},,,\n"
        f"坏单,#{acme},10,{FUTURE},P4,0,1\n"  # qty below min 1
    )
    result = world.run("opportunity", path, partial=True)
    assert (result.created, result.failed, result.rows_read) == (2, 1, 3)
    [error] = result.errors
    assert (error.row, error.column, error.value) == (6, "lines.qty", "0")
    big = next(r for r in world.records.list_records("opportunity").rows if r["name"] == "大单")
    record = world.records.get("opportunity", big["id"])
    assert [(r["product"], r["qty"]) for r in record.tables["lines"]] == [
        ("P1", 2),
        ("P2", 1),
        ("P3", 3),
    ]
    assert record.values["total"] == Decimal("28.00")
    assert record.values["code"].startswith("OPP-")  # the autonumber was assigned


def _xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        ws = book.create_sheet(name)
        for row in rows:
            ws.append(row)
    book.save(path)
    return path


def test_child_rows_on_a_sheet_of_their_own(world: World) -> None:
    _customer(world, "Acme 公司")
    path = _xlsx(
        world.tmp / "opps.xlsx",
        {
            "商机": [
                ["key", "name", "customer", "amount"],
                ["k1", "一号", "Acme 公司", 1000],
                ["k2", "二号", "Acme 公司", 1000],
                ["k3", "三号", "Acme 公司", 1000],
            ],
            "产品明细 (Line items)": [
                ["key", "Product", "数量", "price"],
                ["k1", "P1", 2, 10.5],
                ["k1", "P2", 1, 5],
                ["k3", "P3", 3, 1],
                ["k2", "P9", 1, 1],  # out of order: reported
            ],
        },
    )
    result = world.run("opportunity", path, partial=True)
    assert any("'key'" in w.get("en") for w in result.warnings)  # the key column itself
    assert result.created == 3 and result.failed == 1
    [error] = result.errors
    assert (error.sheet, error.row, error.value) == ("产品明细 (Line items)", 5, "k2")
    by_name = {r["name"]: r["id"] for r in world.records.list_records("opportunity").rows}
    lines = world.records.get("opportunity", by_name["一号"]).tables["lines"]
    assert [(r["product"], r["qty"], r["price"]) for r in lines] == [
        ("P1", 2, Decimal("10.50")),
        ("P2", 1, Decimal("5.00")),
    ]
    assert world.records.get("opportunity", by_name["二号"]).tables["lines"] == []


# --------------------------------------------------------------------------- mapping


def test_a_mapping_file_names_the_columns(world: World) -> None:
    mapping = world.tmp / "map.yaml"
    mapping.write_text("公司: name\n座机: phone\n备注: null\n", encoding="utf-8")
    path = world.csv("公司,座机,备注\n甲公司,021-5555 0000,随便\n")
    result = world.run("customer", path, mapping=load_mapping_file(mapping))
    assert result.ok and result.created == 1 and not result.warnings
    as_json = world.tmp / "map.json"
    as_json.write_text(json.dumps({"公司": "name", "座机": "phone"}), encoding="utf-8")
    assert load_mapping_file(as_json) == {"公司": "name", "座机": "phone"}
    mapping.write_text("公司: nosuchfield\n", encoding="utf-8")
    result = world.run("customer", path, mapping=load_mapping_file(mapping))
    assert result.refused is not None and "nosuchfield" in result.refused.get("en")


def test_unknown_columns_are_ignored_with_a_warning_and_ambiguous_ones_refused(
    world: World,
) -> None:
    path = world.csv(
        "name,phone,favourite colour,id,version,编号\n甲公司,021-5555 0000,red,7,3,9\n"
    )
    result = world.run("customer", path)
    assert result.ok and result.created == 1
    assert [w.get("en") for w in result.warnings] == [
        "the column 'favourite colour' matches no field; ignored"
    ]
    # two columns for one field (by its English and its Chinese label)
    path = world.csv("Email,邮箱,phone\na@example.com,b@example.com,1\n")
    result = world.run("customer", path)
    assert result.refused is not None and "both map to" in result.refused.get("en")


def test_columns_the_importer_may_not_write_are_ignored(world: World) -> None:
    path = world.csv("name,phone,credit_limit\n甲公司,021-5555 0000,99999\n")
    result = world.run("customer", path, world.actor("li.lei"))
    assert result.ok and result.created == 1
    assert "you may not write this field" in result.warnings[0].get("en")
    assert world.records.list_records("customer").rows[0]["credit_limit"] is None


def test_an_importer_who_may_not_create_is_refused(world: World) -> None:
    path = world.csv("name,phone\n甲公司,021-5555 0000\n")
    result = world.run("customer", path, world.actor("sun.li"))
    assert result.refused is not None and "may not create" in result.refused.get("en")
    assert world.count("e_customer") == 0


def test_a_gb18030_file_imports_chinese_text(world: World) -> None:
    path = world.csv(
        "客户名称,电话,地址\n北京甲公司,010-5555 0000,朝阳区建国路 1 号\n", encoding="gb18030"
    )
    result = world.run("customer", path)
    assert result.ok
    row = world.records.list_records("customer").rows[0]
    assert (row["name"], row["address"]) == ("北京甲公司", "朝阳区建国路 1 号")


# --------------------------------------------------------------------------- audit, jobs


def test_jobs_and_audit_record_who_when_how_many_and_the_file(world: World) -> None:
    path = world.csv(customers_csv([("甲公司", "1-5555 0000"), ("乙公司", "1-5555 0000")]))
    actor = world.actor("wang.fang")
    job = world.service.jobs.create(
        user=actor.name,
        entity="customer",
        file_name="客户.csv",
        mode="all",
        update_on=None,
        dry_run=False,
    )
    assert world.service.jobs.get(job).state == "queued"  # type: ignore[union-attr]
    result = world.service.run("customer", path, actor=actor, file_name="客户.csv", job_id=job)
    assert result.ok
    stored = world.service.jobs.get(job)
    assert stored is not None and stored.state == "done" and stored.user == "wang.fang"
    assert (stored.rows_read, stored.created, stored.failed) == (2, 2, 0)
    assert stored.started_at is not None and stored.finished_at is not None
    assert stored.progress == 1.0
    audit = world.records.schema.audit
    with world.records.engine.connect() as conn:
        rows = conn.execute(sa.select(audit).where(audit.c.action == "import")).all()
    [entry] = rows
    assert entry.user == "wang.fang" and entry.via == "import"
    assert entry.changes["rows"] == 2 and entry.changes["source"] == "客户.csv"
    first = world.records.list_records("customer").rows[0]["id"]
    assert world.records.history("customer", first)[0].via == "import"


def test_a_failed_job_keeps_its_first_errors(world: World) -> None:
    path = world.csv(customers_csv([("甲公司", ""), ("乙公司", "")]))
    job = world.service.jobs.create(
        user=None, entity="customer", file_name="c.csv", mode="all", update_on=None, dry_run=False
    )
    world.service.run("customer", path, job_id=job)
    stored = world.service.jobs.get(job)
    assert stored is not None and stored.state == "failed" and stored.failed == 2
    assert [e.row for e in stored.errors] == [2, 3] and stored.errors_total == 2
    assert "email or a phone" in stored.errors[0].message.get("en")


# --------------------------------------------------------------------------- round trip


def test_an_export_shaped_file_round_trips(world: World) -> None:
    """Bilingual headers, system and computed columns, as an export writes them."""
    acme = _customer(world, "Acme 公司")
    original = world.records.create(
        "opportunity",
        {
            "name": "设备采购",
            "customer": acme,
            "stage": "proposal",
            "amount": "12345.60",
            "close_date": FUTURE,
            "is_key": True,
            "notes": "=1+1 不是公式",
        },
    )
    header = [
        "编号 / ID",
        "商机编号 / Code",
        "商机名称 / Name",
        "客户 / Customer",
        "销售阶段 / Stage",
        "预计金额 / Amount",
        "赢单概率 / Probability",
        "预计成交日期 / Close date",
        "重点商机 / Key deal",
        "备注 / Notes",
        "负责人 / Owner",
        "创建时间 / Created",
    ]
    values = original.values
    row = [
        str(original.id),
        values["code"],
        values["name"],
        "Acme 公司",
        "方案制定",
        "12,345.60",
        "60%",
        values["close_date"].isoformat(),
        "是",
        values["notes"],
        "",
        "2026-11-27 10:00",
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, row])
    result = world.run("opportunity", world.csv(buffer.getvalue(), encoding="utf-8-sig"))
    assert result.ok and not result.warnings, [e.render("en") for e in result.errors]
    copy = next(r for r in world.records.list_records("opportunity").rows if r["id"] != original.id)
    again = world.records.get("opportunity", copy["id"])
    for name in ("name", "customer", "stage", "amount", "close_date", "is_key", "notes"):
        assert again.values[name] == values[name], name
    assert again.values["probability"] == values["probability"]
    assert again.values["code"] != values["code"]  # a new record gets a new number
    assert isinstance(again.values["close_date"], date)


# --------------------------------------------------------------------------- kill -9


def test_a_killed_import_leaves_the_database_as_it_was(world: World) -> None:
    """``formflow import`` killed with SIGKILL half-way: nothing of it is stored."""
    _customer(world, "已有公司")
    path = world.tmp / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("name,phone\n")
        for i in range(40_000):
            out.write(f"公司{i:06d},021-5555 0000\n")

    def snapshot() -> tuple[Any, ...]:
        with world.records.engine.connect() as conn:
            seqs = conn.execute(sa.text("SELECT key, value FROM ff_sequences ORDER BY key")).all()
        return (
            world.count("e_customer"),
            world.count("ff_audit"),
            [tuple(r) for r in seqs],
        )

    before = snapshot()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "engine.cli", "import", str(CRM), "customer", str(path)),
            *("--db", world.url, "--lang", "en"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # the first chunks are in the (open) transaction
        seen.append(line)
        if line.startswith("progress") and not line.startswith("progress 0%"):
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, seen
    assert "100%" not in seen[-1], seen  # killed half-way, not after the end
    assert any(line.startswith("progress") for line in seen), seen
    assert snapshot() == before
    jobs = world.service.jobs
    assert jobs.reap() == 1
    table = world.records.schema.metadata.tables["ff_imports"]
    with world.records.engine.connect() as conn:
        job_id = conn.execute(sa.select(table.c.id)).scalar_one()
    job = jobs.get(job_id)
    assert job is not None and job.state == "failed" and job.message is not None
    assert "interrupted" in job.message.get("en") and job.created == 0


# --------------------------------------------------------------------------- CLI


def test_the_import_command(world: World) -> None:
    from click.testing import CliRunner

    from engine.commands.imports import import_command

    runner = CliRunner()
    good = world.csv(customers_csv([("甲公司", "021-5555 0000"), ("乙公司", "021-5555 0000")]))
    base = [str(CRM), "customer"]
    db = ["--db", world.url, "--lang", "en"]

    dry = runner.invoke(import_command, [*base, str(good), *db, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run" in dry.stdout and world.count("e_customer") == 0

    done = runner.invoke(import_command, [*base, str(good), *db, "--as", "wang.fang"])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "Imported: 2 created, 0 updated, 0 failed (2 read)"
    assert "progress 100%" in done.stderr
    owners = {r["owner"] for r in world.records.list_records("customer").rows}
    assert owners == {"wang.fang"}

    bad = world.csv(customers_csv([("丙公司", ""), ("丁公司", "021-5555 0000")]), "bad.csv")
    report = world.tmp / "out" / "errors.xlsx"
    failed = runner.invoke(import_command, [*base, str(bad), *db, "--report", str(report)])
    assert failed.exit_code == 1
    assert "row 2: Give an email or a phone number" in failed.stderr
    assert "nothing written" in failed.stderr and report.is_file()
    assert world.count("e_customer") == 2

    partial = runner.invoke(
        import_command, [*base, str(bad), *db, "--partial", "--update-on", "name"]
    )
    assert partial.exit_code == 1 and "1 created" in partial.stderr
    assert world.count("e_customer") == 3

    mapping = world.tmp / "map.json"
    mapping.write_text('{"公司": "name", "座机": "phone"}', encoding="utf-8")
    mapped = world.csv("公司,座机\n戊公司,021-5555 0000\n", "mapped.csv")
    ok = runner.invoke(import_command, [*base, str(mapped), *db, "--mapping", str(mapping)])
    assert ok.exit_code == 0, ok.output

    nobody = runner.invoke(import_command, [*base, str(good), *db, "--as", "nobody"])
    assert nobody.exit_code == 1 and "no active user named nobody" in nobody.stderr
    forbidden = runner.invoke(import_command, [*base, str(good), *db, "--as", "sun.li"])
    assert forbidden.exit_code == 1 and "may not create" in forbidden.stderr
    unknown = runner.invoke(import_command, [str(CRM), "nothing", str(good), *db])
    assert unknown.exit_code == 1 and "no entity" in unknown.stderr


def test_mapped_columns_after_an_unmapped_one_blank_and_short_rows(world: World) -> None:
    """The picked cells of a row: mapped columns anywhere, blank cells, short rows."""
    path = world.csv(
        "colour,name,phone,email\n"
        "red,甲公司,   ,a@example.com\n"
        "blue,乙公司,021-5555 0001\n"
        "green,丙公司,021-5555 0002,c@example.com\n"
    )
    result = world.run("customer", path)
    assert result.ok and result.created == 3, result.errors
    rows = {r["name"]: r for r in world.records.list_records("customer").rows}
    assert (rows["甲公司"]["phone"], rows["甲公司"]["email"]) == (None, "a@example.com")
    assert (rows["乙公司"]["phone"], rows["乙公司"]["email"]) == ("02155550001", None)
    assert (rows["丙公司"]["phone"], rows["丙公司"]["email"]) == ("02155550002", "c@example.com")
    apart = world.csv("phone,colour,name\n021-5555 0003,red,丁公司\n")  # mapped: 1st and 3rd
    result = world.run("customer", apart)
    assert result.ok and result.created == 1
    rows = {r["name"]: r for r in world.records.list_records("customer").rows}
    assert rows["丁公司"]["phone"] == "02155550003"


# --------------------------------------------------------------------------- two readings

#: Opportunities to import: good rows, blank and white-space cells, a default
#: (stage), a missing and an ambiguous-free ref, a bad number, a required field
#: left blank, a cell over the length limit, a short row, a formula payload.
MIXED_ROWS: list[list[str | None]] = [
    ["D1", "Acme 公司", "100", "lead", FUTURE],
    ["D2", "没有这家公司", "200", "lead", FUTURE],
    ["D3", "Acme 公司", "abc", "", FUTURE],
    ["   ", "Beta 公司", "300", "lead", FUTURE],
    ["D5", " beta 公司 ", "400", "  ", ""],
    ["D6", "Acme 公司", "500", "contract", None],
    ["D7" + "x" * 60, "Acme 公司", "600", "lead", FUTURE],
    ["=cmd|' /C calc'!A0", "Beta 公司", "700", "lead", FUTURE],
    ["D9", "Beta 公司"],
    ["D10", "Acme 公司", "-5", "lead", FUTURE],
]


def _mixed_files(world: World) -> tuple[Path, Path]:
    header = ["商机名称 / Name", "客户 / Customer", "Amount", "Stage", "close_date"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in MIXED_ROWS:
        writer.writerow(["" if v is None else v for v in row])
    csv_path = world.csv(buffer.getvalue(), "mixed.csv")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    for row in MIXED_ROWS:
        sheet.append(row)
    xlsx_path = world.tmp / "mixed.xlsx"
    book.save(xlsx_path)
    return csv_path, xlsx_path


def _stored_opportunities(world: World) -> list[tuple[Any, ...]]:
    rows = world.records.list_records("opportunity").rows
    return sorted(
        (r["name"], r["customer"], r["amount"], r["stage"], r["close_date"], r["code"])
        for r in rows
    )


@pytest.mark.parametrize("partial", [False, True])
def test_a_csv_read_by_columns_and_an_xlsx_read_by_items_agree(
    db_url: str, tmp_path: Path, partial: bool
) -> None:
    """A plain CSV goes to the record service column by column, an XLSX row by row
    (``ItemReader.item``): the same cells give the same errors and the same records."""
    outcomes = []
    for kind in ("csv", "xlsx"):
        folder = tmp_path / kind
        folder.mkdir()
        limits = ImportLimits(chunk_size=3, max_cell_chars=50)
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{folder}/formflow.db"
        else:
            url = db_url
            reset_postgres(url)
        for world in _world(url, folder, limits):
            _customer(world, "Acme 公司")
            _customer(world, "Beta 公司")
            csv_path, xlsx_path = _mixed_files(world)
            path = csv_path if kind == "csv" else xlsx_path
            result = world.run("opportunity", path, partial=partial)
            errors = sorted(  # (a blank cell is "" in a CSV file, None in a workbook)
                (
                    e.row,
                    e.column,
                    e.value or None,
                    e.field,
                    e.message.get("en"),
                    e.message.get("zh"),
                )
                for e in result.errors
            )
            outcomes.append((result.created, result.failed, errors, _stored_opportunities(world)))
    (csv_created, csv_failed, csv_errors, csv_stored), xlsx = outcomes
    assert (csv_created, csv_failed, csv_errors, csv_stored) == xlsx
    # What both found (so the comparison is not of two empty results):
    bad_rows = sorted({e[0] for e in csv_errors})
    assert bad_rows == [3, 4, 5, 7, 8, 10, 11], csv_errors
    assert csv_failed == 7
    # A number that cannot be read is reported as such, not also as missing.
    assert [e[4] for e in csv_errors if e[0] == 4] == ["not a valid number: abc"]
    if partial:
        names = [r[0] for r in csv_stored]
        assert sorted(names) == sorted(["D1", "D5", "=cmd|' /C calc'!A0"]), csv_stored
        d5 = next(r for r in csv_stored if r[0] == "D5")
        assert d5[3] == "lead" and d5[4] is None  # a blank stage takes its default
    else:
        assert csv_created == 0 and csv_stored == []
