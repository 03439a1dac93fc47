"""The Formflow formula language: one language for every formula in a blueprint.

Computed fields, defaults (``=TODAY()``), cross-field rules, required_if /
visible_if / readonly_if, flow conditions, KPI measures and filters and
automations are all written in it. The syntax is a small subset of Python
expressions, parsed by simpleeval's parser (this package is the only place in
Formflow that imports simpleeval), then type-checked and compiled once, when
the blueprint loads::

    from engine.expressions import Scope, compile_formula, EvalContext, NUMBER, TEXT
    f = compile_formula("IF(stage != 'lost', amount * probability / 100, 0)",
                        Scope({"stage": TEXT, "amount": NUMBER, "probability": NUMBER}))
    f.evaluate(EvalContext({"stage": "won", "amount": Decimal("10.50"), "probability": 100}))

The rules (docs/formulas.md has the full reference, generated-from and tested
against :data:`FUNCTIONS`):

* Checked at load: every name is a field, ``table.column`` of a declared child
  table (inside an aggregate only), a function, or True/False/None (also
  ``true``/``false``/``blank`` unless a field has that name). Unknown names get a
  did-you-mean. Types are static: ``amount + name`` is an error, ``+`` joins
  text only with text, dates move with ADD_DAYS, not ``+``.
* Blanks propagate through arithmetic; aggregates skip them; a comparison with
  a blank is false (also ``!=`` and ``not in``, as in SQL) except ``x == None``
  and ISBLANK(x); a blank condition counts as false.
* Numbers are int or Decimal, never float: ``1.5`` is a Decimal literal, ``/``
  gives a Decimal, ``+ - *`` keep ints as ints. Division by zero gives blank
  and a warning on ``EvalContext.warnings``; so do domain errors such as
  SQRT(-1). Numbers at or beyond 10**30, text beyond 100,000 characters and an
  exhausted step budget raise ExpressionError.
* Dates are calendar days; date-times are timezone-aware and read in the
  context's business time zone (Asia/Shanghai by default): TODAY() is
  ``ctx.now()`` in ``ctx.tz``.
* Hostile formulas are refused: length (2,000 characters) and nesting are
  checked before parsing; no attribute access, method calls, subscripts,
  comprehensions, lambdas, f-strings, keyword arguments, ``**`` or dunder
  names. Evaluation raises :class:`~engine.errors.ExpressionError` and nothing
  else.
* Errors carry ``offset`` = (line, column), 0-based, in characters, within the
  formula text, so the loader can point at file:line:column.
"""

from . import library as _library  # noqa: F401 - registers the built-in functions
from .checker import Scope
from .compiler import Compiled, compile_formula
from .functions import (
    FUNCTIONS,
    AggregateSpec,
    CallSite,
    FunctionSpec,
    Param,
    TypeProblem,
    formula_function,
    register_function,
)
from .runtime import BlankResult, EvalContext
from .types import ANY, BOOL, DATE, DATETIME, MAP, NULL, NUMBER, TEXT, Type, list_of, map_of

__all__ = [
    "ANY",
    "BOOL",
    "DATE",
    "DATETIME",
    "FUNCTIONS",
    "MAP",
    "NULL",
    "NUMBER",
    "TEXT",
    "AggregateSpec",
    "BlankResult",
    "CallSite",
    "Compiled",
    "EvalContext",
    "FunctionSpec",
    "Param",
    "Scope",
    "Type",
    "TypeProblem",
    "compile_formula",
    "formula_function",
    "list_of",
    "map_of",
    "register_function",
]
