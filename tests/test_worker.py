"""The worker (engine.worker, ``formflow worker``) on SQLite and PostgreSQL.

The headline test kills a real worker process with SIGKILL while it works
through date-triggered automations whose effect is a database row, restarts
two workers side by side, and checks every job took effect exactly once. The
subprocess workers use the real clock (they are other programs); the tests
only poll the database for progress and never assert on times.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.automations import DATE_JOB
from engine.cli import main
from engine.jobs import Job
from engine.loader import load
from engine.runtime import Runtime, build_runtime
from engine.settings import Settings
from engine.storage.database import create_engine, writer
from engine.storage.migrate import initialise
from engine.worker import Worker, default_worker_id, start_in_thread

ROOT = Path(__file__).resolve().parent.parent
POLL_LIMIT = 120.0  # seconds a subprocess test may take before it is called hung

BLUEPRINT = """
formflow: 1
id: timers
title: Timers
entities:
  task:
    label: Task
    title_field: name
    fields:
      name: {type: text, label: Name}
      due: {type: datetime, label: Due}
  log:
    label: Log
    fields:
      task: {type: ref, label: Task, to: task, on_delete: cascade}
      what: {type: text, label: What}
automations:
  overdue:
    entity: task
    on: date
    date_field: due
    actions:
      - create: {entity: log, values: {task: "=id", what: "=CONCAT('overdue: ', name)"}}
