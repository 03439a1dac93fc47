"""Finding and reading a blueprint's files: the main file, ``include:``, ``extends:``.

* A blueprint is a file (``.yaml``, ``.yml``, ``.json``) or a folder holding
  ``blueprint.yaml`` (or ``.yml`` / ``.json``).
* ``include: [more.yaml, entities/visits.yaml]`` pulls more of the same named
  sections (roles, entities, flows, kpis, dashboards, automations; ``tests``
  are appended) from other files of the same template folder. A name defined in
  two files is an error naming both places. An included file may not escape
  the template folder (``../x`` is refused, and so is a symlink pointing out)
  and may not itself use ``include:`` or ``extends:``.
* ``extends: ../crm`` builds on another template (a folder or a file, relative
  to this file): the base is read the same way (recursively, at most
  :data:`~engine.loading.limits.MAX_EXTENDS_DEPTH` deep, cycles refused), then
  this file and its includes are merged over it (:mod:`engine.loading.merge`).

The directives themselves are removed from the result: the merged document
describes one self-contained blueprint.
"""

from __future__ import annotations

import os
from pathlib import Path as FilePath
from typing import Any

from engine.errors import BlueprintError, Location, Problem
from engine.i18n import T, Text
from engine.loading.jsonpos import parse_json
from engine.loading.limits import MAX_EXTENDS_DEPTH, MAX_FILE_BYTES, MAX_INCLUDES
from engine.loading.merge import merge
from engine.loading.positions import Doc, Pos
from engine.yamlsafe import parse_yaml

MAIN_NAMES: tuple[str, ...] = ("blueprint.yaml", "blueprint.yml", "blueprint.json")
SUFFIXES: frozenset[str] = frozenset({".yaml", ".yml", ".json"})
#: Sections an included file may hold: name -> definition maps.
NAMED_SECTIONS: tuple[str, ...] = (
    "roles",
    "entities",
    "flows",
    "kpis",
    "dashboards",
    "automations",
    "forecasts",
    "commissions",
)
LIST_SECTIONS: tuple[str, ...] = ("tests",)
DIRECTIVES: tuple[str, ...] = ("extends", "include")


def display_path(path: FilePath) -> str:
    """The path stored in every Location: absolute, without resolving symlinks."""
    return os.path.abspath(path)


def find_main(path: FilePath, where: Location | None = None) -> FilePath:
    """The main file of a blueprint given as a file or a folder."""
    if path.is_dir():
        for name in MAIN_NAMES:
            candidate = path / name
            if candidate.is_file():
                return candidate
        raise BlueprintError(
            [
                Problem(
                    where or Location(display_path(path)),
                    T(
                        f"文件夹 {path.name or path} 中没有 blueprint.yaml",
                        f"no blueprint.yaml in the folder {path.name or path}",
                    ),
                    T(
                        "把主文件命名为 blueprint.yaml（或 .yml / .json）",
                        "name the main file blueprint.yaml (or .yml / .json)",
                    ),
                )
            ]
        )
    if not path.exists():
        raise BlueprintError(
            [
                Problem(
                    where or Location(display_path(path)),
                    T(f"找不到 {path.name or path}", f"{path.name or path} does not exist"),
                    T("检查路径", "check the path"),
                )
            ]
        )
    return path


