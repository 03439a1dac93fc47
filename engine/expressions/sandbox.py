"""Limits that keep a hostile or careless formula from exhausting the server.

simpleeval itself does not bound CPU or memory, so every limit lives here:
the formula's size and nesting (checked on the raw text before the Python parser
sees it, because ``ast.parse`` recurses), the magnitude of numbers, the length of
text, and a per-evaluation step budget. Each limit raises
:class:`~engine.errors.ExpressionError` with a bilingual message.
"""

from __future__ import annotations

import ast
import decimal
from decimal import Decimal
from typing import NoReturn

from engine.errors import ExpressionError
from engine.i18n import T, Text

#: Longest formula text accepted (refused before parsing).
MAX_SOURCE_LENGTH = 2_000
#: Deepest bracket nesting accepted in the raw text.
MAX_BRACKET_DEPTH = 32
#: Longest run of prefix operators (``- - -x``, ``not not x``) in the raw text.
MAX_PREFIX_RUN = 8
#: Most syntax-tree nodes and deepest tree accepted after parsing.
MAX_NODES = 1_000
MAX_DEPTH = 64
#: Numbers must stay below 10**MAX_DIGITS in magnitude.
MAX_DIGITS = 30
MAX_INT = 10**MAX_DIGITS
#: Longest text a formula may produce.
MAX_TEXT_LENGTH = 100_000
#: Default number of steps one evaluation may take (a step is one node evaluated,
#: so a formula costs its node count, times the rows of any child-table aggregate).
DEFAULT_BUDGET = 1_000_000

#: The one decimal context every formula uses, whatever the thread's context is.
#: Overflow is trapped at 10**MAX_DIGITS; NaN and infinities cannot be produced.
DECIMAL = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=MAX_DIGITS - 1,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

TOO_LARGE = T("数字太大（上限为 30 位）", "number too large (the limit is 30 digits)")
TOO_LONG = T(
    f"文本太长（上限为 {MAX_TEXT_LENGTH} 个字符）",
    f"text too long (the limit is {MAX_TEXT_LENGTH} characters)",
)
NOT_FINITE = T("数字不是有限值（NaN 或无穷大）", "number is not finite (NaN or infinity)")


def fail(message: Text, offset: tuple[int, int] = (0, 0), hint: Text | None = None) -> NoReturn:
    """Raise the one error type formulas raise."""
    raise ExpressionError(message, offset=offset, hint=hint)


def check_int(value: int, offset: tuple[int, int] = (0, 0)) -> int:
    """An integer result, refused when it reaches 10**30 (bounds the cost of the next op)."""
    if -MAX_INT < value < MAX_INT:
        return value
    fail(TOO_LARGE, offset)


def check_decimal(value: Decimal, offset: tuple[int, int] = (0, 0)) -> Decimal:
    """A decimal that came from outside (data, literals): finite and in range."""
    if not value.is_finite():
        fail(NOT_FINITE, offset)
    if value and value.adjusted() >= MAX_DIGITS:
        fail(TOO_LARGE, offset)
    return value


def check_text(value: str, offset: tuple[int, int] = (0, 0)) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        fail(TOO_LONG, offset)
    return value


def from_float(value: float) -> Decimal:
    """Floats never enter arithmetic: they become the decimal they print as."""
    return check_decimal(Decimal(str(value)))


def precheck(source: str) -> None:
    """Refuse oversized or pathologically nested text before ``ast.parse`` recurses on it.

    A single linear scan: it skips string literals and tracks bracket depth and
    runs of prefix operators, the two constructs that make the parser recurse.
    """
    if len(source) > MAX_SOURCE_LENGTH:
        fail(
            T(
                f"公式太长（{len(source)} 个字符，上限为 {MAX_SOURCE_LENGTH}）",
                f"formula too long ({len(source)} characters, the limit is {MAX_SOURCE_LENGTH})",
            )
        )
    depth = 0
    run = 0
    quote = ""
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch == "#":  # a comment runs to the end of the line
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch in "'\"":
            quote = ch
            run = 0
        elif ch in "([{":
            depth += 1
            if depth > MAX_BRACKET_DEPTH:
                fail(
                    T(
                        f"括号嵌套太深（上限为 {MAX_BRACKET_DEPTH} 层）",
                        f"brackets nested too deeply (the limit is {MAX_BRACKET_DEPTH})",
                    ),
                    _offset_of(source, i),
                )
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                fail(T("括号不匹配", "brackets do not match"), _offset_of(source, i))
        elif ch in "+-~":
            run += 1
        elif source.startswith("not", i) and _word_at(source, i, 3):
            run += 1
            i += 3
            continue
        elif not ch.isspace():
            run = 0
        if run > MAX_PREFIX_RUN:
            fail(
                T("连续的运算符太多", "too many operators in a row"),
                _offset_of(source, i),
            )
        i += 1


def _word_at(source: str, i: int, length: int) -> bool:
    before = source[i - 1] if i else " "
    after = source[i + length] if i + length < len(source) else " "
    return not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_")


def _offset_of(source: str, index: int) -> tuple[int, int]:
    line = source.count("\n", 0, index)
    start = source.rfind("\n", 0, index) + 1
    return line, index - start


def check_tree_size(tree: ast.AST) -> None:
    """Bound the node count and depth without recursing (the checker that follows does)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            fail(T("公式太复杂（节点太多）", "formula too complex (too many parts)"))
        if depth > MAX_DEPTH:
            fail(
                T(
                    f"公式嵌套太深（上限为 {MAX_DEPTH} 层）",
                    f"formula nested too deeply (the limit is {MAX_DEPTH} levels)",
                )
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
