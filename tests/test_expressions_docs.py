"""docs/formulas.md documents every registered function, and its examples are valid formulas."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import engine.expressions
from engine.errors import ExpressionError
from engine.expressions import ANY, FUNCTIONS, Scope, compile_formula
from engine.expressions.reference import END, START, render_reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "formulas.md"


def test_reference_block_matches_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = START + text.partition(START)[2].partition(END)[0] + END
    assert block == render_reference(), "run: python -m engine.expressions.reference"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_is_documented(name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"| `{name}(" in text, f"{name} is missing from docs/formulas.md"


def _example_scope(example: str, *, aggregate: bool) -> Scope:
    """Every name in the example as a field of any type; ``lines`` as a child table."""
    names = (
        {n.id for n in ast.walk(ast.parse(example)) if isinstance(n, ast.Name)}
        - set(FUNCTIONS)
        - {"lines"}
    )
    columns = {n.attr for n in ast.walk(ast.parse(example)) if isinstance(n, ast.Attribute)}
    return Scope(
        dict.fromkeys(names, ANY),
        {"lines": dict.fromkeys(columns, ANY)},
        allow_changes=True,
        aggregate=aggregate,
    )


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_example_checks(name: str) -> None:
    example = FUNCTIONS[name].example
    assert name in example
    try:
        compiled = compile_formula(example, _example_scope(example, aggregate=False))
    except ExpressionError:
        compiled = compile_formula(example, _example_scope(example, aggregate=True))
    assert name in compiled.functions


def test_package_docstring_states_the_rules() -> None:
    doc = engine.expressions.__doc__ or ""
    for phrase in ("simpleeval", "Blanks propagate", "Decimal", "ExpressionError", "offset"):
        assert phrase in doc
