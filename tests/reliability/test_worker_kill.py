"""``formflow worker`` killed with SIGKILL while it escalates flow timeouts.

Many records are submitted to a flow whose step escalates after an hour; they
are submitted on a clock two hours back, so every timeout job is due on the
real clock the worker process runs on. A worker starts, is killed (``kill
-9``) once some escalations are done and a batch is claimed, and a second one
starts with a short lease: it takes over the abandoned claims when their lease
runs out. Afterwards every timed-out task was escalated exactly once: one
``escalated`` task per original task, one ``escalate`` audit row per record,
every timeout job done, none lost and none doubled (the escalated tasks' own
timers are pending, an hour after their escalation on the real clock).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from reporting import report

from engine.flows import TIMEOUT_JOB
from engine.loader import load
from engine.runtime import Runtime, build_runtime
from engine.settings import Settings
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import FLOW_TASKS_TABLE

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 120
POLL_LIMIT = 120.0  # seconds before a worker is called hung

BLUEPRINT = """
formflow: 1
id: escalations
title: Escalations
roles:
  rep: Rep
  approver: Approver
entities:
  memo:
    label: Memo
    title_field: name
    fields:
      name: {type: text, label: Name, required: true}
      status:
        type: choice
        label: Status
        default: draft
        options: [draft, pending, approved, rejected]
    access:
      rep: {create: true, read: own, update: own}
      approver: {read: all}
flows:
  memo_review:
    entity: memo
    status_field: status
    steps:
      review:
        approvers: {users: [c1]}
        timeout: {after: 1h, action: escalate}
"""


@dataclass
class World:
    path: Path
    url: str
    rt: Runtime

    def timeout_jobs(self, state: str | None = None) -> list[Any]:
        return self.rt.jobs.jobs(kind=TIMEOUT_JOB, state=state)

    def escalated(self) -> Counter[int]:
        """Escalated tasks per task they escalated."""
        tasks = self.rt.schema.metadata.tables[FLOW_TASKS_TABLE]
        with self.rt.engine.connect() as conn:
            rows = conn.execute(
                sa.select(tasks.c.parent_id).where(tasks.c.origin == "escalated")
            ).all()
        return Counter(int(r.parent_id) for r in rows)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    engine = create_engine(db_url)
    past = datetime.now(UTC) - timedelta(hours=2)
    rt = build_runtime(bp, engine, settings=Settings(), clock=lambda: past)
    initialise(engine, bp, rt.schema)
    rt.users.add("li.lei", roles=["rep"], password="kill-test-9")
    rt.users.add("boss", roles=["approver"], password="kill-test-9")
    rt.users.add("c1", roles=["approver"], password="kill-test-9")
    rt.users.set_manager("c1", "boss")
    rep = rt.users.get("li.lei").actor
    for n in range(RECORDS):
        memo = rt.records.create("memo", {"name": f"备忘 {n}"}, actor=rep, via="form")
        rt.flows.submit("memo", memo.id, actor=rep)
    yield World(path, db_url, rt)
    engine.dispose()


def _worker(world: World, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    command = [
        sys.executable,
        "-c",
        "import sys; from engine.cli import main; sys.exit(main())",
        "worker",
        str(world.path),
        "--db",
        world.url,
        "--id",
        name,
        "--interval",
        "0.05",
        "--lease",
        "2",
        "--lang",
        "en",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for(condition: Any, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + POLL_LIMIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)  # polling another process's progress
    text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}:\n{text}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_a_worker_killed_mid_escalations_escalates_each_task_once(
    world: World, tmp_path: Path, record_property: Any
) -> None:
    originals = {j.id for j in world.timeout_jobs("pending")}
    assert len(originals) == RECORDS
    logs = [tmp_path / "doomed.log", tmp_path / "second.log"]
    first = _worker(world, "doomed", logs[0])
    try:
        _wait_for(
            lambda: (
                sum(world.escalated().values()) >= 10
                and any(j.claimed_by == "doomed" for j in world.timeout_jobs("running"))
            ),
            "the first worker to get going",
            logs,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    done_before_kill = sum(world.escalated().values())
    abandoned = {j.id for j in world.timeout_jobs("running") if j.claimed_by == "doomed"}
    assert done_before_kill < RECORDS  # it really died mid-run
    second = _worker(world, "second", logs[1])
    try:
        _wait_for(lambda: len(world.timeout_jobs("done")) == RECORDS, "every escalation", logs)
    finally:
        _stop(second)

    escalated = world.escalated()
    audit = world.rt.schema.audit
    with world.rt.engine.connect() as conn:
        per_record = Counter(
            int(r.record_id)
            for r in conn.execute(
                sa.select(audit.c.record_id).where(
                    audit.c.action == "escalate", audit.c.entity == "memo"
                )
            )
        )
    jobs = {j.id: j for j in world.timeout_jobs() if j.id in originals}
    # The escalated tasks have timers of their own, due an hour after their escalation.
    later = [j for j in world.timeout_jobs() if j.id not in originals]
    retaken = [i for i in abandoned if jobs[i].attempts >= 2 and jobs[i].claimed_by == "second"]
    doubled = [t for t, n in escalated.items() if n > 1] + [
        r for r, n in per_record.items() if n > 1
    ]
    lost = RECORDS - len(escalated)
    report(
        record_property,
        f"worker kill ({world.url.split(':')[0].split('+')[0]})",
        timeout_jobs=len(jobs),
        escalations=sum(escalated.values()),
        before_kill=done_before_kill,
        abandoned_claims=len(abandoned),
        retaken=len(retaken),
        doubled=len(doubled),
        lost=lost,
    )
    assert len(jobs) == RECORDS and {j.state for j in jobs.values()} == {"done"}
    assert len(later) == RECORDS and {j.state for j in later} == {"pending"}
    assert lost == 0 and not doubled
    assert len(per_record) == RECORDS and set(per_record.values()) == {1}
    assert len(retaken) == len(abandoned)  # each abandoned claim taken over after its lease
