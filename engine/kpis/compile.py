"""A KPI as one aggregate SELECT ... GROUP BY over its entity's table.

The measure and the ``where`` filter go through the formula language's SQL
translator (:mod:`engine.storage.formula_sql`); dimensions become GROUP BY
expressions; the period is a bound-parameter range on the raw date column
(``col >= :start AND col < :end``), so an index on the date field serves it.

Time buckets are computed in the business time zone and returned as the first
day of the bucket (a ``date``): day, ISO week (starting Monday), month, quarter,
year. A date field is already a local date; a date-time field (stored in UTC) is
shifted to local time first: ``timezone(zone, col)`` on PostgreSQL, a fixed
``+N minutes`` on SQLite (a zone with daylight saving cannot be bucketed on
SQLite and is refused with :class:`KpiError`).

The pieces that do not depend on the viewer (measure, where, group
expressions) are built once per (KPI, dimensions) and kept; each evaluation
adds the viewer's scope, the filters and the period bounds as bound values.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.checks import TIME_BUCKETS, UNGROUPABLE_KINDS
from engine.errors import FormflowError
from engine.expressions import Compiled, EvalContext, ir
from engine.i18n import T
from engine.model import SYSTEM_COLUMNS, Field, Kpi
from engine.storage.formula_sql import _fixed_offset_minutes, to_sql
from engine.storage.schema import EntityTable, storage_kind

__all__ = [
    "CONTEXT_FUNCTIONS",
    "Dimension",
    "KpiError",
    "KpiQuery",
    "additive",
    "bucket_expr",
    "combine",
    "date_bounds",
    "dimension",
    "measure_columns",
    "parts",
]

SqlExpr = ColumnElement[Any]

#: Formula functions whose SQL depends on who asks and when: not cached.
CONTEXT_FUNCTIONS = frozenset({"CURRENT_USER", "CURRENT_ROLE", "TODAY", "NOW"})
#: Storage kinds that cannot be grouped on (lists, child tables).
UNGROUPABLE = frozenset({"json", "table"})


class KpiError(FormflowError):
    """A KPI request that cannot be answered as asked (unknown dimension, filter ...)."""

    http_status = 400


@dataclass(frozen=True)
class Dimension:
    """One GROUP BY dimension: a time bucket, ``owner``, ``team`` or a field."""

    name: str
    kind: str  # time | owner | team | field
    field: Field | None = None

    @property
    def storage(self) -> str:
        if self.kind == "time":
            return "date"
        if self.field is None:
            return "text"
        return storage_kind(self.field)


def dimension(kpi: Kpi, et: EntityTable, name: str) -> Dimension:
    """The dimension called ``name`` of ``kpi``; :class:`KpiError` when there is none."""
    if name in TIME_BUCKETS:
        if kpi.date is None:
            raise KpiError(
                T(
                    f"指标 '{kpi.name}' 没有日期字段，不能按 {name} 分组",
                    f"KPI '{kpi.name}' has no date field and cannot be grouped by {name}",
                )
            )
        return Dimension(name, "time")
    if name in ("owner", "team"):
        return Dimension(name, name)
    f = et.entity.fields.get(name)
    if (
        f is None
        or storage_kind(f) in UNGROUPABLE
        or f.kind in UNGROUPABLE_KINDS
        or name not in et.columns
    ):
        usable = [
            n
            for n, x in et.entity.fields.items()
            if n in et.columns and x.kind not in UNGROUPABLE_KINDS and storage_kind(x) != "json"
        ]
        known = ", ".join([*sorted(TIME_BUCKETS), "owner", "team", *usable])
        raise KpiError(
            T(
                f"指标 '{kpi.name}' 不能按 '{name}' 分组；可用：{known}",
                f"KPI '{kpi.name}' cannot be grouped by '{name}'; use one of: {known}",
            )
        )
    return Dimension(name, "field", f)


def measure_columns(et: EntityTable) -> dict[str, SqlExpr]:
    """Field name -> column, plus the system columns, for the SQL translator."""
    columns: dict[str, SqlExpr] = {
        name: et.table.c[name] for name in SYSTEM_COLUMNS if name in et.table.c
    }
    columns.update(et.columns)
    return columns


def uses_context(compiled: Compiled) -> bool:
    return any(
        isinstance(n, ir.Call) and n.name in CONTEXT_FUNCTIONS for n in ir.walk(compiled.node)
    )


def additive(compiled: Compiled) -> bool:
    """Whether the totals of groups add up to the total (SUM/COUNT, +, -, × constant).

    Then the total is the sum of the rows and needs no second query.
    """
    return _additive(compiled.node)


def _additive(node: ir.Node) -> bool:
    if isinstance(node, ir.Aggregate):
        return node.source == "rows" and node.name in ("SUM", "COUNT", "COUNTIF", "SUMIF")
    if isinstance(node, ir.Binary):
        if node.op in ("+", "-"):
            return _additive(node.left) and _additive(node.right)
        if node.op == "*":
            return (isinstance(node.left, ir.Const) and _additive(node.right)) or (
                isinstance(node.right, ir.Const) and _additive(node.left)
            )
        if node.op == "/":
            return (
                isinstance(node.right, ir.Const) and bool(node.right.value) and _additive(node.left)
            )
    if isinstance(node, ir.Unary) and node.op in ("-", "+"):
        return _additive(node.operand)
    return False


def parts(compiled: Compiled) -> tuple[ir.Aggregate, ...] | None:
    """The additive aggregates a ratio-like measure is arithmetic over, else None.

    ``100 * COUNT(won) / COUNT(decided)`` has the parts COUNT(won), COUNT(decided):
    selected beside the value, their sums over the groups give the total without
    a second query (:func:`combine`). An additive measure needs no parts.
    """
    found: list[ir.Aggregate] = []

    def walk(node: ir.Node) -> bool:
        if isinstance(node, ir.Aggregate):
            found.append(node)
            return _additive(node)
        if isinstance(node, ir.Binary) and node.op in ("+", "-", "*", "/"):
            return walk(node.left) and walk(node.right)
        if isinstance(node, ir.Unary) and node.op in ("-", "+"):
            return walk(node.operand)
        return isinstance(node, ir.Const) and isinstance(node.value, int | Decimal)

    if additive(compiled) or not walk(compiled.node) or not found:
        return None
    return tuple(found)


def combine(node: ir.Node, sums: Mapping[int, Decimal]) -> Decimal | None:
    """The measure's value from its parts' totals (``sums`` by ``id(part)``); x/0 is blank."""
    if isinstance(node, ir.Aggregate):
        return sums[id(node)]
    if isinstance(node, ir.Const):
        return Decimal(node.value)
    if isinstance(node, ir.Unary):
        inner = combine(node.operand, sums)
        return None if inner is None else (-inner if node.op == "-" else inner)
    assert isinstance(node, ir.Binary)
    left, right = combine(node.left, sums), combine(node.right, sums)
    if left is None or right is None:
        return None
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    return None if right == 0 else left / right


def _plain_on_sqlite(expr: SqlExpr, dialect: str) -> SqlExpr:
    """SQLite computes numbers as floats: take them as they come (the service makes
    exact decimals of their shortest text) rather than through SQLAlchemy's Decimal."""
    if dialect == "sqlite" and not isinstance(expr.type, sa.Integer):
        return sa.type_coerce(expr, sa.Float())
    return expr


