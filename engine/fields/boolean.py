"""The boolean kind: yes or no."""

from __future__ import annotations

from typing import Any

from engine.fields.base import FieldKind, FieldValueError, nfkc, show
from engine.fields.registry import register
from engine.i18n import T, normalise_lang
from engine.model import Field

TRUE_WORDS: frozenset[str] = frozenset({"true", "1", "yes", "y", "on", "是", "t"})
FALSE_WORDS: frozenset[str] = frozenset({"false", "0", "no", "n", "off", "否", "f"})


class BooleanKind(FieldKind):
    """``True``/``False``. Forms and imports may send true/false, 1/0, yes/no,
    on/off, y/n, 是/否 (any case); JSON may send true/false or 1/0."""

    name = "boolean"
    aliases = ("bool",)
    label = T("是/否", "Yes/No")
    keys = frozenset({"formula"})
    storage = "boolean"
    widget = "checkbox"
    type_name = "bool"

    def parse(self, field: Field, raw: Any) -> Any:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and len(raw) <= 10:
            word = nfkc(raw).strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
        raise FieldValueError(
            T(f"应为 是 或 否：{show(raw)}", f"expected yes or no (true/false): {show(raw)}")
        )

    def from_storage(self, field: Field, value: Any) -> Any:
        return None if value is None else bool(value)

    def show(self, field: Field, value: Any, lang: str) -> str:
        if normalise_lang(lang) == "zh":
            return "是" if value else "否"
        return "Yes" if value else "No"


BOOLEAN = register(BooleanKind())
