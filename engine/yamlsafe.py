"""Read YAML blueprints safely, keeping the position of every key and value.

Why not ``yaml.safe_load``: it forgets where values were written, accepts
duplicate keys silently (the last one wins), and applies YAML 1.1's surprising
implicit types (``NO`` and ``on`` are booleans, ``12:30`` is 750, ``2024-01-01``
a date). Analysts write labels and option values such as ``NO`` (Norway) or
``12:30``; they must stay text.

So this module builds plain values straight from the parser's events (one level
below ``yaml.compose``, libyaml when available), and:

* records where each key and value starts (:class:`engine.loading.positions.Pos`);
* resolves plain scalars with a YAML-1.2-core-like resolver: only ``true`` /
  ``false`` (any case) are booleans; ``null``, ``~`` and an empty value are
  None; integers are decimal only (``0x1F``, ``0o17``, ``1_000``, ``007`` stay
  text); a float needs a dot (``1.5``, ``1.5e3``; ``1e3`` stays text);
  everything else - dates, times like ``12:30``, ``yes``/``no``/``on``/``off``
  - stays text (the field kind coerces it later);
* accepts only the standard tags ``!!str !!int !!float !!bool !!null !!map
  !!seq``: any other tag (``!!python/object/apply:...``, ``!foo``, ``!!binary``)
  is an error at its position. Nothing is ever constructed from a tag, so a
  hostile tag cannot run code;
* refuses duplicate keys (at the second occurrence, naming the first's line)
  and YAML merge keys (``<<``);
* counts values while reading, each alias counting the full size of the node it
  refers to (memoised, so nothing is expanded), and stops at the limits in
  :mod:`engine.loading.limits`: an alias bomb or a 10,000-field entity is
  refused after reading only a few hundred values;
* turns every ``yaml.YAMLError`` into a bilingual :class:`Problem` at its line
  and column; tabs used for indentation get their own message.

Values are shared between an anchor and its aliases (never copied), so a caller
must not mutate the returned data in place.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import yaml
from yaml import events as ev

from engine.errors import BlueprintError, Location, Problem
from engine.i18n import T, Text
from engine.loading.limits import MAX_DEPTH, MAX_NODES, CollectionLimit, limit_for
from engine.loading.positions import Path, Pos

__all__ = ["STANDARD_TAGS", "parse_yaml", "resolve_plain"]

_YAML_TAG = "tag:yaml.org,2002:"
#: The only tags a blueprint may use (as ``!!name``).
STANDARD_TAGS: frozenset[str] = frozenset({"str", "int", "float", "bool", "null", "map", "seq"})

_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)?\.[0-9]+(?:[eE][-+]?[0-9]+)?\Z")
_BOOL = re.compile(r"(?i:true|false)\Z")
_NULL = re.compile(r"(?i:null)\Z|~\Z|\Z")


def resolve_plain(text: str) -> Any:
    """The value of an untagged plain scalar (see the module docstring)."""
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text.lower() == "true"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


class _EventSource(Protocol):
    def get_event(self) -> Any: ...

    def dispose(self) -> None: ...


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """The pure-Python event parser, used when libyaml is not compiled in."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def _event_source(text: str) -> _EventSource:
    c_parser = getattr(getattr(yaml, "cyaml", None), "CParser", None)
    if c_parser is not None:
        source: _EventSource = c_parser(text)
        return source
    return _PyParser(text)


class _StopReadingError(Exception):
    """Reading cannot go on (syntax error or limit); the problem is already recorded."""


@dataclass
class _Frame:
    """A map or list being read."""

    container: dict[str, Any] | list[Any]
    pos: Pos
    path: Path
    anchor: str | None
    limit: CollectionLimit | None
    size: int = 1
    key: str | None = None  # map: the key whose value comes next
    key_loc: Location | None = None
    skip_value: bool = False  # map: the pending key was a duplicate
    key_lines: dict[str, Location] = field(default_factory=dict)


@dataclass
class _Anchor:
    value: Any
    pos: Pos
    size: int


