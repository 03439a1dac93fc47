"""``formflow backup`` / ``formflow restore``: back up, change, restore, compare every table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flow_support import actor, crm_app, new_contract, open_task, submit
from test_web_support import CRM

from engine.cli import main
from engine.records import SYSTEM
from engine.storage.backup import BackupFailed, backup, kind_of_file, restore
from engine.storage.database import create_engine
from engine.web.services import services


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, by table name."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            md = sa.MetaData()
            md.reflect(conn)
            return {
                name: sorted((tuple(r) for r in conn.execute(sa.select(table))), key=repr)
                for name, table in sorted(md.tables.items())
            }
    finally:
        engine.dispose()


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    made = crm_app(db_url)
    yield made
    with made.app_context():
        services().engine.dispose()


def _fill(app: Flask) -> list[int]:
    """Contracts with history and flows: one approved a step, one waiting, one draft."""
    first = new_contract(app, "li.lei")
    second = new_contract(app, "han.meimei", total="80000")
    third = new_contract(app, "chen.jing")
    submit(app, "contract", first, "li.lei")
    submit(app, "contract", second, "han.meimei")
    with app.app_context():
        svc = services()
        svc.flows.approve(
            open_task(app, "contract", first, "wang.fang"), actor=actor(app, "wang.fang")
        )
        version = svc.records.get("contract", third).version
        svc.records.update(
            "contract", third, {"subject": "改过的合同"}, version=version, actor=SYSTEM
        )
    return [first, second, third]


def _change(app: Flask, ids: list[int]) -> None:
    with app.app_context():
        svc = services()
        version = svc.records.get("contract", ids[2]).version
        svc.records.update(
            "contract", ids[2], {"subject": "备份之后又改"}, version=version, actor=SYSTEM
        )
        svc.records.delete("contract", ids[2], version=version + 1, actor=SYSTEM)
    new_contract(app, "li.lei")


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--lang", "en"], catch_exceptions=False)


def test_backup_change_restore_gives_back_every_row(
    app: Flask, db_url: str, tmp_path: Path
) -> None:
    ids = _fill(app)
    before = snapshot(db_url)
    assert before["ff_audit"] and before["ff_flow_runs"] and before["ff_flow_tasks"]
    out = tmp_path / "backups" / "crm.backup"
    done = _run("backup", str(CRM), str(out), "--db", db_url)
    assert done.exit_code == 0, done.output
    assert "backed up to" in done.output
    assert kind_of_file(out) == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    assert not [p for p in out.parent.iterdir() if p != out]  # no partial file left

    _change(app, ids)
    changed = snapshot(db_url)
    assert changed != before

    refused = _run("restore", str(CRM), str(out), "--db", db_url)
    assert refused.exit_code == 1
    assert "not empty" in refused.output and "--force" in refused.output
    assert snapshot(db_url) == changed

    restored = _run("restore", str(CRM), str(out), "--db", db_url, "--force")
    assert restored.exit_code == 0, restored.output
    assert "restored from" in restored.output
    assert snapshot(db_url) == before

    # The running app goes on: the restored record reads, new ids do not collide.
    with app.app_context():
        svc = services()
        assert svc.records.get("contract", ids[2]).values["subject"] == "改过的合同"
    newer = new_contract(app, "li.lei")
    assert newer > max(ids)


def test_restore_into_an_empty_database(app: Flask, db_url: str, tmp_path: Path) -> None:
    _fill(app)
    before = snapshot(db_url)
    out = backup(db_url, tmp_path / "crm.backup")
    if db_url.startswith("sqlite"):
        target = f"sqlite:///{tmp_path}/fresh/crm.db"
    else:
        target = db_url.rsplit("/", 1)[0] + "/" + db_url.rsplit("/", 1)[1] + "_restore"
        admin = sa.create_engine(
            db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{target.rsplit("/", 1)[1]}"')
    try:
        done = restore(target, out)
        assert done.schema_version is not None and done.tables == len(before)
        assert snapshot(target) == before
    finally:
        if not db_url.startswith("sqlite"):
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}" WITH (FORCE)'
                )
            admin.dispose()


def test_an_existing_backup_file_is_not_overwritten(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "keep.backup"
    out.write_bytes(b"yesterday")
    with pytest.raises(BackupFailed) as caught:
        backup(db_url, out)
    assert "already exists" in caught.value.message("en")
    assert out.read_bytes() == b"yesterday"


def test_a_backup_of_the_other_kind_or_no_backup_is_refused(tmp_path: Path, db_url: str) -> None:
    sqlite_backup = tmp_path / "a.db"
    import sqlite3

    sqlite3.connect(sqlite_backup).close()  # an empty file: not even a header
    (tmp_path / "b.db").write_bytes(b"SQLite format 3\x00" + bytes(100))
    wrong = (tmp_path / "b.db") if db_url.startswith("postgresql") else tmp_path / "c.dump"
    if not db_url.startswith("postgresql"):
        wrong.write_bytes(b"PGDMP" + bytes(100))
    with pytest.raises(BackupFailed) as caught:
        restore(db_url, wrong, force=True)
    assert "cannot be restored into" in caught.value.message("en")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello", encoding="utf-8")
    with pytest.raises(BackupFailed) as caught:
        restore(db_url, junk, force=True)
    assert "not a Formflow backup" in caught.value.message("en")


def test_missing_postgres_tools_are_named(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump on PATH
    with pytest.raises(BackupFailed) as caught:
        backup(pg_url, tmp_path / "x.backup")
    message = caught.value.message("en")
    assert "pg_dump is not installed" in message and "postgresql-client" in message
    assert "pg_dump" in caught.value.message("zh")
    assert not (tmp_path / "x.backup").exists()
    assert os.environ["PATH"] == str(tmp_path)


def test_a_sqlite_backup_while_the_app_writes_is_consistent(tmp_path: Path) -> None:
    import sqlite3
    import threading

    url = f"sqlite:///{tmp_path}/live.db"
    app = crm_app(url)
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        with app.app_context():
            svc = services()
            while not stop.is_set() and len(written) < 400:  # bounded
                written.append(
                    svc.records.create(
                        "customer",
                        {
                            "name": f"并发客户 {len(written)}",
                            "email": "buy@example.com",
                            "owner": "li.lei",
                        },
                        actor=SYSTEM,
                        via="system",
                    ).id
                )

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20 and writer.is_alive():
            writer.join(0.01)  # let the writer get going
        assert len(written) >= 20, "the writer stopped early"
        out = backup(url, tmp_path / "live.backup")
    finally:
        stop.set()
        writer.join()
    copy = sqlite3.connect(out)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        customers = copy.execute("SELECT count(*) FROM e_customer").fetchone()[0]
        created = copy.execute(
            "SELECT count(*) FROM ff_audit WHERE entity = 'customer' AND action = 'create'"
        ).fetchone()[0]
    finally:
        copy.close()
    assert 20 <= customers <= len(written)
    assert created == customers  # every record with its audit row, none without
    with app.app_context():
        services().engine.dispose()
