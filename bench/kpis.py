"""KPIs through the engine vs the SQL a DBA would write by hand, measured in one run.

Builds N opportunities (default 1,000,000; 50 owners under 5 managers; close
dates over 24 months) by inserting raw rows, then times, as the median of
``--repeat`` runs (engine and hand-written SQL interleaved):

(a) revenue (won amount) by owner and month, (b) weighted pipeline,
(c) win rate — each through ``KpiService.evaluate`` (the full path: permission
scope, the compiled GROUP BY, labels of the 50 owners, targets, drill filters)
and through hand-written SQL on the same connection kind (DB-API, no ORM).
Target: engine <= 1.2x hand-written for each.

Then a 6-widget dashboard through ``KpiService.evaluate_many`` against its 6
hand-written queries run one after the other. Target: <= 1.5x.

Runs of the engine and of the hand-written SQL alternate, so a machine that is
busy with something else slows both sides alike.

SQLite always; PostgreSQL too when reachable (``--pg URL``, default the local
server; ``--pg-rows`` may be smaller because COPY-ing 1M rows takes a while).

Usage: python bench/kpis.py [--rows 1000000] [--pg-rows N] [--repeat 5] [--no-pg]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from engine.kpis import KpiRequest  # noqa: E402
from engine.loader import load  # noqa: E402
from engine.runtime import build_runtime  # noqa: E402
from engine.storage.database import create_engine  # noqa: E402
from engine.storage.migrate import initialise  # noqa: E402

BLUEPRINT = """
formflow: 1
id: bench
title: Bench
timezone: Asia/Shanghai
roles:
  rep: {zh: 销售, en: Rep}
entities:
  opportunity:
    label: Opportunity
    fields:
      stage: {type: choice, label: Stage, options: [lead, needs, proposal, contract, won, lost]}
      amount: {type: money, label: Amount}
      probability: {type: percent, label: Probability}
      weighted: {type: money, label: Weighted}
      close_date: {type: date, label: Close date}
    access:
      rep: {read: own}
kpis:
  revenue:
    label: Revenue
    entity: opportunity
    measure: "SUM(amount)"
    where: "stage == 'won'"
    date: close_date
    by: [owner, month, quarter]
    format: money
  pipeline:
    label: Weighted pipeline
    entity: opportunity
    measure: "SUM(weighted)"
    where: "stage not in ['won', 'lost']"
    date: close_date
    by: [owner, stage]
    format: money
  win_rate:
    label: Win rate
    entity: opportunity
    measure: "100 * COUNT(stage == 'won') / COUNT(stage in ['won', 'lost'])"
    date: close_date
    by: [owner, quarter]
    target: 30
    format: percent
