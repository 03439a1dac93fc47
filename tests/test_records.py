"""The record service on SQLite and PostgreSQL: every write path's rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.errors import Conflict, NotFound, RecordInvalid
from engine.loader import load
from engine.records import SYSTEM, Actor, BatchInvalid, RecordService
from engine.storage.database import create_engine
from engine.storage.query import Filter, Query
from engine.storage.schema import build_schema

BLUEPRINT = """
formflow: 1
id: shop
title: {zh: 测试, en: Test}
roles:
  rep: {zh: 销售, en: Rep}
  admin: {zh: 管理员, en: Admin}
entities:
  customer:
    label: {zh: 客户, en: Customer}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true, unique: true, max_length: 50}
      level: {type: choice, label: 等级, options: [A, B, C], default: C}
      revenue: {type: money, label: {zh: 年营收, en: Revenue}, min: 0}
      email: {type: email, label: 邮箱}
      code: {type: text, label: 代码, pattern: '^[A-Z]{3}$'}
    rules:
      - check: "level != 'A' or revenue >= 1000000"
        field: level
        message:
          zh: A 级客户年营收需不少于 100 万
          en: "A-level customers need revenue of at least 1,000,000"
  deal:
    label: {zh: 商机, en: Deal}
    fields:
      code: {type: autonumber, label: 编号, format: "D-{YYYY}{MM}-{SEQ:4}"}
      customer: {type: ref, label: 客户, to: customer, required: true}
      stage: {type: choice, label: 阶段, options: [lead, proposal, won, lost], default: lead}
      status:
        type: choice
        label: 状态
        options: [draft, pending, approved, rejected]
        default: draft
      amount: {type: money, label: 金额, min: 0, readonly_if: "stage == 'won'"}
      probability:
        type: percent
        label: 概率
        formula: "CHOOSE_BY(stage, {'lead': 10, 'proposal': 60, 'won': 100, 'lost': 0})"
      close_date: {type: date, label: 成交日期, required_if: "stage == 'won'"}
      win_reason: {type: text, label: 赢单原因, visible_if: "stage == 'won'", required: true}
      opened: {type: date, label: 开始日期, default: "=TODAY()"}
      lines:
        type: table
        label: 明细
        fields:
          product: {type: text, label: 产品, required: true}
          qty: {type: integer, label: 数量, min: 1}
          price: {type: money, label: 单价}
      total: {type: money, label: 合计, formula: "SUM(lines.qty * lines.price)"}
    rules:
      - check: "not ISCHANGED(customer)"
        field: customer
        on: [update]
        message: {zh: 商机的客户不能更改, en: The customer of a deal cannot change}
flows:
  approval:
    entity: deal
    status_field: status
    steps:
      manager: {label: 经理审批, approvers: {role: admin}, mode: any}