"""


@dataclass
class World:
    path: Path
    url: str
    rt: Runtime

    def count(self, entity: str) -> int:
        table = self.rt.schema.entity(entity).table
        with self.rt.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def logs_per_task(self) -> dict[int, int]:
        task = self.rt.schema.entity("log").columns["task"]
        with self.rt.engine.connect() as conn:
            rows = conn.execute(sa.select(task, sa.func.count()).group_by(task)).all()
        return {int(t): int(n) for t, n in rows}

    def jobs(self, state: str | None = None) -> list[Job]:
        return self.rt.jobs.jobs(kind=DATE_JOB, state=state)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    engine = create_engine(db_url)
    rt = build_runtime(bp, engine, settings=Settings())
    initialise(engine, bp, rt.schema)
    yield World(path, db_url, rt)
    engine.dispose()


def _due_tasks(world: World, count: int) -> None:
    """Tasks whose date trigger is due now (on the real clock: the workers are real)."""
    due = datetime.now(UTC) - timedelta(minutes=1)
    with writer(world.rt.engine).begin() as conn:
        for n in range(count):
            world.rt.records.create("task", {"name": f"t{n}", "due": due}, conn=conn)


def _worker_process(world: World, name: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
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
        "--lang",
        "en",
        *extra,
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for(condition: object, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + POLL_LIMIT
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)  # polling another process's progress
    text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}:\n{text}")


# --------------------------------------------------------------------------- in-process


def test_run_once_and_a_thread_that_stops_when_told(world: World) -> None:
    _due_tasks(world, 5)
    worker = Worker(world.rt.jobs, "w1")
    assert worker.run_once() == 5 and world.count("log") == 5
    assert worker.run_once() == 0
    _due_tasks(world, 3)
    threaded = Worker(world.rt.jobs, "w2", interval=0.05)
    thread = start_in_thread(threaded)
    _wait_for(lambda: world.count("log") == 8, "the thread to run the jobs", [])
    threaded.stop()
    thread.join(timeout=30)
    assert not thread.is_alive() and threaded.stopping
    assert world.logs_per_task() == {i: 1 for i in range(1, 9)}


def test_two_workers_in_threads_run_each_job_once(world: World) -> None:
    _due_tasks(world, 60)
    workers = [Worker(world.rt.jobs, f"t{n}", interval=0.05, batch=5) for n in range(2)]
    threads = [threading.Thread(target=w.run_once) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert world.count("log") == 60
    assert set(world.logs_per_task().values()) == {1}
    assert sum(w.claimed for w in workers) == 60


def test_default_worker_id_names_host_and_process() -> None:
    assert default_worker_id().endswith(f":{os.getpid()}")
    with pytest.raises(ValueError):
        Worker(None, "x", interval=0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the command


def test_worker_once_runs_the_due_jobs(world: World) -> None:
    _due_tasks(world, 4)
    result = CliRunner().invoke(
        main, ["worker", str(world.path), "--db", world.url, "--once", "--lang", "en"]
    )
    assert result.exit_code == 0, result.output
    assert "ran 5 due job(s)" in result.output  # four date jobs and the first sweep
    assert world.count("log") == 4


def test_worker_refuses_a_database_behind_the_blueprint(tmp_path: Path) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(main, ["worker", str(path), "--db", url, "--once", "--lang", "en"])
    assert result.exit_code == 1
    assert "formflow migrate" in result.output


def test_sigterm_stops_a_worker_gracefully(world: World, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    process = _worker_process(world, "graceful", log)
    try:
        _wait_for(lambda: "is running" in log.read_text(errors="replace"), "the start", [log])
        _due_tasks(world, 3)
        _wait_for(lambda: world.count("log") == 3, "the jobs", [log])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert "stopped" in log.read_text(errors="replace")


def test_a_worker_killed_mid_run_and_restarted_does_each_job_once(
    world: World, tmp_path: Path
) -> None:
    total = 150
    _due_tasks(world, total)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log", tmp_path / "w3.log"]
    first = _worker_process(world, "doomed", logs[0], "--lease", "2")
    try:
        # kill -9 while it is in the middle: some effects done, a batch claimed
        _wait_for(
            lambda: world.count("log") >= 20 and bool(world.jobs("running")),
            "the first worker to get going",
            logs,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    assert world.count("log") < total  # it really died mid-run
    abandoned = {j.id for j in world.jobs("running") if j.claimed_by == "doomed"}
    # two new workers at once (as on two hosts); the abandoned claims expire after 2s
    others = [_worker_process(world, f"w{n}", logs[n], "--lease", "2") for n in (1, 2)]
    try:
        _wait_for(lambda: len(world.jobs("done")) == total, "every job to be done", logs)
    finally:
        for process in others:
            process.send_signal(signal.SIGTERM)
        for process in others:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    assert world.count("log") == total
    assert world.logs_per_task() == {i: 1 for i in range(1, total + 1)}  # once each
    jobs = {j.id: j for j in world.jobs()}
    assert {j.state for j in jobs.values()} == {"done"}
    for job_id in abandoned:  # taken over by a new worker and finished there
        assert jobs[job_id].attempts >= 2 and jobs[job_id].claimed_by in ("w1", "w2")


# --------------------------------------------------------------------------- formflow serve


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("mode", ["gunicorn", "dev"])
def test_serve_demo_runs_the_jobs_with_one_command(tmp_path: Path, mode: str) -> None:
    """``formflow serve --demo`` (gunicorn: a worker process; --dev: a thread) runs due jobs."""
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    db = tmp_path / "demo.db"
    log = tmp_path / "serve.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    env["PYTHONUNBUFFERED"] = "1"
    command = [
        sys.executable,
        "-c",
        "import sys; from engine.cli import main; sys.exit(main())",
        "serve",
        str(path),
        "--db",
        f"sqlite:///{db}",
        "--demo",
        "--port",
        str(_free_port()),
        "--workers",
        "1",
        "--lang",
        "en",
        *(["--dev"] if mode == "dev" else []),
    ]
    with log.open("ab") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for(lambda: "is serving" in log.read_text(errors="replace"), "the server", [log])
        bp = load(path)
        engine = create_engine(f"sqlite:///{db}")
        try:
            world = World(path, f"sqlite:///{db}", build_runtime(bp, engine, settings=Settings()))
            _due_tasks(world, 2)
            _wait_for(lambda: world.count("log") == 2, "the server's worker", [log])
        finally:
            engine.dispose()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
    if mode == "gunicorn":  # the worker process stopped with the server
        _wait_for(lambda: "stopped" in log.read_text(errors="replace"), "the worker to stop", [log])


def test_the_sweep_finds_datetime_moments_of_imported_records(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    engine = create_engine(db_url)
    now = [datetime(2024, 6, 3, 1, 0, tzinfo=UTC)]
    try:
        rt = build_runtime(bp, engine, clock=lambda: now[0], settings=Settings())
        initialise(engine, bp, rt.schema)
        rt.records.create_many(  # an import: no events, no date jobs yet
            "task",
            [
                {"name": "late", "due": "2024-06-02T12:00:00+08:00"},  # 13h ago: caught up
                {"name": "soon", "due": "2024-06-03T10:30:00+08:00"},  # in 90 minutes
                {"name": "old", "due": "2024-05-01T09:00:00+08:00"},  # past the grace day
                {"name": "far", "due": "2024-07-01T09:00:00+08:00"},
            ],
        )
        rt.automations.schedule_sweep()
        worker = Worker(rt.jobs, "w")
        worker.run_once()
        world = World(path, db_url, rt)
        assert world.count("log") == 1  # "late" at once
        assert {j.payload["record_id"] for j in world.jobs("pending")} == {2}  # "soon"
        now[0] += timedelta(minutes=90)
        worker.run_once()
        assert world.logs_per_task() == {1: 1, 2: 1}
    finally:
        engine.dispose()
