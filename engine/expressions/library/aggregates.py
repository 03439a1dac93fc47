"""Aggregates: SUM, AVERAGE/AVG, MIN, MAX, COUNT, COUNT_DISTINCT, COUNTIF, SUMIF.

One reducer serves three sources of values (see :class:`..ir.Aggregate`):
child-table rows (``SUM(lines.qty * lines.price)``), Excel-style argument lists
(``MAX(a, b, 0)``) and, in KPI measures, the rows of the entity
(``COUNT(stage == 'won')``). Blanks are skipped; an empty SUM or COUNT is 0,
an empty AVERAGE, MIN or MAX is blank - the same answers SQL gives with
``COALESCE(SUM(x), 0)``, so the database and Python agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.i18n import Text

from ..functions import AggregateSpec, FunctionSpec, Param, register_function
from ..sandbox import DECIMAL, check_int
from ..types import ANY, BOOL, NUMBER, ORDERED, SCALARS, Type

CATEGORY = "aggregate"


def total(values: list[Any]) -> Any:
    """Sum of numbers: int while every value is an int, else Decimal."""
    ints = 0
    dec = None
    for v in values:
        if type(v) is int:
            ints += v
        else:
            dec = v if dec is None else DECIMAL.add(dec, v)
    if dec is None:
        return check_int(ints)
    return DECIMAL.add(dec, ints)


def average(values: list[Any]) -> Any:
    return DECIMAL.divide(total(values), len(values)) if values else None


def _element(types: Sequence[Type]) -> Type:
    return types[0] if types else ANY


def _register(
    name: str,
    doc: tuple[str, str],
    spec: AggregateSpec,
    params: tuple[Param, ...],
    returns: Type | Any,
    example: str,
    repeat: int = 1,
) -> None:
    register_function(
        FunctionSpec(
            name=name,
            category=CATEGORY,
            doc=Text(zh=doc[0], en=doc[1]),
            params=params,
            returns=returns,
            repeat=repeat,
            aggregate=spec,
            example=example,
        )
    )


_NUMBERS = (Param("values", (NUMBER,)),)

_register(
    "SUM",
    ("求和，忽略空值；没有值时为 0", "The total, ignoring blanks; 0 when there are no values"),
    AggregateSpec(reduce=total),
    _NUMBERS,
    NUMBER,
    "SUM(lines.qty * lines.price)",
)
for _name in ("AVERAGE", "AVG"):
    _register(
        _name,
        (
            "平均值，忽略空值；没有值时为空",
            "The mean, ignoring blanks; blank when there are no values",
        ),
        AggregateSpec(reduce=average),
        _NUMBERS,
        NUMBER,
        f"{_name}(lines.price)",
    )
_register(
    "MIN",
    (
        "最小值（数字、文本或日期），忽略空值",
        "The smallest value (number, text or date), ignoring blanks",
    ),
    AggregateSpec(reduce=lambda values: min(values) if values else None),
    (Param("values", ORDERED),),
    _element,
    "MIN(lines.price)",
)
_register(
    "MAX",
    (
        "最大值（数字、文本或日期），忽略空值",
        "The largest value (number, text or date), ignoring blanks",
    ),
    AggregateSpec(reduce=lambda values: max(values) if values else None),
    (Param("values", ORDERED),),
    _element,
    "MAX(0, amount - paid)",
)
_register(
    "COUNT",
    (
        "计数：COUNT() 为行数，COUNT(条件) 为条件为真的行数，COUNT(值) 为非空值个数",
        "COUNT() counts rows, COUNT(condition) rows where it is true, "
        "COUNT(value) non-blank values",
    ),
    AggregateSpec(reduce=len, min_row_args=0, bool_counts_true=True),
    (Param("values", (ANY,), optional=True),),
    NUMBER,
    "COUNT(stage == 'won')",
)
_register(
    "COUNT_DISTINCT",
    ("不同的非空值的个数", "The number of different non-blank values"),
    AggregateSpec(reduce=lambda values: len(set(values))),
    (Param("values", SCALARS),),
    NUMBER,
    "COUNT_DISTINCT(customer)",
)
_register(
    "COUNTIF",
    (
        "条件为真的行数，如 COUNTIF(lines.qty > 5)",
        "The number of rows where the condition is true, e.g. COUNTIF(lines.qty > 5)",
    ),
    AggregateSpec(reduce=len, prepare=lambda cond: True if cond else None),
    (Param("condition", (BOOL,)),),
    NUMBER,
    "COUNTIF(lines.qty > 5)",
    repeat=0,
)
_register(
    "SUMIF",
    (
        "条件为真的行的值之和，如 SUMIF(lines.qty > 5, lines.price)",
        "The total of the values on rows where the condition is true, "
        "e.g. SUMIF(lines.qty > 5, lines.price)",
    ),
    AggregateSpec(
        reduce=total,
        row_args=2,
        min_row_args=2,
        prepare=lambda cond, value: value if cond else None,
    ),
    (Param("condition", (BOOL,)), Param("values", (NUMBER,))),
    NUMBER,
    "SUMIF(stage == 'won', amount)",
    repeat=0,
)
