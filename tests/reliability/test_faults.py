"""Faults under load: app workers killed with SIGKILL in the middle of requests.

The load of ``test_load`` runs while two gunicorn workers are killed (``kill
-9``) one after the other, mid-request. Clients whose
request died get no answer (an error they can see), never a false
acknowledgement; afterwards every acknowledged write is in the database and
its audit log, every record has its ``create`` audit row and every ``create``
audit row its record (nothing half-written), no approval doubles, and the
service answers again without anyone restarting it.

Restarting PostgreSQL under load is not part of this file: the server at
127.0.0.1:5432 is shared with every other test run on the machine.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from reporting import report
from test_load import CLIENTS, CONTRACTS, Tally, _call, _client, _digits, world

from engine.storage.database import create_engine

__all__ = ["world"]  # the fixture, shared with test_load
SECONDS = 10.0


def _workers(master: int) -> list[int]:
    """The pids of the gunicorn workers (children of the serve process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == master:
            found.append(int(entry.name))
    return sorted(found)


def test_killing_workers_mid_request_loses_no_acknowledged_write(
    world: dict[str, Any], record_property: Any
) -> None:
    status, body = _call(
        world["base"], "GET", "/api/v1/tasks?limit=100", world["tokens"]["wang.fang"]
    )
    assert status == 200, body
    tasks = [item["task_id"] for item in body["data"]]
    tally = Tally()
    stop = time.monotonic() + SECONDS
    threads = [
        threading.Thread(target=_client, args=(world, tasks, tally, seed, stop))
        for seed in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    killed: list[int] = []
    for pause in (2.0, 3.0):
        time.sleep(pause)  # let requests be in flight, then kill one worker
        workers = [w for w in _workers(world["pid"]) if w not in killed]
        assert workers, "no gunicorn worker found"
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])
    for t in threads:
        t.join()

    # The service came back by itself: gunicorn replaced the workers.
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(world["base"] + "/readyz", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)  # polling the recovery
    assert not set(killed) & set(_workers(world["pid"]))
    status, made = _call(
        world["base"],
        "POST",
        "/api/v1/customer",
        world["tokens"]["admin"],
        {"name": "恢复之后", "email": "after@example.com", "owner": "li.lei"},
    )
    assert status == 201, made

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
            approved = Counter(
                r.id
                for r in conn.execute(
                    sa.text("SELECT id FROM ff_flow_tasks WHERE state = 'approved'")
                )
            )
            runs = conn.execute(
                sa.text("SELECT count(*) FROM ff_flow_runs WHERE state = 'approved'")
            ).scalar_one()
    finally:
        engine.dispose()
    lost = [f"create {rid}" for rid, name in tally.created.items() if names.get(rid) != name]
    lost += [
        f"edit {rid} v{v}"
        for rid, versions in tally.edits.items()
        for v in versions
        if (rid, "update", v) not in audit
    ]
    half = [rid for rid in names if (rid, "create", 1) not in audit]
    half += [rid for rid, action, _v in audit if action == "create" and rid not in names]
    # An edit acknowledged last may have been overtaken by one whose answer was lost.
    stale = [
        rid
        for rid, versions in tally.edits.items()
        if max(versions) == max(v for r, a, v in audit if r == rid)
        and _digits(phones.get(rid)) != _digits(versions[max(versions)])
    ]
    no_answer = [e for e in tally.errors if " -> 0:" in e]
    other = [e for e in tally.errors if " -> 0:" not in e and " -> 5" not in e]
    report(
        record_property,
        f"faults ({len(killed)} workers killed)",
        requests=tally.requests,
        acknowledged=tally.acked,
        conflicts=tally.conflicts,
        errors=len(tally.errors),
        without_an_answer=len(no_answer),
        lost=len(lost) + len(stale),
    )
    assert not lost and not stale, (lost + [str(s) for s in stale])[:10]
    assert not half, half[:10]
    assert not other, other[:10]
    assert all(n <= 1 for n in tally.approvals.values())
    assert all(approved[t] == 1 for t in tally.approvals)
    assert runs == len(approved) <= CONTRACTS
