"""Column type signatures and which type changes narrow (lose data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from engine.i18n import T, Text
from engine.storage.migrate.meta import _BIGINT_DIGITS

# --------------------------------------------------------------------------- type signatures


@dataclass(frozen=True)
class _Sig:
    """What matters about a column type for a migration."""

    family: str  # text | integer | decimal | float | date | datetime | boolean | json | other
    length: int | None = None  # text: None is unbounded
    size: int = 0  # integer: bytes
    precision: int | None = None
    scale: int | None = None
    name: str = ""

    def __str__(self) -> str:
        if self.family == "text":
            return "TEXT" if self.length is None else f"VARCHAR({self.length})"
        if self.family == "integer":
            return {2: "SMALLINT", 4: "INTEGER"}.get(self.size, "BIGINT")
        if self.family == "decimal":
            if self.precision is None:
                return "NUMERIC"
            return f"NUMERIC({self.precision},{self.scale or 0})"
        return self.name or self.family.upper()

    @property
    def int_digits(self) -> int | None:
        """Digits before the decimal point a value may have (None: unbounded)."""
        if self.family == "integer":
            return {2: 4, 4: 9}.get(self.size, _BIGINT_DIGITS)
        if self.family == "decimal" and self.precision is not None:
            return self.precision - (self.scale or 0)
        return None


def _sig(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> _Sig:
    t: Any = type_
    variants = getattr(t, "_variant_mapping", None)
    if variants and dialect.name in variants:
        t = variants[dialect.name]
    if isinstance(t, sa.types.TypeDecorator):
        t = t.load_dialect_impl(dialect)
    if isinstance(t, sa.Boolean):
        return _Sig("boolean", name="BOOLEAN")
    if isinstance(t, sa.JSON):
        return _Sig("json", name="JSON")
    if isinstance(t, sa.DateTime):
        return _Sig("datetime", name="DATETIME")
    if isinstance(t, sa.Date):
        return _Sig("date", name="DATE")
    if isinstance(t, sa.Float):
        return _Sig("float", name="FLOAT")
    if isinstance(t, sa.Numeric):
        return _Sig("decimal", precision=t.precision, scale=t.scale)
    if isinstance(t, sa.Integer):
        size = 8 if isinstance(t, sa.BigInteger) else 2 if isinstance(t, sa.SmallInteger) else 4
        if dialect.name == "sqlite":
            size = 8  # every SQLite INTEGER holds 64 bits; INTEGER and BIGINT are one type
        return _Sig("integer", size=size)
    if isinstance(t, sa.String):
        length = None if isinstance(t, sa.Text) else t.length
        return _Sig("text", length=length)
    return _Sig("other", name=type(t).__name__.upper())


@dataclass(frozen=True)
class _TypeChange:
    loss: bool
    mode: str  # "sql": the database converts after cut/round; "python": converted row by row
    why: Text | None = None  # what can be lost, in general terms


def _compare_types(old: _Sig, new: _Sig) -> _TypeChange | None:
    """How ``old`` becomes ``new`` (None: nothing to do)."""
    if old == new:
        return None
    if old.family == new.family == "text":
        if new.length is None or (old.length is not None and new.length >= old.length):
            return _TypeChange(False, "sql")
        return _TypeChange(
            True,
            "sql",
            T(
                f"超过 {new.length} 个字符的值会被截断",
                f"values longer than {new.length} characters are cut",
            ),
        )
    if old.family in ("integer", "decimal") and new.family in ("integer", "decimal"):
        old_digits, new_digits = old.int_digits, new.int_digits
        lost_digits = new_digits is not None and (old_digits is None or new_digits < old_digits)
        old_scale = old.scale or 0 if old.family == "decimal" else 0
        new_scale = new.scale or 0 if new.family == "decimal" else 0
        if old.family == "decimal" and old.precision is None and old.scale is None:
            old_scale = 1_000  # unconstrained NUMERIC: any number of decimals
        lost_scale = new_scale < old_scale
        if not (lost_digits or lost_scale):
            return _TypeChange(False, "sql")
        zh, en = [], []
        if lost_scale:
            zh.append(f"小数位超过 {new_scale} 位的值会被四舍五入")
            places = "place" if new_scale == 1 else "places"
            en.append(f"values are rounded to {new_scale} decimal {places}")
        if lost_digits:
            zh.append(f"整数部分超过 {new_digits} 位的值会被清空")
            en.append(f"values with more than {new_digits} digits before the point are cleared")
        return _TypeChange(True, "sql", Text(zh="；".join(zh), en="; ".join(en)))
    if old.family == new.family:
        return _TypeChange(False, "sql")  # e.g. DATETIME vs TIMESTAMP spelling
    if new.family == "text":
        safe = new.length is None or (
            old.family in ("integer", "decimal", "float", "date", "datetime", "boolean")
            and new.length >= 64
        )
        if safe:
            return _TypeChange(False, "python")
        return _TypeChange(
            True,
            "python",
            T(
                f"转换为文本后超过 {new.length} 个字符的值会被截断",
                f"values longer than {new.length} characters as text are cut",
            ),
        )
    return _TypeChange(
        True,
        "python",
        T(f"无法转换为 {new} 的值会被清空", f"values that are not valid {new} are cleared"),
    )
