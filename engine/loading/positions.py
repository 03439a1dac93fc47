"""Where each value of a raw blueprint document was written.

The readers (:mod:`engine.yamlsafe`, :mod:`engine.loading.jsonpos`) return plain
Python values (dict, list, str, int, float, bool, None) plus a parallel tree of
:class:`Pos` nodes. A path into the document (a tuple of keys and list indexes,
like a JSON pointer) finds the node that wrote it, so a schema error or a
semantic error can be reported at ``file:line:column``.

Nodes are shared, never mutated once built: a YAML alias reuses its anchor's
node, and an overlay copies the nodes along the path it changes. Each node keeps
its own file, so after ``extends:`` an error points at the file that wrote the
offending value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Location

Key = str | int
Path = tuple[Key, ...]


@dataclass
class Pos:
    """One node: where it starts, where a scalar's text starts, and its children.

    ``text`` differs from ``value`` for quoted scalars (one column after the
    quote) and block scalars (the first line of the content): it is where a
    formula's first character is. ``keys`` holds where each mapping key is
    written (for a list, nothing).
    """

    value: Location
    text: Location | None = None
    kids: dict[Key, Pos] = field(default_factory=dict)
    keys: dict[Key, Location] = field(default_factory=dict)

    @property
    def text_start(self) -> Location:
        return self.text or self.value

    def node(self, path: Iterable[Key]) -> Pos | None:
        """The node at ``path`` exactly, or None when nothing was written there."""
        here: Pos | None = self
        for key in path:
            if here is None:
                return None
            here = here.kids.get(key)
        return here

    def deepest(self, path: Iterable[Key]) -> tuple[Pos, int]:
        """The deepest written node along ``path`` and how many keys it matched."""
        here, depth = self, 0
        for key in path:
            nxt = here.kids.get(key)
            if nxt is None:
                break
            here, depth = nxt, depth + 1
        return here, depth

    def locate(self, path: Iterable[Key]) -> Location:
        """Where the value at ``path`` starts, or its deepest known ancestor."""
        return self.deepest(path)[0].value

    def locate_key(self, path: Path) -> Location:
        """Where the key naming ``path`` is written (the value's place when unknown)."""
        if not path:
            return self.value
        parent, depth = self.deepest(path[:-1])
        if depth == len(path) - 1 and path[-1] in parent.keys:
            return parent.keys[path[-1]]
        return self.locate(path)

    def locate_text(self, path: Iterable[Key]) -> Location:
        """Where the text of the scalar at ``path`` starts (for formulas)."""
        node = self.node(path)
        return node.text_start if node is not None else self.locate(path)

    def with_kid(self, key: Key, kid: Pos | None, key_loc: Location | None = None) -> Pos:
        """A copy of this node with one child replaced (``None`` removes it)."""
        kids = dict(self.kids)
        keys = dict(self.keys)
        if kid is None:
            kids.pop(key, None)
            keys.pop(key, None)
        else:
            kids[key] = kid
            if key_loc is not None:
                keys[key] = key_loc
        return Pos(self.value, self.text, kids, keys)


def unknown(file: str = "<blueprint>") -> Pos:
    """A node for a value that has no source (built in code)."""
    return Pos(Location(file))


@dataclass
class Doc:
    """A raw document: plain values, their positions and the files they came from."""

    data: Any
    pos: Pos
    files: list[str] = field(default_factory=list)
