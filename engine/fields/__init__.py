"""Field kinds: one class per kind, all found through one registry.

The loader, the storage layer, the record service and the web forms ask the
registry for a field's kind and call it::

    from engine.fields import kind_of

    kind = kind_of(field)
    value = kind.coerce(field, form_value)      # or raise FieldValueError
    messages = kind.validate(field, value)      # min/max, lengths, pattern, options
    text = kind.display(field, value, "zh")

Built-in kinds register through :func:`register` exactly as an extension does;
see :mod:`engine.fields.base` for the contract and :mod:`engine.fields.registry`
for an example. Kinds, by module:

- ``text``: text, long_text (longtext, textarea), email, phone, url
- ``numbers``: integer, decimal (number), money (currency), percent
- ``dates``: date, datetime (and the business time zone)
- ``boolean``: boolean (bool)
- ``choices``: choice, multi_choice (multichoice)
- ``user``, ``ref``, ``table``, ``formula``, ``autonumber``, ``file``
"""

from __future__ import annotations

import importlib

from engine.fields.base import COMMON_KEYS, STORAGE_TYPES, FieldKind, FieldValueError
from engine.fields.registry import (
    canonical_name,
    get_kind,
    kind_names,
    kind_of,
    kinds,
    register,
    unregister,
)

#: Modules of the built-in kinds; importing one registers its kinds, in this order.
BUILTIN_MODULES: tuple[str, ...] = (
    "text",
    "numbers",
    "dates",
    "boolean",
    "choices",
    "user",
    "ref",
    "table",
    "formula",
    "autonumber",
    "file",
)
for _module in BUILTIN_MODULES:
    importlib.import_module(f"engine.fields.{_module}")

from engine.fields.dates import (  # noqa: E402 - after the kinds are registered
    DEFAULT_TIMEZONE,
    business_timezone,
    set_business_timezone,
    using_timezone,
)

__all__ = [
    "BUILTIN_MODULES",
    "COMMON_KEYS",
    "DEFAULT_TIMEZONE",
    "STORAGE_TYPES",
    "FieldKind",
    "FieldValueError",
    "business_timezone",
    "canonical_name",
    "get_kind",
    "kind_names",
    "kind_of",
    "kinds",
    "register",
    "set_business_timezone",
    "unregister",
    "using_timezone",
]
