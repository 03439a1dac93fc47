"""The formula kind: a value computed from the record on every write.

``result`` names the kind of the computed value (text, integer, decimal, money,
percent, date, datetime, boolean; ``decimal`` when omitted, as storage assumes).
Storage, JSON, display and the expression type all follow the result kind, so a
``{type: formula, result: money}`` field behaves like a computed money field.
Users cannot enter it: the record service ignores input for it
(``user_editable`` is False) and passes the evaluated result through
``coerce`` to normalise it (e.g. a float sum becomes a quantized Decimal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import Problem
from engine.fields.base import FieldKind, did_you_mean, show
from engine.fields.registry import get_kind, register
from engine.i18n import T, Text
from engine.model import Field

if TYPE_CHECKING:
    from engine.expressions.types import Type

RESULT_KINDS: tuple[str, ...] = (
    "text",
    "integer",
    "decimal",
    "money",
    "percent",
    "date",
    "datetime",
    "boolean",
)
DEFAULT_RESULT = "decimal"


class FormulaKind(FieldKind):
    """A computed value; behaves like its ``result`` kind except that it is read-only."""

    name = "formula"
    label = T("公式", "Formula")
    keys = frozenset({"formula", "result"})
    storage = "decimal"  # of the default result; see storage_of()
    widget = "readonly"
    user_editable = False
    accepts_default = False
    type_name = "number"

    def result_kind(self, field: Field) -> FieldKind:
        """The kind of the computed value (the default result for an unknown one)."""
        kind = get_kind(field.result or DEFAULT_RESULT)
        if kind is None or kind.name not in RESULT_KINDS:
            kind = get_kind(DEFAULT_RESULT)
        assert kind is not None
        return kind

    def value_type(self, field: Field) -> Type:
        return self.result_kind(field).value_type(field)

    def storage_of(self, field: Field) -> str:
        return self.result_kind(field).storage

    def check_definition(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        if field.formula is None:
            problems.append(
                self.problem(
                    field,
                    T("公式字段需要 formula", "a formula field needs `formula:`"),
                    T('例如 formula: "amount * 0.1"', 'for example formula: "amount * 0.1"'),
                )
            )
        if field.result is not None:
            kind = get_kind(field.result)
            if kind is None or kind.name not in RESULT_KINDS:
                problems.append(
                    self.problem(
                        field,
                        T(
                            f"result 不是可用的结果类型：{show(field.result)}",
                            f"result is not a kind a formula can produce: {show(field.result)}",
                        ),
                        did_you_mean(str(field.result), RESULT_KINDS),
                    )
                )
        return problems

    def parse(self, field: Field, raw: Any) -> Any:
        return self.result_kind(field).coerce(field, raw)

    def check_value(self, field: Field, value: Any) -> list[Text]:
        return self.result_kind(field).validate(field, value)

    def to_json(self, field: Field, value: Any) -> Any:
        return self.result_kind(field).to_json(field, value)

    def to_storage(self, field: Field, value: Any) -> Any:
        return self.result_kind(field).to_storage(field, value)

    def from_storage(self, field: Field, value: Any) -> Any:
        return self.result_kind(field).from_storage(field, value)

    def reader(self, field: Field) -> Callable[[Any], Any] | None:
        return self.result_kind(field).reader(field)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        return self.result_kind(field).formatter(field, lang)

    def show(self, field: Field, value: Any, lang: str) -> str:
        return self.result_kind(field).display(field, value, lang)


FORMULA = register(FormulaKind())
