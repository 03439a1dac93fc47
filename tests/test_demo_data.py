"""engine.demo_data: a demo.yaml seeded through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import textwrap
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.demo import DEMO_PASSWORD, seed_demo
from engine.demo_data import DEMO_FILE, demo_file, relative_date, seed_demo_file
from engine.errors import DemoDataInvalid
from engine.loader import load
from engine.runtime import build_runtime
from engine.storage.database import create_engine
from engine.storage.query import Query

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2024, 6, 12)  # a Wednesday in the second quarter

BLUEPRINT = """\
formflow: 1
id: shop
title: {zh: 小店, en: Shop}
roles:
  sales_rep: {zh: 销售代表, en: Sales rep}
  sales_manager: {zh: 销售经理, en: Sales manager}
  admin: {zh: 管理员, en: Admin}
entities:
  customer:
    label: {zh: 客户, en: Customer}
    title_field: name
    fields:
      name: {type: text, required: true, unique: true}
      since: {type: date}
    access:
      sales_rep: {read: all}
      sales_manager: {read: all}
      admin: {create: true, read: all, update: all}
  sale:
    label: {zh: 订单, en: Order}
    title_field: code
    fields:
      code: {type: autonumber, format: "DD-{SEQ:3}"}
      customer: {type: ref, to: customer, required: true}
      due: {type: date, required: true}
      visit_at: {type: datetime}
      lines:
        type: table
        fields:
          product: {type: text, required: true}
          qty: {type: integer, min: 1}
          ship_on: {type: date}
      total: {type: integer, formula: "SUM(lines.qty)"}
      status:
        type: choice
        readonly: true
        default: draft
        options: [draft, pending, approved, rejected]
    rules:
      - check: "total <= 100"
        field: lines
        message: {zh: 数量过多, en: Too many}
    access:
      sales_rep: {create: true, read: own, update: own}
      sales_manager: {read: team}
      admin: {create: true, read: all, update: all}
flows:
  sale_approval:
    entity: sale
    status_field: status
    steps:
      manager: {approvers: {manager_of: owner}}
"""

DEMO = """\
users:
  - {name: admin, display_name: 管理员, roles: [admin]}
  - {name: wang, display_name: 王经理, roles: [sales_manager]}
  - {name: li, display_name: 李雷, roles: [sales_rep], manager: wang}
records:
  sale:                                   # written before customer: refs decide the order
    - _key: first
      customer: 华东机电
      due: month_start+1m
      visit_at: today+1d 14:30
      lines:
        - {product: 机床, qty: 2, ship_on: today+2w}
        - {product: 刀具, qty: 10}
      owner: li
    - {customer: 杭州云栖, due: today-3d, owner: li}
  customer:
    - {name: 华东机电, since: year_start-1y}
    - {name: 杭州云栖, since: quarter_start}
flows:
  - {entity: sale, record: first, submit: li, decisions: [{approve: wang, comment: 同意}]}
  - {entity: sale, record: DD-002, submit: li}