"""

NOW = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
REP = Actor("li.lei", frozenset({"rep"}))


@pytest.fixture
def service(tmp_path: Path, db_url: str) -> Iterator[RecordService]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    schema.metadata.create_all(engine)
    yield RecordService(bp, schema, engine, clock=lambda: NOW)
    engine.dispose()


def count(service: RecordService, entity: str) -> int:
    table = service.schema.entity(entity).table
    with service.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def customer(service: RecordService, name: str = "ACME", **more: object) -> int:
    return service.create("customer", {"name": name, **more}, actor=REP).id


def test_create_coerces_form_strings_applies_defaults_and_computes(service: RecordService) -> None:
    cid = customer(service)
    rec = service.create(
        "deal",
        {
            "customer": str(cid),
            "stage": "proposal",
            "amount": "1234.5",
            "lines": [
                {"product": "Widget", "qty": "3", "price": "10.25"},
                {"product": "Gadget", "qty": 2, "price": "100"},
            ],
        },
        actor=REP,
        via="form",
    )
    assert rec.values["amount"] == Decimal("1234.50")
    assert rec.values["probability"] == Decimal(60)
    assert rec.values["total"] == Decimal("230.75")
    assert rec.values["opened"] == date(2026, 11, 27)  # TODAY() in Asia/Shanghai
    assert rec.values["status"] == "draft"
    assert rec.values["code"] == "D-202611-0001"
    assert rec.owner == "li.lei" and rec.created_by == "li.lei" and rec.version == 1
    assert [r["product"] for r in rec.tables["lines"]] == ["Widget", "Gadget"]
    again = service.get("deal", rec.id)
    assert again.values == rec.values


def test_all_errors_come_back_together(service: RecordService) -> None:
    customer(service, "ACME")
    with pytest.raises(RecordInvalid) as info:
        service.create(
            "customer",
            {"name": "  acme ", "level": "Z", "revenue": "-5", "email": "nope", "code": "abc"},
            actor=REP,
        )
    errors = info.value.as_dict("en")
    assert set(errors) == {"name", "level", "revenue", "email", "code"}
    assert "already exists" in errors["name"][0]
    assert count(service, "customer") == 1


def test_required_messages_are_bilingual(service: RecordService) -> None:
    with pytest.raises(RecordInvalid) as info:
        service.create("customer", {}, actor=REP)
    assert info.value.as_dict("zh") == {"name": ["必填"]}
    assert info.value.as_dict("en") == {"name": ["is required"]}


def test_rule_message_lands_on_named_field(service: RecordService) -> None:
    with pytest.raises(RecordInvalid) as info:
        service.create("customer", {"name": "Big", "level": "A", "revenue": "10"}, actor=REP)
    assert info.value.as_dict("zh") == {"level": ["A 级客户年营收需不少于 100 万"]}
    ok = service.create("customer", {"name": "Big", "level": "A", "revenue": "2000000"}, actor=REP)
    assert ok.values["level"] == "A"


def test_required_if_and_visible_if(service: RecordService) -> None:
    cid = customer(service)
    # win_reason is required but hidden unless won: not required while hidden
    rec = service.create("deal", {"customer": cid, "stage": "lead"}, actor=REP)
    assert rec.values["win_reason"] is None
    with pytest.raises(RecordInvalid) as info:
        service.update("deal", rec.id, {"stage": "won"}, version=rec.version, actor=REP)
    assert set(info.value.errors) == {"close_date", "win_reason"}
    won = service.update(
        "deal",
        rec.id,
        {"stage": "won", "close_date": "2026-12-01", "win_reason": "price"},
        version=rec.version,
        actor=REP,
    )
    assert won.values["probability"] == Decimal(100) and won.version == 2


def test_ref_must_exist(service: RecordService) -> None:
    with pytest.raises(RecordInvalid) as info:
        service.create("deal", {"customer": 999}, actor=REP)
    assert info.value.as_dict("en") == {"customer": ["the referenced Customer #999 does not exist"]}
    assert count(service, "deal") == 0


def test_delete_refused_while_referenced_then_allowed(service: RecordService) -> None:
    cid = customer(service)
    deal = service.create("deal", {"customer": cid}, actor=REP)
    with pytest.raises(RecordInvalid) as info:
        service.delete("customer", cid, actor=REP)
    assert "referenced by 1 Deal" in info.value.as_dict("en")["_record"][0]
    service.delete("deal", deal.id, actor=REP)
    service.delete("customer", cid, actor=REP)
    with pytest.raises(NotFound):
        service.get("customer", cid)
    # a deal pointing at the deleted customer cannot be created
    with pytest.raises(RecordInvalid):
        service.create("deal", {"customer": cid}, actor=REP)


def test_child_rows_update_add_remove_in_one_write(service: RecordService) -> None:
    cid = customer(service)
    rec = service.create(
        "deal",
        {
            "customer": cid,
            "lines": [
                {"product": "A", "qty": 1, "price": 5},
                {"product": "B", "qty": 1, "price": 7},
            ],
        },
        actor=REP,
    )
    _a, b = rec.tables["lines"]
    upd = service.update(
        "deal",
        rec.id,
        {
            "lines": [
                {"id": b["id"], "product": "B", "qty": 3, "price": 7},
                {"product": "C", "qty": 1, "price": 1},
            ]
        },
        version=1,
        actor=REP,
    )
    assert [(r["product"], r["qty"]) for r in upd.tables["lines"]] == [("B", 3), ("C", 1)]
    assert upd.tables["lines"][0]["id"] == b["id"]
    assert upd.values["total"] == Decimal("22.00")
    history = service.history("deal", rec.id)
    assert history[-1].changes["lines"] == {"added": 1, "changed": 1, "removed": 1}
    assert history[-1].changes["total"] == ["12.00", "22.00"]


def test_forged_child_row_id_is_refused(service: RecordService) -> None:
    cid = customer(service)
    one = service.create(
        "deal", {"customer": cid, "lines": [{"product": "A", "qty": 1}]}, actor=REP
    )
    two = service.create(
        "deal", {"customer": cid, "lines": [{"product": "B", "qty": 1}]}, actor=REP
    )
    foreign = one.tables["lines"][0]["id"]
    with pytest.raises(RecordInvalid) as info:
        service.update(
            "deal",
            two.id,
            {"lines": [{"id": foreign, "product": "X", "qty": 9}]},
            version=1,
            actor=REP,
        )
    assert info.value.as_dict("en") == {"lines[0]": ["row 1 does not belong to this record"]}
    assert service.get("deal", one.id).tables["lines"][0]["product"] == "A"


def test_child_row_errors_name_row_and_column(service: RecordService) -> None:
    cid = customer(service)
    with pytest.raises(RecordInvalid) as info:
        service.create("deal", {"customer": cid, "lines": [{"qty": 0}]}, actor=REP)
    assert set(info.value.errors) == {"lines[0].product", "lines[0].qty"}


def test_stale_version_is_a_conflict_naming_who(service: RecordService) -> None:
    cid = customer(service)
    service.update(
        "customer", cid, {"revenue": 10}, version=1, actor=Actor("han.mei", frozenset({"rep"}))
    )
    with pytest.raises(Conflict) as info:
        service.update("customer", cid, {"revenue": 20}, version=1, actor=REP)
    assert "han.mei" in info.value.message("en")
    assert info.value.details["current_version"] == 2
    assert service.get("customer", cid).values["revenue"] == Decimal("10.00")


def test_update_without_version_is_refused(service: RecordService) -> None:
    cid = customer(service)
    with pytest.raises(Conflict):
        service.update("customer", cid, {"revenue": 1}, actor=REP)


def test_version_in_data_is_the_expected_version(service: RecordService) -> None:
    cid = customer(service)
    rec = service.update("customer", cid, {"revenue": 1, "version": 1}, actor=REP)
    assert rec.version == 2


def test_idempotent_create_returns_first_result(service: RecordService) -> None:
    first = service.create("customer", {"name": "Once"}, actor=REP, idempotency_key="k-1")
    again = service.create("customer", {"name": "Once"}, actor=REP, idempotency_key="k-1")
    assert again.id == first.id
    assert count(service, "customer") == 1


def test_history_records_who_what_and_path(service: RecordService) -> None:
    cid = customer(service, "Hist", revenue="5")
    service.update("customer", cid, {"revenue": "6"}, version=1, actor=REP, via="form")
    history = service.history("customer", cid)
    assert [(h.action, h.via, h.user, h.version) for h in history] == [
        ("create", "api", "li.lei", 1),
        ("update", "form", "li.lei", 2),
    ]
    assert history[1].changes == {"revenue": ["5.00", "6.00"]}


def test_reads_in_a_reading_block_share_one_connection(service: RecordService) -> None:
    cid = customer(service, "Shared", revenue="5")
    did = service.create("deal", {"customer": cid, "win_reason": "-"}, actor=REP).id
    checkouts: list[object] = []

    def counted(*args: object) -> None:
        checkouts.append(args)

    sa.event.listen(service.engine, "checkout", counted)
    try:
        with service.reading():
            record = service.get("deal", did)
            titles = service.title_values("customer", [cid])
            history = service.history("deal", did, loaded=record)
            with service.reading():  # nested: still the same connection
                page = service.list_records("deal")
        assert len(checkouts) == 1
        assert titles == {cid: "Shared"}
        assert [h.action for h in history] == ["create"]
        assert [r["id"] for r in page.rows] == [did]

        # Outside a block every read takes its own connection, as before.
        service.get("deal", did)
        service.history("deal", did)
        assert len(checkouts) == 3
    finally:
        sa.event.remove(service.engine, "checkout", counted)


class Ticks:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_capped_count_is_reused_briefly_and_an_exact_one_never(
    service: RecordService,
) -> None:
    from engine.records import BIG_COUNT_SECONDS
    from engine.storage.query import Filter, Query

    ticks = Ticks()
    svc = RecordService(service.blueprint, service.schema, service.engine, monotonic=ticks)
    other = service  # another process writing to the same database
    for i in range(6):
        customer(other, f"C{i}", level="B")

    def count(q: Query) -> tuple[int | None, bool]:
        page = svc.list_records("customer", q, count_cap=3)
        return page.count, page.count_capped

    first = Query(limit=2)
    assert count(first) == (3, True)  # "3+"
    ids = [r["id"] for r in other.list_records("customer").rows]
    for rid in ids[:3]:  # down to 3 records, by another process
        other.delete("customer", rid)
    # Within the bound the capped count may be reused; the rows are always fresh.
    assert count(first) == (3, True)
    assert [r["id"] for r in svc.list_records("customer", Query(limit=50)).rows] == ids[3:]
    ticks.now += BIG_COUNT_SECONDS
    assert count(first) == (3, False)  # exact again

    # An exact count (not above the cap) is never reused; nor is another filter's.
    customer(other, "C6", level="A", revenue="2000000")
    assert count(first) == (3, True)
    assert count(Query(filters=(Filter("level", "eq", "B"),), limit=2)) == (3, False)
    assert count(Query(filters=(Filter("level", "eq", "A"),), limit=2)) == (1, False)

    # A write through this service forgets every reused count at once.
    rows = svc.list_records("customer", Query(limit=50)).rows
    svc.delete("customer", rows[0]["id"])
    assert count(first) == (3, False)


def test_audit_log_refuses_update_and_delete_in_the_database(service: RecordService) -> None:
    customer(service)
    audit = service.schema.audit
    for stmt in (audit.update().values(user="mallory"), audit.delete()):
        with pytest.raises(sa.exc.DBAPIError), service.engine.begin() as conn:
            conn.execute(stmt)
    with service.engine.connect() as conn:
        assert conn.execute(sa.select(audit.c.user)).scalars().all() == ["li.lei"]


def test_mass_assignment_is_ignored_or_refused(service: RecordService) -> None:
    cid = customer(service)
    rec = service.create(
        "deal",
        {
            "customer": cid,
            "id": 4242,
            "created_by": "mallory",
            "version": 77,
            "code": "FORGED",
            "probability": 99,
            "total": 1,
        },
        actor=REP,
    )
    assert rec.id != 4242 and rec.created_by == "li.lei" and rec.version == 1
    assert rec.values["code"] == "D-202611-0001" and rec.values["probability"] == Decimal(10)
    with pytest.raises(RecordInvalid) as info:
        service.create(
            "deal", {"customer": cid, "owner": "mallory", "status": "approved"}, actor=REP
        )
    assert set(info.value.errors) == {"owner", "status"}
    admin = Actor("root", frozenset({"admin"}))
    moved = service.create("deal", {"customer": cid, "owner": "han.mei"}, actor=admin)
    assert moved.owner == "han.mei"
    flow = service.update(
        "deal", moved.id, {"status": "pending"}, version=1, actor=SYSTEM, via="flow"
    )
    assert flow.values["status"] == "pending"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x" * (10 * 1024 * 1024)),
        ("name", "nul\x00byte"),
        ("name", "lone\ud800"),
        ("revenue", "1e309"),
        ("revenue", "NaN"),
        ("revenue", "1.00000000000000000001"),
        ("revenue", "99999999999999999999"),
        ("email", "javascript:alert(1)"),
    ],
)
def test_bad_customer_values_are_refused(service: RecordService, field: str, value: str) -> None:
    data = {"name": "Valid", field: value} if field != "name" else {"name": value}
    with pytest.raises(RecordInvalid) as info:
        service.create("customer", data, actor=REP)
    assert field in info.value.errors
    assert count(service, "customer") == 0


def test_bad_deal_values_are_refused(service: RecordService) -> None:
    cid = customer(service)
    with pytest.raises(RecordInvalid) as info:
        service.create(
            "deal",
            {
                "customer": cid,
                "close_date": "2024-02-30",
                "lines": [{"product": "A", "qty": "99999999999999999999"}],
            },
            actor=REP,
        )
    assert set(info.value.errors) == {"close_date", "lines[0].qty"}
    assert count(service, "deal") == 0


def test_create_many_is_all_or_nothing(service: RecordService) -> None:
    with pytest.raises(BatchInvalid) as info:
        service.create_many("customer", [{"name": "One"}, {"name": ""}, {"name": "one"}])
    assert {
        i: {k: [m.get("en") for m in v] for k, v in e.items()} for i, e in info.value.rows.items()
    } == {
        1: {"name": ["is required"]},
        2: {"name": ["already exists: one"]},  # unique within the batch, case-insensitive
    }
    assert count(service, "customer") == 0
    ids = service.create_many("customer", [{"name": "One"}, {"name": "Two"}])
    assert len(ids) == 2 and count(service, "customer") == 2


def test_concurrent_updates_apply_or_conflict(service: RecordService) -> None:
    cid = customer(service, "Race", revenue="0")
    attempts, per_thread = 6, 5
    applied: list[int] = []
    conflicts: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(per_thread):
            current = service.get("customer", cid)
            try:
                service.update(
                    "customer",
                    cid,
                    {"revenue": str(n * 100 + i + 1)},
                    version=current.version,
                    actor=REP,
                )
            except Conflict:
                with lock:
                    conflicts.append(n)
            else:
                with lock:
                    applied.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(applied) + len(conflicts) == attempts * per_thread
    updates = [h for h in service.history("customer", cid) if h.action == "update"]
    assert len(updates) == len(applied)
    assert service.get("customer", cid).version == 1 + len(applied)


def test_concurrent_autonumbers_never_repeat(service: RecordService) -> None:
    cid = customer(service)
    codes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            rec = service.create("deal", {"customer": cid}, actor=REP)
            with lock:
                codes.append(rec.values["code"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [f"D-202611-{n:04d}" for n in range(1, 21)]


def _audit_changes(service: RecordService, entity: str, record_id: int) -> dict[str, object]:
    entries = service.history(entity, record_id)
    assert [e.action for e in entries] == ["create"]
    return entries[0].changes


def test_create_many_stores_what_create_stores(service: RecordService) -> None:
    cid = customer(service)
    data = {
        "customer": str(cid),
        "stage": "won",
        "amount": "1234.5",
        "close_date": "2026-12-01",
        "win_reason": "  price ",
        "lines": [
            {"product": "Widget", "qty": "3", "price": "10.25"},
            {"product": "Gadget", "qty": 2, "price": Decimal("100")},
        ],
    }
    one = service.create("deal", data, actor=REP, via="import")
    many = service.create_many("deal", [data, {**data, "lines": []}], actor=REP)
    assert len(many) == 2 and many[0] > one.id
    stored = [service.get("deal", rid) for rid in (one.id, *many)]
    for rec in stored:
        assert rec.values["amount"] == Decimal("1234.50")
        assert rec.values["probability"] == Decimal(100)
        assert rec.values["win_reason"] == "price"
        assert rec.owner == "li.lei" and rec.version == 1
    assert stored[1].values["total"] == Decimal("230.75")
    assert stored[2].values["total"] in (None, Decimal(0))
    assert [(r["product"], r["qty"], r["price"]) for r in stored[1].tables["lines"]] == [
        ("Widget", 3, Decimal("10.25")),
        ("Gadget", 2, Decimal("100.00")),
    ]
    assert stored[2].tables["lines"] == []
    codes = [r.values["code"] for r in stored]
    assert codes == ["D-202611-0001", "D-202611-0002", "D-202611-0003"]
    single, batched, empty = (_audit_changes(service, "deal", r.id) for r in stored)
    assert single.pop("code") == [None, "D-202611-0001"]
    assert batched.pop("code") == [None, "D-202611-0002"]
    assert batched == single
    assert "lines" not in empty and empty["amount"] == [None, "1234.50"]
    assert batched["lines"] == {"added": 2, "changed": 0, "removed": 0}


def test_create_many_checks_uniqueness_in_the_batch_and_against_the_database(
    service: RecordService,
) -> None:
    customer(service, "ACME")
    with pytest.raises(BatchInvalid) as info:
        service.create_many(
            "customer",
            [{"name": "New"}, {"name": " acme "}, {"name": "Other"}, {"name": "NEW"}],
        )
    assert sorted(info.value.rows) == [1, 3]
    assert "name" in info.value.rows[1] and "name" in info.value.rows[3]
    assert count(service, "customer") == 1
    ids = service.create_many("customer", [{"name": "New"}, {"name": "Other"}])
    assert [service.get("customer", i).values["name"] for i in ids] == ["New", "Other"]


def test_create_many_checks_child_rows_and_refs(service: RecordService) -> None:
    cid = customer(service)
    rows = [
        {"customer": cid, "lines": [{"product": "", "qty": 0}]},
        {"customer": cid + 999},
        {"customer": cid, "amount": "1.234"},
        {"customer": cid, "lines": [{"product": "Ok", "qty": 1, "price": 5}]},
    ]
    with pytest.raises(BatchInvalid) as info:
        service.create_many("deal", rows)
    assert sorted(info.value.rows) == [0, 1, 2]
    assert set(info.value.rows[0]) == {"lines[0].product", "lines[0].qty"}
    assert set(info.value.rows[1]) == {"customer"}
    assert set(info.value.rows[2]) == {"amount"}
    assert count(service, "deal") == 0


def test_create_many_ids_follow_existing_and_deleted_records(service: RecordService) -> None:
    first = service.create_many("customer", [{"name": f"C{i}"} for i in range(3)])
    service.delete("customer", first[1])
    more = service.create_many("customer", [{"name": f"D{i}"} for i in range(3)])
    assert len(set(first + more)) == 6 and min(more) > max(first)
    for i, rid in enumerate(more):
        assert service.get("customer", rid).values["name"] == f"D{i}"
        assert _audit_changes(service, "customer", rid)["name"] == [None, f"D{i}"]


def test_create_many_with_nothing_writes_nothing(service: RecordService) -> None:
    assert service.create_many("customer", []) == []
    assert count(service, "customer") == 0


class _SlowDecimal(Decimal):
    """A Decimal the kinds' fast paths do not take: the reference behaviour."""


