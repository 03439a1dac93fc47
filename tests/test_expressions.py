"""The formula language: what formulas mean (docs/formulas.md, in executable form)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.errors import ExpressionError
from engine.expressions import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    FUNCTIONS,
    MAP,
    NULL,
    NUMBER,
    TEXT,
    BlankResult,
    Compiled,
    EvalContext,
    FunctionSpec,
    Param,
    Scope,
    Type,
    compile_formula,
    formula_function,
    list_of,
    register_function,
)

FIELDS: dict[str, Type] = {
    "stage": TEXT,
    "name": TEXT,
    "nickname": TEXT,
    "amount": NUMBER,
    "probability": NUMBER,
    "discount": NUMBER,
    "qty": NUMBER,
    "金额": NUMBER,
    "客户名称": TEXT,
    "close_date": DATE,
    "signed_on": DATE,
    "created_at": DATETIME,
    "vip": BOOL,
    "active": BOOL,
    "tags": list_of(TEXT),
    "holidays": list_of(DATE),
}
TABLES = {"lines": {"product": TEXT, "qty": NUMBER, "price": NUMBER, "shipped": BOOL}}
SCOPE = Scope(FIELDS, TABLES)
# 2024-05-31 17:00 UTC is already 2024-06-01 01:00 in Shanghai.
CLOCK = datetime(2024, 5, 31, 17, 0, tzinfo=UTC)
RECORD: dict[str, Any] = {
    "stage": "proposal",
    "name": "ACME",
    "nickname": "",
    "amount": Decimal("1200.50"),
    "probability": 60,
    "discount": None,
    "qty": 3,
    "金额": 7,
    "客户名称": "华为",
    "close_date": date(2024, 3, 31),
    "signed_on": None,
    "created_at": datetime(2023, 12, 31, 18, 30, tzinfo=UTC),  # 2024-01-01 02:30 in Shanghai
    "vip": True,
    "active": None,
    "tags": ["vip", "north"],
    "holidays": [date(2024, 1, 1)],
}
LINES = [
    {"product": "a", "qty": 2, "price": Decimal("9.99"), "shipped": True},
    {"product": "b", "qty": 10, "price": Decimal("1.50"), "shipped": False},
    {"product": "a", "qty": None, "price": 3, "shipped": None},
]


def ctx(values: Mapping[str, Any] | None = None, **kw: Any) -> EvalContext:
    base = dict(RECORD)
    base.update(values or {})
    kw.setdefault("tables", {"lines": LINES})
    kw.setdefault("now", lambda: CLOCK)
    return EvalContext(values=base, **kw)


def run(source: str, values: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    return compile_formula(source, SCOPE).evaluate(ctx(values, **kw))


def error(source: str, scope: Scope = SCOPE, **kw: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_formula(source, scope, **kw)
    return info.value


# -- values --------------------------------------------------------------------

VALUE_CASES: list[tuple[str, Any]] = [
    # arithmetic: ints stay ints, a decimal point means Decimal, / gives Decimal
    ("1 + 2 * 3", 7),
    ("7 - 10", -3),
    ("1.5 + 1", Decimal("2.5")),
    ("0.1 + 0.2", Decimal("0.3")),
    ("10 / 4", Decimal("2.5")),
    ("10 / 5", Decimal("2")),
    ("amount * 2", Decimal("2401.00")),
    ("amount * probability / 100", Decimal("720.3")),
    ("-amount", Decimal("-1200.50")),
    ("+qty", 3),
    ("-7 % 3", 2),
    ("7 % -3", -2),
    ("7.5 % 2", Decimal("1.5")),
    ("1e3", Decimal("1000")),
    ("1_000", 1000),
    ("金额 * 2", 14),
    # blanks propagate through arithmetic
    ("discount * 2", None),
    ("amount - discount", None),
    ("-discount", None),
    # text
    ("name + '!'", "ACME!"),
    ("客户名称 + '公司'", "华为公司"),
    ("nickname + name", "ACME"),
    # comparisons; a blank compares false, except == None
    ("amount > 1000", True),
    ("amount >= 1200.5", True),
    ("qty == 3.0", True),
    ("stage != 'won'", True),
    ("discount > 0", False),
    ("discount < 0", False),
    ("discount != 5", False),
    ("discount == None", True),
    ("discount is None", True),
    ("amount != None", True),
    ("amount is not None", True),
    ("0 < qty < 5", True),
    ("0 < qty < 3", False),
    ("'a' < 'b'", True),
    ("close_date < DATE(2024, 4, 1)", True),
    # in / not in: blank is never in (nor not in) a list
    ("stage in ['proposal', 'won']", True),
    ("stage not in ['won', 'lost']", True),
    ("discount in [1, 2]", False),
    ("discount not in [1, 2]", False),
    ("qty in (1, 2, 3)", True),
    ("'vip' in tags", True),
    ("'south' not in tags", True),
    ("stage in [name, 'proposal']", True),
    # boolean logic; a blank condition is false
    ("vip and qty > 1", True),
    ("active or qty > 5", False),
    ("not active", True),
    ("not vip", False),
    ("vip and active", False),
    ("vip and qty > 1 and amount > 0", True),
    ("true and not false", True),
    ("blank == None", True),
    ("'big' if amount > 1000 else 'small'", "big"),
    ("'yes' if active else 'no'", "no"),
    # child-table aggregates: elementwise on one table, blanks skipped
    ("SUM(lines.qty * lines.price)", Decimal("34.98")),
    ("SUM(lines.qty)", 12),
    ("SUM(lines.qty * lines.price) * (1 - 0.1)", Decimal("31.482")),
    ("SUM(lines.price * qty)", Decimal("43.47")),
    ("COUNT(lines.qty)", 2),
    ("COUNT(lines.shipped)", 1),
    ("COUNTIF(lines.qty > 5)", 1),
    ("COUNTIF(lines.product == 'a')", 2),
    ("SUMIF(lines.qty > 1, lines.price)", Decimal("11.49")),
    ("AVERAGE(lines.price)", Decimal("4.83")),
    ("AVG(lines.qty)", Decimal("6")),
    ("MIN(lines.price)", Decimal("1.50")),
    ("MAX(lines.product)", "b"),
    ("COUNT_DISTINCT(lines.product)", 2),
    # Excel-style aggregates over values and lists
    ("SUM(1, 2, discount, 3.5)", Decimal("6.5")),
    ("MAX(0, amount - 2000)", 0),
    ("MIN(close_date, DATE(2024, 1, 1))", date(2024, 1, 1)),
    ("COUNT(tags)", 2),
    ("SUM([1, 2], 3)", 6),
    ("AVERAGE(discount)", None),
]


@pytest.mark.parametrize(("source", "expected"), VALUE_CASES)
def test_values(source: str, expected: Any) -> None:
    result = run(source)
    assert result == expected
    assert type(result) is type(expected)


FUNCTION_CASES: list[tuple[str, Any]] = [
    ("IF(qty > 2, 'many', 'few')", "many"),
    ("IF(qty > 5, 'many')", None),
    ("IF(discount > 0, amount / discount, 0)", 0),
    ("IFS(amount > 5000, 'A', amount > 1000, 'B', True, 'C')", "B"),
    ("IFS(qty > 5, 1)", None),
    ("AND(vip, qty > 1)", True),
    ("AND(vip, active)", False),
    ("OR(active, qty > 5)", False),
    ("OR(active, vip)", True),
    ("NOT(active)", True),
    ("XOR(vip, qty > 1)", False),
    ("XOR(vip, active)", True),
    ("ISBLANK(discount)", True),
    ("ISBLANK(nickname)", True),
    ("ISBLANK(name)", False),
    ("ISBLANK(tags)", False),
    ("COALESCE(signed_on, close_date)", date(2024, 3, 31)),
    ("COALESCE(discount, 0)", 0),
    ("COALESCE(nickname, name)", ""),
    ("BLANKVALUE(nickname, name)", "ACME"),
    ("BLANKVALUE(discount, 5)", 5),
    ("ROUND(2.5)", Decimal("3")),
    ("ROUND(-2.5)", Decimal("-3")),
    ("ROUND(amount / 7, 2)", Decimal("171.50")),
    ("ROUND(1.005, 2)", Decimal("1.01")),
    ("ROUND(1234, -2)", 1200),
    ("ROUND(1250.5, -2)", Decimal("1300")),
    ("ROUND(qty)", 3),
    ("ROUNDUP(1.21, 1)", Decimal("1.3")),
    ("ROUNDUP(-1.21, 1)", Decimal("-1.3")),
    ("ROUNDDOWN(1.29, 1)", Decimal("1.2")),
    ("ABS(-3)", 3),
    ("ABS(-2.5)", Decimal("2.5")),
    ("MOD(-7, 3)", 2),
    ("MOD(7.5, 2)", Decimal("1.5")),
    ("POWER(2, 10)", 1024),
    ("POWER(2, -2)", Decimal("0.25")),
    ("POWER(1.1, 2)", Decimal("1.21")),
    ("SQRT(16)", Decimal("4")),
    ("CONCAT(name, '-', qty, '-', amount)", "ACME-3-1200.50"),
    ("CONCAT(discount, close_date, vip)", "2024-03-31TRUE"),
    ("CONCAT(tags)", "vip, north"),
    ("LEN(客户名称)", 2),
    ("LEN(None)", 0),
    ("LEN(nickname)", 0),
    ("LEN(tags)", 2),
    ("LEFT(name, 2)", "AC"),
    ("LEFT(name)", "A"),
    ("RIGHT(name, 3)", "CME"),
    ("RIGHT(name, 0)", ""),
    ("MID(name, 2, 2)", "CM"),
    ("UPPER('abc')", "ABC"),
    ("LOWER(name)", "acme"),
    ("TRIM('  a   b\u3000 c  ')", "a b c"),
    ("CONTAINS(name, 'CM')", True),
    ("CONTAINS(tags, 'north')", True),
    ("CONTAINS(tags, 'south')", False),
    ("CONTAINS(None, 'a')", False),
    ("REPLACE(name, 'C', 'cc')", "AccME"),
    ("REPLACE(name, '', 'x')", "ACME"),
    ("TEXT(amount)", "1200.50"),
    ("TEXT(amount, '#,##0.00')", "1,200.50"),
    ("TEXT(1234567.891, '#,##0')", "1,234,568"),
    ("TEXT(0.256, '0.0%')", "25.6%"),
    ("TEXT(qty, '0.00')", "3.00"),
    ("TEXT(close_date, 'yyyy年mm月dd日')", "2024年03月31日"),
    ("TEXT(created_at, 'yyyy-mm-dd hh:mm')", "2024-01-01 02:30"),
    ("TEXT(created_at)", "2024-01-01 02:30:00"),
    ("TEXT(vip)", "TRUE"),
    ("VALUE('1,234.50')", Decimal("1234.50")),
    ("VALUE(' 42 ')", 42),
    ("VALUE('12.5%')", Decimal("0.125")),
    ("TODAY()", date(2024, 6, 1)),
    ("NOW()", datetime(2024, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=8)))),
    ("DATE(2024, 2, 29)", date(2024, 2, 29)),
    ("YEAR(created_at)", 2024),
    ("MONTH(created_at)", 1),
    ("DAY(close_date)", 31),
    ("WEEKDAY(close_date)", 7),
    ("WEEKDAY(DATE(2024, 4, 1))", 1),
    ("DATEDIF(close_date, TODAY(), 'D')", 62),
    ("DATEDIF(close_date, TODAY(), 'M')", 2),
    ("DATEDIF(DATE(2020, 2, 29), TODAY(), 'Y')", 4),
    ("DAYS(TODAY(), close_date)", 62),
    ("DAYS(close_date, TODAY())", -62),
    ("HOURS(NOW(), created_at)", Decimal("3646.5")),  # 152 days less 1.5 hours
    ("HOURS(created_at, close_date)", Decimal("-2157.5")),  # from midnight in Shanghai
    ("HOURS(TODAY(), close_date)", 1488),  # whole hours stay whole
    ("HOURS(signed_on, TODAY())", None),
    ("ADD_DAYS(close_date, 1)", date(2024, 4, 1)),
    ("ADD_DAYS(close_date, -31.9)", date(2024, 2, 29)),
    ("ADD_DAYS(created_at, 1)", datetime(2024, 1, 1, 18, 30, tzinfo=UTC)),
    ("ADD_MONTHS(close_date, 1)", date(2024, 4, 30)),
    ("ADD_MONTHS(DATE(2024, 1, 31), 1)", date(2024, 2, 29)),
    ("ADD_MONTHS(close_date, -15)", date(2022, 12, 31)),
    ("NETWORKDAYS(DATE(2024, 1, 1), DATE(2024, 1, 31))", 23),
    ("NETWORKDAYS(DATE(2024, 1, 1), DATE(2024, 1, 31), holidays)", 22),
    ("NETWORKDAYS(DATE(2024, 1, 31), DATE(2024, 1, 1))", -23),
    ("NETWORKDAYS(DATE(2024, 1, 6), DATE(2024, 1, 7))", 0),
    ("NETWORKDAYS(signed_on, TODAY())", None),
    ("CHOOSE(2, 'a', 'b', 'c')", "b"),
    ("CHOOSE_BY(stage, {'lead': 10, 'proposal': 60, 'won': 100})", 60),
    ("CHOOSE_BY('lost', {'lead': 10, 'won': 100})", None),
    ("CHOOSE_BY('lost', {'lead': 10, 'won': 100}, 0)", 0),
    ("CHOOSE_BY(qty, {1: 'one', 3: 'three'})", "three"),
    ("CHOOSE_BY(stage, {'proposal': amount * 2, 'won': amount})", Decimal("2401.00")),
    ("SWITCH(stage, 'lead', 1, 'proposal', 2, 0)", 2),
    ("SWITCH(stage, 'lead', 1, 0)", 0),
    ("SWITCH(stage, 'lead', 1)", None),
    ("SWITCH(discount, 1, 'one', 'other')", "other"),
]


@pytest.mark.parametrize(("source", "expected"), FUNCTION_CASES)
def test_functions(source: str, expected: Any) -> None:
    result = run(source)
    assert result == expected
    assert type(result) is type(expected)


def test_hours_count_real_hours_across_a_daylight_saving_change() -> None:
    new_york = ZoneInfo("America/New_York")  # clocks went forward on 2024-03-10
    assert run("HOURS(DATE(2024, 3, 11), DATE(2024, 3, 10))", tz=new_york) == 23
    assert run("HOURS(DATE(2024, 3, 11), DATE(2024, 3, 10))") == 24  # Shanghai: no change


def test_function_names_are_case_insensitive() -> None:
    assert run("round(amount, 0)") == Decimal("1201")


def test_leading_equals_marks_a_formula() -> None:
    assert run("=TODAY()") == date(2024, 6, 1)
    assert run("  =qty + 1") == 4


def test_multi_line_formula() -> None:
    source = "IFS(\n  amount > 5000, 'A',\n  amount > 1000, 'B',\n  True, 'C'\n)"
    assert run(source) == "B"
    assert run("qty +\n  1") == 4


def test_comments_are_allowed() -> None:
    assert run("qty * 2  # don't forget (the tax\n + 1") == 7


def test_business_timezone_is_injectable() -> None:
    assert run("TODAY()", tz=UTC) == date(2024, 5, 31)
    assert run("YEAR(created_at)", tz=UTC) == 2023


def test_user_and_role() -> None:
    assert run("CURRENT_USER()", user="alice") == "alice"
    assert run("CURRENT_ROLE() == 'sales_rep'", role="sales_rep") is True
    assert run("CURRENT_USER()") is None


# -- warnings: blank + warning instead of a crash ------------------------------

WARNING_CASES: list[tuple[str, str]] = [
    ("1 / 0", "division by zero; the result is left blank"),
    ("amount / (qty - 3)", "division by zero; the result is left blank"),
    ("qty % 0", "division by zero; the result is left blank"),
    ("MOD(qty, 0)", "division by zero; the result is left blank"),
    ("SQRT(-1)", "a negative number has no square root; the result is left blank"),
    ("POWER(-8, 0.5)", "POWER has no real result; the result is left blank"),
    ("POWER(0, -1)", "division by zero; the result is left blank"),
    ("DATE(2023, 2, 29)", "there is no such date; the result is left blank"),
    ("VALUE('abc')", "cannot read 'abc' as a number; the result is left blank"),
    ("VALUE('NaN')", "cannot read 'NaN' as a number; the result is left blank"),
    ("LEFT(name, -1)", "a character count cannot be negative; the result is left blank"),
    ("MID(name, 0, 1)", "start must be 1 or more; the result is left blank"),
    ("CHOOSE(4, 'a', 'b')", "CHOOSE index out of range; the result is left blank"),
    ("DATEDIF(TODAY(), close_date, 'D')", "DATEDIF start is after end; the result is left blank"),
    ("DATEDIF(close_date, TODAY(), 'W')", "DATEDIF unit 'W' is not D, M or Y"),
    ("ADD_DAYS(close_date, 9999999)", "date out of range; the result is left blank"),
    ("ADD_MONTHS(close_date, 120000)", "date out of range; the result is left blank"),
]


@pytest.mark.parametrize(("source", "warning"), WARNING_CASES)
def test_domain_errors_give_blank_and_a_bilingual_warning(source: str, warning: str) -> None:
    context = ctx()
    assert compile_formula(source, SCOPE).evaluate(context) is None
    assert [w.get("en") for w in context.warnings] == [warning]
    assert context.warnings[0].get("zh")
    assert context.warnings[0].get("zh") != warning


def test_if_is_lazy_so_guarded_division_does_not_warn() -> None:
    context = ctx({"discount": 0})
    f = compile_formula("IF(discount != 0, amount / discount, 0)", SCOPE)
    assert f.evaluate(context) == 0
    assert context.warnings == []


# -- numbers never become floats -------------------------------------------------


def test_float_inputs_become_decimals() -> None:
    assert run("amount * 3", {"amount": 0.1}) == Decimal("0.3")
    assert run("amount", {"amount": 2.675}) == Decimal("2.675")
    assert run("SUM(lines.price)", tables={"lines": [{"price": 0.1}, {"price": 0.2}]}) == Decimal(
        "0.3"
    )


def test_decimal_results_ignore_the_thread_decimal_context() -> None:
    import decimal

    with decimal.localcontext() as local:
        local.prec = 3
        assert run("1 / 3") == Decimal("0.3333333333333333333333333333333333")
        assert run("amount * 1.5") == Decimal("1800.750")


def test_non_finite_inputs_are_errors() -> None:
    with pytest.raises(ExpressionError, match="finite"):
        run("amount * 2", {"amount": float("inf")})
    with pytest.raises(ExpressionError, match="not a finite number"):
        run("amount + 1", {"amount": Decimal("NaN")})


# -- static checking ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("amount", NUMBER),
        ("name", TEXT),
        ("vip", BOOL),
        ("close_date", DATE),
        ("NOW()", DATETIME),
        ("tags", list_of(TEXT)),
        ("None", NULL),
        ("IF(vip, amount, None)", NUMBER),
        ("COALESCE(discount, 0)", NUMBER),
        ("[1, 2.5]", list_of(NUMBER)),
        ("ADD_DAYS(created_at, 1)", DATETIME),
        ("MAX(lines.product)", TEXT),
        ("PRIORVALUE(amount)", NUMBER),
    ],
)
def test_types(source: str, expected: Type) -> None:
    scope = Scope(FIELDS, TABLES, allow_changes=True)
    assert compile_formula(source, scope).type == expected


def test_type_names_are_analyst_friendly() -> None:
    assert [str(t) for t in (NUMBER, TEXT, BOOL, DATE, DATETIME, NULL, ANY, MAP)] == [
        "number",
        "text",
        "true/false",
        "date",
        "date-time",
        "blank",
        "any value",
        "map",
    ]
    assert str(list_of(NUMBER)) == "list of number"
    assert list_of(TEXT).label.get("zh") == "文本列表"
    assert list_of(NUMBER) == list_of(NUMBER)
    assert hash(list_of(NUMBER)) == hash(list_of(NUMBER))


@pytest.mark.parametrize(
    ("source", "message", "offset", "hint"),
    [
        ("amout * 2", "unknown field 'amout'", (0, 0), "did you mean 'amount'?"),
        ("qty +\n  amout", "unknown field 'amout'", (1, 2), "did you mean 'amount'?"),
        ("SUMM(qty)", "unknown function 'SUMM'", (0, 0), "did you mean 'SUM'?"),
        (
            "ROUND(qty, 2) + ROUNDD(qty)",
            "unknown function 'ROUNDD'",
            (0, 16),
            "did you mean 'ROUND'?",
        ),
        ("amount + name", "cannot add number and text", (0, 7), "to join text use CONCAT"),
        ("金额 + 客户名称", "cannot add number and text", (0, 3), "to join text use CONCAT"),
        ("name * 3", "cannot multiply text and number", (0, 5), "text cannot be used"),
        ("close_date + 1", "cannot add date and number", (0, 11), "ADD_DAYS"),
        ("close_date - signed_on", "cannot subtract date and date", (0, 11), "DAYS(end, start)"),
        ("amount == '10'", "cannot compare number with text using ==", (0, 7), "without quotes"),
        ("close_date < NOW()", "cannot compare date with date-time using <", (0, 11), "TODAY()"),
        ("vip > active", "cannot compare true/false with true/false using >", (0, 4), "no order"),
        ("IF(qty, 1, 2)", "IF: argument 'condition' must be true/false, got number", (0, 3), ""),
        ("IF(vip, 1, 'a')", "IF: the results have different types: number and text", (0, 11), ""),
        ("'a' if vip else 2", "the two branches have different types: text and number", (0, 0), ""),
        (
            "ROUND()",
            "ROUND takes 1 to 2 argument(s), got 0",
            (0, 0),
            "usage: ROUND(number, [digits])",
        ),
        ("TODAY(1)", "TODAY takes 0 argument(s), got 1", (0, 0), "usage: TODAY()"),
        ("IFS(vip, 1, active)", "IFS: IFS takes pairs: condition, value, ...", (0, 12), ""),
        ("not qty", "not needs a true/false condition, this is number", (0, 4), ""),
        ("qty and vip", "and/or needs a true/false condition, this is number", (0, 0), ""),
        ("-name", "a sign applies to numbers, not text", (0, 0), ""),
        ("stage in 'abc'", "the right side of in must be a list", (0, 9), "CONTAINS"),
        ("qty in ['a']", "cannot compare number with text using in", (0, 8), ""),
        ("stage in ['a', None]", "None cannot be in an in-list; use ISBLANK", (0, 15), ""),
        ("stage is 'a'", "use == to compare; is only works with None", (0, 9), ""),
        ("lines.qty * 2", "can only be used inside an aggregate", (0, 0), ""),
        ("lines", "the child table 'lines' can only be used as lines.column", (0, 0), "lines.qty"),
        (
            "SUM(lines.qtty)",
            "the child table 'lines' has no column 'qtty'",
            (0, 4),
            "did you mean 'qty'?",
        ),
        ("SUM(SUM(lines.qty))", "SUM cannot be nested inside another aggregate", (0, 4), ""),
        (
            "SUM(lines.qty, qty)",
            "SUM takes 1 per-row argument(s) here, got 2",
            (0, 0),
            "SUM(lines.qty",
        ),
        ("COUNTIF(vip)", "COUNTIF needs child-table columns", (0, 0), ""),
        ("SUM(name)", "SUM: argument 'values' must be number, got text", (0, 4), ""),
        ("TODAY", "'TODAY' is a function; call it: TODAY(...)", (0, 0), ""),
        ("amount(1)", "'amount' is a field, not a function", (0, 0), ""),
        ("ROUND(number=qty)", "named arguments (name=value) are not allowed", (0, 13), ""),
        ("qty, amount", "a formula has one value (a stray comma?)", (0, 0), ""),
        ("{'a': 1}", "a {...} map is only allowed as the second argument of CHOOSE_BY", (0, 0), ""),
        ("CHOOSE_BY(stage, {'a': 1, 'a': 2})", "the map key 'a' appears twice", (0, 26), ""),
        ("CHOOSE_BY(stage, {1: 1})", "the map key 1 does not match the lookup value", (0, 17), ""),
        ("CHOOSE_BY(stage, {'a': 1}, 'x')", "the default is text", (0, 27), ""),
        ("CHOOSE_BY(stage, {name: 1})", "map keys must be constants", (0, 18), ""),
        ("SWITCH(stage, 1, 'x')", "the match value is number", (0, 14), ""),
        ("ISCHANGED(amount)", "ISCHANGED can only be used in rules and automations", (0, 0), ""),
        ("qty +", "syntax error: invalid syntax", (0, 5), ""),
        ("ROUND(qty", "syntax error: a bracket is not closed", (0, 0), ""),
        ("qty)", "brackets do not match", (0, 3), ""),
        ("ROUND（qty)", "brackets do not match", (0, 9), "half-width"),
        ("ROUND（qty）", "syntax error", (0, 5), "'(' instead of '（'"),
        ("'abc", "syntax error: a text literal is missing its closing quote", (0, 0), ""),
        ("", "the formula is empty", (0, 0), ""),
        ("   ", "the formula is empty", (0, 0), ""),
        ("qty ** 2", "** is not supported; use POWER(x, n)", (0, 4), ""),
        ("qty // 2", "// is not supported", (0, 4), ""),
        ("name & 'x'", "& is not supported; join text with CONCAT or +", (0, 5), ""),
        ("1000000000000000000000000000000", "number too large", (0, 0), ""),
    ],
)
def test_check_errors(source: str, message: str, offset: tuple[int, int], hint: str) -> None:
    exc = error(source)
    assert message in exc.text.get("en")
    assert exc.text.get("zh") and exc.text.get("zh") != exc.text.get("en")
    assert exc.offset == offset
    assert hint in exc.hint.get("en")
    assert exc.source == source


def test_unknown_field_without_a_close_match_lists_the_fields() -> None:
    exc = error("zzz", Scope({"amount": NUMBER, "name": TEXT}))
    assert exc.hint.get("en") == "available: amount, name"


def test_expect() -> None:
    assert compile_formula("amount > 0", SCOPE, expect=BOOL).type == BOOL
    assert compile_formula("None", SCOPE, expect=BOOL).type == NULL
    assert compile_formula("qty", SCOPE, expect=ANY).type == NUMBER
    exc = error("amount * 2", expect=BOOL)
    assert exc.text.get("en") == "this must be true/false, but the formula gives number"
    exc = error("name", expect=NUMBER)
    assert exc.text.get("en") == "this needs number, but the formula gives text"
    assert error("TODAY()", expect=DATETIME).text.get("en").endswith("gives date")


def test_reads_are_reported_for_the_dependency_graph() -> None:
    f = compile_formula("IF(vip, SUM(lines.qty * lines.price), ROUND(amount, 2))", SCOPE)
    assert f.names == {"vip", "amount"}
    assert f.tables == {"lines"}
    assert f.functions == {"IF", "SUM", "ROUND"}
    assert f.source == "IF(vip, SUM(lines.qty * lines.price), ROUND(amount, 2))"
    changes = compile_formula("ISCHANGED(stage)", Scope(FIELDS, allow_changes=True))
    assert changes.names == {"stage"}


def test_aliases_yield_to_fields() -> None:
    assert run("true") is True
    scope = Scope({"blank": NUMBER})
    assert compile_formula("blank + 1", scope).evaluate(EvalContext({"blank": 1})) == 2


def test_nfkc_normalised_identifiers_still_resolve() -> None:
    # Python normalises identifiers (NFKC): a full-width field name still matches.
    scope = Scope({"ａｍｏｕｎｔ": NUMBER})
    f = compile_formula("ａｍｏｕｎｔ * 2", scope)
    assert f.names == {"ａｍｏｕｎｔ"}
    assert f.evaluate(EvalContext({"ａｍｏｕｎｔ": 4})) == 8


# -- changes ------------------------------------------------------------------


def test_ischanged_and_priorvalue() -> None:
    scope = Scope(FIELDS, allow_changes=True)
    changed = compile_formula("ISCHANGED(stage) and stage == 'won'", scope)
    prior = compile_formula("PRIORVALUE(amount)", scope)
    update = EvalContext({"stage": "won", "amount": 5}, prior={"stage": "lead", "amount": 3.5})
    assert changed.evaluate(update) is True
    assert prior.evaluate(update) == Decimal("3.5")
    create = EvalContext({"stage": "won", "amount": 5})
    assert changed.evaluate(create) is False
    assert prior.evaluate(create) is None
    same = EvalContext({"stage": "won"}, prior={"stage": "won"})
    assert changed.evaluate(same) is False
    exc = error("ISCHANGED(amount + 1)", Scope(FIELDS, allow_changes=True))
    assert exc.text.get("en") == "the argument of ISCHANGED must be a field name"


# -- KPI measures -------------------------------------------------------------

KPI = Scope({"stage": TEXT, "amount": NUMBER, "owner": TEXT, "signed_on": DATE}, aggregate=True)
DEALS: list[dict[str, Any]] = [
    {"stage": "won", "amount": Decimal("100.00"), "owner": "a", "signed_on": date(2024, 1, 5)},
    {"stage": "won", "amount": 50, "owner": "b", "signed_on": date(2024, 2, 1)},
    {"stage": "lost", "amount": Decimal("70.5"), "owner": "a", "signed_on": None},
    {"stage": "lead", "amount": None, "owner": "c", "signed_on": None},
]


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        ("SUM(amount)", Decimal("220.50")),
        ("COUNT()", 4),
        ("COUNT(amount)", 3),
        ("COUNT(stage == 'won')", 2),
        (
            "COUNT(stage == 'won') / COUNT(stage in ['won', 'lost'])",
            Decimal("0.6666666666666666666666666666666667"),
        ),
        ("ROUND(COUNT(stage == 'won') / COUNT(), 2)", Decimal("0.50")),
        ("AVG(amount)", Decimal("73.5")),
        ("AVERAGE(amount)", Decimal("73.5")),
        ("MIN(amount)", 50),
        ("MAX(signed_on)", date(2024, 2, 1)),
        ("COUNT_DISTINCT(owner)", 3),
        ("SUMIF(stage == 'won', amount)", Decimal("150.00")),
        ("COUNTIF(amount > 60)", 2),
        ("SUM(IF(stage == 'won', amount, 0)) - SUM(amount) * 0.5", Decimal("39.750")),
        ("SUM(amount * 2) + COUNT()", Decimal("445.00")),
    ],
)
def test_kpi_measures(measure: str, expected: Any) -> None:
    f = compile_formula(measure, KPI)
    result = f.evaluate_rows(DEALS, EvalContext({}))
    assert result == expected
    assert type(result) is type(expected)


def test_kpi_over_no_rows() -> None:
    results = [
        compile_formula(m, KPI).evaluate_rows([], EvalContext({}))
        for m in ("SUM(amount)", "COUNT()", "AVG(amount)", "MAX(amount)", "COUNT(stage == 'x')")
    ]
    assert results == [0, 0, None, None, 0]


def test_kpi_ratio_division_by_zero_is_blank_with_warning() -> None:
    context = EvalContext({})
    f = compile_formula("COUNT(stage == 'won') / COUNT(stage == 'x')", KPI)
    assert f.evaluate_rows(DEALS, context) is None
    assert [w.get("en") for w in context.warnings] == ["division by zero; the result is left blank"]


@pytest.mark.parametrize(
    ("measure", "message"),
    [
        ("amount", "in a KPI measure the field 'amount' must be inside an aggregate"),
        ("SUM(amount) + amount", "must be inside an aggregate"),
        ("SUM(amount, amount)", "SUM takes 1 per-row argument(s) here, got 2"),
        ("SUM(SUM(amount))", "SUM cannot be nested inside another aggregate"),
        ("SUMIF(amount)", "SUMIF takes 2 per-row argument(s) here, got 1"),
    ],
)
def test_kpi_errors(measure: str, message: str) -> None:
    assert message in error(measure, KPI).text.get("en")


def test_evaluate_and_evaluate_rows_are_not_interchangeable() -> None:
    with pytest.raises(ExpressionError, match="use evaluate_rows"):
        compile_formula("SUM(amount)", KPI).evaluate(EvalContext({}))
    with pytest.raises(ExpressionError, match="only KPI measures"):
        compile_formula("amount", SCOPE).evaluate_rows([], EvalContext({}))


# -- the registry ---------------------------------------------------------------


def test_builtins_are_registered_with_bilingual_docs() -> None:
    required = [
        "IF",
        "IFS",
        "AND",
        "OR",
        "NOT",
        "XOR",
        "ISBLANK",
        "COALESCE",
        "BLANKVALUE",
        "SUM",
        "AVERAGE",
        "MIN",
        "MAX",
        "COUNT",
        "COUNTIF",
        "SUMIF",
        "ROUND",
        "ROUNDUP",
        "ROUNDDOWN",
        "ABS",
        "MOD",
        "POWER",
        "SQRT",
        "CONCAT",
        "LEN",
        "LEFT",
        "RIGHT",
        "MID",
        "UPPER",
        "LOWER",
        "TRIM",
        "CONTAINS",
        "REPLACE",
        "TEXT",
        "VALUE",
        "TODAY",
        "NOW",
        "DATE",
        "YEAR",
        "MONTH",
        "DAY",
        "WEEKDAY",
        "DATEDIF",
        "DAYS",
        "ADD_DAYS",
        "ADD_MONTHS",
        "NETWORKDAYS",
        "CURRENT_USER",
        "CURRENT_ROLE",
        "ISCHANGED",
        "PRIORVALUE",
        "CHOOSE",
        "SWITCH",
        "CHOOSE_BY",
        "AVG",
        "COUNT_DISTINCT",
    ]
    assert sorted(set(required) - set(FUNCTIONS)) == []
    for spec in FUNCTIONS.values():
        assert spec.doc.zh and spec.doc.en and spec.example, spec.name
        assert spec.signature.startswith(spec.name + "(")


def test_an_extension_registers_like_a_builtin() -> None:
    @formula_function(
        "TEST_DOUBLE",
        "test",
        ("加倍", "Double it"),
        params=(Param("number", (NUMBER,)),),
        returns=NUMBER,
    )
    def double(value: Any) -> Any:
        if value < 0:
            raise BlankResult(FUNCTIONS["SQRT"].doc)
        return value * 2

    try:
        f = compile_formula("TEST_DOUBLE(qty) + 1", SCOPE)
        assert f.evaluate(ctx()) == 7
        assert f.evaluate(ctx({"qty": None})) is None
        context = ctx({"qty": -1})
        assert f.evaluate(context) is None
        assert len(context.warnings) == 1
        assert "TEST_DOUBLE: argument 'number' must be number" in error(
            "TEST_DOUBLE(name)"
        ).text.get("en")
        with pytest.raises(ValueError, match="already registered"):
            register_function(FUNCTIONS["TEST_DOUBLE"])
    finally:
        del FUNCTIONS["TEST_DOUBLE"]


def test_registration_is_validated() -> None:
    spec = FunctionSpec(name="lower_case", category="x", doc=FUNCTIONS["IF"].doc, impl=abs)
    with pytest.raises(ValueError, match="upper-case"):
        register_function(spec)
    with pytest.raises(ValueError, match="exactly one"):
        register_function(FunctionSpec(name="NOTHING", category="x", doc=FUNCTIONS["IF"].doc))


def test_an_extension_error_inside_impl_is_an_expression_error() -> None:
    @formula_function("TEST_BROKEN", "test", ("坏", "Broken"), returns=NUMBER)
    def broken() -> Any:
        missing: dict[str, int] = {}
        return missing["key"]

    try:
        with pytest.raises(ExpressionError, match=r"TEST_BROKEN failed \(KeyError\)") as info:
            run("1 + TEST_BROKEN()")
        assert info.value.offset == (0, 4)
    finally:
        del FUNCTIONS["TEST_BROKEN"]


def test_compiled_repr_and_reuse() -> None:
    f: Compiled = compile_formula("qty * 2", SCOPE)
    assert repr(f) == "Compiled('qty * 2', type=number)"
    assert [f.evaluate(EvalContext({"qty": n})) for n in (1, 2, None)] == [2, 4, None]


@pytest.mark.parametrize(
    "source",
    [
        "amount * probability / 100",
        "amount / probability",  # division by zero: blank and a warning
        "IF(stage == 'won', amount, 0) + SUM(lines.qty)",
        "LEN(name) > 3 and stage != 'lost'",
        "amount * amount * amount * amount",  # too large for some records
    ],
)
def test_evaluate_many_gives_what_evaluate_gives_per_record(source: str) -> None:
    formula = compile_formula(source, SCOPE)
    records = [
        {**RECORD, "amount": Decimal("1200.50"), "probability": 60},
        {**RECORD, "amount": None, "stage": "won"},
        {**RECORD, "probability": 0, "name": "AB"},
        {**RECORD, "amount": Decimal("9" * 9), "stage": "lost"},
        {**RECORD, "amount": 3, "probability": 4.5},
    ]
    expected: list[Any] = []
    failures: dict[int, str] = {}
    single_warnings: list[Any] = []
    for i, record in enumerate(records):
        one = ctx(record, warnings=single_warnings)
        try:
            expected.append(formula.evaluate(one))
        except ExpressionError as exc:
            expected.append(None)
            failures[i] = exc.message("en")
    shared = ctx({}, warnings=[])
    before = shared.values
    results, errors = formula.evaluate_many(shared, records)
    assert results == expected
    assert {i: e.message("en") for i, e in errors.items()} == failures
    assert shared.warnings == single_warnings
    assert shared.values is before  # put back after the batch


@pytest.mark.parametrize(
    ("fused", "plain"),
    [
        # IF on a text field compared with a constant tests it inline, and a field
        # product divided by a constant is one closure: the same answers as the
        # general closures they replace (which ``stage + ''`` and ``amount + 0`` force).
        (
            "IF(stage != 'lost', amount * probability / 100, 0)",
            "IF(stage + '' != 'lost', (amount + 0) * probability / 100, 0)",
        ),
        (
            "IF(stage == 'won', amount - probability / 4)",
            "IF(stage + '' == 'won', amount - probability / 4)",
        ),
        (
            "IF(stage == 'won', (amount + probability) / 0.001, amount)",
            "IF(stage + '' == 'won', ((amount + 0) + probability) / 0.001, amount)",
        ),
        ("IF(stage != 'lost', qty, amount * 2)", "IF(stage + '' != 'lost', qty, amount * 2)"),
        ("(amount - qty) / 3", "((amount + 0) - qty) / 3"),
    ],
)
def test_fused_shapes_give_what_the_general_closures_give(fused: str, plain: str) -> None:
    stages = ["won", "lost", None, ""]
    numbers = [Decimal("1200.50"), None, 7, 2.5, 0, Decimal("9" * 29), Decimal("-3.333")]
    records = [
        {"stage": stage, "amount": a, "probability": p, "qty": q}
        for stage in stages
        for a in numbers
        for p in numbers
        for q in (3, None, 0.5)
    ]
    one, other = compile_formula(fused, SCOPE), compile_formula(plain, SCOPE)

    def outcome(formula: Compiled, record: dict[str, Any]) -> tuple[Any, ...]:
        warnings: list[Any] = []
        try:
            value = formula.evaluate(EvalContext(values=record, warnings=warnings))
        except ExpressionError as exc:
            return ("error", exc.message("en"))
        return (value, type(value), [w.get("en") for w in warnings])

    mismatches = [r for r in records if outcome(one, r) != outcome(other, r)]
    assert mismatches == []
    assert {outcome(one, r)[0] is None for r in records} == {True, False}  # blanks and values


def test_a_fused_division_reports_the_operator_that_overflowed() -> None:
    formula = compile_formula("IF(stage == 'won', amount * qty / 0.001, 0)", SCOPE)
    with pytest.raises(ExpressionError, match="number too large") as info:
        formula.evaluate(
            EvalContext(values={"stage": "won", "amount": Decimal("9" * 29), "qty": 10})
        )
    assert info.value.offset == (0, 19)  # the product, where both operators start
    assert formula.evaluate(EvalContext(values={"stage": "won", "amount": 3, "qty": 4})) == 12000
    assert formula.evaluate(EvalContext(values={"stage": None, "amount": 3, "qty": 4})) == 0
