"""Escaping of hostile blueprint text and values, CSRF, security headers, ``?next=``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from test_web_support import csrf_token, make_app, records, sign_in, text

from engine.records import Actor

ADMIN = Actor("admin", frozenset({"admin"}))
XSS = "<img src=x onerror=alert(1)>"
XSS_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"

HOSTILE = """
formflow: 1
id: hostile
title: {zh: "T <img src=x onerror=alert(1)>", en: "T <img src=x onerror=alert(1)>"}
entities:
  thing:
    label: {zh: "物 <img src=x onerror=alert(1)>", en: "Thing <img src=x onerror=alert(1)>"}
    title_field: name
    fields:
      name:
        type: text
        label: "名称 {{7*7777}}"
        help: "{{cycler.__init__.__globals__}} <img src=x onerror=alert(1)>"
        required: true
      kind:
        type: choice
        label: "类别 <img src=x onerror=alert(1)>"
        options:
          - {value: a, label: "<img src=x onerror=alert(1)>"}
          - {value: b, label: "{{7*7777}}"}
      site: {type: url, label: 网站}
      note: {type: long_text, label: 备注}
    rules:
      - check: "kind != 'b'"
        field: kind
        message: "bad <img src=x onerror=alert(1)> {{7*7777}}"
    list:
      columns: [name, kind, site]
      filters: [kind]
"""


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(HOSTILE, encoding="utf-8")
    app = make_app(folder, db_url, [("admin", ["admin"])])
    yield app
    records(app).engine.dispose()


def assert_safe(page: str) -> None:
    assert XSS not in page
    assert "onerror=alert(1)>" not in page
    assert "54439" not in page  # 7*7777 evaluated
    assert "<built-in" not in page and "__builtins__" not in page


def test_hostile_labels_options_values_and_messages_are_escaped(app: Flask) -> None:
    svc = records(app)
    rid = svc.create(
        "thing",
        {
            "name": f"{XSS} {{{{7*7777}}}}",
            "kind": "a",
            "site": "https://ok.example",
            "note": "{{cycler.__init__.__globals__}}",
        },
        actor=ADMIN,
    ).id
    client = app.test_client()
    sign_in(client)
    for url in (
        "/",
        "/e/thing",
        f"/e/thing/{rid}",
        "/e/thing/new",
        f"/e/thing/{rid}/edit",
        f"/e/thing/{rid}/delete",
    ):
        page = text(client.get(url))
        assert_safe(page)
        assert XSS_ESCAPED in page, url
    page = text(client.get("/e/thing/new"))
    assert "{{7*7777}}" in page  # shown as typed, never evaluated
    response = client.post(
        "/e/thing/new", data={"name": "x", "kind": "b", "site": "javascript:alert(1)"}
    )
    assert response.status_code == 422
    page = text(response)
    assert_safe(page)
    assert "bad &lt;img src=x onerror=alert(1)&gt; {{7*7777}}" in page
    assert 'href="javascript:' not in page


def test_javascript_url_is_never_a_link(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    response = client.post("/e/thing/new", data={"name": "y", "site": "javascript:alert(1)"})
    assert 'href="javascript:' not in text(response)


def test_post_without_csrf_token_is_refused(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(HOSTILE, encoding="utf-8")
    app = make_app(folder, db_url, [("admin", ["admin"])], WTF_CSRF_ENABLED=True)
    client = app.test_client()
    assert client.post("/signin", data={"name": "admin", "password": "x"}).status_code == 400
    token = csrf_token(text(client.get("/signin")))
    from test_web_support import PASSWORD

    response = client.post(
        "/signin", data={"name": "admin", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert client.post("/e/thing/new", data={"name": "z"}).status_code == 400
    page = text(client.get("/e/thing/new"))
    assert "X-CSRFToken" in page  # htmx requests send the token from <body hx-headers>
    token = csrf_token(page)
    response = client.post("/e/thing/new", data={"name": "z", "kind": "a", "csrf_token": token})
    assert response.status_code == 302
    records(app).engine.dispose()


def test_security_headers_and_cookie(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/signin")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in text(response)  # no inline scripts
    sign_in(client)
    cookie = client.get_cookie("formflow_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


@pytest.mark.parametrize("target", ["https://evil.example", "//evil.example", "/\\evil.example"])
def test_next_goes_to_local_paths_only(app: Flask, target: str) -> None:
    client = app.test_client()
    response = client.post(
        "/signin", data={"name": "admin", "password": "correct-horse-9", "next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_to_a_local_path_is_followed(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/e/thing?q=a")
    assert "next=" in response.headers["Location"]
    response = client.post(
        "/signin", data={"name": "admin", "password": "correct-horse-9", "next": "/e/thing?q=a"}
    )
    assert response.headers["Location"] == "/e/thing?q=a"


def test_wrong_password_is_refused(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/signin?lang=en", data={"name": "admin", "password": "nope-nope"})
    assert response.status_code == 401
    assert "Wrong user name or password" in text(response)