"""

STAGES = ["lead", "needs", "proposal", "contract", "won", "lost"]
PROBABILITY = {"lead": 10, "needs": 30, "proposal": 60, "contract": 90, "won": 100, "lost": 0}
NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # today in Shanghai: 2026-06-15
FIRST = date(2024, 7, 1)  # 24 months up to the end of June 2026
DAYS = (date(2026, 7, 1) - FIRST).days
OWNERS = [f"rep{i:02d}" for i in range(50)]


def rows(n: int, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(seed)
    stamp = "2024-01-01 00:00:00.000000"
    for i in range(n):
        stage = STAGES[rnd.randrange(6)]
        amount = round(rnd.uniform(1000, 500000), 2)
        probability = PROBABILITY[stage]
        weighted = 0.0 if stage == "lost" else round(amount * probability / 100, 2)
        close = (FIRST + timedelta(days=rnd.randrange(DAYS))).isoformat()
        owner = OWNERS[i % 50]
        yield (owner, stamp, stamp, stage, amount, probability, weighted, close)


COLUMNS = "owner, created_at, updated_at, version, stage, amount, probability, weighted, close_date"


def fill_sqlite(engine: sa.Engine, n: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")  # one transaction (the engine's connections autocommit)
        cur.executemany(
            f"INSERT INTO e_opportunity ({COLUMNS}) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
            ((o, c, u, s, a, p, w, d) for o, c, u, s, a, p, w, d in rows(n)),
        )
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def fill_postgres(engine: sa.Engine, n: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY e_opportunity ({COLUMNS}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for o, c, u, s, a, p, w, d in rows(n):
                copy.write_row((o, c + "+00", u + "+00", 1, s, a, p, w, d))
        raw.commit()
        cur.execute("ANALYZE e_opportunity")
        raw.commit()
    finally:
        raw.close()


def hand_sql(dialect: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The queries a DBA would write, one per engine request below."""
    if dialect == "sqlite":
        month = "substr(close_date, 1, 7)"
        quarter = (
            "substr(close_date, 1, 5) || substr('010101040404070707101010', "
            "CAST(substr(close_date, 6, 2) AS INTEGER) * 2 - 1, 2)"
        )
        ratio = "100.0 * SUM(CASE WHEN stage = 'won' THEN 1 ELSE 0 END) / NULLIF(SUM(CASE WHEN stage IN ('won', 'lost') THEN 1 ELSE 0 END), 0)"  # noqa: E501
        p = "?"
    else:
        month = "date_trunc('month', close_date::timestamp)"  # a DBA's usual form
        quarter = "date_trunc('quarter', close_date::timestamp)"
        ratio = "100.0 * COUNT(*) FILTER (WHERE stage = 'won') / NULLIF(COUNT(*) FILTER (WHERE stage IN ('won', 'lost')), 0)"  # noqa: E501
        p = "%s"
    year = (date(2026, 1, 1), date(2027, 1, 1))
    quarter_range = (date(2026, 4, 1), date(2026, 7, 1))
    month_range = (date(2026, 6, 1), date(2026, 7, 1))
    return {
        "a": (
            f"SELECT owner, {month} AS m, SUM(amount) FROM e_opportunity "
            "WHERE stage = 'won' GROUP BY owner, m",
            {},
        ),
        "b": (
            "SELECT SUM(weighted) FROM e_opportunity WHERE stage NOT IN ('won', 'lost')",
            {},
        ),
        "c": (f"SELECT {ratio} FROM e_opportunity", {}),
        "d1": (
            f"SELECT SUM(amount) FROM e_opportunity WHERE stage = 'won' "
            f"AND close_date >= {p} AND close_date < {p}",
            {"args": month_range},
        ),
        "d2": (
            f"SELECT {month} AS m, SUM(amount) FROM e_opportunity WHERE stage = 'won' "
            f"AND close_date >= {p} AND close_date < {p} GROUP BY m",
            {"args": year},
        ),
        "d3": (
            f"SELECT {quarter} AS q, {ratio} FROM e_opportunity "
            f"WHERE close_date >= {p} AND close_date < {p} GROUP BY q",
            {"args": year},
        ),
        "d4": (
            "SELECT stage, SUM(weighted) FROM e_opportunity "
            "WHERE stage NOT IN ('won', 'lost') GROUP BY stage",
            {},
        ),
        "d5": (
            f"SELECT owner, SUM(amount) FROM e_opportunity WHERE stage = 'won' "
            f"AND close_date >= {p} AND close_date < {p} GROUP BY owner",
            {"args": quarter_range},
        ),
        "d6": (
            f"SELECT {ratio} FROM e_opportunity WHERE close_date >= {p} AND close_date < {p}",
            {"args": year},
        ),
    }


ENGINE_REQUESTS = {
    "a": KpiRequest("revenue", ("owner", "month")),
    "b": KpiRequest("pipeline"),
    "c": KpiRequest("win_rate"),
}
DASHBOARD = [
    KpiRequest("revenue", (), "this_month", compare=False),
    KpiRequest("revenue", ("month",), "this_year"),
    KpiRequest("win_rate", ("quarter",), "this_year"),
    KpiRequest("pipeline", ("stage",)),
    KpiRequest("revenue", ("owner",), "this_quarter"),
    KpiRequest("win_rate", (), "this_year"),
]


