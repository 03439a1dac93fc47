"""``expect_kpi``: a KPI's rows and total as a user sees them, through ``Runtime.kpis``.

::

    expect_kpi:
      name: revenue
      by: [owner]
      period: this_month          # or custom with start/end; default: all time
      as: wang                    # the viewer (default: the acting user)
      rows:
        - {owner: li, value: 1000, target: 2000, attainment: 50}
      total: 1000                 # the value, or {value, target, attainment, ...}

Rows are matched by their dimension values (a user name, a choice value, a
month as ``2024-06``, or the label shown); with ``rows`` the KPI must have
exactly those rows. Numbers are compared to the precision written:
``attainment: 33.3`` matches 33.333...
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from engine.errors import FormflowError
from engine.i18n import T
from engine.kpis.result import KpiResult, KpiRow

if TYPE_CHECKING:
    from engine.testing.runner import _CaseRun

__all__ = ["NUMBERS", "check_kpis", "same_number"]

#: The numbers of a row a case may expect.
NUMBERS = ("value", "target", "attainment", "gap", "previous", "change")


def same_number(expected: Any, actual: Any) -> bool:
    """Equal to the precision of ``expected`` (``33.3`` matches ``33.333``)."""
    if expected is None or actual is None:
        return expected is None and actual is None
    try:
        want = Decimal(str(expected).strip())
        got = Decimal(str(actual))
    except (InvalidOperation, ValueError):
        return False
    exponent = want.as_tuple().exponent
    places = max(-exponent, 0) if isinstance(exponent, int) else 0
    return got.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) == want


def _key_matches(expected: Any, raw: Any, label: str | None) -> bool:
    text = str(expected).strip()
    if isinstance(raw, date):
        iso = raw.isoformat()
        return iso == text or iso.startswith(text + "-") or label == text
    return text == str(raw) or (label is not None and text == label)


def _shown(row: KpiRow) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dim, raw in row.keys.items():
        out[dim] = raw.isoformat() if isinstance(raw, date) else raw
    for name in NUMBERS:
        value = getattr(row, name)
        if value is not None:
            out[name] = _number(value)
    return out


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    return value


def check_kpis(run: _CaseRun) -> None:
    """Compare every ``expect_kpi`` of the case with the KPI service's answer."""
    spec = run.spec.get("expect_kpi")
    if spec is None:
        return
    items = spec if isinstance(spec, list) else [spec]
    for index, item in enumerate(items):
        path: tuple[Any, ...] = ("expect_kpi", index) if isinstance(spec, list) else ("expect_kpi",)
        _check_one(run, item, path)


def _check_one(run: _CaseRun, item: Mapping[str, Any], path: tuple[Any, ...]) -> None:
    name = str(item["name"])
    viewer = run.actor_of(str(item["as"])) if item.get("as") else run.actor
    by = item.get("by") or []
    try:
        result: KpiResult = run.rt.kpis.evaluate(
            name,
            viewer,
            by=[by] if isinstance(by, str) else list(by),
            period=item.get("period"),
            start=item.get("start"),
            end=item.get("end"),
            filters={str(k): str(v) for k, v in (item.get("filters") or {}).items()},
        )
    except FormflowError as exc:
        raise run.error(
            run.case.at(*path),
            T(
                f"无法计算指标 {name}：{exc.text.get('zh')}",
                f"cannot evaluate KPI {name}: {exc.text.get('en')}",
            ),
        ) from None
    label = f"kpi {name}"
    if "total" in item:
        want = item["total"]
        wanted = want if isinstance(want, Mapping) else {"value": want}
        for key, value in wanted.items():
            got = getattr(result.total, str(key), None)
            where = (
                run.case.at(*path, "total", key)
                if isinstance(want, Mapping)
                else run.case.at(*path, "total")
            )
            if same_number(value, got):
                run.checked.append(f"{label} total {key}")
            else:
                run.mismatch(f"{label} total {key}", value, _number(got), where)
    if "rows" not in item:
        return
    rows = list(result.rows)
    used: set[int] = set()
    dims = result.by
    for i, want in enumerate(item.get("rows") or []):
        where = run.case.at(*path, "rows", i)
        keys = {k: v for k, v in want.items() if k not in NUMBERS}
        found = None
        for j, row in enumerate(rows):
            if j in used:
                continue
            if all(
                _key_matches(v, row.keys.get(k), row.labels.get(k)) for k, v in keys.items()
            ) and set(keys) >= set(dims):
                found = j
                break
        if found is None:
            run.mismatch(f"{label} row {keys}", dict(want), "no such row", where)
            continue
        used.add(found)
        row = rows[found]
        for key in NUMBERS:
            if key in want:
                got = getattr(row, key)
                if same_number(want[key], got):
                    run.checked.append(f"{label} row {keys} {key}")
                else:
                    run.mismatch(f"{label} row {keys} {key}", want[key], _number(got), where)
    for j, row in enumerate(rows):
        if j not in used:
            run.mismatch(f"{label} extra row", None, _shown(row), run.case.at(*path, "rows"))
