"""Hostile uploads are served as attachments with a safe type, never rendered inline."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from security_support import vault_app
from test_web_support import sign_in

from engine.web.forms import UPLOAD_SUFFIX

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
INERT = {"application/octet-stream", "text/plain", "text/csv"}
HOSTILE = [
    ("evil.svg", SVG, "image/svg+xml"),
    ("page.png", HTML, "image/png"),  # HTML renamed .png
    ("both.png", HTML, "text/html;image/png"),  # a declared type that is two types
    ("page.html", HTML, "text/html"),
    ("evil.svg.txt", SVG, "image/svg+xml"),
    ("noext", HTML, "text/html"),
]


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[Flask]:
    made = vault_app(tmp_path, db_url)
    yield made
    made.extensions["formflow"].engine.dispose()


def _check(response: object, name: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert response.status_code == 200, name  # type: ignore[attr-defined]
    assert headers["Content-Disposition"].startswith("attachment"), name
    kind = headers["Content-Type"].split(";")[0].strip().lower()
    assert kind in INERT, f"{name} served as {kind}"
    assert "html" not in headers["Content-Type"] and "svg" not in headers["Content-Type"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "sandbox" in csp or "default-src 'none'" in csp


@pytest.mark.parametrize(("name", "body", "declared"), HOSTILE)
def test_a_form_upload_is_downloaded_inertly(
    app: Flask, name: str, body: bytes, declared: str
) -> None:
    client = app.test_client()
    sign_in(client)
    created = client.post(
        "/e/doc/new",
        data={"name": "x", f"file.{UPLOAD_SUFFIX}": (io.BytesIO(body), name, declared)},
        content_type="multipart/form-data",
    )
    assert created.status_code == 302, created.get_data(as_text=True)
    record = created.headers["Location"].rsplit("/", 1)[1]
    response = client.get(f"/e/doc/{record}/files/file")
    _check(response, name)
    assert response.get_data() == body  # the bytes are kept, only never rendered


@pytest.mark.parametrize(("name", "body", "declared"), HOSTILE)
def test_an_api_upload_is_downloaded_inertly(
    app: Flask, name: str, body: bytes, declared: str
) -> None:
    with app.app_context():
        token = app.extensions["formflow"].users.create_token("admin")
    auth = {"Authorization": f"Bearer {token}"}
    api = app.test_client()
    stored = api.post(
        "/api/v1/uploads?entity=doc&field=file",
        data={"file": (io.BytesIO(body), name, declared)},
        content_type="multipart/form-data",
        headers=auth,
    )
    assert stored.status_code in (200, 201), stored.get_data(as_text=True)
    assert "html" not in stored.get_json()["content_type"]
    made = api.post(
        "/api/v1/doc", json={"name": "y", "file": stored.get_json()["key"]}, headers=auth
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    client = app.test_client()
    sign_in(client)
    _check(client.get(f"/e/doc/{made.get_json()['id']}/files/file"), name)
