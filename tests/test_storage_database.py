"""engine.storage.database: engines for SQLite and PostgreSQL, and what a missing driver says."""

from __future__ import annotations

import sys

import pytest

from engine.cli import main
from engine.errors import SettingInvalid
from engine.storage.database import create_engine, is_sqlite


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert is_sqlite(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_a_missing_postgresql_driver_says_how_to_install_it(monkeypatch) -> None:
    # None in sys.modules makes ``import psycopg`` raise ModuleNotFoundError, as on a
    # machine where only ``pip install formflow`` (without the postgres extra) ran.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(SettingInvalid) as caught:
        create_engine("postgresql://postgres@127.0.0.1:5432/crm")
    assert "pip install 'formflow[postgres]'" in caught.value.message("en")
    assert "数据库驱动未安装" in caught.value.message("zh")


def test_the_cli_reports_a_missing_driver_without_an_internal_error(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(SystemExit) as exited:
        main(["migrate", "blueprints/crm", "--db", "postgresql://postgres@127.0.0.1/crm"])
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert "formflow[postgres]" in err
    assert "ModuleNotFoundError" not in err
