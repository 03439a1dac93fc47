"""bench/run reads every benchmark's figures: RESULT lines, else their human-readable lines."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("bench_run", str(ROOT / "bench" / "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    try:
        loader.exec_module(module)
    finally:
        del sys.modules["bench_run"]
    return module


def test_result_lines_win(run: ModuleType) -> None:
    rows = run.parse(
        "web",
        [
            "| list (50 rows) | 12.00 | ...",
            "RESULT list page, 1,000,000 rows|12.10 ms|7.90 ms|1.53|<= 2",
            "RESULT form submit|30.00 ms|10.00 ms|3.00|<= 2",
            "RESULT broken line|no ratio",
        ],
    )
    assert [(r.name, r.figure, r.baseline, r.ratio, r.target, r.met) for r in rows] == [
        ("list page, 1,000,000 rows", "12.10 ms", "7.90 ms", 1.53, "<= 2", True),
        ("form submit", "30.00 ms", "10.00 ms", 3.0, "<= 2", False),
    ]


def test_the_record_and_import_benchmarks_human_lines(run: ModuleType) -> None:
    lines = [
        "single-record create, 2000 rows, one transaction each (SQLite file, WAL)",
        "  record service           1,234 rows/s  (1.62 s)",
        "  hand-written insert      2,468 rows/s  (0.81 s)",
        "  ratio service/baseline time = 2.00x  (target <= 3x: met)",
        "batch create, 20000 rows in one transaction",
        "  record service batch     40,000 rows/s  (0.50 s)",
        "  raw sqlite3.executemany 200,000 rows/s  (0.10 s)",
        "  ratio service/raw rows/s = 0.20  (target >= 0.33: NOT met)",
    ]
    rows = run.parse("records", lines)
    assert [(r.figure, r.baseline, r.ratio, r.target, r.met) for r in rows] == [
        ("1,234 rows/s", "2,468 rows/s", 2.0, "<= 3", True),
        ("40,000 rows/s", "200,000 rows/s", 0.2, ">= 0.33", False),
    ]
    assert rows[0].name.startswith("single-record create")


def test_the_kpi_table(run: ModuleType) -> None:
    lines = [
        "",
        "SQLite: 20,000 opportunities, median of runs",
        "query                                                    engine   hand SQL   ratio",
        "won amount this quarter                                 12.0ms      10.0ms   1.20x  ok",
        "dashboard: 6 widgets (evaluate_many vs the 6 raw)"
        "       40.0ms      20.0ms   2.00x  MISSES 1.5x",
    ]
    rows = run.parse("kpis", lines)
    assert [(r.name, r.ratio, r.target, r.met) for r in rows] == [
        ("SQLite, 20,000 rows: won amount this quarter", 1.2, "(met)", True),
        (
            "SQLite, 20,000 rows: dashboard: 6 widgets (evaluate_many vs the 6 raw)",
            2.0,
            "<= 1.5",
            False,
        ),
    ]


@pytest.mark.parametrize(
    ("ratio", "target", "met"),
    [
        (1.0, "<= 1", True),
        (1.01, "<= 1", False),
        (0.5, ">= 0.33", True),
        (3, "< 3", False),
        (2, "?", None),
    ],
)
def test_targets(run: ModuleType, ratio: float, target: str, met: bool | None) -> None:
    assert run.meets(ratio, target) is met


def test_every_benchmark_prints_figures_bench_run_can_read() -> None:
    # The benchmarks this branch owns print RESULT lines; the others are read by their format.
    for name in ("formulas", "web"):
        assert "RESULT " in (ROOT / "bench" / f"{name}.py").read_text(encoding="utf-8"), name
