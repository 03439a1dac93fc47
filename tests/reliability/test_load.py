"""Load: 20 concurrent API clients create, edit and approve against gunicorn + PostgreSQL.

For a fixed, short time every client loops over three writes: create a
customer, edit one (with the version it last saw, so some edits are stale), and
approve a contract's open manager task (several clients race for the same
task). Afterwards the database is checked against what the clients were told:

* every acknowledged create is in the table and has its ``create`` audit row;
* every acknowledged edit has its ``update`` audit row at the acknowledged
  version, and each customer holds the value of its highest acknowledged edit;
* every refused write got 409 or 422 (anything else is an error);
* no task was approved twice, and each acknowledged approval is recorded once.

The counts (requests, acknowledged writes, conflicts, errors, lost writes) are
printed; lost writes and errors must be 0.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from reporting import report

from engine.loader import load
from engine.records import SYSTEM
from engine.runtime import build_runtime
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema

ROOT = Path(__file__).resolve().parents[2]
CRM = ROOT / "blueprints" / "crm"
CLIENTS = 20
SECONDS = float(os.environ.get("FORMFLOW_LOAD_SECONDS", "8"))
CONTRACTS = 12
START_TIMEOUT = 60.0


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    acked: int = 0
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    created: dict[int, str] = field(default_factory=dict)  # id -> name
    edits: dict[int, dict[int, str]] = field(default_factory=dict)  # id -> version -> phone
    approvals: Counter[int] = field(default_factory=Counter)  # task -> acknowledged approvals


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _call(
    base: str, method: str, path: str, token: str, body: Any = None, headers: Any = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read()
        except (OSError, http.client.HTTPException):
            # The status line came (a refusal), the body was cut by a killed worker.
            return exc.code, None
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw[:200]
    except (OSError, http.client.HTTPException) as exc:  # reset, refused: no answer at all
        return 0, f"{type(exc).__name__}: {exc}"


@pytest.fixture
def world(pg_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    # Not ``from conftest import reset_postgres``: in a whole-suite run the module named
    # ``conftest`` may be tests/browser/conftest.py. The same reset, written out:
    wipe = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with wipe.connect() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        wipe.dispose()
    bp = load(CRM)
    engine = create_engine(pg_url)
    initialise(engine, bp, build_schema(bp))
    rt = build_runtime(bp, engine)
    users = rt.users
    for name, roles in (("admin", ["admin"]), ("wang.fang", ["sales_manager"])):
        users.add(name, roles=roles, password="load-test-9")
    users.add("li.lei", roles=["sales_rep"], password="load-test-9")
    users.set_manager("li.lei", "wang.fang")
    tokens = {n: users.create_token(n) for n in ("admin", "wang.fang", "li.lei")}
    rep = users.get("li.lei").actor
    customer = rt.records.create(
        "customer", {"name": "合同客户", "email": "a@example.com", "owner": "li.lei"}, actor=SYSTEM
    ).id
    for n in range(CONTRACTS):
        contract = rt.records.create(
            "contract",
            {
                "subject": f"合同 {n}",
                "customer": customer,
                "total": "5000",
                "start_date": "2026-01-01",
                "end_date": "2026-12-31",
            },
            actor=rep,
            via="form",
        ).id
        rt.flows.submit("contract", contract, actor=rep)
    engine.dispose()
    port = _free_port()
    env = dict(os.environ)
    env.update(
        XDG_RUNTIME_DIR=str(tmp_path),
        FORMFLOW_SECRET_KEY="load-test-secret",
        FORMFLOW_UPLOAD_DIR=str(tmp_path / "uploads"),
        FORMFLOW_LOG_REQUESTS="false",
        FORMFLOW_DB_POOL_SIZE="3",
        FORMFLOW_DB_MAX_OVERFLOW="2",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    log = tmp_path / "serve.log"
    command = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "serve", str(CRM), "--db", pg_url, "--port", str(port), "--workers", "4"],
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
                with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)  # polling the server's start
        yield {"base": base, "tokens": tokens, "url": pg_url, "log": log, "pid": process.pid}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _digits(text: object) -> str:
    return "".join(ch for ch in str(text) if ch.isdigit())


def _client(world: dict[str, Any], tasks: list[int], tally: Tally, seed: int, stop: float) -> None:
    rng = random.Random(seed)
    base, tokens = world["base"], world["tokens"]
    seen: dict[int, int] = {}  # customer id -> version this client last saw
    n = 0
    while time.monotonic() < stop:
        n += 1
        action = rng.choice(("create", "edit", "edit", "approve"))
        if action == "approve" and tasks:
            task = rng.choice(tasks)
            status, body = _call(
                base, "POST", f"/api/v1/tasks/{task}/approve", tokens["wang.fang"], {}
            )
            kind = ("approve", task, None)
        elif action == "edit" and seen:
            rid = rng.choice(sorted(seen))
            phone = f"021-{seed:02d}{n:06d}"
            status, body = _call(
                base,
                "PATCH",
                f"/api/v1/customer/{rid}",
                tokens["admin"],
                {"phone": phone},
                {"If-Match": f'"{seen[rid]}"'},
            )
            kind = ("edit", rid, phone)
        else:
            name = f"负载客户 {seed}-{n}"
            status, body = _call(
                base,
                "POST",
                "/api/v1/customer",
                tokens["admin"],
                {"name": name, "email": "load@example.com", "owner": "li.lei"},
            )
            kind = ("create", None, name)
        with tally.lock:
            tally.requests += 1
            if status in (200, 201):
                tally.acked += 1
                if kind[0] == "create":
                    tally.created[body["id"]] = kind[2]
                    seen[body["id"]] = body["version"]
                elif kind[0] == "edit":
                    tally.edits.setdefault(kind[1], {})[body["version"]] = kind[2]
                    seen[kind[1]] = body["version"]
                else:
                    tally.approvals[kind[1]] += 1
            elif status in (409, 422):
                tally.conflicts += 1
                if kind[0] == "edit" and isinstance(body, dict):
                    seen[kind[1]] = int(body.get("current_version") or seen[kind[1]])
            else:
                tally.errors.append(f"{kind[0]} -> {status}: {str(body)[:200]}")
        if kind[0] == "create" and len(seen) > 3:
            # Share ids between clients so edits race each other.
            with tally.lock:
                other = rng.choice(sorted(tally.created))
            seen.setdefault(other, 1)


def test_concurrent_writes_are_all_kept_and_approvals_never_double(
    world: dict[str, Any], record_property: Any
) -> None:
    status, body = _call(
        world["base"], "GET", "/api/v1/tasks?limit=100", world["tokens"]["wang.fang"]
    )
    assert status == 200, body
    tasks = [item["task_id"] for item in body["data"]]
    assert len(tasks) == CONTRACTS
    tally = Tally()
    stop = time.monotonic() + SECONDS
    threads = [
        threading.Thread(target=_client, args=(world, tasks, tally, seed, stop))
        for seed in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    lost: list[str] = []
    engine = create_engine(world["url"])
    try:
        with engine.connect() as conn:
            names = dict(conn.execute(sa.text("SELECT id, name FROM e_customer")).all())
            phones = dict(conn.execute(sa.text("SELECT id, phone FROM e_customer")).all())
            audit = {
                (r.record_id, r.action, r.version)
                for r in conn.execute(
                    sa.text(
                        "SELECT record_id, action, version FROM ff_audit WHERE entity = 'customer'"
                    )
                )
            }
            runs = conn.execute(
                sa.text("SELECT count(*) FROM ff_flow_runs WHERE state = 'approved'")
            ).scalar_one()
            decided = Counter(
                r.id
                for r in conn.execute(
                    sa.text("SELECT id FROM ff_flow_tasks WHERE state = 'approved'")
                )
            )
    finally:
        engine.dispose()
    for rid, name in tally.created.items():
        if names.get(rid) != name or (rid, "create", 1) not in audit:
            lost.append(f"create {rid}")
    for rid, versions in tally.edits.items():
        for version in versions:
            if (rid, "update", version) not in audit:
                lost.append(f"edit {rid} v{version}")
        if _digits(phones.get(rid)) != _digits(versions[max(versions)]):
            lost.append(f"edit {rid}: holds {phones.get(rid)!r}")
    doubled = [t for t, n in tally.approvals.items() if n > 1]
    for task in tally.approvals:
        if decided[task] != 1:
            lost.append(f"approval of task {task}")
    report(
        record_property,
        f"load ({CLIENTS} clients, {SECONDS:.0f} s)",
        requests=tally.requests,
        acknowledged=tally.acked,
        conflicts=tally.conflicts,
        errors=len(tally.errors),
        lost=len(lost),
        approvals=sum(tally.approvals.values()),
        tasks=len(tasks),
    )
    assert not tally.errors, tally.errors[:10]
    assert not lost, lost[:10]
    assert not doubled
    assert tally.acked > CLIENTS and tally.conflicts > 0  # the load did race
    assert sum(tally.approvals.values()) == len(tasks)  # every task approved exactly once
    assert sorted(decided) == sorted(tasks) and runs == CONTRACTS
