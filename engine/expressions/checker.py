"""The static checker: Python syntax tree in, typed IR out, or a precise ExpressionError.

Only the constructs listed here exist in the language; every other kind of
syntax (attribute access beyond ``table.column``, subscripts, comprehensions,
lambdas, f-strings, keyword arguments, ``**`` ...) is refused by name, so
nothing of Python's runtime is reachable. Names resolve to fields, child-table
columns, functions or the literals True/False/None; anything else is an
"unknown field" with a did-you-mean.
"""

from __future__ import annotations

import ast
import difflib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from engine.i18n import T, Text

from . import ir
from .functions import FUNCTIONS, FunctionSpec, TypeProblem
from .parser import Parsed
from .sandbox import MAX_INT, TOO_LARGE, fail
from .types import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    MAP,
    NULL,
    NUMBER,
    ORDERED,
    SCALARS,
    TEXT,
    Type,
    accepts,
    join,
    list_of,
    map_of,
)

#: Lower-case spellings accepted for the literals, unless a field has that name.
ALIASES: dict[str, tuple[Any, Type]] = {
    "true": (True, BOOL),
    "false": (False, BOOL),
    "blank": (None, NULL),
}

_NOT_ALLOWED: dict[type[ast.AST], Text] = {
    ast.Subscript: T("不支持下标 [...]", "subscripts [...] are not allowed"),
    ast.Lambda: T("不支持 lambda", "lambda is not allowed"),
    ast.ListComp: T("不支持推导式", "comprehensions are not allowed"),
    ast.SetComp: T("不支持推导式", "comprehensions are not allowed"),
    ast.DictComp: T("不支持推导式", "comprehensions are not allowed"),
    ast.GeneratorExp: T("不支持推导式", "comprehensions are not allowed"),
    ast.JoinedStr: T("不支持 f 字符串，请用 CONCAT", "f-strings are not allowed; use CONCAT"),
    ast.Starred: T("不支持 * 展开", "* unpacking is not allowed"),
    ast.NamedExpr: T("不支持赋值 :=", "assignment (:=) is not allowed"),
    ast.Await: T("不支持 await", "await is not allowed"),
    ast.Yield: T("不支持 yield", "yield is not allowed"),
    ast.YieldFrom: T("不支持 yield", "yield is not allowed"),
    ast.Set: T("不支持集合 {...}，请用列表 [...]", "sets {...} are not allowed; use a list [...]"),
    ast.Slice: T("不支持切片", "slices are not allowed"),
}

_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_ARITH_NAMES = {
    "+": ("相加", "add"),
    "-": ("相减", "subtract"),
    "*": ("相乘", "multiply"),
    "/": ("相除", "divide"),
    "%": ("取余", "take the remainder of"),
}
_REFUSED_OPS: dict[type[ast.operator], Text] = {
    ast.Pow: T("不支持 **，请用 POWER(x, n)", "** is not supported; use POWER(x, n)"),
    ast.FloorDiv: T(
        "不支持 //，请用 ROUNDDOWN(a / b, 0)", "// is not supported; use ROUNDDOWN(a / b, 0)"
    ),
    ast.BitAnd: T(
        "不支持 &，连接文本请用 CONCAT 或 +", "& is not supported; join text with CONCAT or +"
    ),
    ast.BitOr: T("不支持 |，请用 or", "| is not supported; use or"),
    ast.BitXor: T(
        "不支持 ^，请用 XOR(...) 或 POWER(x, n)", "^ is not supported; use XOR(...) or POWER(x, n)"
    ),
    ast.LShift: T("不支持位移运算", "bit shifts are not supported"),
    ast.RShift: T("不支持位移运算", "bit shifts are not supported"),
    ast.MatMult: T("不支持 @", "@ is not supported"),
}
_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


@dataclass(frozen=True)
class Scope:
    """What a formula may refer to; built by the loader for each place a formula appears."""

    fields: Mapping[str, Type]
    tables: Mapping[str, Mapping[str, Type]] = field(default_factory=dict)
    allow_changes: bool = False
    aggregate: bool = False
    user_fields: frozenset[str] = frozenset()


@dataclass
class Checked:
    node: ir.Node
    names: set[str]
    tables: set[str]
    functions: set[str]


