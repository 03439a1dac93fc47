"""Password guessing is slowed down per account and per address, in the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from security_support import vault_app
from test_web_support import PASSWORD

from engine.loader import load
from engine.logins import LoginLimits, LoginThrottle
from engine.storage.database import create_engine
from engine.storage.schema import build_schema
from engine.web import create_app

LIMITS = {"FORMFLOW_LOGIN_MAX_FAILURES": 3, "FORMFLOW_LOGIN_IP_MAX_FAILURES": 5}


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[Flask]:
    made = vault_app(tmp_path, db_url, **LIMITS)
    yield made
    made.extensions["formflow"].engine.dispose()


def attempt(
    client: FlaskClient, name: str, password: str, ip: str = "198.51.100.1", lang: str = "en"
) -> object:
    return client.post(
        f"/signin?lang={lang}",
        data={"name": name, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_failures_on_one_account_lead_to_429_even_with_the_right_password(app: Flask) -> None:
    client = app.test_client()
    for _ in range(3):
        assert attempt(client, "alice", "wrong").status_code == 401  # type: ignore[attr-defined]
    refused = attempt(client, "alice", PASSWORD)
    assert refused.status_code == 429  # type: ignore[attr-defined]
    wait = int(refused.headers["Retry-After"])  # type: ignore[attr-defined]
    assert 0 < wait <= 900
    assert "Too many failed sign-ins; try again in 15 minutes" in refused.get_data(as_text=True)  # type: ignore[attr-defined]
    chinese = attempt(client, "ALICE", PASSWORD, lang="zh")  # names count case-insensitively
    assert chinese.status_code == 429  # type: ignore[attr-defined]
    assert "登录失败次数过多，请 15 分钟后再试" in chinese.get_data(as_text=True)  # type: ignore[attr-defined]
    # Another account from the same address is not locked out by alice's failures.
    assert attempt(client, "admin", PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_a_success_resets_the_account(app: Flask) -> None:
    client = app.test_client()
    for _ in range(2):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", PASSWORD).status_code == 302  # type: ignore[attr-defined]
    fresh = app.test_client()
    for _ in range(2):
        assert attempt(fresh, "alice", "wrong").status_code == 401  # type: ignore[attr-defined]
    assert attempt(fresh, "alice", PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_one_address_guessing_many_accounts_is_slowed_down(app: Flask) -> None:
    client = app.test_client()
    for n in range(5):
        assert attempt(client, f"user{n}", "wrong", ip="203.0.113.7").status_code == 401  # type: ignore[attr-defined]
    assert attempt(client, "admin", PASSWORD, ip="203.0.113.7").status_code == 429  # type: ignore[attr-defined]
    assert attempt(client, "admin", PASSWORD, ip="203.0.113.8").status_code == 302  # type: ignore[attr-defined]


def test_the_counts_hold_across_processes(app: Flask, tmp_path: Path, db_url: str) -> None:
    other = create_app(
        tmp_path / "vault",
        db_url,
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "s", **LIMITS},
    )
    try:
        first, second = app.test_client(), other.test_client()
        attempt(first, "alice", "wrong")
        attempt(second, "alice", "wrong")
        attempt(first, "alice", "wrong")
        assert attempt(second, "alice", PASSWORD).status_code == 429  # type: ignore[attr-defined]
    finally:
        other.extensions["formflow"].engine.dispose()


def test_the_window_moves_on(app: Flask, db_url: str, tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, 9, 0, tzinfo=UTC)]
    bp = load(tmp_path / "vault")
    engine = create_engine(db_url)
    try:
        throttle = LoginThrottle(
            build_schema(bp), engine, LoginLimits(2, 10, 60), clock=lambda: now[0]
        )
        throttle.failed("bob", "192.0.2.1")
        now[0] += timedelta(seconds=20)
        throttle.failed("bob", "192.0.2.1")
        assert throttle.blocked("bob", None) == 40  # the first failure leaves at 60 s
        now[0] += timedelta(seconds=39)
        assert throttle.blocked("Bob", "192.0.2.9") == 1
        now[0] += timedelta(seconds=1)
        assert throttle.blocked("bob", None) == 0
        throttle.failed("bob", None)
        assert throttle.blocked("bob", None) == 20  # the second (t=20 s) leaves at 80 s
        throttle.succeeded("BOB")
        assert throttle.blocked("bob", None) == 0
    finally:
        engine.dispose()
