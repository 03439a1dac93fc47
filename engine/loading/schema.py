"""JSON-Schema validation, with every error rewritten for an analyst.

The grammar of the blueprint language lives in ``schemas/blueprint.schema.json``
(JSON Schema 2020-12). ``jsonschema`` finds *all* errors in the merged raw
document; this module turns each into a short bilingual :class:`Problem` at
the line and column that wrote the offending key or value:

* unknown key -> "unknown key 'lable'; did you mean 'label'?" (at the key);
* missing key -> "field 'name' has no 'type'" (at the field's name);
* wrong type, bad enum value (with did-you-mean), bad name, out-of-range number;
* a key that belongs to other field kinds (the schema marks those with
  ``not: {}`` and ``x-only-for``) -> "'to' does not apply to a money field";
* ``oneOf`` / ``anyOf`` failures -> the most specific inner error, else the
  schema's own description of what is expected.

Descriptions in the schema are written "中文 / English"; :func:`bilingual`
splits them so the hint is in the reader's language. jsonschema's raw messages
are never shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.errors import Problem
from engine.fields import canonical_name
from engine.i18n import T, Text
from engine.loading.describe import describe, did_you_mean, listing, name_of
from engine.loading.positions import Doc, Path
from engine.resources import SCHEMAS_DIR

SCHEMA_PATH = SCHEMAS_DIR / "blueprint.schema.json"

Root = Mapping[str, Any]
_Handler = Callable[[ValidationError, Doc, Path, Root], list[Problem]]

_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

_TYPE_NAMES: dict[str, tuple[str, str]] = {
    "string": ("文本", "text"),
    "integer": ("整数", "a whole number"),
    "number": ("数字", "a number"),
    "boolean": ("true 或 false", "true or false"),
    "object": ("映射（键: 值）", "a map (key: value)"),
    "array": ("列表", "a list"),
    "null": ("空值", "nothing"),
}


@lru_cache(maxsize=4)
def load_schema(path: str = str(SCHEMA_PATH)) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@lru_cache(maxsize=4)
def _validator(path: str) -> Draft202012Validator:
    schema = load_schema(path)
    return Draft202012Validator(schema)


#: Validators whose error means "this value is wrong" (not "this map lacks a key").
_VALUE_VALIDATORS: frozenset[str] = frozenset(
    {
        "type", "enum", "const", "pattern", "not", "oneOf", "anyOf", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Validation:
    """The schema's verdict: the problems, and the paths of the values it refused.

    The model builder leaves refused values out, so a check that would refuse
    the same value again (a field kind's own check, say) stays quiet.
    """

    problems: list[Problem]
    refused: frozenset[Path]


def validate(doc: Doc, schema_path: str | None = None) -> Validation:
    """Every schema problem of the merged raw document ``doc``."""
    validator = _validator(schema_path or str(SCHEMA_PATH))
    problems: list[Problem] = []
    refused: set[Path] = set()
    seen: set[tuple[object, ...]] = set()
    for error in validator.iter_errors(doc.data):
        if str(error.validator) in _VALUE_VALIDATORS and not _from_property_names(error):
            refused.add(tuple(error.absolute_path))
        for problem in _explain(error, doc, validator.schema):
            key = (problem.location, problem.message.en)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return Validation(problems, frozenset(refused))


# -- helpers ------------------------------------------------------------------------------


def bilingual(description: str | None) -> Text:
    """Split a schema description written "中文 / English" into a Text."""
    if not description:
        return Text()
    best: tuple[str, str] | None = None
    best_score = 0
    for match in re.finditer(" / ", description):
        left, right = description[: match.start()], description[match.end() :]
        score = len(_CJK.findall(left)) - len(_CJK.findall(right))
        if best is None or score > best_score:
            best, best_score = (left, right), score
    if best is None or best_score <= 0:
        return Text.of(description)
    return Text(zh=best[0].strip(), en=best[1].strip())


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value if len(value) <= 40 else value[:40] + "…"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "~"
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    return str(value)


def _kind_of_value(value: Any) -> Text:
    if value is None:
        return T("空值", "nothing")
    if isinstance(value, bool):
        return T("true/false", "true/false")
    for py, name in ((str, "string"), (int, "integer"), (float, "number"), (dict, "object")):
        if isinstance(value, py):
            zh, en = _TYPE_NAMES[name]
            return Text(zh=zh, en=en)
    zh, en = _TYPE_NAMES["array"]
    return Text(zh=zh, en=en)


def _property_names(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    """Keys a (sub)schema allows, following $ref and allOf/anyOf/oneOf/if/then/else."""
    names: set[str] = set()
    stack: list[Mapping[str, Any]] = [schema]
    visited: set[int] = set()
    while stack:
        here = stack.pop()
        if id(here) in visited:
            continue
        visited.add(id(here))
        names.update(here.get("properties", {}))
        ref = here.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            if isinstance(target, Mapping):
                stack.append(target)
        for key in ("allOf", "anyOf", "oneOf"):
            stack.extend(s for s in here.get(key, []) if isinstance(s, Mapping))
        for key in ("then", "else"):
            if isinstance(here.get(key), Mapping):
                stack.append(here[key])
    return names


def _what(path: Path) -> Text:
    return describe(path)


def _at(doc: Doc, path: Path, *, key: bool = False) -> Any:
    return doc.pos.locate_key(path) if key else doc.pos.locate(path)


def _problem(
    doc: Doc, path: Path, message: Text, hint: Text | None = None, *, key: bool = False
) -> Problem:
    return Problem(_at(doc, path, key=key), message, hint or Text())


def _value_at(data: Any, path: Path) -> Any:
    for key in path:
        if isinstance(data, dict) and isinstance(key, str):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _from_property_names(error: ValidationError) -> bool:
    return "propertyNames" in error.relative_schema_path or "propertyNames" in error.schema_path


# -- the explanations -----------------------------------------------------------------------


def _explain(error: ValidationError, doc: Doc, root: Root) -> list[Problem]:
    path: Path = tuple(error.absolute_path)
    handler = _HANDLERS.get(str(error.validator), _generic)
    return handler(error, doc, path, root)


def _unknown_keys(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    instance = error.instance
    if not isinstance(instance, dict) or error.validator_value is not False:
        return _generic(error, doc, path, root)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    allowed = _property_names(schema, root)
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    problems = []
    for key in instance:
        if key in allowed or any(p.search(key) for p in patterns):
            continue
        where = _what(path)
        hint = did_you_mean(
            key,
            allowed,
            T(
                f"删除它；此处可用的键：{listing(allowed)}",
                f"remove it; keys allowed here: {listing(allowed)}",
            ),
        )
        problems.append(
            _problem(
                doc,
                (*path, key),
                T(f"{where.zh} 中有未知的键 '{key}'", f"unknown key '{key}' in {where.en}")
                if path
                else T(f"未知的键 '{key}'", f"unknown key '{key}'"),
                hint,
                key=True,
            )
        )
    return problems


def _required(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    instance = error.instance
    if not isinstance(instance, dict):
        return _generic(error, doc, path, root)
    missing = [name for name in error.validator_value if name not in instance]
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    properties = schema.get("properties", {})
    problems = []
    where = _what(path)
    for name in missing:
        about = _without_required(bilingual(properties.get(name, {}).get("description")))
        hint = T(f"补上 {name}: …", f"add {name}: …")
        if about:
            hint = T(f"补上 {name}: …（{about.zh}）", f"add {name}: … ({about.en})")
        problems.append(
            _problem(
                doc,
                path,
                T(f"{where.zh} 缺少 '{name}'", f"{where.en} has no '{name}'"),
                hint,
                key=True,
            )
        )
    return problems


def _without_required(text: Text) -> Text:
    """A property's description minus the "(required)" we are already saying."""
    if not text:
        return text
    zh = (text.zh or "").replace("（必填）", "").replace("(必填)", "").strip()
    en = (text.en or "").replace(" (required)", "").replace("(required)", "").strip()
    return Text(zh=zh or None, en=en or None)


def _name_hint(name: str, about: Text) -> Text:
    """Why ``name`` is not a valid name, when we can tell; else the schema's rule."""
    if name.startswith("_"):
        return T(
            "以 _ 开头的名字留给系统使用；请以字母开头",
            "names starting with _ are reserved for the system; start with a letter",
        )
    if any(c in name for c in "./\\"):
        return T(
            "名字不能含 . / \\ 等符号；只用字母、数字和下划线",
            "a name cannot contain . / \\; use letters, digits and _",
        )
    if name[:1].isdigit():
        return T("名字必须以字母开头", "a name must start with a letter")
    return about or T(
        "名字以字母开头，只含字母、数字和下划线",
        "start with a letter; use letters, digits and _",
    )


def _type(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    expected = error.validator_value
    names = [expected] if isinstance(expected, str) else list(expected)
    if set(names) == {"string", "object"} and "zh" in str(error.schema.get("description", "")):
        wanted = T("文本，或 {zh: 中文, en: English}", "text, or a {zh: ..., en: ...} map")
    else:
        wanted = Text(
            zh="或".join(_TYPE_NAMES.get(n, (n, n))[0] for n in names),
            en=" or ".join(_TYPE_NAMES.get(n, (n, n))[1] for n in names),
        )
    where = _what(path)
    about = (
        bilingual(error.schema.get("description")) if isinstance(error.schema, Mapping) else Text()
    )
    if error.instance is None:
        return [
            _problem(
                doc,
                path,
                T(f"{where.zh} 没有值", f"{where.en} has no value"),
                T(f"写上{wanted.zh}，或删掉这个键", f"write {wanted.en} or remove the key"),
                key=True,
            )
        ]
    actual = _kind_of_value(error.instance)
    return [
        _problem(
            doc,
            path,
            T(
                f"{where.zh} 应为{wanted.zh}，而不是{actual.zh}",
                f"{where.en} should be {wanted.en}, not {actual.en}",
            ),
            about,
        )
    ]


def _enum(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    choices = [str(c) for c in error.validator_value]
    value = error.instance
    where = _what(path)
    return [
        _problem(
            doc,
            path,
            T(
                f"{where.zh} 的值 '{_show(value)}' 无效",
                f"'{_show(value)}' is not a valid value for {where.en}",
            ),
            did_you_mean(str(value), choices),
        )
    ]


def _const(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    where = _what(path)
    wanted = _show(error.validator_value)
    return [
        _problem(
            doc,
            path,
            T(f"{where.zh} 必须是 {wanted}", f"{where.en} must be {wanted}"),
            bilingual(error.schema.get("description")),
        )
    ]


def _pattern(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    about = (
        bilingual(error.schema.get("description")) if isinstance(error.schema, Mapping) else Text()
    )
    value = _show(error.instance)
    if _from_property_names(error):
        # The instance is a key of the map at ``path``: point at that key.
        key_path = (*path, error.instance) if isinstance(error.instance, str) else path
        return [
            _problem(
                doc,
                key_path,
                T(f"名字 '{value}' 不合规", f"'{value}' is not a valid name"),
                _name_hint(str(error.instance), about),
                key=True,
            )
        ]
    where = _what(path)
    return [
        _problem(
            doc,
            path,
            T(
                f"{where.zh} 的值 '{value}' 格式不对",
                f"'{value}' is not a valid value for {where.en}",
            ),
            about,
        )
    ]


def _not(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    only_for = schema.get("x-only-for")
    key = name_of(path)
    owner = _value_at(doc.data, path[:-1])
    if isinstance(only_for, Mapping) and only_for:
        selector, allowed = next(iter(only_for.items()))
        allowed_list = [str(a) for a in allowed] if isinstance(allowed, list) else [str(allowed)]
        current = owner.get(selector) if isinstance(owner, dict) else None
        if selector == "type":
            # Kind names as the field kinds say them (an alias like currency -> money),
            # so this message and engine.checks.misplaced_keys' are one and the same.
            current = canonical_name(str(current)) or current
            allowed_list = list(dict.fromkeys(canonical_name(a) or a for a in allowed_list))
            message = T(
                f"{current} 类型的字段不能有 '{key}'",
                f"key '{key}' does not apply to a {current} field",
            )
            hint = T(
                f"删除它；'{key}' 只用于这些类型：{listing(allowed_list)}",
                f"remove it; '{key}' is only for {listing(allowed_list)} fields",
            )
        else:
            message = T(
                f"{selector}: {current} 时不能有 '{key}'",
                f"key '{key}' does not apply when {selector} is {current}",
            )
            hint = T(
                f"删除它；'{key}' 只用于 {selector}: {listing(allowed_list)}",
                f"remove it; '{key}' is only for {selector}: {listing(allowed_list)}",
            )
        return [_problem(doc, path, message, hint, key=True)]
    where = _what(path)
    return [
        _problem(doc, path, T(f"此处不能有{where.zh}", f"{where.en} is not allowed here"), key=True)
    ]


def _one_of(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    about = (
        bilingual(error.schema.get("description")) if isinstance(error.schema, Mapping) else Text()
    )
    where = _what(path)
    inner = list(error.context or [])
    if not inner:  # valid under more than one alternative (oneOf)
        return [
            _problem(
                doc,
                path,
                T(f"{where.zh} 只能写其中一种", f"{where.en} may use only one of the alternatives"),
                about,
            )
        ]
    deeper = [e for e in inner if len(e.absolute_path) > len(error.absolute_path)]
    if deeper:
        deepest = max(deeper, key=lambda e: len(e.absolute_path))
        return _explain(deepest, doc, root)
    if all(e.validator == "required" for e in inner):
        return [
            _problem(
                doc, path, T(f"{where.zh} 不完整", f"{where.en} is incomplete"), about, key=True
            )
        ]
    if all(e.validator in ("type", "enum", "pattern", "const") for e in inner):
        enums = [str(c) for e in inner if e.validator == "enum" for c in e.validator_value]
        value = error.instance
        hint = did_you_mean(value, enums, about) if isinstance(value, str) and enums else about
        return [
            _problem(
                doc,
                path,
                T(
                    f"{where.zh} 的值 '{_show(value)}' 无效",
                    f"'{_show(value)}' is not a valid value for {where.en}",
                ),
                hint,
            )
        ]
    return [_problem(doc, path, T(f"{where.zh} 写得不对", f"{where.en} is not valid"), about)]


def _bounds(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    where = _what(path)
    limit = error.validator_value
    words: dict[str, tuple[str, str]] = {
        "minimum": (f"不能小于 {limit}", f"must be at least {limit}"),
        "maximum": (f"不能大于 {limit}", f"must be at most {limit}"),
        "exclusiveMinimum": (f"必须大于 {limit}", f"must be greater than {limit}"),
        "exclusiveMaximum": (f"必须小于 {limit}", f"must be less than {limit}"),
        "minLength": (
            "不能为空" if limit == 1 else f"至少 {limit} 个字符",
            "must not be empty" if limit == 1 else f"needs at least {limit} characters",
        ),
        "maxLength": (f"最多 {limit} 个字符", f"must be at most {limit} characters"),
        "minItems": (
            "不能是空列表" if limit == 1 else f"至少要有 {limit} 项",
            "must not be an empty list" if limit == 1 else f"needs at least {limit} items",
        ),
        "maxItems": (f"最多 {limit} 项", f"may have at most {limit} items"),
        "minProperties": (
            "不能为空" if limit == 1 else f"至少要有 {limit} 个键",
            "must not be empty" if limit == 1 else f"needs at least {limit} keys",
        ),
        "maxProperties": (f"最多 {limit} 个键", f"may have at most {limit} keys"),
    }
    zh, en = words[str(error.validator)]
    about = (
        bilingual(error.schema.get("description")) if isinstance(error.schema, Mapping) else Text()
    )
    return [_problem(doc, path, T(f"{where.zh} {zh}", f"{where.en} {en}"), about)]


def _unique(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    if path[-1:] == ("options",) and "fields" in path:
        return []  # the choice kinds report repeated options themselves (engine.fields)
    where = _what(path)
    items = error.instance if isinstance(error.instance, list) else []
    seen: list[Any] = []
    for index, item in enumerate(items):
        if item in seen:
            first = seen.index(item)
            return [
                _problem(
                    doc,
                    (*path, index),
                    T(
                        f"{where.zh} 中 '{_show(item)}' 出现了两次（第 {first + 1} 项已有）",
                        f"{where.en} lists '{_show(item)}' twice (also item {first + 1})",
                    ),
                    T("删掉重复的一项", "remove the duplicate"),
                )
            ]
        seen.append(item)
    return [_problem(doc, path, T(f"{where.zh} 有重复项", f"{where.en} has duplicates"))]


def _dependent(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    where = _what(path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    problems = []
    for key, needs in dict(error.validator_value).items():
        if key in instance:
            for need in needs:
                if need not in instance:
                    problems.append(
                        _problem(
                            doc,
                            (*path, key),
                            T(
                                f"{where.zh} 的 '{key}' 需要同时写 '{need}'",
                                f"'{key}' in {where.en} needs '{need}'",
                            ),
                            T(f"补上 {need}，或删掉 {key}", f"add {need} or remove {key}"),
                            key=True,
                        )
                    )
    return problems


def _false_schema(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    where = _what(path)
    return [
        _problem(doc, path, T(f"此处不能有{where.zh}", f"{where.en} is not allowed here"), key=True)
    ]


def _generic(error: ValidationError, doc: Doc, path: Path, root: Root) -> list[Problem]:
    where = _what(path)
    about = (
        bilingual(error.schema.get("description")) if isinstance(error.schema, Mapping) else Text()
    )
    return [_problem(doc, path, T(f"{where.zh} 写得不对", f"{where.en} is not valid"), about)]


_HANDLERS: dict[str, _Handler] = {
    "additionalProperties": _unknown_keys,
    "unevaluatedProperties": _unknown_keys,
    "required": _required,
    "type": _type,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "not": _not,
    "oneOf": _one_of,
    "anyOf": _one_of,
    "minimum": _bounds,
    "maximum": _bounds,
    "exclusiveMinimum": _bounds,
    "exclusiveMaximum": _bounds,
    "minLength": _bounds,
    "maxLength": _bounds,
    "minItems": _bounds,
    "maxItems": _bounds,
    "minProperties": _bounds,
    "maxProperties": _bounds,
    "uniqueItems": _unique,
    "dependentRequired": _dependent,
    "None": _false_schema,
}
