"""The function registry: every formula function, built-in or added, is a FunctionSpec here.

A spec says how a function is called (parameters and their types), what it
returns (a type, or a rule computing it from the argument types), what it
means (a one-line doc in zh and en, used by ``docs/formulas.md``) and how it
runs. There are three ways to run:

* ``impl`` - an ordinary function of the evaluated arguments (blank in, blank
  out unless ``blank_propagates=False``); ``context=True`` passes the
  :class:`~.runtime.EvalContext` first. Raise :class:`~.runtime.BlankResult`
  for a domain error (the result becomes blank with a warning).
* ``lazy`` - receives the argument closures and builds the call's closure, for
  functions that must not evaluate every argument (IF, AND, COALESCE ...).
* ``aggregate`` - a reducer over many values (SUM, COUNT ...), fed from a
  child table, a list, or the rows of a KPI.

The built-ins in :mod:`.library` register through :func:`register_function`
exactly as an extension would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.i18n import Text

from .ir import Node, Offset
from .runtime import Closure
from .types import ANY, Type


class TypeProblem(Exception):
    """Raised by a return-type rule when the argument types do not fit."""

    def __init__(self, message: Text, *, arg: int | None = None, hint: Text | None = None) -> None:
        super().__init__(message.get("en"))
        self.message = message
        self.arg = arg
        self.hint = hint or Text()


@dataclass(frozen=True)
class Param:
    name: str
    types: tuple[Type, ...] = (ANY,)
    optional: bool = False


@dataclass(frozen=True)
class CallSite:
    """What a lazy builder knows about the call it compiles."""

    name: str
    offset: Offset
    args: tuple[Node, ...]
    type: Type
    compile: Callable[[Node], Closure]


@dataclass(frozen=True)
class AggregateSpec:
    """How an aggregate reduces its values.

    ``reduce`` receives the non-blank values as a list. ``row_args`` is how many
    per-row expressions a call takes (SUMIF: a condition and a value);
    ``prepare`` combines one row's argument values into the value to reduce (or
    None to skip the row). The spec's ``params`` give the accepted type of each
    value; in the Excel style a list of that type is accepted too.
    """

    reduce: Callable[[list[Any]], Any]
    row_args: int = 1
    min_row_args: int = 1
    prepare: Callable[..., Any] | None = None
    bool_counts_true: bool = False  # COUNT(cond) counts the rows where cond is true


ReturnRule = Callable[[Sequence[Type]], Type]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    category: str
    doc: Text
    params: tuple[Param, ...] = ()
    returns: Type | ReturnRule = ANY
    repeat: int = 0  # the last `repeat` params may repeat (variadic)
    impl: Callable[..., Any] | None = None
    context: bool = False
    blank_propagates: bool = True
    lazy: Callable[[Sequence[Closure], CallSite], Closure] | None = None
    aggregate: AggregateSpec | None = None
    needs_changes: bool = False  # ISCHANGED/PRIORVALUE: only where Scope.allow_changes
    field_args: bool = False  # arguments are field names, not values
    example: str = ""

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.params if not p.optional)

    @property
    def max_args(self) -> int | None:
        return None if self.repeat else len(self.params)

    def param(self, index: int) -> Param | None:
        """The parameter an argument at ``index`` binds to (following repeats)."""
        if index < len(self.params):
            return self.params[index]
        if not self.repeat:
            return None
        first = len(self.params) - self.repeat
        return self.params[first + (index - first) % self.repeat]

    @property
    def signature(self) -> str:
        parts = [f"[{p.name}]" if p.optional else p.name for p in self.params]
        if self.repeat:
            parts.append("...")
        return f"{self.name}({', '.join(parts)})"

    def return_type(self, args: Sequence[Type]) -> Type:
        return self.returns if isinstance(self.returns, Type) else self.returns(args)


#: Every formula function by name (upper case).
FUNCTIONS: dict[str, FunctionSpec] = {}


def register_function(spec: FunctionSpec, *, replace: bool = False) -> FunctionSpec:
    """Add a function to the formula language (built-ins use this too)."""
    ways = sum(x is not None for x in (spec.impl, spec.lazy, spec.aggregate))
    if ways != 1:
        raise ValueError(f"{spec.name}: give exactly one of impl, lazy or aggregate")
    if not spec.name.isidentifier() or spec.name != spec.name.upper():
        raise ValueError(f"{spec.name}: function names are upper-case identifiers")
    if not (spec.doc.zh and spec.doc.en):
        raise ValueError(f"{spec.name}: a one-line doc in both zh and en is required")
    if spec.name in FUNCTIONS and not replace:
        raise ValueError(f"{spec.name}: already registered")
    FUNCTIONS[spec.name] = spec
    return spec


F = TypeVar("F", bound=Callable[..., Any])


def formula_function(
    name: str,
    category: str,
    doc: tuple[str, str],
    *,
    params: tuple[Param, ...] = (),
    returns: Type | ReturnRule = ANY,
    repeat: int = 0,
    context: bool = False,
    blank_propagates: bool = True,
    lazy: bool = False,
    needs_changes: bool = False,
    field_args: bool = False,
    example: str = "",
) -> Callable[[F], F]:
    """Decorator registering ``fn`` as the ``impl`` (or, with ``lazy=True``, the builder)."""

    def register(fn: F) -> F:
        register_function(
            FunctionSpec(
                name=name,
                category=category,
                doc=Text(zh=doc[0], en=doc[1]),
                params=params,
                returns=returns,
                repeat=repeat,
                impl=None if lazy else fn,
                lazy=fn if lazy else None,
                context=context,
                blank_propagates=blank_propagates,
                needs_changes=needs_changes,
                field_args=field_args,
                example=example,
            )
        )
        return fn

    return register
