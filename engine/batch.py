"""A batch of new records, given row by row or column by column.

:meth:`engine.records.RecordService.create_many` takes either a sequence of
mappings (one per record, the natural shape for code) or :class:`Columns`
(one list per field, the natural shape for a file read in chunks: an import
transposes its rows in C and never builds a dict per record). Both are read
through :class:`Batch`, which gives the record service what it works on: a
field's values as a column, and, for the few records checked one by one, a
record's own mapping.

In a column, :data:`MISSING` marks a record that does not give the field at
all (its default applies), which is not the same as ``None`` (given, blank).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

__all__ = ["MISSING", "Batch", "Columns", "batch_of"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: A field a record does not give (``Columns``), as a key left out of a mapping.
MISSING: Final[Any] = _Missing()


class Columns:
    """New records column by column: ``{field: values}``, every list ``count`` long.

    A value of :data:`MISSING` means that record does not give the field.
    """

    __slots__ = ("count", "values")

    def __init__(self, values: Mapping[str, Sequence[Any]], count: int) -> None:
        for name, column in values.items():
            if len(column) != count:
                raise ValueError(f"column {name!r} has {len(column)} values, not {count}")
        self.values = dict(values)
        self.count = count

    def __len__(self) -> int:
        return self.count


class Batch:
    """What the record service reads of a batch (see the module docs)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def column(self, name: str) -> tuple[list[Any], list[int]]:
        """``(values, missing)``: one value per record (None where it is missing), and
        the positions of the records that do not give ``name``."""
        raise NotImplementedError

    def record(self, index: int) -> dict[str, Any]:
        """The mapping record ``index`` gives (without its missing fields)."""
        raise NotImplementedError

    def giving_other(self, keys: frozenset[str]) -> set[int]:
        """Positions of the records that give a key outside ``keys``."""
        raise NotImplementedError

    def select(self, positions: Sequence[int]) -> Batch:
        """The records at ``positions``, in that order."""
        raise NotImplementedError

    def part(self, start: int, stop: int) -> Batch:
        """The records ``start`` to ``stop`` (a slice)."""
        raise NotImplementedError


class _Rows(Batch):
    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> tuple[list[Any], list[int]]:
        rows = self.rows
        if all(map(operator.contains, rows, repeat(name))):
            return [d[name] for d in rows], []
        raw = [d.get(name, MISSING) for d in rows]
        missing = [j for j, v in enumerate(raw) if v is MISSING]
        return [None if v is MISSING else v for v in raw], missing

    def record(self, index: int) -> dict[str, Any]:
        return dict(self.rows[index])

    def giving_other(self, keys: frozenset[str]) -> set[int]:
        return {i for i, d in enumerate(self.rows) if not keys.issuperset(d)}

    def select(self, positions: Sequence[int]) -> Batch:
        rows = self.rows
        return _Rows([rows[i] for i in positions])

    def part(self, start: int, stop: int) -> Batch:
        return _Rows(self.rows[start:stop])


class _Columns(Batch):
    __slots__ = ("count", "values")

    def __init__(self, values: dict[str, Sequence[Any]], count: int) -> None:
        self.values = values
        self.count = count

    def __len__(self) -> int:
        return self.count

    def column(self, name: str) -> tuple[list[Any], list[int]]:
        values = self.values.get(name)
        if values is None:
            return [None] * self.count, list(range(self.count))
        if MISSING not in values:  # (one pass in C: the common case)
            return list(values), []
        missing = [j for j, v in enumerate(values) if v is MISSING]
        return [None if v is MISSING else v for v in values], missing

    def record(self, index: int) -> dict[str, Any]:
        return {
            name: value
            for name, values in self.values.items()
            if (value := values[index]) is not MISSING
        }

    def giving_other(self, keys: frozenset[str]) -> set[int]:
        out: set[int] = set()
        for name, values in self.values.items():
            if name not in keys:
                out.update(j for j, v in enumerate(values) if v is not MISSING)
        return out

    def select(self, positions: Sequence[int]) -> Batch:
        return _Columns(
            {name: [values[i] for i in positions] for name, values in self.values.items()},
            len(positions),
        )

    def part(self, start: int, stop: int) -> Batch:
        stop = min(stop, self.count)
        return _Columns(
            {name: values[start:stop] for name, values in self.values.items()},
            max(stop - start, 0),
        )


def batch_of(rows: Iterable[Mapping[str, Any]] | Columns) -> Batch:
    """The :class:`Batch` view of ``create_many``'s input."""
    if isinstance(rows, Columns):
        return _Columns(rows.values, rows.count)
    return _Rows(rows if isinstance(rows, Sequence) else list(rows))