def read_document(path: FilePath, where: Location | None = None) -> Doc:
    """One file as a raw document with positions; BlueprintError if unreadable."""
    shown = display_path(path)
    here = where or Location(shown)
    if path.suffix.lower() not in SUFFIXES:
        raise _error(
            here,
            T(f"不支持的文件类型 '{path.suffix}'", f"unsupported file type '{path.suffix}'"),
            T("蓝图文件须为 .yaml、.yml 或 .json", "a blueprint file is .yaml, .yml or .json"),
        )
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _error(
                Location(shown),
                T(
                    f"文件太大（{size:,} 字节）：最大 {MAX_FILE_BYTES // (1024 * 1024)} MB",
                    f"the file is too large ({size:,} bytes): at most "
                    f"{MAX_FILE_BYTES // (1024 * 1024)} MB",
                ),
                T("用 include: 拆分成几个文件", "split it into several files with include:"),
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _error(
            here,
            T(f"无法读取 {path}：{exc.strerror}", f"cannot read {path}: {exc.strerror}"),
            T("检查路径和权限", "check the path and the permissions"),
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _error(
            Location(shown, line, column),
            T("文件不是 UTF-8 编码", "the file is not UTF-8 text"),
            T("用 UTF-8 编码另存文件", "save the file as UTF-8"),
        ) from None
    if path.suffix.lower() == ".json":
        value, pos = parse_json(text, shown)
    else:
        value, pos = parse_yaml(text, shown)
    if not isinstance(value, dict):
        empty = value is None
        raise _error(
            pos.value if not empty else Location(shown, 1, 1),
            T("文件是空的", "the file is empty")
            if empty
            else T("蓝图文件的顶层必须是映射", "the top level of a blueprint file must be a map"),
            T(
                "以 formflow: 1、id:、title:、entities: 等键开始",
                "start with keys such as formflow: 1, id:, title:, entities:",
            ),
        )
    return Doc(value, pos, [shown])


def _error(where: Location, message: Text, hint: Text) -> BlueprintError:
    return BlueprintError([Problem(where, message, hint)])


def resolve(path: FilePath) -> Doc:
    """The merged raw document of the blueprint at ``path`` (file or folder).

    Raises BlueprintError with every problem found in the files and directives.
    """
    problems: list[Problem] = []
    doc = _resolve(find_main(path), (), problems)
    if problems or doc is None:
        raise BlueprintError(problems)
    return doc


def _resolve(
    main: FilePath, chain: tuple[tuple[FilePath, Location], ...], problems: list[Problem]
) -> Doc | None:
    try:
        doc = read_document(main)
    except BlueprintError as exc:
        problems.extend(exc.problems)
        return None
    folder = main.parent
    overlay = _without_directives(doc)
    include = doc.data.get("include")
    if include is not None:
        overlay = _include(overlay, doc, folder, include, problems)
    extends = doc.data.get("extends")
    if extends is None:
        return overlay
    where = doc.pos.locate(("extends",))
    if not isinstance(extends, str) or not extends.strip():
        problems.append(
            Problem(
                where,
                T(
                    "extends 应为模板文件夹的相对路径",
                    "extends should be the relative path of a template",
                ),
                T("例如 extends: ../crm", "e.g. extends: ../crm"),
            )
        )
        return overlay
    try:
        base_main = find_main(folder / extends, where)
    except BlueprintError as exc:
        problems.extend(exc.problems)
        return overlay
    seen = (*chain, (main.resolve(), where))
    files = [path for path, _ in seen]
    if base_main.resolve() in files:
        start = files.index(base_main.resolve())
        cycle = " → ".join(_template_name(p) for p in [*files[start:], files[start]])
        problems.append(
            Problem(
                seen[start][1],
                T(f"extends 形成了循环：{cycle}", f"extends forms a cycle: {cycle}"),
                T(
                    "模板不能直接或间接地继承自己",
                    "a template cannot extend itself, directly or not",
                ),
            )
        )
        return overlay
    if len(seen) > MAX_EXTENDS_DEPTH:
        problems.append(
            Problem(
                where,
                T(
                    f"extends 链太长：最多 {MAX_EXTENDS_DEPTH} 层",
                    f"the extends chain is too long: at most {MAX_EXTENDS_DEPTH} levels",
                ),
                T("让模板直接继承更基础的模板", "extend a more basic template directly"),
            )
        )
        return overlay
    base = _resolve(base_main, seen, problems)
    if base is None:
        return overlay
    return merge(base, overlay, problems)


def _template_name(main: FilePath) -> str:
    """A template as the analyst names it: its folder (or file), relative to here."""
    shown = main.parent if main.name in MAIN_NAMES else main
    try:
        return os.path.relpath(shown)
    except ValueError:  # another drive (Windows)
        return str(shown)


def _without_directives(doc: Doc) -> Doc:
    data = {k: v for k, v in doc.data.items() if k not in DIRECTIVES}
    pos = doc.pos
    for key in DIRECTIVES:
        if key in pos.kids:
            pos = pos.with_kid(key, None)
    return Doc(data, pos, list(doc.files))


def _include(
    overlay: Doc, doc: Doc, folder: FilePath, include: Any, problems: list[Problem]
) -> Doc:
    where = doc.pos.locate(("include",))
    if not isinstance(include, list) or len(include) > MAX_INCLUDES:
        problems.append(
            Problem(
                where,
                T(
                    f"include 应为文件路径的列表（最多 {MAX_INCLUDES} 个）",
                    f"include should be a list of file paths (at most {MAX_INCLUDES})",
                ),
                T("例如 include: [analytics.yaml]", "e.g. include: [analytics.yaml]"),
            )
        )
        return overlay
    root = folder.resolve()
    for index, item in enumerate(include):
        item_where = doc.pos.locate(("include", index))
        target = _include_target(item, folder, root, item_where, problems)
        if target is None:
            continue
        try:
            fragment = read_document(target, item_where)
        except BlueprintError as exc:
            problems.extend(exc.problems)
            continue
        overlay = _combine(overlay, fragment, problems)
    return overlay


def _include_target(
    item: Any, folder: FilePath, root: FilePath, where: Location, problems: list[Problem]
) -> FilePath | None:
    if not isinstance(item, str) or not item.strip():
        problems.append(
            Problem(
                where,
                T("include 的每一项应为文件路径", "each include item should be a file path"),
                T("例如 - analytics.yaml", "e.g. - analytics.yaml"),
            )
        )
        return None
    target = folder / item
    try:
        inside = target.resolve().is_relative_to(root)
    except OSError:
        inside = False
    if os.path.isabs(item) or not inside:
        problems.append(
            Problem(
                where,
                T(
                    f"include 的文件 '{item}' 不在模板文件夹内",
                    f"'{item}' is outside the template folder",
                ),
                T(
                    "include 只能引入本文件夹内的文件；要基于其他模板请用 extends:",
                    "include only files inside this folder; to build on another template "
                    "use extends:",
                ),
            )
        )
        return None
    if not target.is_file():
        problems.append(
            Problem(
                where,
                T(f"找不到 include 的文件 '{item}'", f"included file '{item}' does not exist"),
                T(
                    "检查文件名和路径（相对于本文件）",
                    "check the name and path (relative to this file)",
                ),
            )
        )
        return None
    return target


def _short(where: Location, relative_to: Location) -> str:
    """``where`` with its file relative to the folder of ``relative_to``'s file."""
    folder = os.path.dirname(relative_to.file)
    return str(Location(os.path.relpath(where.file, folder), where.line, where.column))


def _combine(main: Doc, fragment: Doc, problems: list[Problem]) -> Doc:
    """``main`` with the sections of an included file added (names must not clash)."""
    data = dict(main.data)
    pos = main.pos
    allowed = (*NAMED_SECTIONS, *LIST_SECTIONS)
    for section, value in fragment.data.items():
        kid = fragment.pos.kids.get(section) or Pos(fragment.pos.value)
        key_loc = fragment.pos.locate_key((section,))
        if section not in allowed:
            problems.append(
                Problem(
                    key_loc,
                    T(
                        f"被 include 的文件不能有 '{section}'",
                        f"an included file cannot hold '{section}'",
                    ),
                    T(
                        f"只能包含这些分区：{', '.join(allowed)}",
                        f"it may hold only these sections: {', '.join(allowed)}",
                    ),
                )
            )
            continue
        if value is None:
            continue
        current = data.get(section)
        if current is None:
            data[section] = value
            pos = pos.with_kid(section, kid, key_loc)
            continue
        if section in LIST_SECTIONS and isinstance(current, list) and isinstance(value, list):
            section_pos = pos.kids.get(section) or Pos(pos.value)
            merged_pos = Pos(section_pos.value, None, dict(section_pos.kids))
            for index in range(len(value)):
                if index in kid.kids:
                    merged_pos.kids[len(current) + index] = kid.kids[index]
            data[section] = [*current, *value]
            pos = pos.with_kid(section, merged_pos)
            continue
        if not (isinstance(current, dict) and isinstance(value, dict)):
            problems.append(
                Problem(
                    kid.value,
                    T(f"'{section}' 应为映射", f"'{section}' should be a map"),
                    T("写成 名字: 定义", "write name: definition"),
                )
            )
            continue
        combined = dict(current)
        old = pos.kids.get(section) or Pos(pos.value)
        section_pos = Pos(old.value, old.text, dict(old.kids), dict(old.keys))
        for name, definition in value.items():
            name_loc = kid.keys.get(name, kid.value)
            if name in combined:
                first = _short(section_pos.keys.get(name, section_pos.value), name_loc)
                problems.append(
                    Problem(
                        name_loc,
                        T(
                            f"'{section}' 中的 '{name}' 定义了两次：这里和 {first}",
                            f"'{name}' in {section} is defined twice: here and at {first}",
                        ),
                        T("删掉其中一个，或改名", "remove one of them or rename it"),
                    )
                )
                continue
            combined[name] = definition
            section_pos.kids[name] = kid.kids.get(name) or Pos(name_loc)
            section_pos.keys[name] = name_loc
        data[section] = combined
        pos = pos.with_kid(section, section_pos)
    return Doc(data, pos, [*main.files, *fragment.files])
