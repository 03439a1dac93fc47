"""Flow steps that can never run: conditions that are false whatever the record holds.

Runs after the formula checks (it reads the compiled, typed form of each
``when``). A step is reached only when the flow's ``submit_when`` held at
submit time and its own ``when`` holds, so the check takes both together and
looks for what can be decided without data:

* a ``when`` that is a constant (``false``, ``1 > 2``) and false;
* comparisons of one field with constants, joined by ``and``, that no value
  satisfies (``total >= 100000 and total < 50000``; with ``submit_when: "total
  <= 0"``, a step ``when: "total > 0"``; ``stage == 'won' and stage == 'lost'``;
  ``x == 1 and x != 1``).

Anything else (``or``, functions, two fields compared) is left alone: the check
reports only what is certain. Each finding is a warning naming the step (the
step is recorded as skipped on every submit); a flow whose every step is certain
to be skipped gets one too, since every submit would then be approved at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.checks import Context, semantic_check
from engine.errors import Problem
from engine.expressions import EvalContext, ir
from engine.i18n import T
from engine.model import Flow, Formula

__all__ = ["never_true", "unreachable_steps"]

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass
class _Bounds:
    """What the comparisons of one field with constants allow."""

    low: Any = None
    low_strict: bool = False
    high: Any = None
    high_strict: bool = False
    equal: list[Any] = field(default_factory=list)
    unequal: list[Any] = field(default_factory=list)

    def add(self, op: str, value: Any) -> None:
        if op == "==":
            self.equal.append(value)
        elif op == "!=":
            self.unequal.append(value)
        elif op in (">", ">="):
            strict = op == ">"
            if self.low is None or value > self.low or (value == self.low and strict):
                self.low, self.low_strict = value, strict
        elif op in ("<", "<="):
            strict = op == "<"
            if self.high is None or value < self.high or (value == self.high and strict):
                self.high, self.high_strict = value, strict

    def admits(self, value: Any) -> bool:
        if self.low is not None and (value < self.low or (self.low_strict and value == self.low)):
            return False
        if self.high is not None and (
            value > self.high or (self.high_strict and value == self.high)
        ):
            return False
        return value not in self.unequal

    def empty(self) -> bool:
        if len({_key(v) for v in self.equal}) > 1:
            return True
        if self.equal:
            return not self.admits(self.equal[0])
        if self.low is not None and self.high is not None:
            if self.low > self.high:
                return True
            if self.low == self.high and (self.low_strict or self.high_strict):
                return True
            if self.low == self.high and self.low in self.unequal:
                return True
        return False


def _key(value: Any) -> Any:
    return (type(value).__name__ if not isinstance(value, int | Decimal) else "n", value)


def _conjuncts(node: ir.Node) -> list[ir.Node]:
    if isinstance(node, ir.BoolOp) and node.op == "and":
        return [part for value in node.values for part in _conjuncts(value)]
    return [node]


def _comparable(value: Any) -> bool:
    return isinstance(value, int | Decimal | str) and not isinstance(value, bool)


def _field_constraint(node: ir.Node) -> tuple[str, str, Any] | None:
    """``field op constant`` (either way round), else None."""
    if not isinstance(node, ir.Compare):
        return None
    left, right, op = node.left, node.right, node.op
    if isinstance(left, ir.Const) and isinstance(right, ir.FieldRef):
        left, right, op = right, left, _FLIP[op]
    if isinstance(left, ir.FieldRef) and isinstance(right, ir.Const) and _comparable(right.value):
        return left.name, op, right.value
    return None


def _constant(node: ir.Node) -> bool:
    """No field, no function: the same value for every record."""
    return not any(
        isinstance(n, ir.FieldRef | ir.ColumnRef | ir.Call | ir.Aggregate) for n in ir.walk(node)
    )


def never_true(*conditions: Formula | None) -> bool:
    """Certain that ``c1 and c2 and ...`` is false for every record (see the module doc)."""
    parts: list[ir.Node] = []
    for formula in conditions:
        if formula is None or not formula.is_compiled:
            continue
        parts += _conjuncts(formula.compiled.node)
    bounds: dict[str, _Bounds] = {}
    kinds: dict[str, set[str]] = {}
    for part in parts:
        if _constant(part):
            try:
                value = _evaluate(part)
            except Exception:  # a constant that fails to evaluate proves nothing  # nosec B112
                continue
            if value is False or value is None:
                return True
            continue
        found = _field_constraint(part)
        if found is None:
            continue
        name, op, value = found
        kinds.setdefault(name, set()).add("text" if isinstance(value, str) else "number")
        bounds.setdefault(name, _Bounds()).add(op, value)
    return any(b.empty() for name, b in bounds.items() if len(kinds[name]) == 1)


def _evaluate(node: ir.Node) -> Any:
    """A constant part's value, through the one evaluator (compiled once, run once)."""
    from engine.expressions.compiler import Compiled

    compiled = Compiled("", node, (), (), (), False)
    return compiled.evaluate(EvalContext(values={}))


@semantic_check
def unreachable_steps(ctx: Context) -> Iterator[Problem]:
    """Steps whose ``when`` (with the flow's ``submit_when``) can never be true."""
    for fname, flow in ctx.blueprint.flows.items():
        dead = []
        for sname, step in flow.steps.items():
            if step.when is None or not never_true(flow.submit_when, step.when):
                continue
            dead.append(sname)
            alone = never_true(step.when)
            yield Problem(
                step.when.location,
                T(
                    f"步骤 '{sname}' 永远不会执行：它的 when 条件"
                    + ("总是为假" if alone else "与流程的 submit_when 矛盾"),
                    f"step '{sname}' never runs: its when "
                    + ("is never true" if alone else "contradicts the flow's submit_when"),
                ),
                T("改正条件，或删掉这个步骤", "fix the condition, or remove the step"),
                severity="warning",
            )
        if flow.steps and len(dead) == len(flow.steps):
            yield _all_skipped(flow, fname)


def _all_skipped(flow: Flow, name: str) -> Problem:
    return Problem(
        flow.location,
        T(
            f"流程 '{name}' 的每个步骤都会被跳过：每次提交都会立即通过",
            f"every step of flow '{name}' is skipped: every submit would be approved at once",
        ),
        severity="warning",
    )
