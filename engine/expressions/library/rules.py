"""Return-type rules shared by the built-ins (IF's branches must agree, and so on)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.i18n import T

from ..functions import TypeProblem
from ..types import NULL, Type, join


def unify(types: Sequence[Type], indexes: Sequence[int]) -> Type:
    """The common type of the arguments at ``indexes``, or a TypeProblem on a clash."""
    result = NULL
    for i in indexes:
        joined = join(result, types[i])
        if joined is None:
            raise TypeProblem(
                T(
                    f"各个结果的类型不一致：{result.label.zh} 与 {types[i].label.zh}",
                    f"the results have different types: {result.label.en} and {types[i].label.en}",
                ),
                arg=i,
            )
        result = joined
    return result


def same_as(*indexes: int) -> Callable[[Sequence[Type]], Type]:
    """Rule: the common type of the given arguments (those present)."""

    def rule(types: Sequence[Type]) -> Type:
        return unify(types, [i for i in indexes if i < len(types)])

    return rule


def first_arg(types: Sequence[Type]) -> Type:
    return types[0]
