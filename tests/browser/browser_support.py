"""Helpers for the real-browser tests (imported by ``conftest.py`` and the tests).

Servers: ``start_server`` runs the real ``formflow serve`` (gunicorn, 2 workers)
on a free port of 127.0.0.1 and waits until it answers; ``stop_server`` sends
SIGTERM, then SIGKILL. Each server gets its own ``XDG_RUNTIME_DIR`` so two
gunicorns never share a control socket (the default is ``~/.gunicorn``).

Screenshots go to ``test-artifacts/screenshots/<name>.png`` at the repo root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRM = ROOT / "blueprints" / "crm"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("FORMFLOW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEMO_PASSWORD = "formflow-demo"
START_TIMEOUT = 60.0
# Playwright's auto-waiting limits (ms): generous for a loaded CI box, never sleeps.
ACTION_TIMEOUT_MS = 15_000

#: Every text in the hostile blueprint is one of these.
XSS = "<img src=x onerror=alert(1)>"
SVG = "<svg onload=alert(1)>"
JS_URL = "javascript:alert(1)"
TEMPLATE = "{{7*7}}"

HOSTILE_BLUEPRINT = f"""\
formflow: 1
id: hostile
title: {{zh: "{XSS} 标题 {TEMPLATE}", en: "{XSS} Title {TEMPLATE}"}}
description: {{zh: "{SVG} {JS_URL}", en: "{SVG} {JS_URL}"}}
default_locale: zh
roles:
  sales_rep: {{zh: "{SVG}", en: "{SVG}"}}
  admin: {{zh: 管理员, en: Admin}}
entities:
  customer:
    label: {{zh: "{XSS}客户", en: "{XSS}Customer"}}
    description: {{zh: "{SVG}{TEMPLATE}", en: "{SVG}{TEMPLATE}"}}
    title_field: name
    fields:
      name:
        type: text
        required: true
        label: {{zh: "{XSS}名称", en: "{XSS}Name"}}
        help: {{zh: "{SVG} 帮助 {TEMPLATE}", en: "{SVG} help {TEMPLATE}"}}
        placeholder: {{zh: "{JS_URL}", en: "{JS_URL}"}}
      level:
        type: choice
        label: {{zh: "{SVG}等级", en: "{SVG}Level"}}
        help: {{zh: "{JS_URL}", en: "{JS_URL}"}}
        options:
          A: {{zh: "{XSS}", en: "{XSS}"}}
          B: {{zh: "{TEMPLATE}", en: "{TEMPLATE}"}}
          C: {{zh: "{JS_URL}", en: "{JS_URL}"}}
      kind:
        type: choice
        label: {{zh: "{TEMPLATE}类型", en: "{TEMPLATE}Kind"}}
        options: ["{SVG}", "{TEMPLATE}", "{JS_URL}"]
      website:
        type: url
        label: {{zh: "{JS_URL}", en: "{JS_URL}"}}
      notes:
        type: long_text
        label: {{zh: "{XSS}备注", en: "{XSS}Notes"}}
      lines:
        type: table
        label: {{zh: "{SVG}明细", en: "{SVG}Lines"}}
        fields:
          item: {{type: text, label: {{zh: "{XSS}项", en: "{XSS}Item"}}}}
          qty: {{type: integer, label: {{zh: "{TEMPLATE}", en: "{TEMPLATE}"}}}}
    rules:
      - check: "ISBLANK(notes) or LEN(notes) < 5000"
        field: notes
        message: {{zh: "{XSS}", en: "{XSS}"}}
    access:
      sales_rep: {{create: true, read: own, update: own}}
      admin: {{create: true, read: all, update: all, delete: all}}
    list:
      columns: [name, level, kind, website]
      filters: [level, kind]
      search: [name]
    sections:
      - label: {{zh: "{SVG}基本", en: "{SVG}Basics"}}
        fields: [name, level, kind, website, notes]
      - label: {{zh: "{XSS}明细", en: "{XSS}Lines"}}
        fields: [lines]
"""

#: The hostile record created before the browser looks (every text field hostile).
HOSTILE_RECORD: dict[str, Any] = {
    "name": f"{XSS}{TEMPLATE}",
    "level": "A",
    "kind": SVG,
    "notes": f"{SVG}\n{JS_URL}\n{TEMPLATE}",
    "lines": [{"item": XSS, "qty": 7}],
}


def _missing_service(reason: str) -> None:
    if os.environ.get("FORMFLOW_REQUIRE_SERVICES"):
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_browser() -> None:
    if not CHROMIUM.exists():
        _missing_service(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing_service("the playwright package is missing (pip install -e '.[test]')")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _formflow_command() -> list[str]:
    script = Path(sys.executable).parent / "formflow"
    if script.exists():
        return [str(script)]
    found = shutil.which("formflow")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


@dataclass
class Server:
    """A running ``formflow serve``: its base URL, process, log and files."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    folder: Path
    db: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"formflow serve exited with {server.process.returncode}:\n{server.log_text()}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(server.url + "signin", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # polling the server's start, not waiting on the page
    stop_server(server)
    pytest.fail(f"formflow serve did not answer within {START_TIMEOUT:.0f}s:\n{server.log_text()}")


def stop_server(server: Server) -> None:
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def start_server(folder: Path, *, demo: bool = True) -> Server:
    """``formflow serve folder [--demo] --port <free> --workers 2`` on 127.0.0.1."""
    port = _free_port()
    db = folder / "formflow-test.db"
    log = folder.parent / f"{folder.name}-serve.log"
    runtime = folder.parent / f"{folder.name}-run"
    runtime.mkdir(exist_ok=True)
    env = dict(os.environ)
    # gunicorn's control socket lives in $XDG_RUNTIME_DIR: one per server, in tmp.
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("FORMFLOW_SECRET_KEY", None)
    command = [
        *_formflow_command(),
        "serve",
        str(folder),
        "--db",
        f"sqlite:///{db}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    if demo:
        command.append("--demo")
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=folder.parent, env=env
        )
    server = Server(f"http://127.0.0.1:{port}/", process, log, folder, db)
    _wait_until_up(server)
    return server


@dataclass
class Watch:
    """What a page did that it never should: dialogs and CSP violations."""

    dialogs: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)


@contextlib.contextmanager
def open_page(browser: Any, watch: Watch, **options: Any) -> Iterator[Any]:
    """A page in a fresh Chinese (zh-CN) context that records dialogs and CSP violations."""
    from playwright.sync_api import expect

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    context = browser.new_context(
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": 1280, "height": 900},
        **options,
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    pg = context.new_page()

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            watch.csp.append(message.text)

    pg.on("dialog", on_dialog)
    pg.on("console", on_console)
    try:
        yield pg
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, server: Server, user: str, *, lang: str = "zh") -> None:
    """Sign in through the sign-in form; lands on the home page."""
    from playwright.sync_api import expect

    page.goto(f"{server.url}signin?lang={lang}")
    page.locator("input[name=name]").fill(user)
    page.locator("input[name=password]").fill(DEMO_PASSWORD)
    page.locator("form[action='/signin'] button[type=submit]").click()
    expect(page).to_have_url(server.url)
    expect(page.locator("header nav")).to_contain_text("退出" if lang == "zh" else "Sign out")
