"""CSV import speed and memory against a raw baseline, measured in one run.

1. Throughput: N opportunities (the blueprint of bench/records.py: 10 fields, 2
   formulas, 1 rule, 1 ref, an autonumber) imported from a UTF-8 CSV file through
   ``ImportService`` (reading and decoding the file, mapping the bilingual headers,
   resolving the customer ref *by name* with one query per chunk, then
   ``RecordService.create_many`` per chunk (``limits.chunk_size``) in one transaction: coercion,
   validation, formulas, the rule, the ref check, autonumbers, the import audit)
   vs raw ``sqlite3.executemany`` of the already-clean rows (the values the
   engine stores, computed beforehand and not timed) into the same table, on
   the same SQLite settings as the engine (WAL, synchronous=NORMAL), with
   foreign keys off and one transaction: the fastest honest way to put those
   rows in that table. Target: engine rows/s >= 1/3 of raw rows/s.
2. Memory: peak RSS (the child's own ``VmHWM``; ``ru_maxrss`` from ``os.wait4``
   where there is no /proc, which on Linux would include this parent's peak at
   the fork) of the same engine import of 200k and of 1M rows, each in a fresh
   subprocess. Targets:
   1M under 300 MB, and within 1.2x of the 200k peak (memory does not grow with
   the file).

For context it also prints ``create_many`` alone on the same rows (no file), so
the import's own overhead is visible apart from the record service's.

Both figures are medians of ``--repeat`` alternating rounds (engine, raw,
create_many), each on a fresh database.

Usage: python bench/imports.py [--rows 200000] [--big 1000000] [--repeat 3] [--skip-memory]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from records import STAGES, clean_row, setup  # noqa: E402  (bench/records.py)

from engine.imports import ImportOptions, ImportService  # noqa: E402
from engine.imports.limits import DEFAULT_LIMITS  # noqa: E402
from engine.records import SYSTEM, RecordService  # noqa: E402

#: The bench blueprint's labels (plain text: the same in both languages).
HEADER = ["Title", "Customer", "Stage", "Amount", "Close date", "Source"]
CUSTOMERS = 50


def write_csv(path: Path, n: int, seed: int = 7) -> None:
    """``n`` opportunities as a CSV file, written as it goes (never held in memory)."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(n):
            writer.writerow(
                [
                    f"Deal {i}",
                    f"C{rnd.randrange(CUSTOMERS)}",
                    rnd.choice(STAGES),
                    f"{Decimal(rnd.randint(1_000, 5_000_000)) / 100:.2f}",
                    (date(2026, 1, 1) + timedelta(days=rnd.randint(0, 700))).isoformat(),
                    rnd.choice(["web", "referral", "expo"]),
                ]
            )


def service_in(folder: Path) -> RecordService:
    service = setup(folder)
    for i in range(CUSTOMERS):
        service.create("customer", {"name": f"C{i}"})
    return service


def engine_import(folder: Path, csv_path: Path) -> tuple[float, int]:
    """(seconds, records created) of importing ``csv_path`` into a fresh database."""
    records = service_in(folder)
    importer = ImportService(records)
    t0 = time.perf_counter()
    result = importer.run(
        "opportunity", csv_path, actor=SYSTEM, options=ImportOptions(), file_name="bench.csv"
    )
    elapsed = time.perf_counter() - t0
    records.engine.dispose()
    if not result.ok:
        raise SystemExit(f"the bench import failed: {result.summary('en')}")
    return elapsed, result.created


def clean_rows(csv_path: Path, records: RecordService) -> list[tuple[object, ...]]:
    """The rows the engine stores, as the raw baseline inserts them (not timed)."""
    ids = {f"C{i}": i + 1 for i in range(CUSTOMERS)}
    table = records.schema.entity("opportunity").table
    cols = [c.name for c in table.columns if c.name != "id"]
    out = []
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for seq, (title, customer, stage, amount, close, source) in enumerate(reader, start=1):
            data = {
                "customer": ids[customer],
                "title": title,
                "stage": stage,
                "amount": Decimal(amount),
                "close_date": date.fromisoformat(close),
                "source": source,
            }
            row = clean_row(records, data, seq)
            out.append(
                tuple(
                    str(row[c])
                    if isinstance(row[c], Decimal | date) and not isinstance(row[c], datetime)
                    else (
                        row[c].replace(tzinfo=None).isoformat(sep=" ")
                        if isinstance(row[c], datetime)
                        else row[c]
                    )
                    for c in cols
                )
            )
    return out


def raw_insert(folder: Path, csv_path: Path) -> float:
    records = service_in(folder)
    table = records.schema.entity("opportunity").table
    cols = [c.name for c in table.columns if c.name != "id"]
    tuples = clean_rows(csv_path, records)
    records.engine.dispose()
    conn = sqlite3.connect(folder / "bench.db")
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
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def create_many_alone(folder: Path, csv_path: Path) -> float:
    """create_many on the same values in memory, in the import's chunks, one transaction."""
    records = service_in(folder)
    ids = {f"C{i}": i + 1 for i in range(CUSTOMERS)}
    rows = []
    with csv_path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for title, customer, stage, amount, close, source in reader:
            rows.append(
                {
                    "title": title,
                    "customer": ids[customer],
                    "stage": stage,
                    "amount": amount,
                    "close_date": close,
                    "source": source,
                }
            )
    t0 = time.perf_counter()
    with records.write_engine.begin() as conn:
        size = DEFAULT_LIMITS.chunk_size
        for start in range(0, len(rows), size):
            records.create_many(
                "opportunity", rows[start : start + size], actor=SYSTEM, conn=conn, source="x"
            )
    elapsed = time.perf_counter() - t0
    records.engine.dispose()
    return elapsed


