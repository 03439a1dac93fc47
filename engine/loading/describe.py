"""Naming a place of a blueprint the way an analyst says it.

``('entities', 'customer', 'fields', 'name')`` is "field 'name'" (字段 'name'),
not a JSON pointer. Messages from the schema check, the loader and the semantic
checks all use these words, so the same thing has the same name everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from engine.i18n import T, Text
from engine.loading.positions import Path

#: The noun for a member of a named collection, by the collection's key.
NOUNS: dict[str, tuple[str, str]] = {
    "roles": ("角色", "role"),
    "entities": ("实体", "entity"),
    "fields": ("字段", "field"),
    "access": ("角色权限", "access of role"),
    "flows": ("流程", "flow"),
    "steps": ("步骤", "step"),
    "kpis": ("指标", "KPI"),
    "dashboards": ("看板", "dashboard"),
    "automations": ("自动化", "automation"),
    "set": ("设置字段", "set field"),
    "values": ("字段值", "value of field"),
    "match": ("目标匹配", "target match"),
    "statuses": ("状态", "status"),
}

#: The noun for an item of a list, by the list's key.
ITEM_NOUNS: dict[str, tuple[str, str]] = {
    "rules": ("规则", "rule"),
    "sections": ("分组", "section"),
    "widgets": ("组件", "widget"),
    "actions": ("动作", "action"),
    "tests": ("测试", "test"),
    "options": ("选项", "option"),
}


def noun(collection: str) -> Text:
    """The word for one member of ``collection`` (``entities`` -> entity)."""
    zh, en = NOUNS.get(collection, ("", collection))
    return Text(zh=zh or collection, en=en)


def describe(path: Path) -> Text:
    """A short name of the place at ``path``: the innermost named thing in it.

    ``entities.customer.fields.name`` -> field 'name'; ``flows.f.steps.s.when``
    -> step 's' / when; the top level -> "the blueprint".
    """
    if not path:
        return Text(zh="蓝图", en="the blueprint")
    for index in range(len(path) - 1, -1, -1):
        here = path[index]
        if index == 0:
            continue
        parent = path[index - 1]
        if isinstance(here, str) and isinstance(parent, str) and parent in NOUNS:
            zh, en = NOUNS[parent]
            rest = path[index + 1 :]
            return _with_rest(Text(zh=f"{zh} '{here}'", en=f"{en} '{here}'"), rest)
        if isinstance(here, int) and isinstance(parent, str) and parent in ITEM_NOUNS:
            zh, en = ITEM_NOUNS[parent]
            rest = path[index + 1 :]
            return _with_rest(Text(zh=f"第 {here + 1} 个{zh}", en=f"{en} {here + 1}"), rest)
    return Text(zh=_dotted(path), en=_dotted(path))


def _with_rest(head: Text, rest: Path) -> Text:
    if not rest:
        return head
    tail = _dotted(rest)
    return Text(zh=f"{head.zh} 的 {tail}", en=f"{head.en}: {tail}")


def _dotted(path: Path) -> str:
    out = ""
    for key in path:
        out += f"[{key + 1}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def name_of(path: Path) -> str:
    """The last key of ``path`` as text (a list index is shown 1-based)."""
    if not path:
        return ""
    last = path[-1]
    return str(last + 1) if isinstance(last, int) else last


_MAX_LISTED = 12


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (difflib, then a case-insensitive match)."""
    pool = sorted(set(choices))
    found = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if found:
        return found[0]
    lowered = {c.lower(): c for c in pool}
    return lowered.get(word.lower())


def did_you_mean(word: str, choices: Iterable[str], otherwise: Text | None = None) -> Text:
    """The hint "did you mean 'x'?" for the closest choice, else ``otherwise``.

    Without ``otherwise``, a word with no close choice gets "use one of: ...".
    """
    pool = sorted(set(choices))
    best = closest(word, pool)
    if best is not None and best != word:
        return T(f"是不是 '{best}'？", f"did you mean '{best}'?")
    if otherwise is not None:
        return otherwise
    if not pool:
        return Text()
    return T(f"可用：{listing(pool)}", f"use one of: {listing(pool)}")


def listing(choices: Iterable[str]) -> str:
    """Choices joined by commas (sorted when given as a set), cut after a dozen."""
    names = sorted(choices) if isinstance(choices, set | frozenset) else list(choices)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (", …" if len(names) > _MAX_LISTED else "")
