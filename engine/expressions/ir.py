"""The checked, typed form of a formula, shared by the closure compiler and the SQL translator.

The checker turns Python syntax into these nodes only after every name is
resolved and every type agrees, so the two back ends never see anything the
language does not allow. Each node knows its type and where it starts in the
formula text (0-based line and column), for runtime error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .types import NUMBER, Type

Offset = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Node:
    type: Type
    offset: Offset


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class FieldRef(Node):
    """A field of the record (or, inside a KPI aggregate, of each row)."""

    name: str


@dataclass(frozen=True, slots=True)
class ColumnRef(Node):
    """``table.column``: a child-table column, read row by row inside an aggregate."""

    table: str
    column: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "%"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # "==", "!=", "<", "<=", ">", ">="
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class IsBlank(Node):
    """``x == None``, ``x is None``, ISBLANK(x); ``negate`` for the != forms."""

    operand: Node
    negate: bool


@dataclass(frozen=True, slots=True)
class InList(Node):
    """``x in [...]`` (``items`` given) or ``x in list_field`` (``haystack`` given)."""

    needle: Node
    items: tuple[Node, ...] | None
    haystack: Node | None
    negate: bool


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # "and", "or"
    values: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Cond(Node):
    """``body if test else orelse``."""

    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    """A dict literal with constant keys; only as CHOOSE_BY's lookup table."""

    keys: tuple[Any, ...]
    values: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A row-level function call."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Aggregate(Node):
    """SUM, COUNT ... over many values.

    ``source`` says where the values come from: ``"rows"`` (a KPI measure: each
    argument is evaluated once per record of the entity), ``"table"`` (each
    argument is evaluated once per row of child table ``table``) or ``"values"``
    (Excel style: the arguments are values or lists, flattened).
    """

    name: str
    args: tuple[Node, ...]
    source: str
    table: str | None = None


def walk(node: Node) -> list[Node]:
    """Every node under (and including) ``node``, parents first."""
    out: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(children(current)))
    return out


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary | Compare):
        return (node.left, node.right)
    if isinstance(node, IsBlank):
        return (node.operand,)
    if isinstance(node, InList):
        rest = node.items if node.items is not None else (node.haystack,) if node.haystack else ()
        return (node.needle, *rest)
    if isinstance(node, BoolOp):
        return node.values
    if isinstance(node, Cond):
        return (node.test, node.body, node.orelse)
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return node.values
    if isinstance(node, Call | Aggregate):
        return node.args
    return ()


def field_equality(node: Node) -> tuple[str, Any, bool] | None:
    """``stage != 'lost'``: (field, constant, negated) for a non-number field compared
    with a constant by ``==``/``!=``, else None.

    The shape the compiler tests inline (a blank field is equal to nothing and
    unequal to nothing), and IF inlines in its turn; numbers are left out because
    their reads convert floats.
    """
    if (
        isinstance(node, Compare)
        and node.op in ("==", "!=")
        and isinstance(node.left, FieldRef)
        and node.left.type != NUMBER
        and isinstance(node.right, Const)
        and node.right.value is not None
    ):
        return node.left.name, node.right.value, node.op == "!="
    return None
