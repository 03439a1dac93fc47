"""The static types of the formula language.

A formula is type-checked when the blueprint loads, so ``amount + name`` is
refused before any record exists. Types are small immutable values; lists and
maps carry their element type (``list of number``). :data:`ANY` is the escape
hatch for values whose type is not known statically, and :data:`NULL` is the type
of the blank literal ``None``, which fits wherever a value is expected.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.i18n import Text

_LABELS: dict[str, tuple[str, str]] = {
    "number": ("数字", "number"),
    "text": ("文本", "text"),
    "bool": ("是/否", "true/false"),
    "date": ("日期", "date"),
    "datetime": ("日期时间", "date-time"),
    "any": ("任意值", "any value"),
    "null": ("空值", "blank"),
    "list": ("列表", "list"),
    "map": ("映射表", "map"),
}


@dataclass(frozen=True)
class Type:
    """A formula type: a kind (``number``, ``list`` ...) and, for containers, the item type."""

    kind: str
    item: Type | None = None

    def __post_init__(self) -> None:
        if self.kind not in _LABELS:
            raise ValueError(f"unknown formula type kind {self.kind!r}")

    @property
    def label(self) -> Text:
        """The analyst-facing name in both languages."""
        zh, en = _LABELS[self.kind]
        if self.item is None or self.item.kind == "any":
            return Text(zh=zh, en=en)
        inner = self.item.label
        if self.kind == "list":
            return Text(zh=f"{inner.zh}列表", en=f"list of {inner.en}")
        return Text(zh=f"{inner.zh}映射表", en=f"map of {inner.en}")

    @property
    def is_list(self) -> bool:
        return self.kind == "list"

    def __str__(self) -> str:
        return self.label.get("en")


NUMBER = Type("number")
TEXT = Type("text")
BOOL = Type("bool")
DATE = Type("date")
DATETIME = Type("datetime")
ANY = Type("any")
NULL = Type("null")
#: A dict literal (only as the lookup argument of CHOOSE_BY); any value type.
MAP = Type("map", ANY)


def list_of(item: Type) -> Type:
    """The type of a multi-choice value or of a child-table column."""
    return Type("list", item)


def map_of(value: Type) -> Type:
    """A dict literal whose values have type ``value``."""
    return Type("map", value)


def accepts(expected: Type, actual: Type) -> bool:
    """Whether a value of type ``actual`` may stand where ``expected`` is required.

    Blank fits everywhere, ANY on either side is trusted, containers compare
    their items. Nothing is converted implicitly: a date is not a date-time.
    """
    if expected.kind == "any" or actual.kind in ("any", "null"):
        return True
    if expected.kind != actual.kind:
        return False
    if expected.item is None or actual.item is None:
        return True
    return accepts(expected.item, actual.item)


def join(a: Type, b: Type) -> Type | None:
    """The common type of two branches (IF, COALESCE ...), or None if they clash."""
    if a.kind == "null":
        return b
    if b.kind == "null":
        return a
    if a.kind == "any" or b.kind == "any":
        return ANY
    if a.kind != b.kind:
        return None
    if a.item is None or b.item is None:
        return a if a.item is not None else b
    inner = join(a.item, b.item)
    return None if inner is None else Type(a.kind, inner)


#: Types whose values can be ordered with < and > (and so used by MIN/MAX).
ORDERED: tuple[Type, ...] = (NUMBER, TEXT, DATE, DATETIME)
#: Types that can be compared with == and != and be dictionary keys.
SCALARS: tuple[Type, ...] = (NUMBER, TEXT, BOOL, DATE, DATETIME)
