"""Shared helpers of the web tests: build an app over a real database, sign in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from engine.loader import load
from engine.records import RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import UserService
from engine.web import create_app
from engine.web.services import services

CRM = Path(__file__).resolve().parent.parent / "blueprints" / "crm"
PASSWORD = "correct-horse-9"


def make_app(
    blueprint_path: Path, db_url: str, users: list[tuple[str, list[str]]], **config: Any
) -> Flask:
    """An app over a freshly initialised database with the given users (password PASSWORD)."""
    bp = load(blueprint_path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    service = UserService(bp, schema, engine)
    for name, roles in users:
        service.add(name, roles=roles, password=PASSWORD)
    engine.dispose()
    settings = {"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test-secret"}
    settings.update(config)
    return create_app(blueprint_path, db_url, settings)


def records(app: Flask) -> RecordService:
    with app.app_context():
        return services().records


def sign_in(client: FlaskClient, name: str = "admin") -> None:
    response = client.post("/signin", data={"name": name, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body


def csrf_token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)
