"""Shared fixtures: real databases, never mocks.

``pg_url`` creates a throwaway PostgreSQL database on the server at
127.0.0.1:5432 (user postgres, trust auth) for the test session and drops it
afterwards. When the server is unreachable the PostgreSQL tests skip with the
reason, except under CI (``FORMFLOW_REQUIRE_SERVICES=1``), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get(
    "FORMFLOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _missing_service(reason: str) -> None:
    if os.environ.get("FORMFLOW_REQUIRE_SERVICES"):
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database that lives for this test session."""
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
        _missing_service("sqlalchemy is not installed")
        raise
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing_service("psycopg is not installed (pip install -e '.[test]')")
    name = f"formflow_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _missing_service(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc.orig}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset_postgres(url: str) -> None:
    """Empty a throwaway PostgreSQL database between tests (drop every table)."""
    import sqlalchemy as sa

    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """An empty database: a SQLite file, then the throwaway PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/formflow.db"
    url: str = request.getfixturevalue("pg_url")
    reset_postgres(url)
    return url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat the counts the reliability and IDOR tests record (no ``-s`` needed)."""
    lines = [
        value
        for kind in ("passed", "failed")
        for rep in terminalreporter.stats.get(kind, [])
        if getattr(rep, "when", "call") == "call"
        for key, value in getattr(rep, "user_properties", [])
        if key == "counts"
    ]
    if lines:
        terminalreporter.section("counts")
        for line in lines:
            terminalreporter.write_line(str(line))
