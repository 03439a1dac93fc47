"""Click-through: the list-page filters (query-string parameters) of one KPI row.

The parameters use the list grammar of :mod:`engine.storage.query`
(``stage=won``, ``close_date__between=2026-01-01,2026-01-31``,
``owner__in=a,b``), so ``/<entity>?<params>`` lists the records behind a number.

They hold the period (intersected with the row's time bucket), the row's
dimensions, the team/owner filters, and the KPI's ``where`` where it can be
written as list filters: ``field == value``, ``!=``, ``<``, ``<=``, ``>``,
``>=``, ``in [...]``, ``not in [...]`` on a choice field (as the other
options), ``ISBLANK``/``not ISBLANK``, a boolean field alone or negated, joined
with ``and``. Anything else (``or``, functions, arithmetic) is left out and the
result says ``drill_exact=False``: the list then shows a superset. The list
page also limits itself to the viewer's records, like the KPI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.expressions import ir
from engine.kpis.compile import Dimension
from engine.kpis.labels import bucket_end
from engine.kpis.periods import Period
from engine.model import Kpi
from engine.storage.schema import EntityTable

__all__ = ["Drill", "drill_params", "where_params"]

_OPS = {"==": "", "!=": "__ne", "<": "__lt", "<=": "__lte", ">": "__gt", ">=": "__gte"}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def where_params(kpi: Kpi, et: EntityTable, hidden: frozenset[str]) -> tuple[dict[str, str], bool]:
    """The KPI's ``where`` as list filters, and whether they say exactly the same."""
    if kpi.where is None:
        return {}, True
    out: dict[str, str] = {}
    exact = _add(kpi.where.compiled.node, et, hidden, out)
    return out, exact


def _add(node: ir.Node, et: EntityTable, hidden: frozenset[str], out: dict[str, str]) -> bool:
    if isinstance(node, ir.BoolOp) and node.op == "and":
        results = [_add(v, et, hidden, out) for v in node.values]
        return all(results)
    pair = _param(node, et, hidden)
    if pair is None or pair[0] in out:
        return False
    out[pair[0]] = pair[1]
    return True


def _field(node: ir.Node, et: EntityTable, hidden: frozenset[str]) -> str | None:
    known = isinstance(node, ir.FieldRef) and (
        node.name in et.columns or node.name in ("owner", "created_at", "updated_at")
    )
    if known and isinstance(node, ir.FieldRef) and node.name not in hidden:
        return node.name
    return None


def _param(node: ir.Node, et: EntityTable, hidden: frozenset[str]) -> tuple[str, str] | None:
    if isinstance(node, ir.Compare):
        left, right, op = node.left, node.right, node.op
        if isinstance(left, ir.Const) and isinstance(right, ir.FieldRef):
            left, right, op = right, left, _FLIP[op]
        name = _field(left, et, hidden)
        if name is None or not isinstance(right, ir.Const) or right.value is None:
            return None
        if op == "!=":
            return None  # the list's "ne" keeps blanks; the formula's does not
        return name + _OPS[op], _text(right.value)
    if isinstance(node, ir.InList) and node.items is not None:
        name = _field(node.needle, et, hidden)
        if name is None or not all(isinstance(i, ir.Const) for i in node.items):
            return None
        values = [_text(i.value) for i in node.items if isinstance(i, ir.Const)]
        if not node.negate:
            return (name + "__in", ",".join(values)) if values else None
        f = et.entity.fields.get(name)
        if f is None or not f.options:
            return None
        rest = [o.value for o in f.options if o.value not in values]
        return (name + "__in", ",".join(rest)) if rest else None
    if isinstance(node, ir.IsBlank):
        name = _field(node.operand, et, hidden)
        return None if name is None else (name + "__blank", "0" if node.negate else "1")
    if isinstance(node, ir.FieldRef):
        name = _field(node, et, hidden)
        return None if name is None else (name, "1")
    if isinstance(node, ir.Unary) and node.op == "not" and isinstance(node.operand, ir.FieldRef):
        name = _field(node.operand, et, hidden)
        return None if name is None else (name, "0")
    return None


