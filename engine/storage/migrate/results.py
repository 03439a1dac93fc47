"""The public results of planning and applying: Change, Plan, MigrationResult, errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import FormflowError
from engine.i18n import T, Text

# --------------------------------------------------------------------------- public types


class MigrationRefused(FormflowError):
    """The plan loses data and ``allow_data_loss`` was not given; nothing was changed."""

    http_status = 409

    def __init__(self, changes: Sequence[Change]) -> None:
        self.changes: tuple[Change, ...] = tuple(changes)
        zh = ["迁移会丢失数据，未做任何修改："]
        en = ["The migration would lose data; nothing was changed:"]
        for c in self.changes:
            zh.append(f"  - {c.detail.get('zh')}：{(c.reason or Text()).get('zh')}")
            en.append(f"  - {c.detail.get('en')}: {(c.reason or Text()).get('en')}")
        zh.append("确认后请加 --allow-data-loss 重新运行（会先备份）。")
        en.append("If that is intended, re-run with --allow-data-loss (a backup is taken first).")
        super().__init__(Text(zh="\n".join(zh), en="\n".join(en)))


class MigrationFailed(FormflowError):
    """The migration could not be applied; the transaction was rolled back."""

    http_status = 500
    default_message = T("迁移失败，数据库未改变", "The migration failed; the database is unchanged")


@dataclass(frozen=True)
class Change:
    """One step of a plan, described for a person.

    ``table``/``column`` are SQL names (the table's name before a rename for
    drops, after it otherwise). ``blocker`` says why the change cannot be applied
    at all (e.g. duplicate values for a new unique field).
    """

    kind: str
    table: str
    column: str | None
    detail: Text
    data_loss: bool = False
    reason: Text | None = None
    blocker: Text | None = None

    def render(self, lang: str | None = None) -> str:
        mark = _MARKS.get(self.kind, "~")
        line = f"  {mark} {self.detail.get(lang)}"
        if self.data_loss:
            line += " " + _LOSES_DATA.get(lang)
        if self.reason:
            line += f"\n      {self.reason.get(lang)}"
        if self.blocker:
            line += f"\n      {_BLOCKED.get(lang)} {self.blocker.get(lang)}"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "detail": self.detail.as_dict(),
            "data_loss": self.data_loss,
            "reason": self.reason.as_dict() if self.reason else None,
        }


_MARKS = {
    "create_table": "+",
    "add_column": "+",
    "add_index": "+",
    "add_unique": "+",
    "add_foreign_key": "+",
    "drop_table": "-",
    "drop_column": "-",
    "drop_index": "-",
    "drop_unique": "-",
    "drop_foreign_key": "-",
}
_LOSES_DATA = T("[丢失数据]", "[loses data]")
_BLOCKED = T("无法执行：", "cannot be applied:")


@dataclass(frozen=True)
class Plan:
    """What a migration would do, in order. ``empty``: the database is current.

    ``recorded_digest`` is the blueprint digest ``ff_meta`` holds (None for a
    database Formflow never migrated); ``state_current`` is true when ``ff_meta``
    already records this blueprint and schema, so even a plan without table
    changes is not empty when only the blueprint's digest moved (a new label).
    """

    changes: tuple[Change, ...]
    blueprint_digest: str
    recorded_digest: str | None = None
    state_current: bool = False

    @property
    def data_loss(self) -> bool:
        return any(c.data_loss for c in self.changes)

    @property
    def losses(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.data_loss)

    @property
    def blockers(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.blocker)

    @property
    def empty(self) -> bool:
        return not self.changes and self.state_current

    def render(self, lang: str | None = None) -> str:
        short = self.blueprint_digest[:12]
        if self.empty:
            return T(
                f"数据库已是最新（蓝图版本 {short}）。",
                f"The database is up to date (blueprint {short}).",
            ).get(lang)
        if not self.changes:
            return T(
                f"无需修改表结构；将记录新的蓝图版本 {short}。",
                f"No table changes; the new blueprint version {short} will be recorded.",
            ).get(lang)
        n, lost = len(self.changes), len(self.losses)
        head = T(
            f"迁移计划（蓝图版本 {short}）：{n} 项修改，其中 {lost} 项会丢失数据",
            f"Migration plan (blueprint {short}): {n} change{'s' if n != 1 else ''}, "
            f"{lost} losing data",
        )
        lines = [head.get(lang), *(c.render(lang) for c in self.changes)]
        if self.data_loss:
            lines.append(
                T(
                    "标记为[丢失数据]的修改需要加 --allow-data-loss 才会执行，执行前会先备份。",
                    "Changes marked [loses data] run only with --allow-data-loss; "
                    "a backup is taken first.",
                ).get(lang)
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`apply_migration` did.

    ``plan`` is the plan made again under the lock (what was really applied);
    ``applied`` is false when another migrator had already done everything.
    """

    plan: Plan
    applied: bool
    schema_version: int
    backup_file: Path | None = None
    backup_tables: tuple[str, ...] = ()
    notes: tuple[Text, ...] = ()

    def render(self, lang: str | None = None) -> str:
        if not self.applied:
            return T(
                "无需迁移：数据库已是最新。", "Nothing to migrate: the database is up to date."
            ).get(lang)
        n = len(self.plan.changes)
        lines = [
            T(
                f"迁移完成：{n} 项修改，结构版本 {self.schema_version}。",
                f"Migrated: {n} change{'s' if n != 1 else ''}, schema version "
                f"{self.schema_version}.",
            ).get(lang)
        ]
        if self.backup_file is not None:
            shown = self.backup_file
            lines.append(T(f"备份文件：{shown}", f"Backup: {shown}").get(lang))
        if self.backup_tables:
            names = ", ".join(self.backup_tables)
            lines.append(T(f"备份表：{names}", f"Backup tables: {names}").get(lang))
        lines.extend(f"  {note.get(lang)}" for note in self.notes)
        return "\n".join(lines)