def _part_formula(compiled: Compiled, node: ir.Node) -> Compiled:
    """``compiled`` narrowed to one of its nodes, for the SQL translator."""
    part = copy.copy(compiled)
    part.node = node
    part.type = node.type
    return part


# -- time buckets ----------------------------------------------------------------------


def _local(col: SqlExpr, datetime_col: bool, dialect: str, tz: tzinfo) -> SqlExpr:
    """The column as local wall-clock time (a date column already is)."""
    if not datetime_col:
        return col
    if dialect == "postgresql":
        zone = getattr(tz, "key", None) or str(tz)
        return sa.func.timezone(zone, col)
    minutes = _fixed_offset_minutes(tz)
    if minutes is None:
        zone = getattr(tz, "key", None) or str(tz)
        raise KpiError(
            T(
                f"时区 {zone} 有夏令时，SQLite 无法按本地时间分组日期时间字段；请用 PostgreSQL "
                "或日期字段",
                f"the time zone {zone} has daylight saving: SQLite cannot bucket a date-time "
                "field in local time; use PostgreSQL or a date field",
            )
        )
    if minutes == 0:
        return sa.func.datetime(col)
    return sa.func.datetime(col, f"{minutes:+d} minutes")


def bucket_expr(
    col: SqlExpr, bucket: str, *, datetime_col: bool, dialect: str, tz: tzinfo
) -> SqlExpr:
    """The first local day of ``col``'s bucket, in the cheapest form to group on.

    PostgreSQL: the timestamp of its local midnight. SQLite: text, 'YYYY-MM-DD' for
    days and weeks, 'YYYY-MM' for months and quarters (the first month), 'YYYY' for
    years. The service turns each into a ``date``.
    """
    local = _local(col, datetime_col, dialect, tz)
    if dialect == "postgresql":
        # a timestamp at local midnight: the service takes its date (grouping on the
        # timestamp spares PostgreSQL a cast per row)
        if bucket == "day" and not datetime_col:
            return col
        stamp = local if datetime_col else sa.cast(col, sa.DateTime())
        return sa.func.date_trunc(bucket, stamp, type_=sa.DateTime())
    # SQLite stores dates as 'YYYY-MM-DD' text (and date-times as 'YYYY-MM-DD HH:MM:SS...').
    if bucket == "day":
        return sa.func.substr(local, 1, 10) if datetime_col else col
    if bucket == "week":
        return sa.func.date(sa.func.substr(local, 1, 10), "-6 days", "weekday 1")
    if bucket == "month":
        return sa.func.substr(local, 1, 7)
    if bucket == "year":
        return sa.func.substr(local, 1, 4)
    # quarter: month 1-3 -> 01, 4-6 -> 04 ... (two characters picked by the month)
    month = sa.cast(sa.func.substr(local, 6, 2), sa.Integer())
    first = sa.func.substr("010101040404070707101010", month * 2 - 1, 2)
    return sa.func.substr(local, 1, 5).concat(first)