class _Builder:
    def __init__(self, text: str, file: str, max_nodes: int, max_depth: int) -> None:
        self.text = text
        self.file = file
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.problems: list[Problem] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.total = 0
        self.documents = 0
        self.root: Any = None
        self.root_pos: Pos = Pos(Location(file, 1, 1))
        self._lines: list[str] | None = None

    # -- positions ---------------------------------------------------------
    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines

    def loc(self, mark: Any) -> Location:
        if mark is None:
            return Location(self.file)
        return Location(self.file, mark.line + 1, mark.column + 1)

    def text_loc(self, event: ev.ScalarEvent) -> Location:
        """Where the scalar's characters start (for formulas)."""
        start = self.loc(event.start_mark)
        style = event.style or ""
        if style in ("'", '"'):
            return Location(self.file, start.line, start.column + 1)
        if style in ("|", ">"):
            for index in range(start.line, len(self.lines)):  # start.line is 1-based
                line = self.lines[index]
                if line.strip():
                    indent = len(line) - len(line.lstrip(" "))
                    return Location(self.file, index + 1, indent + 1)
        return start

    # -- problems ----------------------------------------------------------
    def problem(self, loc: Location, message: Text, hint: Text | None = None) -> None:
        self.problems.append(Problem(loc, message, hint or Text()))

    def stop(self, loc: Location, message: Text, hint: Text | None = None) -> NoReturn:
        self.problem(loc, message, hint)
        raise _StopReadingError

    def count(self, size: int, loc: Location) -> None:
        self.total += size
        if self.total > self.max_nodes:
            self.stop(
                loc,
                T(
                    f"文件展开后超过 {self.max_nodes:,} 个值"
                    "（每次使用别名 *name 都算一份完整拷贝）",
                    f"this file expands to more than {self.max_nodes:,} values "
                    "(each use of an alias *name counts as a full copy)",
                ),
                T(
                    "减少别名的使用，或把蓝图拆成几个文件",
                    "use fewer aliases or split the blueprint",
                ),
            )

    # -- tags --------------------------------------------------------------
    def tag_name(self, tag: str | None) -> str | None:
        """'int' for '!!int'; None for no tag / the non-specific '!'; else the raw tag."""
        if tag is None or tag == "!":
            return None
        if tag.startswith(_YAML_TAG):
            return tag[len(_YAML_TAG) :]
        return tag

    def bad_tag(self, tag: str, loc: Location) -> None:
        shown = "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag
        allowed = " ".join(f"!!{t}" for t in sorted(STANDARD_TAGS))
        self.problem(
            loc,
            T(f"不支持 YAML 标签 '{shown}'", f"YAML tag '{shown}' is not allowed"),
            T(
                f"删掉标签；只能用标准标签 {allowed}",
                f"remove it; only the standard tags {allowed} are allowed",
            ),
        )

    def check_collection_tag(self, tag: str | None, expected: str, loc: Location) -> None:
        name = self.tag_name(tag)
        if name is not None and name != expected:
            assert tag is not None
            self.bad_tag(tag, loc)

    def scalar_value(self, event: ev.ScalarEvent, loc: Location) -> Any:
        tag = self.tag_name(event.tag)
        text: str = event.value
        if tag is None:
            plain = bool(event.implicit and event.implicit[0]) and event.tag is None
            return resolve_plain(text) if plain else text
        checks: dict[str, tuple[re.Pattern[str], Any]] = {
            "int": (_INT, int),
            "float": (re.compile(f"{_FLOAT.pattern}|{_INT.pattern}"), float),
            "bool": (_BOOL, lambda s: s.lower() == "true"),
            "null": (_NULL, lambda s: None),
        }
        if tag == "str":
            return text
        if tag in checks:
            pattern, convert = checks[tag]
            if pattern.match(text):
                return convert(text)
            self.problem(
                loc,
                T(f"'{text}' 不是合法的 !!{tag} 值", f"'{text}' is not a valid !!{tag} value"),
                T("删掉标签，或改正这个值", "remove the tag or fix the value"),
            )
            return text
        assert event.tag is not None
        self.bad_tag(event.tag, loc)
        return text

    # -- building ----------------------------------------------------------
    def run(self) -> tuple[Any, Pos]:
        source = _event_source(self.text)
        try:
            while True:
                event = source.get_event()
                if isinstance(event, ev.StreamEndEvent):
                    break
                self.handle(event)
        except _StopReadingError:
            pass
        except yaml.YAMLError as exc:
            self.problems.append(syntax_problem(exc, self.file, self.lines))
        except RecursionError:
            self.problem(Location(self.file), T("嵌套太深", "nesting is too deep"), _DEPTH_HINT)
        finally:
            source.dispose()
        if self.problems:
            raise BlueprintError(self.problems)
        return self.root, self.root_pos

    def handle(self, event: Any) -> None:
        if isinstance(event, ev.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.stop(
                    self.loc(event.start_mark),
                    T(
                        "一个蓝图文件只能有一个 YAML 文档",
                        "a blueprint file holds one YAML document",
                    ),
                    T(
                        "删掉第二个 '---'，或分成两个文件",
                        "remove the second '---' or use two files",
                    ),
                )
        elif isinstance(event, ev.ScalarEvent):
            self.scalar(event)
        elif isinstance(event, ev.MappingStartEvent | ev.SequenceStartEvent):
            self.start(event)
        elif isinstance(event, ev.MappingEndEvent | ev.SequenceEndEvent):
            self.end()
        elif isinstance(event, ev.AliasEvent):
            self.alias(event)

    def expecting_key(self) -> _Frame | None:
        if self.stack:
            top = self.stack[-1]
            if isinstance(top.container, dict) and top.key is None:
                return top
        return None

    def take_key(self, frame: _Frame, key: str, loc: Location) -> None:
        if key in frame.key_lines:
            first = frame.key_lines[key]
            self.problem(
                loc,
                T(
                    f"重复的键 '{key}'（第 {first.line} 行已经写过）",
                    f"duplicate key '{key}' (first written on line {first.line})",
                ),
                T("删掉其中一个，或合并两处的内容", "remove one of them or merge the two"),
            )
            frame.skip_value = True
        else:
            frame.key_lines[key] = loc
            frame.skip_value = False
            limit = frame.limit
            if limit is not None and len(frame.key_lines) > limit.limit:
                self.stop(loc, _format(limit.message, frame.path, limit.limit), limit.hint)
        frame.key, frame.key_loc = key, loc

    def scalar(self, event: ev.ScalarEvent) -> None:
        loc = self.loc(event.start_mark)
        self.count(1, loc)
        frame = self.expecting_key()
        if frame is not None:
            name = self.tag_name(event.tag)
            if name is not None and name != "str":
                self.bad_key_tag(event.tag or "", loc)
            if event.value == "<<" and event.tag is None and event.implicit[0]:
                self.problem(
                    loc,
                    T("不支持 YAML 合并键 '<<'", "YAML merge keys ('<<') are not supported"),
                    T(
                        "把键逐个写出来，或用 extends: 继承模板",
                        "write the keys out, or use extends: to build on a template",
                    ),
                )
            self.take_key(frame, event.value, loc)
            self.remember(event.anchor, event.value, Pos(loc), 1)
            return
        value = self.scalar_value(event, loc)
        pos = Pos(loc, self.text_loc(event))
        self.remember(event.anchor, value, pos, 1)
        self.place(value, pos, 1)

    def bad_key_tag(self, tag: str, loc: Location) -> None:
        if self.tag_name(tag) in STANDARD_TAGS:
            self.problem(
                loc,
                T("键只能是文本", "a key must be text"),
                T("删掉键上的标签", "remove the tag from the key"),
            )
        else:
            self.bad_tag(tag, loc)

    def start(self, event: ev.MappingStartEvent | ev.SequenceStartEvent) -> None:
        loc = self.loc(event.start_mark)
        is_map = isinstance(event, ev.MappingStartEvent)
        if self.expecting_key() is not None:
            self.stop(
                loc,
                T("键只能是文本，不能是映射或列表", "a key must be text, not a map or a list"),
                T("检查缩进和冒号", "check the indentation and the colons"),
            )
        self.count(1, loc)
        self.check_collection_tag(event.tag, "map" if is_map else "seq", loc)
        if len(self.stack) + 1 > self.max_depth:
            self.stop(
                loc,
                T(
                    f"嵌套超过 {self.max_depth} 层",
                    f"nesting is deeper than {self.max_depth} levels",
                ),
                _DEPTH_HINT,
            )
        path = self.child_path()
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        container: dict[str, Any] | list[Any] = {} if is_map else []
        self.stack.append(_Frame(container, Pos(loc), path, event.anchor, limit_for(path)))

    def child_path(self) -> Path:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, dict):
            return (*top.path, top.key or "")
        return (*top.path, len(top.container))

    def end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
        self.remember(frame.anchor, frame.container, frame.pos, frame.size)
        self.place(frame.container, frame.pos, frame.size)

    def alias(self, event: ev.AliasEvent) -> None:
        loc = self.loc(event.start_mark)
        name = event.anchor or ""
        anchor = self.anchors.get(name)
        if anchor is None:
            recursive = name in self.open_anchors
            self.stop(
                loc,
                T(f"别名 '*{name}' 引用了自身", f"alias '*{name}' refers to itself")
                if recursive
                else T(f"别名 '*{name}' 没有对应的锚点", f"alias '*{name}' has no anchor"),
                T(
                    f"先用 '&{name}' 定义，再用 '*{name}' 引用",
                    f"define '&{name}' before using '*{name}'",
                ),
            )
        self.count(anchor.size, loc)
        frame = self.expecting_key()
        if frame is not None:
            if not isinstance(anchor.value, str):
                self.stop(loc, T("键只能是文本", "a key must be text"))
            self.take_key(frame, anchor.value, loc)
            return
        self.place(anchor.value, anchor.pos, anchor.size)

    def remember(self, anchor: str | None, value: Any, pos: Pos, size: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = _Anchor(value, pos, size)

    def place(self, value: Any, pos: Pos, size: int) -> None:
        if not self.stack:
            self.root, self.root_pos = value, pos
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.container, list):
            limit = top.limit
            if limit is not None and len(top.container) >= limit.limit:
                self.stop(pos.value, _format(limit.message, top.path, limit.limit), limit.hint)
            top.pos.kids[len(top.container)] = pos
            top.container.append(value)
            return
        key = top.key or ""
        if not top.skip_value:
            top.container[key] = value
            top.pos.kids[key] = pos
            if top.key_loc is not None:
                top.pos.keys[key] = top.key_loc
        top.key, top.key_loc, top.skip_value = None, None, False