"""


def template(tmp_path: Path, demo: str = DEMO) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(BLUEPRINT, encoding="utf-8")
    (folder / DEMO_FILE).write_text(textwrap.dedent(demo), encoding="utf-8")
    return folder


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ---------------------------------------------------------------- relative dates


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("today", date(2024, 6, 12), None),
        ("today+5d", date(2024, 6, 17), None),
        ("today - 2w", date(2024, 5, 29), None),
        ("month_start", date(2024, 6, 1), None),
        ("month_start-1m", date(2024, 5, 1), None),
        ("month_end", date(2024, 6, 30), None),
        ("quarter_start", date(2024, 4, 1), None),
        ("quarter_start+3m-1d", date(2024, 6, 30), None),
        ("year_start+1y", date(2025, 1, 1), None),
        ("today+1m", date(2024, 7, 12), None),
        ("today-1d 09:30", date(2024, 6, 11), (9, 30)),
        ("now", date(2024, 6, 12), None),
    ],
)
def test_relative_dates(text: str, day: date, at: tuple[int, int] | None) -> None:
    parsed = relative_date(text, TODAY)
    assert parsed is not None
    assert parsed[0] == day
    assert (parsed[1].hour, parsed[1].minute) == at if at else parsed[1] is None


def test_months_clamp_to_the_month_end() -> None:
    assert relative_date("today+1m", date(2024, 1, 31)) == (date(2024, 2, 29), None)
    assert relative_date("month_end-1m", date(2024, 3, 15)) == (date(2024, 2, 29), None)


@pytest.mark.parametrize(
    "text", ["2024-06-01", "tomorrow", "today+5", "today+5q", "today 25:00", 5]
)
def test_other_values_are_not_relative_dates(text: object) -> None:
    assert relative_date(text, TODAY) is None


# ---------------------------------------------------------------- seeding


def test_demo_file_is_found_beside_the_blueprint(tmp_path: Path) -> None:
    folder = template(tmp_path)
    assert demo_file(load(folder)) == folder / DEMO_FILE
    (folder / DEMO_FILE).unlink()
    assert demo_file(load(folder)) is None


def test_seeds_users_records_refs_dates_rows_and_flows(tmp_path: Path, db_url: str) -> None:
    folder = template(tmp_path)
    blueprint = load(folder)
    engine = create_engine(db_url)
    try:
        summary = seed_demo_file(blueprint, engine, folder / DEMO_FILE, today=TODAY)
        assert summary.users == ["admin", "wang", "li"]
        assert summary.records == {"customer": 2, "sale": 2}
        assert summary.flows == 2
        rt = build_runtime(blueprint, engine)
        assert rt.users.get("li").manager == "wang"
        assert rt.users.get("li").display_name == "李雷"
        assert rt.users.authenticate("li", DEMO_PASSWORD) is not None
        customers = {
            r["name"]: r for r in rt.records.list_records("customer", Query(limit=10)).rows
        }
        assert customers["华东机电"]["since"] == date(2023, 1, 1)
        assert customers["杭州云栖"]["since"] == date(2024, 4, 1)
        orders = {r["code"]: r for r in rt.records.list_records("sale", Query(limit=10)).rows}
        first = rt.records.get("sale", orders["DD-001"]["id"])
        assert first.values["customer"] == customers["华东机电"]["id"]
        assert first.values["due"] == date(2024, 7, 1)
        visit = first.values["visit_at"]
        assert isinstance(visit, datetime)
        assert visit == datetime(2024, 6, 13, 14, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
        assert [row["product"] for row in first.tables["lines"]] == ["机床", "刀具"]
        assert first.tables["lines"][0]["ship_on"] == date(2024, 6, 26)
        assert first.values["total"] == 12
        assert first.owner == "li"
        assert first.values["status"] == "approved"  # li submitted, wang approved
        second = rt.records.get("sale", orders["DD-002"]["id"])
        assert second.values["customer"] == customers["杭州云栖"]["id"]
        assert second.values["due"] == date(2024, 6, 9)
        assert second.values["status"] == "pending"  # waits in wang's inbox
        assert [i.entity for i in rt.flows.inbox(rt.users.get("wang").actor)] == ["sale"]
    finally:
        engine.dispose()


def test_seed_demo_uses_the_demo_file(tmp_path: Path, db_url: str) -> None:
    folder = template(tmp_path)
    engine = create_engine(db_url)
    try:
        lines = seed_demo(load(folder), engine)
        assert "admin, wang, li" in lines[1] and DEMO_PASSWORD in lines[1]
        rt = build_runtime(load(folder), engine)
        assert rt.records.list_records("sale").count == 2
        assert rt.users.find("zhou.min") is None  # not the built-in CRM demo
    finally:
        engine.dispose()


def test_docs_example_seeds_the_training_template(tmp_path: Path) -> None:
    """The demo.yaml example of docs/demo-data.md is valid against blueprints/training."""
    doc = (ROOT / "docs" / "demo-data.md").read_text(encoding="utf-8")
    example = re.search(r"## 文件结构 / The file\n\n```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    folder = tmp_path / "training"
    folder.mkdir()
    for name in ("blueprint.yaml", "analytics.yaml"):
        source = ROOT / "blueprints" / "training" / name
        (folder / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / DEMO_FILE).write_text(example.group(1), encoding="utf-8")
    blueprint = load(folder)
    engine = create_engine(f"sqlite:///{tmp_path}/doc.db")
    try:
        summary = seed_demo_file(blueprint, engine, folder / DEMO_FILE)
        assert summary.records == {
            "course": 1,
            "session": 1,
            "enrolment": 1,
            "budget_request": 1,
        }
        rt = build_runtime(blueprint, engine)
        [request] = rt.records.list_records("budget_request").rows
        assert request["status"] == "approved"
        assert Decimal(str(request["approved_amount"])) == Decimal("12000")  # HR made it 2 people
    finally:
        engine.dispose()


# ---------------------------------------------------------------- errors


def errors_of(tmp_path: Path, demo: str) -> tuple[DemoDataInvalid, str]:
    folder = template(tmp_path, demo)
    engine = create_engine(f"sqlite:///{tmp_path}/bad.db")
    try:
        with pytest.raises(DemoDataInvalid) as caught:
            seed_demo_file(load(folder), engine, folder / DEMO_FILE, today=TODAY)
    finally:
        engine.dispose()
    return caught.value, str(folder / DEMO_FILE)


def test_unknown_entity_field_and_key_are_named_at_their_lines(tmp_path: Path) -> None:
    demo = DEMO.replace("since: quarter_start", "sinse: quarter_start").replace(
        "  customer:\n    - {name: 华东机电",
        "  client:\n    - {name: x}\n  customer:\n    - {name: 华东机电",
    )
    demo = "settings: {}\n" + demo
    error, path = errors_of(tmp_path, demo)
    rendered = error.render("en")
    assert f"{path}:1:1: unknown key 'settings'" in rendered
    assert f"{path}:{line_of(demo, 'client:')}:" in rendered
    assert "the blueprint has no entity 'client'" in rendered
    assert f"{path}:{line_of(demo, 'sinse')}:" in rendered
    assert "did you mean 'since'?" in rendered
    assert "你是不是想写 'since'" in error.render("zh")


def test_nothing_is_written_when_the_shape_is_wrong(tmp_path: Path) -> None:
    import sqlalchemy as sa

    errors_of(tmp_path, DEMO.replace("roles: [admin]", "role: [admin]"))
    engine = create_engine(f"sqlite:///{tmp_path}/bad.db")
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_a_reference_that_finds_nothing(tmp_path: Path) -> None:
    demo = DEMO.replace("customer: 杭州云栖", "customer: 杭州云西")
    error, path = errors_of(tmp_path, demo)
    line = line_of(demo, "杭州云西")
    assert f"{path}:{line}:" in error.render("en")
    assert "no customer record titled '杭州云西'" in error.render("en")
    assert "找不到标题为 '杭州云西' 的 customer 记录" in error.render("zh")


def test_a_record_the_blueprint_refuses(tmp_path: Path) -> None:
    demo = DEMO.replace("qty: 10}", "qty: 100}")
    error, path = errors_of(tmp_path, demo)
    line = line_of(demo, "_key: first")
    assert f"{path}:{line}:" in error.render("en")
    assert "lines: Too many" in error.render("en")


def test_a_bad_relative_date_and_a_time_on_a_date(tmp_path: Path) -> None:
    demo = DEMO.replace("due: month_start+1m", "due: month_start+1q").replace(
        "due: today-3d", "due: today-3d 10:00"
    )
    error, path = errors_of(tmp_path, demo)
    rendered = error.render("en")
    assert f"{path}:{line_of(demo, 'month_start+1q')}:" in rendered
    assert "cannot read the relative date 'month_start+1q'" in rendered
    assert f"{path}:{line_of(demo, 'today-3d 10:00')}:" in rendered
    assert "a date field takes no time of day" in rendered


def test_a_decision_nobody_can_take(tmp_path: Path) -> None:
    demo = DEMO.replace("decisions: [{approve: wang", "decisions: [{approve: admin")
    error, path = errors_of(tmp_path, demo)
    assert f"{path}:{line_of(demo, 'approve: admin')}:" in error.render("en")
    assert "admin has no open task at this point" in error.render("en")


def test_a_manager_listed_after_the_user(tmp_path: Path) -> None:
    demo = DEMO.replace(
        "  - {name: wang, display_name: 王经理, roles: [sales_manager]}\n", ""
    ).replace("manager: wang}", "manager: wang}\n  - {name: wang, roles: [sales_manager]}")
    error, path = errors_of(tmp_path, demo)
    assert f"{path}:{line_of(demo, 'manager: wang')}:" in error.render("en")
    assert "the manager 'wang' must be listed before" in error.render("en")


def test_a_yaml_syntax_error(tmp_path: Path) -> None:
    demo = DEMO.replace(
        "  - {name: 华东机电, since: year_start-1y}", "  - {name: 华东机电, since: [}"
    )
    error, path = errors_of(tmp_path, demo)
    assert re.search(rf"{re.escape(path)}:\d+:\d+: ", error.render("en"))


def test_a_fork_uses_its_own_demo_file_else_its_templates(tmp_path: Path) -> None:
    base = template(tmp_path)
    fork = tmp_path / "my_shop"
    fork.mkdir()
    (fork / "blueprint.yaml").write_text(
        "formflow: 1\nid: my_shop\ntitle: 我的小店\nextends: ../shop\n", encoding="utf-8"
    )
    assert demo_file(load(fork)) == base / DEMO_FILE
    (fork / DEMO_FILE).write_text("users: []\n", encoding="utf-8")
    assert demo_file(load(fork)) == fork / DEMO_FILE
