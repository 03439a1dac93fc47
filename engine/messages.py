"""Message templates: ``"合同 {contract_no} 已通过审批"`` filled from a record, safely.

Notification messages in a blueprint (``notify: message:``) name record fields
in braces. Filling them is deliberately simpler than ``str.format``:

* a placeholder is a bare name: ``{contract_no}``, ``{owner}``, ``{id}``; the
  value shown is the field's (a blank shows as nothing, a choice as its
  option label in the reader's language when the caller passes labels);
* nothing else is interpreted: no attribute or index access (``{x.__class__}``,
  ``{x[0]}`` stay as written, so a template can never reach into Python
  objects), no conversions (``!r``) and no format specs (``{x:>99999}`` cannot
  blow up a message); a name that is not a value stays as written too;
* ``{{`` and ``}}`` are literal braces; an unbalanced brace leaves the template
  as written;
* a filled message is at most :data:`MAX_MESSAGE` characters.

``formflow check`` refuses placeholders that are not fields of the entity
(:func:`placeholders` lists them), so what stays as written at run time is
only what the check already reported.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["MAX_MESSAGE", "display", "fill", "is_plain_name", "placeholders"]

MAX_MESSAGE = 2000
_FORMATTER = string.Formatter()


def is_plain_name(text: str) -> bool:
    """A placeholder that names a value: no ``.``, ``[``, ``!`` or ``:`` inside."""
    return bool(text) and not any(ch in text for ch in ".[]!:{} ")


def placeholders(template: str) -> list[str]:
    """The placeholders of ``template`` as written (``{a.b}`` gives ``"a.b"``).

    Raises ValueError for an unbalanced brace.
    """
    out: list[str] = []
    for _literal, name, spec, conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        text = name
        if conversion:
            text += "!" + conversion
        if spec:
            text += ":" + spec
        out.append(text)
    return out


def display(value: Any) -> str:
    """A value as a message shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(display(v) for v in value)
    return str(value)


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by its displayed value (see the module doc)."""
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError:  # an unbalanced brace: show the template as written
        return template[:MAX_MESSAGE]
    out: list[str] = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if not conversion and not spec and is_plain_name(name) and name in values:
            out.append(display(values[name]))
            continue
        written = name
        if conversion:
            written += "!" + conversion
        if spec:
            written += ":" + spec
        out.append("{" + written + "}")
    return "".join(out)[:MAX_MESSAGE]
