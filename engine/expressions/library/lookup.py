"""Picking a value by position or by key: CHOOSE, SWITCH, CHOOSE_BY.

CHOOSE_BY(stage, {'lead': 10, 'won': 100}) is the readable way to map a choice
to a number; the dict literal is allowed only there, with constant keys, so
the lookup table is built once at load time.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from engine.i18n import T

from ..functions import CallSite, Param, TypeProblem, formula_function
from ..ir import Const, MapLit
from ..runtime import Closure, EvalContext
from ..types import MAP, NUMBER, SCALARS, TEXT, Type, join
from .rules import unify

CATEGORY = "lookup"

_OUT_OF_RANGE = T(
    "CHOOSE 的序号超出范围，结果留空", "CHOOSE index out of range; the result is left blank"
)


@formula_function(
    "CHOOSE",
    CATEGORY,
    (
        "按序号（从 1 开始）从后面的值中取一个",
        "Pick one of the values by position (counting from 1)",
    ),
    params=(Param("index", (NUMBER,)), Param("value")),
    repeat=1,
    returns=lambda types: unify(types, range(1, len(types))),
    lazy=True,
    example="CHOOSE(quarter, 'Q1', 'Q2', 'Q3', 'Q4')",
)
def choose(args: Sequence[Closure], site: CallSite) -> Closure:
    index, options = args[0], tuple(args[1:])

    def run(env: EvalContext) -> Any:
        i = index(env)
        if i is None:
            return None
        if i != int(i) or not 1 <= i <= len(options):
            env.warnings.append(_OUT_OF_RANGE)
            return None
        return options[int(i) - 1](env)

    return run


def _switch_type(types: Sequence[Type]) -> Type:
    if len(types) < 3:
        raise TypeProblem(
            T("SWITCH 至少需要：值, 匹配值, 结果", "SWITCH needs at least: value, match, result"),
            arg=len(types) - 1,
        )
    for i in range(1, len(types) - 1, 2):
        if join(types[0], types[i]) is None:
            raise TypeProblem(
                T(
                    f"匹配值是{types[i].label.zh}，不能与{types[0].label.zh}比较",
                    f"the match value is {types[i].label.en}, it cannot be compared "
                    f"with {types[0].label.en}",
                ),
                arg=i,
            )
    results = list(range(2, len(types), 2))
    if len(types) % 2 == 0:
        results.append(len(types) - 1)
    return unify(types, results)


@formula_function(
    "SWITCH",
    CATEGORY,
    (
        "值等于某个匹配值时取其结果；都不匹配时取最后的默认值（可省略）",
        "The result paired with the first match equal to the value; else the trailing default",
    ),
    params=(Param("value"), Param("match"), Param("result")),
    repeat=2,
    returns=_switch_type,
    lazy=True,
    example="SWITCH(level, 'A', 0.1, 'B', 0.05, 0)",
)
def switch(args: Sequence[Closure], site: CallSite) -> Closure:
    value = args[0]
    rest = args[1:]
    default = rest[-1] if len(rest) % 2 else None
    pairs = tuple(zip(rest[0::2], rest[1::2], strict=False))

    def run(env: EvalContext) -> Any:
        v = value(env)
        if v is not None:
            for match, result in pairs:
                if v == match(env):
                    return result(env)
        return default(env) if default is not None else None

    return run


def _choose_by_type(types: Sequence[Type]) -> Type:
    values = types[1].item or types[1]
    if len(types) < 3:
        return values
    joined = join(values, types[2])
    if joined is None:
        raise TypeProblem(
            T(
                f"默认值是{types[2].label.zh}，与表中的值（{values.label.zh}）类型不同",
                f"the default is {types[2].label.en}, the table's values are {values.label.en}",
            ),
            arg=2,
        )
    return joined


def _key_fits(key: Any, key_type: Type) -> bool:
    if key_type == TEXT:
        return isinstance(key, str)
    if key_type == NUMBER:
        return isinstance(key, int | Decimal) and not isinstance(key, bool)
    if key_type.kind == "bool":
        return isinstance(key, bool)
    return key_type.kind in ("any", "null")


@formula_function(
    "CHOOSE_BY",
    CATEGORY,
    (
        "按键在映射表中查值，如 CHOOSE_BY(stage, {'lead': 10, 'won': 100})；找不到时取默认值或空",
        "Look the key up in a map literal; the default (or blank) when it is missing",
    ),
    params=(Param("key", SCALARS), Param("table", (MAP,)), Param("default", optional=True)),
    returns=_choose_by_type,
    lazy=True,
    example="CHOOSE_BY(stage, {'lead': 10, 'proposal': 60, 'won': 100}, 0)",
)
def choose_by(args: Sequence[Closure], site: CallSite) -> Closure:
    table = site.args[1]
    if not isinstance(table, MapLit):
        raise TypeProblem(
            T(
                "第二个参数必须是 {键: 值, ...} 映射表",
                "the second argument must be a {key: value, ...} map",
            ),
            arg=1,
        )
    key_type = site.args[0].type
    for key in table.keys:
        if not _key_fits(key, key_type):
            raise TypeProblem(
                T(
                    f"映射表的键 {key!r} 与查找值（{key_type.label.zh}）类型不同",
                    f"the map key {key!r} does not match the lookup value ({key_type.label.en})",
                ),
                arg=1,
            )
    key = args[0]
    default = args[2] if len(args) > 2 else None
    consts = [v for v in table.values if isinstance(v, Const)]
    if len(consts) == len(table.values):
        constants = {k: c.value for k, c in zip(table.keys, consts, strict=True)}
        if default is None:
            return lambda env: constants.get(key(env))

        def lookup_const(env: EvalContext) -> Any:
            k = key(env)
            return constants[k] if k in constants else default(env)

        return lookup_const
    compiled = {k: site.compile(v) for k, v in zip(table.keys, table.values, strict=True)}

    def lookup(env: EvalContext) -> Any:
        found = compiled.get(key(env))
        if found is not None:
            return found(env)
        return default(env) if default is not None else None

    return lookup
