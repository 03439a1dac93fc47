"""The :class:`FieldKind` contract every field kind implements, and shared helpers.

A kind is a stateless object: every method takes the :class:`~engine.model.Field`
it works for, so one instance serves every field of that kind. The public
methods (``check``, ``coerce``, ``validate``, ``display`` ...) handle the parts
that are the same for every kind (blank values, keys that do not apply, the
default value) and call a small hook a kind overrides:

=================  =============================  =======================================
public method      hook a kind overrides          called with
=================  =============================  =======================================
``check``          ``check_definition``           the field (blueprint checks)
``coerce``         ``parse``                      a raw value that is not blank
``validate``       ``check_value``                a coerced value that is not None
``display``        ``show``                       a canonical value that is not None
=================  =============================  =======================================

Blank input (``None``, ``''``, whitespace, an empty list) always coerces to
``None``; whether a blank is allowed (``required``) is the record service's call.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.errors import FormflowError, Location, Problem
from engine.i18n import T, Text
from engine.model import Field, Formula

if TYPE_CHECKING:
    from engine.expressions.types import Type

#: Blueprint keys every kind accepts (``default`` is refused by computed kinds).
COMMON_KEYS: frozenset[str] = frozenset(
    {
        "label",
        "help",
        "placeholder",
        "required",
        "required_if",
        "visible_if",
        "readonly_if",
        "readonly",
        "unique",
        "index",
        "default",
        "renamed_from",
    }
)

#: The abstract column types the storage layer understands.
STORAGE_TYPES: frozenset[str] = frozenset(
    {"text", "integer", "decimal", "date", "datetime", "boolean", "json", "ref", "table"}
)

#: Keys that live in their own ``Field`` attribute and belong to some kinds only.
#: ``formula`` is here because only some kinds may be computed.
KIND_KEYS: tuple[str, ...] = (
    "min",
    "max",
    "min_length",
    "max_length",
    "pattern",
    "pattern_message",
    "options",
    "to",
    "on_delete",
    "fields",
    "min_rows",
    "max_rows",
    "format",
    "currency",
    "precision",
    "max_size_mb",
    "accept",
    "result",
    "formula",
)

#: Keys of the text-like kinds (text, long_text, email, phone, url).
TEXT_KEYS: frozenset[str] = frozenset(
    {"min_length", "max_length", "pattern", "pattern_message", "formula"}
)

_FIELD_DEFAULTS: dict[str, Any] = {}
for _f in dataclasses.fields(Field):
    if _f.default is not dataclasses.MISSING:
        _FIELD_DEFAULTS[_f.name] = _f.default
    elif _f.default_factory is not dataclasses.MISSING:
        _FIELD_DEFAULTS[_f.name] = _f.default_factory()

# C0 controls other than tab, newline and carriage return break CSV/XLSX export
# and terminals; lone surrogates cannot be encoded as UTF-8 at all.
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_SHOWN_CHARS = 40


class FieldValueError(FormflowError):
    """A value cannot be turned into a value of the field's kind."""

    http_status = 422
    default_message = T("值无效", "invalid value")

    def __init__(
        self,
        message: Text | str | None = None,
        *,
        cells: Mapping[tuple[int, str], Sequence[Text]] | None = None,
    ) -> None:
        super().__init__(message)
        #: For table fields: (0-based row, child field) -> messages, to mark cells.
        self.cells: dict[tuple[int, str], list[Text]] = {
            k: list(v) for k, v in (cells or {}).items()
        }


# -- small helpers shared by the kinds ------------------------------------------------------


def show(raw: Any) -> str:
    """A short, printable rendering of user input for an error message."""
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, int) and raw.bit_length() > 200:
        text = f"{'-' if raw < 0 else ''}{raw.bit_length() * 30103 // 100000}+ digit number"
    elif isinstance(raw, str):
        text = raw
    else:
        text = repr(raw) if isinstance(raw, (list, tuple, dict, set, bytes)) else str(raw)
    cut = len(text) > _SHOWN_CHARS
    text = text[:_SHOWN_CHARS]
    text = _BAD_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    text = "".join(ch if ch.isprintable() or ch == " " else f"\\u{ord(ch):04x}" for ch in text)
    return text + "…" if cut else text


