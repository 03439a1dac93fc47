"""Gunicorn workers killed with SIGKILL in the middle of approvals.

Many contracts wait for their manager's approval; 20 API clients race to
approve them (several on the same task) while a gunicorn worker is killed
every ~0.7 s, so kills land inside approve requests. Afterwards:

* no task was decided twice: one ``approved`` state and one ``approve`` audit
  row per approved task, one approved flow run per approved contract;
* every acknowledged approval is recorded, and no task was acknowledged twice;
* every task that is not approved is still open, and approving it now works
  (decidable; nothing half-done holds it).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

import sqlalchemy as sa
from reporting import report
from test_faults import _workers
from test_load import CLIENTS, CRM, _call, world

from engine.loader import load
from engine.runtime import build_runtime
from engine.storage.database import create_engine

__all__ = ["world"]  # the fixture, shared with test_load
EXTRA_CONTRACTS = 68
SECONDS = 7.0
KILL_EVERY = 0.7


def _more_contracts(url: str, count: int) -> None:
    engine = create_engine(url)
    try:
        rt = build_runtime(load(CRM), engine)
        rep = rt.users.get("li.lei").actor
        with engine.connect() as conn:
            customer = conn.execute(sa.text("SELECT min(id) FROM e_customer")).scalar_one()
        for n in range(count):
            contract = rt.records.create(
                "contract",
                {
                    "subject": f"并发审批 {n}",
                    "customer": customer,
                    "total": "5000",
                    "start_date": "2026-01-01",
                    "end_date": "2026-12-31",
                },
                actor=rep,
                via="form",
            ).id
            rt.flows.submit("contract", contract, actor=rep)
    finally:
        engine.dispose()


def _approver(
    world: dict[str, Any],
    tasks: list[int],
    acked: Counter[int],
    outcomes: Counter[str],
    lock: threading.Lock,
    seed: int,
    stop: float,
) -> None:
    rng = random.Random(seed)
    token = world["tokens"]["wang.fang"]
    while time.monotonic() < stop:
        task = rng.choice(tasks)
        status, _body = _call(world["base"], "POST", f"/api/v1/tasks/{task}/approve", token, {})
        with lock:
            outcomes["requests"] += 1
            if status == 200:
                acked[task] += 1
            elif status in (409, 422):
                outcomes["conflicts"] += 1
            elif status == 0:
                outcomes["no answer"] += 1
            else:
                outcomes[f"status {status}"] += 1


def _ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)  # polling the recovery


def test_killing_workers_mid_approval_never_doubles_a_decision(
    world: dict[str, Any], record_property: Any
) -> None:
    _more_contracts(world["url"], EXTRA_CONTRACTS)
    base, token = world["base"], world["tokens"]["wang.fang"]
    status, body = _call(base, "GET", "/api/v1/tasks?limit=100", token)
    assert status == 200, body
    tasks = [item["task_id"] for item in body["data"]]
    assert len(tasks) >= EXTRA_CONTRACTS
    acked: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS
    threads = [
        threading.Thread(target=_approver, args=(world, tasks, acked, outcomes, lock, seed, stop))
        for seed in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    killed: list[int] = []
    time.sleep(0.5)
    while time.monotonic() < stop - 1.0:
        workers = [w for w in _workers(world["pid"]) if w not in killed]
        if workers:
            victim = random.Random(len(killed)).choice(workers)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        time.sleep(KILL_EVERY)  # let the replacement start taking requests
    for t in threads:
        t.join()
    _ready(base)

    engine = create_engine(world["url"])

    def states() -> tuple[dict[int, str], Counter[int], Counter[str]]:
        with engine.connect() as conn:
            state = {
                int(r.id): r.state
                for r in conn.execute(sa.text("SELECT id, state FROM ff_flow_tasks"))
            }
            approvals = Counter(
                int(r.record_id)
                for r in conn.execute(
                    sa.text(
                        "SELECT record_id FROM ff_audit WHERE entity = 'contract' "
                        "AND action = 'approve'"
                    )
                )
            )
            runs = Counter(r.state for r in conn.execute(sa.text("SELECT state FROM ff_flow_runs")))
        return state, approvals, runs

    try:
        state, approvals, runs = states()
        approved_in_load = [t for t in tasks if state[t] == "approved"]
        pending = [t for t in tasks if state[t] != "approved"]
        odd = [t for t in pending if state[t] != "open"]
        doubled = [t for t, n in acked.items() if n > 1] + [
            r for r, n in approvals.items() if n > 1
        ]
        lost = [t for t in acked if state[t] != "approved"]
        # Whatever the kills left pending is still decidable, once.
        decided_after = 0
        for task in pending:
            status, body = _call(base, "POST", f"/api/v1/tasks/{task}/approve", token, {})
            assert status == 200, (task, status, body)
            decided_after += 1
        state, approvals, runs = states()
    finally:
        engine.dispose()
    errors = sum(n for k, n in outcomes.items() if k not in ("requests", "conflicts"))
    report(
        record_property,
        "kill mid-approval",
        workers_killed=len(killed),
        tasks=len(tasks),
        requests=outcomes["requests"],
        acknowledged=sum(acked.values()),
        conflicts=outcomes["conflicts"],
        errors=errors,
        approved_under_load=len(approved_in_load),
        still_pending=len(pending),
        doubled=len(doubled),
        lost=len(lost),
    )
    assert len(killed) >= 3
    assert not doubled and not lost and not odd, (doubled, lost, {t: state[t] for t in odd})
    assert decided_after == len(pending)
    assert all(state[t] == "approved" for t in tasks)
    assert set(approvals.values()) == {1} and len(approvals) == len(tasks)
    assert runs["approved"] == len(tasks) and sum(runs.values()) == len(tasks)
