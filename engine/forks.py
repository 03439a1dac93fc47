"""Forks: a team's own template as a small overlay that ``extends:`` a starter template.

``formflow new DIR --from crm`` writes ``DIR/blueprint.yaml`` holding only
``extends:`` (a path relative to DIR) and commented examples of the usual
changes, plus a README. The team's changes live in that file; the upstream
template stays untouched, so its improvements still reach the fork (see
docs/forks.md for the merge rules of :mod:`engine.loading.merge`).

``formflow diff DIR`` compares the merged blueprint with its base and lists
what the overlay adds, removes and changes (:func:`diff`), as a tree or JSON.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BlueprintError, FormflowError
from engine.i18n import T, Text
from engine.loading import sources
from engine.resources import BLUEPRINTS_DIR

__all__ = ["Change", "diff", "find_template", "new_fork"]


class ForkError(FormflowError):
    """``formflow new`` / ``formflow diff`` cannot do what was asked."""


def starter_names() -> list[str]:
    """The starter templates shipped with Formflow."""
    if not BLUEPRINTS_DIR.is_dir():
        return []
    return sorted(
        p.name
        for p in BLUEPRINTS_DIR.iterdir()
        if p.is_dir() and any((p / n).is_file() for n in sources.MAIN_NAMES)
    )


def find_template(name_or_path: str) -> Path:
    """A starter template by name (``crm``), else a template folder or file by path."""
    path = Path(name_or_path)
    if path.exists():
        return path.resolve()
    starter = BLUEPRINTS_DIR / name_or_path
    if "/" not in name_or_path and starter.is_dir():
        return starter.resolve()
    names = starter_names()
    from engine.loading.describe import did_you_mean

    hint = did_you_mean(
        name_or_path,
        names,
        T(f"可用的模板：{', '.join(names)}", f"starter templates: {', '.join(names)}"),
    )
    raise ForkError(
        Text(
            zh=f"找不到模板 '{name_or_path}'；{hint.zh}",
            en=f"no template '{name_or_path}'; {hint.en}",
        )
    )


def _main(template: Path) -> Path:
    return sources.find_main(template)


def _title(data: Mapping[str, Any]) -> Text:
    return Text.of(data.get("title") or data.get("id"))


def _choice_field(entities: Mapping[str, Any]) -> tuple[str, str, list[Any]] | None:
    """A choice field with a list of options to show the "add an option" change on.

    A field named ``stage`` (the sales stages) first, else the first one found.
    """
    found = []
    for ename, ent in entities.items():
        fields = (ent or {}).get("fields") if isinstance(ent, Mapping) else None
        for fname, f in (fields or {}).items():
            choice = isinstance(f, Mapping) and f.get("type") == "choice"
            if choice and isinstance(f.get("options"), list):
                found.append((ename, str(fname), list(f["options"])))
    found.sort(key=lambda c: c[1] != "stage")
    return found[0] if found else None


def _option_value_of(opt: Any) -> str:
    return str(opt.get("value")) if isinstance(opt, Mapping) else str(opt)


def _examples(data: Mapping[str, Any]) -> list[str]:
    """Commented examples written against the base's own entities, options and steps."""
    lines: list[str] = []
    entities = data.get("entities") or {}
    titled = [n for n, e in entities.items() if isinstance(e, Mapping) and e.get("title_field")]
    entity = titled[0] if titled else next(iter(entities), None)
    choice = _choice_field(entities)
    if entity is not None or choice is not None:
        lines.append("# entities:")
    if entity is not None:
        title_field = entities[entity].get("title_field")
        lines += [
            f"#   {entity}:",
            "#     fields:",
            "#       wechat:                # 新增字段 / add a field",
            "#         type: text",
            "#         label: {zh: 微信号, en: WeChat ID}",
        ]
        if title_field:
            lines += [
                f"#       {title_field}:                  "
                "# 只改标签，其余设置不变 / change only the label",
                "#         label: {zh: 公司全称, en: Company name}",
            ]
    if choice is not None:
        ename, fname, options = choice
        first = _option_value_of(options[0]) if options else "lead"
        last = _option_value_of(options[-1]) if options else "lost"
        if ename != entity:
            lines += [f"#   {ename}:", "#     fields:"]
        lines += [
            f"#       {fname}:",
            "#         # 映射写法按选项值合并：新选项排在最后，~ 删除；要调整顺序请写出完整列表 /",
            "#         # the map form merges by option value: new options come last, ~ removes;",
            "#         # to change the order write the whole list instead",
            "#         options:",
            "#           new_option: {zh: 新选项, en: New option}   # 新增 / add",
            f"#           {first}: {{zh: 新的标签, en: New label}}     # 改标签 / relabel",
            f"#           {last}: ~                                 # 删除 / remove",
        ]
    flows = data.get("flows") or {}
    for fname, fl in flows.items():
        steps = list((fl or {}).get("steps") or {})
        if len(steps) >= 2:
            lines += [
                "#",
                "# flows:",
                f"#   {fname}:",
                "#     steps:",
                f"#       {steps[-1]}: ~          "
                "# 删除一个步骤（~ 表示删除）/ remove a step (~ removes)",
            ]
            break
    return lines


