"""Conditions and blanks: IF, IFS, AND, OR, NOT, XOR, ISBLANK, COALESCE, BLANKVALUE.

The branching functions are lazy: IF(b != 0, a / b, 0) never divides by zero,
and AND/OR stop at the first deciding argument. A blank condition counts as
false, as in SQL's WHERE and CASE WHEN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.i18n import T

from ..functions import CallSite, Param, TypeProblem, formula_function
from ..ir import Const, field_equality
from ..runtime import Closure, EvalContext, is_blank
from ..types import BOOL, Type
from .rules import same_as, unify

CATEGORY = "logic"


@formula_function(
    "IF",
    CATEGORY,
    (
        "条件为真时取第二个参数，否则取第三个（省略则为空）",
        "The second argument if the condition is true, else the third (blank if omitted)",
    ),
    params=(Param("condition", (BOOL,)), Param("then"), Param("else", optional=True)),
    returns=same_as(1, 2),
    lazy=True,
    example="IF(stage != 'lost', amount * probability / 100, 0)",
)
def if_(args: Sequence[Closure], site: CallSite) -> Closure:
    test, body = args[0], args[1]
    third = site.args[2] if len(args) == 3 else None
    field = field_equality(site.args[0])
    if third is None or isinstance(third, Const):
        constant = third.value if third is not None else None
        if field is None:
            return lambda env: body(env) if test(env) else constant
        name, c, negate = field
        if negate:
            return lambda env: (
                body(env) if (v := env.values.get(name)) is not None and v != c else constant
            )
        return lambda env: body(env) if env.values.get(name) == c else constant
    orelse = args[2]
    if field is None:
        return lambda env: body(env) if test(env) else orelse(env)
    name, c, negate = field
    if negate:
        return lambda env: (
            body(env) if (v := env.values.get(name)) is not None and v != c else orelse(env)
        )
    return lambda env: body(env) if env.values.get(name) == c else orelse(env)


def _ifs_type(types: Sequence[Type]) -> Type:
    if len(types) % 2:
        raise TypeProblem(
            T("IFS 的参数必须成对出现：条件, 值, ...", "IFS takes pairs: condition, value, ..."),
            arg=len(types) - 1,
        )
    return unify(types, range(1, len(types), 2))


@formula_function(
    "IFS",
    CATEGORY,
    (
        "取第一个为真的条件对应的值；都不为真则为空",
        "The value paired with the first true condition; blank if none is true",
    ),
    params=(Param("condition", (BOOL,)), Param("value")),
    repeat=2,
    returns=_ifs_type,
    lazy=True,
    example="IFS(amount >= 100000, 'A', amount >= 10000, 'B', True, 'C')",
)
def ifs(args: Sequence[Closure], site: CallSite) -> Closure:
    pairs = tuple(zip(args[0::2], args[1::2], strict=True))

    def run(env: EvalContext) -> Any:
        for test, value in pairs:
            if test(env):
                return value(env)
        return None

    return run


@formula_function(
    "AND",
    CATEGORY,
    ("所有条件都为真时为真", "True when every condition is true"),
    params=(Param("condition", (BOOL,)),),
    repeat=1,
    returns=BOOL,
    lazy=True,
    example="AND(amount > 0, stage == 'won')",
)
def and_(args: Sequence[Closure], site: CallSite) -> Closure:
    items = tuple(args)
    return lambda env: all(a(env) for a in items)


@formula_function(
    "OR",
    CATEGORY,
    ("任一条件为真时为真", "True when any condition is true"),
    params=(Param("condition", (BOOL,)),),
    repeat=1,
    returns=BOOL,
    lazy=True,
    example="OR(level == 'A', annual_revenue > 1000000)",
)
def or_(args: Sequence[Closure], site: CallSite) -> Closure:
    items = tuple(args)
    return lambda env: any(a(env) for a in items)


@formula_function(
    "NOT",
    CATEGORY,
    (
        "条件取反（空值视为假，取反为真）",
        "The opposite of the condition (blank counts as false, so NOT(blank) is true)",
    ),
    params=(Param("condition", (BOOL,)),),
    returns=BOOL,
    blank_propagates=False,
    example="NOT(ISBLANK(close_date))",
)
def not_(value: Any) -> bool:
    return not value


@formula_function(
    "XOR",
    CATEGORY,
    ("为真的条件个数为奇数时为真", "True when an odd number of the conditions are true"),
    params=(Param("condition", (BOOL,)),),
    repeat=1,
    returns=BOOL,
    blank_propagates=False,
    example="XOR(is_new, is_vip)",
)
def xor(*values: Any) -> bool:
    return sum(1 for v in values if v) % 2 == 1


@formula_function(
    "ISBLANK",
    CATEGORY,
    (
        "值为空（含空文本、空列表）时为真",
        "True when the value is blank (including empty text or an empty list)",
    ),
    params=(Param("value"),),
    returns=BOOL,
    blank_propagates=False,
    example="ISBLANK(close_date)",
)
def isblank(value: Any) -> bool:
    return is_blank(value)


@formula_function(
    "COALESCE",
    CATEGORY,
    ("第一个不为空（None）的参数", "The first argument that is not blank (None)"),
    params=(Param("value"),),
    repeat=1,
    returns=lambda types: unify(types, range(len(types))),
    lazy=True,
    example="COALESCE(discount, 0)",
)
def coalesce(args: Sequence[Closure], site: CallSite) -> Closure:
    items = tuple(args)

    def run(env: EvalContext) -> Any:
        for a in items:
            value = a(env)
            if value is not None:
                return value
        return None

    return run


@formula_function(
    "BLANKVALUE",
    CATEGORY,
    (
        "值为空（含空文本）时取替代值，否则取值本身",
        "The substitute when the value is blank (empty text too), else the value",
    ),
    params=(Param("value"), Param("substitute")),
    returns=same_as(0, 1),
    lazy=True,
    example="BLANKVALUE(nickname, name)",
)
def blankvalue(args: Sequence[Closure], site: CallSite) -> Closure:
    value, substitute = args

    def run(env: EvalContext) -> Any:
        v = value(env)
        return substitute(env) if is_blank(v) else v

    return run
