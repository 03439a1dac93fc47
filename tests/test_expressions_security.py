"""Hostile formulas: refused at check time, or an ExpressionError at run time, never a crash.

No wall-clock assertions (project rule): cost is asserted through the step
budget (``EvalContext.steps``/``budget``) and by refusing before any work.
"""

from __future__ import annotations

import contextlib
import sys
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ExpressionError
from engine.expressions import (
    BOOL,
    DATE,
    FUNCTIONS,
    NUMBER,
    TEXT,
    EvalContext,
    Scope,
    compile_formula,
    list_of,
)
from engine.expressions.sandbox import MAX_SOURCE_LENGTH, MAX_TEXT_LENGTH

SCOPE = Scope(
    {"x": TEXT, "n": NUMBER, "d": NUMBER, "flag": BOOL, "day": DATE, "tags": list_of(TEXT)},
    {"lines": {"qty": NUMBER, "name": TEXT}},
)


def context(**values: Any) -> EvalContext:
    base: dict[str, Any] = {"x": "abc", "n": 7, "d": Decimal("2.5"), "flag": True, "tags": ["a"]}
    base.update(values)
    return EvalContext(values=base, tables={"lines": [{"qty": 1, "name": "a"}]})


def outcome(source: str, ctx: EvalContext | None = None) -> str:
    """'refused' at check time, 'error' at run time, or 'value:<repr>'."""
    try:
        compiled = compile_formula(source, SCOPE)
    except ExpressionError:
        return "refused"
    try:
        return f"value:{compiled.evaluate(ctx or context())!r}"
    except ExpressionError:
        return "error"


BAD_INPUTS: list[tuple[str, str]] = [
    ("().__class__.__bases__[0].__subclasses__()", "refused"),
    ("x.__class__", "refused"),
    ("'{0.__class__}'.format(x)", "refused"),
    ("x.format_map", "refused"),
    ("x.gi_frame.f_globals", "refused"),
    ("9**9**9", "refused"),
    ("4000000**4000000", "refused"),
    ("(9**999999)*(9**999999)", "refused"),
    ("1<<10**9", "refused"),
    ("'a'*10**9", "refused"),
    ("('a'*99999).ljust(10**8)", "refused"),
    ("'%0100000000d' % 1", "refused"),
    ("[i for i in range(10**8)]", "refused"),
    ("lambda: 1", "refused"),
    ("1" + "+1" * 200000, "refused"),
    ("-" * 200000 + "1", "refused"),
    ("1e308*10", "refused"),
    ("int('9'*5000)", "refused"),
    # more of the same family
    ("__import__('os').system('true')", "refused"),
    ("open('/etc/passwd')", "refused"),
    ("getattr(x, '__class__')", "refused"),
    ("x[0]", "refused"),
    ("x[::-1]", "refused"),
    ("{**{}}", "refused"),
    ("[*tags]", "refused"),
    ("(y := 1)", "refused"),
    ("f'{x!r}'", "refused"),
    ("{1, 2}", "refused"),
    ("(i for i in tags)", "refused"),
    ("lines.qty.__class__", "refused"),
    ("lines._sa_instance_state", "refused"),
    ("n.real", "refused"),
    ("'a' * n", "refused"),
    ("x % n", "refused"),
    ("1j", "refused"),
    ("b'abc'", "refused"),
    ("...", "refused"),
    ("yield 1", "refused"),
    ("await n", "refused"),
    ("x if True else __builtins__", "refused"),
    ("ROUND(*tags)", "refused"),
    ("n\n)\n+(1", "refused"),
    ("(" * 40 + "1" + ")" * 40, "refused"),
    ("not " * 20 + "flag", "refused"),
    ("- " * 20 + "1", "refused"),
    ("1" + "+1" * 999, "refused"),  # fits the length limit, too deep to check
    ("n" + " * n" * 400, "refused"),
    ("9" * 2001, "refused"),
    # run-time limits
    ("POWER(9, 999999)", "error"),
    ("POWER(10, 30)", "error"),
    ("POWER(2, 99999999)", "error"),
    ("POWER(0.5, -200)", "error"),
    ("100000000000000000 * 100000000000000000", "error"),
    ("9" * 30 + " + 1", "error"),
    ("-" + "9" * 30 + " - 1", "error"),
    ("9999999999999999.9 * 9999999999999999.9", "error"),
    ("0.5 * " + "9" * 30, "value:Decimal('499999999999999999999999999999.5')"),
    ("ROUND(n, 99)", "value:None"),
]


