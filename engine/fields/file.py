"""The file kind: the storage key of an uploaded file.

The upload service stores the bytes and hands out the key (and enforces
``max_size_mb``); a record keeps only the key. Because an API client could send
any key, the record service must check that a new key belongs to an upload the
user made; here the key's shape and extension are checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.errors import Problem
from engine.fields.base import FieldKind, FieldValueError, clean_text, show
from engine.fields.registry import register
from engine.i18n import T, Text
from engine.model import Field

MAX_KEY_LENGTH = 255
MAX_SIZE_MB = 1024
_EXTENSION = re.compile(r"^\.?[A-Za-z0-9]{1,10}$")


def extension(key: str) -> str:
    """``contracts/2026/合同.PDF`` -> ``pdf`` ('' when the name has none)."""
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name.strip(".") else ""


def allowed_extensions(field: Field) -> frozenset[str]:
    return frozenset(a.lower().lstrip(".") for a in field.accept if isinstance(a, str))


class FileKind(FieldKind):
    """A stored file key such as ``2026/11/3f2a.../合同.pdf``. ``{"key": ...}``
    (as the API shows a file) is accepted too."""

    name = "file"
    label = T("文件", "File")
    keys = frozenset({"max_size_mb", "accept"})
    storage = "text"
    widget = "file"
    sortable = False
    filterable = False
    accepts_default = False
    type_name = "text"

    def parse(self, field: Field, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "key" in raw:
            raw = raw["key"]
        if not isinstance(raw, str):
            raise FieldValueError(
                T(f"应为文件，而不是 {show(raw)}", f"expected a file, got {show(raw)}")
            )
        key = clean_text(raw, MAX_KEY_LENGTH, what=T("文件", "a file"))
        segments = key.split("/")
        if (
            key.startswith("/")
            or "\\" in key
            or any(s in ("", ".", "..") for s in segments)
            or "\n" in key
            or "\r" in key
            or "\t" in key
        ):
            raise FieldValueError(
                T(f"不是有效的文件：{show(key)}", f"not a valid file key: {show(key)}")
            )
        return key

    def check_value(self, field: Field, value: Any) -> list[Text]:
        allowed = allowed_extensions(field)
        if allowed and extension(str(value)) not in allowed:
            names = ", ".join(sorted(allowed))
            return [
                T(f"不允许的文件类型（允许：{names}）", f"file type not allowed (allowed: {names})")
            ]
        return []

    def check_definition(self, field: Field) -> list[Problem]:
        problems: list[Problem] = []
        size = field.max_size_mb
        if size is not None and (
            isinstance(size, bool)
            or not isinstance(size, (int, float))
            or not 0 < size <= MAX_SIZE_MB
        ):
            problems.append(
                self.problem(
                    field,
                    T(
                        f"max_size_mb 应在 0 到 {MAX_SIZE_MB} 之间：{show(size)}",
                        f"max_size_mb must be above 0 and at most {MAX_SIZE_MB}: {show(size)}",
                    ),
                    T(
                        "写一个以 MB 为单位的数，如 max_size_mb: 20",
                        "give a size in MB, e.g. max_size_mb: 20",
                    ),
                )
            )
        seen: set[str] = set()
        for ext in field.accept:
            if not isinstance(ext, str) or not _EXTENSION.match(ext):
                problems.append(
                    self.problem(
                        field,
                        T(
                            f"accept 中的扩展名无效：{show(ext)}",
                            f"invalid extension in accept: {show(ext)}",
                        ),
                        T("写作 pdf 或 .pdf", "write it as pdf or .pdf"),
                    )
                )
                continue
            norm = ext.lower().lstrip(".")
            if norm in seen:
                problems.append(
                    self.problem(
                        field,
                        T(f"accept 中的 '{norm}' 出现了两次", f"'{norm}' appears twice in accept"),
                        T("删除重复的扩展名", "remove the duplicate"),
                    )
                )
            seen.add(norm)
        return problems

    def show(self, field: Field, value: Any, lang: str) -> str:
        """The file name (the last part of the key)."""
        return str(value).rsplit("/", 1)[-1]


FILE = register(FileKind())
