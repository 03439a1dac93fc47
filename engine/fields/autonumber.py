"""The autonumber kind: numbers like ``OPP-202611-0007``, assigned on create.

``format:`` is literal text plus tokens: ``{YYYY}`` ``{YY}`` ``{MM}`` ``{DD}``
(the calendar date of the ``now`` passed in) and exactly one ``{SEQ:n}`` (the
counter, zero-padded to n digits, 1 <= n <= 12; ``{SEQ}`` means no padding).
A counter longer than n digits is written in full, never cut.

The counter restarts whenever the date part changes: :func:`sequence_key` is the
rendered number with the counter left out (``OPP-202611-``), and the record
service allocates ``seq`` atomically per (entity, field, key) in the database,
then calls :func:`render`. Users cannot enter or change an autonumber: the
record service ignores input for it (``user_editable`` is False); ``coerce``
only normalises a stored number (e.g. when importing old records).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast

from engine.errors import Problem
from engine.fields.base import (
    FieldKind,
    FieldValueError,
    bad_char_message,
    clean_text,
    show,
)
from engine.fields.registry import register
from engine.i18n import T, Text
from engine.model import Field

DATE_TOKENS: tuple[str, ...] = ("YYYY", "YY", "MM", "DD")
ALL_TOKENS = "{YYYY} {YY} {MM} {DD} {SEQ:n}"
MAX_SEQ_WIDTH = 12
MAX_FORMAT_LENGTH = 100
MAX_NUMBER_LENGTH = 255
_TOKEN = re.compile(r"\{([^{}]*)\}")
_SEQ = re.compile(r"^SEQ(?::(\d{1,3}))?$")


@dataclass(frozen=True)
class Token:
    name: str  # YYYY | YY | MM | DD | SEQ
    width: int = 0  # SEQ only: zero-pad to this many digits (0: no padding)


Part = str | Token


class FormatError(ValueError):
    def __init__(self, message: Text, hint: Text | None = None) -> None:
        super().__init__(message.get("en"))
        self.text = message
        self.hint = hint or Text()


def parse_format(fmt: str) -> list[Part]:
    """Split a format into literal strings and tokens; raise FormatError if invalid."""
    if not isinstance(fmt, str) or not fmt:
        raise FormatError(T("编号格式不能为空", "the format is empty"), _EXAMPLE)
    if len(fmt) > MAX_FORMAT_LENGTH:
        raise FormatError(
            T(
                f"编号格式过长（最多 {MAX_FORMAT_LENGTH} 个字符）",
                f"the format is too long (at most {MAX_FORMAT_LENGTH} characters)",
            ),
            _EXAMPLE,
        )
    bad = bad_char_message(fmt)
    if bad is not None:
        raise FormatError(
            T(f"编号格式{bad.zh}", f"the format {bad.en}"),
            T("删除其中的控制字符", "remove the control character"),
        )
    parts: list[Part] = []
    seqs = 0
    pos = 0
    for found in _TOKEN.finditer(fmt):
        literal = fmt[pos : found.start()]
        _check_literal(literal)
        if literal:
            parts.append(literal)
        parts.append(_token(found.group(1)))
        if isinstance(parts[-1], Token) and parts[-1].name == "SEQ":
            seqs += 1
        pos = found.end()
    tail = fmt[pos:]
    _check_literal(tail)
    if tail:
        parts.append(tail)
    if seqs == 0:
        raise FormatError(
            T("编号格式缺少 {SEQ:n}（流水号）", "the format has no {SEQ:n} (the counter)"), _EXAMPLE
        )
    if seqs > 1:
        raise FormatError(
            T("编号格式中只能有一个 {SEQ}", "the format may contain only one {SEQ}"),
            T("只保留一个 {SEQ:n}", "keep a single {SEQ:n}"),
        )
    return parts


_EXAMPLE = T("例如 format: OPP-{YYYY}{MM}-{SEQ:4}", "for example format: OPP-{YYYY}{MM}-{SEQ:4}")


def _check_literal(text: str) -> None:
    if "{" in text or "}" in text:
        raise FormatError(
            T(
                f"编号格式中有不成对的花括号：{show(text)}",
                f"unbalanced brace in the format: {show(text)}",
            ),
            T(
                "花括号只用于 {YYYY} {YY} {MM} {DD} {SEQ:n}",
                "braces are only for {YYYY} {YY} {MM} {DD} {SEQ:n}",
            ),
        )


def _token(inner: str) -> Token:
    name = inner.strip()
    if name in DATE_TOKENS:
        return Token(name)
    seq = _SEQ.match(name)
    if seq:
        width = int(seq.group(1)) if seq.group(1) else 0
        if seq.group(1) and not 1 <= width <= MAX_SEQ_WIDTH:
            raise FormatError(
                T(
                    f"{{SEQ:n}} 的位数应在 1 到 {MAX_SEQ_WIDTH} 之间：{{{inner}}}",
                    f"{{SEQ:n}} needs 1 to {MAX_SEQ_WIDTH} digits: {{{inner}}}",
                ),
                T("例如 {SEQ:4} 得到 0001、0002 …", "for example {SEQ:4} gives 0001, 0002 …"),
            )
        return Token("SEQ", width)
    guess = name.upper()
    if guess.startswith("SEQ"):
        hint = T("写作 {SEQ} 或 {SEQ:4}", "write {SEQ} or {SEQ:4}")
    elif guess in DATE_TOKENS:
        hint = T(
            f"是不是 {{{guess}}}？（区分大小写）",
            f"did you mean {{{guess}}}? (tokens are upper case)",
        )
    else:
        close = difflib.get_close_matches(guess, [*DATE_TOKENS, "SEQ"], n=2, cutoff=0.6)
        if close:
            names = " ".join(f"{{{c}}}" for c in close)
            hint = T(f"是不是 {names}？", f"did you mean {names}?")
        else:
            hint = T(f"可用：{ALL_TOKENS}", f"use one of: {ALL_TOKENS}")
    raise FormatError(
        T(
            f"未知的编号格式标记：{{{show(inner)}}}",
            f"unknown token in the format: {{{show(inner)}}}",
        ),
        hint,
    )


def _render(parts: list[Part], seq: str, now: datetime) -> str:
    local = now  # its own wall clock: the caller passes business-local time
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part.name == "YYYY":
            out.append(f"{local.year:04d}")
        elif part.name == "YY":
            out.append(f"{local.year % 100:02d}")
        elif part.name == "MM":
            out.append(f"{local.month:02d}")
        elif part.name == "DD":
            out.append(f"{local.day:02d}")
        else:
            out.append(seq)
    return "".join(out)


def _format_of(field: Field) -> list[Part]:
    if field.format is None:
        raise ValueError(f"autonumber field {field.name!r} has no format")
    return _parsed(field.format)


@functools.lru_cache(maxsize=256)
def _parsed(fmt: str) -> list[Part]:
    """Formats are few and fixed per blueprint: parse each once."""
    return parse_format(fmt)


def sequence_key(field: Field, now: datetime) -> str:
    """The counter's key: the number rendered without the counter (``OPP-202611-``).

    The date parts are read from ``now`` as given (naive or aware), so pass the
    time in the business time zone: ``now.astimezone(blueprint_tz)``.
    """
    return _render(_format_of(field), "", now)


def render(field: Field, seq: int, now: datetime) -> str:
    """The number for counter value ``seq`` (>= 1) created at ``now``."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"an autonumber counter starts at 1, got {seq!r}")
    parts = _format_of(field)
    width = next(p.width for p in parts if isinstance(p, Token) and p.name == "SEQ")
    return _render(parts, str(seq).zfill(width), now)


