"""``visible_if`` / ``required_if`` / ``readonly_if`` for drawing a form.

The record service applies these on every save; pages evaluate the same
compiled formulas against the values being edited so a form shows (and the
preview endpoint refreshes) what the save will enforce. A formula that fails
to evaluate counts as false, exactly as in the record service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.errors import ExpressionError
from engine.expressions import EvalContext
from engine.model import Blueprint, Entity, Formula
from engine.records import Actor


@dataclass(frozen=True)
class FieldState:
    visible: bool = True
    required: bool = False
    readonly: bool = False


def _holds(formula: Formula, ctx: EvalContext) -> bool:
    try:
        return bool(formula.compiled.evaluate(ctx))
    except (ExpressionError, TypeError, ValueError, ArithmeticError):
        return False


def field_states(
    blueprint: Blueprint,
    entity: Entity,
    values: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    actor: Actor,
    prior: Mapping[str, Any] | None = None,
) -> dict[str, FieldState]:
    """Each field's state for these values (``readonly_if`` reads the saved record)."""
    tz = ZoneInfo(blueprint.timezone)
    ctx = EvalContext(
        values=values,
        tables=tables,
        prior=prior,
        user=actor.name,
        role=actor.role,
        now=lambda: datetime.now(UTC),
        tz=tz,
        warnings=[],
    )
    prior_ctx = (
        EvalContext(
            values=prior,
            tables=tables,
            prior=prior,
            user=actor.name,
            role=actor.role,
            now=lambda: datetime.now(UTC),
            tz=tz,
            warnings=[],
        )
        if prior is not None
        else None
    )
    out: dict[str, FieldState] = {}
    for name, f in entity.fields.items():
        visible = f.visible_if is None or _holds(f.visible_if, ctx)
        required = visible and (
            f.required or (f.required_if is not None and _holds(f.required_if, ctx))
        )
        readonly = f.readonly or (
            prior_ctx is not None and f.readonly_if is not None and _holds(f.readonly_if, prior_ctx)
        )
        out[name] = FieldState(visible=visible, required=required, readonly=readonly)
    return out
