"""Bilingual text.

Every label, help text and message in a blueprint is either a plain string or a
``{zh: ..., en: ...}`` map. :class:`Text` holds both and picks one for a reader,
falling back to the other language (then to any value) so a page never shows a
blank where a translation is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LANGUAGES: tuple[str, ...] = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


def normalise_lang(lang: str | None) -> str:
    """Map ``zh-CN``, ``zh_Hans``, ``en-US``... onto one of :data:`LANGUAGES`."""
    if not lang:
        return DEFAULT_LANGUAGE
    head = lang.replace("_", "-").split("-", 1)[0].lower()
    return head if head in LANGUAGES else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Text:
    """A string in Chinese and English; either may be missing."""

    zh: str | None = None
    en: str | None = None

    @classmethod
    def of(cls, value: Any) -> Text:
        """Build from a blueprint value: a plain string (both languages) or a map."""
        if isinstance(value, Text):
            return value
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            zh = value.get("zh")
            en = value.get("en")
            return cls(zh=None if zh is None else str(zh), en=None if en is None else str(en))
        return cls(zh=str(value), en=str(value))

    @classmethod
    def both(cls, zh: str, en: str) -> Text:
        return cls(zh=zh, en=en)

    def get(self, lang: str | None = None) -> str:
        """The text in ``lang``, else the other language, else ``''``."""
        lang = normalise_lang(lang)
        first, second = (self.zh, self.en) if lang == "zh" else (self.en, self.zh)
        if first:
            return first
        return second or ""

    def format(self, **params: Any) -> Text:
        """Substitute ``{name}`` placeholders in both languages."""
        return Text(
            zh=None if self.zh is None else self.zh.format(**params),
            en=None if self.en is None else self.en.format(**params),
        )

    def __bool__(self) -> bool:
        return bool(self.zh or self.en)

    def __str__(self) -> str:
        return self.get(DEFAULT_LANGUAGE)

    def as_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.zh is not None:
            out["zh"] = self.zh
        if self.en is not None:
            out["en"] = self.en
        return out


def T(zh: str, en: str) -> Text:  # noqa: N802 - short constructor used for messages
    """Shorthand for an engine message in both languages."""
    return Text(zh=zh, en=en)