def own_peak_kb() -> int | None:
    """This process's own peak RSS in KB (Linux ``VmHWM``), or None where unknown.

    Not ``ru_maxrss`` as the parent sees it through ``wait4``: Linux carries a
    forked child's high-water mark across ``exec``, so that figure is at least the
    parent's own peak at the fork (here: the throughput runs above), not the
    import's.
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def child(csv_path: Path) -> None:
    """``--child CSV``: import it into a fresh database and report our own peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        seconds, created = engine_import(Path(tmp), csv_path)
    peak = own_peak_kb()
    print(f"{created} {seconds:.3f} {-1 if peak is None else peak}")


def peak_rss(csv_path: Path) -> tuple[float, int, float]:
    """(peak RSS in MB, records, seconds) of a child process importing ``csv_path``."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(csv_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the child import failed: {output}")
    created, seconds, peak = output.split()
    kb = int(peak) if int(peak) >= 0 else usage.ru_maxrss  # Linux: both in KB
    return kb / 1024, int(created), float(seconds)


def timed_runs(base: Path, csv_path: Path, rows: int, repeat: int) -> tuple[list[float], ...]:
    """Seconds of ``repeat`` rounds of (engine import, raw insert, create_many alone).

    The three alternate, each on a fresh database, so a slow moment of a shared
    machine falls on all of them rather than on one.
    """
    engine_s: list[float] = []
    raw_s: list[float] = []
    many_s: list[float] = []
    for k in range(repeat):
        for name in ("a", "b", "c"):
            (base / f"{name}{k}").mkdir()
        e, created = engine_import(base / f"a{k}", csv_path)
        assert created == rows, created
        engine_s.append(e)
        raw_s.append(raw_insert(base / f"b{k}", csv_path))
        many_s.append(create_many_alone(base / f"c{k}", csv_path))
        for name in ("a", "b", "c"):
            shutil.rmtree(base / f"{name}{k}")
    return engine_s, raw_s, many_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the medians are compared")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        csv_path = base / "opportunities.csv"
        write_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 2**20
        engine_s, raw_s, many_s = timed_runs(base, csv_path, args.rows, args.repeat)
        e, b, m = median(engine_s), median(raw_s), median(many_s)
        n = args.rows
        share = (n / e) / (n / b)
        rounds = ", ".join(f"{x / y:.2f}" for x, y in zip(raw_s, engine_s, strict=True))
        print(f"CSV import, {n:,} opportunities ({size_mb:.1f} MB, UTF-8 with BOM, labels)")
        print(f"  medians of {args.repeat} alternating rounds, each on a fresh database")
        print(f"  engine import (ImportService)   {n / e:10,.0f} rows/s  ({e:.2f} s)")
        print(f"  raw sqlite3.executemany         {n / b:10,.0f} rows/s  ({b:.2f} s)")
        print(
            f"  ratio engine/raw rows/s = {share:.2f}  (target >= 0.33: "
            f"{'met' if share >= 1 / 3 else 'NOT met'}); per round: {rounds}"
        )
        print(
            f"  for context: create_many alone  {n / m:10,.0f} rows/s  ({m:.2f} s); "
            f"import overhead over it {e / m:.2f}x"
        )
        print(
            f"RESULT CSV import, {n:,} rows (engine / raw executemany rows/s)|"
            f"{n / e:,.0f} rows/s|{n / b:,.0f} rows/s|{share:.2f}|>= 0.33"
        )
        if args.skip_memory:
            return
        big_path = base / "big.csv"
        write_csv(big_path, args.big, seed=11)
        small_rss, small_n, small_s = peak_rss(csv_path)
        big_rss, big_n, big_s = peak_rss(big_path)
        assert small_n == args.rows and big_n == args.big, (small_n, big_n)
        growth = big_rss / small_rss
        print("peak RSS of the engine import, each in a fresh process (its own VmHWM)")
        print(f"  {args.rows:>9,} rows  {small_rss:7.1f} MB  ({small_n / small_s:,.0f} rows/s)")
        print(f"  {args.big:>9,} rows  {big_rss:7.1f} MB  ({big_n / big_s:,.0f} rows/s)")
        print(
            f"  {args.big:,} rows under 300 MB: {'met' if big_rss < 300 else 'NOT met'}; "
            f"{args.big:,} / {args.rows:,} = {growth:.2f}x (target <= 1.2x: "
            f"{'met' if growth <= 1.2 else 'NOT met'})"
        )
        rss = f"{big_rss:.1f}"
        print(f"RESULT import peak RSS, {args.big:,} rows (MB)|{rss} MB|-|{rss}|< 300")
        print(
            f"RESULT import peak RSS, {args.big:,} / {args.rows:,} rows|{big_rss:.1f} MB|"
            f"{small_rss:.1f} MB|{growth:.2f}|<= 1.2"
        )


if __name__ == "__main__":
    main()
