"""``formflow serve`` as deployed: gunicorn workers, a config file, probes, JSON logs, reloads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BLUEPRINT = """
formflow: 1
id: shop
title: {zh: 商店, en: Shop}
entities:
  thing:
    label: {zh: 物品, en: Thing}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true}
"""
WITH_COLOUR = BLUEPRINT + "      colour: {type: text, label: {zh: 颜色, en: Colour}}\n"
START_TIMEOUT = 60.0


def _formflow() -> list[str]:
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(url, headers={"X-Request-Id": "probe-1"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_formflow(), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture
def deployment(tmp_path: Path, db_url: str) -> Iterator[tuple[str, Path, dict[str, str], Any]]:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(BLUEPRINT, encoding="utf-8")
    port = _free_port()
    (folder / "formflow.toml").write_text(
        f'[database]\nurl = "{db_url}"\npool_size = 2\nmax_overflow = 1\n'
        f"[server]\nport = {port}\nworkers = 2\nreload_seconds = 0\n"
        '[session]\nsecret_key = "shared-by-every-host"\n',
        encoding="utf-8",
    )
    env = dict(os.environ)
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    env["PYTHONUNBUFFERED"] = "1"
    migrated = _run("migrate", str(folder), env=env)
    assert migrated.returncode == 0, migrated.stderr + migrated.stdout
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*_formflow(), "serve", str(folder), "--no-worker"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)  # polling the server's start
        yield base, folder, env, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_serve_from_a_config_file_with_probes_logs_and_reloads(
    deployment: tuple[str, Path, dict[str, str], Any], db_url: str
) -> None:
    base, folder, env, log = deployment
    status, body, headers = _get(base + "/readyz")
    assert status == 200, body
    assert headers["X-Request-Id"] == "probe-1"
    first = body["schema_version"]

    (folder / "blueprint.yaml").write_text(WITH_COLOUR, encoding="utf-8")
    migrated = _run("migrate", str(folder), env=env)
    assert migrated.returncode == 0, migrated.stderr + migrated.stdout
    # Every worker answers with the new version (20 requests reach both of them).
    versions = {_get(base + "/readyz")[1]["schema_version"] for _ in range(20)}
    assert versions == {first + 1}

    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith('{"time"')]
    readyz = [x for x in lines if x["path"] == "/readyz"]
    assert len(readyz) >= 21
    assert {x["request_id"] for x in readyz} == {"probe-1"}
    assert all(x["status"] == 200 and x["method"] == "GET" for x in readyz)
    assert "now serving blueprint" in log.read_text()
