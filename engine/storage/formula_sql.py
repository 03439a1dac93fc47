"""Translate checked formulas to SQLAlchemy Core, for KPI measures and filters in the database.

The translation keeps the formula language's meaning, not SQL's, where they
differ: a comparison with a blank is false (so ``NOT`` sees false, not NULL),
SUM and COUNT of nothing are 0, and division by zero is NULL (via NULLIF).
What cannot be kept exactly on both SQLite and PostgreSQL (``%`` and MOD have
different signs, text functions differ, child-table aggregates need a join) is
refused with "cannot be computed in the database: X"; :func:`sql_supported`
reports that reason ahead of time for ``formflow check``.

The same formula can always be evaluated in Python with
:meth:`~engine.expressions.Compiled.evaluate_rows`, which the tests use as the
oracle for this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from engine.errors import ExpressionError
from engine.expressions import Compiled, EvalContext, ir
from engine.expressions.runtime import BUSINESS_TZ
from engine.expressions.types import BOOL, DATE, DATETIME, NUMBER, TEXT, Type
from engine.i18n import T, Text

SqlExpr = ColumnElement[Any]


def to_sql(
    compiled: Compiled,
    columns: Mapping[str, SqlExpr],
    *,
    ctx: EvalContext | None = None,
    condition: bool = False,
) -> SqlExpr:
    """The formula as a SQL expression over ``columns`` (field name -> column).

    ``ctx`` supplies CURRENT_USER(), CURRENT_ROLE(), TODAY() and NOW() as bound
    values and the business time zone for YEAR/MONTH/DAY of date-times.
    ``condition=True`` is for a WHERE clause: a NULL comparison may stay NULL
    there (it filters like false), which keeps the SQL index-friendly.
    Raises ExpressionError when the formula cannot be computed in the database.
    """
    translator = _Translator(compiled, columns, ctx)
    try:
        if condition and compiled.type == BOOL:
            result = translator.cond(compiled.node)
        else:
            result = translator.value(compiled.node)
    except ExpressionError as exc:
        exc.source = compiled.source
        raise
    if compiled.type == NUMBER and not isinstance(result.type, sa.Integer):
        result = sa.type_coerce(result, sa.Numeric(asdecimal=True))
    return result


def sql_supported(compiled: Compiled) -> Text | None:
    """None if :func:`to_sql` can translate the formula, else why not (for ``formflow check``)."""
    placeholders = {
        name: sa.column(name, _sql_type(t)) for name, t in _field_types(compiled).items()
    }
    try:
        to_sql(compiled, placeholders, ctx=EvalContext(values={}))
    except ExpressionError as exc:
        return exc.text
    return None


def _field_types(compiled: Compiled) -> dict[str, Type]:
    return {n.name: n.type for n in ir.walk(compiled.node) if isinstance(n, ir.FieldRef)}


def _sql_type(t: Type) -> sa.types.TypeEngine[Any]:
    if t == NUMBER:
        return sa.Numeric()
    if t == TEXT:
        return sa.String()
    if t == BOOL:
        return sa.Boolean()
    if t == DATE:
        return sa.Date()
    if t == DATETIME:
        return sa.DateTime(timezone=True)
    return sa.types.NullType()


def _refuse(what: str, offset: ir.Offset = (0, 0)) -> ExpressionError:
    return ExpressionError(
        T(f"无法在数据库中计算：{what}", f"cannot be computed in the database: {what}"),
        offset=offset,
    )


def _literal(value: Any) -> SqlExpr:
    if value is None:
        return sa.null()
    if isinstance(value, bool):
        return sa.literal(value, sa.Boolean())
    if isinstance(value, int):
        return sa.literal(value, sa.Integer())
    if isinstance(value, Decimal):
        return sa.literal(value, sa.Numeric())
    if isinstance(value, str):
        return sa.literal(value, sa.String())
    if isinstance(value, datetime):
        return sa.literal(value, sa.DateTime(timezone=True))
    if isinstance(value, date):
        return sa.literal(value, sa.Date())
    raise _refuse(type(value).__name__)


FunctionTranslator = Callable[["_Translator", ir.Call], SqlExpr]
#: SQL translations of formula functions by name; an extension adds its own here.
SQL_FUNCTIONS: dict[str, FunctionTranslator] = {}


def sql_function(name: str) -> Callable[[FunctionTranslator], FunctionTranslator]:
    def register(fn: FunctionTranslator) -> FunctionTranslator:
        SQL_FUNCTIONS[name] = fn
        return fn

    return register


class _Translator:
    """Walks the IR in two modes.

    ``value`` where NULL must mean blank, ``cond`` where NULL may mean false.
    """

    def __init__(
        self, compiled: Compiled, columns: Mapping[str, SqlExpr], ctx: EvalContext | None
    ) -> None:
        self.compiled = compiled
        self.columns = columns
        self.ctx = ctx
        self.tz: tzinfo = ctx.tz if ctx is not None else BUSINESS_TZ

    # -- contexts ------------------------------------------------------------
    def cond(self, node: ir.Node) -> SqlExpr:
        """A condition where NULL may stand for false (WHERE, CASE WHEN, and/or operands)."""
        if isinstance(node, ir.Compare):
            return self.compare(node)
        if isinstance(node, ir.BoolOp):
            parts = [self.cond(v) for v in node.values]
            return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
        if isinstance(node, ir.InList):
            return self.in_list(node)
        return self.value(node)

    def value(self, node: ir.Node) -> SqlExpr:
        """An expression whose NULL means blank; true/false results are never NULL."""
        if isinstance(node, ir.Compare | ir.BoolOp | ir.InList):
            return sa.func.coalesce(self.cond(node), sa.false(), type_=sa.Boolean())
        method: Callable[[Any], SqlExpr] | None = getattr(self, "v_" + type(node).__name__, None)
        if method is None:
            raise _refuse(type(node).__name__, node.offset)
        return method(node)

    # -- leaves --------------------------------------------------------------
    def v_Const(self, node: ir.Const) -> SqlExpr:  # noqa: N802 - named after the IR class
        return _literal(node.value)

    def v_FieldRef(self, node: ir.FieldRef) -> SqlExpr:  # noqa: N802
        try:
            return self.columns[node.name]
        except KeyError:
            raise ExpressionError(
                T(
                    f"字段 '{node.name}' 没有对应的数据库列",
                    f"the field '{node.name}' has no column",
                ),
                offset=node.offset,
            ) from None

    def v_ColumnRef(self, node: ir.ColumnRef) -> SqlExpr:  # noqa: N802
        raise _refuse(f"{node.table}.{node.column}", node.offset)

    def v_ListLit(self, node: ir.ListLit) -> SqlExpr:  # noqa: N802
        raise _refuse(T("列表", "a list").get("en"), node.offset)

    # -- operators -------------------------------------------------------------
    def v_Unary(self, node: ir.Unary) -> SqlExpr:  # noqa: N802
        if node.op == "not":  # NOT NULL would be NULL; in the language, not blank is true
            return sa.not_(sa.func.coalesce(self.value(node.operand), sa.false()))
        operand = self.value(node.operand)
        return -operand if node.op == "-" else operand

    def v_Binary(self, node: ir.Binary) -> SqlExpr:  # noqa: N802
        if node.op == "%":
            raise _refuse("%", node.offset)
        left, right = self.value(node.left), self.value(node.right)
        if node.op == "+" and TEXT in (node.left.type, node.right.type):
            return left.concat(right)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        # SQLAlchemy makes integer / integer a true division on both dialects.
        if isinstance(node.right, ir.Const) and node.right.value:
            return left / right
        return left / sa.func.nullif(right, 0, type_=right.type)

    def compare(self, node: ir.Compare) -> SqlExpr:
        left, right = self.value(node.left), self.value(node.right)
        ops: dict[str, Callable[[SqlExpr, SqlExpr], SqlExpr]] = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return ops[node.op](left, right)

    def in_list(self, node: ir.InList) -> SqlExpr:
        if node.items is None:
            raise _refuse("in " + T("列表字段", "a list field").get("en"), node.offset)
        needle = self.value(node.needle)
        if not node.items:
            return needle.is_not(None) if node.negate else sa.false()
        items = [self.value(i) for i in node.items]
        return needle.not_in(items) if node.negate else needle.in_(items)

    def v_IsBlank(self, node: ir.IsBlank) -> SqlExpr:  # noqa: N802
        blank = self.blank(node.operand)
        return sa.not_(blank) if node.negate else blank

    def blank(self, node: ir.Node) -> SqlExpr:
        operand = self.value(node)
        if node.type == TEXT:
            return sa.or_(operand.is_(None), operand == "")
        if node.type.is_list:
            raise _refuse("ISBLANK(" + T("列表", "list").get("en") + ")", node.offset)
        return operand.is_(None)

    def v_Cond(self, node: ir.Cond) -> SqlExpr:  # noqa: N802
        return sa.case((self.cond(node.test), self.value(node.body)), else_=self.value(node.orelse))

    def v_MapLit(self, node: ir.MapLit) -> SqlExpr:  # noqa: N802
        raise _refuse("{...}", node.offset)

    # -- calls -----------------------------------------------------------------
    def v_Call(self, node: ir.Call) -> SqlExpr:  # noqa: N802
        translate = SQL_FUNCTIONS.get(node.name)
        if translate is None:
            raise _refuse(node.name, node.offset)
        return translate(self, node)

    def v_Aggregate(self, node: ir.Aggregate) -> SqlExpr:  # noqa: N802
        if node.source != "rows":
            raise _refuse(
                f"{node.name} " + T("子表聚合", "over a child table").get("en"), node.offset
            )
        name = node.name
        args = node.args
        if name in ("COUNT", "COUNTIF") and args and args[0].type == BOOL:
            return self.count_true(args[0])
        if name == "COUNT":
            return sa.func.count(self.value(args[0])) if args else sa.func.count()
        if name == "SUMIF":
            picked = sa.case((self.cond(args[0]), self.value(args[1])), else_=sa.null())
            return sa.func.coalesce(sa.func.sum(picked), 0)
        inner = self.value(args[0])
        if name == "SUM":
            return sa.func.coalesce(sa.func.sum(inner), 0, type_=inner.type)
        if name in ("AVG", "AVERAGE"):
            return sa.func.avg(inner, type_=sa.Numeric())
        if name == "MIN":
            return sa.func.min(inner, type_=inner.type)
        if name == "MAX":
            return sa.func.max(inner, type_=inner.type)
        if name == "COUNT_DISTINCT":
            return sa.func.count(sa.distinct(inner))
        raise _refuse(name, node.offset)

    def count_true(self, condition: ir.Node) -> SqlExpr:
        ones = sa.case((self.cond(condition), 1), else_=0)
        return sa.func.coalesce(sa.func.sum(ones), 0, type_=sa.Integer())

    def context_value(self, node: ir.Call) -> EvalContext:
        if self.ctx is None:
            raise ExpressionError(
                T(
                    f"{node.name}() 需要求值上下文（当前用户、时钟）才能在数据库中计算",
                    f"{node.name}() needs an evaluation context (user, clock) "
                    "to run in the database",
                ),
                offset=node.offset,
            )
        return self.ctx

    def local_part(self, node: ir.Call, part: str) -> SqlExpr:
        arg = node.args[0]
        expr = self.value(arg)
        if arg.type == DATETIME:
            expr = _LocalDateTime(expr, self.tz)
        return sa.cast(sa.extract(part, expr), sa.Integer())


# -- function translations -------------------------------------------------------


@sql_function("IF")
def _if(t: _Translator, node: ir.Call) -> SqlExpr:
    orelse = t.value(node.args[2]) if len(node.args) > 2 else sa.null()
    return sa.case((t.cond(node.args[0]), t.value(node.args[1])), else_=orelse)


@sql_function("IFS")
def _ifs(t: _Translator, node: ir.Call) -> SqlExpr:
    pairs = [(t.cond(c), t.value(v)) for c, v in zip(node.args[0::2], node.args[1::2], strict=True)]
    return sa.case(*pairs, else_=sa.null())


@sql_function("AND")
def _and(t: _Translator, node: ir.Call) -> SqlExpr:
    return sa.func.coalesce(sa.and_(*[t.cond(a) for a in node.args]), sa.false())


@sql_function("OR")
def _or(t: _Translator, node: ir.Call) -> SqlExpr:
    return sa.func.coalesce(sa.or_(*[t.cond(a) for a in node.args]), sa.false())


@sql_function("NOT")
def _not(t: _Translator, node: ir.Call) -> SqlExpr:
    return sa.not_(sa.func.coalesce(t.value(node.args[0]), sa.false()))


@sql_function("ISBLANK")
def _isblank(t: _Translator, node: ir.Call) -> SqlExpr:
    return t.blank(node.args[0])


@sql_function("COALESCE")
def _coalesce(t: _Translator, node: ir.Call) -> SqlExpr:
    return sa.func.coalesce(*[t.value(a) for a in node.args])


@sql_function("BLANKVALUE")
def _blankvalue(t: _Translator, node: ir.Call) -> SqlExpr:
    return sa.case((t.blank(node.args[0]), t.value(node.args[1])), else_=t.value(node.args[0]))


@sql_function("ABS")
def _abs(t: _Translator, node: ir.Call) -> SqlExpr:
    inner = t.value(node.args[0])
    return sa.func.abs(inner, type_=inner.type)


@sql_function("ROUND")
def _round(t: _Translator, node: ir.Call) -> SqlExpr:
    digits = node.args[1] if len(node.args) > 1 else ir.Const(NUMBER, node.offset, 0)
    if not (isinstance(digits, ir.Const) and isinstance(digits.value, int) and digits.value >= 0):
        # SQLite treats negative digits as 0 and has no ROUND of a computed digit count.
        raise _refuse(
            "ROUND(x, "
            + T("非负整数常量以外的位数", "digits other than a constant 0 or more").get("en")
            + ")",
            node.offset,
        )
    return sa.func.round(
        sa.cast(t.value(node.args[0]), sa.Numeric()), digits.value, type_=sa.Numeric()
    )


@sql_function("CHOOSE_BY")
def _choose_by(t: _Translator, node: ir.Call) -> SqlExpr:
    table = node.args[1]
    assert isinstance(table, ir.MapLit)
    key = t.value(node.args[0])
    default = t.value(node.args[2]) if len(node.args) > 2 else sa.null()
    whens = [
        (key == _literal(k), t.value(v)) for k, v in zip(table.keys, table.values, strict=True)
    ]
    if not whens:
        return default
    return sa.case(*whens, else_=default)


@sql_function("SWITCH")
def _switch(t: _Translator, node: ir.Call) -> SqlExpr:
    value = t.value(node.args[0])
    rest = node.args[1:]
    default = t.value(rest[-1]) if len(rest) % 2 else sa.null()
    whens = [
        (value == t.value(m), t.value(r)) for m, r in zip(rest[0::2], rest[1::2], strict=False)
    ]
    return sa.case(*whens, else_=default)


@sql_function("YEAR")
def _year(t: _Translator, node: ir.Call) -> SqlExpr:
    return t.local_part(node, "year")


@sql_function("MONTH")
def _month(t: _Translator, node: ir.Call) -> SqlExpr:
    return t.local_part(node, "month")


@sql_function("DAY")
def _day(t: _Translator, node: ir.Call) -> SqlExpr:
    return t.local_part(node, "day")


@sql_function("CURRENT_USER")
def _current_user(t: _Translator, node: ir.Call) -> SqlExpr:
    return _literal(t.context_value(node).user)


@sql_function("CURRENT_ROLE")
def _current_role(t: _Translator, node: ir.Call) -> SqlExpr:
    return _literal(t.context_value(node).role)


@sql_function("TODAY")
def _today(t: _Translator, node: ir.Call) -> SqlExpr:
    ctx = t.context_value(node)
    return _literal(ctx.now().astimezone(ctx.tz).date())


@sql_function("NOW")
def _now(t: _Translator, node: ir.Call) -> SqlExpr:
    ctx = t.context_value(node)
    return _literal(ctx.now().astimezone(UTC))


# -- date-times in the business time zone -----------------------------------------


class _LocalDateTime(ColumnElement[Any]):
    """A UTC date-time column seen as wall-clock time in a time zone.

    PostgreSQL converts with ``timezone(name, ts)``. SQLite has no time zones, so
    a zone with a fixed offset (Asia/Shanghai) is applied as ``+N minutes``; a
    zone with daylight saving cannot be, and compiling refuses.
    """

    __visit_name__ = "formflow_local_datetime"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own convention
        ("expr", InternalTraversal.dp_clauseelement),
        ("zone", InternalTraversal.dp_string),
        ("minutes", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, expr: SqlExpr, tz: tzinfo) -> None:
        self.expr = expr
        self.zone = getattr(tz, "key", None) or str(tz)
        self.minutes = _fixed_offset_minutes(tz)
        self.type = sa.DateTime()

    @property
    def _from_objects(self) -> list[Any]:
        return list(self.expr._from_objects)


def _fixed_offset_minutes(tz: tzinfo) -> int | None:
    """The zone's UTC offset in minutes if it has been constant for decades, else None."""
    probes = [
        datetime(year, month, 15, tzinfo=UTC) for year in (2000, 2020, 2035) for month in (1, 7)
    ]
    offsets = {(p.astimezone(tz).utcoffset() or timedelta()) for p in probes}
    if len(offsets) != 1:
        return None
    return int(offsets.pop().total_seconds() // 60)


@compiles(_LocalDateTime)
def _local_default(element: _LocalDateTime, compiler: SQLCompiler, **kw: Any) -> str:
    if element.minutes is None:
        raise CompileError(
            f"time zone {element.zone} has daylight saving; use PostgreSQL for local date parts"
        )
    shifted = sa.func.datetime(element.expr, f"{element.minutes:+d} minutes")
    return compiler.process(shifted, **kw)


@compiles(_LocalDateTime, "postgresql")
def _local_postgresql(element: _LocalDateTime, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(sa.func.timezone(element.zone, element.expr), **kw)
