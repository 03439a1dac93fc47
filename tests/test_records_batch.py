"""The batch path (``RecordService.create_many``) against a single create, value by value.

``create_many`` prepares a batch column by column; these tests hold it to what
one create of each row stores and reports (``preview`` runs exactly a create's
preparation and checks without writing), over inputs of every shape: form
strings, JSON numbers, Decimals, labels, blanks, missing keys, bad values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.loader import load
from engine.records import SYSTEM, Actor, BatchInvalid, RecordService
from engine.storage.database import create_engine
from engine.storage.schema import build_schema

BLUEPRINT = """
formflow: 1
id: batch
title: Batch
entities:
  account:
    label: {zh: 客户, en: Account}
    title_field: name
    fields:
      name: {type: text, label: Name, required: true, unique: true}
  lead:
    label: {zh: 线索, en: Lead}
    fields:
      no: {type: autonumber, label: No, format: "L-{SEQ:5}"}
      name: {type: text, label: Name, required: true, max_length: 20, min_length: 2}
      code: {type: text, label: Code, unique: true, pattern: '^[A-Z]{2}[0-9]+$'}
      notes: {type: long_text, label: Notes}
      email: {type: email, label: Email}
      account: {type: ref, label: Account, to: account}
      stage:
        type: choice
        label: Stage
        options:
          - {value: new, label: {zh: 新建, en: New}}
          - {value: open, label: {zh: 跟进, en: Open}}
          - {value: won, label: {zh: 赢单, en: Won}}
        default: new
      tags: {type: multi_choice, label: Tags, options: [hot, cold, vip]}
      seats: {type: integer, label: Seats, min: 1, max: 500}
      budget: {type: money, label: Budget, min: 0, max: 1000000}
      rate: {type: percent, label: Rate, precision: 1}
      share: {type: decimal, label: Share, precision: 3, default: "=0.5"}
      signed: {type: date, label: Signed, required_if: "stage == 'won'", min: "2020-01-01"}
      opened: {type: date, label: Opened, default: "=TODAY()"}
      meeting: {type: datetime, label: Meeting}
      active: {type: boolean, label: Active, default: true}
      reason: {type: text, label: Reason, visible_if: "stage == 'won'", required: true}
      value: {type: money, label: Value, formula: "budget * rate / 100"}
      per_seat: {type: money, label: Per seat, formula: "IF(seats > 0, value / seats, 0)"}
      size:
        type: choice
        label: Size
        options: [small, large]
        formula: "IF(seats >= 100, 'large', 'small')"
    rules:
      - check: "stage != 'won' or budget > 0"
        field: budget
        message: {zh: 赢单需要预算, en: A won lead needs a budget}
      - check: "seats <= 10 or active"
        message: {zh: 大单须为有效, en: Large leads must be active}
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


def good(i: int, account: int) -> dict[str, Any]:
    """A valid lead; every column of a batch of these is of one plain shape."""
    return {
        "name": f"Lead {i}",
        "code": f"AB{i}",
        "notes": f"line one\r\nline {i}",
        "email": f"p{i}@Example.COM",
        "account": account,
        "stage": "open",
        "tags": "hot, vip",
        "seats": str(i % 9 + 1),
        "budget": f"{1000 + i}.5",
        "rate": "12.5",
        "signed": "2026-03-04",
        "meeting": "2026-11-27 14:30",
        "active": "yes",
    }


def variants(account: int) -> list[dict[str, Any]]:
    """Rows of many shapes, good and bad, none clashing with another on a unique field."""
    rows: list[dict[str, Any]] = [good(i, account) for i in range(6)]
    shapes: list[dict[str, Any]] = [
        {"budget": Decimal("12.345")},  # too many places
        {"budget": Decimal("77"), "rate": Decimal("5")},
        {"budget": 250, "rate": 7, "seats": 20},
        {"budget": 19.99, "seats": 3.0},
        {"budget": "¥1,234.50", "rate": "15%"},
        {"budget": "１２３"},  # full-width digits
        {"budget": "-0", "stage": "won", "reason": "price"},  # rule: won needs a budget
        {"budget": "NaN"},
        {"budget": "2000000"},  # above max
        {"budget": "", "rate": ""},
        {"budget": None},
        {"seats": "0"},
        {"seats": "1.5"},
        {"seats": 700},
        {"seats": 50, "active": "no"},  # record rule
        {"name": "  x  "},  # too short once stripped
        {"name": ""},
        {"name": "n" * 30},
        {"name": "bad\x00char"},
        {"name": 12345},
        {"code": "ab77"},  # pattern
        {"code": "  "},
        {"email": "not-an-email"},
        {"stage": " 赢单 ", "signed": "2026-05-01", "reason": "fit"},
        {"stage": "Won", "signed": ""},  # English label, signed and reason required
        {"stage": "lost"},
        {"stage": 3},
        {"tags": ["cold", "cold"]},
        {"tags": "warm"},
        {"signed": "2024-02-30"},
        {"signed": "2019-12-31"},  # before min
        {"signed": "2026/7/8"},
        {"signed": date(2026, 1, 2)},
        {"meeting": "2026-13-01 10:00"},
        {"active": "maybe"},
        {"account": 99999},  # no such account
        {"account": "x"},
        {"account": f" {account} "},
        {"notes": "x" * 100_001},
    ]
    for n, shape in enumerate(shapes):
        row = good(100 + n, account)
        row.update(shape)
        rows.append(row)
    # Keys left out: defaults apply (stage, share, opened, active), others stay blank.
    for n in range(3):
        rows.append({"name": f"Minimal {n}", "seats": n + 1})
    rows.append({"name": "Unknown key", "colour": "red"})
    rows.append({"name": "Owner given", "owner": "han.mei"})
    rows.append({"name": "Ignored keys", "id": 5, "value": "1", "no": "L-1", "version": 3})
    return rows


