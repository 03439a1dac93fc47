"""What the database has (reflection) and what the blueprint wants (targets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from engine.model import Blueprint, Field
from engine.storage.migrate.meta import BACKUP_PREFIX, ENTITY_PREFIX, SYSTEM_PREFIX, _index_name
from engine.storage.schema import (
    Schema,
    sql_name,
    unique_key_column,
)

# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class _Fk:
    column: str
    referred: str
    ondelete: str
    name: str | None = None


@dataclass
class _Shape:
    """A table's columns, indexes (by name), unique constraints and foreign keys."""

    name: str
    columns: dict[str, sa.types.TypeEngine[Any]]
    indexes: dict[str, tuple[tuple[str, ...], bool]]
    uniques: dict[tuple[str, ...], str | None]
    fks: dict[str, _Fk]


def _ondelete(value: Any) -> str:
    text = str(value or "NO ACTION").upper()
    return text


def _target_shape(table: sa.Table, dialect: Dialect) -> _Shape:
    prep = dialect.identifier_preparer
    indexes = {
        _index_name(ix, prep): (tuple(c.name for c in ix.columns), bool(ix.unique))
        for ix in table.indexes
    }
    uniques: dict[tuple[str, ...], str | None] = {
        tuple(c.name for c in uc.columns): None
        for uc in table.constraints
        if isinstance(uc, sa.UniqueConstraint)
    }
    fks = {
        fk.parent.name: _Fk(
            fk.parent.name, fk.target_fullname.rsplit(".", 1)[0], _ondelete(fk.ondelete)
        )
        for fk in table.foreign_keys
    }
    return _Shape(table.name, {c.name: c.type for c in table.columns}, indexes, uniques, fks)


def _reflect(conn: Connection, names: Sequence[str]) -> dict[str, _Shape]:
    insp = sa.inspect(conn)
    out: dict[str, _Shape] = {}
    for name in names:
        columns = {c["name"]: c["type"] for c in insp.get_columns(name)}
        indexes: dict[str, tuple[tuple[str, ...], bool]] = {}
        for ix in insp.get_indexes(name):
            if ix.get("duplicates_constraint") or not ix.get("name"):
                continue
            cols = tuple(c for c in ix["column_names"] if c is not None)
            indexes[str(ix["name"])] = (cols, bool(ix["unique"]))
        uniques: dict[tuple[str, ...], str | None] = {
            tuple(uc["column_names"]): uc.get("name") for uc in insp.get_unique_constraints(name)
        }
        fks: dict[str, _Fk] = {}
        for fk in insp.get_foreign_keys(name):
            if len(fk["constrained_columns"]) != 1:
                continue
            col = fk["constrained_columns"][0]
            options = fk.get("options") or {}
            fks[col] = _Fk(
                col, fk["referred_table"], _ondelete(options.get("ondelete")), fk.get("name")
            )
        out[name] = _Shape(name, columns, indexes, uniques, fks)
    return out


def _is_formflow_table(name: str) -> bool:
    if name.startswith(BACKUP_PREFIX) or name.startswith("_alembic_tmp"):
        return False
    return name.startswith(ENTITY_PREFIX) or name.startswith(SYSTEM_PREFIX)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Target:
    """A table the blueprint wants, with what the planner needs to describe it."""

    table: sa.Table
    kind: str  # entity | child | system
    owner: str  # entity name, "entity.table_field", or the system table's name
    previous: tuple[str, ...]  # older table names (renamed_from), most likely first
    fields: Mapping[str, Field]  # column -> field
    key_of: Mapping[str, str]  # unique key column -> its field's column
    previous_columns: Mapping[str, str]  # column -> older column name

    def field_name(self, column: str) -> str:
        if column in self.fields:
            return self.fields[column].name
        if column in self.key_of:
            return self.field_name(self.key_of[column])
        return column


def _targets(blueprint: Blueprint, schema: Schema) -> dict[str, _Target]:
    out: dict[str, _Target] = {}
    for ename, et in schema.entities.items():
        entity = et.entity
        old_table = sql_name(entity.renamed_from, ENTITY_PREFIX) if entity.renamed_from else None
        fields = {col.name: entity.fields[f] for f, col in et.columns.items()}
        key_of = {key.name: et.columns[f].name for f, key in et.unique_keys.items()}
        prev: dict[str, str] = {}
        for f, col in et.columns.items():
            fld = entity.fields[f]
            if fld.renamed_from:
                prev[col.name] = sql_name(fld.renamed_from)
                if f in et.unique_keys:
                    prev[et.unique_keys[f].name] = unique_key_column(sql_name(fld.renamed_from))
        out[et.table.name] = _Target(
            et.table, "entity", ename, (old_table,) if old_table else (), fields, key_of, prev
        )
        parents = [et.table.name] + ([old_table] if old_table else [])
        for cname, child in et.children.items():
            tf = child.field
            names = [tf.name] + ([tf.renamed_from] if tf.renamed_from else [])
            previous = [sql_name(n, f"{p}__") for p in parents for n in names]
            previous = [p for p in dict.fromkeys(previous) if p != child.table.name]
            cfields = {col.name: tf.fields[f] for f, col in child.columns.items()}
            cprev = {
                col.name: sql_name(tf.fields[f].renamed_from or "")
                for f, col in child.columns.items()
                if tf.fields[f].renamed_from
            }
            out[child.table.name] = _Target(
                child.table, "child", f"{ename}.{cname}", tuple(previous), cfields, {}, cprev
            )
    system = sorted(
        (t for t in schema.metadata.tables.values() if t.name.startswith(SYSTEM_PREFIX)),
        key=lambda t: t.name,
    )
    for table in system:
        out[table.name] = _Target(table, "system", table.name, (), {}, {}, {})
    return out


def _display_names(blueprint: Blueprint, schema: Schema) -> dict[str, str]:
    """SQL name -> blueprint name, kept in ff_meta to describe later drops."""
    names: dict[str, str] = {}
    for target in _targets(blueprint, schema).values():
        if target.kind == "system":
            continue
        names[target.table.name] = target.owner
        for col, fld in target.fields.items():
            names[f"{target.table.name}.{col}"] = fld.name
    return names
