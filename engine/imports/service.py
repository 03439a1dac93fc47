"""The import service: a file in, records through the record service, a result out.

How an import runs (docs/imports.md has the user's view):

1. The file is opened and checked (:mod:`engine.imports.reading`), its columns
   mapped onto the entity (:mod:`engine.imports.mapping`); anything refused
   there refuses the whole file before a row is written.
2. One write transaction for the whole file. Records stream through it in
   chunks (``limits.chunk_size``): per chunk, refs are resolved by the target's
   title field (or its first unique text field) or id with one query per ref
   field, within the importer's read scope; with ``update_on`` the existing
   records are found with one query and updated one by one
   (:meth:`RecordService.update` with the current version); the new ones go to
   :meth:`RecordService.create_many` (same rules as a form: coercion, required,
   unique within the file and against the database, refs, formulas, rules,
   autonumbers), each chunk under a savepoint. A chunk with bad rows is rolled
   back to its savepoint and written again without them, so later chunks are
   checked against the good rows before them (a value repeated two chunks
   later is still a duplicate), and every bad row of the file is reported.
3. The end: all-or-nothing (the default) commits only when no row failed,
   ``partial`` commits the good rows, a dry run always rolls back. A process
   that dies before the end leaves the database as it was (nothing committed).

Memory holds one chunk, the first ``limits.max_errors`` errors and counts; the
annotated report is streamed to disk.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.batch import MISSING, Columns
from engine.errors import Conflict, NotFound, PermissionDenied, RecordInvalid
from engine.fields import FieldValueError, kind_of, using_timezone
from engine.i18n import T, Text
from engine.imports.jobs import ImportJobs
from engine.imports.limits import DEFAULT_LIMITS, FileRefused, ImportLimits
from engine.imports.mapping import (
    ChildRow,
    Item,
    ItemReader,
    Layout,
    Problem,
    plan_layout,
)
from engine.imports.reading import SourceRow, Workbook, chunked, open_file
from engine.imports.report import ReportWriter, RowError, shown_value
from engine.model import Entity
from engine.records import SYSTEM, Actor, BatchInvalid, RecordService
from engine.storage.schema import EntityTable, normalise_unique

__all__ = ["ImportOptions", "ImportResult", "ImportService", "Progress"]

#: ``progress(fraction read, records read)``, called after every chunk.
Progress = Callable[[float, int], None]

_CHILD_KEY = re.compile(r"^(.+?)\[(\d+)\](?:\.(.+))?$")
_ID = re.compile(r"^#?\s*([1-9][0-9]{0,18})$")
MAX_RETRIES = 4

MSG_NO_ENTITY = T("没有实体 {name}", "no entity {name!r}")
MSG_NO_CREATE = T("你无权新建{entity}记录", "you may not create {entity} records")
MSG_NOT_UNIQUE = T(
    "按 {field} 更新需要唯一字段（unique: true）或自动编号",
    "--update-on needs a unique field (unique: true) or an autonumber; {field} is neither",
)
MSG_NO_FIELD = T("{entity}没有字段 {field}", "{entity} has no field {field}")
MSG_REF_MISSING = T(
    "找不到{entity}“{value}”（按{by}或编号 #id 查找）",
    "no {entity} '{value}' (looked up by {by} or #id)",
)
MSG_REF_AMBIGUOUS = T(
    "有 {count} 条{entity}记录都是“{value}”，请改用编号（如 #{first}）",
    "{count} {entity} records are '{value}'; give the id instead (such as #{first})",
)
MSG_KEY_AMBIGUOUS = T(
    "有 {count} 条记录的{field}都是“{value}”，无法确定更新哪一条",
    "{count} records have {field} '{value}'; cannot tell which one to update",
)
MSG_MAY_NOT_UPDATE = T(
    "此记录已存在，但你无权修改它", "the record exists but you may not change it"
)
MSG_CHILD_UNMATCHED = T(
    "找不到键为“{key}”的主记录（子表各行须按主工作表的顺序排列）",
    "no main-sheet row with the key '{key}' at this place (child rows must follow the order "
    "of the main sheet)",
)
MSG_CHILD_NO_KEY = T("子表行缺少父记录的键", "the child row has no parent key")
MSG_GAVE_UP = T("此行多次重试后仍无法写入", "the row could not be written after several tries")


def _per_language(template: Text, **params: Any) -> Text:
    def side(lang: str) -> str:
        values = {k: v.get(lang) if isinstance(v, Text) else v for k, v in params.items()}
        return template.get(lang).format(**values)

    return Text(zh=side("zh"), en=side("en"))


@dataclass(frozen=True)
class ImportOptions:
    """How to import: the mode, the update key, a dry run, an explicit column mapping."""

    partial: bool = False
    update_on: str | None = None
    dry_run: bool = False
    #: ``{column header: field}`` (``table.column`` for a child column; None skips).
    mapping: Mapping[str, str | None] | None = None
    #: The language of the annotated report's messages.
    lang: str = "zh"

    @property
    def mode(self) -> Literal["all", "partial"]:
        return "partial" if self.partial else "all"


@dataclass
class ImportResult:
    """What an import did (or, for a dry run, would do)."""

    entity: str
    file_name: str
    options: ImportOptions
    rows_read: int = 0
    #: Records created / updated: written when ``committed``; in a dry run what would be;
    #: 0 in a failed all-or-nothing import.
    created: int = 0
    updated: int = 0
    #: Records (and stray child rows) that failed.
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_total: int = 0
    warnings: list[Text] = field(default_factory=list)
    committed: bool = False
    #: Why the whole file was refused (nothing was read into the database).
    refused: Text | None = None
    report_path: Path | None = None
    job_id: int | None = None

    @property
    def ok(self) -> bool:
        """No row failed and the file was not refused."""
        return self.refused is None and self.failed == 0

    @property
    def state(self) -> Literal["done", "failed"]:
        """``failed`` when nothing was (or, in a dry run, would be) written for a failure."""
        if self.refused is not None:
            return "failed"
        if self.failed and not self.options.partial:
            return "failed"
        return "done"

    def summary(self, lang: str) -> str:
        """One line for people: what was written, what failed."""
        zh = lang == "zh"
        if self.refused is not None:
            return self.refused.get(lang)
        if zh:
            counts = f"新建 {self.created:,} 条，更新 {self.updated:,} 条，失败 {self.failed:,} 行"
            if self.options.dry_run:
                head = "试运行（未写入）：" + (
                    "全部行有效" if self.ok else "有无效的行，正式导入时不会写入任何数据"
                )
                if self.ok or self.options.partial:
                    counts = (
                        f"将新建 {self.created:,} 条，将更新 {self.updated:,} 条，"
                        f"失败 {self.failed:,} 行"
                    )
                else:
                    counts = f"{self.failed:,} 行有错误"
                return f"{head}；{counts}（共读取 {self.rows_read:,} 条）"
            if not self.committed:
                return (
                    f"导入失败，未写入任何数据（全部或全不）：{self.failed:,} 行有错误"
                    f"（共读取 {self.rows_read:,} 条）"
                )
            return f"已导入：{counts}（共读取 {self.rows_read:,} 条）"
        counts = f"{self.created:,} created, {self.updated:,} updated, {self.failed:,} failed"
        if self.options.dry_run:
            head = "Dry run (nothing written): " + (
                "every row is valid"
                if self.ok
                else "some rows are invalid; a real import would write nothing"
            )
            if self.ok or self.options.partial:
                counts = (
                    f"would create {self.created:,}, would update {self.updated:,}, "
                    f"{self.failed:,} failed"
                )
            else:
                counts = f"{self.failed:,} {'row has' if self.failed == 1 else 'rows have'} errors"
            return f"{head}; {counts} ({self.rows_read:,} read)"
        if not self.committed:
            return (
                f"Import failed, nothing written (all or nothing): {self.failed:,} "
                f"{'row has' if self.failed == 1 else 'rows have'} errors ({self.rows_read:,} read)"
            )
        return f"Imported: {counts} ({self.rows_read:,} read)"

    def as_json(self, lang: str) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "file_name": self.file_name,
            "state": self.state,
            "ok": self.ok,
            "committed": self.committed,
            "dry_run": self.options.dry_run,
            "mode": self.options.mode,
            "update_on": self.options.update_on,
            "rows_read": self.rows_read,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "message": self.summary(lang),
            "errors": [e.as_json(lang) for e in self.errors],
            "errors_total": self.errors_total,
            "warnings": [w.get(lang) for w in self.warnings],
            "job_id": self.job_id,
        }


class ImportService:
    """Imports files into a blueprint's entities through a :class:`RecordService`.

    ``records`` decides what the importer may do: with an access policy every
    write is checked for the ``actor`` as in a form.
    """

    def __init__(self, records: RecordService, *, limits: ImportLimits = DEFAULT_LIMITS) -> None:
        self.records = records
        self.limits = limits
        self.jobs = ImportJobs(records.schema, records.engine, records.clock)

    def check(self, entity: str, options: ImportOptions, actor: Actor = SYSTEM) -> Entity:
        """Refuse, before any file is read, what cannot work: the entity, rights, the key."""
        ent = self.records.blueprint.entities.get(entity)
        if ent is None:
            raise NotFound(MSG_NO_ENTITY.format(name=entity))
        access = self.records.access
        if access is not None and not actor.is_system and not access.can_create(actor, entity):
            raise PermissionDenied(_per_language(MSG_NO_CREATE, entity=ent.label))
        key = options.update_on
        if key is not None:
            f = ent.fields.get(key)
            if f is None:
                raise FileRefused(_per_language(MSG_NO_FIELD, entity=ent.label, field=key))
            if not (f.unique or f.kind == "autonumber"):
                raise FileRefused(MSG_NOT_UNIQUE.format(field=key))
        return ent

    def run(
        self,
        entity: str,
        path: str | Path,
        *,
        actor: Actor = SYSTEM,
        options: ImportOptions | None = None,
        file_name: str | None = None,
        report_path: Path | None = None,
        always_report: bool = False,
        progress: Progress | None = None,
        job_id: int | None = None,
    ) -> ImportResult:
        """Import the file at ``path`` into ``entity`` as ``actor``.

        ``file_name``: the name the user gave the file (its extension decides the
        format; it is the ``source`` of the audit). ``report_path``: where to
        write the annotated report when a row fails (``always_report``: also when
        none does). ``job_id``: an ``ff_imports`` job to keep up to date.
        A file refused as a whole is a result with ``refused`` set (and a failed job).
        """
        opts = options or ImportOptions()
        name = file_name or Path(path).name
        result = ImportResult(entity=entity, file_name=name, options=opts, job_id=job_id)
        if job_id is not None:
            self.jobs.started(job_id)
        try:
            ent = self.check(entity, opts, actor)
            with using_timezone(self.records.tz), open_file(path, self.limits, name) as book:
                layout = plan_layout(
                    book,
                    ent,
                    mapping=opts.mapping,
                    locked=self._locked(actor, entity),
                    files_allowed=actor.is_system,
                    update_on=opts.update_on,
                )
                _Run(self, ent, book, layout, actor, opts, result, report_path, progress).run(
                    always_report
                )
        except (FileRefused, NotFound, PermissionDenied) as exc:
            result.refused = exc.text
        except BaseException:
            if job_id is not None:
                with contextlib.suppress(Exception):
                    self.jobs.finished(
                        job_id, state="failed", message=T("导入出错", "the import failed")
                    )
            raise
        if job_id is not None:
            self.jobs.finished(
                job_id,
                state=result.state,
                rows_read=result.rows_read,
                created=result.created,
                updated=result.updated,
                failed=result.failed,
                message=Text(zh=result.summary("zh"), en=result.summary("en")),
                errors=result.errors,
                errors_total=result.errors_total,
                warnings=result.warnings,
                report_path=result.report_path,
            )
        return result

    def _locked(self, actor: Actor, entity: str) -> frozenset[str]:
        access = self.records.access
        if access is None or actor.is_system:
            return frozenset()
        return access.hidden_fields(actor, entity) | access.readonly_fields(actor, entity)


class _Run:
    """One import: the chunk loop, the errors, the report."""

    def __init__(
        self,
        service: ImportService,
        entity: Entity,
        book: Workbook,
        layout: Layout,
        actor: Actor,
        options: ImportOptions,
        result: ImportResult,
        report_path: Path | None,
        progress: Progress | None,
    ) -> None:
        self.service = service
        self.records = service.records
        self.limits = service.limits
        self.entity = entity
        self.et: EntityTable = self.records.schema.entity(entity.name)
        self.book = book
        self.layout = layout
        self.actor = actor
        self.options = options
        self.result = result
        self.report_path = report_path
        self.progress = progress
        self.report: ReportWriter | None = None
        self.versions: dict[int, int] = {}
        self.sheet_label = book.kind == "xlsx"
        self.tables = [t for t in entity.fields if entity.fields[t].kind == "table"]
        self.mapped_tables = [
            t for t in self.tables if t in layout.inline or t in layout.child_sheets
        ]
        self.ref_paths = self._ref_paths()

    # -- the loop ------------------------------------------------------------------

    def run(self, always_report: bool) -> None:
        # A chunk allocates thousands of short-lived objects and hardly any cycles:
        # the automatic collector would rescan them again and again. It is paused
        # for the import and the young generations are collected after each chunk
        # instead, so memory stays flat however long the file is.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._run(always_report)
        finally:
            if collecting:
                gc.enable()

    def _run(self, always_report: bool) -> None:
        result = self.result
        reader = ItemReader(self.layout)
        size = self.limits.chunk_size
        with self.records.write_engine.connect() as conn:
            tx = conn.begin()
            try:
                if reader.columnar and self.options.update_on is None:
                    for rows in self.layout.main.blocks(size):
                        self._rows_chunk(conn, reader, rows)
                        self._chunk_done()
                else:
                    for items in chunked(reader, size):
                        self._chunk(conn, items)
                        self._chunk_done()
                for sheet, row in reader.unmatched():
                    self._unmatched(sheet, row)
                result.warnings = self._warnings()
                self._progress()
                commit = not self.options.dry_run and (self.options.partial or not result.failed)
                if commit:
                    tx.commit()
                    result.committed = True
                else:
                    tx.rollback()
                    if not self.options.dry_run:  # nothing of it stays
                        result.created = result.updated = 0
            except BaseException:
                if tx.is_active:
                    tx.rollback()
                raise
        if self.report is None and always_report and self.report_path is not None:
            self._report()
        if self.report is not None:
            self.report.close()
            result.report_path = self.report_path

    def _warnings(self) -> list[Text]:
        out = list(self.layout.warnings)
        sheets = [self.layout.main, *(cs.sheet for cs in self.layout.child_sheets.values())]
        for sheet in sheets:
            out.extend(w for w in sheet.warnings if w not in out)
        return out

    def _chunk_done(self) -> None:
        gc.collect(1)
        self._progress()

    def _progress(self) -> None:
        fraction = self.book.progress()
        if self.result.job_id is not None:
            self.service.jobs.progress(self.result.job_id, fraction, self.result.rows_read)
        if self.progress is not None:
            self.progress(fraction, self.result.rows_read)

    def _chunk(self, conn: Connection, items: list[Item]) -> None:
        self.result.rows_read += len(items)
        self._resolve_refs(conn, items)
        creates = items
        if self.options.update_on is not None:
            creates = []
            existing = self._existing(conn, items)
            for item in items:
                target = existing.get(id(item))
                if target is None:
                    creates.append(item)
                else:
                    self._update(conn, item, target)
        self._create(conn, creates)

    def _rows_chunk(self, conn: Connection, reader: ItemReader, rows: list[SourceRow]) -> None:
        """:meth:`_chunk` of a columnar layout (``reader.columnar``), without updates.

        The rows go to the record service as columns; an :class:`Item` is built
        only for a row that needs one to be reported (a reader problem, a ref
        that is not found, a row the record service refuses).
        """
        self.result.rows_read += len(rows)
        values_of = reader.columns(rows)
        columns = Columns(values_of, len(rows))
        items = {j: reader.item(row) for j, row in enumerate(rows) if row.problems}

        def item_of(j: int) -> Item:
            item = items.get(j)
            if item is None:
                item = items[j] = reader.item(rows[j])
            return item

        for name, _column, target in self.ref_paths:  # (no child refs in this layout)
            values = values_of.get(name)
            if values is not None:
                self._resolve_column(conn, values, name, target, item_of)

        def batch(keep: list[int]) -> Columns:
            if len(keep) == columns.count:
                return columns
            return Columns({n: [v[i] for i in keep] for n, v in columns.values.items()}, len(keep))

        self._write(conn, len(rows), batch, item_of, {j for j, it in items.items() if it.problems})

    # -- refs ----------------------------------------------------------------------

    def _ref_paths(self) -> list[tuple[str, str | None, str]]:
        """(field or table, child column or None, target entity) of every mapped ref."""
        out: list[tuple[str, str | None, str]] = []
        mapped = set(self.layout.field_columns)
        for name, f in self.entity.fields.items():
            if f.kind == "ref" and f.to and name in mapped:
                out.append((name, None, f.to))
            if f.kind == "table" and name in self.mapped_tables:
                _sheet, columns = self.layout.child_columns(name)
                for cname, cf in f.fields.items():
                    if cf.kind == "ref" and cf.to and cname in columns:
                        out.append((name, cname, cf.to))
        return out

    def _resolve_refs(self, conn: Connection, items: list[Item]) -> None:
        for name, column, target in self.ref_paths:
            if column is None:
                self._resolve_field(conn, items, name, target)
                continue
            wanted: set[str] = set()
            for item in items:
                if column is None:
                    if name in item.data:
                        wanted.add(_text(item.data[name]))
                else:
                    for child in item.children.get(name, ()):
                        if column in child.data:
                            wanted.add(_text(child.data[column]))
            wanted.discard("")
            if not wanted:
                continue
            found = self._lookup(conn, target, wanted)
            for item in items:
                if column is None:
                    if name in item.data:
                        self._place(item, item.data, name, name, found, target, item.row, None)
                else:
                    for i, child in enumerate(item.children.get(name, ())):
                        if column in child.data:
                            key = f"{name}[{i}].{column}"
                            self._place(item, child.data, column, key, found, target, None, child)

    def _resolve_field(self, conn: Connection, items: list[Item], name: str, target: str) -> None:
        """:meth:`_resolve_refs` of a top-level ref field: each cell's text worked out once."""
        cells = [
            (item, v.strip() if type(v) is str else _text(v))
            for item in items
            if (v := item.data.get(name, _ABSENT)) is not _ABSENT
        ]
        wanted = {text for _item, text in cells}
        wanted.discard("")
        if not wanted:
            return
        found = self._lookup(conn, target, wanted)
        for item, text in cells:
            hit = found.get(text)
            if type(hit) is int:
                item.data[name] = hit
            else:
                self._place(item, item.data, name, name, found, target, item.row, None)

    def _resolve_column(
        self,
        conn: Connection,
        values: list[Any],
        name: str,
        target: str,
        item_of: Callable[[int], Item],
    ) -> None:
        """:meth:`_resolve_field` of a column (:meth:`_rows_chunk`), in place."""
        if set(map(type, values)) == {str}:  # no blank cell: stripped in C
            texts = list(map(str.strip, values))
        else:
            texts = [
                v if v is MISSING else (v.strip() if type(v) is str else _text(v)) for v in values
            ]
        wanted = set(texts)
        wanted.discard(MISSING)
        if not wanted:
            return
        found = self._lookup(conn, target, wanted)
        hits = list(map(found.get, texts))
        if set(map(type, hits)) == {int}:  # every cell names one record (the common case)
            values[:] = hits
            return
        for j, text in enumerate(texts):
            if text is MISSING:
                continue
            hit = found.get(text)
            if type(hit) is int:
                values[j] = hit
            else:
                item = item_of(j)
                self._place(item, item.data, name, name, found, target, item.row, None)
                values[j] = MISSING

    def _place(
        self,
        item: Item,
        data: dict[str, Any],
        name: str,
        key: str,
        found: Mapping[str, int | tuple[int, int]],
        target: str,
        row: SourceRow | None,
        child: ChildRow | None,
    ) -> None:
        text = _text(data[name])
        hit = found.get(text)
        if isinstance(hit, int):
            data[name] = hit
            return
        del data[name]
        label = self.records.blueprint.entities[target].label
        if hit is None:
            by = self._title_label(target)
            message = _per_language(MSG_REF_MISSING, entity=label, value=text, by=by)
        else:
            message = _per_language(
                MSG_REF_AMBIGUOUS, entity=label, value=text, count=hit[0], first=hit[1]
            )
        if child is not None:
            sheet, columns = self.layout.child_columns(key.split("[", 1)[0])
            col = columns.get(name)
            item.problems.append(Problem(sheet, child.row.number, col, key, message))
        else:
            col = self.layout.field_columns.get(name)
            number = row.number if row is not None else item.row.number
            item.problems.append(Problem(self.layout.main.name, number, col, key, message))

    def _title_column(self, target: str) -> tuple[sa.ColumnElement[Any] | None, bool, str | None]:
        """(column to match titles on, whether it holds normalised keys, field name)."""
        et = self.records.schema.entity(target)
        candidates = [et.entity.title_field] if et.entity.title_field else []
        candidates += [n for n, f in et.entity.fields.items() if f.unique]
        for name in candidates:
            if name is None or name not in et.columns:
                continue
            if name in et.unique_keys:
                return et.unique_keys[name], True, name
            f = et.entity.fields[name]
            if kind_of(f).storage_of(f) == "text":
                return et.columns[name], False, name
        return None, False, None

    def _title_label(self, target: str) -> Text:
        _col, _norm, name = self._title_column(target)
        if name is None:
            return T("编号", "id")
        return self.records.blueprint.entities[target].fields[name].label or Text.of(name)

    def _lookup(
        self, conn: Connection, target: str, wanted: set[str]
    ) -> dict[str, int | tuple[int, int]]:
        """``text -> id`` (or ``(count, first id)`` when ambiguous), one query."""
        et = self.records.schema.entity(target)
        col, normalised, _name = self._title_column(target)
        ids = {int(m.group(1)) for t in wanted if (m := _ID.match(t))}
        conditions: list[sa.ColumnElement[bool]] = []
        probes: dict[str, str] = {}
        if col is not None:
            probes = {t: normalise_unique(t) if normalised else t for t in wanted}
            conditions.append(col.in_(sorted(set(probes.values()))))
        if ids:
            conditions.append(et.table.c.id.in_(sorted(ids)))
        if not conditions:
            return {}
        title = col if col is not None else sa.null()
        stmt = sa.select(et.table.c.id, title).where(sa.or_(*conditions))
        access = self.records.access
        if access is not None and not self.actor.is_system:
            scope = access.read_scope(self.actor, et)
            if scope is not None:
                stmt = stmt.where(scope)
        by_title: dict[str, list[int]] = defaultdict(list)
        by_id: set[int] = set()
        for rid, value in conn.execute(stmt):
            by_id.add(int(rid))
            if value is not None:
                by_title[str(value)].append(int(rid))
        out: dict[str, int | tuple[int, int]] = {}
        for text in wanted:
            matches = by_title.get(probes[text], []) if probes else []
            if len(matches) == 1:
                out[text] = matches[0]
            elif len(matches) > 1:
                out[text] = (len(matches), min(matches))
            elif (m := _ID.match(text)) and int(m.group(1)) in by_id:
                out[text] = int(m.group(1))
        return out

    # -- updates -------------------------------------------------------------------

    def _existing(self, conn: Connection, items: list[Item]) -> dict[int, tuple[int, int]]:
        """``id(item) -> (record id, version)`` of the items whose key is already stored."""
        key = self.options.update_on
        assert key is not None
        f = self.entity.fields[key]
        kind = kind_of(f)
        et = self.et
        normalised = key in et.unique_keys
        col = et.unique_keys[key] if normalised else et.columns[key]
        probes: dict[int, Any] = {}
        for item in items:
            raw = item.key
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                value = kind.coerce(f, raw)
            except FieldValueError:
                continue  # the record service reports it (or it is an autonumber: no match)
            if value is None:
                continue
            probes[id(item)] = normalise_unique(value) if normalised else kind.to_storage(f, value)
        if not probes:
            return {}
        found: dict[Any, list[tuple[int, int]]] = defaultdict(list)
        stmt = sa.select(et.table.c.id, et.table.c.version, col).where(
            col.in_(sorted({p for p in probes.values()}, key=str))
        )
        for rid, version, value in conn.execute(stmt):
            found[value].append((int(rid), int(version)))
        out: dict[int, tuple[int, int]] = {}
        index = self.layout.key_index
        for item in items:
            probe = probes.get(id(item))
            if probe is None:
                continue
            hits = found.get(probe, [])
            if len(hits) == 1:
                out[id(item)] = hits[0]
            elif len(hits) > 1:
                message = _per_language(
                    MSG_KEY_AMBIGUOUS, count=len(hits), field=f.label, value=_text(item.key)
                )
                item.problems.append(
                    Problem(self.layout.main.name, item.row.number, index, key, message)
                )
        return out

    def _update(self, conn: Connection, item: Item, target: tuple[int, int]) -> None:
        if item.problems:
            self._fail(item, {})
            return
        record_id, version = target
        version = self.versions.get(record_id, version)
        try:
            record = self.records.update(
                self.entity.name,
                record_id,
                self._payload(item, update=True),
                version=version,
                actor=self.actor,
                via="import",
                conn=conn,
            )
        except RecordInvalid as exc:
            self._fail(item, exc.errors)
            return
        except Conflict as exc:
            self._fail(item, {"_record": [exc.text]})
            return
        except (NotFound, PermissionDenied):
            self._fail(item, {"_record": [MSG_MAY_NOT_UPDATE]})
            return
        self.versions[record_id] = record.version
        self.result.updated += 1

    # -- creates -------------------------------------------------------------------

    def _payload(self, item: Item, *, update: bool = False) -> dict[str, Any]:
        owner = item.owner
        if not update and owner is None and not self.mapped_tables:
            return item.data  # nothing to add: the record service does not change its input
        data = dict(item.data)
        if update:
            problem_keys = {p.key for p in item.problems}
            for name in item.blanks:
                if name not in problem_keys:
                    data[name] = None
        if owner is not None and not (isinstance(owner, str) and not owner.strip()):
            data["owner"] = owner if isinstance(owner, str) else str(owner)
        for table in self.mapped_tables:
            data[table] = [child.data for child in item.children.get(table, ())]
        return data

    def _create(self, conn: Connection, items: list[Item]) -> None:
        self._write(
            conn,
            len(items),
            lambda keep: [self._payload(items[i]) for i in keep],
            items.__getitem__,
            {i for i, item in enumerate(items) if item.problems},
        )

    def _write(
        self,
        conn: Connection,
        count: int,
        batch: Callable[[list[int]], list[dict[str, Any]] | Columns],
        item_of: Callable[[int], Item],
        flagged: set[int],
    ) -> None:
        """Create a chunk's records ``0 .. count - 1`` under a savepoint.

        ``batch(positions)``: the record service's input for those records;
        ``item_of(position)``: the item to report a failure on; ``flagged``: the
        positions already known bad (they are checked, reported and left out).
        A try with bad records is rolled back and made again without them.
        """
        pending = list(range(count))
        for _attempt in range(MAX_RETRIES):
            if not pending:
                return
            rows = batch(pending)
            mapped_bad = {k for k, i in enumerate(pending) if i in flagged}
            batch_errors: Mapping[int, Mapping[str, list[Text]]] = {}
            savepoint = conn.begin_nested()
            try:
                ids = self.records.create_many(
                    self.entity.name,
                    rows,
                    actor=self.actor,
                    via="import",
                    conn=conn,
                    source=self.result.file_name,
                )
            except BatchInvalid as exc:
                savepoint.rollback()
                batch_errors = exc.rows
            except RecordInvalid as exc:  # a constraint a concurrent writer won
                savepoint.rollback()
                for i in pending:
                    self._fail(item_of(i), exc.errors)
                return
            else:
                if not mapped_bad:
                    savepoint.commit()
                    self.result.created += len(ids)
                    return
                savepoint.rollback()
            failed = mapped_bad | set(batch_errors)
            for k in sorted(failed):
                self._fail(item_of(pending[k]), batch_errors.get(k, {}))
            pending = [i for k, i in enumerate(pending) if k not in failed]
        for i in pending:
            self._fail(item_of(i), {"_record": [MSG_GAVE_UP]})

    # -- errors and the report -------------------------------------------------------

    def _fail(self, item: Item, errors: Mapping[str, Iterable[Text]]) -> None:
        result = self.result
        result.failed += 1
        problem_keys = {p.key for p in item.problems}
        places: list[tuple[str, SourceRow, int | None, str, Text]] = []
        rows = {(self.layout.main.name, r.number): r for r in item.rows}
        for child_rows in item.children.values():
            for child in child_rows:
                rows.setdefault((child.sheet, child.row.number), child.row)
        for p in item.problems:
            source = rows.get((p.sheet, p.row), item.row)
            places.append((p.sheet, source, p.column, p.key, p.message))
        for key, messages in errors.items():
            if key in problem_keys or key.split("[", 1)[0].split(".", 1)[0] in problem_keys:
                continue
            sheet, source, column = self._locate(item, key)
            for message in messages:
                places.append((sheet, source, column, key, message))
        by_row: dict[tuple[str, int], tuple[SourceRow, list[str], set[int]]] = {}
        lang = self.options.lang
        for sheet, source, column, key, message in places:
            header = self._header(sheet, column, key)
            self._error(
                RowError(
                    row=source.number,
                    column=header,
                    value=shown_value(source.cells[column]) if column is not None else None,
                    message=message,
                    sheet=sheet if self.sheet_label else None,
                    field=key,
                )
            )
            entry = by_row.setdefault((sheet, source.number), (source, [], set()))
            entry[1].append(f"{header}: {message.get(lang)}" if header else message.get(lang))
            if column is not None:
                entry[2].add(column)
        if self.report_path is None:
            return
        report = self._report()
        main = self.layout.main.name
        for row in item.rows:
            _source, texts, bad = by_row.pop((main, row.number), (row, [], set()))
            report.add(main, row, texts, bad)
        for (sheet, _number), (source, texts, bad) in sorted(
            by_row.items(), key=lambda kv: (kv[0][0], kv[0][1])
        ):
            report.add(sheet, source, texts, bad)

    def _locate(self, item: Item, key: str) -> tuple[str, SourceRow, int | None]:
        main = self.layout.main.name
        m = _CHILD_KEY.match(key)
        if m is not None:
            table, index, column = m.group(1), int(m.group(2)), m.group(3)
            children = item.children.get(table, [])
            if index < len(children):
                child = children[index]
                _sheet, columns = self.layout.child_columns(table)
                return child.sheet, child.row, columns.get(column) if column else None
            return main, item.row, None
        return main, item.row, self.layout.field_columns.get(key)

    def _header(self, sheet: str, column: int | None, key: str) -> str:
        if column is not None:
            if sheet == self.layout.main.name:
                return self.layout.main.header[column]
            for cs in self.layout.child_sheets.values():
                if cs.sheet.name == sheet:
                    return cs.sheet.header[column]
        if key == "_record":
            return ""
        name = key.split("[", 1)[0]
        f = self.entity.fields.get(name)
        lang = self.options.lang
        if f is None:
            return key if key != "owner" else ("负责人" if lang == "zh" else "Owner")
        m = _CHILD_KEY.match(key)
        if m is not None and m.group(3) and m.group(3) in f.fields:
            child = f.fields[m.group(3)]
            return f"{f.label.get(lang) or name}.{child.label.get(lang) or m.group(3)}"
        return f.label.get(lang) or name

    def _error(self, error: RowError) -> None:
        result = self.result
        result.errors_total += 1
        if len(result.errors) < self.limits.max_errors:
            result.errors.append(error)

    def _report(self) -> ReportWriter:
        if self.report is None:
            assert self.report_path is not None
            sheets = {self.layout.main.name: list(self.layout.main.header)}
            for cs in self.layout.child_sheets.values():
                sheets[cs.sheet.name] = list(cs.sheet.header)
            self.report = ReportWriter(
                self.report_path, sheets, self.options.lang, self.limits.max_errors
            )
        return self.report

    def _unmatched(self, sheet: str, row: SourceRow) -> None:
        cs = next(c for c in self.layout.child_sheets.values() if c.sheet.name == sheet)
        key = _text(row.cells[cs.key_index])
        message = _per_language(MSG_CHILD_UNMATCHED, key=key) if key else MSG_CHILD_NO_KEY
        self.result.failed += 1
        header = cs.sheet.header[cs.key_index]
        self._error(
            RowError(
                row=row.number,
                column=header,
                value=shown_value(row.cells[cs.key_index]),
                message=message,
                sheet=sheet,
                field=cs.table,
            )
        )
        if self.report_path is not None:
            self._report().add(
                sheet, row, [f"{header}: {message.get(self.options.lang)}"], {cs.key_index}
            )


#: A cell not in a record's data (None is a value there: an XLSX cell's blank).
_ABSENT = object()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
