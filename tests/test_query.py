"""List queries (``engine.storage.query``) on SQLite and PostgreSQL.

Every test runs on both databases with a small blueprint built inline (with a
Chinese field name, ``金额``), rows inserted with SQLAlchemy Core, and exact
expected rows. The paging tests walk every page of 1,234 rows under several
sorts and compare with the same rows sorted in Python.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from werkzeug.datastructures import MultiDict

from engine.fields import using_timezone
from engine.i18n import Text
from engine.model import Blueprint, Entity, Field, ListView, Option, frozen_map
from engine.storage.database import create_engine, normalise_url
from engine.storage.query import (
    OPS,
    Filter,
    Page,
    Query,
    QueryError,
    compile_query,
    like_escape,
    parse_query_args,
    run_query,
    search_fields,
    search_terms,
)
from engine.storage.schema import EntityTable, Schema, build_schema

PG_SCHEMA = "formflow_query_test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- blueprint


def _field(name: str, kind: str, **kw: Any) -> Field:
    return Field(name=name, kind=kind, label=Text.of(kw.pop("label", name)), **kw)


def _options(*pairs: tuple[str, str]) -> tuple[Option, ...]:
    return tuple(Option(value=v, label=Text(zh=zh, en=v)) for v, zh in pairs)


def make_blueprint(*, search: tuple[str, ...] = (), sort: tuple[str, ...] = ()) -> Blueprint:
    company = Entity(
        name="company",
        label=Text.of("公司"),
        title_field="name",
        fields=frozen_map({"name": _field("name", "text")}),
    )
    deal = Entity(
        name="deal",
        label=Text.of("商机"),
        title_field="name",
        fields=frozen_map(
            {
                "code": _field("code", "text", label="编号"),
                "name": _field("name", "text", label="名称"),
                "金额": _field("金额", "money", label=Text(zh="金额", en="Amount")),
                "close_date": _field("close_date", "date"),
                "stage": _field(
                    "stage",
                    "choice",
                    options=_options(("lead", "线索"), ("won", "赢单"), ("lost", "输单")),
                ),
                "tags": _field(
                    "tags",
                    "multi_choice",
                    options=_options(("vip", "贵宾"), ("new", "新客"), ("重点", "重点")),
                ),
                "customer": _field("customer", "ref", to="company"),
                "active": _field("active", "boolean"),
                "seats": _field("seats", "integer"),
                "signed_at": _field("signed_at", "datetime"),
                "notes": _field("notes", "long_text"),
                "items": _field(
                    "items",
                    "table",
                    fields=frozen_map({"sku": _field("sku", "text")}),
                ),
            }
        ),
        list=ListView(search=search, sort=sort),
    )
    return Blueprint(
        id="qtest",
        title=Text.of("query test"),
        version=1,
        entities=frozen_map({"company": company, "deal": deal}),
    )


# --------------------------------------------------------------------------- databases


@dataclass
class Db:
    engine: Engine
    schema: Schema
    name: str

    @property
    def deal(self) -> EntityTable:
        return self.schema.entity("deal")

    @property
    def company(self) -> EntityTable:
        return self.schema.entity("company")

    def insert(self, et: EntityTable, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows given by field name (system columns get defaults)."""
        out = []
        for i, row in enumerate(rows):
            values: dict[str, Any] = {
                "version": 1,
                "owner": "alice",
                "created_at": T0 + timedelta(minutes=i),
                "updated_at": T0 + timedelta(minutes=i),
            }
            for key, value in row.items():
                column = et.column(key)
                values[column.name] = value
            out.append(values)
        with self.engine.begin() as conn:
            if len({tuple(sorted(v)) for v in out}) == 1 and not any(
                isinstance(x, sa.sql.ClauseElement) for v in out for x in v.values()
            ):
                conn.execute(et.table.insert(), out)
            else:  # rows with different columns (or SQL NULL markers): one by one
                for values in out:
                    conn.execute(et.table.insert().values(values))

    def run(self, query: Query, *, et: EntityTable | None = None, **kw: Any) -> Page:
        with self.engine.connect() as conn:
            return run_query(conn, et or self.deal, query, **kw)

    def ids(self, *filters: Filter, search: str | None = None, **kw: Any) -> list[int]:
        page = self.run(Query(filters=filters, search=search, sort=("id",), limit=500), **kw)
        return [row["id"] for row in page.rows]

    def args(self, args: Any) -> list[int]:
        query = parse_query_args(self.deal.entity, args)
        page = self.run(Query(filters=query.filters, search=query.search, sort=("id",), limit=500))
        return [row["id"] for row in page.rows]