@pytest.mark.parametrize(
    "raw",
    [
        Decimal("1.5"),
        Decimal("12.34"),
        Decimal("1.555"),
        Decimal("1.500"),
        Decimal("-0.00"),
        Decimal("1E+3"),
        Decimal("-5"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1E+15"),
        Decimal("999999999999999.99"),
        Decimal("-999999999999999.999"),
    ],
)
def test_money_fast_paths_match_the_general_path(service: RecordService, raw: Decimal) -> None:
    from engine.fields import kind_of

    f = service.blueprint.entities["deal"].fields["amount"]  # money, min 0
    kind = kind_of(f)

    def outcome(value: object) -> object:
        try:
            result = kind.coerce(f, value)
        except Exception as exc:
            return type(exc), str(exc)
        return type(result), str(result), [m.get("en") for m in kind.validate(f, result)]

    assert outcome(raw) == outcome(_SlowDecimal(raw))
    if raw.is_finite():
        assert outcome(int(raw)) == outcome(_SlowDecimal(int(raw)))
        fast = [m.get("en") for m in kind.validate(f, raw)]
        assert fast == [m.get("en") for m in kind.validate(f, _SlowDecimal(raw))]


@pytest.mark.parametrize("raw", ["  Deal ", "x" * 50, "x" * 51, " ", "a\x00b", 12, 7.5])
def test_text_fast_path_matches_the_general_path(service: RecordService, raw: object) -> None:
    from engine.fields import kind_of

    f = service.blueprint.entities["customer"].fields["name"]  # text, max_length 50
    kind = kind_of(f)

    def outcome(coerce: object) -> object:
        try:
            return (
                kind.coerce(f, raw)
                if coerce
                else (None if not str(raw).strip() else kind.parse(f, raw))
            )
        except Exception as exc:
            return type(exc), str(exc)

    assert outcome(True) == outcome(False)


def test_ids_are_never_reused_after_a_delete(service: RecordService) -> None:
    first = customer(service, "First")
    top = customer(service, "Top")
    service.delete("customer", top, actor=REP)
    single = customer(service, "Single")
    (batch,) = service.create_many("customer", [{"name": "Batch"}])
    assert first < top < single < batch
    assert [h.action for h in service.history("customer", single)] == ["create"]


def test_readonly_if_is_judged_on_the_stored_record(service: RecordService) -> None:
    cid = customer(service)
    rec = service.create("deal", {"customer": cid, "amount": "100"}, actor=REP)
    won = service.update(
        "deal",
        rec.id,
        {"stage": "won", "close_date": "2026-12-01", "win_reason": "fit", "amount": "150"},
        version=1,
        actor=REP,
    )  # not won yet when the change arrives: amount may still change with it
    assert won.values["amount"] == Decimal("150.00")
    with pytest.raises(RecordInvalid) as info:
        service.update("deal", rec.id, {"amount": "999"}, version=2, actor=REP)
    assert info.value.as_dict("en") == {"amount": ["this field is read-only now"]}
    assert service.get("deal", rec.id).values["amount"] == Decimal("150.00")


def test_update_rules_see_the_prior_values(service: RecordService) -> None:
    first, other = customer(service, "First"), customer(service, "Other")
    rec = service.create("deal", {"customer": first}, actor=REP)  # update-only rule: not run
    with pytest.raises(RecordInvalid) as info:
        service.update("deal", rec.id, {"customer": other}, version=1, actor=REP)
    assert info.value.as_dict("zh") == {"customer": ["商机的客户不能更改"]}
    same = service.update("deal", rec.id, {"amount": "5"}, version=1, actor=REP)
    assert same.version == 2 and same.values["customer"] == first


def test_list_pages_filters_and_searches(service: RecordService) -> None:
    for name, revenue in [("Alpha 制造", "10"), ("Beta", "20"), ("Gamma 制造", "30")]:
        customer(service, name, revenue=revenue)
    page = service.list_records("customer", Query(search="制造", sort=("-revenue",), limit=1))
    assert [r["name"] for r in page.rows] == ["Gamma 制造"] and page.has_more
    rest = service.list_records(
        "customer", Query(search="制造", sort=("-revenue",), limit=1, after=page.next_cursor)
    )
    assert [r["name"] for r in rest.rows] == ["Alpha 制造"] and not rest.has_more
    cheap = service.list_records("customer", Query(filters=(Filter("revenue", "lt", "25"),)))
    assert sorted(r["name"] for r in cheap.rows) == ["Alpha 制造", "Beta"]
    assert cheap.count == 2


def _import_rows(service: RecordService, entity: str) -> list[sa.Row[object]]:
    audit = service.schema.audit
    with service.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit)
                .where(audit.c.entity == entity, audit.c.action == "import")
                .order_by(audit.c.id)
            ).all()
        )


