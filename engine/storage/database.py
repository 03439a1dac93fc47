"""Connecting to the database: SQLite by default, PostgreSQL for teams.

SQLite gets WAL mode (readers never block the writer), foreign keys on, a busy
timeout so concurrent writers wait instead of failing, and ``BEGIN IMMEDIATE``
for write transactions so two writers never deadlock upgrading a read lock.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import SettingInvalid
from engine.i18n import T

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Execution option marking a connection whose transaction will write.
WRITE_OPTION = "formflow_write"


def writer(engine: Engine) -> Engine:
    """The same engine, marked so its transactions take the write lock at BEGIN."""
    return engine.execution_options(**{WRITE_OPTION: True})


def default_url(blueprint_path: str | Path) -> str:
    """``sqlite:///<folder>/<id or folder name>.db`` beside the blueprint."""
    path = Path(blueprint_path).resolve()
    folder = path if path.is_dir() else path.parent
    name = path.name if path.is_dir() else path.stem
    return f"sqlite:///{folder / (name + '.db')}"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as psycopg 3 URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_default(value: Any) -> Any:
    """JSON for values the stdlib encoder does not know (Decimal, date, datetime)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


#: ``json.dumps(value, default=_json_default, ensure_ascii=False)`` builds this very
#: encoder on every call; one built once writes the same text.
_encode = json.JSONEncoder(default=_json_default, ensure_ascii=False).encode


def json_dumps(value: Any) -> str:
    """The JSON serializer of every engine: exact decimals, ISO dates, readable Chinese."""
    return _encode(value)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout: int | None = None,
    pool_recycle: int | None = None,
    echo: bool = False,
) -> Engine:
    """An engine configured for Formflow's transaction patterns.

    The pool options apply to PostgreSQL (see docs/configuration.md for sizing them
    against ``max_connections``); SQLite keeps SQLAlchemy's default pool.
    """
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine, in_memory=":memory:" in url or url.rstrip("/") == "sqlite:")
        return engine
    for name, value in (
        ("pool_size", pool_size),
        ("max_overflow", max_overflow),
        ("pool_timeout", pool_timeout),
        ("pool_recycle", pool_recycle),
    ):
        if value is not None:
            kwargs[name] = value
    kwargs["pool_pre_ping"] = True
    try:
        return sa.create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        # The PostgreSQL driver is an extra (``formflow[postgres]``): say how to add it
        # instead of failing with an internal error.
        raise SettingInvalid(
            T(
                f"数据库驱动未安装（{exc.name}）：{url.split(':', 1)[0]} 需要 "
                "`pip install 'formflow[postgres]'`（源码目录中：`pip install -e '.[postgres]'`）",
                f"the database driver is not installed ({exc.name}): "
                f"{url.split(':', 1)[0]} needs `pip install 'formflow[postgres]'` "
                "(in a source checkout: `pip install -e '.[postgres]'`)",
            )
        ) from exc


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN IMMEDIATE works.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writing transaction takes the write lock up front, so writers queue on
        # busy_timeout instead of failing with "database is locked" when a read lock
        # cannot be upgraded. Readers use a plain BEGIN and never wait (WAL).
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