# Where an expression sits, which decides what names mean:
ROW = "row"  # an ordinary formula over one record
COLUMN = "column"  # inside an aggregate over a child table: table.column allowed
KPI_TOP = "kpi"  # a KPI measure outside its aggregates: only aggregates of rows
KPI_ROW = "kpi_row"  # inside a KPI aggregate: the fields of each row


def _normal(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


class Checker:
    def __init__(self, parsed: Parsed, scope: Scope) -> None:
        self.parsed = parsed
        self.scope = scope
        self.fields = {_normal(k): k for k in scope.fields}
        self.tables = {_normal(k): k for k in scope.tables}
        self.names: set[str] = set()
        self.tables_used: set[str] = set()
        self.functions: set[str] = set()

    def run(self) -> Checked:
        where = KPI_TOP if self.scope.aggregate else ROW
        node = self.expr(self.parsed.node, where)
        return Checked(node, self.names, self.tables_used, self.functions)

    # -- helpers -----------------------------------------------------------
    def at(self, node: ast.AST) -> ir.Offset:
        return self.parsed.offset(node)

    def error(self, node: ast.AST, message: Text, hint: Text | None = None) -> NoReturn:
        fail(message, self.at(node), hint)

    # -- dispatch ----------------------------------------------------------
    def expr(self, node: ast.expr, where: str) -> ir.Node:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node, where)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, where)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, where)
        if isinstance(node, ast.BinOp):
            return self.binary(node, where)
        if isinstance(node, ast.BoolOp):
            values = tuple(self.condition(v, where, "and/or") for v in node.values)
            op = "and" if isinstance(node.op, ast.And) else "or"
            return ir.BoolOp(BOOL, self.at(node), op, values)
        if isinstance(node, ast.Compare):
            return self.compare(node, where)
        if isinstance(node, ast.IfExp):
            test = self.condition(node.test, where, "if")
            body = self.expr(node.body, where)
            orelse = self.expr(node.orelse, where)
            joined = join(body.type, orelse.type)
            if joined is None:
                self.error(node, _branches(body.type, orelse.type))
            return ir.Cond(joined, self.at(node), test, body, orelse)
        if isinstance(node, ast.List):
            return self.list_literal(node, where)
        if isinstance(node, ast.Tuple):
            self.error(
                node,
                T("公式只能有一个值（多余的逗号？）", "a formula has one value (a stray comma?)"),
            )
        if isinstance(node, ast.Call):
            return self.call(node, where)
        if isinstance(node, ast.Dict):
            self.error(
                node,
                T(
                    "映射表 {...} 只能作为 CHOOSE_BY 的第二个参数",
                    "a {...} map is only allowed as the second argument of CHOOSE_BY",
                ),
            )
        message = _NOT_ALLOWED.get(type(node))
        if message is None:
            kind = type(node).__name__
            message = T(f"公式中不支持 {kind}", f"{kind} is not allowed in formulas")
        self.error(node, message)

    def condition(self, node: ast.expr, where: str, what: str) -> ir.Node:
        checked = self.expr(node, where)
        if not accepts(BOOL, checked.type):
            self.error(
                node,
                T(
                    f"{what} 需要真/假条件，这里是{checked.type.label.zh}",
                    f"{what} needs a true/false condition, this is {checked.type.label.en}",
                ),
            )
        return checked

    # -- leaves ------------------------------------------------------------
    def constant(self, node: ast.Constant) -> ir.Node:
        value = node.value
        at = self.at(node)
        if value is None:
            return ir.Const(NULL, at, None)
        if isinstance(value, bool):
            return ir.Const(BOOL, at, value)
        if isinstance(value, int):
            if value >= MAX_INT:
                self.error(node, TOO_LARGE)
            return ir.Const(NUMBER, at, value)
        if isinstance(value, float):
            return ir.Const(NUMBER, at, self.decimal_literal(node))
        if isinstance(value, str):
            return ir.Const(TEXT, at, value)
        self.error(node, T("不支持这种常量", "this kind of literal is not allowed"))

    def decimal_literal(self, node: ast.Constant) -> Decimal:
        """A literal with a decimal point becomes the Decimal it spells (never a float)."""
        text = ast.get_source_segment("\n".join(self.parsed.lines), node) or repr(node.value)
        try:
            number = Decimal(text.replace("_", ""))
        except InvalidOperation:
            number = Decimal(repr(node.value))
        if not number.is_finite() or (number and number.adjusted() >= len(str(MAX_INT)) - 1):
            self.error(node, TOO_LARGE)
        if number.as_tuple().exponent > 0:  # type: ignore[operator]  # finite: exponent is int
            number = number.quantize(Decimal(1))
        return number

    def name(self, node: ast.Name, where: str) -> ir.Node:
        name = node.id
        if name.startswith("__"):
            self.error(node, _DUNDER)
        original = self.fields.get(_normal(name))
        if original is not None:
            if where == KPI_TOP:
                self.error(
                    node,
                    T(
                        f"指标中的字段 '{original}' 必须放在聚合函数里，如 SUM({original})",
                        f"in a KPI measure the field '{original}' must be inside an aggregate, "
                        f"e.g. SUM({original})",
                    ),
                )
            self.names.add(original)
            return ir.FieldRef(self.scope.fields[original], self.at(node), original)
        if name in ALIASES:
            value, kind = ALIASES[name]
            return ir.Const(kind, self.at(node), value)
        table = self.tables.get(_normal(name))
        if table is not None:
            columns = ", ".join(f"{table}.{c}" for c in list(self.scope.tables[table])[:3])
            self.error(
                node,
                T(
                    f"子表 '{table}' 只能以 {table}.列名 的形式用在聚合函数中，如 SUM({table}.…)",
                    f"the child table '{table}' can only be used as {table}.column inside an "
                    f"aggregate such as SUM",
                ),
                T(f"可用的列：{columns}", f"columns: {columns}"),
            )
        if _normal(name) in FUNCTIONS or name.upper() in FUNCTIONS:
            self.error(
                node,
                T(
                    f"'{name}' 是函数，需要加括号调用：{name}(...)",
                    f"'{name}' is a function; call it: {name}(...)",
                ),
            )
        self.error(
            node,
            T(f"未知字段 '{name}'", f"unknown field '{name}'"),
            _did_you_mean(name, list(self.scope.fields)),
        )

    def attribute(self, node: ast.Attribute, where: str) -> ir.Node:
        if node.attr.startswith("_"):
            self.error(node, _DUNDER if node.attr.startswith("__") else _NO_ATTRIBUTES)
        base = node.value
        if not isinstance(base, ast.Name):
            self.error(node, _NO_ATTRIBUTES)
        if base.id.startswith("__"):
            self.error(base, _DUNDER)
        table = self.tables.get(_normal(base.id))
        if table is None:
            if _normal(base.id) in self.fields:
                self.error(
                    node,
                    T(
                        f"字段 '{base.id}' 没有属性 '.{node.attr}'；公式中不能调用方法",
                        f"the field '{base.id}' has no attribute '.{node.attr}'; formulas "
                        "cannot call methods",
                    ),
                )
            self.error(node, _NO_ATTRIBUTES, _did_you_mean(base.id, list(self.scope.tables)))
        columns = self.scope.tables[table]
        column = {_normal(c): c for c in columns}.get(_normal(node.attr))
        if column is None:
            self.error(
                node,
                T(
                    f"子表 '{table}' 没有列 '{node.attr}'",
                    f"the child table '{table}' has no column '{node.attr}'",
                ),
                _did_you_mean(node.attr, list(columns)),
            )
        if where != COLUMN:
            message = (
                T("指标中不能使用子表的列", "child-table columns cannot be used in a KPI measure")
                if where in (KPI_TOP, KPI_ROW)
                else T(
                    f"子表的列 {table}.{column} 只能用在聚合函数中，如 SUM({table}.{column})",
                    f"the child-table column {table}.{column} can only be used inside an "
                    f"aggregate, e.g. SUM({table}.{column})",
                )
            )
            self.error(node, message)
        self.tables_used.add(table)
        return ir.ColumnRef(columns[column], self.at(node), table, column)

    # -- operators -----------------------------------------------------------
    def unary(self, node: ast.UnaryOp, where: str) -> ir.Node:
        if isinstance(node.op, ast.Not):
            operand = self.condition(node.operand, where, "not")
            return ir.Unary(BOOL, self.at(node), "not", operand)
        if isinstance(node.op, ast.Invert):
            self.error(node, T("不支持 ~", "~ is not supported"))
        operand = self.expr(node.operand, where)
        if not accepts(NUMBER, operand.type):
            self.error(
                node,
                T(
                    f"正负号只能用于数字，这里是{operand.type.label.zh}",
                    f"a sign applies to numbers, not {operand.type.label.en}",
                ),
            )
        op = "-" if isinstance(node.op, ast.USub) else "+"
        if isinstance(operand, ir.Const) and isinstance(operand.value, int | Decimal):
            value = -operand.value if op == "-" else operand.value
            return ir.Const(NUMBER, self.at(node), value)
        return ir.Unary(
            operand.type if operand.type != NULL else NUMBER, self.at(node), op, operand
        )

    def binary(self, node: ast.BinOp, where: str) -> ir.Node:
        refused = _REFUSED_OPS.get(type(node.op))
        if refused is not None:
            fail(refused, self.parsed.after(node.left))
        op = _ARITH[type(node.op)]
        left = self.expr(node.left, where)
        right = self.expr(node.right, where)
        result = _arith_type(op, left.type, right.type)
        if result is None:
            message, hint = _arith_error(op, left.type, right.type)
            fail(message, self.parsed.after(node.left), hint)
        return ir.Binary(result, self.at(node), op, left, right)

    def compare(self, node: ast.Compare, where: str) -> ir.Node:
        parts: list[ir.Node] = []
        left_ast = node.left
        left = self.expr(left_ast, where)
        for op, right_ast in zip(node.ops, node.comparators, strict=True):
            parts.append(self.compare_one(node, op, left, left_ast, right_ast, where))
            left_ast = right_ast
            left = self.expr(right_ast, where) if len(node.ops) > 1 else left
        if len(parts) == 1:
            return parts[0]
        return ir.BoolOp(BOOL, self.at(node), "and", tuple(parts))

    def compare_one(
        self,
        node: ast.Compare,
        op: ast.cmpop,
        left: ir.Node,
        left_ast: ast.expr,
        right_ast: ast.expr,
        where: str,
    ) -> ir.Node:
        at = self.at(node)
        is_none = isinstance(right_ast, ast.Constant) and right_ast.value is None
        if isinstance(op, ast.Is | ast.IsNot):
            if not is_none:
                self.error(
                    right_ast,
                    T(
                        "is 只能与 None 连用；比较请用 ==",
                        "use == to compare; is only works with None",
                    ),
                )
            return ir.IsBlank(BOOL, at, left, isinstance(op, ast.IsNot))
        if isinstance(op, ast.In | ast.NotIn):
            return self.membership(node, left, right_ast, isinstance(op, ast.NotIn), where)
        symbol = _COMPARE[type(op)]
        if is_none and symbol in ("==", "!="):
            return ir.IsBlank(BOOL, at, left, symbol == "!=")
        right = self.expr(right_ast, where)
        if isinstance(left, ir.Const) and left.value is None and symbol in ("==", "!="):
            return ir.IsBlank(BOOL, at, right, symbol == "!=")
        allowed = SCALARS if symbol in ("==", "!=") else ORDERED
        joined = join(left.type, right.type)
        if joined is None or not (joined in allowed or joined.kind in ("any", "null")):
            message, hint = _compare_error(symbol, left.type, right.type)
            fail(message, self.parsed.after(left_ast), hint)
        return ir.Compare(BOOL, at, symbol, left, right)

    def membership(
        self, node: ast.Compare, needle: ir.Node, right_ast: ast.expr, negate: bool, where: str
    ) -> ir.Node:
        at = self.at(node)
        if isinstance(right_ast, ast.List | ast.Tuple):
            items = tuple(self.expr(e, where) for e in right_ast.elts)
            for item, item_ast in zip(items, right_ast.elts, strict=True):
                if isinstance(item, ir.Const) and item.value is None:
                    self.error(
                        item_ast,
                        T(
                            "in 列表中不能有 None；判断空值请用 ISBLANK",
                            "None cannot be in an in-list; use ISBLANK",
                        ),
                    )
                if join(needle.type, item.type) is None:
                    self.error(item_ast, *_compare_error("in", needle.type, item.type))
            return ir.InList(BOOL, at, needle, items, None, negate)
        haystack = self.expr(right_ast, where)
        if not haystack.type.is_list and haystack.type.kind != "any":
            self.error(
                right_ast,
                T(
                    f"in 的右边必须是列表，如 ['a', 'b']，这里是{haystack.type.label.zh}",
                    f"the right side of in must be a list such as ['a', 'b'], this is "
                    f"{haystack.type.label.en}",
                ),
                T(
                    "判断文本包含请用 CONTAINS(text, part)",
                    "to search text use CONTAINS(text, part)",
                ),
            )
        item_type = haystack.type.item or ANY
        if join(needle.type, item_type) is None:
            self.error(node, *_compare_error("in", needle.type, item_type))
        return ir.InList(BOOL, at, needle, None, haystack, negate)

    def list_literal(self, node: ast.List, where: str) -> ir.Node:
        items = tuple(self.expr(e, where) for e in node.elts)
        item_type = NULL
        for item, item_ast in zip(items, node.elts, strict=True):
            joined = join(item_type, item.type)
            if joined is None or joined.is_list:
                self.error(
                    item_ast, T("列表中的值类型必须一致", "the items of a list must have one type")
                )
            item_type = joined
        return ir.ListLit(list_of(ANY if item_type == NULL else item_type), self.at(node), items)

    def map_literal(self, node: ast.Dict, where: str) -> ir.MapLit:
        keys: list[Any] = []
        values: list[ir.Node] = []
        value_type = NULL
        for key_ast, value_ast in zip(node.keys, node.values, strict=True):
            if key_ast is None:
                self.error(value_ast, T("不支持 ** 展开", "** unpacking is not allowed"))
            key = self.expr(key_ast, where)
            if not isinstance(key, ir.Const) or key.value is None:
                self.error(key_ast, T("映射表的键必须是常量", "map keys must be constants"))
            if key.value in keys:
                self.error(
                    key_ast,
                    T(f"映射表的键 {key.value!r} 重复", f"the map key {key.value!r} appears twice"),
                )
            value = self.expr(value_ast, where)
            joined = join(value_type, value.type)
            if joined is None:
                self.error(value_ast, _branches(value_type, value.type))
            value_type = joined
            keys.append(key.value)
            values.append(value)
        return ir.MapLit(map_of(value_type), self.at(node), tuple(keys), tuple(values))

    # -- calls ---------------------------------------------------------------
    def call(self, node: ast.Call, where: str) -> ir.Node:
        func = node.func
        if not isinstance(func, ast.Name):
            self.error(
                node,
                T(
                    "只能调用函数（如 ROUND(x)），不能调用方法",
                    "only functions like ROUND(x) can be called, not methods",
                ),
            )
        if func.id.startswith("__"):
            self.error(func, _DUNDER)
        if node.keywords:
            self.error(
                node.keywords[0].value,
                T("不支持命名参数 name=value", "named arguments (name=value) are not allowed"),
            )
        spec = FUNCTIONS.get(func.id) or FUNCTIONS.get(func.id.upper())
        if spec is None:
            hint = _did_you_mean(func.id.upper(), list(FUNCTIONS))
            if _normal(func.id) in self.fields:
                self.error(
                    func,
                    T(f"'{func.id}' 是字段，不是函数", f"'{func.id}' is a field, not a function"),
                )
            self.error(func, T(f"未知函数 '{func.id}'", f"unknown function '{func.id}'"), hint)
        if spec.needs_changes and not self.scope.allow_changes:
            self.error(
                func,
                T(
                    f"{spec.name} 只能用于更新时执行的规则和自动化",
                    f"{spec.name} can only be used in rules and automations that run on update",
                ),
            )
        self.functions.add(spec.name)
        for starred in node.args:
            if isinstance(starred, ast.Starred):
                self.error(starred, _NOT_ALLOWED[ast.Starred])
        if spec.aggregate is not None:
            return self.aggregate(node, spec, where)
        self.arity(node, spec, len(node.args))
        args: list[ir.Node] = []
        for i, arg_ast in enumerate(node.args):
            param = spec.param(i)
            types = param.types if param else (ANY,)
            arg: ir.Node
            if spec.field_args:
                arg = self.field_argument(arg_ast, spec)
            elif isinstance(arg_ast, ast.Dict) and MAP in types:
                arg = self.map_literal(arg_ast, where)
            else:
                arg = self.expr(arg_ast, where)
            if not any(accepts(t, arg.type) for t in types):
                self.error(arg_ast, _argument_error(spec, i, types, arg.type))
            args.append(arg)
        result = self.result_type(node, spec, [a.type for a in args])
        return ir.Call(result, self.at(node), spec.name, tuple(args))

    def field_argument(self, arg_ast: ast.expr, spec: FunctionSpec) -> ir.Node:
        original = self.fields.get(_normal(arg_ast.id)) if isinstance(arg_ast, ast.Name) else None
        if original is None:
            hint = (
                _did_you_mean(arg_ast.id, list(self.scope.fields))
                if isinstance(arg_ast, ast.Name)
                else None
            )
            self.error(
                arg_ast,
                T(
                    f"{spec.name} 的参数必须是字段名",
                    f"the argument of {spec.name} must be a field name",
                ),
                hint,
            )
        self.names.add(original)
        return ir.FieldRef(self.scope.fields[original], self.at(arg_ast), original)

    def arity(self, node: ast.Call, spec: FunctionSpec, count: int) -> None:
        high = spec.max_args
        if spec.min_args <= count and (high is None or count <= high):
            return
        if high is None:
            want_zh, want_en = f"至少 {spec.min_args} 个", f"at least {spec.min_args}"
        elif spec.min_args == high:
            want_zh = want_en = str(high)
        else:
            want_zh, want_en = f"{spec.min_args} 到 {high} 个", f"{spec.min_args} to {high}"
        self.error(
            node,
            T(
                f"{spec.name} 需要 {want_zh}参数，这里有 {count} 个",
                f"{spec.name} takes {want_en} argument(s), got {count}",
            ),
            T(f"用法：{spec.signature}", f"usage: {spec.signature}"),
        )

    def result_type(self, node: ast.Call, spec: FunctionSpec, types: list[Type]) -> Type:
        try:
            return spec.return_type(types)
        except TypeProblem as problem:
            where = (
                node.args[problem.arg]
                if problem.arg is not None and problem.arg < len(node.args)
                else node
            )
            self.error(
                where,
                T(f"{spec.name}：{problem.message.zh}", f"{spec.name}: {problem.message.en}"),
                problem.hint,
            )

    def aggregate(self, node: ast.Call, spec: FunctionSpec, where: str) -> ir.Node:
        agg = spec.aggregate
        assert agg is not None
        count = len(node.args)
        nested = T(
            f"{spec.name} 不能嵌套在另一个聚合函数中",
            f"{spec.name} cannot be nested inside another aggregate",
        )
        if where in (COLUMN, KPI_ROW):
            self.error(node.func, nested)
        inner = KPI_ROW if where == KPI_TOP else COLUMN
        before = set(self.tables_used)
        self.tables_used = set()
        args = [self.expr(a, inner) for a in node.args]
        used = self.tables_used
        self.tables_used = before | used
        row_arity_ok = agg.min_row_args <= count <= agg.row_args
        if where == KPI_TOP:
            source, table = "rows", None
        elif len(used) > 1:
            self.error(
                node,
                T(
                    "一个聚合函数只能使用同一个子表的列",
                    "one aggregate can only use columns of one child table",
                ),
            )
        elif used:
            source, table = "table", next(iter(used))
        else:
            source, table = "values", None
        if source != "values" and not row_arity_ok:
            self.arity_rows(node, spec)
        if source == "values" and (count == 0 or not spec.repeat):
            self.error(
                node,
                T(
                    f"{spec.name} 需要子表的列，如 {spec.example}",
                    f"{spec.name} needs child-table columns, e.g. {spec.example}",
                ),
            )
        elements: list[Type] = []
        for i, (arg, arg_ast) in enumerate(zip(args, node.args, strict=True)):
            param = spec.param(i)
            types = param.types if param else (ANY,)
            element = arg.type
            if source == "values" and element.is_list:
                element = element.item or ANY
            if not any(accepts(t, element) for t in types):
                self.error(arg_ast, _argument_error(spec, i, types, arg.type))
            elements.append(element)
        result = self.result_type(node, spec, elements)
        return ir.Aggregate(result, self.at(node), spec.name, tuple(args), source, table)

    def arity_rows(self, node: ast.Call, spec: FunctionSpec) -> NoReturn:
        agg = spec.aggregate
        assert agg is not None
        want = (
            str(agg.row_args)
            if agg.min_row_args == agg.row_args
            else f"{agg.min_row_args}-{agg.row_args}"
        )
        self.error(
            node,
            T(
                f"{spec.name} 在这里需要 {want} 个按行计算的参数，这里有 {len(node.args)} 个",
                f"{spec.name} takes {want} per-row argument(s) here, got {len(node.args)}",
            ),
            T(f"例如：{spec.example}", f"for example: {spec.example}"),
        )