@pytest.mark.parametrize(("source", "expected"), BAD_INPUTS, ids=lambda v: str(v)[:40])
def test_bad_inputs(source: str, expected: str) -> None:
    assert outcome(source) == expected


def test_division_by_zero_is_blank_with_a_warning_not_an_error() -> None:
    ctx = context()
    assert compile_formula("1/0", SCOPE).evaluate(ctx) is None
    assert [w.get("en") for w in ctx.warnings] == ["division by zero; the result is left blank"]


def test_long_formulas_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    import ast

    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("ast.parse must not be reached")

    monkeypatch.setattr(ast, "parse", no_parse)
    for source in ("1" + "+1" * 200000, "-" * 200000 + "1", "(" * 100 + "1"):
        with pytest.raises(ExpressionError) as info:
            compile_formula(source, SCOPE)
        assert info.value.source == source
    assert len("1" + "+1" * 200000) > MAX_SOURCE_LENGTH


def test_text_growth_is_bounded() -> None:
    big = "a" * 60_000
    for source in ("x + x", "CONCAT(x, x)", "REPLACE(x, 'a', 'aa')"):
        with pytest.raises(ExpressionError, match="text too long"):
            compile_formula(source, SCOPE).evaluate(context(x=big))
    assert len(compile_formula("x + x", SCOPE).evaluate(context(x="a" * 50_000))) == MAX_TEXT_LENGTH


def test_integers_are_bounded() -> None:
    f = compile_formula("n * n * n", SCOPE)
    assert f.evaluate(context(n=10**9)) == 10**27
    with pytest.raises(ExpressionError, match="number too large") as info:
        f.evaluate(context(n=10**10))
    assert info.value.offset == (0, 0)
    assert info.value.source == "n * n * n"


def test_step_budget_counts_nodes_and_child_rows() -> None:
    ctx = context()
    compile_formula("n + 1", SCOPE).evaluate(ctx)
    assert ctx.steps == 3
    f = compile_formula("SUM(lines.qty * 2)", SCOPE)
    rows = [{"qty": i} for i in range(1000)]
    ctx = EvalContext(values={}, tables={"lines": rows})
    assert f.evaluate(ctx) == 999_000
    assert ctx.steps == 4 + 1000 * 3
    ctx = EvalContext(values={}, tables={"lines": rows}, budget=2_000)
    with pytest.raises(ExpressionError, match="too many steps"):
        f.evaluate(ctx)
    assert ctx.steps == 3_004


def test_kpi_budget_covers_every_row() -> None:
    f = compile_formula("SUM(n * 2)", Scope({"n": NUMBER}, aggregate=True))
    rows = [{"n": 1}] * 500
    ctx = EvalContext({}, budget=1_000)
    with pytest.raises(ExpressionError, match="too many steps"):
        f.evaluate_rows(rows, ctx)
    ctx = EvalContext({})
    assert f.evaluate_rows(rows, ctx) == 1000
    assert ctx.steps == 4 + 500 * 3


def test_wrong_runtime_types_are_expression_errors() -> None:
    f = compile_formula("n + 1", SCOPE)
    with pytest.raises(ExpressionError, match="TypeError"):
        f.evaluate(context(n="seven"))
    g = compile_formula("MAX(lines.qty)", SCOPE)
    with pytest.raises(ExpressionError, match="mixed types"):
        g.evaluate(EvalContext({}, tables={"lines": [{"qty": 1}, {"qty": "a"}]}))
    h = compile_formula("YEAR(day)", SCOPE)
    with pytest.raises(ExpressionError, match="YEAR failed"):
        h.evaluate(context(day="2024-01-01"))