def expected(
    service: RecordService, rows: list[dict[str, Any]], actor: Actor
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """What a single create of each row would store and its errors (by ``preview``)."""
    return [service.preview("lead", row, actor=actor, via="import") for row in rows]


@pytest.mark.parametrize("actor", [SYSTEM, REP], ids=["system", "rep"])
def test_batch_reports_exactly_the_errors_of_single_creates(
    service: RecordService, actor: Actor
) -> None:
    account = service.create("account", {"name": "Acme"}).id
    service.create("lead", {"name": "Taken", "code": "ZZ9"})
    rows = [*variants(account), {**good(900, account), "code": "zz9"}]  # taken, as a key
    wanted = expected(service, rows, actor)
    bad = {i: errors for i, (_values, errors) in enumerate(wanted) if errors}
    assert len(bad) > 20 and len(bad) < len(rows) - 8  # both kinds are well represented
    with pytest.raises(BatchInvalid) as info:
        service.create_many("lead", rows, actor=actor)
    assert info.value.rows == bad


@pytest.mark.parametrize("actor", [SYSTEM, REP], ids=["system", "rep"])
def test_batch_stores_exactly_what_single_creates_store(
    service: RecordService, actor: Actor
) -> None:
    account = service.create("account", {"name": "Acme"}).id
    rows = variants(account)
    wanted = expected(service, rows, actor)
    ok = [(row, values) for row, (values, errors) in zip(rows, wanted, strict=True) if not errors]
    ids = service.create_many("lead", [row for row, _ in ok], actor=actor)
    assert len(ids) == len(ok) > 10
    numbers = []
    for rid, (row, values) in zip(ids, ok, strict=True):
        record = service.get("lead", rid)
        numbers.append(record.values.pop("no"))
        values = {k: v for k, v in values.items() if k != "no"}
        assert record.values == values
        assert record.owner == row.get("owner", actor.name)
        assert record.created_by == actor.name
    assert numbers == [f"L-{n:05d}" for n in range(1, len(ok) + 1)]


def test_batch_of_one_shape_goes_column_by_column_and_still_checks(
    service: RecordService,
) -> None:
    # Plain columns (the vectorised paths) with one bad cell each, far apart.
    account = service.create("account", {"name": "Acme"}).id
    rows = [good(i, account) for i in range(300)]
    rows[17]["budget"] = "10.555"
    rows[140]["signed"] = "2026-02-29"
    rows[141]["stage"] = "nope"
    rows[250]["name"] = "tab\tok but \x07bell"
    rows[299]["seats"] = "１０"  # full-width: fine, 10 seats
    with pytest.raises(BatchInvalid) as info:
        service.create_many("lead", rows)
    assert sorted(info.value.rows) == [17, 140, 141, 250]
    assert info.value.rows[17] == {
        "budget": [service.preview("lead", rows[17], via="import")[1]["budget"][0]]
    }
    assert "signed" in info.value.rows[140] and "stage" in info.value.rows[141]
    for i in (17, 140, 141, 250):
        rows[i] = good(1000 + i, account)
    ids = service.create_many("lead", rows)
    assert service.get("lead", ids[299]).values["seats"] == 10
    assert service.get("lead", ids[0]).values["budget"] == Decimal("1000.50")
    assert service.get("lead", ids[0]).values["value"] == Decimal("125.06")


def test_a_big_batch_prepared_in_slices_is_the_same_batch(
    service: RecordService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.records.PREPARE_SLICE", 7)
    account = service.create("account", {"name": "Acme"}).id
    rows = variants(account)
    wanted = expected(service, rows, SYSTEM)
    bad = {i: errors for i, (_values, errors) in enumerate(wanted) if errors}
    with pytest.raises(BatchInvalid) as info:
        service.create_many("lead", rows)
    assert info.value.rows == bad
    ok = [(row, values) for row, (values, errors) in zip(rows, wanted, strict=True) if not errors]
    ids = service.create_many("lead", [row for row, _ in ok])
    for rid, (_row, values) in zip(ids, ok, strict=True):
        stored = service.get("lead", rid).values
        assert {k: v for k, v in stored.items() if k != "no"} == {
            k: v for k, v in values.items() if k != "no"
        }