_DUNDER = T("不允许以 '__' 开头的名字", "names starting with '__' are not allowed")
_NO_ATTRIBUTES = T(
    "公式中不能访问属性；只有子表的列可以写作 表.列",
    "formulas cannot access attributes; only child-table columns are written table.column",
)


def _did_you_mean(name: str, candidates: list[str]) -> Text:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    if close:
        return T(f"是不是 '{close[0]}'？", f"did you mean '{close[0]}'?")
    if candidates and len(candidates) <= 12:
        listed = ", ".join(sorted(candidates))
        return T(f"可用的有：{listed}", f"available: {listed}")
    return Text()


def _arith_type(op: str, left: Type, right: Type) -> Type | None:
    if left.kind == "any" or right.kind == "any":
        known = right if left.kind == "any" else left
        return known if known in (NUMBER, TEXT) and not (known == TEXT and op != "+") else ANY
    numeric = all(t in (NUMBER, NULL) for t in (left, right))
    if numeric:
        return NUMBER
    if op == "+" and all(t in (TEXT, NULL) for t in (left, right)):
        return TEXT
    return None


def _arith_error(op: str, left: Type, right: Type) -> tuple[Text, Text]:
    zh_verb, en_verb = _ARITH_NAMES[op]
    message = T(
        f"不能对{left.label.zh}和{right.label.zh}{zh_verb}",
        f"cannot {en_verb} {left.label.en} and {right.label.en}",
    )
    kinds = {left, right}
    if TEXT in kinds and op == "+":
        hint = T(
            "连接文本请用 CONCAT(a, b)，它会把数字转成文本",
            "to join text use CONCAT(a, b), which turns numbers into text",
        )
    elif TEXT in kinds:
        hint = T("文本不能参与这种运算", "text cannot be used with this operator")
    elif kinds & {DATE, DATETIME} and op in "+-" and NUMBER in kinds:
        hint = T(
            "日期加减天数请用 ADD_DAYS(date, n)", "to move a date by days use ADD_DAYS(date, n)"
        )
    elif kinds & {DATE, DATETIME} and op == "-":
        hint = T(
            "两个日期相差的天数请用 DAYS(end, start)",
            "for the days between two dates use DAYS(end, start)",
        )
    else:
        hint = Text()
    return message, hint


