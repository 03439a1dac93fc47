"""Compile checked IR to nested Python closures, and the public compile_formula.

Each IR node becomes one closure that calls its children's closures directly:
no tree walking, no dispatch tables, no exec/eval of generated source at run
time. The common shapes (a field compared with a constant, arithmetic with a
constant operand) get specialised closures because they dominate real
blueprints and the benchmark.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from engine.errors import ExpressionError
from engine.i18n import T, Text

from . import ir
from .checker import Checker, Scope
from .functions import FUNCTIONS, CallSite, FunctionSpec, TypeProblem
from .parser import parse
from .runtime import (
    DIVISION_BY_ZERO,
    BlankResult,
    Closure,
    EvalContext,
    is_blank,
    mod,
    neg,
)
from .sandbox import DECIMAL, MAX_INT, MAX_TEXT_LENGTH, TOO_LARGE, TOO_LONG, fail, from_float
from .types import NUMBER, TEXT, Type, accepts

NOT_FINITE_RESULT = T("结果不是有限数字", "the result is not a finite number")
BUDGET_EXHAUSTED = T(
    "公式计算步数超出上限", "the formula took too many steps (its evaluation budget is exhausted)"
)
_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_DECIMAL_OPS: dict[str, Callable[[Any, Any], Decimal]] = {
    "+": DECIMAL.add,
    "-": DECIMAL.subtract,
    "*": DECIMAL.multiply,
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class Compiled:
    """A checked formula, ready to evaluate many times.

    ``names``, ``tables`` and ``functions`` say what it reads, for the loader's
    dependency graph. ``node`` is the typed IR (used by the SQL translator).
    """

    __slots__ = (
        "_finite",
        "_fn",
        "aggregate",
        "cost",
        "evaluate",
        "functions",
        "names",
        "node",
        "source",
        "tables",
        "type",
    )

    #: The formula's value for one record; raises ExpressionError and nothing else.
    #: A closure made per formula rather than a method: it is the hot path of every
    #: save, and reads what it needs from its cells instead of from ``self``.
    evaluate: Callable[[EvalContext], Any]

    def __init__(
        self,
        source: str,
        node: ir.Node,
        names: Iterable[str],
        tables: Iterable[str],
        functions: Iterable[str],
        aggregate: bool,
    ) -> None:
        self.source = source
        self.node = node
        self.type: Type = node.type
        self.names = frozenset(names)
        self.tables = frozenset(tables)
        self.functions = frozenset(functions)
        self.aggregate = aggregate
        self.cost = len(ir.walk(node))
        self._fn = _Builder().build(node)
        self._finite = node.type.kind in ("number", "any")  # Decimal NaN from data must not escape
        self.evaluate = self._evaluator()

    def __repr__(self) -> str:
        return f"Compiled({self.source!r}, type={self.type})"

    def _evaluator(self) -> Callable[[EvalContext], Any]:
        source, cost, fn, failure = self.source, self.cost, self._fn, self._failure
        finite = self._finite

        if self.aggregate:

            def refuse(ctx: EvalContext) -> Any:
                raise ExpressionError(
                    T(
                        "指标公式要对多行求值：请用 evaluate_rows",
                        "a KPI measure runs over rows: use evaluate_rows",
                    ),
                    source=source,
                )

            return refuse

        def evaluate(ctx: EvalContext) -> Any:
            ctx.steps = cost
            if cost > ctx.budget:
                raise ExpressionError(BUDGET_EXHAUSTED, source=source)
            try:
                result = fn(ctx)
            except ExpressionError as exc:
                if not exc.source:
                    exc.source = source
                raise
            except Exception as exc:  # every other failure becomes an ExpressionError too
                raise failure(exc) from exc
            if finite and type(result) is Decimal and not result.is_finite():
                raise ExpressionError(NOT_FINITE_RESULT, source=source)
            return result

        return evaluate

    def evaluate_many(
        self, ctx: EvalContext, records: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Any], dict[int, ExpressionError]]:
        """:meth:`evaluate` once per record of a batch, in one call.

        ``ctx`` is used for each record in turn with ``values`` set to it (and put
        back after). Returns the results (None where it failed) and the errors by
        position: exactly what :meth:`evaluate` gives or raises for each record,
        without its per-call overhead.
        """
        n = len(records)
        if self.aggregate or self.cost > ctx.budget:
            try:
                self.evaluate(ctx)
            except ExpressionError as exc:
                return [None] * n, dict.fromkeys(range(n), exc)
        fn = self._fn
        cost = self.cost
        finite = self._finite
        out: list[Any] = []
        append = out.append
        errors: dict[int, ExpressionError] = {}
        saved = ctx.values
        try:
            for i, values in enumerate(records):
                ctx.values = values
                ctx.steps = cost
                try:
                    result = fn(ctx)
                except ExpressionError as exc:
                    if not exc.source:
                        exc.source = self.source
                    errors[i] = exc
                    result = None
                except Exception as exc:  # every other failure becomes an ExpressionError too
                    errors[i] = self._failure(exc)
                    result = None
                else:
                    if finite and type(result) is Decimal and not result.is_finite():
                        errors[i] = ExpressionError(NOT_FINITE_RESULT, source=self.source)
                        result = None
                append(result)
        finally:
            ctx.values = saved
        return out, errors

    def evaluate_rows(self, rows: Iterable[Mapping[str, Any]], ctx: EvalContext) -> Any:
        """A KPI measure computed in Python over the given records (the SQL-independent oracle)."""
        if not self.aggregate:
            raise ExpressionError(
                T("只有指标公式可以对多行求值", "only KPI measures run over rows"),
                source=self.source,
            )
        env = EvalContext(
            values={},
            tables={ROWS: list(rows)},
            user=ctx.user,
            role=ctx.role,
            now=ctx.now,
            tz=ctx.tz,
            warnings=ctx.warnings,
            budget=ctx.budget,
            steps=self.cost,
        )
        try:
            return self._run(env)
        finally:
            ctx.steps = env.steps

    def _run(self, ctx: EvalContext) -> Any:
        try:
            result = self._fn(ctx)
        except ExpressionError as exc:
            if not exc.source:
                exc.source = self.source
            raise
        except Exception as exc:  # every other failure becomes an ExpressionError too
            raise self._failure(exc) from exc
        if self._finite and type(result) is Decimal and not result.is_finite():
            raise ExpressionError(NOT_FINITE_RESULT, source=self.source)
        return result

    def _failure(self, exc: Exception) -> ExpressionError:
        name = type(exc).__name__
        return ExpressionError(
            T(f"公式计算失败（{name}）", f"the formula failed to evaluate ({name})"),
            source=self.source,
        )


#: The key under which evaluate_rows hands a KPI's records to its aggregates.
ROWS = "\x00rows"


def compile_formula(source: str, scope: Scope, *, expect: Type | None = None) -> Compiled:
    """Parse, check and compile a formula; raise ExpressionError on any problem."""
    try:
        parsed = parse(source)
        checked = Checker(parsed, scope).run()
        if expect is not None and not accepts(expect, checked.node.type):
            fail(_expect_error(expect, checked.node.type), checked.node.offset)
        return Compiled(
            source, checked.node, checked.names, checked.tables, checked.functions, scope.aggregate
        )
    except ExpressionError as exc:
        exc.source = source
        raise


def _expect_error(expect: Type, got: Type) -> Text:
    if expect.kind == "bool":
        return T(
            f"这里需要真/假条件，公式的结果是{got.label.zh}",
            f"this must be true/false, but the formula gives {got.label.en}",
        )
    return T(
        f"这里需要{expect.label.zh}，公式的结果是{got.label.zh}",
        f"this needs {expect.label.en}, but the formula gives {got.label.en}",
    )


def _number_reader(read: Callable[[EvalContext], Any]) -> Closure:
    def run(env: EvalContext) -> Any:
        value = read(env)
        return from_float(value) if type(value) is float else value

    return run


class _Builder:
    """Turns IR into closures (one method per node kind)."""

    def build(self, node: ir.Node) -> Closure:
        method: Callable[[Any], Closure] = getattr(self, "build_" + type(node).__name__)
        return method(node)

    # -- leaves ------------------------------------------------------------
    def build_Const(self, node: ir.Const) -> Closure:  # noqa: N802 - named after the IR class
        value = node.value
        return lambda env: value

    def build_FieldRef(self, node: ir.FieldRef) -> Closure:  # noqa: N802
        name = node.name
        if node.type == NUMBER:

            def number(env: EvalContext) -> Any:
                value = env.values.get(name)
                return from_float(value) if type(value) is float else value

            return number
        return lambda env: env.values.get(name)

    def build_ColumnRef(self, node: ir.ColumnRef) -> Closure:  # noqa: N802
        column = node.column
        if node.type == NUMBER:
            return _number_reader(lambda env: env.row.get(column))
        return lambda env: env.row.get(column)

    def build_MapLit(self, node: ir.MapLit) -> Closure:  # noqa: N802
        pairs = tuple((k, self.build(v)) for k, v in zip(node.keys, node.values, strict=True))
        return lambda env: {k: v(env) for k, v in pairs}

    def build_ListLit(self, node: ir.ListLit) -> Closure:  # noqa: N802
        items = tuple(self.build(i) for i in node.items)
        return lambda env: [f(env) for f in items]

    # -- operators -----------------------------------------------------------
    def build_Unary(self, node: ir.Unary) -> Closure:  # noqa: N802
        operand = self.build(node.operand)
        if node.op == "not":
            return lambda env: not operand(env)
        if node.op == "+":
            return operand
        offset = node.offset

        def negate(env: EvalContext) -> Any:
            value = operand(env)
            if value is None:
                return None
            try:
                return neg(value)
            except ArithmeticError:
                fail(TOO_LARGE, offset)

        return negate

    def build_Binary(self, node: ir.Binary) -> Closure:  # noqa: N802
        left = self.build(node.left)
        offset = node.offset
        if node.type == TEXT or (node.op == "+" and TEXT in (node.left.type, node.right.type)):
            return self._text_plus(left, self.build(node.right), offset)
        if node.op == "/":
            return self._divide(node, left)
        if node.op == "%":
            right = self.build(node.right)

            def remainder(env: EvalContext) -> Any:
                a = left(env)
                if a is None:
                    return None
                b = right(env)
                if b is None:
                    return None
                if not b:
                    env.warnings.append(DIVISION_BY_ZERO)
                    return None
                try:
                    return mod(a, b)
                except ArithmeticError:
                    fail(TOO_LARGE, offset)

            return remainder
        int_op, dec_op = _INT_OPS[node.op], _DECIMAL_OPS[node.op]
        if isinstance(node.left, ir.FieldRef) and isinstance(node.right, ir.FieldRef):
            return _arith_fields(node.left.name, node.right.name, int_op, dec_op, offset)
        if isinstance(node.right, ir.Const):
            b = node.right.value
            if b is None:
                return lambda env: None

            def arith_const(env: EvalContext) -> Any:
                a = left(env)
                if a is None:
                    return None
                if type(a) is int and type(b) is int:
                    r = int_op(a, b)
                    if -MAX_INT < r < MAX_INT:
                        return r
                    fail(TOO_LARGE, offset)
                try:
                    return dec_op(a, b)
                except ArithmeticError:
                    fail(TOO_LARGE, offset)

            return arith_const
        right = self.build(node.right)

        def arith(env: EvalContext) -> Any:
            a = left(env)
            if a is None:
                return None
            b = right(env)
            if b is None:
                return None
            if type(a) is int and type(b) is int:
                r = int_op(a, b)
                if -MAX_INT < r < MAX_INT:
                    return r
                fail(TOO_LARGE, offset)
            try:
                return dec_op(a, b)
            except ArithmeticError:
                fail(TOO_LARGE, offset)

        return arith

    def _divide(self, node: ir.Binary, left: Closure) -> Closure:
        offset = node.offset
        divide = DECIMAL.divide
        if isinstance(node.right, ir.Const) and node.right.value:
            b = Decimal(node.right.value)  # converted once, not on every division
            inner = node.left
            if (
                isinstance(inner, ir.Binary)
                and inner.op in _INT_OPS
                and isinstance(inner.left, ir.FieldRef)
                and isinstance(inner.right, ir.FieldRef)
                and inner.type != TEXT
            ):  # amount * probability / 100: one closure, not two
                int_op, dec_op = _INT_OPS[inner.op], _DECIMAL_OPS[inner.op]
                names = inner.left.name, inner.right.name
                return _arith_fields(*names, int_op, dec_op, inner.offset, (b, offset))

            def divide_const(env: EvalContext) -> Any:
                a = left(env)
                if a is None:
                    return None
                try:
                    return divide(a, b)
                except ArithmeticError:
                    fail(TOO_LARGE, offset)

            return divide_const
        right = self.build(node.right)

        def div(env: EvalContext) -> Any:
            a = left(env)
            if a is None:
                return None
            b = right(env)
            if b is None:
                return None
            if not b:
                env.warnings.append(DIVISION_BY_ZERO)
                return None
            try:
                return divide(a, b)
            except ArithmeticError:
                fail(TOO_LARGE, offset)

        return div

    @staticmethod
    def _text_plus(left: Closure, right: Closure, offset: ir.Offset) -> Closure:
        def plus(env: EvalContext) -> Any:
            a = left(env)
            if a is None:
                return None
            b = right(env)
            if b is None:
                return None
            if len(a) + len(b) > MAX_TEXT_LENGTH:
                fail(TOO_LONG, offset)
            return a + b

        return plus

    def build_Compare(self, node: ir.Compare) -> Closure:  # noqa: N802
        test = _ORDER[node.op]
        equality = ir.field_equality(node)
        if equality is not None:
            name, c, negate = equality
            if not negate:
                return lambda env: env.values.get(name) == c

            def field_ne(env: EvalContext) -> bool:
                value = env.values.get(name)
                return value is not None and value != c

            return field_ne
        if isinstance(node.right, ir.Const) and node.right.value is not None:
            c = node.right.value
            if isinstance(node.left, ir.FieldRef) and node.left.type != NUMBER:
                name = node.left.name

                def field_cmp(env: EvalContext) -> bool:
                    value = env.values.get(name)
                    return value is not None and test(value, c)

                return field_cmp
            left = self.build(node.left)

            def cmp_const(env: EvalContext) -> bool:
                value = left(env)
                return value is not None and test(value, c)

            return cmp_const
        left = self.build(node.left)
        right = self.build(node.right)

        def cmp(env: EvalContext) -> bool:
            a = left(env)
            if a is None:
                return False
            b = right(env)
            return b is not None and test(a, b)

        return cmp

    def build_IsBlank(self, node: ir.IsBlank) -> Closure:  # noqa: N802
        operand = self.build(node.operand)
        if node.negate:
            return lambda env: not is_blank(operand(env))
        return lambda env: is_blank(operand(env))

    def build_InList(self, node: ir.InList) -> Closure:  # noqa: N802
        needle = self.build(node.needle)
        negate = node.negate
        if node.items is not None:
            items = node.items
            consts = [i for i in items if isinstance(i, ir.Const)]
            if len(consts) == len(items):
                members = frozenset(c.value for c in consts)
                if negate:
                    return lambda env: (v := needle(env)) is not None and v not in members
                return lambda env: (v := needle(env)) is not None and v in members
            parts = tuple(self.build(i) for i in items)

            def in_items(env: EvalContext) -> bool:
                v = needle(env)
                if v is None:
                    return False
                found = any(v == p(env) for p in parts)
                return not found if negate else found

            return in_items
        assert node.haystack is not None
        haystack = self.build(node.haystack)

        def in_list(env: EvalContext) -> bool:
            v = needle(env)
            h = haystack(env)
            if v is None or h is None:
                return False
            return (v not in h) if negate else (v in h)

        return in_list

    def build_BoolOp(self, node: ir.BoolOp) -> Closure:  # noqa: N802
        parts = tuple(self.build(v) for v in node.values)
        if len(parts) == 2:
            a, b = parts
            if node.op == "and":
                return lambda env: True if a(env) and b(env) else False  # noqa: SIM210 - bool of blank
            return lambda env: True if a(env) or b(env) else False  # noqa: SIM210
        if node.op == "and":
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)

    def build_Cond(self, node: ir.Cond) -> Closure:  # noqa: N802
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    # -- calls ---------------------------------------------------------------
    def build_Call(self, node: ir.Call) -> Closure:  # noqa: N802
        spec = FUNCTIONS[node.name]
        if spec.lazy is not None:
            site = CallSite(node.name, node.offset, node.args, node.type, self.build)
            try:
                return spec.lazy([self.build(a) for a in node.args], site)
            except TypeProblem as problem:
                where = node.args[problem.arg].offset if problem.arg is not None else node.offset
                fail(
                    T(f"{spec.name}：{problem.message.zh}", f"{spec.name}: {problem.message.en}"),
                    where,
                    problem.hint,
                )
        if spec.field_args:
            names = tuple(a.name for a in node.args if isinstance(a, ir.FieldRef))
            impl = spec.impl
            assert impl is not None
            return _guarded(spec, node.offset, lambda env: impl(env, *names))
        return _eager(spec, node.offset, [self.build(a) for a in node.args])

    def build_Aggregate(self, node: ir.Aggregate) -> Closure:  # noqa: N802
        spec = FUNCTIONS[node.name]
        agg = spec.aggregate
        assert agg is not None
        args = [self.build(a) for a in node.args]
        prepare = agg.prepare
        if (
            prepare is None
            and agg.bool_counts_true
            and node.args
            and node.args[0].type.kind == "bool"
        ):
            prepare = _true_only
        reduce = agg.reduce
        offset = node.offset
        if node.source == "values":
            return _values_aggregate(spec, offset, args, prepare)
        cost = sum(len(ir.walk(a)) for a in node.args) or 1
        rows_key = node.table if node.source == "table" and node.table else ROWS
        per_row = _per_row(args, prepare)
        by_values = node.source == "rows"

        def aggregate(env: EvalContext) -> Any:
            rows = env.tables.get(rows_key) or ()
            env.steps += len(rows) * cost
            if env.steps > env.budget:
                fail(BUDGET_EXHAUSTED, offset)
            values: list[Any] = []
            saved_row, saved_values = env.row, env.values
            try:
                for row in rows:
                    if by_values:
                        env.values = row
                    else:
                        env.row = row
                    value = per_row(env)
                    if value is not None:
                        values.append(value)
            finally:
                env.row, env.values = saved_row, saved_values
            return _reduce(spec, offset, reduce, values)

        return aggregate


def _arith_fields(
    left: str,
    right: str,
    int_op: Callable[[int, int], int],
    dec_op: Callable[[Any, Any], Decimal],
    offset: ir.Offset,
    divisor: tuple[Decimal, ir.Offset] | None = None,
) -> Closure:
    """``amount * probability``: two field reads inlined (the commonest shape in blueprints).

    With ``divisor`` (a non-zero constant and the division's offset) it is
    ``amount * probability / 100``, still one closure: every call saved counts
    on a formula run once per saved record.
    """
    divide = DECIMAL.divide
    by, divide_offset = divisor if divisor is not None else (None, offset)

    def arith_fields(env: EvalContext) -> Any:
        r: Any
        values = env.values
        a = values.get(left)
        if a is None:
            return None
        b = values.get(right)
        if b is None:
            return None
        if type(a) is int and type(b) is int:
            r = int_op(a, b)
            if not -MAX_INT < r < MAX_INT:
                fail(TOO_LARGE, offset)
        else:
            if type(a) is float:
                a = from_float(a)
            if type(b) is float:
                b = from_float(b)
            try:
                r = dec_op(a, b)
            except ArithmeticError:
                fail(TOO_LARGE, offset)
        if by is None:
            return r
        try:
            return divide(r, by)
        except ArithmeticError:
            fail(TOO_LARGE, divide_offset)

    return arith_fields


def _true_only(value: Any) -> Any:
    return True if value else None


def _per_row(args: list[Closure], prepare: Callable[..., Any] | None) -> Closure:
    if not args:
        return lambda env: True
    if prepare is None:
        return args[0]
    if len(args) == 1:
        only = args[0]
        return lambda env: prepare(only(env))
    return lambda env: prepare(*[a(env) for a in args])


def _reduce(
    spec: FunctionSpec, offset: ir.Offset, reduce: Callable[[list[Any]], Any], values: list[Any]
) -> Any:
    try:
        return reduce(values)
    except ExpressionError as exc:
        if exc.offset == (0, 0):
            exc.offset = offset
        raise
    except ArithmeticError:
        fail(TOO_LARGE, offset)
    except TypeError:
        fail(T(f"{spec.name} 的值类型不一致", f"{spec.name}: the values have mixed types"), offset)


def _values_aggregate(
    spec: FunctionSpec, offset: ir.Offset, args: list[Closure], prepare: Callable[..., Any] | None
) -> Closure:
    assert spec.aggregate is not None
    reduce = spec.aggregate.reduce

    def aggregate(env: EvalContext) -> Any:
        values: list[Any] = []
        for a in args:
            value = a(env)
            if isinstance(value, list | tuple):
                values.extend(value)
            else:
                values.append(value)
        if prepare is not None:
            values = [prepare(v) for v in values]
        cleaned = [from_float(v) if type(v) is float else v for v in values if v is not None]
        return _reduce(spec, offset, reduce, cleaned)

    return aggregate


def _call_failed(spec: FunctionSpec, exc: Exception) -> Text:
    kind = type(exc).__name__
    return T(f"{spec.name} 计算失败（{kind}）", f"{spec.name} failed ({kind})")


def _guarded(spec: FunctionSpec, offset: ir.Offset, call: Closure) -> Closure:
    """Run a function call, mapping its failures to blank+warning or ExpressionError."""

    def guarded(env: EvalContext) -> Any:
        try:
            return call(env)
        except BlankResult as blank:
            env.warnings.append(blank.message)
            return None
        except ExpressionError as exc:
            if exc.offset == (0, 0):
                exc.offset = offset
            raise
        except ArithmeticError:
            fail(TOO_LARGE, offset)
        except Exception as exc:
            fail(_call_failed(spec, exc), offset)

    return guarded


def _eager(spec: FunctionSpec, offset: ir.Offset, args: list[Closure]) -> Closure:
    impl = spec.impl
    assert impl is not None
    blanks = spec.blank_propagates
    context = spec.context
    if not args:
        return _guarded(spec, offset, (lambda env: impl(env)) if context else (lambda env: impl()))
    if len(args) == 1:
        (only,) = args

        def one(env: EvalContext) -> Any:
            a = only(env)
            if a is None and blanks:
                return None
            return impl(env, a) if context else impl(a)

        return _guarded(spec, offset, one)

    def many(env: EvalContext) -> Any:
        values = [a(env) for a in args]
        if blanks and None in values:
            return None
        return impl(env, *values) if context else impl(*values)

    return _guarded(spec, offset, many)