def _make_db(engine: Engine, name: str, blueprint: Blueprint) -> Db:
    schema = build_schema(blueprint)
    schema.metadata.drop_all(engine)
    schema.metadata.create_all(engine)
    return Db(engine, schema, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Build a fresh database (SQLite file or a PostgreSQL schema of our own)."""
    engines: list[tuple[Engine, Schema]] = []
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'query.db'}")
    else:
        url = normalise_url(request.getfixturevalue("pg_url"))
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            conn.execute(sa.text(f"CREATE SCHEMA {PG_SCHEMA}"))
        admin.dispose()
        engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={PG_SCHEMA}"})

    def make(**kw: Any) -> Db:
        db = _make_db(engine, request.param, make_blueprint(**kw))
        engines.append((engine, db.schema))
        return db

    yield make
    for eng, schema in engines:
        schema.metadata.drop_all(eng)
    engine.dispose()


@pytest.fixture
def db(db_factory: Any) -> Db:
    database: Db = db_factory()
    return database


# --------------------------------------------------------------------------- small data set


@pytest.fixture
def small(db: Db) -> Db:
    """Ten deals whose ids are 1..10, chosen to exercise every operator."""
    db.insert(db.company, [{"name": "Acme"}, {"name": "Globex"}])
    rows: list[dict[str, Any]] = [
        # 1
        {
            "code": "D1",
            "name": "Acme renewal",
            "金额": Decimal("1000.00"),
            "close_date": date(2026, 1, 15),
            "stage": "won",
            "tags": ["vip", "new"],
            "customer": 1,
            "active": True,
            "seats": 10,
            "signed_at": datetime(2026, 3, 1, 1, 0, tzinfo=UTC),
            "notes": "上海 office",
        },
        # 2
        {
            "code": "D2",
            "name": "Globex pilot",
            "金额": Decimal("250.50"),
            "close_date": date(2026, 2, 1),
            "stage": "lead",
            "tags": ["new"],
            "customer": 2,
            "active": False,
            "seats": 3,
            "signed_at": datetime(2026, 2, 28, 15, 59, tzinfo=UTC),
            "notes": "北京 contact",
        },
        # 3: blanks everywhere (SQL NULL)
        {
            "code": "D3",
            "name": None,
            "金额": None,
            "close_date": None,
            "stage": None,
            "tags": sa.null(),
            "customer": None,
            "active": None,
            "seats": None,
            "signed_at": None,
            "notes": None,
        },
        # 4: empty text and an empty list
        {
            "code": "D4",
            "name": "",
            "金额": Decimal("0.00"),
            "close_date": date(2026, 3, 31),
            "stage": "lost",
            "tags": [],
            "customer": 1,
            "active": True,
            "seats": 0,
            "signed_at": datetime(2026, 2, 28, 16, 0, tzinfo=UTC),
            "notes": "",
        },
        # 5: LIKE wildcards in the data
        {
            "code": "D5",
            "name": "100% Pure",
            "金额": Decimal("99999.99"),
            "close_date": date(2026, 1, 1),
            "stage": "won",
            "tags": ["重点"],
            "customer": 2,
            "active": False,
            "seats": 7,
            "signed_at": datetime(2026, 3, 1, 15, 59, tzinfo=UTC),
        },
        # 6
        {
            "code": "D6",
            "name": "a_b",
            "金额": Decimal("-5.00"),
            "close_date": date(2025, 12, 31),
            "stage": "lead",
            "tags": ["vip"],
            "active": True,
            "seats": 1,
        },
        # 7
        {
            "code": "D7",
            "name": "a\\b",
            "金额": Decimal("1000.00"),
            "stage": "won",
            "tags": ["vip", "重点"],
            "seats": 2,
        },
        # 8
        {"code": "D8", "name": "axb", "stage": "lost", "tags": sa.JSON.NULL},
        # 9: Chinese name
        {
            "code": "D9",
            "name": "上海华东区域大单",
            "金额": Decimal("500000.00"),
            "stage": "won",
            "notes": "ACME group",
        },
        # 10
        {
            "code": "D10",
            "name": "ACME Expansion",
            "金额": Decimal("1000.01"),
            "stage": "lead",
            "notes": "globex referral",
        },
    ]
    db.insert(db.deal, rows)
    return db


def test_rows_are_canonical_values_keyed_by_field_name(small: Db) -> None:
    page = small.run(Query(filters=(Filter("id", "eq", "1"),)))
    assert page.count == 1 and page.has_more is False and page.next_cursor is None
    [row] = page.rows
    assert set(row) == {
        "id",
        "owner",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "version",
        "code",
        "name",
        "金额",
        "close_date",
        "stage",
        "tags",
        "customer",
        "active",
        "seats",
        "signed_at",
        "notes",
    }  # no child table, no hidden __key column
    assert row["金额"] == Decimal("1000.00") and isinstance(row["金额"], Decimal)
    assert row["close_date"] == date(2026, 1, 15)
    assert row["tags"] == ["vip", "new"]
    assert row["customer"] == 1 and row["seats"] == 10
    assert row["active"] is True
    assert row["signed_at"] == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert row["signed_at"].utcoffset() is not None
    assert row["created_at"] == T0 and row["created_at"].tzinfo is not None
    assert row["owner"] == "alice" and row["version"] == 1
    third = small.run(Query(filters=(Filter("id", "eq", 3),))).rows[0]
    assert third["tags"] is None and third["金额"] is None and third["active"] is None


def test_eq_ne_and_in_on_choice(small: Db) -> None:
    assert small.ids(Filter("stage", "eq", "won")) == [1, 5, 7, 9]
    assert small.ids(Filter("stage", "eq", "赢单")) == [1, 5, 7, 9]  # by option label
    # ne keeps blank rows
    assert small.ids(Filter("stage", "ne", "won")) == [2, 3, 4, 6, 8, 10]
    assert small.ids(Filter("stage", "in", "won,lost")) == [1, 4, 5, 7, 8, 9]
    assert small.ids(Filter("stage", "in", ["lead", "lost"])) == [2, 4, 6, 8, 10]


def test_numbers_with_a_chinese_field_name(small: Db) -> None:
    assert small.ids(Filter("金额", "eq", "1000")) == [1, 7]
    assert small.ids(Filter("金额", "gte", "1000")) == [1, 5, 7, 9, 10]
    assert small.ids(Filter("金额", "gt", "1000")) == [5, 9, 10]
    assert small.ids(Filter("金额", "lt", "0")) == [6]
    assert small.ids(Filter("金额", "lte", "0")) == [4, 6]
    assert small.ids(Filter("金额", "between", "250.5,1000.01")) == [1, 2, 7, 10]
    assert small.ids(Filter("金额", "between", (None, "0"))) == [4, 6]
    assert small.ids(Filter("金额", "ne", "1000")) == [2, 3, 4, 5, 6, 8, 9, 10]
    assert small.ids(Filter("金额", "in", "0,-5")) == [4, 6]
    assert small.ids(Filter("金额", "blank")) == [3, 8]
    assert small.ids(Filter("seats", "gte", 3), Filter("seats", "lt", "10")) == [2, 5]


def test_dates(small: Db) -> None:
    assert small.ids(Filter("close_date", "between", "2026-01-01,2026-02-01")) == [1, 2, 5]
    assert small.ids(Filter("close_date", "between", "2026-01-02,")) == [1, 2, 4]
    assert small.ids(Filter("close_date", "lt", "2026年1月1日")) == [6]
    assert small.ids(Filter("close_date", "eq", "2026/03/31")) == [4]
    assert small.ids(Filter("close_date", "blank", "1")) == [3, 7, 8, 9, 10]
    assert small.ids(Filter("close_date", "blank", "0")) == [1, 2, 4, 5, 6]
    assert small.ids(Filter("close_date", "not_blank")) == [1, 2, 4, 5, 6]


@pytest.fixture
def shanghai() -> Iterator[None]:
    with using_timezone("Asia/Shanghai"):
        yield


@pytest.mark.usefixtures("shanghai")
def test_datetime_with_a_bare_date_means_the_whole_day(small: Db) -> None:
    # In the business time zone Asia/Shanghai (UTC+8), 2026-03-01 is
    # 2026-02-28T16:00Z .. 2026-03-01T16:00Z.
    assert small.ids(Filter("signed_at", "eq", "2026-03-01")) == [1, 4, 5]
    assert small.ids(Filter("signed_at", "lte", "2026-02-28")) == [2]
    assert small.ids(Filter("signed_at", "gt", "2026-02-28")) == [1, 4, 5]
    assert small.ids(Filter("signed_at", "between", "2026-02-28,2026-02-28")) == [2]
    assert small.ids(Filter("signed_at", "ne", "2026-03-01")) == [2, 3, 6, 7, 8, 9, 10]
    assert small.ids(Filter("signed_at", "in", "2026-02-28,2026-01-01")) == [2]
    # With a time, the moment itself.
    assert small.ids(Filter("signed_at", "gte", "2026-03-01T00:00:00+08:00")) == [1, 4, 5]
    assert small.ids(Filter("signed_at", "eq", "2026-03-01T09:00")) == [1]
    assert small.ids(Filter("signed_at", "lt", datetime(2026, 2, 28, 16, tzinfo=UTC))) == [2]


def test_text_contains_is_case_insensitive_and_escapes_wildcards(small: Db) -> None:
    assert small.ids(Filter("name", "contains", "acme")) == [1, 10]
    assert small.ids(Filter("name", "contains", "%")) == [5]
    assert small.ids(Filter("name", "contains", "_")) == [6]
    assert small.ids(Filter("name", "contains", "\\")) == [7]
    assert small.ids(Filter("name", "contains", "a%b")) == []
    assert small.ids(Filter("name", "contains", "华东")) == [9]
    assert like_escape("50%_a\\b") == "50\\%\\_a\\\\b"


def test_text_eq_blank_and_ordering_ops(small: Db) -> None:
    assert small.ids(Filter("name", "eq", "axb")) == [8]
    assert small.ids(Filter("name", "eq", "AXB")) == []  # eq on text is exact
    assert small.ids(Filter("name", "blank")) == [3, 4]  # NULL and ''
    assert small.ids(Filter("name", "not_blank")) == [1, 2, 5, 6, 7, 8, 9, 10]
    assert small.ids(Filter("notes", "blank", "true")) == [3, 4, 5, 6, 7, 8]
    assert small.ids(Filter("name", "eq", "")) == [3, 4]  # eq blank = blank
    assert small.ids(Filter("name", "ne", None)) == [1, 2, 5, 6, 7, 8, 9, 10]
    assert small.ids(Filter("code", "gte", "D5"), Filter("code", "lt", "D8")) == [5, 6, 7]


def test_multi_choice_contains_and_blank(small: Db) -> None:
    assert small.ids(Filter("tags", "contains", "vip")) == [1, 6, 7]
    assert small.ids(Filter("tags", "contains", "贵宾")) == [1, 6, 7]  # by label
    assert small.ids(Filter("tags", "contains", "重点")) == [5, 7]  # Chinese option value
    assert small.ids(Filter("tags", "contains", "vip,new")) == [1]  # holds every option
    assert small.ids(Filter("tags", "contains", ("vip", "重点"))) == [7]
    # SQL NULL (3, 9, 10), JSON null (8) and [] (4) are all blank
    assert small.ids(Filter("tags", "blank")) == [3, 4, 8, 9, 10]
    assert small.ids(Filter("tags", "not_blank")) == [1, 2, 5, 6, 7]
    with pytest.raises(QueryError) as exc:
        small.ids(Filter("tags", "contains", "gold"))
    assert "filter tags: not one of the options: gold" in exc.value.message("en")


def test_boolean_ref_and_system_columns(small: Db) -> None:
    assert small.ids(Filter("active", "eq", "true")) == [1, 4, 6]
    assert small.ids(Filter("active", "eq", "否")) == [2, 5]
    assert small.ids(Filter("active", "ne", "1")) == [2, 3, 5, 7, 8, 9, 10]
    assert small.ids(Filter("active", "blank")) == [3, 7, 8, 9, 10]
    assert small.ids(Filter("customer", "eq", "2")) == [2, 5]
    assert small.ids(Filter("customer", "in", "1,2")) == [1, 2, 4, 5]
    assert small.ids(Filter("customer", "ne", 1)) == [2, 3, 5, 6, 7, 8, 9, 10]
    assert small.ids(Filter("id", "in", "2,4,99")) == [2, 4]
    assert small.ids(Filter("id", "between", "8,")) == [8, 9, 10]
    assert small.ids(Filter("owner", "eq", "alice")) == list(range(1, 11))
    assert small.ids(Filter("created_at", "gte", T0 + timedelta(minutes=8))) == [9, 10]
    assert small.ids(Filter("version", "ne", 1)) == []
    assert small.ids(Filter("created_by", "blank")) == list(range(1, 11))


def test_filter_values_are_bound_parameters(small: Db) -> None:
    evil = "' OR 1=1 --"
    assert small.ids(Filter("name", "eq", evil)) == []
    assert small.ids(Filter("name", "contains", evil)) == []
    assert small.ids(search="'; DROP TABLE e_deal; --") == []
    assert small.args({"name": "x'); DELETE FROM e_deal; --"}) == []
    with small.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(small.deal.table)).scalar() == 10


def test_choice_values_are_checked(small: Db) -> None:
    with pytest.raises(QueryError) as exc:
        small.ids(Filter("stage", "in", ["won", "x' OR '1'='1"]))
    assert exc.value.http_status == 400
    assert exc.value.field == "stage"
    assert "not one of the options" in exc.value.message("en")


def test_search_is_and_of_ors_case_insensitive_and_escaped(small: Db) -> None:
    # default search fields: searchable text fields, title (name) first
    assert search_fields(small.deal.entity) == ["name", "code", "notes"]
    assert small.ids(search="acme") == [1, 9, 10]  # name or notes
    assert small.ids(search="ACME group") == [9]  # every term must match
    assert small.ids(search="上海") == [1, 9]
    assert small.ids(search="  华东  大单 ") == [9]
    assert small.ids(search="%") == [5]
    assert small.ids(search="_") == [6]
    assert small.ids(search="d1") == [1, 10]  # code D1 and D10
    assert small.ids(search="   ") == list(range(1, 11))
    assert small.ids(search="acme", scope=small.deal.table.c.id > 5) == [9, 10]


def test_search_terms_are_limited() -> None:
    assert search_terms("a b c d e f g") == ["a", "b", "c", "d", "e"]
    assert search_terms("x" * 150) == ["x" * 100]
    assert search_terms("a\x00b") == ["a", "b"]


def test_list_search_fields_restrict_the_search(db_factory: Any) -> None:
    db: Db = db_factory(search=("notes",))
    db.insert(db.deal, [{"name": "acme", "notes": "x"}, {"name": "y", "notes": "ACME"}])
    assert search_fields(db.deal.entity) == ["notes"]
    assert db.ids(search="acme") == [2]


def test_scope_is_an_extra_where(small: Db) -> None:
    scope = small.deal.table.c.id.in_([1, 2, 3])
    assert small.ids(Filter("stage", "ne", "won"), scope=scope) == [2, 3]
    page = small.run(Query(sort=("id",), limit=2), scope=scope)
    assert [r["id"] for r in page.rows] == [1, 2] and page.count == 3 and page.has_more


# --------------------------------------------------------------------------- errors


def _error(db: Db, *filters: Filter, hidden: set[str] | None = None, **kw: Any) -> QueryError:
    with pytest.raises(QueryError) as exc:
        db.run(Query(filters=filters, **kw), hidden=hidden or ())
    assert exc.value.http_status == 400
    return exc.value


def test_bad_values_name_the_field_and_value(small: Db) -> None:
    err = _error(small, Filter("close_date", "eq", "2024-02-30"))
    assert err.message("en") == "filter close_date: not a valid date: 2024-02-30"
    assert err.message("zh") == "筛选 close_date：不是有效的日期：2024-02-30"
    assert err.field == "close_date"
    err = _error(small, Filter("金额", "gte", "lots"))
    assert err.message("en") == "filter 金额: not a valid number: lots"
    err = _error(small, Filter("customer", "eq", "-1"))
    assert err.message("en") == "filter customer: not a valid record id: -1"
    err = _error(small, Filter("id", "eq", "1.5"))
    assert err.message("en") == "filter id: not a whole number: 1.5"
    err = _error(small, Filter("金额", "between", "1"))
    assert "needs two values" in err.message("en")
    err = _error(small, Filter("金额", "gte", ""))
    assert err.message("en") == "filter 金额__gte needs a value"
    err = _error(small, Filter("name", "contains", "a\x00b"))
    assert "control character (U+0000)" in err.message("en")
    err = _error(small, Filter("name", "blank", "maybe"))
    assert err.message("en") == "filter name__blank: expected 1 or 0, not maybe"


def test_operator_must_fit_the_field(small: Db) -> None:
    err = _error(small, Filter("金额", "contains", "1"))
    assert err.message("en").startswith(
        "operator 'contains' does not apply to a money field (金额); use one of: eq, ne"
    )
    assert err.op == "contains" and err.field == "金额"
    assert _error(small, Filter("active", "gt", "1")).op == "gt"
    assert (
        _error(small, Filter("tags", "eq", "vip"))
        .message("en")
        .startswith("operator 'eq' does not apply to a multi_choice field (tags)")
    )
    assert _error(small, Filter("customer", "contains", "1")).field == "customer"
    err = _error(small, Filter("created_at", "contains", "1"))
    assert "the system column created_at" in err.message("en")
    with pytest.raises(QueryError) as exc:
        Filter("name", "like", "x")
    assert "unknown operator 'like'" in exc.value.message("en")


def test_unknown_and_table_fields(small: Db) -> None:
    err = _error(small, Filter("seat", "eq", "1"))
    assert err.message("en") == "unknown field 'seat' in deal; did you mean 'seats'?"
    assert err.message("zh") == "deal 没有字段 'seat'；是不是 'seats'？"
    err = _error(small, Filter("Amount", "eq", "1"))  # a label: points at the name
    assert err.message("en") == "unknown field 'Amount' in deal; did you mean '金额'?"
    err = _error(small, Filter("zzz", "eq", "1"))
    assert err.message("en") == "unknown field 'zzz' in deal"
    err = _error(small, Filter("items", "eq", "1"))
    assert err.message("en") == "cannot filter on 'items': it is a table field"
    err = _error(small, sort=("tags",))
    assert err.message("en") == "cannot sort by 'tags': a multi_choice field"
    err = _error(small, sort=("-amout",))
    assert err.message("en").startswith("unknown field 'amout' in deal")


def test_limits_are_checked() -> None:
    for bad in (0, 501, -1):
        with pytest.raises(QueryError) as exc:
            Query(limit=bad)
        assert exc.value.param == "limit"
    with pytest.raises(QueryError):
        Query(offset=-1)
    assert Query(limit=500).limit == 500


# --------------------------------------------------------------------------- query strings


def test_parse_query_args(db: Db) -> None:
    entity = db.deal.entity
    query = parse_query_args(
        entity,
        {
            "stage": "won",
            "金额__gte": "1000",
            "close_date__between": "2026-01-01,2026-03-31",
            "stage__in": ["won,lost", "lead"],
            "notes__blank": "1",
            "name": "",  # an empty form input: ignored
            "q": " acme ",
            "sort": "-金额,name",
            "limit": "20",
            "offset": "40",
            "after": "abc",
            "lang": "en",
        },
        ignore={"lang"},
    )
    assert query.filters == (
        Filter("stage", "eq", "won"),
        Filter("金额", "gte", "1000"),
        Filter("close_date", "between", ("2026-01-01", "2026-03-31")),
        Filter("notes", "blank", "1"),
        Filter("stage", "in", ("won", "lost", "lead")),
    )
    assert query.search == "acme"
    assert query.sort == ("-金额", "name")
    assert (query.limit, query.offset, query.after) == (20, 40, "abc")
    assert query.fields_used() == {"stage", "金额", "close_date", "notes", "name"}
    # defaults: the entity's page size, no sort (the entity's default applies)
    empty = parse_query_args(entity, {})
    assert empty == Query(limit=50)


def test_parse_query_args_keeps_repeated_multidict_values(db: Db) -> None:
    args = MultiDict(
        [
            ("stage__in", "won"),
            ("stage__in", "lost"),
            ("seats__gte", "1"),
            ("seats__lte", "5"),
            ("sort", "name"),
            ("sort", "-id"),
        ]
    )
    query = parse_query_args(db.deal.entity, args)
    assert query.filters == (
        Filter("seats", "gte", "1"),
        Filter("seats", "lte", "5"),
        Filter("stage", "in", ("won", "lost")),
    )
    assert query.sort == ("name", "-id")


def test_parse_query_args_refuses_unknown_names(db: Db) -> None:
    entity = db.deal.entity
    cases = {
        "amout": "unknown field 'amout' in deal",
        "seat__gte": "unknown field 'seat' in deal; did you mean 'seats'?",
        "seats__like": "unknown operator 'like' in 'seats__like'; use one of: " + ", ".join(OPS),
    }
    for key, message in cases.items():
        with pytest.raises(QueryError) as exc:
            parse_query_args(entity, {key: "1"})
        assert exc.value.message("en").startswith(message), exc.value.message("en")
        assert exc.value.param == key
    with pytest.raises(QueryError) as exc:
        parse_query_args(entity, {"seet": "1"})
    assert exc.value.message("en") == "unknown field 'seet' in deal; did you mean 'seats'?"
    with pytest.raises(QueryError) as exc:
        parse_query_args(entity, {"limit": "lots"})
    assert exc.value.message("en") == "limit must be a whole number, not lots"
    with pytest.raises(QueryError) as exc:
        parse_query_args(entity, {"limit": "1000"})
    assert exc.value.param == "limit"
    with pytest.raises(QueryError) as exc:
        parse_query_args(entity, {"limit": ["10", "20"]})
    assert exc.value.message("en") == "parameter 'limit' may appear only once"
    with pytest.raises(QueryError) as exc:
        parse_query_args(entity, {"items": "1"})
    assert exc.value.message("en") == "cannot filter on 'items': it is a table field"


def test_query_string_end_to_end(small: Db) -> None:
    assert small.args({"stage__in": "won,lost", "金额__gte": "1000"}) == [1, 5, 7, 9]
    assert small.args({"close_date__between": "2026-01-01,2026-03-31"}) == [1, 2, 4, 5]
    assert small.args({"notes__blank": "1", "stage": "won"}) == [5, 7]
    assert small.args({"tags__contains": "vip,new"}) == [1]
    assert small.args({"q": "acme", "stage": "lead"}) == [10]
    assert small.args({"stage": "", "name__contains": ""}) == list(range(1, 11))


# --------------------------------------------------------------------------- sorting and paging


def _big_rows(n: int = 1234) -> list[dict[str, Any]]:
    rnd = random.Random(20261127)
    rows = []
    for _ in range(n):
        pick = rnd.random()
        rows.append(
            {
                # lowercase letters and digits only: the same order under any collation
                "name": None if pick < 0.07 else "" if pick < 0.1 else f"n{rnd.randrange(60):03d}",
                "金额": None if rnd.random() < 0.15 else Decimal(rnd.randrange(-500, 500)) / 4,
                "close_date": None
                if rnd.random() < 0.2
                else date(2026, 1, 1) + timedelta(days=rnd.randrange(40)),
                "stage": rnd.choice(["lead", "won", "lost", None]),
                "active": rnd.choice([True, False, None]),
                "seats": rnd.randrange(5),
                "signed_at": None
                if rnd.random() < 0.3
                else datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=rnd.randrange(100)),
            }
        )
    return rows


def _expected_order(rows: list[dict[str, Any]], sort: Sequence[str]) -> list[int]:
    """Ids in the documented order: blanks last in both directions, then id."""
    keys = [(s.lstrip("-"), s.startswith("-")) for s in sort]
    if keys[-1][0] != "id":
        keys.append(("id", keys[-1][1]))

    def cmp(a: dict[str, Any], b: dict[str, Any]) -> int:
        for name, desc in keys:
            x, y = a[name], b[name]
            if x == y:
                continue
            if x is None:
                return 1
            if y is None:
                return -1
            less = x < y
            return (1 if less else -1) if desc else (-1 if less else 1)
        return 0

    return [r["id"] for r in sorted(rows, key=functools.cmp_to_key(cmp))]


SORTS = [
    ("-id",),
    ("id",),
    ("金额",),
    ("-金额",),
    ("close_date", "-name"),
    ("-close_date", "金额"),
    ("name",),
    ("-name", "-active"),
    ("stage", "-signed_at"),
    ("active", "seats", "-金额"),
    ("-created_at",),
]


@pytest.fixture
def big(db: Db) -> tuple[Db, list[dict[str, Any]]]:
    rows = _big_rows()
    for i, row in enumerate(rows):
        row["created_at"] = T0 + timedelta(minutes=i // 3)  # ties broken by id
    db.insert(db.deal, rows)
    for i, row in enumerate(rows):
        row["id"] = i + 1
    return db, rows


@pytest.mark.parametrize("sort", SORTS, ids=lambda s: ",".join(s))
def test_keyset_paging_visits_every_row_once_in_order(
    big: tuple[Db, list[dict[str, Any]]], sort: tuple[str, ...]
) -> None:
    db, rows = big
    expected = _expected_order(rows, sort)
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        page = db.run(Query(sort=sort, limit=50, after=after))
        pages += 1
        seen += [r["id"] for r in page.rows]
        if pages == 1:
            assert page.count == 1234 and not page.count_capped
        if not page.has_more:
            assert page.next_cursor is None
            break
        assert page.next_cursor is not None and len(page.rows) == 50
        after = page.next_cursor
    assert pages == 25  # 24 full pages and 34 rows
    assert seen == expected


@pytest.mark.parametrize("sort", [("-金额",), ("close_date", "-name")], ids=str)
def test_offset_paging_matches_keyset_order(
    big: tuple[Db, list[dict[str, Any]]], sort: tuple[str, ...]
) -> None:
    db, rows = big
    expected = _expected_order(rows, sort)
    seen: list[int] = []
    for offset in range(0, 1300, 100):
        page = db.run(Query(sort=sort, limit=100, offset=offset))
        seen += [r["id"] for r in page.rows]
        assert page.has_more == (offset + 100 < 1234)
        assert page.count == 1234
    assert seen == expected


def test_keyset_paging_with_filters_and_default_sort(
    big: tuple[Db, list[dict[str, Any]]],
) -> None:
    db, rows = big
    wanted = [r for r in rows if r["stage"] == "won" and r["金额"] is not None and r["金额"] >= 0]
    query = Query(filters=(Filter("stage", "eq", "won"), Filter("金额", "gte", "0")), limit=37)
    seen: list[int] = []
    page = db.run(query)
    assert page.sort == ("-id",)  # default sort: newest first
    assert page.count == len(wanted)
    while True:
        seen += [r["id"] for r in page.rows]
        if not page.has_more:
            break
        page = db.run(Query(filters=query.filters, limit=37, after=page.next_cursor))
    assert seen == sorted((r["id"] for r in wanted), reverse=True)


def test_entity_default_sort_and_id_tie_breaker(db_factory: Any) -> None:
    db: Db = db_factory(sort=("-金额",))
    db.insert(db.deal, [{"金额": Decimal(1)}, {"金额": Decimal(2)}, {"金额": Decimal(1)}, {}])
    page = db.run(Query())
    assert page.sort == ("-金额", "-id")
    assert [r["id"] for r in page.rows] == [2, 3, 1, 4]
    page = db.run(Query(sort=("金额", "id", "name")))  # nothing after id matters
    assert page.sort == ("金额", "id")
    assert [r["id"] for r in page.rows] == [1, 3, 2, 4]


def test_cursor_is_checked(big: tuple[Db, list[dict[str, Any]]]) -> None:
    db, _ = big
    page = db.run(Query(sort=("-金额",), limit=10))
    cursor = page.next_cursor
    assert cursor is not None
    # another sort order
    err = _error(db, sort=("金额",), after=cursor)
    assert err.param == "after" and "another sort order" in err.message("en")
    import base64
    import json

    def forge(payload: Any) -> str:
        raw = json.dumps(payload).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    tampered = [
        "not a cursor!",
        cursor[:-3],
        cursor + "AAAA",
        "x" * 5000,
        forge([1, 2]),
        forge({"s": ["-金额", "-id"], "k": [{"$d": "NaN"}, 5]}),
        forge({"s": ["-金额", "-id"], "k": ["5", 5]}),
        forge({"s": ["-金额", "-id"], "k": [{"$d": "1"}, "5"]}),
        forge({"s": ["-金额", "-id"], "k": [{"$d": "1"}, None]}),
        forge({"s": ["-金额", "-id"], "k": [{"$d": "1"}, 2**70]}),
        forge({"s": ["-金额", "-id"], "k": [{"$d": "1"}]}),
        forge({"s": ["-金额", "-id"], "k": [{"$d": "1"}, 5], "x": 1}),
    ]
    for bad in tampered:
        err = _error(db, sort=("-金额",), after=bad)
        assert err.param == "after"
        assert err.message("en").startswith("invalid page cursor")
    for sort, values in (
        (("close_date",), [{"$D": "2026-02-30"}, 1]),
        (("signed_at",), [{"$t": "2026-01-01T00:00:00"}, 1]),  # naive
        (("name",), ["a\x00", 1]),
        (("active",), [1, 1]),
    ):
        err = _error(db, sort=sort, after=forge({"s": [*sort, "id"], "k": values}))
        assert err.message("en").startswith("invalid page cursor")
    # a well-formed cursor written by hand works (blank values included)
    ok = forge({"s": ["-金额", "-id"], "k": [None, 10**6]})
    page = db.run(Query(sort=("-金额",), after=ok, limit=500))
    assert page.rows and all(r["金额"] is None for r in page.rows)


def test_counts_are_capped(big: tuple[Db, list[dict[str, Any]]]) -> None:
    db, rows = big
    page = db.run(Query(limit=10), count_cap=100, with_count=True)
    if db.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(sa.text(f"ANALYZE {db.deal.table.name}"))
        page = db.run(Query(limit=10), count_cap=100)
        assert (page.count, page.count_is_estimate, page.count_capped) == (1234, True, False)
    else:
        assert (page.count, page.count_is_estimate, page.count_capped) == (100, False, True)
    won = sum(1 for r in rows if r["stage"] == "won")
    assert won > 100
    page = db.run(Query(filters=(Filter("stage", "eq", "won"),), limit=10), count_cap=100)
    assert (page.count, page.count_is_estimate, page.count_capped) == (100, False, True)
    page = db.run(Query(filters=(Filter("stage", "eq", "won"),), limit=10), count_cap=won)
    assert (page.count, page.count_capped) == (won, False)
    page = db.run(Query(limit=10), with_count=False)
    assert page.count is None and len(page.rows) == 10 and page.has_more


def test_count_query_never_scans_past_the_cap(db: Db) -> None:
    from engine.storage.query import count_query

    stmt = count_query(db.deal, Query(filters=(Filter("stage", "eq", "won"),)), cap=10_000)
    sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
    assert "LIMIT 10001" in sql
    assert sql.lower().startswith("select count(*)")


def test_last_page_counts_without_a_count_query(small: Db) -> None:
    page = small.run(Query(sort=("id",), limit=4, offset=8))
    assert [r["id"] for r in page.rows] == [9, 10] and page.count == 10 and not page.has_more
    page = small.run(Query(sort=("id",), limit=4, offset=20))
    assert page.rows == [] and page.count == 10


def test_count_cap_only_applies_to_the_count_query(small: Db) -> None:
    everyone = (Filter("owner", "eq", "alice"),)
    page = small.run(Query(filters=everyone, sort=("id",), limit=4), count_cap=3)
    assert (page.count, page.count_capped, page.count_is_estimate) == (3, True, False)
    page = small.run(Query(filters=everyone, sort=("id",), limit=4, offset=8), count_cap=3)
    assert (page.count, page.count_capped) == (10, False)  # the last page knows the total
    page = small.run(Query(filters=everyone, sort=("id",), limit=5, offset=5), count_cap=3)
    assert page.has_more is False and page.count == 10


def test_fields_reads_only_the_named_columns_id_and_sort_keys(small: Db) -> None:
    everything = small.run(Query(sort=("-金额",), limit=3))
    page = small.run(Query(sort=("-金额",), limit=3, fields=("name", "stage", "owner")))
    assert [set(r) for r in page.rows] == [{"id", "name", "stage", "owner", "金额"}] * 3
    assert [r["id"] for r in page.rows] == [r["id"] for r in everything.rows]
    for row, full in zip(page.rows, everything.rows, strict=True):
        assert row == {k: full[k] for k in row}
    # Keyset paging over a column the rows did not ask for still works.
    assert page.next_cursor == everything.next_cursor
    after = small.run(Query(sort=("-金额",), limit=3, after=page.next_cursor, fields=("name",)))
    assert after.rows[0]["id"] == small.run(Query(sort=("-金额",), limit=4)).rows[3]["id"]
    # A hidden field stays hidden when named; an unknown name is simply absent.
    hidden = small.run(Query(sort=("id",), limit=1, fields=("notes", "nope")), hidden={"notes"})
    assert set(hidden.rows[0]) == {"id"}
    assert page.count == everything.count


def test_hidden_fields_are_invisible(small: Db) -> None:
    hidden = {"notes", "金额"}
    page = small.run(Query(sort=("id",), limit=1), hidden=hidden)
    assert "notes" not in page.rows[0] and "金额" not in page.rows[0]
    assert page.rows[0]["name"] == "Acme renewal" and page.rows[0]["id"] == 1
    assert small.ids(search="acme", hidden=hidden) == [1, 10]  # 9 matched only in notes
    err = _error(small, Filter("金额", "gte", "1"), hidden=hidden)
    assert err.message("en") == "unknown field '金额' in deal"
    err = _error(small, Filter("note", "blank"), hidden=hidden)
    assert err.message("en") == "unknown field 'note' in deal"  # no hint naming 'notes'
    err = _error(small, sort=("-金额",), hidden=hidden)
    assert err.message("en") == "unknown field '金额' in deal"
    with pytest.raises(QueryError) as exc:
        parse_query_args(small.deal.entity, {"notes__blank": "1"}, hidden=hidden)
    assert exc.value.message("en") == "unknown field 'notes' in deal"
    # system columns cannot be hidden: they identify and page the rows
    assert small.ids(Filter("id", "eq", 2), hidden={"id"}) == [2]


def test_default_sort_skips_hidden_fields(db_factory: Any) -> None:
    db: Db = db_factory(sort=("-金额", "name"))
    db.insert(db.deal, [{"金额": Decimal(1), "name": "b"}, {"金额": Decimal(2), "name": "a"}])
    assert db.run(Query()).sort == ("-金额", "name", "id")
    page = db.run(Query(), hidden={"金额"})
    assert page.sort == ("name", "id")
    assert [r["id"] for r in page.rows] == [2, 1]


def test_compile_query_is_one_select_with_bound_values(small: Db) -> None:
    stmt = compile_query(small.deal, Query(filters=(Filter("name", "eq", "' OR 1=1 --"),)))
    compiled = stmt.compile(small.engine)
    assert "' OR 1=1 --" not in str(compiled)
    assert "' OR 1=1 --" in compiled.params.values()
