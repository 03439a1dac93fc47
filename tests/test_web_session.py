"""The session's user on every request: deactivation and role changes take effect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from test_web_support import CRM, make_app, records, sign_in, text

from engine.users import UserService
from engine.web.services import services


def other_process(app: Flask) -> UserService:
    """A UserService of its own over the same database, as a script or the CLI would use."""
    with app.app_context():
        svc = services()
        return UserService(svc.blueprint, svc.schema, svc.engine)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(CRM, db_url, [("admin", ["admin"]), ("li.lei", ["sales_rep"])])
    yield app
    records(app).engine.dispose()


@pytest.fixture
def uncached(db_url: str) -> Iterator[Flask]:
    app = make_app(
        CRM,
        db_url,
        [("admin", ["admin"]), ("li.lei", ["sales_rep"])],
        FORMFLOW_USER_CACHE_SECONDS=0,
    )
    yield app
    records(app).engine.dispose()


def signed_out(response: object) -> bool:
    status = getattr(response, "status_code", 0)
    headers = getattr(response, "headers", {})
    return status == 302 and "/signin" in headers.get("Location", "")


def test_a_user_deactivated_by_this_server_is_signed_out_at_once(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "li.lei")
    assert client.get("/e/opportunity").status_code == 200
    with app.app_context():
        services().users.deactivate("li.lei")
    assert signed_out(client.get("/e/opportunity"))
    assert signed_out(client.get("/e/customer/new"))


def test_roles_changed_by_this_server_count_at_once(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "li.lei")
    page = text(client.get("/e/opportunity"))
    assert 'href="/e/opportunity/new"' in page
    with app.app_context():
        services().users.set_roles("li.lei", ["finance"])  # finance may read, not create
    page = text(client.get("/e/opportunity"))
    assert 'href="/e/opportunity/new"' not in page
    assert client.post("/e/opportunity/new", data={"name": "x"}).status_code == 403


def test_without_the_cache_another_process_counts_at_once(uncached: Flask) -> None:
    client = uncached.test_client()
    sign_in(client, "li.lei")
    assert client.get("/e/opportunity").status_code == 200
    other = other_process(uncached)
    other.set_roles("li.lei", ["finance"])
    assert 'href="/e/opportunity/new"' not in text(client.get("/e/opportunity"))
    other.deactivate("li.lei")
    assert signed_out(client.get("/e/opportunity"))


def test_the_cache_is_on_by_default(app: Flask) -> None:
    with app.app_context():
        assert services().users.cache_seconds == 5


def test_the_cache_setting_reaches_the_user_service(uncached: Flask) -> None:
    with uncached.app_context():
        assert services().users.cache_seconds == 0