_DEPTH_HINT = T("减少嵌套层数", "flatten the structure")


def _format(message: Text, path: Path, limit: int) -> Text:
    keys = [str(k) for k in path]
    return Text(
        zh=None if message.zh is None else message.zh.format(*keys, limit=limit),
        en=None if message.en is None else message.en.format(*keys, limit=limit),
    )


# -- YAML syntax errors -----------------------------------------------------

_TAB = (
    T("不能用 Tab 缩进，请改用空格", "tabs are not allowed for indentation; use spaces"),
    T("把行首的 Tab 换成空格（每级 2 个空格）", "replace the tab with spaces (2 per level)"),
)

#: (substring of PyYAML's or libyaml's message, zh, en, hint zh, hint en)
_SYNTAX: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "mapping values are not allowed",
        "这一行多了一个冒号 ':'",
        "a ':' here starts a second key on this line",
        "含 ': ' 的文本要加引号，或把键换到新的一行",
        "quote text that contains ': ', or put the key on its own line",
    ),
    (
        "could not find expected ':'",
        "键后面缺少冒号 ':'",
        "a ':' is missing after a key",
        "写成 '键: 值'（冒号后有空格）",
        "write 'key: value' (with a space after the colon)",
    ),
    (
        "cannot start any token",
        "此处的字符不能作为值的开头",
        "a value cannot start with this character",
        "给这个值加上引号",
        "put the value in quotes",
    ),
    (
        "found unexpected end of stream",
        "文件意外结束",
        "the file ends in the middle of a value",
        "检查引号或括号是否成对",
        "check that every quote and bracket is closed",
    ),
    (
        "found undefined alias",
        "别名没有对应的锚点",
        "an alias has no anchor",
        "先用 &name 定义，再用 *name 引用",
        "define &name before using *name",
    ),
    (
        "unknown escape character",
        "双引号字符串里有未知的转义",
        "unknown escape in a double-quoted string",
        "正则表达式请用单引号，如 '^\\d+$'",
        "use single quotes for regular expressions, e.g. '^\\d+$'",
    ),
    (
        "expected ',' or ']'",
        "缺少 ',' 或 ']'",
        "a ',' or ']' is missing",
        "检查方括号列表 [...] 的写法",
        "check the [...] list",
    ),
    (
        "expected ',' or '}'",
        "缺少 ',' 或 '}'",
        "a ',' or '}' is missing",
        "检查花括号映射 {...} 的写法",
        "check the {...} map",
    ),
    (
        "expected <block end>",
        "缩进没有对齐",
        "the indentation does not line up",
        "同一层的键要从同一列开始",
        "start keys of the same map at the same column",
    ),
    (
        "did not find expected key",
        "缩进没有对齐",
        "the indentation does not line up",
        "同一层的键要从同一列开始",
        "start keys of the same map at the same column",
    ),
    (
        "expected '-' indicator",
        "列表项 '- ' 没有对齐",
        "list items ('- ') do not line up",
        "同一列表的 '- ' 要从同一列开始",
        "start the items of one list at the same column",
    ),
    (
        "block sequence entries are not allowed",
        "这里不能开始列表项 '- '",
        "a list item ('- ') cannot start here",
        "把 '- ' 换到新的一行并对齐",
        "put the '- ' on its own line, aligned",
    ),
    (
        "node content",
        "这里缺少一个值",
        "a value is missing here",
        "补上值，或删掉多余的符号",
        "add the value or remove the stray character",
    ),
)


