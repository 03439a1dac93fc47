"""Evaluate KPIs for a viewer: one GROUP BY query, targets, comparison, labels, drill-down.

What the numbers mean (docs/kpis.md has the long form):

* **Records.** A KPI counts the records of its entity that the viewer may read
  (:meth:`Permissions.read_scope` is added to the query): a rep's KPI is the KPI
  over exactly their records, a manager's over their team's.
* **Dimensions.** ``by=None`` (or empty) means no grouping: the total only. A
  dimension is a time bucket (day, week, month, quarter, year of the KPI's date
  field, in the business time zone), ``owner``, ``team``, or a field of the
  entity. A field hidden from the viewer is refused (:class:`PermissionDenied`
  naming the field): grouping by it would show its values. The measure and
  ``where`` are the analyst's published definition and count every readable
  record, also through fields the viewer does not see.
* **Team.** The team an owner counts in, seen from a *root*: the manager named
  by the ``team`` filter, else the viewer. An owner below the root counts in
  the root's direct report they roll up to; the root's own records count in the
  root's team. An owner not below the root (an admin looking at everyone)
  counts in the top manager's direct report they roll up to; a user with no
  manager is their own team, and so is an owner who is not a user.
* **Blanks.** SUM and COUNT of nothing are 0; AVG, MIN, MAX and a ratio over
  nothing are blank (None), as is a division by zero and a NaN result.
* **Targets.** A constant applies to the total and every row. A target entity is
  summed over the same period (its own date field), within what the viewer may
  read of it, grouped by the dimensions its ``match`` maps (``team`` follows from
  ``owner``; time buckets from its date); a row whose dimensions the target does
  not match, or with no target rows, has no target. Attainment is
  ``100 * value / target``; gap is ``target - value``; both blank without a
  target or with a zero one.
* **Comparison.** ``compare=True`` evaluates the previous period of the same
  length and fills ``previous`` and ``change`` (percent); a time bucket is
  compared with the bucket one period earlier.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.errors import NotFound, PermissionDenied
from engine.expressions import EvalContext
from engine.i18n import T, normalise_lang
from engine.kpis.compile import (
    Dimension,
    KpiError,
    KpiQuery,
    additive,
    combine,
    dimension,
    parts,
    uses_context,
)
from engine.kpis.drill import Drill, where_params
from engine.kpis.labels import bucket_label, bucket_start, next_bucket, shift_back
from engine.kpis.periods import Period, PeriodError, resolve_period
from engine.kpis.result import KpiResult, KpiRow, Number
from engine.model import Blueprint, Kpi
from engine.permissions import Permissions
from engine.records import Actor
from engine.storage.schema import EntityTable, Schema
from engine.users import Hierarchy, UserService

__all__ = ["KpiError", "KpiRequest", "KpiService", "PeriodError"]

MAX_OWNERS_FILTER = 5000
_PLACES = Decimal("0.000001")
_INF = float("inf")
_FILTERS = ("team", "owner")


@dataclass(frozen=True)
class KpiRequest:
    """One KPI evaluation, as :meth:`KpiService.evaluate` takes it (for ``evaluate_many``)."""

    name: str
    by: Sequence[str] | None = None
    period: str | Period | None = None
    start: date | str | None = None
    end: date | str | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    compare: bool = False


@dataclass
class _Raw:
    """What the database said for one period: rows by key tuple, and the total."""

    rows: dict[tuple[Any, ...], Number]
    total: Number


def _number(value: Any) -> Number:
    """A database number as int or Decimal (6 places at most); NaN and None are blank."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (_INF, -_INF):
            return None
        d = Decimal(repr(value))  # the shortest text that reads back as this float
    else:
        try:
            d = value if isinstance(value, Decimal) else Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None
        if not d.is_finite():
            return None
    if d.as_tuple().exponent < -6:  # type: ignore[operator]
        d = d.quantize(_PLACES, rounding=ROUND_HALF_UP)
    d = d.normalize()
    if d.as_tuple().exponent > 0:  # type: ignore[operator]
        d = d.quantize(Decimal(1))
    return d


