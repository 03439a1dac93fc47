"""Applying a plan with alembic's Operations (batch mode on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import BatchOperations, Operations
from sqlalchemy.engine import Connection

from engine.i18n import T, Text
from engine.storage.migrate.convert import _decode, _encode, _NoValue
from engine.storage.migrate.meta import BATCH_NAMING
from engine.storage.migrate.planner import (
    _column_copy,
    _Convert,
    _limit,
    _SqlAlter,
    _TableWork,
    _Work,
)
from engine.storage.migrate.shapes import _Fk, _ondelete, _reflect
from engine.storage.migrate.wording import _n, _was
from engine.storage.schema import (
    normalise_unique,
)

# --------------------------------------------------------------------------- applying


class _Applier:
    """Carries out a :class:`_Work` on a locked connection, in a fixed order.

    1. rename tables; 2. create tables; 3. change each existing table; 4. drop
    tables. For one table: rename columns, drop indexes, read values to
    convert, cut/round values for narrowed types, clear references to another
    entity, then the structural part (drop constraints, alter types, drop and
    add columns, add foreign keys: one batch "move and copy" on SQLite), then
    fill converted values, unique keys and defaults, then add unique constraints
    and indexes.
    """

    def __init__(self, conn: Connection, work: _Work) -> None:
        self.conn = conn
        self.work = work
        self.sqlite = conn.dialect.name == "sqlite"
        self.op = Operations(MigrationContext.configure(connection=conn))
        self.notes: list[Text] = []

    def run(self) -> list[Text]:
        for old, new in self.work.table_renames:
            self.op.rename_table(old, new)
        if self.work.creates:
            # create_all orders the new tables by their foreign keys (and breaks cycles)
            self.work.creates[0].metadata.create_all(self.conn, tables=self.work.creates)
        for tw in self.work.alters:
            self._alter(tw)
        for name in self.work.drops:
            self.op.drop_table(name)
        return [*self.work.notes, *self.notes]

    def _alter(self, tw: _TableWork) -> None:
        name = tw.name
        op = self.op
        for old, new in tw.renames:
            op.alter_column(name, old, new_column_name=new, existing_type=tw.live.columns[old])
        for index in tw.index_drops:
            op.drop_index(index, table_name=name)
        converted = {c.column: self._read_converted(name, c) for c in tw.converts}
        for alter in tw.sql_alters:
            self._fit_values(name, alter)
        for cleared in tw.clear_all:
            self.conn.execute(sa.update(sa.table(name, sa.column(cleared))).values({cleared: None}))
        for fk in tw.clear_dangling:
            ids: sa.Select[Any] = sa.select(sa.column("id")).select_from(sa.table(fk.referred))
            target = sa.table(name, sa.column(fk.column))
            self.conn.execute(
                sa.update(target)
                .where(target.c[fk.column].is_not(None), target.c[fk.column].not_in(ids))
                .values({fk.column: None})
            )
        if tw.structural():
            if self.sqlite:
                self._structural_sqlite(tw)
            else:
                self._structural_pg(tw)
        elif tw.adds:
            for col in tw.adds:
                op.add_column(name, col)
        for conv in tw.converts:
            self._write_converted(name, conv, converted[conv.column])
        for key, source in tw.key_fills:
            self._fill_keys(name, key, source)
        for col_name, value in tw.default_fills:
            column = tw.target.table.c[col_name]
            target = sa.table(name, sa.column(col_name, column.type))
            self.conn.execute(sa.update(target).values({col_name: value}))
        if tw.unique_adds:
            if self.sqlite:
                with self._batch(tw) as batch:
                    for cols in tw.unique_adds:
                        batch.create_unique_constraint(_uq_name(name, cols), list(cols))
            else:
                for cols in tw.unique_adds:
                    op.create_unique_constraint(None, name, list(cols))
        for index, cols, unique in tw.index_adds:
            op.create_index(index, name, list(cols), unique=unique)

    def _structural_pg(self, tw: _TableWork) -> None:
        name, op = tw.name, self.op
        for cols in tw.unique_drops:
            uq = next(n for c, n in tw.live.uniques.items() if _renamed(c, tw) == cols)
            op.drop_constraint(str(uq), name, type_="unique")
        for fk in tw.fk_drops:
            op.drop_constraint(str(fk.name), name, type_="foreignkey")
        for alter in tw.sql_alters:
            op.alter_column(name, alter.column, type_=alter.new_type, existing_type=alter.old_type)
        for dropped in tw.drops:
            op.drop_column(name, dropped)
        for conv in tw.converts:
            op.drop_column(name, conv.column)
        for col in tw.adds:
            op.add_column(name, col)
        for conv in tw.converts:
            op.add_column(name, _column_copy(tw.target.table.c[conv.column]))
        for fk in tw.fk_adds:
            op.create_foreign_key(
                None, name, fk.referred, [fk.column], ["id"], ondelete=fk.ondelete
            )

    @contextmanager
    def _batch(self, tw: _TableWork) -> Iterator[BatchOperations]:
        """SQLite "move and copy" of one table, keeping AUTOINCREMENT and its counter.

        Reflection does not see ``AUTOINCREMENT``; without it the new table would
        reuse the ids of deleted records, so the flag comes from the target table
        and the ``sqlite_sequence`` high-water mark is put back afterwards.
        """
        name = tw.name
        autoincrement = bool(tw.target.table.dialect_options["sqlite"].get("autoincrement"))
        seq: int | None = None
        if autoincrement and sa.inspect(self.conn).has_table("sqlite_sequence"):
            seq = self.conn.execute(
                sa.text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": name}
            ).scalar()
        with self.op.batch_alter_table(
            name,
            recreate="always",
            naming_convention=BATCH_NAMING,
            table_kwargs={"sqlite_autoincrement": True} if autoincrement else {},
        ) as batch:
            yield batch
        if seq is not None:
            updated = self.conn.execute(
                sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :name AND seq < :seq"),
                {"seq": seq, "name": name},
            ).rowcount
            exists = self.conn.execute(
                sa.text("SELECT 1 FROM sqlite_sequence WHERE name = :name"), {"name": name}
            ).first()
            if not updated and exists is None:
                self.conn.execute(
                    sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
                    {"name": name, "seq": seq},
                )

    def _structural_sqlite(self, tw: _TableWork) -> None:
        name = tw.name
        reflected = _reflect(self.conn, [name])[name]
        with self._batch(tw) as batch:
            for cols in tw.unique_drops:
                uq = reflected.uniques.get(cols)
                batch.drop_constraint(uq or _uq_name(name, cols), type_="unique")
            for fk in tw.fk_drops:
                live = reflected.fks[fk.column]
                batch.drop_constraint(
                    live.name or f"fk_{name}_{fk.column}_{live.referred}", type_="foreignkey"
                )
            for alter in tw.sql_alters:
                batch.alter_column(alter.column, type_=alter.new_type, existing_type=alter.old_type)
            for dropped in tw.drops:
                batch.drop_column(dropped)
            for conv in tw.converts:
                batch.drop_column(conv.column)
            # batch mode wants named constraints: new columns get their foreign
            # keys as separate, named constraints
            added = [*tw.adds, *(tw.target.table.c[conv.column] for conv in tw.converts)]
            new_fks: list[_Fk] = []
            for col in added:
                batch.add_column(_column_copy(col, foreign_keys=False))
                new_fks.extend(
                    _Fk(col.name, fk.target_fullname.rsplit(".", 1)[0], _ondelete(fk.ondelete))
                    for fk in col.foreign_keys
                )
            for fk in [*new_fks, *tw.fk_adds]:
                batch.create_foreign_key(
                    f"fk_{name}_{fk.column}_{fk.referred}",
                    fk.referred,
                    [fk.column],
                    ["id"],
                    ondelete=fk.ondelete,
                )

    def _fit_values(self, name: str, alter: _SqlAlter) -> None:
        """Cut or round values so the narrower type takes them as they are."""
        target = sa.table(name, sa.column(alter.column))
        col = target.c[alter.column]
        old, new = alter.old, alter.new
        if new.family == "text":
            if new.length is not None and (old.length is None or new.length < old.length):
                self.conn.execute(
                    sa.update(target)
                    .where(sa.func.length(col) > new.length)
                    .values({alter.column: sa.func.substr(col, 1, new.length)})
                )
            return
        digits = new.int_digits
        if digits is not None and (old.int_digits is None or digits < old.int_digits):
            self.conn.execute(
                sa.update(target)
                .where(sa.func.abs(col) >= _limit(digits))
                .values({alter.column: None})
            )
        if old.family == "decimal":
            scale = new.scale or 0 if new.family == "decimal" else 0
            if old.scale is None or scale < old.scale:
                self.conn.execute(
                    sa.update(target)
                    .where(col != sa.func.round(col, scale))
                    .values({alter.column: sa.func.round(col, scale)})
                )

    def _read_converted(self, name: str, conv: _Convert) -> list[tuple[Any, Any]]:
        rows: Sequence[Any] = self.conn.execute(
            sa.select(sa.column("id"), sa.column(conv.column))
            .select_from(sa.table(name))
            .where(sa.column(conv.column).is_not(None))
        ).all()
        out: list[tuple[Any, Any]] = []
        failed = 0
        for row_id, raw in rows:
            try:
                out.append((row_id, _encode(_decode(raw, conv.old), conv.new)))
            except (_NoValue, ValueError, TypeError, ArithmeticError):
                failed += 1
        if failed:
            self.notes.append(
                T(
                    f"{name}.{conv.column}：{failed} 个值无法转换为 {conv.new}，已清空",
                    f"{name}.{conv.column}: {_n(failed, 'value')} did not convert to "
                    f"{conv.new} and {_was(failed)} cleared",
                )
            )
        return out

    def _write_converted(self, name: str, conv: _Convert, values: list[tuple[Any, Any]]) -> None:
        for fk in conv.foreign_keys:
            ids: set[Any] = set(
                self.conn.execute(sa.select(sa.column("id")).select_from(sa.table(fk))).scalars()
            )
            kept = [(i, v) for i, v in values if v in ids]
            if len(kept) < len(values):
                n = len(values) - len(kept)
                self.notes.append(
                    T(
                        f"{name}.{conv.column}：{n} 个值找不到对应记录，已清空",
                        f"{name}.{conv.column}: {_n(n, 'value')} matched no record and "
                        f"{_was(n)} cleared",
                    )
                )
            values = kept
        if not values:
            return
        target = sa.table(name, sa.column("id"), sa.column(conv.column, conv.new_type))
        stmt = (
            sa.update(target)
            .where(target.c.id == sa.bindparam("_id"))
            .values({conv.column: sa.bindparam("_value", type_=conv.new_type)})
        )
        self.conn.execute(stmt, [{"_id": i, "_value": v} for i, v in values])

    def _fill_keys(self, name: str, key: str, source: str) -> None:
        rows: Sequence[Any] = self.conn.execute(
            sa.select(sa.column("id"), sa.column(source))
            .select_from(sa.table(name))
            .where(sa.column(source).is_not(None))
        ).all()
        if not rows:
            return
        target = sa.table(name, sa.column("id"), sa.column(key))
        stmt = (
            sa.update(target)
            .where(target.c.id == sa.bindparam("_id"))
            .values({key: sa.bindparam("_key")})
        )
        self.conn.execute(stmt, [{"_id": i, "_key": normalise_unique(v)} for i, v in rows])


def _renamed(cols: tuple[str, ...], tw: _TableWork) -> tuple[str, ...]:
    mapping = dict(tw.renames)
    return tuple(mapping.get(c, c) for c in cols)


def _uq_name(table: str, cols: tuple[str, ...]) -> str:
    return f"uq_{table}_{cols[0]}"