def is_blank(raw: Any) -> bool:
    """``None``, an empty or whitespace-only string, or an empty collection."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, (list, tuple, set, frozenset, dict)):
        return len(raw) == 0
    return False


def has_bad_char(text: str) -> bool:
    """Whether ``text`` holds a control character or a lone surrogate (one scan).

    Newlines are allowed, so a column can be checked at once joined by ``\\n``.
    """
    return _BAD_CHARS.search(text) is not None


def bad_char_message(text: str) -> Text | None:
    """A message if ``text`` holds a control character or a lone surrogate."""
    found = _BAD_CHARS.search(text)
    if found is None:
        return None
    code = f"U+{ord(found.group()):04X}"
    if 0xD800 <= ord(found.group()) <= 0xDFFF:
        return T(
            f"包含无效的 Unicode 字符（孤立代理项 {code}）",
            f"contains an invalid Unicode character (lone surrogate {code})",
        )
    return T(
        f"包含不允许的控制字符 {code}",
        f"contains a control character ({code}) that is not allowed",
    )


def clean_text(raw: Any, limit: int, *, what: Text | None = None) -> str:
    """Raw input as a stripped string of at most ``limit`` characters, else raise.

    Numbers are accepted (an import may read ``10086`` as a number); booleans,
    lists and maps are not. The length is checked before anything scans the text.
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        noun = what or T("文本", "text")
        raise FieldValueError(
            T(f"应为{noun.zh}，而不是 {show(raw)}", f"expected {noun.en}, got {show(raw)}")
        )
    if isinstance(raw, int) and raw.bit_length() > 12_000:  # str() refuses > 4300 digits
        raise FieldValueError(T("数字过大", "the number is too large"))
    text = raw if isinstance(raw, str) else str(raw)
    if len(text) > limit:
        text = text.strip()
    if len(text) > limit:
        raise FieldValueError(too_long(limit, len(text)))
    text = text.strip()
    message = bad_char_message(text)
    if message is not None:
        raise FieldValueError(message)
    return text


def nfkc(text: str) -> str:
    """Full-width digits and punctuation (typed with a Chinese IME) as ASCII."""
    return unicodedata.normalize("NFKC", text)


def short_input(raw: str, limit: int) -> str | None:
    """``raw`` stripped and NFKC-normalised, or None if longer than ``limit``.

    For values that are short by nature (numbers, dates): the length is checked
    before the text is scanned, so a huge paste costs nothing.
    """
    if len(raw) > limit:
        raw = raw.strip()
        if len(raw) > limit:
            return None
    return nfkc(raw).strip()


def too_long(limit: int, actual: int) -> Text:
    return T(
        f"不能超过 {limit} 个字符（现有 {actual} 个）",
        f"must be at most {limit} characters (got {actual:,})",
    )


