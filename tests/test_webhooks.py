"""Webhooks (engine.webhooks) and the SSRF guard (engine.urlguard), against a real HTTP server.

The receiver is ``http.server`` in a thread on 127.0.0.1; reaching it needs the
explicit config switch (``allow_hosts`` / ``allow_private``), exactly as a
deployment would. Refused addresses are checked with an injected resolver (no
real DNS) so every family of bad address is covered. The job path runs on
SQLite and PostgreSQL with an injected clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.jobs import JobQueue
from engine.loader import load
from engine.records import Record
from engine.settings import Settings, WebhookSettings
from engine.storage.database import create_engine, writer
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.urlguard import UrlRefused, address_problem, check_url, literal_problem
from engine.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_JOB,
    WebhookError,
    Webhooks,
    record_json,
    sign,
    verify,
)

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
SECRET = "whsec-测试-secret"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server; ``answers`` are (status, headers) used in order, then 200."""

    port: int
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/deal?src=formflow"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            status, headers = state.answers.pop(0) if state.answers else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _hooks(**kw: Any) -> Webhooks:
    environ = kw.pop("environ", {"HOOK_SECRET": SECRET})
    return Webhooks(WebhookSettings(**kw), environ=environ)


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "automation": "approved_hook",
        "delivery": "d-1",
        "entity": "deal",
        "event": "approved",
        "occurred_at": NOW.isoformat(),
        "record": {"id": 7, "name": "泵站改造", "amount": "150000.00"},
        "record_id": 7,
        **extra,
    }


# --------------------------------------------------------------------------- the guard


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the cloud metadata service
        "127.0.0.1",
        "127.8.8.8",
        "10.0.0.5",
        "172.16.4.4",
        "192.168.1.1",
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "224.0.0.251",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "2002:a9fe:a9fe::1",  # 6to4 carrying 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 carrying 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_problem(address) is not None
    with pytest.raises(UrlRefused):
        check_url("https://hooks.example.com/x", resolve=lambda host, port: [address])


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    target = check_url("https://hooks.example.com:8443/x?y=1", resolve=lambda h, p: [address])
    assert (target.host, target.port, target.path, target.address) == (
        "hooks.example.com",
        8443,
        "/x?y=1",
        address,
    )


def test_one_private_answer_refuses_the_host() -> None:
    with pytest.raises(UrlRefused) as caught:
        check_url("http://rebind.example/x", resolve=lambda h, p: ["8.8.8.8", "10.0.0.1"])
    assert "10.0.0.1 is a private address" in caught.value.message("en")
    assert "FORMFLOW_WEBHOOK_ALLOW_HOSTS" in caught.value.message("en")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://x", "http://", "http://x:99999/"]
)
def test_bad_schemes_and_urls_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, resolve=lambda h, p: ["8.8.8.8"])


def test_the_config_switches_allow_exactly_what_they_name() -> None:
    local = lambda h, p: ["127.0.0.1"]  # noqa: E731
    metadata = lambda h, p: ["169.254.169.254"]  # noqa: E731
    assert check_url("http://recv.internal/x", allow_private=True, resolve=local).address
    with pytest.raises(UrlRefused):  # allow_private never opens link-local
        check_url("http://recv.internal/x", allow_private=True, resolve=metadata)
    assert check_url("http://recv.internal:81/x", allow_hosts=["RECV.internal"], resolve=local)
    assert check_url("http://recv.internal:81/x", allow_hosts=["recv.internal:81"], resolve=local)
    with pytest.raises(UrlRefused):
        check_url("http://recv.internal:82/x", allow_hosts=["recv.internal:81"], resolve=local)
    with pytest.raises(UrlRefused):
        check_url("http://other.internal/x", allow_hosts=["recv.internal"], resolve=local)


def test_check_time_sees_literal_addresses() -> None:
    assert literal_problem("https://hooks.example.com/x") is None
    assert literal_problem("http://169.254.169.254/latest")[0] == "error"  # type: ignore[index]
    assert literal_problem("http://[::ffff:a9fe:a9fe]/")[0] == "error"  # type: ignore[index]
    assert literal_problem("http://0.0.0.0:80/")[0] == "error"  # type: ignore[index]
    assert literal_problem("http://10.1.1.1/")[0] == "warning"  # type: ignore[index]
    assert literal_problem("http://localhost:8080/")[0] == "warning"  # type: ignore[index]
    assert literal_problem("http://db.internal/")[0] == "warning"  # type: ignore[index]


# --------------------------------------------------------------------------- delivering


def test_a_signed_delivery_reaches_an_allowed_local_receiver(receiver: Receiver) -> None:
    hooks = _hooks(allow_hosts=("127.0.0.1",))
    body = json.dumps(_body(), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(SECRET, body)}
    assert hooks.post(receiver.url, body, headers) == 200
    [got] = receiver.received
    assert got.path == "/hooks/deal?src=formflow"
    assert got.headers["Host"] == f"127.0.0.1:{receiver.port}"
    # what a receiver does: HMAC over the raw body with the shared secret
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert verify(SECRET, got.body, got.headers[SIGNATURE_HEADER])
    assert not verify("other", got.body, got.headers[SIGNATURE_HEADER])
    assert not verify(SECRET, got.body + b" ", got.headers[SIGNATURE_HEADER])
    assert json.loads(got.body)["record"]["name"] == "泵站改造"