def test_batch_import_is_audited_once_and_history_shows_each_create(
    service: RecordService,
) -> None:
    ids = service.create_many(
        "customer",
        [{"name": "A", "revenue": "5"}, {"name": "B", "owner": "han.mei"}, {"name": "C"}],
        actor=REP,
        source="customers.csv",
    )
    (row,) = _import_rows(service, "customer")
    assert (row.user, row.via, row.record_id, row.at) == ("li.lei", "import", ids[0], NOW)
    assert row.changes["rows"] == 3 and row.changes["source"] == "customers.csv"
    assert row.changes["ids"] == [[ids[0], ids[2]]]
    audit = service.schema.audit
    with service.engine.connect() as conn:
        per_record = conn.execute(
            sa.select(sa.func.count()).where(audit.c.entity == "customer")
        ).scalar_one()
    assert per_record == 1  # no per-record rows for an import
    single = service.create("customer", {"name": "D", "revenue": "5"}, actor=REP, via="import")
    expected = _audit_changes(service, "customer", single.id)
    expected["name"] = [None, "A"]
    history = service.history("customer", ids[0])
    assert [(h.action, h.via, h.user, h.version, h.at) for h in history] == [
        ("create", "import", "li.lei", 1, NOW)
    ]
    assert history[0].changes == expected
    assert _audit_changes(service, "customer", ids[1]) == {
        "name": [None, "B"],
        "level": [None, "C"],
        "owner": [None, "han.mei"],
    }
    service.update("customer", ids[2], {"revenue": "7"}, version=1, actor=REP, via="form")
    history = service.history("customer", ids[2])
    assert [(h.action, h.via, h.version) for h in history] == [
        ("create", "import", 1),
        ("update", "form", 2),
    ]
    assert history[0].changes == {
        "name": [None, "C"],
        "level": [None, "C"],
        "owner": [None, "li.lei"],
    }
    assert history[1].changes == {"revenue": [None, "7.00"]}