def median_times(
    first: Callable[[], Any], second: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Medians of ``repeat`` runs of each, interleaved so that a busy machine slows both."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        for fn, times in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def run(url: str, n: int, repeat: int, label: str) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(BLUEPRINT, encoding="utf-8")
        bp = load(path)
        engine = create_engine(url)
        rt = build_runtime(bp, engine, clock=lambda: NOW)
        initialise(engine, bp, rt.schema)
        rt.users.add("root", roles=["admin"])
        for m in range(5):
            rt.users.add(f"mgr{m}", roles=["rep"])
        for i, owner in enumerate(OWNERS):
            rt.users.add(owner, roles=["rep"], manager=f"mgr{i % 5}", display_name=f"Rep {i}")
        started = time.perf_counter()
        (fill_sqlite if engine.dialect.name == "sqlite" else fill_postgres)(engine, n)
        print(f"[{label}] {n:,} rows inserted in {time.perf_counter() - started:.1f}s")
        root = rt.users.get("root").actor
        sql = hand_sql(engine.dialect.name)
        raw = engine.raw_connection()

        def hand(key: str) -> Callable[[], Any]:
            text, extra = sql[key]

            def go() -> Any:
                cur = raw.cursor()
                cur.execute(text, extra.get("args", ()))
                return cur.fetchall()

            return go

        def engine_one(request: KpiRequest) -> Callable[[], Any]:
            return lambda: rt.kpis.evaluate(
                request.name, root, by=request.by, period=request.period, lang="en"
            )

        results: list[tuple[str, float, float]] = []
        names = {
            "a": "(a) revenue by owner and month",
            "b": "(b) weighted pipeline",
            "c": "(c) win rate",
        }
        try:
            for key, request in ENGINE_REQUESTS.items():
                engine_one(request)()  # warm: caches, statement compile, pages
                hand(key)()
                mine, theirs = median_times(engine_one(request), hand(key), repeat)
                results.append((names[key], mine, theirs))
            rt.kpis.evaluate_many(DASHBOARD, root, lang="en")
            raw_queries = [hand(f"d{i}") for i in range(1, len(DASHBOARD) + 1)]
            mine, theirs = median_times(
                lambda: rt.kpis.evaluate_many(DASHBOARD, root, lang="en"),
                lambda: [query() for query in raw_queries],
                repeat,
            )
            results.append(("dashboard: 6 widgets (evaluate_many vs the 6 raw)", mine, theirs))
        finally:
            raw.close()
            engine.dispose()
        return results


def report(label: str, n: int, results: list[tuple[str, float, float]]) -> None:
    print(f"\n{label}: {n:,} opportunities, median of runs")
    print(f"{'query':52} {'engine':>10} {'hand SQL':>10} {'ratio':>7}")
    for name, mine, theirs in results:
        target = 1.5 if name.startswith("dashboard") else 1.2
        verdict = "ok" if mine <= theirs * target else f"MISSES {target}x"
        times = f"{mine * 1000:9.1f}ms {theirs * 1000:9.1f}ms"
        print(f"{name:52} {times} {mine / theirs:6.2f}x  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-rows", type=int, default=None, help="default: --rows")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        report("SQLite", args.rows, run(url, args.rows, args.repeat, "SQLite"))
    if args.no_pg:
        return 0
    admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    name = f"formflow_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        print(f"\nPostgreSQL skipped: {args.pg} is unreachable ({exc.orig})")
        return 0
    try:
        n = args.pg_rows or args.rows
        url = args.pg.rsplit("/", 1)[0] + f"/{name}"
        report("PostgreSQL", n, run(url, n, args.repeat, "PostgreSQL"))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
