"""Who is asking and what changed: CURRENT_USER, CURRENT_ROLE, ISCHANGED, PRIORVALUE.

ISCHANGED and PRIORVALUE take a field *name* (not a value) and exist only
where the scope allows them (rules and automations on update); on create there
is no prior value, so ISCHANGED is false and PRIORVALUE is blank.
"""

from __future__ import annotations

from typing import Any

from ..functions import Param, formula_function
from ..runtime import EvalContext
from ..sandbox import from_float
from ..types import BOOL, TEXT
from .rules import first_arg

CATEGORY = "context"


@formula_function(
    "CURRENT_USER",
    CATEGORY,
    ("当前用户的用户名", "The current user's user name"),
    returns=TEXT,
    context=True,
    example="owner == CURRENT_USER()",
)
def current_user(env: EvalContext) -> str | None:
    return env.user


@formula_function(
    "CURRENT_ROLE",
    CATEGORY,
    ("当前用户的角色", "The current user's role"),
    returns=TEXT,
    context=True,
    example="CURRENT_ROLE() == 'sales_manager'",
)
def current_role(env: EvalContext) -> str | None:
    return env.role


@formula_function(
    "ISCHANGED",
    CATEGORY,
    (
        "本次修改是否改变了该字段（新建时为假；仅用于更新时的规则和自动化）",
        "True when this update changed the field (false on create; rules and automations only)",
    ),
    params=(Param("field"),),
    returns=BOOL,
    context=True,
    blank_propagates=False,
    needs_changes=True,
    field_args=True,
    example="ISCHANGED(stage) and stage == 'won'",
)
def ischanged(env: EvalContext, name: str) -> bool:
    if env.prior is None:
        return False
    return bool(env.values.get(name) != env.prior.get(name))


@formula_function(
    "PRIORVALUE",
    CATEGORY,
    (
        "该字段在本次修改前的值（新建时为空；仅用于更新时的规则和自动化）",
        "The field's value before this update (blank on create; rules and automations only)",
    ),
    params=(Param("field"),),
    returns=first_arg,
    context=True,
    blank_propagates=False,
    needs_changes=True,
    field_args=True,
    example="amount >= PRIORVALUE(amount)",
)
def priorvalue(env: EvalContext, name: str) -> Any:
    if env.prior is None:
        return None
    value = env.prior.get(name)
    return from_float(value) if type(value) is float else value
