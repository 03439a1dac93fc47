"""The registry of field kinds: built-ins and extensions register the same way.

An extension adds a kind with one module::

    from engine.fields import FieldKind, register

    class RatingKind(FieldKind):
        name = "rating"
        ...

    register(RatingKind())
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeVar

from engine.model import Field

if TYPE_CHECKING:
    from engine.fields.base import FieldKind

K = TypeVar("K", bound="FieldKind")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KINDS: dict[str, FieldKind] = {}  # canonical name -> kind, in registration order
_ALIASES: dict[str, str] = {}  # alias -> canonical name


def register(kind: K, *, replace: bool = False) -> K:
    """Add ``kind`` under its name and aliases; returns it (usable as an expression).

    Registering a name or alias that is taken raises ``ValueError`` unless
    ``replace`` is true and the name is the same kind's canonical name, in which
    case the old kind (and its aliases) is replaced.
    """
    from engine.fields.base import STORAGE_TYPES, FieldKind

    if not isinstance(kind, FieldKind):
        raise TypeError(f"register() takes a FieldKind instance, got {kind!r}")
    names = (kind.name, *kind.aliases)
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"invalid field kind name {name!r} (lowercase letters, digits, _)")
    if len(set(names)) != len(names):
        raise ValueError(f"field kind {kind.name!r} lists a name twice: {names}")
    if kind.storage not in STORAGE_TYPES:
        raise ValueError(
            f"field kind {kind.name!r} has storage {kind.storage!r}; "
            f"use one of {sorted(STORAGE_TYPES)}"
        )
    if not kind.widget:
        raise ValueError(f"field kind {kind.name!r} names no widget")
    if replace and kind.name in _KINDS:
        unregister(kind.name)
    for name in names:
        owner = _KINDS.get(name) or _KINDS.get(_ALIASES.get(name, ""))
        if owner is not None:
            raise ValueError(f"field kind name {name!r} is already used by {owner!r}")
    _KINDS[kind.name] = kind
    for alias in kind.aliases:
        _ALIASES[alias] = kind.name
    return kind


def unregister(name: str) -> None:
    """Remove a kind (by canonical name) and its aliases; mainly for tests."""
    kind = _KINDS.pop(name)
    for alias in kind.aliases:
        _ALIASES.pop(alias, None)


def get_kind(name: str) -> FieldKind | None:
    """The kind named ``name`` (canonical name or alias), or None."""
    kind = _KINDS.get(name)
    if kind is None and name in _ALIASES:
        kind = _KINDS[_ALIASES[name]]
    return kind


def kind_of(field: Field) -> FieldKind:
    """The kind of a field; an unknown kind here is a bug (the loader refuses them)."""
    kind = get_kind(field.kind)
    if kind is None:
        raise KeyError(f"field {field.name!r} has unknown kind {field.kind!r}")
    return kind


def kind_names() -> list[str]:
    """Every accepted name: canonical names and aliases, sorted (for did-you-mean)."""
    return sorted([*_KINDS, *_ALIASES])


def kinds() -> list[FieldKind]:
    """The registered kinds, one per canonical name, in registration order."""
    return list(_KINDS.values())


def canonical_name(name: str) -> str | None:
    """The canonical name for a name or alias (``number`` -> ``decimal``), or None."""
    kind = get_kind(name)
    return None if kind is None else kind.name