def _decimal(value: Any) -> Number:
    """A non-counting measure's value: a Decimal also when SQLite answers a whole number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return _number(value)


def _div(a: Number, b: Number) -> Number:
    if a is None or b is None or b == 0:
        return None
    return _number(Decimal(a) / Decimal(b))


def _sub(a: Number, b: Number) -> Number:
    if a is None or b is None:
        return None
    return _number(Decimal(a) - Decimal(b))


def _sum(values: Iterable[Number]) -> Number:
    present = [Decimal(v) for v in values if v is not None]
    return _number(sum(present, Decimal(0))) if present else None


class KpiService:
    """KPIs of one blueprint on one database, evaluated for a viewer."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        permissions: Permissions,
        users: UserService,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.permissions = permissions
        self.users = users
        self.clock = clock or users.clock
        self.tz = ZoneInfo(blueprint.timezone)
        self.dialect = engine.dialect.name
        self._queries: dict[tuple[Any, ...], KpiQuery] = {}

    # -- what may be seen ----------------------------------------------------------

    def kpi(self, name: str) -> Kpi:
        """The KPI called ``name``; NotFound (404) when the blueprint has none."""
        kpi = self.blueprint.kpis.get(name)
        if kpi is None:
            known = ", ".join(self.blueprint.kpis) or "-"
            raise NotFound(
                T(f"没有指标 '{name}'；已有：{known}", f"no KPI '{name}'; the KPIs are: {known}")
            )
        return kpi

    def may_see(self, actor: Actor, kpi: Kpi) -> bool:
        """Whether ``actor`` may evaluate ``kpi``: they may read some of its entity."""
        return self.permissions.can_read(actor, kpi.entity)

    def visible(self, actor: Actor) -> list[Kpi]:
        """The KPIs ``actor`` may evaluate, in blueprint order."""
        return [k for k in self.blueprint.kpis.values() if self.may_see(actor, k)]

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def period(
        self,
        period: str | Period | None,
        *,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> Period:
        """A period name (or a :class:`Period`) with optional custom bounds, resolved today."""
        if isinstance(period, Period):
            return period
        if period is not None and not isinstance(period, str):
            raise PeriodError(T("期间应为文本", "the period must be text"))
        return resolve_period(period or None, self.today(), start=start, end=end)

    # -- evaluating ----------------------------------------------------------------

    @contextmanager
    def _connection(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as fresh:
            yield fresh

    def evaluate(
        self,
        name: str,
        actor: Actor,
        *,
        by: Sequence[str] | str | None = None,
        period: str | Period | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        filters: Mapping[str, str] | None = None,
        compare: bool = False,
        lang: str | None = None,
        conn: Connection | None = None,
    ) -> KpiResult:
        """Evaluate the KPI ``name`` for ``actor`` (see the module doc for the meaning).

        ``by``: dimensions (a list or ``"owner,month"``); None or empty: the total
        only. ``period``: a name of :data:`~engine.kpis.periods.PERIOD_NAMES`,
        ``custom`` with ``start``/``end`` (inclusive), or a :class:`Period`; None
        without bounds means all time. ``filters``: ``team`` (a manager: records
        owned by their team) and/or ``owner`` (one user). Errors: NotFound for an
        unknown KPI, PermissionDenied for one the actor may not see or a hidden
        dimension, KpiError/PeriodError (400) for bad dimensions, filters, dates.
        """
        with self._connection(conn) as c:
            return self._evaluate(
                c,
                KpiRequest(
                    name,
                    _split(by),
                    period,
                    start,
                    end,
                    dict(filters or {}),
                    compare,
                ),
                actor,
                normalise_lang(lang or self.blueprint.default_locale),
            )

    def evaluate_many(
        self, requests: Iterable[KpiRequest], actor: Actor, *, lang: str | None = None
    ) -> list[KpiResult | Exception]:
        """Several KPIs on one connection (a dashboard); each answer or its error, in order.

        A failing request (a hidden dimension for this viewer, say) does not stop the
        others: its place holds the exception, for the caller to show per widget.
        """
        language = normalise_lang(lang or self.blueprint.default_locale)
        out: list[KpiResult | Exception] = []
        with self.engine.connect() as conn:
            for request in requests:
                try:
                    out.append(self._evaluate(conn, request, actor, language))
                except (KpiError, PeriodError, PermissionDenied, NotFound) as exc:
                    out.append(exc)
        return out

    def _evaluate(
        self, conn: Connection, request: KpiRequest, actor: Actor, lang: str
    ) -> KpiResult:
        kpi = self.kpi(request.name)
        et = self.schema.entity(kpi.entity)
        if not self.may_see(actor, kpi):
            raise PermissionDenied(
                T(
                    f"你无权查看指标 '{kpi.name}'（不能读取{kpi.label.get('zh')}）",
                    f"you may not see the KPI '{kpi.name}' (you cannot read "
                    f"{kpi.label.get('en')} records)",
                )
            )
        by = tuple(request.by or ())
        if len(set(by)) != len(by):
            raise KpiError(T("分组维度重复", "a dimension is listed twice"))
        dims = tuple(dimension(kpi, et, name) for name in by)
        hidden = self.permissions.hidden_fields(actor, kpi.entity)
        for dim in dims:
            if dim.kind == "field" and dim.name in hidden:
                raise PermissionDenied(
                    T(
                        f"你无权按字段 '{dim.name}' 分组（该字段对你隐藏）",
                        f"you may not group by the field '{dim.name}' (it is hidden from you)",
                    )
                )
        period = self.period(request.period, start=request.start, end=request.end)
        if period.bounded and kpi.date is None:
            raise KpiError(
                T(
                    f"指标 '{kpi.name}' 没有日期字段，不能按期间筛选",
                    f"KPI '{kpi.name}' has no date field and cannot be filtered by period",
                )
            )
        unknown = sorted(set(request.filters) - set(_FILTERS))
        if unknown:
            raise KpiError(
                T(
                    f"未知的筛选 '{unknown[0]}'；可用：team, owner",
                    f"unknown filter '{unknown[0]}'; use team or owner",
                )
            )
        needs_line = "team" in by or bool(request.filters.get("team"))
        managers = self._managers(conn) if needs_line else {}
        owners = self._owners(request.filters, managers)
        root = request.filters.get("team") or actor.name
        teams = _team_map(managers, root) if "team" in by else {}
        query = self._query(kpi, et, dims, actor)
        scope = self.permissions.read_scope(actor, et)
        current = self._run(conn, kpi, query, period, scope, owners, teams, by)
        previous_period = period.previous() if request.compare else None
        before = (
            self._run(conn, kpi, query, previous_period, scope, owners, teams, by)
            if previous_period is not None
            else None
        )
        targets = self._targets(conn, kpi, dims, actor, period, owners, teams)
        return self._result(
            conn,
            kpi,
            et,
            dims,
            actor,
            lang,
            period,
            previous_period,
            current,
            before,
            targets,
            request.filters,
            owners,
            teams,
        )

    def _managers(self, conn: Connection) -> dict[str, str | None]:
        """user -> manager: the reporting line (one query on this connection)."""
        users = self.schema.users
        return {
            name: manager
            for name, manager in conn.execute(sa.select(users.c.name, users.c.manager))
        }

    def _owners(
        self, filters: Mapping[str, str], managers: Mapping[str, str | None]
    ) -> frozenset[str] | None:
        owners: frozenset[str] | None = None
        team = filters.get("team")
        if team:
            if team not in managers:
                raise KpiError(
                    T(f"团队筛选：没有用户 '{team}'", f"team filter: there is no user '{team}'")
                )
            owners = frozenset(Hierarchy(managers).team(team))
        owner = filters.get("owner")
        if owner:
            owners = frozenset({owner}) if owners is None else owners & {owner}
        return owners

    def _query(
        self, kpi: Kpi, et: EntityTable, dims: tuple[Dimension, ...], actor: Actor
    ) -> KpiQuery:
        measure = kpi.measure.compiled
        where = kpi.where.compiled if kpi.where is not None else None
        dynamic = uses_context(measure) or (where is not None and uses_context(where))
        key = (kpi.name, tuple(d.name for d in dims))
        if not dynamic and key in self._queries:
            return self._queries[key]
        query = KpiQuery.build(
            et,
            measure,
            where,
            dims,
            date_field=kpi.date,
            owner_field="owner",
            dialect=self.dialect,
            tz=self.tz,
            ctx=self._ctx(actor),
        )
        if not dynamic:
            self._queries[key] = query
        return query

    def _ctx(self, actor: Actor) -> EvalContext:
        return EvalContext(values={}, user=actor.name, role=actor.role, now=self.clock, tz=self.tz)

    def _run(
        self,
        conn: Connection,
        kpi: Kpi,
        query: KpiQuery,
        period: Period,
        scope: Any,
        owners: frozenset[str] | None,
        teams: Mapping[str, str],
        by: tuple[str, ...],
    ) -> _Raw:
        if owners is not None and not owners:
            owners = frozenset({""})  # a filter nobody matches: still one honest query
        kw: dict[str, Any] = {
            "tz": self.tz,
            "start": period.start,
            "end": period.end,
            "scope": scope,
            "owners": owners,
            "teams": teams,
        }
        rows: dict[tuple[Any, ...], Number] = {}
        number = _number if query.integral else _decimal
        if not by:
            value = conn.execute(query.select(grouped=False, **kw)).scalar()
            return _Raw(rows, number(value))
        width = len(query.dims)
        leaves = parts(kpi.measure.compiled) if query.parts else None
        sums = [Decimal(0)] * len(query.parts)
        node = kpi.measure.compiled.node
        for record in conn.execute(query.select(**kw)):
            key = tuple(_key(d, record[i]) for i, d in enumerate(query.dims))
            if leaves is None:
                rows[key] = number(record[width])
                continue
            values = [Decimal(record[width + i] or 0) for i in range(len(sums))]
            rows[key] = _number(
                combine(node, {id(n): v for n, v in zip(leaves, values, strict=True)})
            )
            for index, value in enumerate(values):
                sums[index] += value
        if rows and additive(kpi.measure.compiled):
            total = _sum(rows.values())
        elif rows and leaves is not None:
            by_part = {id(node): sums[i] for i, node in enumerate(leaves)}
            total = _number(combine(kpi.measure.compiled.node, by_part))
        else:
            total = number(conn.execute(query.select(grouped=False, **kw)).scalar())
        return _Raw(rows, total)

    # -- targets -------------------------------------------------------------------

    def _targets(
        self,
        conn: Connection,
        kpi: Kpi,
        dims: tuple[Dimension, ...],
        actor: Actor,
        period: Period,
        owners: frozenset[str] | None,
        teams: Mapping[str, str],
    ) -> _Targets:
        target = kpi.target
        if target is None:
            return _Targets(None, None, None)
        if target.entity is None or target.measure is None:
            constant = _number(target.value) if target.value is not None else None
            return _Targets(constant, constant, None)
        if not self.permissions.can_read(actor, target.entity):
            return _Targets(None, None, None)
        tet = self.schema.entity(target.entity)
        owner_field = target.match.get("owner")
        if owners is not None and owner_field is None:
            return _Targets(None, None, None)  # a team/owner filter the targets cannot follow
        matched: list[Dimension] = []
        positions: list[int] = []
        for index, dim in enumerate(dims):
            if dim.kind == "time" and target.date is not None:
                matched.append(dim)
            elif dim.kind in ("owner", "team") and owner_field is not None:
                matched.append(Dimension(dim.name, dim.kind))
            elif dim.kind == "field" and dim.name in target.match:
                matched.append(dim)
            else:
                continue
            positions.append(index)
        grouped = bool(dims) and len(matched) == len(dims)
        tdims = tuple(matched) if grouped else ()
        key = ("target", kpi.name, tuple(d.name for d in tdims))
        tquery = self._queries.get(key)
        if tquery is None:
            tquery = KpiQuery.build(
                tet,
                target.measure.compiled,
                None,
                tdims,
                date_field=target.date,
                owner_field=owner_field,
                dialect=self.dialect,
                tz=self.tz,
                ctx=self._ctx(actor),
                field_of=target.match,
            )
            if not uses_context(target.measure.compiled):
                self._queries[key] = tquery
        scope = self.permissions.read_scope(actor, tet)
        kw: dict[str, Any] = {
            "tz": self.tz,
            "start": period.start if target.date else None,
            "end": period.end if target.date else None,
            "scope": scope,
            "owners": (owners or frozenset({""})) if owners is not None else None,
            "teams": teams,
        }
        rows: dict[tuple[Any, ...], Number] | None = None
        tnumber = _number if tquery.integral else _decimal
        if grouped:
            rows = {}
            for record in conn.execute(tquery.select(**kw)):
                key = tuple(_key(d, record[i]) for i, d in enumerate(tdims))
                rows[key] = tnumber(record[len(tdims)])
            if additive(target.measure.compiled):
                total = _sum(rows.values())
            else:
                total = tnumber(conn.execute(tquery.select(grouped=False, **kw)).scalar())
        else:
            count = sa.func.count().label("n")
            stmt = tquery.select(grouped=False, **kw).add_columns(count)
            found = conn.execute(stmt).one()
            total = tnumber(found[0]) if found[-1] else None
        return _Targets(total, None, rows)

    # -- the answer ------------------------------------------------------------------

    def _result(
        self,
        conn: Connection,
        kpi: Kpi,
        et: EntityTable,
        dims: tuple[Dimension, ...],
        actor: Actor,
        lang: str,
        period: Period,
        previous_period: Period | None,
        current: _Raw,
        before: _Raw | None,
        targets: _Targets,
        filters: Mapping[str, str],
        owners: frozenset[str] | None,
        teams: Mapping[str, str],
    ) -> KpiResult:
        hidden = self.permissions.hidden_fields(actor, kpi.entity)
        base, exact = where_params(kpi, et, hidden)
        drill = Drill(kpi, base, dims, period, filters, owners, teams)
        keys = list(current.rows)
        if len(dims) == 1 and dims[0].kind == "time" and period.start and period.end:
            for start in _buckets(dims[0].name, period.start, period.end):
                if (start,) not in current.rows:
                    current.rows[(start,)] = _empty(kpi, current.total)
                    keys.append((start,))
        labels = self._labels(conn, dims, keys, actor, lang)
        memo: dict[tuple[int, Any], Any] = {}

        def order(key: tuple[Any, ...]) -> tuple[Any, ...]:
            out = []
            for index, value in enumerate(key):
                part = memo.get((index, value))
                if part is None:
                    part = memo[(index, value)] = _order_part(dims[index], value, labels)
                out.append(part)
            return tuple(out)

        keys.sort(key=order)
        shift = _shift(period, previous_period)
        rows: list[KpiRow] = []
        drills: list[dict[str, str]] = []
        for key in keys:
            value = current.rows[key]
            target = targets.row(key)
            previous: Number = None
            if before is not None:
                prev_key = tuple(
                    shift_back(d.name, k, shift) if d.kind == "time" and k is not None else k
                    for d, k in zip(dims, key, strict=True)
                )
                previous = before.rows.get(prev_key, _empty(kpi, before.total))
            rows.append(
                _row(
                    dict(zip((d.name for d in dims), key, strict=True)),
                    {d.name: labels[(d.name, k)] for d, k in zip(dims, key, strict=True)},
                    value,
                    target,
                    previous if before is not None else None,
                    before is not None,
                    kpi.better,
                )
            )
            drills.append(drill.row(key))
        total = _row(
            {},
            {},
            current.total,
            targets.total,
            before.total if before is not None else None,
            before is not None,
            kpi.better,
        )
        return KpiResult(
            name=kpi.name,
            label=kpi.label.get(lang),
            format=kpi.format,
            by=tuple(d.name for d in dims),
            period=period,
            rows=rows,
            total=total,
            previous_period=previous_period,
            drill=drills,
            drill_total=drill.total,
            drill_exact=exact,
            better=kpi.better,
        )

    def _labels(
        self,
        conn: Connection,
        dims: tuple[Dimension, ...],
        keys: list[tuple[Any, ...]],
        actor: Actor,
        lang: str,
    ) -> dict[tuple[str, Any], str]:
        """(dimension, raw value) -> label, with one query per kind of lookup."""
        out: dict[tuple[str, Any], str] = {}
        people: set[str] = set()
        refs: dict[str, set[int]] = {}
        for index, dim in enumerate(dims):
            values = {k[index] for k in keys}
            if dim.kind in ("owner", "team") or (
                dim.field is not None and dim.field.kind == "user"
            ):
                people |= {v for v in values if isinstance(v, str)}
            elif dim.field is not None and dim.field.kind == "ref" and dim.field.to:
                refs.setdefault(dim.field.to, set()).update(v for v in values if v is not None)
        names = self._user_labels(conn, people)
        titles = {to: self._titles(conn, to, ids, actor) for to, ids in refs.items()}
        blank = T("（空）", "(blank)").get(lang)
        for index, dim in enumerate(dims):
            for k in {key[index] for key in keys}:
                if k is None:
                    text = blank
                elif dim.kind == "time":
                    text = bucket_label(dim.name, k, lang)
                elif dim.kind in ("owner", "team") or (
                    dim.field is not None and dim.field.kind == "user"
                ):
                    text = names.get(k, k)
                elif dim.field is not None and dim.field.kind == "ref" and dim.field.to:
                    title = titles[dim.field.to].get(k)
                    text = str(title) if title not in (None, "") else f"#{k}"
                elif dim.field is not None and dim.field.options:
                    option = dim.field.option(str(k))
                    text = option.label.get(lang) if option is not None else str(k)
                elif isinstance(k, bool):
                    text = T("是", "Yes").get(lang) if k else T("否", "No").get(lang)
                else:
                    text = k.isoformat() if isinstance(k, date) else str(k)
                out[(dim.name, k)] = text
        return out

    def _user_labels(self, conn: Connection, names: set[str]) -> dict[str, str]:
        if not names:
            return {}
        users = self.schema.users
        stmt = sa.select(users.c.name, users.c.display_name).where(
            users.c.name.in_(sa.bindparam("names", expanding=True))
        )
        out: dict[str, str] = {}
        wanted = sorted(names)
        for start in range(0, len(wanted), 500):
            for name, display in conn.execute(stmt, {"names": wanted[start : start + 500]}):
                out[name] = display or name
        return out

    def _titles(self, conn: Connection, entity: str, ids: set[int], actor: Actor) -> dict[int, Any]:
        """Titles of referenced records the viewer may read (others show as ``#id``)."""
        et = self.schema.entity(entity)
        title = et.entity.title_field
        if (
            not ids
            or title is None
            or title not in et.columns
            or title in self.permissions.hidden_fields(actor, entity)
        ):
            return {}
        stmt = sa.select(et.table.c.id, et.columns[title]).where(
            et.table.c.id.in_(sa.bindparam("ids", expanding=True))
        )
        scope = self.permissions.read_scope(actor, et)
        if scope is not None:
            stmt = stmt.where(scope)
        out: dict[int, Any] = {}
        wanted = sorted(ids)
        for start in range(0, len(wanted), 500):
            for rid, value in conn.execute(stmt, {"ids": wanted[start : start + 500]}):
                out[int(rid)] = value
        return out


@dataclass
class _Targets:
    total: Number
    constant: Number  # applies to every row
    rows: dict[tuple[Any, ...], Number] | None  # grouped like the KPI rows

    def row(self, key: tuple[Any, ...]) -> Number:
        if self.constant is not None:
            return self.constant
        if self.rows is None:
            return None
        return self.rows.get(key)


def _row(
    keys: dict[str, Any],
    labels: dict[str, str],
    value: Number,
    target: Number,
    previous: Number,
    comparing: bool,
    better: str = "higher",
) -> KpiRow:
    if better == "lower":
        # At the target 100%, at zero 200%, at twice the target 0%: the usual
        # "2 - actual / target" of lower-is-better scorecards (defined at zero,
        # where target / actual is not). The gap is what is left to cut.
        cut = None if value is None or target is None else 2 * Decimal(target) - Decimal(value)
        attainment = _div(None if cut is None else cut * 100, target)
        gap = _sub(value, target) if target not in (None, 0) else None
    else:
        attainment = _div(None if value is None else Decimal(value) * 100, target)
        gap = _sub(target, value) if target not in (None, 0) else None
    change: Number = None
    if comparing and previous not in (None, 0) and value is not None:
        assert previous is not None
        change = _div((Decimal(value) - Decimal(previous)) * 100, abs(Decimal(previous)))
    return KpiRow(
        keys=keys,
        labels=labels,
        value=value,
        target=target,
        attainment=attainment,
        gap=gap,
        previous=previous,
        change=change,
    )


def _split(by: Sequence[str] | str | None) -> tuple[str, ...]:
    if by is None:
        return ()
    if isinstance(by, str):
        return tuple(part.strip() for part in by.split(",") if part.strip())
    return tuple(by)


def _key(dim: Dimension, value: Any) -> Any:
    """A raw group value as the result shows it (dates for buckets, ints for refs)."""
    if value is None:
        return None
    if dim.kind == "time" or dim.storage == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            return _day(value)
        return value
    if dim.storage == "ref":
        return int(value)
    if dim.storage == "boolean":
        return bool(value)
    if dim.storage == "decimal":
        return _number(value)
    return value


@functools.lru_cache(maxsize=4096)
def _day(text: str) -> date:
    """A bucket as SQLite gives it: 'YYYY-MM-DD', 'YYYY-MM' or 'YYYY' (first day implied)."""
    if len(text) == 4:
        return date(int(text), 1, 1)
    if len(text) == 7:
        return date(int(text[:4]), int(text[5:7]), 1)
    return date.fromisoformat(text[:10])


def _empty(kpi: Kpi, like: Number) -> Number:
    """The value of the measure over no records: 0 for sums and counts, else blank.

    ``like``: a value of the same measure, to answer 0 as an int or a Decimal alike."""
    if not additive(kpi.measure.compiled):
        return None
    return 0 if isinstance(like, int) else Decimal(0)


def _buckets(bucket: str, start: date, end: date) -> list[date]:
    out: list[date] = []
    current = bucket_start(bucket, start)
    while current < end and len(out) < 1000:
        out.append(current)
        current = next_bucket(bucket, current)
    return out


def _shift(period: Period, previous: Period | None) -> tuple[str, int]:
    """How far back the previous period is: ("months", n) or ("days", n)."""
    if previous is None or period.start is None or previous.start is None:
        return ("days", 0)
    if period.unit in ("month", "quarter", "year"):
        return ("months", {"month": 1, "quarter": 3, "year": 12}[period.unit])
    return ("days", (period.start - previous.start).days)


def _order_part(dim: Dimension, value: Any, labels: Mapping[tuple[str, Any], str]) -> Any:
    """Where one dimension value sorts: time in order, options in option order, blanks last."""
    if value is None:
        return (1, 0, "")
    if dim.kind == "time" or isinstance(value, date):
        return (0, value.toordinal(), "")
    if dim.field is not None and dim.field.options:
        return (0, _option_index(dim.field.options, value), str(value))
    if isinstance(value, bool | int | Decimal):
        return (0, float(value), "")
    return (0, 0, labels.get((dim.name, value), str(value)).casefold())


def _option_index(options: tuple[Any, ...], value: Any) -> int:
    for index, option in enumerate(options):
        if option.value == value:
            return index
    return len(options)


def _team_map(managers: Mapping[str, str | None], root: str | None) -> dict[str, str]:
    """owner -> the team they count in, seen from ``root`` (see the module doc)."""
    out: dict[str, str] = {}
    for name in managers:
        chain = [name]
        seen = {name}
        current = managers.get(name)
        while current is not None and current not in seen:
            chain.append(current)
            seen.add(current)
            current = managers.get(current)
        if root is not None and root in chain:
            index = chain.index(root)
            out[name] = chain[index - 1] if index > 0 else root
        else:
            out[name] = chain[-2] if len(chain) >= 2 else chain[-1]
    return out


def team_members(teams: Mapping[str, str], team: str) -> list[str]:
    """Everyone who counts in ``team`` (for a drill-down to the list page)."""
    members = {owner for owner, t in teams.items() if t == team}
    if team not in teams:
        members.add(team)
    return sorted(members)
