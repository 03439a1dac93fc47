"""Blueprint ``pattern:`` regexes, matched in linear time with RE2.

Python's ``re`` backtracks: ``^(a+)+$`` against ``'a' * 27 + '!'`` takes minutes,
and a blueprint author (or a compromised blueprint) must not be able to hang a
request with one. RE2 guarantees time linear in the input, at the price of two
features it refuses: backreferences (``\\1``) and lookaround (``(?=``, ``(?!``,
``(?<=``, ``(?<!``). Patterns are compiled once per process and cached.

The whole value must match (as with the HTML ``pattern`` attribute), so
``pattern: "[0-9]{6}"`` means "exactly six digits".
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

from engine.i18n import T, Text

#: Longest pattern a blueprint may use.
MAX_PATTERN_LENGTH = 1000
#: Values longer than this are never matched (text kinds cap lengths well below).
MAX_MATCH_LENGTH = 1_000_000
#: Memory RE2 may use for one compiled pattern (bounds `a{1000}{1000}` style blowups).
_MAX_MEM = 8 << 20

# google-re2 (imported as ``re2``) ships no type information; importing it through
# importlib keeps mypy --strict clean with or without ignore_missing_imports.
_re2: Any = importlib.import_module("re2")


@dataclass(frozen=True)
class CompiledPattern:
    source: str
    _regex: Any

    def fullmatch(self, value: str) -> bool:
        """Whether all of ``value`` matches; values over the cap never match."""
        if len(value) > MAX_MATCH_LENGTH:
            return False
        return self._regex.fullmatch(value) is not None


def _options() -> Any:
    options = _re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    return options


@functools.lru_cache(maxsize=512)
def compile_pattern(source: str) -> CompiledPattern | Text:
    """The compiled pattern, or a bilingual reason it cannot be used."""
    if len(source) > MAX_PATTERN_LENGTH:
        return T(
            f"正则表达式过长（最多 {MAX_PATTERN_LENGTH} 个字符）",
            f"the pattern is too long (at most {MAX_PATTERN_LENGTH} characters)",
        )
    if "\x00" in source:
        return T("正则表达式包含 NUL 字符", "the pattern contains a NUL character")
    try:
        regex = _re2.compile(source, options=_options())
    except _re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return T(f"正则表达式无效：{detail}", f"invalid regular expression: {detail}")
    except (TypeError, ValueError, UnicodeError) as exc:
        return T(f"正则表达式无效：{exc}", f"invalid regular expression: {exc}")
    return CompiledPattern(source, regex)


def pattern_hint(source: str) -> Text:
    """How to fix a refused pattern: explain the RE2 restriction when it applies."""
    if "\\" in source and any(f"\\{d}" in source for d in "123456789"):
        return T(
            "不支持反向引用（\\1 等）：为保证匹配不会卡死，正则使用 RE2 语法",
            "backreferences (\\1 ...) are not supported: patterns use RE2 syntax, "
            "which always matches in linear time",
        )
    if any(tok in source for tok in ("(?=", "(?!", "(?<=", "(?<!")):
        return T(
            "不支持环视（(?= (?! (?<= (?<!）：为保证匹配不会卡死，正则使用 RE2 语法",
            "lookahead and lookbehind ((?= (?! (?<= (?<!) are not supported: patterns use "
            "RE2 syntax, which always matches in linear time",
        )
    return T(
        "正则使用 RE2 语法（不支持反向引用与环视）",
        "patterns use RE2 syntax (no backreferences or lookaround)",
    )
