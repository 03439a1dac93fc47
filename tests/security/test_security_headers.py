"""Security headers on every kind of response; no inline script anywhere in the templates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from security_support import vault_app
from test_web_support import sign_in

from engine.resources import TEMPLATES_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[Flask]:
    made = vault_app(tmp_path, db_url)
    yield made
    made.extensions["formflow"].engine.dispose()


def _directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_secure(response: object, what: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = _directives(headers.get("Content-Security-Policy", ""))
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts is not None, f"{what}: no script policy"
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    framing = csp.get("frame-ancestors")
    sandboxed = "sandbox" in csp and csp.get("default-src") == ["'none'"]
    assert framing == ["'none'"] or sandboxed, f"{what}: may be framed"
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), what


def test_every_kind_of_response_has_the_headers(app: Flask) -> None:
    anonymous = app.test_client()
    for path in ("/signin", "/healthz", "/readyz", "/static/app.css", "/e/doc", "/nowhere"):
        assert_secure(anonymous.get(path), f"anonymous GET {path}")
    assert_secure(anonymous.get("/api/v1/doc"), "API without a token")
    assert_secure(anonymous.post("/signin", data={"name": "x", "password": "y"}), "bad sign-in")
    client = app.test_client()
    sign_in(client)
    for path in ("/", "/e/doc", "/e/doc/new", "/e/doc/999999", "/e/nothing", "/notifications"):
        assert_secure(client.get(path), f"signed-in GET {path}")
    with app.app_context():
        token = app.extensions["formflow"].users.create_token("admin")
    api = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert_secure(api.get("/api/v1/doc", headers=auth), "API list")
    assert_secure(api.post("/api/v1/doc", json={}, headers=auth), "API error")


# A ``<script type="application/json">`` block is data (the dashboard's chart
# options, read with JSON.parse), never executed, so the policy does not concern it.
INLINE_SCRIPT = re.compile(
    r"""<script(?![^>]*\bsrc=)(?![^>]*\btype\s*=\s*["']application/json["'])[^>]*>""",
    re.IGNORECASE,
)
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def test_templates_have_no_inline_scripts_handlers_or_javascript_urls() -> None:
    found = []
    for path in sorted(Path(TEMPLATES_DIR).rglob("*.html")):
        source = path.read_text(encoding="utf-8")
        for pattern in (INLINE_SCRIPT, HANDLER, JS_URL):
            found += [f"{path.name}: {m.group(0)[:60]}" for m in pattern.finditer(source)]
    assert not found, found


def test_pages_carry_no_inline_script(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    for path in ("/", "/e/doc", "/e/doc/new", "/signin"):
        page = client.get(path).get_data(as_text=True)
        assert not INLINE_SCRIPT.search(page), path
        assert not HANDLER.search(page), path
