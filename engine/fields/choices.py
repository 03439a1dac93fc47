"""Choice kinds: choice (one option) and multi_choice (several, in order).

The canonical value is the option's ``value`` (a string). Input may also name an
option by its exact label in either language, so a form, an import written by a
person (``进行中``) and an API client (``in_progress``) all store the same value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from engine.errors import Problem
from engine.fields.base import FieldKind, FieldValueError, bad_char_message, is_int, show
from engine.fields.registry import register
from engine.i18n import T, Text, normalise_lang
from engine.model import Field, Option

MAX_OPTION_VALUE = 63
#: Most items a multi_choice input may carry (before de-duplication).
MAX_ITEMS = 1000
_MAX_INPUT_TEXT = 10_000
_SEPARATORS = re.compile(r"[,;，；、\n]")
_SHOWN_OPTIONS = 10


def option_list(field: Field) -> str:
    values = [o.value for o in field.options[:_SHOWN_OPTIONS]]
    more = "…" if len(field.options) > _SHOWN_OPTIONS else ""
    return ", ".join(values) + more


def resolve(field: Field, item: Any) -> str | None:
    """The option value ``item`` names (by value, else by exact zh/en label), or None."""
    if is_int(item):
        item = str(item)
    if not isinstance(item, str) or len(item) > _MAX_INPUT_TEXT:
        return None
    text = item.strip()
    if not text:
        return None
    for opt in field.options:
        if opt.value == text:
            return opt.value
    for opt in field.options:
        if text in (opt.label.zh, opt.label.en):
            return opt.value
    return None


def not_an_option(field: Field, items: list[Any]) -> FieldValueError:
    shown = ", ".join(show(i) for i in items[:5]) + ("…" if len(items) > 5 else "")
    choices = option_list(field)
    return FieldValueError(
        T(
            f"不是可选项：{shown}（可选：{choices}）",
            f"not one of the options: {shown} (choose from {choices})",
        )
    )


def _option_location(field: Field, opt: Option) -> Any:
    return opt.location if opt.location.line else field.location


def option_problems(kind: FieldKind, field: Field) -> list[Problem]:
    """Missing, blank, too long and duplicated options; shared labels (a warning)."""
    if not field.options:
        return [
            kind.problem(
                field,
                T(f"{kind.name} 字段需要 options", f"{kind.name} fields need options"),
                T("例如 options: [A, B, C]", "for example options: [A, B, C]"),
            )
        ]
    problems: list[Problem] = []
    seen: set[str] = set()
    labels: dict[str, str] = {}
    for opt in field.options:
        where = _option_location(field, opt)
        value = opt.value
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            problems.append(
                kind.problem(
                    field,
                    T(
                        f"选项值不能为空或以空白开头/结尾：{show(value)}",
                        "an option value cannot be blank or start/end with spaces: "
                        f"'{show(value)}'",
                    ),
                    T("去掉首尾空白，或删除这个选项", "trim the spaces, or remove the option"),
                    location=where,
                )
            )
            continue
        bad = bad_char_message(value)
        if bad is not None:
            problems.append(
                kind.problem(
                    field,
                    T(f"选项值 '{show(value)}' {bad.zh}", f"option value '{show(value)}' {bad.en}"),
                    T("删除其中的控制字符", "remove the control character"),
                    location=where,
                )
            )
        elif len(value) > MAX_OPTION_VALUE:
            problems.append(
                kind.problem(
                    field,
                    T(
                        f"选项值过长（最多 {MAX_OPTION_VALUE} 个字符）：{show(value)}",
                        f"option value is too long (at most {MAX_OPTION_VALUE} characters): "
                        f"{show(value)}",
                    ),
                    T(
                        "值保持简短，长文本写在 label 中",
                        "keep the value short; put long text in the label",
                    ),
                    location=where,
                )
            )
        if value in seen:
            problems.append(
                kind.problem(
                    field,
                    T(f"选项 '{value}' 出现了两次", f"option '{value}' appears twice"),
                    T("删除重复的选项", "remove the duplicate"),
                    location=where,
                )
            )
        seen.add(value)
        for label in {opt.label.zh, opt.label.en} - {None, ""}:
            assert label is not None
            other = labels.get(label)
            if other is not None and other != value:
                problems.append(
                    kind.problem(
                        field,
                        T(
                            f"选项 '{other}' 与 '{value}' 的显示文本都是 '{label}'",
                            f"options '{other}' and '{value}' both have the label '{label}'",
                        ),
                        T(
                            "给它们不同的显示文本，否则用户无法区分",
                            "give them different labels so people can tell them apart",
                        ),
                        location=where,
                        severity="warning",
                    )
                )
            labels.setdefault(label, value)
    return problems


def label_of(field: Field, value: str, lang: str) -> str:
    opt = field.option(value)
    if opt is None:
        return value
    return opt.label.get(normalise_lang(lang)) or value


def _exact_inputs(field: Field) -> dict[str, str]:
    """Text that names an option as it is (no spaces around) -> the option's value.

    What :func:`resolve` finds for such text: an option's value first, else the
    first option (in order) with that zh or en label.
    """
    table: dict[str, str] = {}
    for opt in field.options:
        for label in (opt.label.zh, opt.label.en):
            if label and label == label.strip():
                table.setdefault(label, opt.value)
    for opt in field.options:
        if isinstance(opt.value, str) and opt.value == opt.value.strip():
            table[opt.value] = opt.value
    return table


class ChoiceKind(FieldKind):
    """One option out of ``options``."""

    name = "choice"
    label = T("单选", "Choice")
    keys = frozenset({"options", "formula"})
    storage = "text"
    widget = "select"
    type_name = "text"

    def coerce_many(self, field: Field, raws: Sequence[Any]) -> tuple[list[Any], dict[int, Text]]:
        cls = type(self)
        if cls.coerce is not FieldKind.coerce or cls.parse is not ChoiceKind.parse:
            return super().coerce_many(field, raws)
        if not set(map(type, raws)) <= {str, type(None)}:
            return super().coerce_many(field, raws)
        table = _exact_inputs(field)
        out = [table.get(raw) if raw is not None else None for raw in raws]
        misses = [i for i, (raw, v) in enumerate(zip(raws, out, strict=True)) if v is None and raw]
        if not misses:
            return out, {}
        # Spaces around, blank text, unknown options: cell by cell, as coerce() does.
        errors: dict[int, Text] = {}
        for i in misses:
            try:
                out[i] = self.coerce(field, raws[i])
            except FieldValueError as exc:
                errors[i] = exc.text
        return out, errors

    def validate_many(self, field: Field, values: Sequence[Any]) -> dict[int, list[Text]]:
        if type(self).check_value is not ChoiceKind.check_value:
            return super().validate_many(field, values)
        allowed = {o.value for o in field.options}
        out: dict[int, list[Text]] = {}
        for i, v in enumerate(values):
            if v is not None and (type(v) is not str or v not in allowed):
                messages = self.check_value(field, v)
                if messages:
                    out[i] = messages
        return out

    def parse(self, field: Field, raw: Any) -> Any:
        value = resolve(field, raw)
        if value is None:
            raise not_an_option(field, [raw])
        return value

    def check_definition(self, field: Field) -> list[Problem]:
        return option_problems(self, field)

    def check_value(self, field: Field, value: Any) -> list[Text]:
        if not isinstance(value, str) or field.option(value) is None:
            return [not_an_option(field, [value]).text]
        return []

    def show(self, field: Field, value: Any, lang: str) -> str:
        return label_of(field, str(value), lang)

    def formatter(self, field: Field, lang: str) -> Callable[[Any], str]:
        lang = normalise_lang(lang)
        labels = {o.value: o.label.get(lang) or o.value for o in field.options}

        def fmt(value: Any) -> str:
            if value is None:
                return ""
            text = str(value)
            return labels.get(text, text)

        return fmt


class MultiChoiceKind(FieldKind):
    """Any number of options, without repeats, in the order given.

    Accepts a list, a JSON array string, or text separated by commas,
    semicolons, ``、`` or newlines (``"A, B"``) when the whole text is not itself
    an option.
    """

    name = "multi_choice"
    aliases = ("multichoice",)
    label = T("多选", "Multiple choice")
    keys = frozenset({"options"})
    storage = "json"
    widget = "multiselect"
    sortable = False
    type_name = "list:text"

    def _items(self, raw: Any) -> list[Any]:
        if isinstance(raw, (list, tuple)):
            items = list(raw)
        elif isinstance(raw, str):
            if len(raw) > _MAX_INPUT_TEXT:
                raise FieldValueError(
                    T(
                        f"输入过长（最多 {_MAX_INPUT_TEXT} 个字符）",
                        f"input too long (at most {_MAX_INPUT_TEXT:,} characters)",
                    )
                )
            text = raw.strip()
            if text.startswith("["):
                try:
                    loaded = json.loads(text)
                except ValueError:
                    loaded = None
                if not isinstance(loaded, list):
                    raise FieldValueError(
                        T(
                            f"不是有效的选项列表：{show(raw)}",
                            f"not a valid list of options: {show(raw)}",
                        )
                    )
                items = loaded
            else:
                items = [text]
        else:
            items = [raw]
        if len(items) > MAX_ITEMS:
            raise FieldValueError(
                T(f"选项过多（最多 {MAX_ITEMS} 个）", f"too many items (at most {MAX_ITEMS})")
            )
        return items

    def parse(self, field: Field, raw: Any) -> Any:
        values: list[str] = []
        unknown: list[Any] = []
        for item in self._items(raw):
            if item is None or (isinstance(item, str) and not item.strip()):
                continue
            value = resolve(field, item)
            if value is not None:
                values.append(value)
            elif isinstance(item, str) and _SEPARATORS.search(item):
                for part in _SEPARATORS.split(item):
                    if not part.strip():
                        continue
                    value = resolve(field, part)
                    if value is None:
                        unknown.append(part.strip())
                    else:
                        values.append(value)
            else:
                unknown.append(item)
        if unknown:
            raise not_an_option(field, unknown)
        deduped = list(dict.fromkeys(values))
        return deduped or None

    def check_definition(self, field: Field) -> list[Problem]:
        return option_problems(self, field)

    def check_value(self, field: Field, value: Any) -> list[Text]:
        if not isinstance(value, list):
            return [T("应为选项列表", "expected a list of options")]
        bad = [v for v in value if not isinstance(v, str) or field.option(v) is None]
        messages = [not_an_option(field, bad).text] if bad else []
        if len(set(map(str, value))) != len(value):
            messages.append(T("选项重复", "an option is listed twice"))
        return messages

    def to_json(self, field: Field, value: Any) -> Any:
        return None if value is None else list(value)

    def to_storage(self, field: Field, value: Any) -> Any:
        return None if value is None else list(value)

    def from_storage(self, field: Field, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, list):
            raise TypeError(f"cannot read a multi_choice value from {value!r}")
        return [str(v) for v in value] or None

    def show(self, field: Field, value: Any, lang: str) -> str:
        sep = "、" if normalise_lang(lang) == "zh" else ", "
        return sep.join(label_of(field, str(v), lang) for v in value)


CHOICE = register(ChoiceKind())
MULTI_CHOICE = register(MultiChoiceKind())