def test_no_python_objects_leak_through_names() -> None:
    for name in ("__builtins__", "__import__", "eval", "exec", "open", "getattr", "type"):
        assert outcome(name) == "refused"
        assert outcome(f"{name}(x)") == "refused"


# -- fuzzing ---------------------------------------------------------------------

NAMES = ["x", "n", "d", "flag", "day", "tags", "lines", "nope", "__class__", "_x", "None", "True"]
FUNCTION_NAMES = [*sorted(FUNCTIONS), "eval", "getattr", "int", "range", "sum"]
LITERALS = [
    "0", "1", "-1", "7", "2.5", "1e308", "10**30", "99999999999999999999999999999", "0.1",
    "''", "'a'", "'%s'", "'{0}'", "'中文'", "None", "True", "False", "[]", "['a', 'b']",
    "{'a': 1}", "{1: 'x', 2: 'y'}", "lines.qty", "lines.name", "lines.nope", "x.upper",
]  # fmt: skip
BINARY = ["+", "-", "*", "/", "%", "**", "//", "<<", ">>", "&", "|", "^", "@", "==", "!=", "<",
          "<=", ">", ">=", " and ", " or ", " in ", " not in ", " is ", " is not "]  # fmt: skip


def _expressions() -> st.SearchStrategy[str]:
    atoms = st.sampled_from(NAMES + LITERALS) | st.integers(-(10**40), 10**40).map(str)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
            st.tuples(st.sampled_from(["-", "+", "not ", "~"]), inner).map(lambda t: t[0] + t[1]),
            st.tuples(st.sampled_from(FUNCTION_NAMES), st.lists(inner, max_size=4)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
            st.tuples(inner, st.sampled_from([".__class__", ".real", "[0]", "[1:]", "()"])).map(
                lambda t: f"({t[0]}){t[1]}"
            ),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]} for _ in {t[1]}]"),
            st.tuples(inner, inner).map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        )

    return st.recursive(atoms, extend, max_leaves=12)


VALUE_SETS = st.fixed_dictionaries(
    {
        "x": st.sampled_from([None, "", "abc", "中文" * 3, "9" * 40]),
        "n": st.sampled_from([None, 0, -1, 7, 10**29, Decimal("0.5"), Decimal("-1e20"), 2.5]),
        "d": st.sampled_from([None, Decimal(0), Decimal("1E+29"), Decimal("NaN"), 1]),
        "flag": st.sampled_from([None, True, False]),
        "tags": st.sampled_from([None, [], ["a", None]]),
    }
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_expressions(), values=VALUE_SETS)
def test_fuzz_compile_and_evaluate_raise_only_expression_error(
    source: str, values: dict[str, Any]
) -> None:
    try:
        compiled = compile_formula(source, SCOPE)
    except ExpressionError:
        return
    ctx = EvalContext(values=values, tables={"lines": [{"qty": values["n"], "name": values["x"]}]})
    try:
        result = compiled.evaluate(ctx)
    except ExpressionError as exc:
        assert exc.source == source
        return
    assert not isinstance(result, float)


@settings(max_examples=500, deadline=None)
@given(
    source=st.text(
        alphabet=st.sampled_from(list("abnx()[]{}'\".,:+-*/%<>=!~&|^@ 0123456789_\n#中（")),
        max_size=60,
    )
)
def test_fuzz_raw_text(source: str) -> None:
    try:
        compiled = compile_formula(source, SCOPE)
    except ExpressionError:
        return
    with contextlib.suppress(ExpressionError):
        compiled.evaluate(context())


def test_recursion_limit_is_never_reached() -> None:
    # The deepest formula the checker accepts is far below Python's recursion limit.
    deep = "n" + " + n" * 60
    assert compile_formula(deep, SCOPE).evaluate(context(n=1)) == 61
    assert sys.getrecursionlimit() >= 1000