def date_bounds(
    start: date | None, end: date | None, *, datetime_col: bool, tz: tzinfo
) -> tuple[Any, Any]:
    """Local ``[start, end)`` dates as values to compare the raw column with."""
    if not datetime_col:
        return start, end

    def moment(day: date | None) -> datetime | None:
        if day is None:
            return None
        return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)

    return moment(start), moment(end)


# -- the query ------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiQuery:
    """The viewer-independent parts of one (KPI or target, dimensions) query."""

    et: EntityTable
    measure: SqlExpr
    where: SqlExpr | None
    dims: tuple[Dimension, ...]
    groups: tuple[SqlExpr | None, ...]  # None for ``team``: built per call from the hierarchy
    date_col: SqlExpr | None
    datetime_col: bool
    owner_col: SqlExpr | None  # the column ``owner``/``team`` dimensions and filters use
    parts: tuple[SqlExpr, ...] = ()  # see :func:`parts`: selected beside the value
    integral: bool = False  # the measure counts: its values are ints on both databases

    @classmethod
    def build(
        cls,
        et: EntityTable,
        measure: Compiled,
        where: Compiled | None,
        dims: Sequence[Dimension],
        *,
        date_field: str | None,
        owner_field: str | None,
        dialect: str,
        tz: tzinfo,
        ctx: EvalContext,
        field_of: Mapping[str, str] | None = None,
    ) -> KpiQuery:
        """``field_of`` maps a dimension to the column that holds it (targets' ``match``)."""
        columns = measure_columns(et)
        measure_raw = to_sql(measure, columns, ctx=ctx)
        measure_sql = _plain_on_sqlite(measure_raw, dialect).label("value")
        part_sql = tuple(
            _plain_on_sqlite(to_sql(_part_formula(measure, node), columns, ctx=ctx), dialect).label(
                f"a{index}"
            )
            for index, node in enumerate(parts(measure) or ())
        )
        where_sql = to_sql(where, columns, ctx=ctx, condition=True) if where is not None else None
        date_col: SqlExpr | None = None
        datetime_col = False
        if date_field is not None:
            date_col = et.column(date_field)
            f = et.entity.fields.get(date_field)
            datetime_col = (storage_kind(f) if f is not None else "datetime") == "datetime"
        owner_col = et.column(owner_field) if owner_field is not None else None
        groups: list[SqlExpr | None] = []
        for index, dim in enumerate(dims):
            label = f"k{index}"
            if dim.kind == "time":
                assert date_col is not None
                groups.append(
                    bucket_expr(
                        date_col, dim.name, datetime_col=datetime_col, dialect=dialect, tz=tz
                    ).label(label)
                )
            elif dim.kind == "team":
                groups.append(None)
            elif dim.kind == "owner":
                assert owner_col is not None
                groups.append(owner_col.label(label))
            else:
                name = (field_of or {}).get(dim.name, dim.name)
                groups.append(et.column(name).label(label))
        return cls(
            et=et,
            measure=measure_sql,
            where=where_sql,
            dims=tuple(dims),
            groups=tuple(groups),
            date_col=date_col,
            datetime_col=datetime_col,
            owner_col=owner_col,
            parts=part_sql,
            integral=isinstance(measure_raw.type, sa.Integer),
        )

    def select(
        self,
        *,
        tz: tzinfo,
        start: date | None,
        end: date | None,
        scope: SqlExpr | None,
        owners: Sequence[str] | None,
        teams: Mapping[str, str],
        grouped: bool = True,
    ) -> sa.Select[Any]:
        """The SELECT for one evaluation.

        ``owners``: only records owned by these (a team or owner filter);
        ``teams``: owner -> the team they count in (owners not listed are their own).
        """
        cols: list[SqlExpr] = []
        if grouped:
            for index, group in enumerate(self.groups):
                if group is None:
                    cols.append(self._team_expr(teams).label(f"k{index}"))
                else:
                    cols.append(group)
        if grouped and cols and self.parts:
            # the value of each group follows from its parts (service: combine)
            measures: tuple[SqlExpr, ...] = self.parts
        else:
            measures = (self.measure,)
        stmt = sa.select(*cols, *measures).select_from(self.et.table)
        conditions: list[SqlExpr] = []
        if self.where is not None:
            conditions.append(self.where)
        if self.date_col is not None and (start is not None or end is not None):
            low, high = date_bounds(start, end, datetime_col=self.datetime_col, tz=tz)
            if low is not None:
                conditions.append(self.date_col >= sa.bindparam("p_start", low, self.date_col.type))
            if high is not None:
                conditions.append(self.date_col < sa.bindparam("p_end", high, self.date_col.type))
        if scope is not None:
            conditions.append(scope)
        if owners is not None:
            assert self.owner_col is not None
            conditions.append(
                self.owner_col.in_(sa.bindparam("p_owners", sorted(owners), expanding=True))
            )
        if conditions:
            stmt = stmt.where(*conditions)
        if grouped and cols:
            stmt = stmt.group_by(*cols)
        return stmt

    def _team_expr(self, teams: Mapping[str, str]) -> SqlExpr:
        assert self.owner_col is not None
        moved = {owner: team for owner, team in teams.items() if owner != team}
        if not moved:
            return self.owner_col
        by_team: dict[str, list[str]] = {}
        for owner, team in moved.items():
            by_team.setdefault(team, []).append(owner)
        whens = [
            (self.owner_col.in_(sorted(members)), sa.literal(team, sa.String()))
            for team, members in sorted(by_team.items())
        ]
        return sa.case(*whens, else_=self.owner_col)
