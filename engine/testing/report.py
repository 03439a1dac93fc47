"""How ``formflow test`` shows its results: pytest-like text, or JSON for tools.

Text, one line per case as it ends, then the details of each failure and the
summary::

    blueprints/crm/blueprint.yaml:573: A 级客户需要年营业额 / A-level customer needs revenue PASSED
    blueprints/crm/blueprint.yaml:577: 赢单概率按阶段计算 / probability follows the stage FAILED

    ____ 赢单概率按阶段计算 / probability follows the stage ____
    blueprints/crm/blueprint.yaml:583:15: probability: expected 60, got 30

    1 failed, 1 passed in 0.41s
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from engine.errors import Location, Problem
from engine.i18n import Text
from engine.testing.runner import Mismatch, Outcome

__all__ = ["as_json", "case_line", "details", "problems_json", "summary"]

LABELS = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR", "skipped": "SKIPPED"}
_ZH = {"passed": "通过", "failed": "失败", "error": "错误", "skipped": "跳过"}


def shown_location(location: Location, *, column: bool = True) -> str:
    """``file:line[:col]`` with the file relative to the current directory."""
    file = location.file
    if os.path.isabs(file):
        with contextlib.suppress(ValueError):  # another drive (Windows)
            file = os.path.relpath(file)
    if not column:
        return f"{file}:{location.line}" if location.line else file
    return str(Location(file, location.line, location.column))


def case_line(outcome: Outcome, lang: str) -> str:
    """``file:line: name STATUS`` (the reason after a skipped case)."""
    text = f"{shown_location(outcome.case.location, column=False)}: {outcome.case.name} "
    text += LABELS[outcome.status]
    if outcome.status == "skipped" and outcome.reason:
        text += f" ({outcome.reason})"
    return text


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def mismatch_line(m: Mismatch, lang: str) -> str:
    expected, got = ("期望", "实际") if lang == "zh" else ("expected", "got")
    sep = "，" if lang == "zh" else ", "
    colon = "：" if lang == "zh" else ": "
    text = (
        f"{shown_location(m.location)}: {m.what}{colon}"
        f"{expected} {_value(m.expected)}{sep}{got} {_value(m.actual)}"
    )
    if m.note and lang == "zh":
        text += f"（{m.note}）"
    return text


def problem_line(problem: Problem, lang: str) -> str:
    text = problem.message.get(lang)
    hint = problem.hint.get(lang)
    if hint:
        text = f"{text}; {hint}"
    return f"{shown_location(problem.location)}: {text}"


def details(outcomes: Sequence[Outcome], lang: str, *, verbose: bool = False) -> list[str]:
    """The block under the case lines: each failure's diff, each error's problems."""
    lines: list[str] = []
    for outcome in outcomes:
        show = outcome.status in ("failed", "error") or (verbose and outcome.checked)
        if not show:
            continue
        lines.append("")
        lines.append(f"____ {outcome.case.name} ____")
        for m in outcome.mismatches:
            lines.append(mismatch_line(m, lang))
        for p in outcome.problems:
            lines.append(problem_line(p, lang))
        if verbose:
            ok = "通过" if lang == "zh" else "ok"
            lines.extend(f"  {ok}: {what}" for what in outcome.checked)
    return lines


def summary(outcomes: Sequence[Outcome], seconds: float, lang: str) -> str:
    """``2 passed, 1 failed in 0.52s`` (``2 个通过，1 个失败，用时 0.52 秒``)."""
    counts = Counter(o.status for o in outcomes)
    order = ("failed", "error", "passed", "skipped")
    if lang == "zh":
        parts = [f"{counts[s]} 个{_ZH[s]}" for s in order if counts[s]]
        return ("，".join(parts) or "没有用例") + f"，用时 {seconds:.2f} 秒"
    names = {"failed": "failed", "error": "errors", "passed": "passed", "skipped": "skipped"}
    parts = []
    for s in order:
        if counts[s]:
            word = "error" if s == "error" and counts[s] == 1 else names[s]
            parts.append(f"{counts[s]} {word}")
    return (", ".join(parts) or "no tests ran") + f" in {seconds:.2f}s"


def _text(value: Text) -> dict[str, str]:
    return {"zh": value.get("zh"), "en": value.get("en")}


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "location": shown_location(problem.location),
        "message": _text(problem.message),
        "hint": _text(problem.hint),
        "severity": problem.severity,
    }


def problems_json(problems: Sequence[Problem]) -> str:
    """The blueprint's own problems when nothing could run (``--json``)."""
    body = {
        "passed": 0,
        "failed": 0,
        "errors": 0,
        "skipped": 0,
        "problems": [_problem_json(p) for p in sorted(problems, key=lambda p: p.location)],
        "cases": [],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def as_json(outcomes: Sequence[Outcome], seconds: float) -> str:
    """Every case, its status, its differences and problems, and the counts."""
    counts = Counter(o.status for o in outcomes)
    cases = []
    for o in outcomes:
        cases.append(
            {
                "name": o.case.name,
                "file": shown_location(o.case.location, column=False).rsplit(":", 1)[0],
                "line": o.case.location.line,
                "status": o.status,
                "seconds": round(o.seconds, 4),
                "reason": o.reason or None,
                "failures": [
                    {
                        "what": m.what,
                        "expected": m.expected,
                        "actual": m.actual,
                        "location": shown_location(m.location),
                    }
                    for m in o.mismatches
                ],
                "errors": [_problem_json(p) for p in o.problems],
                "checked": list(o.checked),
            }
        )
    body = {
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["error"],
        "skipped": counts["skipped"],
        "seconds": round(seconds, 3),
        "problems": [],
        "cases": cases,
    }
    return json.dumps(body, ensure_ascii=False, indent=2, default=str)
