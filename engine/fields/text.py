"""Text-like kinds: text, long_text, email, phone, url.

Values are stripped strings. Every text value has a length cap even without
``max_length`` (text 1,000, long_text 100,000 characters), checked before
anything scans the value, so a 10 MB paste is refused in constant time. Control
characters (other than tab and newlines) and lone surrogates are refused: they
break CSV/XLSX export and cannot be stored as UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from engine.errors import Problem
from engine.fields.base import (
    TEXT_KEYS,
    FieldKind,
    FieldValueError,
    bad_char_message,
    clean_text,
    has_bad_char,
    is_int,
    nfkc,
    show,
    too_long,
)
from engine.fields.patterns import compile_pattern, pattern_hint
from engine.fields.registry import register
from engine.i18n import T, Text, normalise_lang
from engine.model import Field


class TextKind(FieldKind):
    """One line of text."""

    name = "text"
    label = T("文本", "Text")
    keys = TEXT_KEYS
    storage = "text"
    widget = "text"
    searchable = True
    type_name = "text"
    #: Cap when the field sets no ``max_length``.
    default_max_length = 1000
    #: Largest ``max_length`` a blueprint may set for this kind.
    max_length_cap = 10_000
    #: What the kind is called in "expected ..." / "not a valid ..." messages.
    noun = T("文本", "text")

    def limit(self, field: Field) -> int:
        """The effective maximum length of a value."""
        if is_int(field.max_length) and field.max_length is not None and field.max_length > 0:
            return min(field.max_length, self.max_length_cap)
        return self.default_max_length

    def coerce(self, field: Field, raw: Any) -> Any:
        # Fast path for a string (the same checks, results and errors as
        # is_blank + clean_text), unless a subclass parses differently.
        if type(raw) is not str or type(self).parse is not TextKind.parse:
            return super().coerce(field, raw)
        text = raw.strip()
        if not text:
            return None
        limit = self.limit(field)
        if len(text) > limit:
            raise FieldValueError(too_long(limit, len(text)))
        message = bad_char_message(text)
        if message is not None:
            raise FieldValueError(message)
        return self.normalise(field, text)

    def coerce_many(self, field: Field, raws: Sequence[Any]) -> tuple[list[Any], dict[int, Text]]:
        # A column of plain strings (the usual import) is checked as a whole: one
        # length test and one scan for bad characters over all cells at once. Any
        # surprise (another type, a long or bad cell, a kind that normalises) and
        # the column goes cell by cell through coerce() instead.
        cls = type(self)
        if (
            cls.coerce is not TextKind.coerce
            or cls.parse is not TextKind.parse
            or cls.normalise is not TextKind.normalise
            or set(map(type, raws)) != {str}
        ):
            return super().coerce_many(field, raws)
        stripped = [s.strip() for s in raws]
        if max(map(len, stripped), default=0) > self.limit(field) or has_bad_char(
            "\n".join(stripped)
        ):
            return super().coerce_many(field, raws)
        return (stripped if all(stripped) else [s or None for s in stripped]), {}

    def validate_many(self, field: Field, values: Sequence[Any]) -> dict[int, list[Text]]:
        if (
            type(self).check_value is TextKind.check_value
            and not field.pattern
            and not (is_int(field.min_length) and field.min_length)
        ):
            # Only the length can fail: check the longest (str values only).
            limit = self.limit(field)
            present = [v for v in values if v is not None]
            if set(map(type, present)) <= {str} and max(map(len, present), default=0) <= limit:
                return {}
        return super().validate_many(field, values)

    def parse(self, field: Field, raw: Any) -> Any:
        return self.normalise(field, clean_text(raw, self.limit(field), what=self.noun))

    def normalise(self, field: Field, text: str) -> str:
        """Kind-specific normalisation of stripped, length-checked text."""
        return text

    def check_value(self, field: Field, value: Any) -> list[Text]:
        messages: list[Text] = []
        length = len(value)
        limit = self.limit(field)
        if length > limit:
            return [too_long(limit, length)]
        if is_int(field.min_length) and field.min_length and length < field.min_length:
            messages.append(
                T(
                    f"至少需要 {field.min_length} 个字符（现有 {length} 个）",
                    f"must be at least {field.min_length} characters (got {length})",
                )
            )
        if field.pattern:
            compiled = compile_pattern(str(field.pattern))
            if isinstance(compiled, Text):
                messages.append(T("字段的格式规则无效", "the field's pattern is invalid"))
            elif not compiled.fullmatch(value):
                if field.pattern_message:
                    messages.append(field.pattern_message)
                else:
                    messages.append(
                        T(
                            f"格式不正确（应匹配 {field.pattern}）",
                            f"does not match the required format ({field.pattern})",
                        )
                    )
        return messages

    def check_definition(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        lengths_ok = True
        for key in ("min_length", "max_length"):
            value = getattr(field, key)
            if value is None:
                continue
            if not is_int(value) or value < 0:
                lengths_ok = False
                problems.append(
                    self.problem(
                        field,
                        T(
                            f"{key} 应为非负整数：{show(value)}",
                            f"{key} must be a whole number >= 0: {show(value)}",
                        ),
                        T(f"例如 {key}: 100", f"for example {key}: 100"),
                    )
                )
        if lengths_ok:
            problems += self._length_problems(field)
        if field.pattern is not None:
            if not isinstance(field.pattern, str):
                problems.append(
                    self.problem(
                        field,
                        T(
                            f"pattern 应为文本：{show(field.pattern)}",
                            f"pattern must be text: {show(field.pattern)}",
                        ),
                        T(
                            '把正则表达式写成字符串，如 pattern: "[0-9]{6}"',
                            'write the regex as a string, e.g. pattern: "[0-9]{6}"',
                        ),
                    )
                )
                return problems
            compiled = compile_pattern(field.pattern)
            if isinstance(compiled, Text):
                problems.append(self.problem(field, compiled, pattern_hint(field.pattern)))
        return problems

    def _length_problems(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        low, high = field.min_length, field.max_length
        if high is not None and high == 0:
            problems.append(
                self.problem(
                    field,
                    T("max_length 不能为 0", "max_length cannot be 0"),
                    T("删除它，或写一个正数", "remove it or give a positive number"),
                )
            )
        if high is not None and high > self.max_length_cap:
            hint = (
                T("更长的文本请用 long_text 类型", "use kind long_text for longer text")
                if self.name == "text"
                else Text()
            )
            problems.append(
                self.problem(
                    field,
                    T(
                        f"max_length 最大为 {self.max_length_cap}：{high}",
                        f"max_length can be at most {self.max_length_cap:,}: {high:,}",
                    ),
                    hint,
                )
            )
        if low is not None and high is not None and high and low > high:
            problems.append(
                self.problem(
                    field,
                    T(
                        f"min_length（{low}）大于 max_length（{high}）",
                        f"min_length ({low}) is greater than max_length ({high})",
                    ),
                    T("交换两者，或修正其中一个", "swap them or fix one of them"),
                )
            )
        elif low is not None and high is None and low > self.default_max_length:
            problems.append(
                self.problem(
                    field,
                    T(
                        f"min_length（{low}）超过默认长度上限 {self.default_max_length}",
                        f"min_length ({low}) is above the default limit of "
                        f"{self.default_max_length:,} characters",
                    ),
                    T("同时设置更大的 max_length", "also set a larger max_length"),
                )
            )
        return problems


class LongTextKind(TextKind):
    """Several paragraphs; newlines are kept (``\\r\\n`` becomes ``\\n``)."""

    name = "long_text"
    aliases = ("longtext", "textarea")
    label = T("多行文本", "Long text")
    widget = "textarea"
    default_max_length = 100_000
    max_length_cap = 1_000_000

    def normalise(self, field: Field, text: str) -> str:
        return text.replace("\r\n", "\n").replace("\r", "\n")


_EMAIL_LOCAL_BAD = re.compile(r'[\s()<>\[\]:;@\\,"]')
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def _ascii_host(host: str) -> str | None:
    """The host name in ASCII (IDNA) form if it is a valid DNS name, else None."""
    if not host or len(host) > 253 or host.endswith("."):
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    if not _TLD.match(labels[-1]):
        return None
    return ascii_host


class EmailKind(TextKind):
    """An email address; the domain is lower-cased, the local part kept as typed."""

    name = "email"
    label = T("邮箱", "Email")
    widget = "email"
    default_max_length = 254
    max_length_cap = 254
    noun = T("邮箱地址", "an email address")

    def normalise(self, field: Field, text: str) -> str:
        text = nfkc(text)
        invalid = FieldValueError(
            T(f"不是有效的邮箱地址：{show(text)}", f"not a valid email address: {show(text)}")
        )
        if text.count("@") != 1:
            raise invalid
        local, domain = text.split("@")
        if (
            not local
            or len(local) > 64
            or _EMAIL_LOCAL_BAD.search(local)
            or local.startswith(".")
            or local.endswith(".")
            or ".." in local
        ):
            raise invalid
        domain = domain.lower()
        if _ascii_host(domain) is None:
            raise invalid
        return f"{local}@{domain}"

    def check_value(self, field: Field, value: Any) -> list[Text]:
        try:
            self.normalise(field, value)
        except FieldValueError as exc:
            return [exc.text]
        return super().check_value(field, value)


_PHONE_EXT = re.compile(r"\s*(?:ext\.?|x|转|#|,|;ext=)\s*(\d{1,6})$", re.IGNORECASE)
_PHONE_BODY = re.compile(r"^\+?[0-9 ().\-]+$")
PHONE_EXT_MARK = ";ext="


class PhoneKind(TextKind):
    """A phone number as ``+``/digits, formatting removed: ``+86 138-0013-8000``
    becomes ``+8613800138000``; an extension (``转 123``, ``ext. 123``) is kept as
    ``;ext=123`` (RFC 3966 style)."""

    name = "phone"
    label = T("电话", "Phone")
    widget = "tel"
    default_max_length = 40
    max_length_cap = 40
    noun = T("电话号码", "a phone number")

    def normalise(self, field: Field, text: str) -> str:
        text = nfkc(text)
        invalid = FieldValueError(
            T(f"不是有效的电话号码：{show(text)}", f"not a valid phone number: {show(text)}")
        )
        ext = ""
        found = _PHONE_EXT.search(text)
        if found:
            ext = found.group(1)
            text = text[: found.start()]
        if not _PHONE_BODY.match(text) or "+" in text[1:]:
            raise invalid
        digits = "".join(ch for ch in text if ch.isdigit())
        if not 3 <= len(digits) <= 20:
            raise invalid
        out = ("+" if text.startswith("+") else "") + digits
        return f"{out}{PHONE_EXT_MARK}{ext}" if ext else out

    def check_value(self, field: Field, value: Any) -> list[Text]:
        try:
            self.normalise(field, value)
        except FieldValueError as exc:
            return [exc.text]
        return super().check_value(field, value)

    def show(self, field: Field, value: Any, lang: str) -> str:
        number, _, ext = str(value).partition(PHONE_EXT_MARK)
        if not ext:
            return number
        return f"{number} 转 {ext}" if normalise_lang(lang) == "zh" else f"{number} ext. {ext}"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_IPV4 = re.compile(
    r"^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"
)
_WHITESPACE = re.compile(r"\s")


class UrlKind(TextKind):
    """An http(s) link. A bare host (``example.com/x``) gets ``https://``; every
    other scheme (``javascript:``, ``data:``, ``file:`` ...) is refused, as are
    credentials in the link (``https://bank.com@evil.example``)."""

    name = "url"
    label = T("网址", "URL")
    widget = "url"
    default_max_length = 1000
    max_length_cap = 2000
    noun = T("网址", "a URL")

    def normalise(self, field: Field, text: str) -> str:
        invalid = FieldValueError(
            T(f"不是有效的网址：{show(text)}", f"not a valid URL: {show(text)}")
        )
        if _WHITESPACE.search(text):
            raise invalid
        scheme = _SCHEME.match(text)
        if scheme and "." not in scheme.group(1):
            if scheme.group(1).lower() not in ("http", "https"):
                raise FieldValueError(
                    T(
                        f"只允许 http 或 https 链接：{show(text)}",
                        f"only http and https links are allowed: {show(text)}",
                    )
                )
        elif text.startswith("//"):
            text = "https:" + text
        else:
            text = "https://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise invalid from None
        host = parts.hostname or ""
        if parts.username is not None or parts.password is not None:
            raise FieldValueError(
                T(
                    f"网址中不能包含用户名或密码：{show(text)}",
                    f"a URL cannot contain a user name or password: {show(text)}",
                )
            )
        if host.startswith("[") or ":" in host:
            valid_host = True  # IPv6 literal; urlsplit already checked the brackets
        else:
            valid_host = (
                bool(_IPV4.match(host)) or host == "localhost" or _ascii_host(host) is not None
            )
        if not valid_host:
            raise invalid
        if port == 0:
            raise invalid
        netloc = parts.netloc.lower()
        return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))

    def check_value(self, field: Field, value: Any) -> list[Text]:
        try:
            self.normalise(field, value)
        except FieldValueError as exc:
            return [exc.text]
        return super().check_value(field, value)


TEXT = register(TextKind())
LONG_TEXT = register(LongTextKind())
EMAIL = register(EmailKind())
PHONE = register(PhoneKind())
URL = register(UrlKind())
