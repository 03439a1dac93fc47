"""The parser front: formula text to a Python syntax tree, via simpleeval's parser.

This is the only module in Formflow that imports simpleeval. We use its parser
(``SimpleEval.parse``, a thin layer over :func:`ast.parse`) and none of its
evaluator: evaluation is compiled to closures by :mod:`.compiler`.

Positions: the text is wrapped in parentheses so a formula may span several
lines (YAML block scalars); offsets are mapped back to (line, column) in the
original text, counted in characters (``ast`` counts UTF-8 bytes).
"""

from __future__ import annotations

import ast
import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from simpleeval import SimpleEval  # no stubs: mypy ignore_missing_imports

from engine.errors import ExpressionError
from engine.i18n import T, Text

from .sandbox import check_tree_size, fail, precheck

# Full-width punctuation an IME produces, and what the analyst meant.
_FULL_WIDTH = {
    "（": "(", "）": ")", "，": ",", "“": '"', "”": '"', "‘": "'", "’": "'",
    "：": ":", "［": "[", "］": "]", "｛": "{", "｝": "}", "＝": "=", "＞": ">",
    "＜": "<", "＋": "+", "－": "-", "＊": "*", "／": "/", "！": "!", "。": ".",
}  # fmt: skip


@dataclass(frozen=True)
class Parsed:
    """A parsed formula: the expression node and how to map its positions back."""

    source: str
    node: ast.expr
    lines: tuple[str, ...]

    def offset(self, node: ast.AST) -> tuple[int, int]:
        """(line, column) of ``node`` in the original text, 0-based, in characters."""
        lineno = getattr(node, "lineno", 1) - 1
        col = getattr(node, "col_offset", 0)
        return self._position(lineno, col)

    def after(self, node: ast.AST) -> tuple[int, int]:
        """Where the operator following ``node`` is: the next character that is not blank or ')'."""
        lineno = (getattr(node, "end_lineno", None) or 1) - 1
        text = self.lines[lineno]
        byte_col = getattr(node, "end_col_offset", None) or 0
        col = len(text.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))
        while True:
            while col < len(text) and text[col] in " \t)":
                col += 1
            if col < len(text) or lineno + 1 >= len(self.lines):
                break
            lineno, text, col = lineno + 1, self.lines[lineno + 1], 0
        return lineno, max(col - 1 if lineno == 0 else col, 0)

    def _position(self, lineno: int, byte_col: int) -> tuple[int, int]:
        line = self.lines[lineno] if 0 <= lineno < len(self.lines) else ""
        col = len(line.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))
        if lineno == 0:
            col -= 1  # the "(" we added
        return max(lineno, 0), max(col, 0)


def parse(source: str) -> Parsed:
    """Parse one formula or raise ExpressionError pointing at the problem."""
    try:
        precheck(source)
    except ExpressionError as exc:
        if not exc.hint:
            exc.hint = _full_width_hint(source)
        raise
    text = source
    stripped = text.lstrip()
    if stripped.startswith("=") and not stripped.startswith("=="):
        # "=TODAY()" as written in a default: the "=" only marks a formula.
        at = len(text) - len(stripped)
        text = text[:at] + " " + text[at + 1 :]
    if not text.strip():
        fail(T("公式是空的", "the formula is empty"))
    wrapped = "(" + text + "\n)"
    lines = tuple(wrapped.split("\n"))
    try:
        node = SimpleEval.parse(wrapped)
    except SyntaxError as exc:
        _syntax_error(source, lines, exc)
    except (ValueError, MemoryError, RecursionError):
        fail(T("公式无法解析", "the formula cannot be parsed"))
    if not isinstance(node, ast.Expr):
        fail(T("公式必须是一个表达式", "a formula must be a single expression"))
    check_tree_size(node.value)
    return Parsed(source=source, node=node.value, lines=lines)


def _syntax_error(source: str, lines: tuple[str, ...], exc: SyntaxError) -> NoReturn:
    lineno = (exc.lineno or 1) - 1
    col = max((exc.offset or 1) - 1, 0)  # a character offset, 1-based, in SyntaxError
    if lineno == 0:
        col -= 1
    if lineno >= len(lines) - 1:  # the closing ")" line we added: point at the end
        lineno = max(len(lines) - 2, 0)
        col = len(lines[lineno]) - (1 if lineno == 0 else 0)
    reason = _reason(exc)
    fail(
        T(f"公式语法错误：{reason.zh}", f"syntax error: {reason.en}"),
        (max(lineno, 0), max(col, 0)),
        _full_width_hint(source),
    )


def _full_width_hint(source: str) -> Text:
    """Chinese input methods type full-width brackets and commas; say so."""
    odd = next((ch for ch in source if ch in _FULL_WIDTH), None)
    if odd is not None:
        return T(
            f"请使用半角符号：把 '{odd}' 改为 '{_FULL_WIDTH[odd]}'",
            f"use half-width punctuation: '{_FULL_WIDTH[odd]}' instead of '{odd}'",
        )
    if unicodedata.normalize("NFKC", source) != source:
        return T("公式中含有全角字符", "the formula contains full-width characters")
    return Text()


def _reason(exc: SyntaxError) -> Text:
    msg = exc.msg or "invalid syntax"
    if "never closed" in msg or "unexpected EOF" in msg or "was never closed" in msg:
        return T("括号没有闭合", "a bracket is not closed")
    if "unmatched" in msg or "does not match" in msg:
        return T("括号不匹配", "brackets do not match")
    if "unterminated string" in msg:
        return T("字符串没有结束引号", "a text literal is missing its closing quote")
    if msg.startswith("invalid character"):
        return T(f"无效字符{msg[len('invalid character') :]}", msg)
    if "forgot a comma" in msg:
        return T("可能缺少逗号", "perhaps a comma is missing")
    if msg.startswith("invalid syntax"):
        return T("无法识别的写法", "invalid syntax")
    return Text(zh=msg, en=msg)
