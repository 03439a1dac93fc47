"""The user kind: a user name (whether the user exists is the record service's call)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.fields.base import FieldKind, FieldValueError, clean_text, show
from engine.fields.registry import register
from engine.i18n import T, Text
from engine.model import Field

MAX_USER_NAME = 150
_WHITESPACE = re.compile(r"\s")


class UserKind(FieldKind):
    """A user, stored as the user name. ``{"name": ...}`` (as the API shows a user)
    is accepted too."""

    name = "user"
    label = T("用户", "User")
    keys = frozenset({"formula"})
    storage = "text"
    widget = "user"
    type_name = "text"

    def parse(self, field: Field, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "name" in raw:
            raw = raw["name"]
        if not isinstance(raw, str):
            raise FieldValueError(
                T(f"应为用户名，而不是 {show(raw)}", f"expected a user name, got {show(raw)}")
            )
        name = clean_text(raw, MAX_USER_NAME, what=T("用户名", "a user name"))
        if _WHITESPACE.search(name):
            raise FieldValueError(
                T(f"不是有效的用户名：{show(name)}", f"not a valid user name: {show(name)}")
            )
        return name

    def check_value(self, field: Field, value: Any) -> list[Text]:
        try:
            self.parse(field, value)
        except FieldValueError as exc:
            return [exc.text]
        return []


USER = register(UserKind())
