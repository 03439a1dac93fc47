"""Every state-changing web route refuses a request without the CSRF token.

The routes come from the Flask ``url_map`` itself, so a new route is covered the
day it is added. The JSON API (``/api/v1``) is the documented exception: it is
authenticated by bearer tokens only, never by the session cookie, so a forged
cross-site request carries no credentials; the test checks exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from security_support import vault_app
from test_web_support import PASSWORD, csrf_token

from engine.records import SYSTEM

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[Flask]:
    made = vault_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    yield made
    made.extensions["formflow"].engine.dispose()


def _signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client.get("/signin").get_data(as_text=True))
    done = client.post("/signin", data={"name": "admin", "password": PASSWORD, "csrf_token": token})
    assert done.status_code == 302
    return client


def _arguments(arguments: set[str], record_id: int) -> dict[str, object]:
    values: dict[str, object] = {
        "entity": "doc",
        "record_id": record_id,
        "field": "file",
        "name": "admin",
        "task_id": 1,
        "job_id": 1,
        "import_id": 1,
        "id": 1,
        "key": "x",
        "filename": "x",
        "part": "x",
        "flow": "x",
        "rest": "x",
    }
    missing = arguments - set(values)
    assert not missing, f"teach this test a value for {missing}"
    return {a: values[a] for a in arguments}


def _routes(app: Flask, api: bool) -> list[tuple[str, str, set[str]]]:
    out = []
    for rule in app.url_map.iter_rules():
        unsafe = (rule.methods or set()) & UNSAFE
        if not unsafe or rule.endpoint == "static":
            continue
        if rule.endpoint.startswith("api.") != api:
            continue
        for method in sorted(unsafe):
            out.append((method, rule.endpoint, set(rule.arguments)))
    return out


def test_every_web_route_that_changes_state_needs_the_token(app: Flask) -> None:
    with app.app_context():
        record = app.extensions["formflow"].records.create("doc", {"name": "keep"}, actor=SYSTEM)
    routes = _routes(app, api=False)
    assert len(routes) >= 8, routes  # sign-in, sign-out, forms, flows, notifications ...
    client = _signed_in(app)
    from flask import url_for

    for method, endpoint, arguments in routes:
        with app.test_request_context():
            url = url_for(endpoint, **_arguments(arguments, record.id))  # type: ignore[arg-type]
        response = client.open(url + "?lang=en", method=method, data={"name": "changed"})
        assert response.status_code == 400, f"{method} {url}: {response.status_code}"
        assert "The page has expired" in response.get_data(as_text=True), f"{method} {url}"
        # A token from another session is no better than none.
        forged = client.open(
            url, method=method, data={"name": "changed", "csrf_token": "forged.token.value"}
        )
        assert forged.status_code == 400, f"{method} {url} with a forged token"
    with app.app_context():
        kept = app.extensions["formflow"].records.get("doc", record.id)
    assert kept.values["name"] == "keep"
    assert client.get("/e/doc").status_code == 200  # still signed in: sign-out was refused


def test_the_api_ignores_the_session_cookie(app: Flask) -> None:
    routes = _routes(app, api=True)
    assert routes
    client = _signed_in(app)
    from flask import url_for

    for method, endpoint, arguments in routes:
        with app.test_request_context():
            url = url_for(endpoint, **_arguments(arguments, 1))  # type: ignore[arg-type]
        response = client.open(url, method=method, json={"name": "x"})
        assert response.status_code == 401, f"{method} {url}: {response.status_code}"
