"""Formulas translated to SQL answer as the Python evaluator does, on SQLite and PostgreSQL.

Each formula runs against real rows in a real database (SQLite in memory, and
a throwaway PostgreSQL database from the ``pg_url`` fixture) and is compared
with :meth:`Compiled.evaluate` / :meth:`Compiled.evaluate_rows` over the same
rows in Python - the SQL-independent oracle.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import ExpressionError
from engine.expressions import (
    BOOL,
    DATE,
    DATETIME,
    NUMBER,
    TEXT,
    EvalContext,
    Scope,
    Type,
    compile_formula,
    list_of,
)
from engine.storage.formula_sql import sql_supported, to_sql
from engine.storage.types import UTCDateTime

FIELDS: dict[str, Type] = {
    "stage": TEXT,
    "owner": TEXT,
    "amount": NUMBER,
    "probability": NUMBER,
    "close": DATE,
    "created": DATETIME,
    "flag": BOOL,
}
ROWS: list[dict[str, Any]] = [
    {"id": 1, "stage": "won", "owner": "alice", "amount": Decimal("1200.50"), "probability": 100,
     "close": date(2024, 1, 15), "created": datetime(2023, 12, 31, 17, 30, tzinfo=UTC),
     "flag": True},
    {"id": 2, "stage": "lost", "owner": "bob", "amount": Decimal("300.00"), "probability": 0,
     "close": date(2024, 2, 1), "created": datetime(2024, 1, 31, 15, 59, tzinfo=UTC),
     "flag": False},
    {"id": 3, "stage": "lead", "owner": "alice", "amount": Decimal("99.99"), "probability": 10,
     "close": None, "created": datetime(2024, 1, 31, 16, 1, tzinfo=UTC), "flag": None},
    {"id": 4, "stage": None, "owner": "carol", "amount": None, "probability": None,
     "close": date(2023, 12, 31), "created": None, "flag": True},
    {"id": 5, "stage": "won", "owner": "bob", "amount": Decimal("5000.00"), "probability": 90,
     "close": date(2024, 6, 30), "created": datetime(2024, 6, 1, 0, 0, tzinfo=UTC), "flag": False},
    {"id": 6, "stage": "", "owner": "dave", "amount": Decimal("0.00"), "probability": 50,
     "close": date(2024, 3, 1), "created": datetime(2024, 2, 29, 23, 0, tzinfo=UTC), "flag": None},
    {"id": 7, "stage": "proposal", "owner": "alice", "amount": Decimal("-20.25"), "probability": 60,
     "close": date(2024, 5, 5), "created": datetime(2024, 5, 5, 5, 5, tzinfo=UTC), "flag": True},
]  # fmt: skip
CLOCK = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _context(**kw: Any) -> EvalContext:
    return EvalContext(values={}, user="alice", role="sales_rep", now=lambda: CLOCK, **kw)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = sa.create_engine("sqlite://")
    else:
        eng = sa.create_engine(request.getfixturevalue("pg_url"))
    yield eng
    eng.dispose()


@pytest.fixture
def table(engine: Engine) -> Iterator[sa.Table]:
    metadata = sa.MetaData()
    opp = sa.Table(
        f"opp_{uuid.uuid4().hex[:8]}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("stage", sa.String(20)),
        sa.Column("owner", sa.String(20)),
        sa.Column("amount", sa.Numeric(18, 2)),
        sa.Column("probability", sa.Integer),
        sa.Column("close", sa.Date),
        sa.Column("created", UTCDateTime()),
        sa.Column("flag", sa.Boolean),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(opp.insert(), ROWS)
    yield opp
    metadata.drop_all(engine)


def norm(value: Any) -> Any:
    """Compare numbers to 6 decimals: SQLite computes division and AVG in floating point."""
    if value is None or isinstance(value, bool | str | date):
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value)).quantize(Decimal("0.000001"))
    return value


def columns(table: sa.Table) -> dict[str, Any]:
    return {name: table.c[name] for name in FIELDS}


ROW_FORMULAS = [
    "IF(stage != 'lost', amount * probability / 100, 0)",
    "amount * 2 + probability",
    "amount - probability * 1.5",
    "-amount",
    "amount / probability",
    "probability / 3",
    "stage == 'won'",
    "stage != 'won'",
    "not (stage == 'won')",
    "stage in ['won', 'lost']",
    "stage not in ['won', 'lost']",
    "amount > 100 and flag",
    "amount > 100 or flag",
    "not flag",
    "flag == False",
    "0 < probability <= 60",
    "ISBLANK(stage)",
    "stage == None",
    "amount != None",
    "COALESCE(amount, 0)",
    "BLANKVALUE(stage, 'none')",
    "ABS(amount - 500)",
    "ROUND(amount / 3, 2)",
    "ROUND(probability / 7)",
    "CHOOSE_BY(stage, {'lead': 10, 'proposal': 60, 'won': 100}, 0)",
    "CHOOSE_BY(stage, {'won': amount, 'lost': -amount})",
    "SWITCH(stage, 'won', 1, 'lost', -1, 0)",
    "IFS(amount > 1000, 'big', amount > 100, 'mid', True, 'small')",
    "IF(flag, 'y', 'n')",
    "'big' if amount > 1000 else 'small'",
    "stage + '-x'",
    "AND(flag, amount > 0)",
    "OR(flag, amount > 1000)",
    "NOT(flag)",
    "YEAR(created)",
    "MONTH(created)",
    "DAY(created)",
    "YEAR(close) * 100 + MONTH(close)",
    "owner == CURRENT_USER()",
    "CURRENT_ROLE() == 'sales_rep'",
    "close < TODAY()",
    "created < NOW()",
]


@pytest.mark.parametrize("source", ROW_FORMULAS)
def test_row_formulas_match_python(engine: Engine, table: sa.Table, source: str) -> None:
    compiled = compile_formula(source, Scope(FIELDS))
    assert sql_supported(compiled) is None
    expr = to_sql(compiled, columns(table), ctx=_context())
    with engine.connect() as conn:
        got = [row[1] for row in conn.execute(sa.select(table.c.id, expr).order_by(table.c.id))]
    expected = [
        compiled.evaluate(
            EvalContext(values=row, user="alice", role="sales_rep", now=lambda: CLOCK)
        )
        for row in ROWS
    ]
    assert [norm(v) for v in got] == [norm(v) for v in expected]


MEASURES = [
    "SUM(amount)",
    "COUNT()",
    "COUNT(amount)",
    "COUNT(stage == 'won')",
    "COUNT(stage == 'won') / COUNT(stage in ['won', 'lost'])",
    "COUNT(stage == 'nobody') / COUNT(stage == 'nothing')",
    "AVG(amount)",
    "AVERAGE(probability)",
    "MIN(amount)",
    "MAX(amount)",
    "MIN(close)",
    "MAX(stage)",
    "COUNT_DISTINCT(owner)",
    "SUMIF(stage == 'won', amount)",
    "COUNTIF(flag)",
    "SUM(IF(stage == 'won', amount, 0)) / SUM(amount)",
    "ROUND(SUM(amount) / COUNT(), 2)",
    "SUM(amount * probability / 100)",
    "SUM(amount) - SUM(COALESCE(amount, 0) * 0.5)",
    "COUNT(YEAR(created) == 2024)",
]


@pytest.mark.parametrize("measure", MEASURES)
def test_kpi_measures_match_evaluate_rows(engine: Engine, table: sa.Table, measure: str) -> None:
    compiled = compile_formula(measure, Scope(FIELDS, aggregate=True))
    assert sql_supported(compiled) is None
    with engine.connect() as conn:
        query = sa.select(to_sql(compiled, columns(table))).select_from(table)
        got = conn.execute(query).scalar_one()
    assert norm(got) == norm(compiled.evaluate_rows(ROWS, EvalContext({})))


@pytest.mark.parametrize(
    ("measure", "where"),
    [
        ("SUM(amount)", "stage == 'won'"),
        ("COUNT()", "not (stage == 'won')"),
        ("AVG(probability)", "flag and amount > 0"),
        ("COUNT()", "stage not in ['won', 'lost']"),
        ("SUM(amount)", "owner == CURRENT_USER() and YEAR(created) == 2024"),
    ],
)
def test_measure_with_where_filter(
    engine: Engine, table: sa.Table, measure: str, where: str
) -> None:
    measure_c = compile_formula(measure, Scope(FIELDS, aggregate=True))
    where_c = compile_formula(where, Scope(FIELDS), expect=BOOL)
    cols = columns(table)
    query = (
        sa.select(to_sql(measure_c, cols))
        .select_from(table)
        .where(to_sql(where_c, cols, ctx=_context(), condition=True))
    )
    with engine.connect() as conn:
        got = conn.execute(query).scalar_one()
    kept = [r for r in ROWS if where_c.evaluate(EvalContext(values=r, user="alice"))]
    assert norm(got) == norm(measure_c.evaluate_rows(kept, EvalContext({})))


def test_division_by_zero_is_null_not_an_error(engine: Engine, table: sa.Table) -> None:
    compiled = compile_formula("amount / (probability - probability)", Scope(FIELDS))
    with engine.connect() as conn:
        got = conn.execute(sa.select(to_sql(compiled, columns(table)))).scalars().all()
    assert got == [None] * len(ROWS)


def test_condition_mode_keeps_sql_plain() -> None:
    compiled = compile_formula("stage == 'won' and amount > 10", Scope(FIELDS))
    cols: dict[str, Any] = {name: sa.column(name) for name in FIELDS}
    plain = str(
        to_sql(compiled, cols, condition=True).compile(compile_kwargs={"literal_binds": True})
    )
    assert plain == "stage = 'won' AND amount > 10"
    value = str(to_sql(compiled, cols).compile(compile_kwargs={"literal_binds": True}))
    assert value == "coalesce(stage = 'won' AND amount > 10, false)"


@pytest.mark.parametrize(
    ("source", "scope", "reason"),
    [
        ("amount % 2", Scope(FIELDS), "cannot be computed in the database: %"),
        ("MOD(amount, 2)", Scope(FIELDS), "cannot be computed in the database: MOD"),
        ("LEFT(stage, 1)", Scope(FIELDS), "cannot be computed in the database: LEFT"),
        ("ROUND(amount, -2)", Scope(FIELDS), "cannot be computed in the database: ROUND"),
        ("ROUND(amount, probability)", Scope(FIELDS), "cannot be computed in the database: ROUND"),
        (
            "SUM(lines.qty)",
            Scope(FIELDS, {"lines": {"qty": NUMBER}}),
            "cannot be computed in the database: SUM over a child table",
        ),
        ("MAX(amount, 0)", Scope(FIELDS), "cannot be computed in the database: MAX over"),
        ("'vip' in tags", Scope({"tags": list_of(TEXT)}), "cannot be computed in the database: in"),
        ("ISBLANK(tags)", Scope({"tags": list_of(TEXT)}), "cannot be computed in the database"),
        (
            "SUM(LEN(stage))",
            Scope(FIELDS, aggregate=True),
            "cannot be computed in the database: LEN",
        ),
    ],
)
def test_untranslatable_formulas_are_refused_clearly(
    source: str, scope: Scope, reason: str
) -> None:
    compiled = compile_formula(source, scope)
    text = sql_supported(compiled)
    assert text is not None
    assert reason in text.get("en")
    assert text.get(
        "zh",
    ).startswith("无法在数据库中计算")
    placeholders: dict[str, Any] = {name: sa.column(name) for name in compiled.names}
    with pytest.raises(ExpressionError) as info:
        to_sql(compiled, placeholders)
    assert reason in info.value.text.get("en")
    assert info.value.source == source


def test_context_functions_need_a_context() -> None:
    compiled = compile_formula("owner == CURRENT_USER()", Scope(FIELDS))
    assert sql_supported(compiled) is None
    with pytest.raises(ExpressionError, match=r"CURRENT_USER\(\) needs an evaluation context"):
        to_sql(compiled, {"owner": sa.column("owner")})


def test_missing_column_is_reported() -> None:
    compiled = compile_formula("amount > 1", Scope(FIELDS))
    with pytest.raises(ExpressionError, match="the field 'amount' has no column"):
        to_sql(compiled, {})


def test_local_date_parts_follow_the_business_time_zone(engine: Engine, table: sa.Table) -> None:
    # Row 1 was created 2023-12-31 17:30 UTC: already 2024 in Shanghai, still 2023 in UTC.
    compiled = compile_formula("YEAR(created)", Scope(FIELDS))
    cols = columns(table)
    for tz, expected in ((None, 2024), (UTC, 2023)):
        ctx = _context() if tz is None else _context(tz=tz)
        query = sa.select(to_sql(compiled, cols, ctx=ctx)).where(table.c.id == 1)
        with engine.connect() as conn:
            assert conn.execute(query).scalar_one() == expected
