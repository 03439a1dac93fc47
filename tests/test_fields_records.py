"""Kinds that point elsewhere or are computed: user, ref, file, table, formula, autonumber."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.fields import FieldValueError, autonumber, kind_of
from engine.fields.autonumber import FormatError, parse_format
from engine.fields.table import TABLE
from engine.i18n import Text
from engine.model import Field, Formula, Option


def make(kind: str, name: str = "f", **kw: Any) -> Field:
    kw.setdefault("label", Text(zh="字段", en="Field"))
    return Field(name=name, kind=kind, **kw)


def coerce(field: Field, raw: Any) -> Any:
    return kind_of(field).coerce(field, raw)


def refused(field: Field, raw: Any) -> FieldValueError:
    with pytest.raises(FieldValueError) as info:
        coerce(field, raw)
    return info.value


def check(field: Field) -> list[tuple[str, str]]:
    return [(p.message.en or "", p.hint.en or "") for p in kind_of(field).check(field)]


# -- user --------------------------------------------------------------------------------


def test_user_is_a_name() -> None:
    field = make("user")
    assert coerce(field, " zhang.san ") == "zhang.san"
    assert coerce(field, "张三") == "张三"
    assert coerce(field, {"name": "li", "display": "Li Si"}) == "li"
    assert refused(field, "x" * 151).text.en == "must be at most 150 characters (got 151)"
    assert kind_of(field).display(field, "zhang.san", "en") == "zhang.san"


# -- ref ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [12, "12", " 12 ", "+12", 12.0, {"id": 12, "title": "ACME"}])
def test_ref_accepts_ids(raw: Any) -> None:
    assert coerce(make("ref", to="customer"), raw) == 12


def test_ref_refuses_non_ids() -> None:
    field = make("ref", to="customer")
    for raw in ("1.5", 1.5, "abc", 0, "0", -1, 2**63, "99999999999999999999", [1]):
        assert refused(field, raw).text.get("en").startswith("not a valid record id: ")
    assert kind_of(field).validate(field, -1) == [
        Text(zh="不是有效的记录编号：-1", en="not a valid record id: -1")
    ]


def test_ref_definition_checks() -> None:
    assert check(make("ref")) == [
        ("a ref field needs `to:` (the entity it points at)", "for example to: customer")
    ]
    assert check(make("ref", to="customer", on_delete="setnull")) == [
        ("invalid on_delete: setnull", "did you mean set_null?")
    ]
    assert check(make("ref", to="customer", on_delete="set_null", required=True)) == [
        (
            "a required reference cannot be cleared when its target is deleted "
            "(on_delete: set_null)",
            "use restrict or cascade, or make it optional",
        )
    ]
    assert check(make("ref", to="customer", on_delete="cascade")) == []


def test_ref_display() -> None:
    field = make("ref", to="customer")
    assert kind_of(field).display(field, 12, "zh") == "#12"


# -- file --------------------------------------------------------------------------------


def test_file_key() -> None:
    field = make("file", accept=("pdf", ".DOCX"))
    assert coerce(field, "2026/11/ab12/合同.pdf") == "2026/11/ab12/合同.pdf"
    assert coerce(field, {"key": "a/b.pdf", "size": 10}) == "a/b.pdf"
    kind = kind_of(field)
    assert kind.validate(field, "a/b.PDF") == []
    assert kind.validate(field, "a/b.docx") == []
    assert kind.validate(field, "a/b.exe") == [
        Text(
            zh="不允许的文件类型（允许：docx, pdf）",
            en="file type not allowed (allowed: docx, pdf)",
        )
    ]
    assert kind.validate(field, "a/noextension") == [
        Text(
            zh="不允许的文件类型（允许：docx, pdf）",
            en="file type not allowed (allowed: docx, pdf)",
        )
    ]
    assert kind.display(field, "2026/11/ab12/合同.pdf", "zh") == "合同.pdf"


def test_file_definition_checks() -> None:
    assert check(make("file", max_size_mb=0)) == [
        (
            "max_size_mb must be above 0 and at most 1024: 0",
            "give a size in MB, e.g. max_size_mb: 20",
        )
    ]
    assert check(make("file", accept=("pdf", "p d f", ".PDF"))) == [
        ("invalid extension in accept: p d f", "write it as pdf or .pdf"),
        ("'pdf' appears twice in accept", "remove the duplicate"),
    ]
    assert check(make("file", max_size_mb=20, accept=("pdf",))) == []


# -- table -------------------------------------------------------------------------------

LINES = make(
    "table",
    name="lines",
    fields={
        "product": make("text", name="product", label=Text(zh="产品", en="Product"), required=True),
        "qty": make("integer", name="qty", label=Text(zh="数量", en="Qty"), min=1),
        "price": make("money", name="price", label=Text(zh="单价", en="Price")),
        "subtotal": make(
            "money",
            name="subtotal",
            label=Text(zh="小计", en="Subtotal"),
            formula=Formula("qty * price"),
        ),
    },
    min_rows=1,
    max_rows=3,
)


def test_table_coerces_each_cell_and_drops_blank_rows() -> None:
    rows = coerce(
        LINES,
        [
            {"product": " A ", "qty": "2", "price": "9.5", "subtotal": "999"},
            {"product": "", "qty": None},
            {"id": "7", "product": "B", "qty": 1},
        ],
    )
    assert rows == [
        {"product": "A", "qty": 2, "price": Decimal("9.50")},
        {"id": 7, "product": "B", "qty": 1},
    ]


def test_table_accepts_a_json_string() -> None:
    assert coerce(LINES, '[{"product": "A", "qty": 1}]') == [{"product": "A", "qty": 1}]


def test_table_errors_name_row_and_column() -> None:
    error = refused(LINES, [{"product": "A", "qty": 1.5}, {"qty": "x", "colour": "red"}])
    assert error.text.en == (
        "row 1, Qty: not a whole number: 1.5; row 2, colour: no such column: colour; "
        "row 2, Qty: not a valid number: x"
    )
    assert error.text.zh == (
        "第 1 行「数量」：不是整数：1.5；第 2 行「colour」：没有这一列：colour；"
        "第 2 行「数量」：不是有效的数字：x"
    )
    assert sorted(error.cells) == [(0, "qty"), (1, "colour"), (1, "qty")]
    assert error.cells[(0, "qty")] == [Text(zh="不是整数：1.5", en="not a whole number: 1.5")]


def test_table_error_summary_is_short() -> None:
    error = refused(LINES, [{"qty": "x"}] * 5)
    assert error.text.get("en").endswith(" (and 2 more)")
    assert len(error.cells) == 5


def test_table_refuses_too_many_rows_before_looking_at_them() -> None:
    assert refused(LINES, [{}] * 1001).text.en == "too many rows (at most 1000): 1001"
    assert refused(LINES, ["x"]).text.en == "row 1: expected a set of fields: x"


def test_table_validate() -> None:
    kind = kind_of(LINES)
    assert kind.validate(LINES, [{"product": "A", "qty": 1}]) == []
    assert [m.en for m in kind.validate(LINES, [{"qty": 0}])] == [
        "row 1, Product: is required",
        "row 1, Qty: must be at least 1",
    ]
    four = [{"product": "A"}] * 4
    assert [m.en for m in kind.validate(LINES, four)] == ["at most 3 rows allowed (got 4)"]
    assert [m.zh for m in kind.validate(LINES, [])] == ["至少需要 1 行（现有 0 行）"]
    assert TABLE.cell_messages(LINES, [{"qty": 0, "product": "A"}]) == {
        (0, "qty"): [Text(zh="不能小于 1", en="must be at least 1")]
    }


def test_table_json_storage_and_display() -> None:
    kind = kind_of(LINES)
    rows = [{"id": 3, "product": "A", "qty": 2, "price": Decimal("9.50")}]
    assert kind.to_json(LINES, rows) == [{"id": 3, "product": "A", "qty": 2, "price": "9.50"}]
    assert kind.from_storage(LINES, [{"id": 3, "price": 9.5, "subtotal": None}]) == [
        {"id": 3, "price": Decimal("9.50"), "subtotal": None}
    ]
    assert kind.display(LINES, rows, "zh") == "1 行"
    assert kind.display(LINES, rows, "en") == "1 row"
    assert kind.display(LINES, rows * 2, "en") == "2 rows"


def test_table_definition_checks_its_own_keys_only() -> None:
    # Child fields are checked by the caller like any other field (engine.checks walks
    # them), so a bad child is not reported twice.
    table = make(
        "table",
        fields={"qty": make("integer", name="qty", min=5, max=1)},
        min_rows=4,
        max_rows=2,
    )
    assert check(table) == [
        ("min_rows (4) is greater than max_rows (2)", "swap them or fix one of them"),
    ]
    assert check(make("table", fields={"x": make("text")}, max_rows=0)) == [
        ("max_rows cannot be 0", "remove it or give a positive number")
    ]
    assert check(make("table")) == [
        (
            "a table needs `fields:` (the fields of each row)",
            "for example fields: {product: {type: text}, qty: {type: integer}}",
        )
    ]
    assert check(make("table", fields={"x": make("text")}, max_rows=5000)) == [
        ("max_rows must be a whole number from 0 to 1000: 5000", "for example max_rows: 10")
    ]


# -- formula -----------------------------------------------------------------------------


def test_formula_follows_its_result_kind() -> None:
    money = make("formula", formula=Formula("amount * 0.1"), result="money")
    kind = kind_of(money)
    assert kind.storage_of(money) == "decimal"
    assert kind.coerce(money, 12.345 - 0.005) == Decimal("12.34")
    assert kind.display(money, Decimal("1234.5"), "zh") == "¥1,234.50"
    assert kind.to_json(money, Decimal("1.00")) == "1.00"

    flag = make("formula", formula=Formula("amount > 10"), result="boolean")
    assert kind_of(flag).storage_of(flag) == "boolean"
    assert kind_of(flag).display(flag, True, "en") == "Yes"

    when = make("formula", formula=Formula("TODAY()"), result="date")
    assert kind_of(when).storage_of(when) == "date"
    assert kind_of(when).from_storage(when, "2026-11-27").isoformat() == "2026-11-27"


def test_formula_without_result_is_decimal() -> None:
    field = make("formula", formula=Formula("1 / 3"))
    assert kind_of(field).storage_of(field) == "decimal"
    assert kind_of(field).coerce(field, "0.50") == Decimal("0.50")


def test_formula_definition_checks() -> None:
    assert check(make("formula")) == [
        ("a formula field needs `formula:`", 'for example formula: "amount * 0.1"')
    ]
    assert check(make("formula", formula=Formula("1"), result="mony")) == [
        ("result is not a kind a formula can produce: mony", "did you mean money?")
    ]
    assert check(make("formula", formula=Formula("1"), result="table")) == [
        (
            "result is not a kind a formula can produce: table",
            "use one of: boolean, date, datetime, decimal, integer, money, percent, text",
        )
    ]
    assert check(make("formula", formula=Formula("1"), result="number")) == []


def test_computed_kinds_are_not_user_editable() -> None:
    for field in (make("formula", formula=Formula("1")), make("autonumber", format="{SEQ}")):
        assert not kind_of(field).user_editable
        assert not kind_of(field).editable(field)


# -- autonumber --------------------------------------------------------------------------

OPP = make("autonumber", format="OPP-{YYYY}{MM}-{SEQ:4}")
NOV = datetime(2026, 11, 27, 10, 0)


def test_render_and_sequence_key() -> None:
    assert autonumber.render(OPP, 7, NOV) == "OPP-202611-0007"
    assert autonumber.render(OPP, 123456, NOV) == "OPP-202611-123456"  # never cut
    assert autonumber.sequence_key(OPP, NOV) == "OPP-202611-"
    assert autonumber.sequence_key(OPP, datetime(2026, 12, 1)) == "OPP-202612-"


def test_now_is_read_as_given() -> None:
    # 2026-11-30 20:00 UTC is already December 1st in Shanghai: the caller localises.
    late = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    assert autonumber.sequence_key(OPP, late) == "OPP-202611-"
    assert autonumber.sequence_key(OPP, late.astimezone(ZoneInfo("Asia/Shanghai"))) == (
        "OPP-202612-"
    )


def test_all_tokens() -> None:
    field = make("autonumber", format="{YY}{MM}{DD}/{SEQ}/{YYYY}")
    assert autonumber.render(field, 5, datetime(2026, 1, 9)) == "260109/5/2026"
    assert autonumber.sequence_key(field, datetime(2026, 1, 9)) == "260109//2026"
    plain = make("autonumber", format="C{SEQ:6}")
    assert autonumber.sequence_key(plain, NOV) == "C"  # never resets
    assert autonumber.render(plain, 42, NOV) == "C000042"


def test_render_refuses_a_counter_below_one() -> None:
    for seq in (0, -1, True):
        with pytest.raises(ValueError, match="an autonumber counter starts at 1"):
            autonumber.render(OPP, seq, NOV)


@pytest.mark.parametrize(
    ("fmt", "message", "hint"),
    [
        (
            "OPP-{YYYY}",
            "the format has no {SEQ:n} (the counter)",
            "for example format: OPP-{YYYY}{MM}-{SEQ:4}",
        ),
        ("{SEQ}{SEQ:2}", "the format may contain only one {SEQ}", "keep a single {SEQ:n}"),
        (
            "{SEQ:0}",
            "{SEQ:n} needs 1 to 12 digits: {SEQ:0}",
            "for example {SEQ:4} gives 0001, 0002 …",
        ),
        (
            "{SEQ:13}",
            "{SEQ:n} needs 1 to 12 digits: {SEQ:13}",
            "for example {SEQ:4} gives 0001, 0002 …",
        ),
        ("{SEQ:x}", "unknown token in the format: {SEQ:x}", "write {SEQ} or {SEQ:4}"),
        ("{YYY}{SEQ}", "unknown token in the format: {YYY}", "did you mean {YYYY} {YY}?"),
        (
            "{yyyy}{SEQ}",
            "unknown token in the format: {yyyy}",
            "did you mean {YYYY}? (tokens are upper case)",
        ),
        (
            "{MONTH}{SEQ}",
            "unknown token in the format: {MONTH}",
            "use one of: {YYYY} {YY} {MM} {DD} {SEQ:n}",
        ),
        (
            "A{SEQ}}",
            "unbalanced brace in the format: }",
            "braces are only for {YYYY} {YY} {MM} {DD} {SEQ:n}",
        ),
        (
            "{A{SEQ}",
            "unbalanced brace in the format: {A",
            "braces are only for {YYYY} {YY} {MM} {DD} {SEQ:n}",
        ),
        ("", "the format is empty", "for example format: OPP-{YYYY}{MM}-{SEQ:4}"),
    ],
)
def test_format_errors(fmt: str, message: str, hint: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_format(fmt)
    assert info.value.text.en == message
    assert (info.value.hint.en or "") == hint
    assert check(make("autonumber", format=fmt)) == [(message, hint)]


def test_autonumber_definition_checks() -> None:
    assert check(make("autonumber")) == [
        ("an autonumber field needs `format:`", "for example format: OPP-{YYYY}{MM}-{SEQ:4}")
    ]
    # The blueprint sketch wrote `pattern:`; point at `format:`.
    assert check(make("autonumber", format="{SEQ}", pattern="OPP-{SEQ:4}")) == [
        (
            "'pattern' does not apply to autonumber fields",
            "an autonumber's format goes in `format:`, e.g. format: OPP-{YYYY}{MM}-{SEQ:4}",
        )
    ]
    assert check(OPP) == []


def test_autonumber_coerce_only_normalises_a_stored_number() -> None:
    assert coerce(OPP, " OPP-202611-0007 ") == "OPP-202611-0007"
    assert refused(OPP, ["x"]).text.en == "expected a number as text, got ['x']"
    kind = kind_of(OPP)
    assert kind.display(OPP, "OPP-202611-0007", "zh") == "OPP-202611-0007"


def test_option_fields_are_untouched_by_other_kinds() -> None:
    # A choice child in a table resolves labels like a top-level choice.
    table = make(
        "table",
        fields={"stage": make("choice", name="stage", options=(Option("won", Text(zh="赢单")),))},
    )
    assert coerce(table, [{"stage": "赢单"}]) == [{"stage": "won"}]
