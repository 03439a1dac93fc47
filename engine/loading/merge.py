"""Overlays: a template extended by another (``extends:``), merged key by key.

The rule, for a value the overlay writes at some place of the base:

* map over map: merged key by key (recursively); the base's keys keep their
  order and new keys are appended;
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
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            base_kid = pos.kids.get(key) or Pos(base_pos.value)
            out[key], pos.kids[key] = _merge(out[key], base_kid, value, kid, (*path, key), problems)
        else:
            out[key] = value
            pos.kids[key] = kid
            pos.keys[key] = key_loc
    return out, pos