def syntax_problem(exc: yaml.YAMLError, file: str, lines: list[str]) -> Problem:
    """A bilingual problem for a PyYAML/libyaml error, at its line and column."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file)
    problem = str(getattr(exc, "problem", None) or exc).strip()
    if mark is not None and 0 <= mark.line < len(lines):
        line = lines[mark.line]
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent or "'\\t'" in problem:
            column = indent.index("\t") + 1 if "\t" in indent else where.column
            return Problem(Location(file, mark.line + 1, column), *_TAB)
    context = getattr(exc, "context_mark", None)
    what = str(getattr(exc, "context", None) or "")
    opened = Text()
    opener = any(word in what for word in ("flow", "quoted", "scalar"))
    if opener and context is not None and mark is not None and context.line != mark.line:
        opened = T(
            f"（从第 {context.line + 1} 行第 {context.column + 1} 列开始）",
            f" (started at line {context.line + 1}, column {context.column + 1})",
        )
    for needle, zh, en, hint_zh, hint_en in _SYNTAX:
        if needle in problem:
            return Problem(
                where,
                T(f"YAML 语法错误：{zh}{opened.zh or ''}", f"invalid YAML: {en}{opened.en or ''}"),
                T(hint_zh, hint_en),
            )
    return Problem(
        where,
        T(
            f"YAML 语法错误：{problem}{opened.zh or ''}",
            f"invalid YAML: {problem}{opened.en or ''}",
        ),
        T("检查这一行的缩进、冒号和引号", "check the indentation, colons and quotes on this line"),
    )


def parse_yaml(
    text: str, file: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> tuple[Any, Pos]:
    """Plain values and their positions from YAML ``text`` (one document).

    Raises :class:`BlueprintError` with every problem found: duplicate keys and
    bad tags are all reported; a syntax error or a limit stops reading.
    """
    return _Builder(text, file, max_nodes, max_depth).run()
