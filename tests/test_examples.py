"""examples/: the API client against a real server, the demo data generator through imports.

The CRM template is served by ``formflow serve`` (gunicorn) on SQLite and PostgreSQL;
``api_client.py`` runs as its own process with a token made by ``formflow token create``.
"""

from __future__ import annotations

import csv
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env["XDG_RUNTIME_DIR"] = str(tmp)
    for name in ("FORMFLOW_DB", "FORMFLOW_CONFIG", "FORMFLOW_TOKEN"):
        env.pop(name, None)
    return env


def _formflow(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _crm(tmp: Path) -> Path:
    folder = tmp / "crm"
    shutil.copytree(ROOT / "blueprints" / "crm", folder, ignore=shutil.ignore_patterns("*.db"))
    return folder


def _count(db_url: str, table: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM e_{table}")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The CRM served on ``db_url`` with a rep li (reporting to wang) and li's API token."""
    env = _env(tmp_path)
    folder = _crm(tmp_path)
    _formflow("migrate", str(folder), "--db", db_url, env=env)
    _formflow("user", "add", "wang", str(folder), "--role", "sales_manager", "--no-password",
              "--db", db_url, env=env)  # fmt: skip
    _formflow("user", "add", "li", str(folder), "--role", "sales_rep", "--manager", "wang",
              "--no-password", "--db", db_url, env=env)  # fmt: skip
    out = _formflow("token", "create", "li", str(folder), "--db", db_url, env=env)
    token = next(line.strip() for line in out.splitlines() if line.startswith("ff_"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", str(folder), "--db", db_url,
             "--port", str(port), "--workers", "1", "--no-worker"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)  # polling the server's start
        yield base, token, env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_api_client_moves_a_deal_and_reads_the_kpis(
    server: tuple[str, str, dict[str, str]], db_url: str
) -> None:
    base, token, env = server
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "api_client.py"),
            "--url",
            base,
            "--customer",
            "杭州远航机电",
        ],
        capture_output=True,
        text=True,
        env={**env, "FORMFLOW_TOKEN": token},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("customer #") and lines[0].endswith("杭州远航机电")
    stages = [line.split("stage=")[1].split()[0] for line in lines if "stage=" in line]
    assert stages == ["lead", "needs", "proposal", "contract", "won"]
    versions = [int(line.rsplit("version=", 1)[1]) for line in lines if "version=" in line]
    assert versions == [1, 2, 3, 4, 5]
    assert "probability=100" in lines[5]
    # the only closed deal of li is won: a win rate of 100% in its year; nothing is open
    shown = re.search(r"^kpi win_rate \(Win rate, (\d{4})\): 100$", done.stdout, re.M)
    assert shown, done.stdout
    assert any(line.startswith("kpi pipeline") and line.endswith(": 0") for line in lines)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT stage, owner, version, amount, close_date FROM e_opportunity")
            ).one()
    finally:
        engine.dispose()
    assert (row.stage, row.owner, row.version) == ("won", "li", 5)
    assert float(row.amount) == 250000
    assert str(row.close_date)[:4] == shown.group(1)


def test_api_client_reports_a_bad_token(server: tuple[str, str, dict[str, str]]) -> None:
    base, _, env = server
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "api_client.py"), "--url", base, "--token", "ff_wrong"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr


def _generate(out: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "generate_demo_data.py"), str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    day = "2026-01-15"
    _generate(tmp_path / "a", "--customers", "30", "--seed", "5", "--as-of", day)
    _generate(tmp_path / "b", "--customers", "30", "--seed", "5", "--as-of", day)
    _generate(tmp_path / "c", "--customers", "30", "--seed", "6", "--as-of", day)
    for name in ("customer.csv", "opportunity.csv", "contract.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "customer.csv").read_bytes() != (
        tmp_path / "c" / "customer.csv"
    ).read_bytes()


def test_generated_csvs_import_into_a_fresh_database(tmp_path: Path, db_url: str) -> None:
    env = _env(tmp_path)
    folder = _crm(tmp_path)
    today = datetime.date.today().isoformat()
    printed = _generate(tmp_path / "out", "--customers", "60", "--seed", "11", "--as-of", today,
                        "--owners", "li,zhao")  # fmt: skip
    _formflow("migrate", str(folder), "--db", db_url, env=env)
    for name in ("li", "zhao"):
        _formflow("user", "add", name, str(folder), "--role", "sales_rep", "--no-password",
                  "--db", db_url, env=env)  # fmt: skip
    expected: dict[str, list[dict[str, str]]] = {}
    for entity in ("customer", "opportunity", "contract"):
        path = tmp_path / "out" / f"{entity}.csv"
        with path.open(encoding="utf-8", newline="") as f:
            expected[entity] = list(csv.DictReader(f))
        _formflow("import", str(folder), entity, str(path), "--db", db_url, env=env)
        assert _count(db_url, entity) == len(expected[entity]) > 0
    counts = printed.split(" in ")[0]
    assert counts == (
        f"{len(expected['customer'])} customers, {len(expected['opportunity'])} opportunities, "
        f"{len(expected['contract'])} contracts"
    )
    assert len(expected["customer"]) == 60
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            owners = set(conn.execute(sa.text("SELECT DISTINCT owner FROM e_contract")).scalars())
            linked = conn.execute(
                sa.text("SELECT COUNT(*) FROM e_contract WHERE opportunity IS NOT NULL")
            ).scalar_one()
    finally:
        engine.dispose()
    assert owners <= {"li", "zhao"} and owners
    assert linked == len(expected["contract"])
