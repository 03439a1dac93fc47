"""Overlays: a template extended by another (``extends:``), merged key by key.

The rule, for a value the overlay writes at some place of the base:

* map over map: merged key by key (recursively); the base's keys keep their
  order and new keys are appended;
* options written as a map over options written as a list (``options:
  {negotiation: {zh: 谈判, en: Negotiation}}`` over ``[lead, won, ...]``): merged
  by option value - a known value changes that option (its label, or
  ``{label, color}``), ``value: ~`` removes it, a new value is appended; the
  result keeps the list form, so the base's order and later label fixes stay;
* anything else (text, number, list): the overlay's value replaces the base's;
* ``~`` (or ``null``): the key is removed from the base - an entity, a field,
  a flow step, a KPI, a rule list, or a single setting like ``max_length``.
  Removing a key the base does not have is an error (it is usually a typo).

Positions follow the values: a merged node keeps the base's place, a replaced or
added value keeps the overlay's, so an error points at the file that wrote it.
"""

from __future__ import annotations

from typing import Any

from engine.errors import Problem
from engine.i18n import T
from engine.loading.positions import Doc, Path, Pos


def merge(base: Doc, overlay: Doc, problems: list[Problem]) -> Doc:
    """``overlay`` applied on ``base`` (neither is modified)."""
    data, pos = _merge(base.data, base.pos, overlay.data, overlay.pos, (), problems)
    return Doc(data, pos, [*base.files, *(f for f in overlay.files if f not in base.files)])


def _merge(
    base: Any, base_pos: Pos, over: Any, over_pos: Pos, path: Path, problems: list[Problem]
) -> tuple[Any, Pos]:
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over, over_pos
    out = dict(base)
    pos = Pos(base_pos.value, base_pos.text, dict(base_pos.kids), dict(base_pos.keys))
    for key, value in over.items():
        kid = over_pos.kids.get(key) or Pos(over_pos.value)
        key_loc = over_pos.keys.get(key, kid.value)
        if value is None:
            if key in out:
                del out[key]
                pos.kids.pop(key, None)
                pos.keys.pop(key, None)
            else:
                problems.append(
                    Problem(
                        key_loc,
                        T(
                            f"要删除的 '{key}' 在被继承的模板中不存在",
                            f"nothing to remove: '{key}' is not in the template this one extends",
                        ),
                        T(
                            "检查拼写；'键: ~' 表示从模板中删除该键",
                            "check the spelling; 'key: ~' removes that key from the template",
                        ),
                    )
                )
            continue
        if key == "options" and isinstance(out.get(key), list) and isinstance(value, dict):
            base_kid = pos.kids.get(key) or Pos(base_pos.value)
            merged = _merge_options(out[key], base_kid, value, kid, problems)
            if merged is not None:
                out[key], pos.kids[key] = merged
                continue
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            base_kid = pos.kids.get(key) or Pos(base_pos.value)
            out[key], pos.kids[key] = _merge(out[key], base_kid, value, kid, (*path, key), problems)
        else:
            out[key] = value
            pos.kids[key] = kid
            pos.keys[key] = key_loc
    return out, pos


def _option_value(item: Any) -> str | None:
    """The value an option of a list is known by (``None``: not an option)."""
    if isinstance(item, bool):
        return None
    if isinstance(item, str | int):
        return str(item)
    if isinstance(item, dict) and isinstance(item.get("value"), str | int):
        return str(item["value"])
    return None


def _is_label(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, dict) and bool(value) and set(value) <= {"zh", "en"}
    )


def _changed_option(item: Any, change: Any) -> Any:
    """An option of the base list with an overlay's label or ``{label, color}`` applied."""
    base = dict(item) if isinstance(item, dict) else {"value": item, "label": str(item)}
    if _is_label(change):
        return {**base, "label": change}
    if isinstance(change, dict):
        return {**base, **change}
    return {**base, "label": change}


def _merge_options(
    base: list[Any], base_pos: Pos, over: dict[str, Any], over_pos: Pos, problems: list[Problem]
) -> tuple[list[Any], Pos] | None:
    """Options as a map over options as a list, merged by value (None: not option lists)."""
    values = [_option_value(item) for item in base]
    if None in values:
        return None
    out: list[Any] = []
    pos = Pos(base_pos.value, base_pos.text)
    for index, (item, value) in enumerate(zip(base, values, strict=True)):
        if value not in over:
            pos.kids[len(out)] = base_pos.kids.get(index) or Pos(base_pos.value)
            out.append(item)
            continue
        change = over[value]
        if change is None:
            continue
        pos.kids[len(out)] = over_pos.kids.get(value) or Pos(over_pos.value)
        out.append(_changed_option(item, change))
    known = set(values)
    for value, change in over.items():
        if value in known:
            continue
        where = over_pos.keys.get(value, over_pos.value)
        if change is None:
            problems.append(
                Problem(
                    where,
                    T(
                        f"要删除的选项 '{value}' 在被继承的模板中不存在",
                        f"nothing to remove: the option '{value}' is not in the template "
                        "this one extends",
                    ),
                    T("检查拼写", "check the spelling"),
                )
            )
            continue
        pos.kids[len(out)] = over_pos.kids.get(value) or Pos(where)
        if _is_label(change):
            out.append({"value": value, "label": change})
        elif isinstance(change, dict):
            out.append({"value": value, **change})
        else:
            out.append({"value": value, "label": change})
    return out, pos