def test_batch_import_audit_rows_per_chunk_and_other_vias_per_record(
    service: RecordService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.records as records

    monkeypatch.setattr(records, "IMPORT_AUDIT_CHUNK", 2)
    cid = customer(service)
    data = [{"customer": cid, "stage": "proposal", "lines": [{"product": "P"}]}] * 5
    ids = service.create_many("deal", data, actor=REP)
    rows = _import_rows(service, "deal")
    assert [r.changes["ids"] for r in rows] == [
        [[ids[0], ids[1]]],
        [[ids[2], ids[3]]],
        [[ids[4], ids[4]]],
    ]
    for n, rid in enumerate(ids):
        changes = _audit_changes(service, "deal", rid)
        assert changes["code"] == [None, f"D-202611-{n + 1:04d}"]
        assert changes["lines"] == {"added": 1, "changed": 0, "removed": 0}
        assert changes["probability"] == [None, "60.00"]
    api_ids = service.create_many("deal", data[:2], actor=REP, via="api")
    assert len(_import_rows(service, "deal")) == 3
    for rid in api_ids:
        assert _audit_changes(service, "deal", rid)["stage"] == [None, "proposal"]


def test_audit_log_stays_append_only_after_a_batch_import(service: RecordService) -> None:
    service.create_many("customer", [{"name": "A"}, {"name": "B"}], actor=REP)
    audit = service.schema.audit
    for stmt in (audit.update().values(user="mallory"), audit.delete()):
        with pytest.raises(sa.exc.DBAPIError), service.engine.begin() as conn:
            conn.execute(stmt)
    assert [r.user for r in _import_rows(service, "customer")] == ["li.lei"]


def test_preview_computes_and_reports_without_writing(service: RecordService) -> None:
    cid = customer(service)
    values, errors = service.preview(
        "deal",
        {"customer": cid, "stage": "won", "lines": [{"product": "A", "qty": 2, "price": "3.5"}]},
        actor=REP,
    )
    assert values["total"] == Decimal("7.00") and values["probability"] == Decimal(100)
    assert set(errors) == {"close_date", "win_reason"}
    assert count(service, "deal") == 0


def test_racing_idempotent_creates_make_one_record(service: RecordService) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        rec = service.create("customer", {"name": "Racer"}, actor=REP, idempotency_key="race-1")
        with lock:
            ids.append(rec.id)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 6 and len(set(ids)) == 1
    assert count(service, "customer") == 1
