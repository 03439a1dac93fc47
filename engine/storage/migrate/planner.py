"""Planning: the difference between the database and the blueprint, as changes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.fields import FieldValueError, kind_of
from engine.i18n import T, Text
from engine.model import Blueprint, Field
from engine.storage.migrate.meta import (
    _BIG_MAX,
    _BIGINT_DIGITS,
    ENTITY_PREFIX,
    META_DIGEST,
    META_NAMES,
    META_SCHEMA,
    blueprint_digest,
    schema_digest,
)
from engine.storage.migrate.results import Change, Plan
from engine.storage.migrate.shapes import (
    _Fk,
    _is_formflow_table,
    _reflect,
    _Shape,
    _Target,
    _target_shape,
    _targets,
)
from engine.storage.migrate.signatures import _compare_types, _Sig, _sig, _TypeChange
from engine.storage.migrate.state import _read_meta
from engine.storage.migrate.wording import _appear, _be, _have, _match, _n, _was
from engine.storage.schema import (
    Schema,
    normalise_unique,
)

# --------------------------------------------------------------------------- planning


@dataclass
class _Convert:
    column: str  # final name
    old: _Sig
    new: _Sig
    new_type: sa.types.TypeEngine[Any]
    foreign_keys: tuple[str, ...] = ()  # tables a converted value must exist in


@dataclass
class _SqlAlter:
    column: str  # final name
    old: _Sig
    new: _Sig
    old_type: sa.types.TypeEngine[Any]
    new_type: sa.types.TypeEngine[Any]


@dataclass
class _TableWork:
    """Changes to one existing table, in the terms the applier needs."""

    target: _Target
    live: _Shape
    renames: list[tuple[str, str]] = field(default_factory=list)  # (live, final)
    index_drops: list[str] = field(default_factory=list)
    index_adds: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)
    unique_drops: list[tuple[str, ...]] = field(default_factory=list)  # final column names
    unique_adds: list[tuple[str, ...]] = field(default_factory=list)
    fk_drops: list[_Fk] = field(default_factory=list)  # final column names
    fk_adds: list[_Fk] = field(default_factory=list)
    sql_alters: list[_SqlAlter] = field(default_factory=list)
    converts: list[_Convert] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)  # final names of columns dropped
    adds: list[sa.Column[Any]] = field(default_factory=list)
    clear_all: list[str] = field(default_factory=list)  # ref columns now pointing elsewhere
    clear_dangling: list[_Fk] = field(default_factory=list)  # new FKs on existing columns
    key_fills: list[tuple[str, str]] = field(default_factory=list)  # (key column, source column)
    default_fills: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.target.table.name

    def structural(self) -> bool:
        """Needs ALTERs SQLite can only do by recreating the table."""
        return bool(
            self.unique_drops
            or self.fk_drops
            or self.fk_adds
            or self.sql_alters
            or self.converts
            or self.drops
            or any(c.foreign_keys for c in self.adds)
        )


@dataclass
class _Work:
    """A plan with everything needed to apply it."""

    blueprint_digest: str
    meta: dict[str, str]
    state_current: bool
    changes: list[Change] = field(default_factory=list)
    table_renames: list[tuple[str, str]] = field(default_factory=list)
    creates: list[sa.Table] = field(default_factory=list)
    alters: list[_TableWork] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    backup_sources: set[str] = field(default_factory=set)
    notes: list[Text] = field(default_factory=list)

    def as_plan(self) -> Plan:
        return Plan(
            changes=tuple(self.changes),
            blueprint_digest=self.blueprint_digest,
            recorded_digest=self.meta.get(META_DIGEST),
            state_current=self.state_current,
        )

    def add(self, change: Change, *, source: str | None = None) -> None:
        self.changes.append(change)
        if change.data_loss and source is not None:
            self.backup_sources.add(source)


class _Planner:
    def __init__(self, conn: Connection, blueprint: Blueprint, schema: Schema) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.blueprint = blueprint
        self.schema = schema
        self.targets = _targets(blueprint, schema)
        live_names = [n for n in sa.inspect(conn).get_table_names() if _is_formflow_table(n)]
        self.live = _reflect(conn, live_names)
        self.meta = _read_meta(conn)
        try:
            self.names: dict[str, str] = json.loads(self.meta.get(META_NAMES, "{}"))
        except ValueError:
            self.names = {}

    # -- helpers --

    def _count(self, table: str, where: sa.ColumnElement[bool] | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(sa.table(table))
        if where is not None:
            query = query.where(where)
        return int(self.conn.execute(query).scalar_one())

    def _live_label(self, table: str, column: str | None = None) -> str:
        key = table if column is None else f"{table}.{column}"
        if key in self.names:
            return self.names[key]
        if column is not None:
            return column
        if table.startswith(ENTITY_PREFIX):
            return table[len(ENTITY_PREFIX) :]
        return table

    # -- the plan --

    def plan(self) -> _Work:
        digest = blueprint_digest(self.blueprint)
        state_current = self.meta.get(META_DIGEST) == digest and self.meta.get(
            META_SCHEMA
        ) == schema_digest(self.schema, self.dialect)
        work = _Work(blueprint_digest=digest, meta=self.meta, state_current=state_current)
        claimed: dict[str, str] = {}  # live table -> target table
        # blueprint order (each entity, then its table fields), system tables last;
        # creating follows the foreign keys (create_all orders the tables)
        order = [target.table for target in self.targets.values()]
        for table in order:
            target = self.targets[table.name]
            if table.name in self.live:
                claimed[table.name] = table.name
                continue
            for old in target.previous:
                if old in self.live and old not in self.targets and old not in claimed:
                    claimed[old] = table.name
                    work.table_renames.append((old, table.name))
                    self._rename_table_change(work, target, old)
                    break
            else:
                work.creates.append(table)
                work.changes.append(self._create_change(target))
        renamed = {old: new for old, new in work.table_renames}
        for table in order:
            target = self.targets[table.name]
            live_name = next((k for k, v in claimed.items() if v == table.name), None)
            if live_name is None:
                continue
            tw = self._compare_table(work, target, self.live[live_name], renamed)
            if tw is not None:
                work.alters.append(tw)
        dropped = [n for n in self.live if n not in claimed and n.startswith(ENTITY_PREFIX)]
        for name in self._drop_order(dropped):
            rows = self._count(name)
            label = self._live_label(name)
            if "__" in name[len(ENTITY_PREFIX) :] and "." in label:
                entity, _, tf = label.partition(".")
                detail = T(f"删除 {entity} 的子表 {tf}", f"remove table field '{tf}' of {entity}")
            else:
                detail = T(f"删除实体 {label} 及其记录", f"remove entity '{label}' and its records")
            work.drops.append(name)
            work.add(
                Change(
                    "drop_table",
                    name,
                    None,
                    detail,
                    True,
                    T(
                        f"其 {rows} 行数据将被删除",
                        f"{_n(rows, 'row')} {_be(rows)} deleted",
                    ),
                ),
                source=name,
            )
        return work

    def _drop_order(self, names: Sequence[str]) -> list[str]:
        """Tables that refer to others first, so no foreign key ever dangles."""
        left = sorted(names)
        order: list[str] = []
        while left:
            referenced = {
                fk.referred for n in left for fk in self.live[n].fks.values() if fk.referred != n
            }
            ready = [n for n in left if n not in referenced] or left[:1]  # a cycle: any
            order.extend(ready)
            left = [n for n in left if n not in ready]
        return order

    def _create_change(self, target: _Target) -> Change:
        name = target.table.name
        if target.kind == "entity":
            detail = T(f"新建实体 {target.owner}", f"create entity '{target.owner}'")
        elif target.kind == "child":
            entity, _, tf = target.owner.partition(".")
            detail = T(f"新建 {entity} 的子表 {tf}", f"create table field '{tf}' of {entity}")
        else:
            detail = T(f"新建系统表 {name}", f"create system table {name}")
        return Change("create_table", name, None, detail)

    def _rename_table_change(self, work: _Work, target: _Target, old: str) -> None:
        old_label = self._live_label(old)
        if target.kind == "child":
            entity, _, tf = target.owner.partition(".")
            old_tf = old_label.partition(".")[2] or old_label
            if old_tf == tf:  # its entity was renamed
                detail = T(
                    f"子表 {tf} 随实体改名为 {entity}（保留数据）",
                    f"table field '{tf}' follows its entity to '{entity}' (rows kept)",
                )
            else:
                detail = T(
                    f"将 {entity} 的子表 {old_tf} 改名为 {tf}（保留数据）",
                    f"rename table field '{old_tf}' of {entity} to '{tf}' (rows kept)",
                )
        else:
            detail = T(
                f"将实体 {old_label} 改名为 {target.owner}（保留记录）",
                f"rename entity '{old_label}' to '{target.owner}' (records kept)",
            )
        work.changes.append(Change("rename_table", target.table.name, None, detail))

    def _compare_table(
        self, work: _Work, target: _Target, live: _Shape, renamed: Mapping[str, str]
    ) -> _TableWork | None:
        table = target.table
        name = table.name
        system = target.kind == "system"
        want = _target_shape(table, self.dialect)
        tw = _TableWork(target=target, live=live)
        owner = target.owner
        rows: int | None = None

        def row_count() -> int:
            nonlocal rows
            if rows is None:
                rows = self._count(live.name)
            return rows

        # columns: same name, renamed_from, or new
        col_map: dict[str, str] = {}  # final -> live
        for col in table.columns:
            if col.name in live.columns:
                col_map[col.name] = col.name
                continue
            old = target.previous_columns.get(col.name)
            if (
                old
                and old in live.columns
                and old not in want.columns
                and old not in col_map.values()
            ):
                col_map[col.name] = old
                tw.renames.append((old, col.name))
                if col.name not in target.key_of:
                    field_name = target.field_name(col.name)
                    old_name = self._live_label(live.name, old)
                    work.changes.append(
                        Change(
                            "rename_column",
                            name,
                            col.name,
                            T(
                                f"将 {owner} 的字段 {old_name} 改名为 {field_name}（保留数据）",
                                f"rename field '{old_name}' of {owner} to '{field_name}' "
                                "(values kept)",
                            ),
                        )
                    )
        live_to_final = {v: k for k, v in col_map.items()}
        dropped_live = [c for c in live.columns if c not in live_to_final]
        if system:
            dropped_live = []

        # types
        converted: set[str] = set()
        for final, old_name in col_map.items():
            if system:
                break
            old_sig = _sig(live.columns[old_name], self.dialect)
            new_sig = _sig(table.c[final].type, self.dialect)
            change = _compare_types(old_sig, new_sig)
            if change is None:
                continue
            if change.mode == "python":
                converted.add(final)
                refs = tuple(
                    fk.target_fullname.rsplit(".", 1)[0] for fk in table.c[final].foreign_keys
                )
                tw.converts.append(_Convert(final, old_sig, new_sig, table.c[final].type, refs))
            else:
                tw.sql_alters.append(
                    _SqlAlter(final, old_sig, new_sig, live.columns[old_name], table.c[final].type)
                )
            reason: Text | None = None
            if change.loss:
                reason = self._loss_reason(live.name, old_name, old_sig, new_sig, change)
            field_name = target.field_name(final)
            work.add(
                Change(
                    "alter_type",
                    name,
                    final,
                    T(
                        f"将 {owner} 的字段 {field_name} 从 {old_sig} 改为 {new_sig}",
                        f"change field '{field_name}' of {owner} from {old_sig} to {new_sig}",
                    ),
                    change.loss,
                    reason,
                ),
                source=live.name,
            )

        # dropped columns (a unique key column goes with its field, or with "unique")
        for old_name in dropped_live:
            tw.drops.append(old_name)
            if old_name.endswith("__key") and old_name[: -len("__key")] in live.columns:
                field_col = old_name[: -len("__key")]
                if field_col in live_to_final:
                    field_name = target.field_name(live_to_final[field_col])
                    work.changes.append(
                        Change(
                            "drop_unique",
                            name,
                            old_name,
                            T(
                                f"{owner} 的字段 {field_name} 不再唯一",
                                f"field '{field_name}' of {owner} is no longer unique",
                            ),
                        )
                    )
                continue
            label = self._live_label(live.name, old_name)
            filled = self._count(live.name, sa.column(old_name).is_not(None))
            work.add(
                Change(
                    "drop_column",
                    name,
                    old_name,
                    T(f"从 {owner} 删除字段 {label}", f"remove field '{label}' from {owner}"),
                    True,
                    T(
                        f"有 {filled} 条记录填了该字段，这些值将被删除",
                        f"{_n(filled, 'record')} {_have(filled)} a value in it; "
                        "the values are deleted",
                    ),
                ),
                source=live.name,
            )
        # converted columns are dropped and added again: their indexes go with them
        gone_live = set(dropped_live) | {col_map[c] for c in converted}

        # new columns
        for col in table.columns:
            if col.name in col_map:
                continue
            tw.adds.append(_column_copy(col))
            if col.name in target.key_of:
                source = target.key_of[col.name]
                tw.key_fills.append((col.name, source))
                if source in col_map:
                    field_name = target.field_name(source)
                    uq_change = Change(
                        "add_unique",
                        name,
                        col.name,
                        T(
                            f"将 {owner} 的字段 {field_name} 设为唯一",
                            f"make field '{field_name}' of {owner} unique",
                        ),
                        blocker=self._duplicates(live.name, col_map[source], normalise=True),
                    )
                    work.changes.append(uq_change)
                continue
            fld = target.fields.get(col.name)
            label = target.field_name(col.name)
            detail = (
                T(f"为 {owner} 添加字段 {label}", f"add field '{label}' to {owner}")
                if not system
                else T(f"为 {name} 添加列 {col.name}", f"add column {col.name} to {name}")
            )
            loss, reason = False, None
            if fld is not None and fld.required and row_count() > 0:
                value, usable = _default_value(fld)
                if usable:
                    tw.default_fills.append((col.name, value))
                    detail = T(
                        f"为 {owner} 添加字段 {label}（现有 {row_count()} 条记录填入默认值）",
                        f"add field '{label}' to {owner} (the {row_count()} existing records "
                        "get its default)",
                    )
                elif fld.default_formula is not None:
                    detail = T(
                        f"为 {owner} 添加字段 {label}（默认公式只用于新记录，现有记录留空）",
                        f"add field '{label}' to {owner} (its default formula applies to new "
                        "records; existing ones stay empty)",
                    )
                else:
                    n = row_count()
                    loss = True
                    work.notes.append(
                        T(
                            f"{owner} 的 {n} 条现有记录在必填字段 {label} 中留空",
                            f"{_n(n, 'existing record')} of {owner} {_was(n)} left empty "
                            f"in required field '{label}'",
                        )
                    )
                    reason = T(
                        f"{owner} 已有 {n} 条记录，它们的必填字段 {label} 将没有值"
                        "（可为该字段设置默认值；若允许丢失数据，这些记录会留空）",
                        f"{owner} has {_n(n, 'record')} that would have no value "
                        f"in required field '{label}' (give it a default; when allowed, they "
                        "stay empty)",
                    )
            work.add(Change("add_column", name, col.name, detail, loss, reason), source=live.name)

        # indexes, by name (a renamed table or column gets its indexes renamed)
        def live_cols(cols: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(live_to_final.get(c, c) for c in cols)

        live_ix = {n: (live_cols(cols), u) for n, (cols, u) in live.indexes.items()}
        touched = {live_to_final.get(c, c) for c in gone_live}
        index_drops = [
            n
            for n, (cols, u) in live_ix.items()
            if n not in want.indexes or want.indexes[n] != (cols, u) or touched & set(cols)
        ]
        index_adds = [
            n for n, (cols, u) in want.indexes.items() if n not in live_ix or n in index_drops
        ]
        if system:
            index_drops = [n for n in index_drops if touched & set(live_ix[n][0])]
        tw.index_drops = index_drops
        tw.index_adds = [(n, *want.indexes[n]) for n in index_adds]
        dropped_defs = {live_ix[n] for n in index_drops}
        added_defs = {want.indexes[n] for n in index_adds}
        for ix in index_drops:
            cols, _u = live_ix[ix]
            if live_ix[ix] in added_defs or touched & set(cols):
                continue  # renamed along with its table or column
            label = ", ".join(target.field_name(c) for c in cols)
            work.changes.append(
                Change(
                    "drop_index",
                    name,
                    cols[0] if cols else None,
                    T(
                        f"删除 {owner} 上的索引 {ix}（{label}）",
                        f"remove index {ix} ({label}) of {owner}",
                    ),
                )
            )
        for ix in index_adds:
            cols = want.indexes[ix][0]
            if want.indexes[ix] in dropped_defs:
                continue
            label = ", ".join(target.field_name(c) for c in cols)
            work.changes.append(
                Change(
                    "add_index",
                    name,
                    cols[0] if cols else None,
                    T(f"为 {owner} 的 {label} 建索引", f"index {label} of {owner}"),
                )
            )

        # unique constraints, by columns
        live_uq = {
            live_cols(cols): uq for cols, uq in live.uniques.items() if not (set(cols) & gone_live)
        }
        for cols in live_uq:
            if cols not in want.uniques and not system:
                tw.unique_drops.append(cols)
                if not any(c in target.key_of for c in cols):
                    label = ", ".join(target.field_name(c) for c in cols)
                    work.changes.append(
                        Change(
                            "drop_unique",
                            name,
                            cols[0],
                            T(
                                f"{owner} 的字段 {label} 不再唯一",
                                f"field '{label}' of {owner} is no longer unique",
                            ),
                        )
                    )
        for cols in want.uniques:
            if cols in live_uq:
                continue
            tw.unique_adds.append(cols)
            existing = all(c in col_map for c in cols) and not (set(cols) & converted)
            if existing and not any(c in target.key_of for c in cols):
                label = ", ".join(target.field_name(c) for c in cols)
                work.changes.append(
                    Change(
                        "add_unique",
                        name,
                        cols[0],
                        T(
                            f"将 {owner} 的字段 {label} 设为唯一",
                            f"make field '{label}' of {owner} unique",
                        ),
                        blocker=self._duplicates(live.name, col_map[cols[0]], normalise=False)
                        if len(cols) == 1
                        else None,
                    )
                )

        # foreign keys, by column
        live_fk = {
            live_to_final[c]: fk
            for c, fk in live.fks.items()
            if c in live_to_final and c not in gone_live
        }
        for fcol, fk in live_fk.items():
            referred = renamed.get(fk.referred, fk.referred)
            wanted = want.fks.get(fcol)
            if system:
                continue
            if wanted is not None and (wanted.referred, wanted.ondelete) == (referred, fk.ondelete):
                continue
            tw.fk_drops.append(_Fk(fcol, referred, fk.ondelete, fk.name))
            label = target.field_name(fcol)
            if wanted is None:
                work.changes.append(
                    Change(
                        "drop_foreign_key",
                        name,
                        fcol,
                        T(
                            f"{owner} 的字段 {label} 不再引用 {self._live_label(referred)}",
                            f"field '{label}' of {owner} no longer refers to "
                            f"{self._live_label(referred)}",
                        ),
                    )
                )
            elif wanted.referred != referred:
                filled = self._count(live.name, sa.column(col_map[fcol]).is_not(None))
                tw.clear_all.append(fcol)
                tw.fk_adds.append(wanted)
                work.add(
                    Change(
                        "add_foreign_key",
                        name,
                        fcol,
                        T(
                            f"{owner} 的字段 {label} 改为引用 "
                            f"{self._entity_label(wanted.referred)}",
                            f"field '{label}' of {owner} now refers to "
                            f"{self._entity_label(wanted.referred)}",
                        ),
                        True,
                        T(
                            f"{filled} 个现有引用指向旧的实体，将被清空",
                            f"{_n(filled, 'existing reference')} to the old entity "
                            f"{_be(filled)} cleared",
                        ),
                    ),
                    source=live.name,
                )
            else:
                tw.fk_adds.append(wanted)
                work.changes.append(
                    Change(
                        "add_foreign_key",
                        name,
                        fcol,
                        T(
                            f"{owner} 的字段 {label} 删除时的处理改为 {wanted.ondelete}",
                            f"field '{label}' of {owner}: on delete {wanted.ondelete}",
                        ),
                    )
                )
        for fcol, wanted in want.fks.items():
            if system or fcol in live_fk or fcol not in col_map or fcol in converted:
                continue  # new and converted columns get their foreign key when added
            label = target.field_name(fcol)
            dangling = self._dangling(live.name, col_map[fcol], wanted.referred, renamed)
            tw.fk_adds.append(wanted)
            tw.clear_dangling.append(wanted)
            work.add(
                Change(
                    "add_foreign_key",
                    name,
                    fcol,
                    T(
                        f"{owner} 的字段 {label} 引用 {self._entity_label(wanted.referred)}",
                        f"field '{label}' of {owner} refers to "
                        f"{self._entity_label(wanted.referred)}",
                    ),
                    dangling > 0,
                    T(
                        f"{dangling} 个值找不到对应记录，将被清空",
                        f"{_n(dangling, 'value')} {_match(dangling)} no record and "
                        f"{_be(dangling)} cleared",
                    )
                    if dangling
                    else None,
                ),
                source=live.name,
            )
        busy = any(
            (
                tw.renames,
                tw.index_drops,
                tw.index_adds,
                tw.unique_drops,
                tw.unique_adds,
                tw.fk_drops,
                tw.fk_adds,
                tw.sql_alters,
                tw.converts,
                tw.drops,
                tw.adds,
            )
        )
        return tw if busy else None

    def _entity_label(self, table: str) -> str:
        for target in self.targets.values():
            if target.table.name == table:
                return target.owner
        return self._live_label(table)

    def _loss_reason(
        self, table: str, column: str, old: _Sig, new: _Sig, change: _TypeChange
    ) -> Text | None:
        col: sa.ColumnClause[Any] = sa.column(column)
        if change.mode == "python":
            n = self._count(table, col.is_not(None))
            base = change.why or Text()
            return T(
                f"{n} 个现有值需要转换：{base.zh}",
                f"{_n(n, 'existing value')} {_be(n)} converted: {base.en}",
            )
        n = self._count(table, _lossy_where(col, old, new))
        if n == 0:
            return T(
                f"现有数据不受影响（{(change.why or Text()).zh}）",
                f"no existing value is affected ({(change.why or Text()).en})",
            )
        why = change.why or Text()
        return T(
            f"{n} 个现有值受影响：{why.zh}",
            f"{_n(n, 'existing value')} affected: {why.en}",
        )

    def _duplicates(self, table: str, column: str, *, normalise: bool) -> Text | None:
        """Values that appear more than once (would break a new unique constraint)."""
        values: list[Any] = list(
            self.conn.execute(
                sa.select(sa.column(column))
                .select_from(sa.table(table))
                .where(sa.column(column).is_not(None))
            ).scalars()
        )
        seen: dict[Any, int] = {}
        for value in values:
            key = normalise_unique(value) if normalise else value
            seen[key] = seen.get(key, 0) + 1
        dupes = [k for k, n in seen.items() if n > 1]
        if not dupes:
            return None
        shown = ", ".join(repr(d) for d in sorted(dupes, key=str)[:5])
        return T(
            f"有 {len(dupes)} 个值重复（{shown}）；请先修正这些记录",
            f"{_n(len(dupes), 'value')} {_appear(len(dupes))} more than once "
            f"({shown}); fix those records first",
        )

    def _dangling(self, table: str, column: str, referred: str, renamed: Mapping[str, str]) -> int:
        source = next((old for old, new in renamed.items() if new == referred), referred)
        if source not in self.live:
            return self._count(table, sa.column(column).is_not(None))
        ids: sa.Select[Any] = sa.select(sa.column("id")).select_from(sa.table(source))
        return self._count(
            table, sa.and_(sa.column(column).is_not(None), sa.column(column).not_in(ids))
        )


def _column_copy(col: sa.Column[Any], *, foreign_keys: bool = True) -> sa.Column[Any]:
    """A detached copy of a target column for ADD COLUMN (no unique/index flags)."""
    fks = [
        sa.ForeignKey(fk.target_fullname, ondelete=fk.ondelete)
        for fk in (col.foreign_keys if foreign_keys else ())
    ]
    return sa.Column(col.name, col.type, *fks, nullable=True)


def _default_value(fld: Field) -> tuple[Any, bool]:
    """The field's plain default as stored, and whether there is one."""
    if fld.default is None:
        return None, False
    kind = kind_of(fld)
    try:
        value = kind.coerce(fld, fld.default)
    except FieldValueError:
        return None, False
    if value is None:
        return None, False
    return kind.to_storage(fld, value), True


def _lossy_where(col: sa.ColumnClause[Any], old: _Sig, new: _Sig) -> sa.ColumnElement[bool]:
    """Rows whose value does not fit ``new`` as it is (for counting and fixing)."""
    if new.family == "text":
        assert new.length is not None
        return sa.func.length(col) > new.length
    parts: list[sa.ColumnElement[bool]] = []
    digits = new.int_digits
    if digits is not None:
        parts.append(sa.func.abs(col) >= _limit(digits))
    scale = new.scale or 0 if new.family == "decimal" else 0
    if old.family == "decimal":
        parts.append(col != sa.func.round(col, scale))
    return sa.and_(col.is_not(None), sa.or_(*parts)) if parts else sa.false()


def _limit(digits: int) -> sa.ColumnElement[Any]:
    if digits >= _BIGINT_DIGITS:
        return sa.literal(_BIG_MAX, sa.BigInteger())
    return sa.literal(10**digits, sa.BigInteger())
