"""Real-browser fixtures: the real ``formflow serve`` (gunicorn) and Debian's Chromium.

* ``crm_server``: ``formflow serve <tmp copy of blueprints/crm> --demo --port N
  --workers 2`` in a subprocess on 127.0.0.1, for the whole session.
* ``hostile_server``: the same for a small blueprint whose every text is an
  injection attempt, plus a record holding such values.
* ``page``: a fresh Chinese (``zh-CN``) browser context with the app's CSP; a
  test fails when any JavaScript dialog opens or the CSP refuses anything.
* ``unprotected_page``: the same with the CSP bypassed, so only escaping
  stands between a hostile text and a script.

Playwright drives ``/usr/bin/chromium`` (never ``playwright install``). When it
is missing the tests skip with the reason, except under CI
(``FORMFLOW_REQUIRE_SERVICES`` set), where they fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CRM,
    HOSTILE_BLUEPRINT,
    HOSTILE_RECORD,
    Server,
    Watch,
    open_page,
    require_browser,
    start_server,
    stop_server,
)


@pytest.fixture(scope="session")
def browser_available() -> None:
    require_browser()


@pytest.fixture(scope="session")
def crm_server(
    browser_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The CRM demo (Chinese data, demo users) served by gunicorn for the session."""
    folder = tmp_path_factory.mktemp("crm-serve") / "crm"
    shutil.copytree(CRM, folder, ignore=shutil.ignore_patterns("*.db*", ".formflow-secret"))
    server = start_server(folder)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def hostile_server(
    browser_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A blueprint whose labels, options, help and title are injection attempts.

    ``--demo`` adds the users (admin, li.lei...) and skips the CRM records it
    cannot place; a hostile record is then added through the record service,
    the way every write goes, owned by admin.
    """
    folder = tmp_path_factory.mktemp("hostile-serve") / "hostile"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(HOSTILE_BLUEPRINT, encoding="utf-8")
    server = start_server(folder)
    try:
        from engine.loader import load
        from engine.records import SYSTEM, RecordService
        from engine.storage.database import create_engine
        from engine.storage.schema import build_schema

        blueprint = load(folder)
        engine = create_engine(f"sqlite:///{server.db}")
        try:
            records = RecordService(blueprint, build_schema(blueprint), engine)
            record = records.create(
                "customer", {**HOSTILE_RECORD, "owner": "admin"}, actor=SYSTEM, via="system"
            )
        finally:
            engine.dispose()
        server.extra["record_id"] = record.id
        yield server
    finally:
        stop_server(server)


# -- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(browser_available: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, watch: Watch) -> Iterator[Any]:
    """A page with the app's CSP enforced; the test fails on any dialog or CSP violation."""
    with open_page(browser, watch) as pg:
        yield pg
    assert watch.dialogs == [], f"a JavaScript dialog opened: {watch.dialogs}"
    assert watch.csp == [], f"Content-Security-Policy violations: {watch.csp}"


@pytest.fixture
def unprotected_page(browser: Any, watch: Watch) -> Iterator[Any]:
    """A page that ignores the app's CSP, so only escaping stands between text and script."""
    with open_page(browser, watch, bypass_csp=True) as pg:
        yield pg
    assert watch.dialogs == [], f"a JavaScript dialog opened: {watch.dialogs}"
