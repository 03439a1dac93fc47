"""Benchmark: compiled formulas vs simpleeval parse-every-time vs a native lambda.

Run ``python bench/formulas.py [--n 100000]``. Evaluates
``IF(stage != 'lost', amount * probability / 100, 0)`` over random records
three ways, checks the three agree, and prints rows/s and the ratios (and a
``RESULT`` line per ratio for ``bench/run``). The targets: at least 5x faster
than parsing every time, and within 3x of the hand-written lambda.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simpleeval import simple_eval

from engine.expressions import NUMBER, TEXT, EvalContext, Scope, compile_formula

FORMULA = "IF(stage != 'lost', amount * probability / 100, 0)"
STAGES = ["lead", "needs", "proposal", "contract", "won", "lost"]


def make_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "stage": rng.choice(STAGES),
            "amount": Decimal(rng.randrange(100, 10_000_000)) / 100,
            "probability": rng.randrange(0, 101),
        }
        for _ in range(n)
    ]


def timed(*fns: Callable[[], list[Any]], repeat: int) -> list[tuple[list[float], list[Any]]]:
    """Each function's time in each of ``repeat`` rounds, run in turn (a, b, a, b, ...).

    Taking them in turn means a slow spell of the machine hits both sides of a
    round, so the ratio within a round holds even when the machine's speed moves.
    """
    times: list[list[float]] = [[] for _ in fns]
    out: list[list[Any]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            out[i] = fn()
            times[i].append(time.perf_counter() - start)
    return list(zip(times, out, strict=True))


def run(n: int, repeat: int = 5) -> int:
    rows = make_rows(n)
    compiled = compile_formula(
        FORMULA, Scope({"stage": TEXT, "amount": NUMBER, "probability": NUMBER})
    )

    def engine() -> list[Any]:
        ctx = EvalContext(values={})
        evaluate = compiled.evaluate
        out = []
        for row in rows:
            ctx.values = row
            out.append(evaluate(ctx))
        return out

    def if_(cond: Any, then: Any, orelse: Any) -> Any:
        return then if cond else orelse

    def parse_every_time() -> list[Any]:
        return [simple_eval(FORMULA, names=row, functions={"IF": if_}) for row in rows]

    native: Callable[[Mapping[str, Any]], Any] = lambda r: (  # noqa: E731 - the brief's "lambda"
        r["amount"] * r["probability"] / 100 if r["stage"] != "lost" else 0
    )

    def lambda_() -> list[Any]:
        return [native(row) for row in rows]

    (engine_times, r_engine), (lambda_times, r_lambda) = timed(engine, lambda_, repeat=repeat)
    ((simple_times, r_simple),) = timed(parse_every_time, repeat=1)  # slow: once is enough
    t_engine, t_lambda, t_simple = min(engine_times), min(lambda_times), simple_times[0]
    per_round = [e / la for e, la in zip(engine_times, lambda_times, strict=True)]

    if not (r_engine == r_simple == r_lambda):
        triples = enumerate(zip(r_engine, r_simple, r_lambda, strict=True))
        bad = next(i for i, (a, b, c) in triples if not a == b == c)
        got = (r_engine[bad], r_simple[bad], r_lambda[bad])
        print(f"MISMATCH at row {bad}: {rows[bad]}: {got!r}")
        return 1

    print(f"formula: {FORMULA}")
    print(f"rows:    {n} (best of {repeat} rounds; simpleeval once); all three agree")
    timings = (
        ("engine (compiled)", t_engine),
        ("simpleeval (parse each time)", t_simple),
        ("python lambda", t_lambda),
    )
    for label, t in timings:
        print(f"  {label:30} {n / t:>12,.0f} rows/s  ({t:.3f} s)")
    print(f"engine speedup over parse-every-time: {t_simple / t_engine:.1f}x (target >= 5x)")
    ratio = statistics.median(per_round)
    rounds = ", ".join(f"{r:.2f}" for r in per_round)
    print(f"engine time / lambda time:            {ratio:.2f}x (goal < 3x; median of rounds)")
    print(f"  per round (engine then lambda, in turn): {rounds}")
    print("(the lambda is a plain def called per row, as the engine's closure is)")
    # Machine-readable lines for bench/run: name|figure|baseline|ratio|target.
    engine_rate, simple_rate, lambda_rate = (f"{n / t:,.0f} rows/s" for _, t in timings)
    print(
        f"RESULT formula speedup over parse-every-time|{engine_rate}|{simple_rate}|"
        f"{t_simple / t_engine:.2f}|>= 5"
    )
    print(f"RESULT formula time / python lambda|{engine_rate}|{lambda_rate}|{ratio:.2f}|< 3")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of records")
    parser.add_argument("--repeat", type=int, default=7, help="rounds of engine then lambda")
    args = parser.parse_args(argv)
    return run(args.n, args.repeat)


if __name__ == "__main__":
    raise SystemExit(main())
