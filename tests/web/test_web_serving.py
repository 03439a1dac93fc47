"""Many processes on one database: probes, request logs and ids, blueprint reloads."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from test_web_support import make_app, sign_in, text

from engine.loader import load
from engine.storage.database import create_engine
from engine.storage.migrate import apply_migration, plan_migration, stored_state
from engine.storage.schema import build_schema
from engine.web import create_app
from engine.web.serving import REQUEST_LOGGER

BLUEPRINT = """
formflow: 1
id: shop
title: {zh: 商店, en: Shop}
entities:
  thing:
    label: {zh: 物品, en: Thing}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true}
"""

WITH_COLOUR = (
    BLUEPRINT
    + """      colour: {type: text, label: {zh: 颜色, en: Colour Of Thing}}
"""
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "shop"
    out.mkdir()
    (out / "blueprint.yaml").write_text(BLUEPRINT, encoding="utf-8")
    return out


@pytest.fixture
def app(folder: Path, db_url: str) -> Iterator[Flask]:
    made = make_app(folder, db_url, [("admin", ["admin"])], FORMFLOW_RELOAD_SECONDS=0)
    yield made
    made.extensions["formflow"].engine.dispose()


def _migrate(folder: Path, db_url: str, source: str) -> int:
    (folder / "blueprint.yaml").write_text(source, encoding="utf-8")
    bp = load(folder)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    try:
        result = apply_migration(engine, bp, schema, plan_migration(engine, bp, schema))
        return result.schema_version
    finally:
        engine.dispose()


def test_healthz_needs_no_sign_in_and_no_database(folder: Path, tmp_path: Path) -> None:
    # A database that cannot be opened: the process is still alive, but not ready.
    missing = tmp_path / "no" / "such" / "folder" / "x.db"
    app = create_app(folder, f"sqlite:///{missing}", {"SECRET_KEY": "k"})
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "database unreachable" in ready.get_json()["reason"]


def test_readyz_is_ready_on_a_current_database(app: Flask, db_url: str) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready"
    engine = create_engine(db_url)
    try:
        assert body["schema_version"] == stored_state(engine).version
    finally:
        engine.dispose()


def test_readyz_refuses_a_database_without_schema(folder: Path, db_url: str) -> None:
    app = create_app(folder, db_url, {"SECRET_KEY": "k"})
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert "formflow migrate" in response.get_json()["reason"]
    finally:
        app.extensions["formflow"].engine.dispose()


def test_readyz_says_when_this_host_has_other_blueprint_files(
    app: Flask, folder: Path, db_url: str, tmp_path: Path
) -> None:
    # Another host migrates to a blueprint this host's files do not have.
    other = tmp_path / "other"
    other.mkdir()
    (other / "blueprint.yaml").write_text(WITH_COLOUR, encoding="utf-8")
    bp = load(other)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    try:
        apply_migration(engine, bp, schema, plan_migration(engine, bp, schema))
    finally:
        engine.dispose()
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "same blueprint files on every host" in response.get_json()["reason"]


def test_two_processes_pick_up_a_migrated_blueprint(app: Flask, folder: Path, db_url: str) -> None:
    second = create_app(
        folder,
        db_url,
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "FORMFLOW_RELOAD_SECONDS": 0,
        },
    )
    try:
        clients = [app.test_client(), second.test_client()]
        for client in clients:
            sign_in(client)
            page = client.get("/e/thing/new?lang=en")
            assert page.status_code == 200
            assert "Colour Of Thing" not in text(page)
        version = _migrate(folder, db_url, WITH_COLOUR)
        for client in clients:
            page = client.get("/e/thing/new?lang=en")
            assert "Colour Of Thing" in text(page)
            created = client.post(
                "/e/thing/new", data={"name": "Pen", "colour": "blue"}, follow_redirects=False
            )
            assert created.status_code in (302, 303), text(created)
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.get_json()["schema_version"] == version
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                colours = conn.execute(sa.text("SELECT colour FROM e_thing")).scalars().all()
        finally:
            engine.dispose()
        assert colours == ["blue", "blue"]
    finally:
        second.extensions["formflow"].engine.dispose()


def test_the_version_is_polled_at_most_once_per_interval(folder: Path, db_url: str) -> None:
    app = make_app(folder, db_url, [("admin", ["admin"])], FORMFLOW_RELOAD_SECONDS=3600)
    try:
        client = app.test_client()
        sign_in(client)
        assert client.get("/e/thing/new?lang=en").status_code == 200  # the first poll
        _migrate(folder, db_url, WITH_COLOUR)
        # Within the hour this process still serves what it had.
        assert "Colour Of Thing" not in text(client.get("/e/thing/new?lang=en"))
        app.extensions["formflow.watcher"].interval = 0
        assert "Colour Of Thing" in text(client.get("/e/thing/new?lang=en"))
    finally:
        app.extensions["formflow"].engine.dispose()


def test_one_json_log_line_per_request_with_the_request_id(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    sign_in(client)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER):
        response = client.get("/e/thing?q=x", headers={"X-Request-Id": "proxy-42.a:b"})
    assert response.headers["X-Request-Id"] == "proxy-42.a:b"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == REQUEST_LOGGER]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET"
    assert line["path"] == "/e/thing"
    assert line["status"] == 200
    assert line["user"] == "admin"
    assert line["request_id"] == "proxy-42.a:b"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["time"].endswith("+00:00")


@pytest.mark.parametrize("given", ["", "a b", "x" * 129, "<script>", "id;forged", "é"])
def test_an_unusable_request_id_is_replaced(app: Flask, given: str) -> None:
    response = app.test_client().get("/healthz", headers={"X-Request-Id": given})
    rid = response.headers["X-Request-Id"]
    assert rid != given and len(rid) == 32 and rid.isalnum()


def test_request_logs_can_be_turned_off(
    folder: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(folder, db_url, [("admin", ["admin"])], FORMFLOW_LOG_REQUESTS="false")
    try:
        with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER):
            app.test_client().get("/healthz")
        assert not [r for r in caplog.records if r.name == REQUEST_LOGGER]
    finally:
        app.extensions["formflow"].engine.dispose()


def test_a_trusted_proxy_gives_the_client_address(
    folder: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(folder, db_url, [("admin", ["admin"])], FORMFLOW_PROXY_COUNT="1")
    try:
        with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER):
            app.test_client().get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == REQUEST_LOGGER]
        assert lines[-1]["ip"] == "203.0.113.9"
    finally:
        app.extensions["formflow"].engine.dispose()
