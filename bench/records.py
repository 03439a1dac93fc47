"""Record-service write speed against hand-written baselines, measured in one run.

1. Single-record path: N opportunities, one transaction each, through
   ``RecordService.create`` (validation, ref check, formulas, autonumber, audit)
   vs a hand-written SQLAlchemy Core insert of the same rows, one per transaction.
   Target: service time <= 3x the hand-written insert.
2. Batch path: M opportunities through ``RecordService.create_many`` vs raw
   ``sqlite3.executemany`` of the already-clean rows.
   Target: service rows/s >= 1/3 of raw executemany rows/s.

Usage: python bench/records.py [--single 20000] [--batch 100000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.loader import load  # noqa: E402
from engine.records import SYSTEM, RecordService  # noqa: E402
from engine.storage.database import create_engine, writer  # noqa: E402
from engine.storage.schema import build_schema  # noqa: E402

BLUEPRINT = """
formflow: 1
id: bench
title: Bench
entities:
  customer:
    label: Customer
    title_field: name
    fields:
      name: {type: text, label: Name, required: true, unique: true}
  opportunity:
    label: Opportunity
    fields:
      code: {type: autonumber, label: Code, format: "OPP-{YYYY}{MM}-{SEQ:6}"}
      customer: {type: ref, label: Customer, to: customer, required: true}
      title: {type: text, label: Title, required: true, max_length: 200}
      stage: {type: choice, label: Stage, options: [lead, needs, proposal, contract, won, lost]}
      amount: {type: money, label: Amount, required: true, min: 0}
      probability:
        type: percent
        label: Probability
        formula: >-
          CHOOSE_BY(stage, {'lead': 10, 'needs': 30, 'proposal': 60,
          'contract': 90, 'won': 100, 'lost': 0})
      weighted: {type: money, label: Weighted, formula: "amount * probability / 100"}
      close_date: {type: date, label: Close date, required_if: "stage in ['contract', 'won']"}
      source: {type: text, label: Source}
    rules:
      - check: "stage != 'won' or amount > 0"
        field: amount
        message: {zh: 赢单金额需大于 0, en: A won deal needs an amount}
"""

STAGES = ["lead", "needs", "proposal", "contract", "won", "lost"]
PROB = {"lead": 10, "needs": 30, "proposal": 60, "contract": 90, "won": 100, "lost": 0}
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def rows(n: int, customers: list[int], seed: int = 7) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        stage = rnd.choice(STAGES)
        out.append(
            {
                "customer": rnd.choice(customers),
                "title": f"Deal {i}",
                "stage": stage,
                "amount": Decimal(rnd.randint(1_000, 5_000_000)) / 100,
                "close_date": date(2026, 1, 1) + timedelta(days=rnd.randint(0, 700)),
                "source": rnd.choice(["web", "referral", "expo"]),
            }
        )
    return out


def setup(path: Path) -> RecordService:
    bp_file = path / "blueprint.yaml"
    bp_file.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(bp_file)
    schema = build_schema(bp)
    engine = create_engine(f"sqlite:///{path / 'bench.db'}")
    schema.metadata.create_all(engine)
    return RecordService(bp, schema, engine, clock=lambda: NOW)


def clean_row(service: RecordService, data: dict[str, object], seq: int) -> dict[str, object]:
    """What the service would store for ``data``: the hand-written baseline's row."""
    et = service.schema.entity("opportunity")
    prob = PROB[str(data["stage"])]
    amount = data["amount"]
    assert isinstance(amount, Decimal)
    values = dict(data)
    values.update(
        code=f"OPP-202611-{seq:06d}",
        probability=Decimal(prob),
        weighted=(amount * prob / 100).quantize(Decimal("0.01")),
    )
    out = {et.columns[k].name: v for k, v in values.items()}
    out.update(
        version=1, owner=None, created_at=NOW, created_by=None, updated_at=NOW, updated_by=None
    )
    return out


def bench_single(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        service = setup(Path(tmp))
        cust = [service.create("customer", {"name": f"C{i}"}).id for i in range(50)]
        data = rows(n, cust)
        t0 = time.perf_counter()
        for d in data:
            service.create("opportunity", d, actor=SYSTEM)
        engine_time = time.perf_counter() - t0

        table = service.schema.entity("opportunity").table
        clean = [clean_row(service, d, i + 1 + n) for i, d in enumerate(data)]
        w = writer(service.engine)
        t0 = time.perf_counter()
        for row in clean:
            with w.begin() as conn:
                conn.execute(table.insert().values(**row))
        base_time = time.perf_counter() - t0
        service.engine.dispose()
    return engine_time, base_time


def bench_batch(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        service = setup(Path(tmp))
        cust = [service.create("customer", {"name": f"C{i}"}).id for i in range(50)]
        data = rows(n, cust)
        t0 = time.perf_counter()
        service.create_many("opportunity", data, actor=SYSTEM)
        engine_time = time.perf_counter() - t0
        table = service.schema.entity("opportunity").table
        clean = [clean_row(service, d, i + 1) for i, d in enumerate(data)]
        service.engine.dispose()

    with tempfile.TemporaryDirectory() as tmp:
        service = setup(Path(tmp))
        table = service.schema.entity("opportunity").table
        service.engine.dispose()
        cols = [c.name for c in table.columns if c.name != "id"]
        tuples = [
            tuple(
                str(r[c])
                if isinstance(r[c], Decimal | date)
                else (
                    r[c].replace(tzinfo=None).isoformat(sep=" ")
                    if isinstance(r[c], datetime)
                    else r[c]
                )
                for c in cols
            )
            for r in clean
        ]
        conn = sqlite3.connect(Path(tmp) / "bench.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        sql = (
            f'INSERT INTO "{table.name}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
            f"VALUES ({', '.join('?' for _ in cols)})"
        )
        t0 = time.perf_counter()
        with conn:
            conn.executemany(sql, tuples)
        base_time = time.perf_counter() - t0
        conn.close()
    return engine_time, base_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()

    e, b = bench_single(args.single)
    ratio = e / b
    print(f"single-record create, {args.single} rows, one transaction each (SQLite file, WAL)")
    print(f"  record service      {args.single / e:10,.0f} rows/s  ({e:.2f} s)")
    print(f"  hand-written insert {args.single / b:10,.0f} rows/s  ({b:.2f} s)")
    print(
        f"  ratio service/baseline time = {ratio:.2f}x  (target <= 3x: "
        f"{'met' if ratio <= 3 else 'NOT met'})"
    )

    e, b = bench_batch(args.batch)
    share = (args.batch / e) / (args.batch / b)
    print(f"batch create, {args.batch} rows in one transaction")
    print(f"  record service batch {args.batch / e:10,.0f} rows/s  ({e:.2f} s)")
    print(f"  raw sqlite3.executemany {args.batch / b:10,.0f} rows/s  ({b:.2f} s)")
    print(
        f"  ratio service/raw rows/s = {share:.2f}  (target >= 0.33: "
        f"{'met' if share >= 1 / 3 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