def render_many(field: Field, first: int, count: int, now: datetime) -> list[str]:
    """``[render(field, n, now) for n in range(first, first + count)]``, faster.

    The text around the counter is rendered once for the whole block.
    """
    if count <= 0:
        return []
    parts = _format_of(field)
    seqs = [i for i, p in enumerate(parts) if isinstance(p, Token) and p.name == "SEQ"]
    if len(seqs) != 1 or isinstance(first, bool) or not isinstance(first, int) or first < 1:
        return [render(field, n, now) for n in range(first, first + count)]
    at = seqs[0]
    width = cast(Token, parts[at]).width
    prefix = _render(parts[:at], "", now)
    suffix = _render(parts[at + 1 :], "", now)
    return [f"{prefix}{str(n).zfill(width)}{suffix}" for n in range(first, first + count)]


class AutonumberKind(FieldKind):
    """A number assigned by the record service; see the module docstring."""

    name = "autonumber"
    label = T("自动编号", "Auto number")
    keys = frozenset({"format"})
    storage = "text"
    widget = "readonly"
    searchable = True
    user_editable = False
    accepts_default = False
    type_name = "text"
    key_hints = MappingProxyType(
        {
            "pattern": T(
                "自动编号的格式写在 format 中，如 format: OPP-{YYYY}{MM}-{SEQ:4}",
                "an autonumber's format goes in `format:`, e.g. format: OPP-{YYYY}{MM}-{SEQ:4}",
            )
        }
    )

    def parse(self, field: Field, raw: Any) -> Any:
        if not isinstance(raw, (str, int)) or isinstance(raw, bool):
            raise FieldValueError(
                T(
                    f"应为编号文本，而不是 {show(raw)}",
                    f"expected a number as text, got {show(raw)}",
                )
            )
        return clean_text(raw, MAX_NUMBER_LENGTH)

    def check_definition(self, field: Field) -> list[Problem]:
        if field.format is None:
            return [
                self.problem(
                    field,
                    T("自动编号字段需要 format", "an autonumber field needs `format:`"),
                    _EXAMPLE,
                )
            ]
        try:
            parse_format(field.format)
        except FormatError as exc:
            return [self.problem(field, exc.text, exc.hint)]
        return []


AUTONUMBER = register(AutonumberKind())
