"""Forecast snapshots: today's forecast kept, to see later why a figure moved.

A snapshot stores, in ``ff_forecast_snapshots``, who took it, when, for which
forecast and period (its dates as resolved that day), the blueprint version
(its digest) and the figures by month × category × owner; and, in
``ff_forecast_snapshot_deals``, every counted deal's category, stage, month,
amount and weighted amount. Comparing recomputes the same forecast over the
same dates now and names the deals behind each category's change: those that
entered or left it, and those whose amount changed while staying.

Who sees what: a snapshot is listed to the one who took it, to their managers
(it is in their team) and to anyone who reads every deal; its deals are shown
only where the viewer may read them now or the deal's owner (then) is in the
viewer's team, so a comparison never names a deal the viewer could not see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.errors import NotFound, PermissionDenied
from engine.i18n import T
from engine.kpis.forecast import CATEGORY_LABELS, Deal, ForecastService, money
from engine.kpis.periods import Period
from engine.model import FORECAST_CATEGORIES
from engine.records import Actor
from engine.storage.schema import FORECAST_SNAPSHOT_DEALS_TABLE, FORECAST_SNAPSHOTS_TABLE


@dataclass(frozen=True)
class Snapshot:
    id: int
    forecast: str
    taken_at: datetime
    user: str | None
    period: Period
    blueprint_digest: str
    figures: dict[str, Any]
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "forecast": self.forecast,
            "taken_at": self.taken_at.isoformat(),
            "user": self.user,
            "period": _period_json(self.period),
            "blueprint_digest": self.blueprint_digest,
            "figures": self.figures,
            "note": self.note,
        }


@dataclass(frozen=True)
class DealChange:
    """One deal that moved between the snapshot and now (a side is None when absent)."""

    id: int
    title: str | None
    owner: str | None
    before_category: str | None
    now_category: str | None
    before_amount: Decimal | None
    now_amount: Decimal | None

    @property
    def kind(self) -> str:
        """added | removed | moved (category) | amount (same category, other amount)."""
        if self.before_category is None:
            return "added"
        if self.now_category is None:
            return "removed"
        if self.before_category != self.now_category:
            return "moved"
        return "amount"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "owner": self.owner,
            "kind": self.kind,
            "before_category": self.before_category,
            "now_category": self.now_category,
            "before_amount": None if self.before_amount is None else str(self.before_amount),
            "now_amount": None if self.now_amount is None else str(self.now_amount),
        }


@dataclass(frozen=True)
class CategoryChange:
    category: str
    label: str
    before: Decimal
    now: Decimal
    entered: list[DealChange]
    left: list[DealChange]
    changed: list[DealChange]

    @property
    def change(self) -> Decimal:
        return self.now - self.before

    def as_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "label": self.label,
            "before": str(self.before),
            "now": str(self.now),
            "change": str(self.change),
            "entered": [d.as_json() for d in self.entered],
            "left": [d.as_json() for d in self.left],
            "changed": [d.as_json() for d in self.changed],
        }


@dataclass
class Comparison:
    snapshot: Snapshot
    categories: list[CategoryChange]
    deals: list[DealChange] = field(default_factory=list)
    #: the blueprint changed since the snapshot (categories may mean other stages)
    blueprint_changed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.as_json(),
            "blueprint_changed": self.blueprint_changed,
            "categories": [c.as_json() for c in self.categories],
        }


def _period_json(period: Period) -> dict[str, Any]:
    return {
        "name": period.name,
        "start": period.start.isoformat() if period.start else None,
        "end": period.end.isoformat() if period.end else None,
        "unit": period.unit,
    }


def _period_of(raw: Any) -> Period:
    data = raw if isinstance(raw, dict) else {}
    start, end = data.get("start"), data.get("end")
    return Period(
        str(data.get("name") or "all"),
        date.fromisoformat(start) if start else None,
        date.fromisoformat(end) if end else None,
        str(data.get("unit") or "custom"),
    )


class SnapshotService:
    """Take, list and compare forecast snapshots."""

    def __init__(
        self, forecasts: ForecastService, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.forecasts = forecasts
        tables = forecasts.schema.metadata.tables
        self.table: sa.Table = tables[FORECAST_SNAPSHOTS_TABLE]
        self.deals_table: sa.Table = tables[FORECAST_SNAPSHOT_DEALS_TABLE]
        self.clock = clock or forecasts.clock

    # -- taking ---------------------------------------------------------------------------
    def take(
        self,
        actor: Actor,
        *,
        name: str | None = None,
        period: Period | None = None,
        note: str | None = None,
    ) -> Snapshot:
        """Store the forecast as ``actor`` sees it now (figures and every counted deal)."""
        fc = self.forecasts.definition(name)
        period = period or Period("all")
        result = self.forecasts.evaluate(actor, name=fc.name, period=period)
        deals = self.forecasts.deals(actor, name=fc.name, period=period)
        figures = {
            "rows": [
                {
                    "month": g.keys["month"].isoformat() if g.keys["month"] else None,
                    "category": g.keys["category"],
                    "owner": g.keys["owner"],
                    **g.figures.as_json(),
                }
                for g in result.breakdown(("month", "category", "owner"))
            ],
            "categories": {
                g.keys["category"]: g.figures.as_json() for g in result.breakdown(("category",))
            },
            "total": result.total().as_json(),
            "rates": {r.stage: None if r.rate is None else str(r.rate) for r in result.rates},
        }
        taken = self.clock()
        with self.forecasts.engine.begin() as conn:
            row = conn.execute(
                self.table.insert().returning(self.table.c.id),
                {
                    "forecast": fc.name,
                    "taken_at": taken,
                    "user": actor.name,
                    "period": _period_json(period),
                    "blueprint_digest": self.forecasts.blueprint.digest,
                    "figures": figures,
                    "note": note,
                },
            ).one()
            snapshot_id = int(row[0])
            if deals:
                conn.execute(
                    self.deals_table.insert(),
                    [
                        {
                            "snapshot_id": snapshot_id,
                            "record_id": d.id,
                            "title": (d.title or "")[:500] or None,
                            "owner": d.owner,
                            "stage": d.stage,
                            "category": d.category,
                            "month": d.month,
                            "amount": d.amount,
                            "weighted": d.weighted,
                        }
                        for d in deals
                    ],
                )
        return Snapshot(
            snapshot_id,
            fc.name,
            taken,
            actor.name,
            period,
            self.forecasts.blueprint.digest,
            figures,
            note,
        )

    # -- reading --------------------------------------------------------------------------
    def _snapshot(self, row: Any) -> Snapshot:
        taken = row.taken_at
        return Snapshot(
            int(row.id),
            row.forecast,
            taken,
            row.user,
            _period_of(row.period),
            row.blueprint_digest,
            dict(row.figures),
            row.note,
        )

    def _everything(self, actor: Actor, entity: str) -> bool:
        if actor.is_system:
            return True
        et = self.forecasts.schema.entity(entity)
        return self.forecasts.permissions.read_scope(actor, et) is None

    def _team(self, actor: Actor) -> frozenset[str]:
        return self.forecasts.users.team(actor.name) if actor.name else frozenset()

    def history(self, actor: Actor, *, name: str | None = None, limit: int = 50) -> list[Snapshot]:
        """The snapshots of a forecast ``actor`` may see, newest first."""
        fc = self.forecasts.definition(name)
        stmt = sa.select(self.table).where(self.table.c.forecast == fc.name)
        if not self._everything(actor, fc.entity):
            stmt = stmt.where(self.table.c.user.in_(sorted(self._team(actor))))
        stmt = stmt.order_by(self.table.c.id.desc()).limit(limit)
        with self.forecasts.engine.connect() as conn:
            return [self._snapshot(r) for r in conn.execute(stmt)]

    def get(self, actor: Actor, ref: int | str, *, name: str | None = None) -> Snapshot:
        """Snapshot ``ref`` (an id, or ``latest`` of the forecast) if ``actor`` may see it."""
        fc = self.forecasts.definition(name)
        if str(ref).strip().lower() == "latest":
            found = self.history(actor, name=fc.name, limit=1)
            if not found:
                raise NotFound(
                    T(
                        f"预测 '{fc.name}' 还没有快照（formflow forecast snapshot 可以创建）",
                        f"the forecast '{fc.name}' has no snapshot yet "
                        "(take one with formflow forecast snapshot)",
                    )
                )
            return found[0]
        try:
            snapshot_id = int(str(ref).strip())
        except ValueError:
            raise NotFound(
                T(
                    f"快照编号 '{ref}' 无效（写数字或 latest）",
                    f"bad snapshot id '{ref}' (a number or latest)",
                )
            ) from None
        with self.forecasts.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.id == snapshot_id)).first()
        if row is None:
            raise NotFound(T(f"快照 {snapshot_id} 不存在", f"no snapshot {snapshot_id}"))
        snapshot = self._snapshot(row)
        if not self._everything(actor, fc.entity) and snapshot.user not in self._team(actor):
            raise PermissionDenied(
                T(f"没有权限查看快照 {snapshot_id}", f"you may not see snapshot {snapshot_id}")
            )
        return snapshot

    def snapshot_deals(self, actor: Actor, snapshot: Snapshot) -> list[Deal]:
        """The snapshot's deals ``actor`` may see (see the module doc)."""
        t = self.deals_table
        with self.forecasts.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.snapshot_id == snapshot.id).order_by(t.c.record_id)
            ).all()
        deals = [
            Deal(
                int(r.record_id),
                r.title,
                r.owner,
                r.stage,
                r.category,
                r.month,
                money(r.amount),
                money(r.weighted),
            )
            for r in rows
        ]
        fc = self.forecasts.definition(snapshot.forecast)
        if self._everything(actor, fc.entity):
            return deals
        team = self._team(actor)
        readable = self._readable(actor, fc.entity, [d.id for d in deals if d.owner not in team])
        return [d for d in deals if d.owner in team or d.id in readable]

    def _readable(self, actor: Actor, entity: str, ids: Iterable[int]) -> set[int]:
        wanted = sorted(set(ids))
        if not wanted:
            return set()
        et = self.forecasts.schema.entity(entity)
        scope = self.forecasts.permissions.read_scope(actor, et)
        out: set[int] = set()
        with self.forecasts.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                stmt = sa.select(et.table.c.id).where(et.table.c.id.in_(wanted[i : i + 500]))
                if scope is not None:
                    stmt = stmt.where(scope)
                out.update(int(r[0]) for r in conn.execute(stmt))
        return out

    # -- comparing ------------------------------------------------------------------------
    def compare(
        self, actor: Actor, ref: int | str, *, name: str | None = None, lang: str = "zh"
    ) -> Comparison:
        """Now vs snapshot ``ref``, over the snapshot's dates, per category with the deals."""
        snapshot = self.get(actor, ref, name=name)
        before = {d.id: d for d in self.snapshot_deals(actor, snapshot)}
        now = {
            d.id: d
            for d in self.forecasts.deals(actor, name=snapshot.forecast, period=snapshot.period)
        }
        changes: list[DealChange] = []
        for deal_id in sorted(set(before) | set(now)):
            b, n = before.get(deal_id), now.get(deal_id)
            if b is not None and n is not None and (b.category, b.amount) == (n.category, n.amount):
                continue
            changes.append(
                DealChange(
                    deal_id,
                    (n or b).title,  # type: ignore[union-attr]
                    (n or b).owner,  # type: ignore[union-attr]
                    b.category if b else None,
                    n.category if n else None,
                    b.amount if b else None,
                    n.amount if n else None,
                )
            )
        categories = []
        for category in FORECAST_CATEGORIES:
            was = sum(
                (d.amount for d in before.values() if d.category == category), Decimal("0.00")
            )
            is_ = sum((d.amount for d in now.values() if d.category == category), Decimal("0.00"))
            categories.append(
                CategoryChange(
                    category,
                    CATEGORY_LABELS[category].get(lang),
                    was,
                    is_,
                    entered=[c for c in changes if c.now_category == category != c.before_category],
                    left=[c for c in changes if c.before_category == category != c.now_category],
                    changed=[c for c in changes if c.before_category == category == c.now_category],
                )
            )
        return Comparison(
            snapshot,
            categories,
            changes,
            blueprint_changed=snapshot.blueprint_digest != self.forecasts.blueprint.digest,
        )