def did_you_mean(word: str, choices: Iterable[str]) -> Text:
    """A hint naming the closest choices, or listing them when none is close."""
    pool = sorted(set(choices))
    close = difflib.get_close_matches(word, pool, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    if close:
        names = ", ".join(close)
        return T(f"是不是 {names}？", f"did you mean {names}?")
    names = ", ".join(pool)
    return T(f"可用：{names}", f"use one of: {names}")


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_formula(value: Any) -> bool:
    """A bound given as a formula (``=TODAY()``): checked by the record service."""
    return isinstance(value, Formula)


# -- the contract ---------------------------------------------------------------------------


class FieldKind:
    """One kind of field: how it is checked, stored, parsed, validated and shown.

    Subclass, set the class attributes, override the hooks, and ``register()`` an
    instance. Built-in kinds register exactly like extensions do.
    """

    #: Canonical name used in blueprints (``type: money``).
    name: str = ""
    #: Other names accepted in blueprints; the loader rewrites them to ``name``.
    aliases: tuple[str, ...] = ()
    #: Bilingual name for docs and the UI.
    label: Text = Text()
    #: Blueprint keys this kind accepts beyond :data:`COMMON_KEYS`.
    keys: frozenset[str] = frozenset()
    #: Abstract column type (one of :data:`STORAGE_TYPES`).
    storage: str = "text"
    #: Name of the form widget.
    widget: str = "text"
    sortable: bool = True
    filterable: bool = True
    #: Text-like: offered to the list search box.
    searchable: bool = False
    #: False for kinds whose value is computed (formula, autonumber): the record
    #: service ignores user input for them.
    user_editable: bool = True
    #: Whether ``default:`` makes sense for this kind.
    accepts_default: bool = True
    #: Hints for keys this kind refuses but authors are likely to write (key -> how to fix).
    key_hints: Mapping[str, Text] = MappingProxyType({})
    #: Expression type name: ``number``, ``text``, ``bool``, ``date``, ``datetime``,
    #: ``any``, or ``list:<item>``. Override :meth:`value_type` for anything dynamic.
    type_name: str = "text"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what the rest of the engine calls --

    def value_type(self, field: Field) -> Type:
        """The formula-language type of this field's value."""
        from engine.expressions.types import Type, list_of

        if self.type_name.startswith("list:"):
            return list_of(Type(self.type_name[5:]))
        return Type(self.type_name)

    def storage_of(self, field: Field) -> str:
        """The column type of this field (a ``formula`` stores its result's type)."""
        return self.storage

    def editable(self, field: Field) -> bool:
        """Whether input for this field is taken at all (not computed, not numbered).

        ``readonly``/``readonly_if`` are not considered: they depend on who writes
        (a form, an automation), which is the record service's call.
        """
        return self.user_editable and not field.computed

    def check(self, field: Field) -> list[Problem]:
        """Every problem with this field's definition, not just the first."""
        problems = self._key_problems(field)
        problems += self.check_definition(field)
        if not any(p.severity == "error" for p in problems):
            problems += self._default_problems(field)
        return problems

    def coerce(self, field: Field, raw: Any) -> Any:
        """Form strings or JSON values -> the canonical value (``None`` for blank).

        Raises :class:`FieldValueError` with a bilingual message.
        """
        if is_blank(raw):
            return None
        return self.parse(field, raw)

    def validate(self, field: Field, value: Any) -> list[Text]:
        """Messages for a coerced value breaking the field's limits (all of them)."""
        if value is None:
            return []
        return self.check_value(field, value)

    def coerce_many(self, field: Field, raws: Sequence[Any]) -> tuple[list[Any], dict[int, Text]]:
        """:meth:`coerce` over a whole column: the values and the errors by position.

        For batches (imports): one call per column instead of one per cell. A value
        that fails is ``None`` in the list and its message is in the errors. Kinds
        override this with a vectorised version that gives exactly the results of
        :meth:`coerce` cell by cell (this default is that loop).
        """
        coerce = self.coerce
        out: list[Any] = []
        errors: dict[int, Text] = {}
        append = out.append
        for i, raw in enumerate(raws):
            try:
                append(coerce(field, raw))
            except FieldValueError as exc:
                errors[i] = exc.text
                append(None)
        return out, errors

    def validate_many(self, field: Field, values: Sequence[Any]) -> dict[int, list[Text]]:
        """:meth:`validate` over a column of values :meth:`coerce` gave: messages by position.

        Positions without messages are left out. Kinds may override it with a
        vectorised version giving exactly the messages of :meth:`validate` for
        such values (it may rely on what coercion already guarantees).
        """
        if type(self).check_value is FieldKind.check_value:
            return {}
        check = self.check_value
        out: dict[int, list[Text]] = {}
        for i, value in enumerate(values):
            if value is not None:
                messages = check(field, value)
                if messages:
                    out[i] = messages
        return out

    def to_json(self, field: Field, value: Any) -> Any:
        """The canonical value as plain JSON (API output)."""
        return value

    def to_storage(self, field: Field, value: Any) -> Any:
        """The canonical value as the storage layer writes it."""
        return value

    def from_storage(self, field: Field, value: Any) -> Any:
        """A value read from the database -> the canonical value."""
        return value

    def reader(self, field: Field) -> Callable[[Any], Any] | None:
        """``from_storage`` of ``field`` as a one-argument function, for reading many rows.

        Built once per query and called for every non-NULL value of the column;
        None when ``from_storage`` is the identity (the column type already gives
        the canonical value). Kinds may return a faster function with the same
        results.
        """
        if type(self).from_storage is FieldKind.from_storage:
            return None
        return functools.partial(self.from_storage, field)

    def display(self, field: Field, value: Any, lang: str) -> str:
        """The value as a person reads it, in ``lang`` (``''`` for blank)."""
        if value is None:
            return ""
        return self.show(field, value, lang)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        """``display`` of ``field`` in ``lang`` as a one-argument function.

        Built once per list column and called for every row; kinds may return a
        faster function with the same results.
        """

        def fmt(value: Any) -> str:
            return self.display(field, value, lang)

        return fmt

    # -- hooks --

    def check_definition(self, field: Field) -> list[Problem]:
        """Kind-specific definition checks; the default has none."""
        return []

    def parse(self, field: Field, raw: Any) -> Any:
        """Turn non-blank input into the canonical value or raise FieldValueError."""
        raise NotImplementedError(f"field kind {self.name!r} does not implement parse()")

    def check_value(self, field: Field, value: Any) -> list[Text]:
        """Kind-specific limits on a canonical value; the default has none."""
        return []

    def show(self, field: Field, value: Any, lang: str) -> str:
        return str(value)

    # -- shared checks --

    def problem(
        self,
        field: Field,
        message: Text,
        hint: Text | None = None,
        *,
        location: Location | None = None,
        severity: str = "error",
    ) -> Problem:
        return Problem(location or field.location, message, hint or Text(), severity)

    def _key_problems(self, field: Field) -> list[Problem]:
        from engine.fields.registry import kinds

        problems: list[Problem] = []
        for key in KIND_KEYS:
            if key in self.keys or getattr(field, key) == _FIELD_DEFAULTS[key]:
                continue
            takers = [k.name for k in kinds() if key in k.keys]
            if key in self.key_hints:
                hint = self.key_hints[key]
            elif takers:
                names = ", ".join(takers)
                hint = T(
                    f"删除它，或改用这些类型：{names}",
                    f"remove it, or use a kind that takes it: {names}",
                )
            else:
                hint = T("删除它", "remove it")
            problems.append(
                self.problem(
                    field,
                    T(
                        f"{self.name} 类型的字段不能有 {key}",
                        f"'{key}' does not apply to {self.name} fields",
                    ),
                    hint,
                )
            )
        if self.storage in ("json", "table"):
            for flag in ("unique", "index"):
                if getattr(field, flag):
                    problems.append(
                        self.problem(
                            field,
                            T(
                                f"{self.name} 类型的字段不能设置 {flag}",
                                f"'{flag}' does not apply to {self.name} fields",
                            ),
                            T("删除它", "remove it"),
                        )
                    )
        return problems

    def _default_problems(self, field: Field) -> list[Problem]:
        if field.default is None:
            return []
        if not self.accepts_default:
            message = T(
                f"{self.name} 类型的字段不能有默认值", f"{self.name} fields cannot have a default"
            )
        elif not self.editable(field):
            message = T("计算字段不能有默认值", "a computed field cannot have a default")
        else:
            message = Text()
        if message:
            return [self.problem(field, message, T("删除 default", "remove `default:`"))]
        try:
            value = self.coerce(field, field.default)
        except FieldValueError as exc:
            messages = [exc.text]
        else:
            messages = self.validate(field, value)
        shown = show(field.default)
        return [
            self.problem(
                field,
                T(f"默认值 {shown} 无效：{m.zh}", f"the default {shown} is not valid: {m.en}"),
                T(
                    "改成该类型的有效值，或删除 default",
                    "give a valid value of this kind, or remove `default:`",
                ),
            )
            for m in messages
        ]


def compare_bounds(
    kind: FieldKind,
    field: Field,
    what: Text,
) -> tuple[list[Problem], Any, Any]:
    """Coerce ``min``/``max`` with the kind, check ``min <= max``; returns the bounds.

    A bound that is a formula is left to the record service.
    """
    problems: list[Problem] = []
    bounds: list[Any] = []
    for key in ("min", "max"):
        raw = getattr(field, key)
        if raw is None or is_formula(raw):
            bounds.append(None)
            continue
        try:
            bounds.append(kind.coerce(field, raw))
        except FieldValueError as exc:
            bounds.append(None)
            problems.append(
                kind.problem(
                    field,
                    T(
                        f"{key} 不是有效的{what.zh}：{exc.text.zh}",
                        f"{key} is not a valid {what.en}: {exc.text.en}",
                    ),
                    T(f"{key} 应与字段同类型", f"write {key} as a value of the field's own kind"),
                )
            )
    low, high = bounds
    if low is not None and high is not None and low > high:
        problems.append(
            kind.problem(
                field,
                T(
                    f"min（{show(field.min)}）大于 max（{show(field.max)}）",
                    f"min ({show(field.min)}) is greater than max ({show(field.max)})",
                ),
                T("交换两者，或修正其中一个", "swap them or fix one of them"),
            )
        )
    return problems, low, high


def bound_messages(
    kind: FieldKind,
    field: Field,
    value: Any,
    below: Callable[[str, str], Text],
    above: Callable[[str, str], Text],
) -> list[Text]:
    """Messages for ``value`` outside ``min``/``max`` (bounds that do not coerce are skipped).

    ``below``/``above`` build the message from the bound shown in zh and in en.
    """
    messages: list[Text] = []
    for key, build in (("min", below), ("max", above)):
        raw = getattr(field, key)
        if raw is None or is_formula(raw):
            continue
        try:
            bound = kind.coerce(field, raw)
        except FieldValueError:
            continue
        if bound is None:
            continue
        if (key == "min" and value < bound) or (key == "max" and value > bound):
            messages.append(
                build(kind.display(field, bound, "zh"), kind.display(field, bound, "en"))
            )
    return messages
