"""The one exception tree of Formflow.

Every error a user or an analyst can cause is a :class:`FormflowError`. Each
carries structured data (a source location, a field name, an HTTP status) and a
bilingual message an analyst can act on. Code that catches errors from Formflow
catches ``FormflowError``; anything else escaping the engine is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.i18n import Text


@dataclass(frozen=True, order=True)
class Location:
    """A position in a blueprint file (1-based line and column)."""

    file: str = "<blueprint>"
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file

    def shifted(self, line_offset: int, column_offset: int) -> Location:
        """The location of a character inside a scalar whose text starts here.

        Later lines of a block scalar (``|``) are indented like its first line, so
        the column offset counts from the same column on every line.
        """
        return Location(self.file, self.line + line_offset, self.column + column_offset)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a blueprint, at a place, with an optional fix."""

    location: Location
    message: Text
    hint: Text = field(default_factory=Text)
    severity: str = "error"  # or "warning"

    def render(self, lang: str | None = None) -> str:
        text = self.message.get(lang)
        hint = self.hint.get(lang)
        if hint:
            text = f"{text}; {hint}"
        return f"{self.location}: {text}"


class FormflowError(Exception):
    """Base of every error the engine raises on purpose."""

    http_status = 500
    default_message = Text(zh="Formflow 出错", en="Formflow error")

    def __init__(self, message: Text | str | None = None) -> None:
        self.text = Text.of(message) if message is not None else self.default_message
        super().__init__(self.text.get("en"))

    def message(self, lang: str | None = None) -> str:
        return self.text.get(lang)


class BlueprintError(FormflowError):
    """A blueprint cannot be used; holds every problem found, not just the first."""

    http_status = 500

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=lambda p: p.location))
        first = self.problems[0].render("en") if self.problems else "invalid blueprint"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(
            Text(zh=f"蓝图有误：{first}{more}", en=f"Invalid blueprint: {first}{more}")
        )

    def render(self, lang: str | None = None) -> str:
        return "\n".join(p.render(lang) for p in self.problems)


class ExpressionError(FormflowError):
    """A formula is invalid (at check time) or failed to evaluate (at run time).

    ``offset`` is the (line, column) inside the formula text, both 0-based, so the
    loader can point at the exact character in the blueprint file.
    """

    http_status = 422

    def __init__(
        self,
        message: Text | str,
        *,
        source: str = "",
        offset: tuple[int, int] = (0, 0),
        hint: Text | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.offset = offset
        self.hint = hint or Text()


class RecordInvalid(FormflowError):
    """A write was refused; ``errors`` maps each field (or ``"_record"``) to messages."""

    http_status = 422

    def __init__(self, errors: Mapping[str, Iterable[Text]]) -> None:
        self.errors: dict[str, list[Text]] = {k: list(v) for k, v in errors.items() if v}
        parts = [f"{k}: {m.get('en')}" for k, msgs in self.errors.items() for m in msgs]
        zh_parts = [f"{k}：{m.get('zh')}" for k, msgs in self.errors.items() for m in msgs]
        super().__init__(
            Text(zh="记录无效：" + "；".join(zh_parts), en="Invalid record: " + "; ".join(parts))
        )

    def as_dict(self, lang: str | None = None) -> dict[str, list[str]]:
        return {k: [m.get(lang) for m in msgs] for k, msgs in self.errors.items()}


class NotFound(FormflowError):
    http_status = 404
    default_message = Text(zh="记录不存在", en="Record not found")


class PermissionDenied(FormflowError):
    http_status = 403
    default_message = Text(zh="没有权限", en="Permission denied")


class Conflict(FormflowError):
    """An update named an old version; says who changed the record and when."""

    http_status = 409
    default_message = Text(zh="记录已被他人修改", en="The record was changed by someone else")

    def __init__(self, message: Text | str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class FlowError(FormflowError):
    """An approval-flow action cannot be done (see :mod:`engine.flows`)."""

    http_status = 409
    default_message = Text(zh="审批操作无法完成", en="The approval action cannot be done")

    def __init__(self, message: Text | str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class TransitionNotAllowed(FlowError):
    http_status = 409
    default_message = Text(
        zh="当前状态不允许此操作", en="This action is not allowed in the current state"
    )


class AlreadyDecided(FlowError):
    """The task or step was decided already (by someone else, or by you): says who and when."""

    http_status = 409
    default_message = Text(zh="已经审批过了", en="This was already decided")


class NoApprovers(FlowError):
    """A flow step resolved to nobody when the record was submitted."""

    http_status = 422
    default_message = Text(zh="审批步骤没有审批人", en="A step has no approvers")


class RecordLocked(Conflict):
    """The record is pending approval and its flow locks it against edits."""

    http_status = 409
    default_message = Text(
        zh="记录审批中，已锁定，不能修改", en="The record is pending approval and locked"
    )


class SettingInvalid(FormflowError):
    """A runtime setting (``FORMFLOW_SMTP_PORT`` ...) has a value the engine cannot use."""

    http_status = 500
    default_message = Text(zh="设置无效", en="A setting is invalid")


class ImportFailed(FormflowError):
    http_status = 422
    default_message = Text(zh="导入失败", en="Import failed")


class SchemaBehind(FormflowError):
    """The database schema is older than the blueprint: run ``formflow migrate``."""

    http_status = 503
    default_message = Text(
        zh="数据库结构落后于蓝图；请运行 `formflow migrate PATH --db URL`",
        en="the database schema is behind the blueprint; run `formflow migrate PATH --db URL`",
    )


class DemoDataInvalid(FormflowError):
    """A template's ``demo.yaml`` cannot be loaded; every problem names file:line:column."""

    http_status = 500

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=lambda p: p.location))
        zh = "\n".join(p.render("zh") for p in self.problems) or "演示数据无效"
        en = "\n".join(p.render("en") for p in self.problems) or "invalid demo data"
        super().__init__(Text(zh=f"演示数据有误：\n{zh}", en=f"Invalid demo data:\n{en}"))

    def render(self, lang: str | None = None) -> str:
        return "\n".join(p.render(lang) for p in self.problems)
