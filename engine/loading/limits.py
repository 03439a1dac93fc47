"""How big a blueprint may be, and why.

A blueprint is written by people, but it is also input: a hostile or broken
file must be refused quickly and clearly instead of eating memory or CPU. The
readers enforce these limits *while reading*, so a 10,000-field entity or a
500-byte "billion laughs" alias bomb is refused after a few hundred
milliseconds at most, before JSON-Schema validation or any other work.

=====================  ==========  ==============================================
limit                  value       what it bounds
=====================  ==========  ==============================================
MAX_FILE_BYTES         2 MB        the size of one blueprint file
MAX_NODES              200,000     values in one file, counting every use of a
                                   YAML alias as a full copy of its anchor
MAX_DEPTH              32          nesting of maps and lists in one file
MAX_ENTITIES           200         entities in a blueprint
MAX_FIELDS             500         fields of one entity (and of one child table)
MAX_EXTENDS_DEPTH      8           ``extends:`` chain length
MAX_INCLUDES           100         files named in one ``include:`` list
=====================  ==========  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.i18n import T, Text
from engine.loading.positions import Key, Path

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 32
MAX_ENTITIES = 200
MAX_FIELDS = 500
MAX_EXTENDS_DEPTH = 8
MAX_INCLUDES = 100


@dataclass(frozen=True)
class CollectionLimit:
    """At most ``limit`` entries in the collections at ``pattern`` (``*``: any key)."""

    pattern: tuple[str, ...]
    limit: int
    message: Text  # formatted with {limit} and {0}, {1}... = the path's keys
    hint: Text

    def matches(self, path: Path) -> bool:
        if len(path) != len(self.pattern):
            return False
        return all(p == "*" or p == k for p, k in zip(self.pattern, path, strict=True))


_FIELDS_HINT = T(
    "把实体拆成几个相关实体（用 ref 关联），或删去不用的字段",
    "split the entity into related entities (linked with ref) or drop unused fields",
)

COLLECTION_LIMITS: tuple[CollectionLimit, ...] = (
    CollectionLimit(
        ("entities",),
        MAX_ENTITIES,
        T("实体太多：最多 {limit} 个", "too many entities: at most {limit} are allowed"),
        T("把蓝图拆成几个应用", "split the blueprint into several apps"),
    ),
    CollectionLimit(
        ("entities", "*", "fields"),
        MAX_FIELDS,
        T(
            "实体 '{1}' 的字段太多：最多 {limit} 个",
            "entity '{1}' has too many fields: at most {limit} are allowed",
        ),
        _FIELDS_HINT,
    ),
    CollectionLimit(
        ("entities", "*", "fields", "*", "fields"),
        MAX_FIELDS,
        T(
            "子表 '{1}.{3}' 的字段太多：最多 {limit} 个",
            "child table '{1}.{3}' has too many fields: at most {limit} are allowed",
        ),
        _FIELDS_HINT,
    ),
)


def limit_for(path: Path) -> CollectionLimit | None:
    """The limit that applies to the collection at ``path``, if any."""
    for rule in COLLECTION_LIMITS:
        if rule.matches(path):
            return rule
    return None


def over_limits(data: Any) -> Iterator[tuple[Path, CollectionLimit, int]]:
    """Collections in ``data`` above their limit (after includes and overlays)."""
    for rule in COLLECTION_LIMITS:
        for path, value in _walk(data, rule.pattern, ()):
            if isinstance(value, dict | list) and len(value) > rule.limit:
                yield path, rule, len(value)


def _walk(data: Any, pattern: tuple[str, ...], path: Path) -> Iterator[tuple[Path, Any]]:
    if not pattern:
        yield path, data
        return
    if not isinstance(data, dict):
        return
    head, rest = pattern[0], pattern[1:]
    keys: list[Key] = list(data) if head == "*" else [head] if head in data else []
    for key in keys:
        yield from _walk(data[key], rest, (*path, key))
