"""Batches given column by column (``engine.batch.Columns``) against the same rows as mappings.

``create_many`` reads both shapes through :class:`engine.batch.Batch`; these
tests hold the column shape to the row shape, which ``test_records_batch``
holds to single creates: the same views, the same errors, the same records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.batch import MISSING, Columns, batch_of
from engine.loader import load
from engine.records import SYSTEM, Actor, BatchInvalid, RecordService
from engine.storage.database import create_engine
from engine.storage.schema import build_schema
from tests.test_records_batch import BLUEPRINT, NOW, REP, expected, good, variants


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


def as_columns(rows: list[dict[str, Any]]) -> Columns:
    """``rows`` column by column: a key a row leaves out is MISSING there."""
    names = sorted({key for row in rows for key in row})
    return Columns({n: [row.get(n, MISSING) for row in rows] for n in names}, len(rows))


def test_both_shapes_give_the_same_views() -> None:
    rows: list[dict[str, Any]] = [
        {"name": "a", "seats": 1},
        {"name": None, "colour": "red"},
        {"seats": "3", "owner": "li.lei"},
        {},
    ]
    by_rows, by_columns = batch_of(rows), batch_of(as_columns(rows))
    assert len(by_rows) == len(by_columns) == 4
    for name in ("name", "seats", "colour", "owner", "absent"):
        assert by_rows.column(name) == by_columns.column(name), name
    assert by_columns.column("name") == (["a", None, None, None], [2, 3])  # None is given
    for i in range(4):
        assert by_rows.record(i) == by_columns.record(i) == rows[i]
    keys = frozenset({"name", "seats"})
    assert by_rows.giving_other(keys) == by_columns.giving_other(keys) == {1, 2}
    for picked in (by_rows.select([3, 0]), by_columns.select([3, 0])):
        assert [picked.record(i) for i in range(2)] == [{}, {"name": "a", "seats": 1}]
    for part in (by_rows.part(1, 3), by_columns.part(1, 3)):
        assert len(part) == 2 and part.record(1) == rows[2]
    assert len(by_columns.part(3, 10)) == 1  # a slice past the end, as a list's


def test_a_generator_of_rows_is_read_once_as_a_sequence() -> None:
    batch = batch_of(row for row in [{"name": "a"}, {"name": "b"}])
    assert len(batch) == 2 and batch.column("name") == (["a", "b"], [])


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="'seats' has 1 values, not 2"):
        Columns({"name": ["a", "b"], "seats": [1]}, 2)


@pytest.mark.parametrize("actor", [SYSTEM, REP], ids=["system", "rep"])
def test_columns_report_exactly_the_errors_of_rows(service: RecordService, actor: Actor) -> None:
    account = service.create("account", {"name": "Acme"}).id
    service.create("lead", {"name": "Taken", "code": "ZZ9"})
    rows = [*variants(account), {**good(900, account), "code": "zz9"}]
    wanted = expected(service, rows, actor)
    bad = {i: errors for i, (_values, errors) in enumerate(wanted) if errors}
    assert len(bad) > 20
    with pytest.raises(BatchInvalid) as info:
        service.create_many("lead", as_columns(rows), actor=actor)
    assert info.value.rows == bad


@pytest.mark.parametrize("slice_size", [4096, 7])
def test_columns_store_exactly_what_rows_store(
    service: RecordService, monkeypatch: pytest.MonkeyPatch, slice_size: int
) -> None:
    monkeypatch.setattr("engine.records.PREPARE_SLICE", slice_size)
    account = service.create("account", {"name": "Acme"}).id
    rows = variants(account)
    wanted = expected(service, rows, SYSTEM)
    ok = [(row, values) for row, (values, errors) in zip(rows, wanted, strict=True) if not errors]
    # Some keep keys the columns leave MISSING (defaults apply) or send one by one.
    assert any("stage" not in row for row, _ in ok) and any("owner" in row for row, _ in ok)
    ids = service.create_many("lead", as_columns([row for row, _ in ok]))
    assert len(ids) == len(ok) > 10
    for rid, (row, values) in zip(ids, ok, strict=True):
        record = service.get("lead", rid)
        assert {k: v for k, v in record.values.items() if k != "no"} == {
            k: v for k, v in values.items() if k != "no"
        }
        assert record.owner == row.get("owner", SYSTEM.name)
    numbers = [service.get("lead", rid).values["no"] for rid in ids]
    assert numbers == [f"L-{n:05d}" for n in range(1, len(ok) + 1)]


def test_a_column_blank_in_every_record_is_stored_as_null(service: RecordService) -> None:
    """A column no record of a batch fills is written as SQL NULL (as a literal on
    SQLite), never as text, and the filled columns beside it keep their values."""
    rows: list[dict[str, Any]] = [{"name": f"Lead {i}", "seats": i + 1} for i in range(5)]
    ids = service.create_many("lead", as_columns(rows), actor=REP)
    table = service.schema.entity("lead").table
    with service.engine.connect() as conn:
        stored = conn.execute(
            sa.select(table.c.notes, table.c.email, table.c.seats, table.c.owner)
            .where(table.c.id.in_(ids))
            .order_by(table.c.id)
        ).all()
        nulls = conn.execute(
            sa.select(sa.func.count()).where(table.c.notes.is_(None), table.c.email.is_(None))
        ).scalar_one()
    assert [tuple(r) for r in stored] == [(None, None, i + 1, "li.lei") for i in range(5)]
    assert nulls == 5
