"""A throwaway database for each test case, built the way ``formflow migrate`` builds one.

By default a SQLite file in a temporary folder (deleted afterwards); with a
PostgreSQL URL, a schema of its own (``ff_test_<random>``) on that database,
used through ``search_path`` and dropped afterwards, so cases never see each
other's rows and the database's own tables are never touched.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.model import Blueprint
from engine.storage.database import create_engine, normalise_url
from engine.storage.migrate import initialise
from engine.storage.schema import Schema

__all__ = ["Databases"]


class Databases:
    """Makes empty databases for one blueprint: ``with dbs.fresh() as engine: ...``."""

    def __init__(self, blueprint: Blueprint, schema: Schema, url: str | None = None) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.url = normalise_url(url) if url else None
        if self.url is not None and not self.url.startswith(("postgresql", "sqlite")):
            raise ValueError(f"unsupported database URL: {url}")

    @property
    def kind(self) -> str:
        return "postgresql" if self.url and self.url.startswith("postgresql") else "sqlite"

    @contextmanager
    def fresh(self) -> Iterator[Engine]:
        """An empty, initialised database that is gone once the block ends."""
        if self.kind == "postgresql":
            assert self.url is not None
            with self._postgres_schema(self.url) as engine:
                yield engine
            return
        with tempfile.TemporaryDirectory(prefix="formflow-test-") as folder:
            engine = create_engine(f"sqlite:///{Path(folder) / 'case.db'}")
            try:
                initialise(engine, self.blueprint, self.schema)
                yield engine
            finally:
                engine.dispose()

    @contextmanager
    def _postgres_schema(self, url: str) -> Iterator[Engine]:
        name = f"ff_test_{uuid.uuid4().hex[:16]}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            engine = create_engine(url)

            @sa.event.listens_for(engine, "connect")
            def _search_path(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f'SET search_path TO "{name}"')
                cur.close()
                dbapi_conn.commit()

            try:
                initialise(engine, self.blueprint, self.schema)
                yield engine
            finally:
                engine.dispose()
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        finally:
            admin.dispose()