def _compare_error(op: str, left: Type, right: Type) -> tuple[Text, Text]:
    message = T(
        f"不能用 {op} 比较{left.label.zh}和{right.label.zh}",
        f"cannot compare {left.label.en} with {right.label.en} using {op}",
    )
    kinds = {left, right}
    if kinds == {DATE, DATETIME}:
        hint = T(
            "日期与日期时间不能直接比较：请用 TODAY() 对日期、NOW() 对日期时间",
            "a date and a date-time cannot be compared: use TODAY() with dates, "
            "NOW() with date-times",
        )
    elif kinds == {NUMBER, TEXT}:
        hint = T("数字不要加引号：写 10 而不是 '10'", "write numbers without quotes: 10, not '10'")
    elif BOOL in kinds and op not in ("==", "!=", "in"):
        hint = T("真/假值不能比较大小", "true/false values have no order")
    else:
        hint = Text()
    return message, hint


def _branches(a: Type, b: Type) -> Text:
    return T(
        f"两个分支的类型不一致：{a.label.zh} 与 {b.label.zh}",
        f"the two branches have different types: {a.label.en} and {b.label.en}",
    )


def _argument_error(spec: FunctionSpec, index: int, types: tuple[Type, ...], got: Type) -> Text:
    param = spec.param(index)
    name = param.name if param else str(index + 1)
    want_zh = "或".join(t.label.zh or "" for t in types)
    want_en = " or ".join(t.label.en or "" for t in types)
    return T(
        f"{spec.name} 的参数 {name} 应为{want_zh}，这里是{got.label.zh}",
        f"{spec.name}: argument '{name}' must be {want_en}, got {got.label.en}",
    )