def test_without_the_switch_the_local_receiver_is_refused(receiver: Receiver) -> None:
    with pytest.raises(UrlRefused):
        _hooks().post(receiver.url, b"{}", {})
    assert receiver.received == []


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.answers.append((302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(WebhookError) as caught:
        _hooks(allow_private=True).post(receiver.url, b"{}", {})
    assert "redirects are not followed" in caught.value.message("en")
    assert len(receiver.received) == 1  # nothing went to the Location


def test_a_server_error_is_a_webhook_error(receiver: Receiver) -> None:
    receiver.answers.append((500, {}))
    with pytest.raises(WebhookError) as caught:
        _hooks(allow_private=True).post(receiver.url, b"{}", {})
    assert "HTTP 500" in caught.value.message("en")


def test_record_json_is_plain() -> None:
    from datetime import date
    from decimal import Decimal

    record = Record(
        entity="deal",
        id=3,
        values={"amount": Decimal("1.50"), "close": date(2024, 6, 1), "name": "甲"},
        tables={"lines": [{"qty": 2}]},
        version=4,
        owner="li.lei",
    )
    assert record_json(record) == {
        "id": 3,
        "version": 4,
        "owner": "li.lei",
        "amount": "1.50",
        "close": "2024-06-01",
        "name": "甲",
        "lines": [{"qty": 2}],
    }


def test_settings_come_from_config_then_environment() -> None:
    s = Settings.from_config(
        {"FORMFLOW_WEBHOOK_ALLOW_HOSTS": "Recv.Internal, 10.0.0.9:8080 ,"},
        {"FORMFLOW_WEBHOOK_ALLOW_PRIVATE": "true", "FORMFLOW_WEBHOOK_SECRET": "s"},
    ).webhooks
    assert s.allow_hosts == ("recv.internal", "10.0.0.9:8080")
    assert s.allow_private is True and s.secret == "s" and s.timeout == 10.0
    assert "secret" not in repr(s)


# --------------------------------------------------------------------------- the job path

BLUEPRINT = """
formflow: 1
id: hooks
title: Hooks
entities:
  deal:
    label: Deal
    fields:
      name: {type: text, label: Name}
"""


@dataclass
class World:
    engine: Any
    jobs: JobQueue
    clock: list[datetime]

    def queue(self, url: str, secret_env: str | None = "HOOK_SECRET") -> int:
        with writer(self.engine).begin() as conn:
            job_id = Webhooks.schedule(
                self.jobs,
                conn,
                url=url,
                secret_env=secret_env,
                event="approved",
                entity="deal",
                record_id=7,
                record={"id": 7, "name": "泵站改造"},
                automation="approved_hook",
                occurred_at=NOW,
            )
        assert job_id is not None
        return job_id


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    clock = [NOW]
    yield World(engine, JobQueue(engine, schema, lambda: clock[0]), clock)
    engine.dispose()


def test_a_webhook_job_is_delivered_signed_after_retries(world: World, receiver: Receiver) -> None:
    _hooks(allow_hosts=("127.0.0.1",)).register_jobs(world.jobs)
    job_id = world.queue(receiver.url)
    receiver.answers.append((503, {}))
    assert world.jobs.run_due("w") == 1
    job = world.jobs.get(job_id)
    assert job is not None and job.state == "pending" and "HTTP 503" in (job.last_error or "")
    assert job.due_at == NOW + timedelta(seconds=30)  # backoff, then the retry
    world.clock[0] = job.due_at
    assert world.jobs.run_due("w") == 1
    done = world.jobs.get(job_id)
    assert done is not None and done.state == "done" and done.attempts == 2
    first, second = receiver.received
    assert first.body == second.body  # the same delivery, retried
    assert first.headers[DELIVERY_HEADER] == second.headers[DELIVERY_HEADER]
    assert second.headers[EVENT_HEADER] == "approved"
    assert verify(SECRET, second.body, second.headers[SIGNATURE_HEADER])
    data = json.loads(second.body)
    assert data["record"] == {"id": 7, "name": "泵站改造"}
    assert data["delivery"] == second.headers[DELIVERY_HEADER]


def test_a_refused_address_fails_the_job_and_calls_nobody(world: World, receiver: Receiver) -> None:
    _hooks().register_jobs(world.jobs)  # no switch: 127.0.0.1 is refused
    job_id = world.queue(receiver.url)
    world.jobs.run_due("w")
    job = world.jobs.get(job_id)
    assert job is not None and job.state == "pending"
    assert "127.0.0.1 is a loopback address" in (job.last_error or "")
    assert receiver.received == []


def test_a_missing_secret_env_fails_and_no_secret_sends_unsigned(
    world: World, receiver: Receiver
) -> None:
    _hooks(allow_private=True, environ={}).register_jobs(world.jobs)
    missing = world.queue(receiver.url, secret_env="HOOK_SECRET")
    unsigned = world.queue(receiver.url, secret_env=None)
    world.jobs.run_due("w")
    job = world.jobs.get(missing)
    assert job is not None and "HOOK_SECRET is not set" in (job.last_error or "")
    done = world.jobs.get(unsigned)
    assert done is not None and done.state == "done"
    [got] = receiver.received
    assert SIGNATURE_HEADER not in got.headers


def test_the_default_secret_signs_webhooks_without_secret_env(
    world: World, receiver: Receiver
) -> None:
    _hooks(allow_private=True, secret="shared", environ={}).register_jobs(world.jobs)
    world.queue(receiver.url, secret_env=None)
    world.jobs.run_due("w")
    [got] = receiver.received
    assert verify("shared", got.body, got.headers[SIGNATURE_HEADER])
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"
    [job] = world.jobs.jobs(kind=WEBHOOK_JOB)
    assert job.state == "done"