def drill_params(
    kpi: Kpi,
    base: Mapping[str, str],
    dims: Sequence[Dimension],
    key: Sequence[Any],
    period: Period,
    filters: Mapping[str, str],
    owners: frozenset[str] | None,
    teams: Mapping[str, str],
) -> dict[str, str]:
    """The list filters that show one row's records (``dims``/``key`` empty: the total).

    ``base``: the KPI's ``where`` as filters (:func:`where_params`, worked out once).
    """
    out = dict(base)
    start, end = period.start, period.end  # [start, end)
    members: set[str] | None = set(owners) if owners is not None else None
    for dim, value in zip(dims, key, strict=True):
        if dim.kind == "time" and value is None:
            if kpi.date is not None:
                out[kpi.date + "__blank"] = "1"
        elif dim.kind == "time":
            first, last = value, bucket_end(dim.name, value) + timedelta(days=1)
            start = first if start is None or first > start else start
            end = last if end is None or last < end else end
        elif dim.kind == "owner":
            members = {value} if members is None else members & {value}
        elif dim.kind == "team":
            team = {o for o, t in teams.items() if t == value} | (
                {value} if value not in teams else set()
            )
            members = team if members is None else members & team
        elif value is None:
            out[dim.name + "__blank"] = "1"
        else:
            out[dim.name] = _text(value)
    if kpi.date is not None and (start is not None or end is not None):
        low = start.isoformat() if start is not None else ""
        high = (end - timedelta(days=1)).isoformat() if end is not None else ""
        out[kpi.date + "__between"] = f"{low},{high}"
    if members is not None:
        names = sorted(m for m in members if m)
        if len(names) == 1:
            out["owner"] = names[0]
        elif names:
            out["owner__in"] = ",".join(names)
        else:
            out["owner__blank"] = "1"
    elif filters.get("owner"):
        out["owner"] = filters["owner"]
    return out


class Drill:
    """The drill filters of every row of one result, each dimension value worked out once.

    A row's filters are the total's, with each dimension's own filters laid over
    them; a dashboard table of 50 owners by 24 months costs 74 small computations,
    not 1,200. Rows with two time or two people dimensions take the long way.
    """

    def __init__(
        self,
        kpi: Kpi,
        base: Mapping[str, str],
        dims: Sequence[Dimension],
        period: Period,
        filters: Mapping[str, str],
        owners: frozenset[str] | None,
        teams: Mapping[str, str],
    ) -> None:
        self.kpi, self.base, self.dims, self.period = kpi, base, tuple(dims), period
        self.filters, self.owners, self.teams = filters, owners, teams
        self.total = drill_params(kpi, base, (), (), period, filters, owners, teams)
        times = sum(1 for d in self.dims if d.kind == "time")
        people = sum(1 for d in self.dims if d.kind in ("owner", "team"))
        self.fast = times <= 1 and people <= 1
        self._pieces: list[dict[Any, tuple[dict[str, str], frozenset[str]]]] = [
            {} for _ in self.dims
        ]
        date_field = kpi.date or ""
        self._groups = (
            frozenset({"owner", "owner__in", "owner__blank"}),
            frozenset({date_field + "__between", date_field + "__blank"}),
        )

    def row(self, key: Sequence[Any]) -> dict[str, str]:
        if not self.fast:
            return drill_params(
                self.kpi,
                self.base,
                self.dims,
                key,
                self.period,
                self.filters,
                self.owners,
                self.teams,
            )
        out = dict(self.total)
        for index, value in enumerate(key):
            cache = self._pieces[index]
            found = cache.get(value)
            if found is None:
                piece = drill_params(
                    self.kpi,
                    self.base,
                    (self.dims[index],),
                    (value,),
                    self.period,
                    self.filters,
                    self.owners,
                    self.teams,
                )
                drop = frozenset().union(*(g for g in self._groups if not g.isdisjoint(piece)))
                found = cache[value] = (piece, drop)
            for name in found[1]:
                out.pop(name, None)
            out.update(found[0])
        return out
