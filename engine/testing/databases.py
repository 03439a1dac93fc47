"""A throwaway database for each test case, built the way ``formflow migrate`` builds one.

By default each case gets a SQLite file in a temporary folder (deleted
afterwards). With a PostgreSQL URL the run gets a schema of its own
(``ff_test_<random>``) on that database, used through ``search_path``: it is
created and initialised once, emptied (every row deleted, identities
restarted; only ``ff_meta``, the record of the migration, stays; the audit
table's append-only trigger is off while it is emptied) before each case,
and dropped at the end, so cases never see each other's rows and the
database's own tables are never touched.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import FormflowError
from engine.i18n import T
from engine.model import Blueprint
from engine.storage.database import create_engine, normalise_url
from engine.storage.migrate import initialise
from engine.storage.schema import Schema

__all__ = ["Databases"]


class Databases:
    """Makes empty databases for one blueprint: ``with dbs.fresh() as engine: ...``.

    Use it as a context manager (or call :meth:`close`) so a PostgreSQL
    schema is dropped at the end of the run.
    """

    def __init__(self, blueprint: Blueprint, schema: Schema, url: str | None = None) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.url = normalise_url(url) if url else None
        if self.url is not None and not self.url.startswith("postgresql"):
            raise FormflowError(
                T(
                    "--db 应为 PostgreSQL 地址；不写时用例在临时 SQLite 文件中运行",
                    "--db takes a PostgreSQL URL; without it the cases run on temporary "
                    "SQLite files",
                )
            )
        self._name: str | None = None
        self._engine: Engine | None = None
        self._admin: Engine | None = None
        self._triggers: list[str] | None = None

    @property
    def kind(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def __enter__(self) -> Databases:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def fresh(self) -> Iterator[Engine]:
        """An empty, initialised database for one case."""
        if self.url is not None:
            yield self._emptied_postgres(self.url)
            return
        with tempfile.TemporaryDirectory(prefix="formflow-test-") as folder:
            engine = create_engine(f"sqlite:///{Path(folder) / 'case.db'}")
            try:
                initialise(engine, self.blueprint, self.schema)
                yield engine
            finally:
                engine.dispose()

    def _emptied_postgres(self, url: str) -> Engine:
        if self._engine is None:
            name = f"ff_test_{uuid.uuid4().hex[:16]}"
            self._admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            self._name = name
            engine = create_engine(url)

            @sa.event.listens_for(engine, "connect")
            def _search_path(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f'SET search_path TO "{name}"')
                cur.close()
                dbapi_conn.commit()

            self._engine = engine
            initialise(engine, self.blueprint, self.schema)
            return engine
        tables = [t for t in self.schema.metadata.sorted_tables if t is not self.schema.meta]
        with self._engine.begin() as conn:
            guarded = self._guarded(conn)
            # The audit table refuses deletes (an append-only trigger): in this throwaway
            # schema, owned by the run, its trigger is off while it is emptied.
            for name in guarded:
                conn.execute(sa.text(f'ALTER TABLE "{name}" DISABLE TRIGGER USER'))
            for table in reversed(tables):  # children before parents
                conn.execute(table.delete())
            for name in guarded:
                conn.execute(sa.text(f'ALTER TABLE "{name}" ENABLE TRIGGER USER'))
            for table in tables:  # ids start at 1 again, as in a new database
                if "id" in table.c and table.c.id.autoincrement is not False:
                    conn.execute(
                        sa.text(
                            "SELECT setval(pg_get_serial_sequence(:t, 'id'), 1, false) "
                            "WHERE pg_get_serial_sequence(:t, 'id') IS NOT NULL"
                        ),
                        {"t": f'"{table.name}"'},
                    )
        return self._engine

    def _guarded(self, conn: sa.Connection) -> list[str]:
        """Tables of this schema with triggers of their own (the append-only audit)."""
        if self._triggers is None:
            rows = conn.execute(
                sa.text(
                    "SELECT DISTINCT c.relname FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :schema AND NOT t.tgisinternal"
                ),
                {"schema": self._name},
            )
            self._triggers = sorted(r[0] for r in rows)
        return self._triggers

    def close(self) -> None:
        """Drop the PostgreSQL schema of this run (nothing to do for SQLite)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._admin is not None:
            if self._name is not None:
                with self._admin.connect() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self._name}" CASCADE'))
            self._admin.dispose()
            self._admin = None
            self._name = None
