"""Converting stored values when a field changes kind."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from engine.storage.migrate.signatures import _Sig

# --------------------------------------------------------------------------- value conversion


class _NoValue(Exception):
    """A value that does not convert to the new type."""


_TRUE = {"1", "true", "t", "yes", "y", "on", "是", "对"}
_FALSE = {"0", "false", "f", "no", "n", "off", "否", "不"}


def _decode(raw: Any, old: _Sig) -> Any:
    """A raw DBAPI value of the old column as a Python value of its family."""
    if raw is None:
        return None
    family = old.family
    if family == "boolean":
        if isinstance(raw, str):
            return raw.strip().lower() in _TRUE
        return bool(raw)
    if family == "json":
        return json.loads(raw) if isinstance(raw, str) else raw
    if family == "date":
        if isinstance(raw, datetime):
            return raw.date()
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
    if family == "datetime":
        if isinstance(raw, datetime):
            value = raw
        elif isinstance(raw, date):
            value = datetime(raw.year, raw.month, raw.day)
        else:
            value = datetime.fromisoformat(str(raw))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if family in ("decimal", "float"):
        return Decimal(str(raw))
    if family == "integer":
        return int(raw)
    return raw


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(",", "")
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise _NoValue from exc
    raise _NoValue


def _encode(value: Any, new: _Sig) -> Any:
    """``value`` as a value of the new column's type, or raise :class:`_NoValue`."""
    family = new.family
    if family == "text":
        text = _as_text(value)
        return text if new.length is None else text[: new.length]
    if family in ("integer", "decimal", "float"):
        number = _as_decimal(value)
        if not number.is_finite():
            raise _NoValue
        scale = 0 if family == "integer" else (new.scale or 0)
        if family != "float" and (family == "integer" or new.scale is not None):
            number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        digits = new.int_digits
        if digits is not None and abs(number) >= 10**digits:
            raise _NoValue
        if family == "integer":
            return int(number)
        return float(number) if family == "float" else number
    if family == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, Decimal, float)):
            return value != 0
        text = _as_text(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _NoValue
    if family == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(_as_text(value).strip()[:10])
        except ValueError as exc:
            raise _NoValue from exc
    if family == "datetime":
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        else:
            try:
                moment = datetime.fromisoformat(_as_text(value).strip())
            except ValueError as exc:
                raise _NoValue from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if family == "json":
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        return value
    raise _NoValue