def new_fork(folder: Path, base: str) -> list[Path]:
    """Create ``folder`` as an overlay extending the template ``base``; the files written."""
    template = find_template(base)
    main = _main(template)
    if folder.exists() and any(folder.iterdir()):
        raise ForkError(
            T(f"文件夹 {folder} 已存在且不为空", f"the folder {folder} exists and is not empty")
        )
    try:
        base_doc = sources.resolve(template)
    except BlueprintError as exc:
        raise ForkError(
            T(f"模板 {base} 有问题，先修好它", f"the template {base} has problems; fix it first")
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    target = main.parent if main.name in sources.MAIN_NAMES else main
    extends = os.path.relpath(target, folder.resolve()).replace(os.sep, "/")
    title = _title(base_doc.data)
    name = folder.resolve().name
    overlay = [
        f"# {name}：基于模板 {target.name} 的本地改动 / "
        f"local changes on top of the {target.name} template",
        "# 只写与模板不同的部分；模板的改进会自动生效。合并规则见 docs/forks.md。",
        "# Write only what differs from the template; its improvements still apply.",
        "# Merge rules: docs/forks.md. `formflow diff .` lists what this file changes.",
        "",
        f"extends: {extends}",
        "",
        f"title: {{zh: {title.get('zh')}（{name}）, en: {title.get('en')} ({name})}}",
        "",
        "# 常见改动示例（去掉 # 即可生效）/ Examples of common changes (uncomment to use):",
        "#",
        *_examples(base_doc.data),
        "",
    ]
    files = [folder / "blueprint.yaml", folder / "README.md"]
    files[0].write_text("\n".join(overlay), encoding="utf-8")
    files[1].write_text(_readme(name, target.name, extends), encoding="utf-8")
    return files


def _readme(name: str, base: str, extends: str) -> str:
    return f"""# {name}

基于 `{base}` 模板的定制版本。/ Our own version of the `{base}` template.

- `blueprint.yaml` 只写我们的改动，通过 `extends: {extends}` 继承模板。
  `blueprint.yaml` holds only our changes; it inherits the template through `extends: {extends}`.
- 模板升级后，我们没有改动的部分自动更新。
  When the template improves, everything we did not change follows it.
- 合并规则 / merge rules: docs/forks.md

```sh
formflow check .          # 检查合并后的蓝图 / check the merged blueprint
formflow diff .           # 列出我们的改动 / list what we changed
formflow test .           # 运行测试 / run the tests (the template's and tests/*.yaml)
formflow serve . --demo   # 试用 / try it
```

在 `tests/*.yaml` 中为我们的改动写测试（见 docs/testing.md）。
Write tests for our changes in `tests/*.yaml` (see docs/testing.md).
"""


# -- diff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between the base and the merged blueprint."""

    path: tuple[str, ...]  # e.g. ("entities", "customer", "fields", "wechat")
    kind: str  # added | removed | changed
    old: Any = None
    new: Any = None


def base_of(folder: Path) -> Path:
    """The template a fork's main file ``extends:``."""
    main = _main(folder)
    doc = sources.read_document(main)
    extends = doc.data.get("extends")
    if not isinstance(extends, str):
        raise ForkError(
            T(
                f"{main} 没有 extends:，不是基于模板的定制版本",
                f"{main} has no extends: it is not a fork of a template",
            )
        )
    return main.parent / extends


def _option_key(item: Any) -> str | None:
    if isinstance(item, str | int) and not isinstance(item, bool):
        return str(item)
    if isinstance(item, Mapping) and "value" in item:
        return str(item["value"])
    return None


def _compare(old: Any, new: Any, path: tuple[str, ...], out: list[Change]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        if _is_label(old) or _is_label(new):
            if dict(old) != dict(new):
                out.append(Change(path, "changed", old, new))
            return
        for key in old:
            if key not in new:
                out.append(Change((*path, str(key)), "removed", old[key], None))
        for key in new:
            if key not in old:
                out.append(Change((*path, str(key)), "added", None, new[key]))
            else:
                _compare(old[key], new[key], (*path, str(key)), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_keys = [_option_key(i) for i in old]
        new_keys = [_option_key(i) for i in new]
        if None not in old_keys and None not in new_keys:
            olds = dict(zip(old_keys, old, strict=True))
            news = dict(zip(new_keys, new, strict=True))
            for key, item in olds.items():
                if key not in news:
                    out.append(Change((*path, str(key)), "removed", item, None))
            for key, item in news.items():
                if key not in olds:
                    out.append(Change((*path, str(key)), "added", None, item))
                elif item != olds[key]:
                    _compare(_as_map(olds[key]), _as_map(item), (*path, str(key)), out)
            return
    if old != new:
        out.append(Change(path, "changed", old, new))


def _as_map(item: Any) -> Any:
    return item if isinstance(item, Mapping) else {"value": item, "label": item}


def _is_label(value: Mapping[str, Any]) -> bool:
    return bool(value) and set(value) <= {"zh", "en"}


def diff(folder: Path) -> list[Change]:
    """What the overlay at ``folder`` changes against the template it extends."""
    base = base_of(folder)
    old = sources.resolve(base).data
    new = sources.resolve(folder).data
    out: list[Change] = []
    _compare(old, new, (), out)
    return out


# -- rendering ----------------------------------------------------------------------------------

_SECTIONS = {
    "entities": ("实体", "entity"),
    "fields": ("字段", "field"),
    "options": ("选项", "option"),
    "flows": ("流程", "flow"),
    "steps": ("步骤", "step"),
    "kpis": ("指标", "KPI"),
    "dashboards": ("看板", "dashboard"),
    "roles": ("角色", "role"),
    "automations": ("自动化", "automation"),
    "tests": ("测试", "test"),
}
_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        if _is_label(value):
            return " / ".join(str(value[k]) for k in ("zh", "en") if k in value)
        kind = value.get("type")
        label = value.get("label")
        parts = [str(kind)] if kind else []
        if isinstance(label, Mapping | str):
            parts.append(_short(label) if isinstance(label, Mapping) else label)
        return ", ".join(parts) or "{…}"
    if isinstance(value, list):
        return (
            "[" + ", ".join(_short(v) for v in value[:6]) + (", …" if len(value) > 6 else "") + "]"
        )
    return "~" if value is None else str(value)


def render_tree(changes: list[Change], lang: str) -> list[str]:
    """The changes as an indented tree: section, name, then ``+``/``-``/``~`` leaves."""
    lines: list[str] = []
    shown: list[str] = []
    for change in changes:
        path = list(change.path)
        parents, leaf = path[:-1], path[-1] if path else ""
        common = 0
        while common < min(len(shown), len(parents)) and shown[common] == parents[common]:
            common += 1
        for depth in range(common, len(parents)):
            lines.append(
                "  " * depth + _name(parents[depth], parents[depth - 1] if depth else None, lang)
            )
        shown = parents
        indent = "  " * len(parents)
        what = _name(leaf, parents[-1] if parents else None, lang)
        if change.kind == "added":
            lines.append(f"{indent}+ {what}: {_short(change.new)}")
        elif change.kind == "removed":
            lines.append(f"{indent}- {what}")
        else:
            lines.append(f"{indent}~ {what}: {_short(change.old)} → {_short(change.new)}")
    return lines


def _name(key: str, parent: str | None, lang: str) -> str:
    if parent in _SECTIONS:
        zh, en = _SECTIONS[parent]
        return f"{zh} {key}" if lang == "zh" else f"{en} {key}"
    return key


def change_json(change: Change) -> dict[str, Any]:
    return {"path": list(change.path), "change": change.kind, "old": change.old, "new": change.new}
