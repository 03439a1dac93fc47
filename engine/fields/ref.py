"""The ref kind: a reference to a record of another entity, stored as its id.

Whether the record exists (and may be seen by the user) is checked by the record
service, not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import Problem
from engine.fields.base import FieldKind, FieldValueError, did_you_mean, is_int, show
from engine.fields.numbers import INT64_MAX
from engine.fields.registry import register
from engine.i18n import T, Text
from engine.model import Field

ON_DELETE: tuple[str, ...] = ("restrict", "set_null", "cascade")
_DIGITS = re.compile(r"^\+?\d{1,19}$")


def _not_an_id(raw: Any) -> FieldValueError:
    return FieldValueError(
        T(f"不是有效的记录编号：{show(raw)}", f"not a valid record id: {show(raw)}")
    )


class RefKind(FieldKind):
    """A record id (positive 64-bit int). Accepts ``12``, ``"12"`` and
    ``{"id": 12}`` (as the API shows a reference)."""

    name = "ref"
    label = T("关联", "Reference")
    keys = frozenset({"to", "on_delete", "formula"})
    storage = "ref"
    widget = "ref"
    type_name = "number"

    def coerce(self, field: Field, raw: Any) -> Any:
        if type(raw) is int and 0 < raw <= INT64_MAX and type(self).parse is RefKind.parse:
            return raw  # already a valid id: what parse() returns for it
        return super().coerce(field, raw)

    def coerce_many(self, field: Field, raws: Sequence[Any]) -> tuple[list[Any], dict[int, Text]]:
        if (
            type(self).coerce is RefKind.coerce
            and type(self).parse is RefKind.parse
            and set(map(type, raws)) <= {int, type(None)}
            and all(0 < r <= INT64_MAX for r in raws if r is not None)
        ):
            return list(raws), {}  # valid ids (or blank) already: what coerce() gives
        return super().coerce_many(field, raws)

    def validate_many(self, field: Field, values: Sequence[Any]) -> dict[int, list[Text]]:
        if (
            type(self).check_value is RefKind.check_value
            and set(map(type, values)) <= {int, type(None)}
            and all(0 < v <= INT64_MAX for v in values if v is not None)
        ):
            return {}
        return super().validate_many(field, values)

    def parse(self, field: Field, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "id" in raw:
            raw = raw["id"]
        if is_int(raw):
            number = raw
        elif isinstance(raw, float) and raw.is_integer():
            number = int(raw)
        elif isinstance(raw, str) and _DIGITS.match(raw.strip()):
            number = int(raw.strip())
        else:
            raise _not_an_id(raw)
        if not 0 < number <= INT64_MAX:
            raise _not_an_id(raw)
        return number

    def check_value(self, field: Field, value: Any) -> list[Text]:
        if not is_int(value) or not 0 < value <= INT64_MAX:
            return [_not_an_id(value).text]
        return []

    def check_definition(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        if not field.to:
            problems.append(
                self.problem(
                    field,
                    T(
                        "ref 字段需要 to（引用的实体）",
                        "a ref field needs `to:` (the entity it points at)",
                    ),
                    T("例如 to: customer", "for example to: customer"),
                )
            )
        if field.on_delete not in ON_DELETE:
            problems.append(
                self.problem(
                    field,
                    T(
                        f"on_delete 无效：{show(field.on_delete)}",
                        f"invalid on_delete: {show(field.on_delete)}",
                    ),
                    did_you_mean(str(field.on_delete), ON_DELETE),
                )
            )
        elif field.on_delete == "set_null" and field.required:
            problems.append(
                self.problem(
                    field,
                    T(
                        "必填的关联不能在目标删除时置空（on_delete: set_null）",
                        "a required reference cannot be cleared when its target is deleted "
                        "(on_delete: set_null)",
                    ),
                    T(
                        "改用 restrict 或 cascade，或取消必填",
                        "use restrict or cascade, or make it optional",
                    ),
                )
            )
        return problems

    def from_storage(self, field: Field, value: Any) -> Any:
        return None if value is None else int(value)

    def show(self, field: Field, value: Any, lang: str) -> str:
        """``#12``; the record service shows the target's title where it has it."""
        return f"#{value}"


REF = register(RefKind())
