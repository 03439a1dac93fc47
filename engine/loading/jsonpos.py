"""Read JSON blueprints with the position of every key and value.

``json.loads`` checks the syntax (its errors carry a line and column); a small
scanner then walks the same text to record where each key and value starts,
refuse duplicate keys (``json`` silently keeps the last one), refuse ``NaN`` /
``Infinity`` (not JSON), and apply the limits of :mod:`engine.loading.limits`
exactly as the YAML reader does.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from json.decoder import scanstring  # type: ignore[attr-defined]  # untyped but public
from typing import Any, NoReturn

from engine.errors import BlueprintError, Location, Problem
from engine.i18n import T, Text
from engine.loading.limits import MAX_DEPTH, MAX_NODES, limit_for
from engine.loading.positions import Path, Pos

__all__ = ["parse_json"]

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")

#: json's messages -> (zh, en) for analysts.
_JSON_MESSAGES: tuple[tuple[str, str, str], ...] = (
    ("Expecting ',' delimiter", "缺少逗号 ','", "a ',' is missing"),
    ("Expecting ':' delimiter", "缺少冒号 ':'", "a ':' is missing"),
    (
        "Expecting property name",
        "这里应是用双引号括起的键（JSON 不允许末尾多余的逗号）",
        "a key in double quotes is expected here (JSON allows no trailing comma)",
    ),
    ("Expecting value", "这里缺少一个值", "a value is missing here"),
    ("Unterminated string", "字符串缺少结尾的双引号", "a string has no closing quote"),
    (
        "Invalid control character",
        "字符串里有控制字符（如换行）",
        "a control character (like a newline) is in a string",
    ),
    ("Invalid \\escape", "字符串里有无效的转义", "invalid escape in a string"),
    ("Extra data", "JSON 值结束后还有多余内容", "there is more text after the JSON value"),
)


class _StopReadingError(Exception):
    pass


class _Scanner:
    def __init__(self, text: str, file: str, max_nodes: int, max_depth: int) -> None:
        self.text = text
        self.file = file
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.total = 0
        self.problems: list[Problem] = []
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def loc(self, index: int) -> Location:
        line = bisect_right(self.line_starts, index) - 1
        return Location(self.file, line + 1, index - self.line_starts[line] + 1)

    def stop(self, index: int, message: Text, hint: Text | None = None) -> NoReturn:
        self.problems.append(Problem(self.loc(index), message, hint or Text()))
        raise _StopReadingError

    def skip(self, index: int) -> int:
        match = _WS.match(self.text, index)
        return match.end() if match else index

    def expect(self, index: int, char: str) -> int:
        index = self.skip(index)
        if not self.text.startswith(char, index):
            self.stop(index, T(f"这里应是 '{char}'", f"'{char}' expected here"))
        return index + 1

    def count(self, index: int) -> None:
        self.total += 1
        if self.total > self.max_nodes:
            self.stop(
                index,
                T(
                    f"文件超过 {self.max_nodes:,} 个值",
                    f"this file holds more than {self.max_nodes:,} values",
                ),
                T("把蓝图拆成几个文件", "split the blueprint into several files"),
            )

    def value(self, index: int, path: Path, depth: int) -> tuple[Any, Pos, int]:
        index = self.skip(index)
        self.count(index)
        char = self.text[index : index + 1]
        if char in ("{", "["):
            if depth >= self.max_depth:
                self.stop(
                    index,
                    T(
                        f"嵌套超过 {self.max_depth} 层",
                        f"nesting is deeper than {self.max_depth} levels",
                    ),
                    T("减少嵌套层数", "flatten the structure"),
                )
            if char == "{":
                return self.object(index, path, depth)
            return self.array(index, path, depth)
        if char == '"':
            text, end = scanstring(self.text, index + 1)
            return text, Pos(self.loc(index), self.loc(index + 1)), end
        for literal, result in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(literal, index):
                return result, Pos(self.loc(index)), index + len(literal)
        match = _NUMBER.match(self.text, index)
        if match:
            whole, frac, exp = match.groups()
            number: int | float = float(match.group()) if frac or exp else int(whole)
            return number, Pos(self.loc(index)), match.end()
        self.stop(
            index,
            T("JSON 不允许 NaN 或 Infinity", "JSON does not allow NaN or Infinity"),
            T("写一个数字", "write a number"),
        )

    def object(self, index: int, path: Path, depth: int) -> tuple[Any, Pos, int]:
        pos = Pos(self.loc(index))
        out: dict[str, Any] = {}
        limit = limit_for(path)
        index = self.skip(index + 1)
        if self.text.startswith("}", index):
            return out, pos, index + 1
        while True:
            index = self.skip(index)
            key_at = index
            if not self.text.startswith('"', index):
                self.stop(index, T("这里应是键", "a key is expected here"))
            key, index = scanstring(self.text, index + 1)
            key_loc = self.loc(key_at)
            index = self.expect(index, ":")
            value, kid, index = self.value(index, (*path, key), depth + 1)
            if key in out:
                first = pos.keys[key]
                self.problems.append(
                    Problem(
                        key_loc,
                        T(
                            f"重复的键 '{key}'（第 {first.line} 行已经写过）",
                            f"duplicate key '{key}' (first written on line {first.line})",
                        ),
                        T("删掉其中一个，或合并两处的内容", "remove one of them or merge the two"),
                    )
                )
            else:
                if limit is not None and len(out) >= limit.limit:
                    keys = [str(k) for k in path]
                    message = Text(
                        zh=(limit.message.zh or "").format(*keys, limit=limit.limit),
                        en=(limit.message.en or "").format(*keys, limit=limit.limit),
                    )
                    self.stop(key_at, message, limit.hint)
                out[key] = value
                pos.kids[key] = kid
                pos.keys[key] = key_loc
            index = self.skip(index)
            if self.text.startswith(",", index):
                index += 1
                continue
            return out, pos, self.expect(index, "}")

    def array(self, index: int, path: Path, depth: int) -> tuple[Any, Pos, int]:
        pos = Pos(self.loc(index))
        out: list[Any] = []
        index = self.skip(index + 1)
        if self.text.startswith("]", index):
            return out, pos, index + 1
        while True:
            value, kid, index = self.value(index, (*path, len(out)), depth + 1)
            pos.kids[len(out)] = kid
            out.append(value)
            index = self.skip(index)
            if self.text.startswith(",", index):
                index += 1
                continue
            return out, pos, self.expect(index, "]")


def _decode_problem(exc: json.JSONDecodeError, file: str) -> Problem:
    for needle, zh, en in _JSON_MESSAGES:
        if exc.msg.startswith(needle):
            return Problem(
                Location(file, exc.lineno, exc.colno),
                T(f"JSON 语法错误：{zh}", f"invalid JSON: {en}"),
                T("检查这一处的逗号、引号和括号", "check the commas, quotes and brackets here"),
            )
    return Problem(
        Location(file, exc.lineno, exc.colno),
        T(f"JSON 语法错误：{exc.msg}", f"invalid JSON: {exc.msg}"),
    )


def parse_json(
    text: str, file: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> tuple[Any, Pos]:
    """Plain values and their positions from JSON ``text``; BlueprintError if invalid."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise BlueprintError([_decode_problem(exc, file)]) from None
    except RecursionError:
        pass  # the scanner below stops at max_depth with a position
    scanner = _Scanner(text, file, max_nodes, max_depth)
    try:
        value, pos, _ = scanner.value(0, (), 0)
    except _StopReadingError:
        value, pos = None, Pos(Location(file, 1, 1))
    if scanner.problems:
        raise BlueprintError(scanner.problems)
    return value, pos
