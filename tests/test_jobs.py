"""The durable job queue (engine.jobs) on SQLite and PostgreSQL, with an injected clock.

Time never passes by sleeping: the tests move a shared clock. Concurrency is
real: threads and processes each with their own database connections.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.i18n import Text
from engine.jobs import BACKOFF_BASE, Job, JobQueue, backoff
from engine.model import Blueprint
from engine.storage.database import create_engine, is_sqlite, writer
from engine.storage.migrate import initialise
from engine.storage.schema import Schema, build_schema

T0 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def _blueprint() -> Blueprint:
    return Blueprint(id="jobs", title=Text.of("Jobs"), version=1)


@dataclass
class World:
    engine: Engine
    schema: Schema
    clock: Clock
    queue: JobQueue
    url: str


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    bp = _blueprint()
    schema = build_schema(bp)
    engine = create_engine(db_url, pool_size=12)
    initialise(engine, bp, schema)
    clock = Clock()
    yield World(engine, schema, clock, JobQueue(engine, schema, clock), db_url)
    engine.dispose()


def _schedule(world: World, kind: str = "k", due: timedelta = timedelta(0), **kw: Any) -> int:
    with writer(world.engine).begin() as conn:
        job_id = world.queue.schedule(conn, kind, world.clock() + due, kw.pop("payload", {}), **kw)
    assert job_id is not None
    return job_id


def _effects(world: World, conn: Connection | None = None) -> list[str]:
    """Keys of the ff_meta rows the test handlers write (their visible effect)."""
    meta = world.schema.meta
    stmt = sa.select(meta.c.key).where(meta.c.key.like("effect:%")).order_by(meta.c.key)
    if conn is not None:
        return list(conn.execute(stmt).scalars())
    with world.engine.connect() as own:
        return list(own.execute(stmt).scalars())


def _effect(world: World) -> Any:
    """A handler writing one ff_meta row per job: a second run would break the primary key."""

    def handler(job: Job, conn: Connection) -> None:
        conn.execute(world.schema.meta.insert().values(key=f"effect:{job.id}", value="done"))

    return handler


# --------------------------------------------------------------------------- scheduling


def test_only_due_jobs_are_claimed_oldest_first(world: World) -> None:
    later = _schedule(world, due=timedelta(hours=1), payload={"n": 2})
    first = _schedule(world, due=timedelta(0), payload={"n": 1})
    assert [j.id for j in world.queue.claim("w1")] == [first]
    assert world.queue.complete(first, "w1")
    world.clock.advance(timedelta(hours=1))
    [job] = world.queue.claim("w1")
    assert job.id == later and job.payload == {"n": 2}
    assert job.state == "running" and job.attempts == 1 and job.claimed_by == "w1"
    assert job.claimed_until == world.clock() + timedelta(minutes=5)
    assert world.queue.claim("w2") == []


def test_scheduling_is_part_of_the_callers_transaction(world: World) -> None:
    with pytest.raises(RuntimeError), writer(world.engine).begin() as conn:
        world.queue.schedule(conn, "k", T0, {}, dedupe_key="a")
        raise RuntimeError("the action failed")
    assert world.queue.jobs() == []
    _schedule(world, dedupe_key="a")  # the key was never taken
    assert len(world.queue.jobs()) == 1


def test_a_duplicate_dedupe_key_is_a_no_op(world: World) -> None:
    first = _schedule(world, dedupe_key="remind:7")
    with writer(world.engine).begin() as conn:
        assert world.queue.schedule(conn, "k", T0, {}, dedupe_key="remind:7") is None
        assert world.queue.schedule(conn, "k", T0, {}, dedupe_key="remind:8") is not None
        assert world.queue.schedule(conn, "k", T0, {}, dedupe_key="remind:8") is None
        world.queue.schedule(conn, "k", T0, {})  # no key: never a duplicate
        world.queue.schedule(conn, "k", T0, {})
    assert len(world.queue.jobs()) == 4
    [job] = world.queue.claim("w", limit=1)
    assert job.id == first
    world.queue.complete(job.id, "w")
    with writer(world.engine).begin() as conn:  # a done job keeps its key: never done twice
        assert world.queue.schedule(conn, "k", T0, {}, dedupe_key="remind:7") is None


def test_cancel_by_key_kind_or_payload_releases_the_key(world: World) -> None:
    a = _schedule(world, "flow.remind", payload={"task_id": 1}, dedupe_key="r:1")
    b = _schedule(world, "flow.remind", payload={"task_id": 2}, dedupe_key="r:2")
    c = _schedule(world, "flow.timeout", payload={"task_id": 1}, dedupe_key="t:1")
    d = _schedule(world, "other", payload={"task_id": 1, "x": True})
    with writer(world.engine).begin() as conn:
        assert world.queue.cancel(conn, dedupe_key="r:1") == 1
        assert world.queue.cancel(conn, kind="flow.timeout", payload_match={"task_id": 2}) == 0
        assert world.queue.cancel(conn, payload_match={"task_id": 1, "x": True}) == 1
        assert world.queue.cancel(conn, dedupe_key="r:1") == 0  # already cancelled
        with pytest.raises(ValueError):
            world.queue.cancel(conn)
    states = {j.id: j.state for j in world.queue.jobs()}
    assert states == {a: "cancelled", b: "pending", c: "pending", d: "cancelled"}
    _schedule(world, "flow.remind", dedupe_key="r:1")  # the key is free again
    with writer(world.engine).begin() as conn:
        assert world.queue.cancel(conn, kind="flow.timeout") == 1


def test_running_jobs_are_not_cancelled(world: World) -> None:
    job_id = _schedule(world, dedupe_key="r:1")
    world.queue.claim("w")
    with writer(world.engine).begin() as conn:
        assert world.queue.cancel(conn, dedupe_key="r:1") == 0
    assert world.queue.complete(job_id, "w")


# --------------------------------------------------------------------------- finishing


def test_only_the_holder_completes_a_job(world: World) -> None:
    job_id = _schedule(world)
    world.queue.claim("w1")
    assert not world.queue.complete(job_id, "w2")
    assert world.queue.complete(job_id, "w1")
    job = world.queue.get(job_id)
    assert job is not None and job.state == "done" and job.done_at == T0
    assert not world.queue.complete(job_id, "w1")  # twice: nothing more


def test_failures_back_off_exponentially_then_fail(world: World) -> None:
    job_id = _schedule(world, max_attempts=3)
    waits = []
    for attempt in (1, 2):
        [job] = world.queue.claim("w")
        assert job.attempts == attempt
        assert world.queue.fail(job_id, "w", f"boom {attempt}") == "pending"
        job2 = world.queue.get(job_id)
        assert job2 is not None and job2.last_error == f"boom {attempt}"
        waits.append(job2.due_at - world.clock())
        assert world.queue.claim("w") == []  # not due yet
        world.clock.advance(waits[-1])
    assert waits == [BACKOFF_BASE, BACKOFF_BASE * 2] == [backoff(1), backoff(2)]
    world.queue.claim("w")
    assert world.queue.fail(job_id, "w", "boom 3") == "failed"
    job = world.queue.get(job_id)
    assert job is not None and job.state == "failed" and job.attempts == 3
    world.clock.advance(timedelta(days=1))
    assert world.queue.claim("w") == []
    assert backoff(30) == timedelta(hours=1)


def test_an_explicit_retry_in_wins(world: World) -> None:
    job_id = _schedule(world)
    world.queue.claim("w")
    assert world.queue.fail(job_id, "w", "later", retry_in=timedelta(minutes=10)) == "pending"
    assert world.queue.fail(job_id, "w", "again") is None  # not held any more
    job = world.queue.get(job_id)
    assert job is not None and job.due_at == T0 + timedelta(minutes=10)


# --------------------------------------------------------------------------- leases


def test_an_expired_lease_is_claimed_again_and_the_old_worker_loses(world: World) -> None:
    job_id = _schedule(world)
    [held] = world.queue.claim("killed", lease=timedelta(minutes=5))
    world.clock.advance(timedelta(minutes=4))
    assert world.queue.claim("w2") == []  # still leased
    world.clock.advance(timedelta(minutes=2))
    [again] = world.queue.claim("w2")
    assert again.id == job_id and again.attempts == 2 and again.claimed_by == "w2"
    assert not world.queue.complete(job_id, "killed")
    assert world.queue.fail(job_id, "killed", "late") is None
    assert world.queue.complete(job_id, "w2")
    assert held.claimed_by == "killed"


def test_a_job_that_keeps_losing_its_lease_ends_failed(world: World) -> None:
    job_id = _schedule(world, max_attempts=2)
    for _ in range(2):
        assert len(world.queue.claim("w", lease=timedelta(minutes=1))) == 1
        world.clock.advance(timedelta(minutes=2))
    assert world.queue.claim("w") == []
    job = world.queue.get(job_id)
    assert job is not None and job.state == "failed"
    assert "lease ran out" in (job.last_error or "")


# --------------------------------------------------------------------------- running


def test_run_due_commits_the_effect_with_the_completion(world: World) -> None:
    world.queue.register("effect", _effect(world))
    ids = [_schedule(world, "effect") for _ in range(3)]
    assert world.queue.run_due("w") == 3
    assert _effects(world) == sorted(f"effect:{i}" for i in ids)
    assert {j.state for j in world.queue.jobs()} == {"done"}
    assert world.queue.run_due("w") == 0


def test_a_job_done_twice_has_no_double_effect(world: World) -> None:
    """A worker that was presumed dead finishes late: its run is rolled back."""
    world.queue.register("effect", _effect(world))
    job_id = _schedule(world, "effect")
    [late] = world.queue.claim("slow", lease=timedelta(minutes=1))
    world.clock.advance(timedelta(minutes=2))
    assert world.queue.run_due("fast") == 1
    assert not world.queue.run(late, "slow")
    assert _effects(world) == [f"effect:{job_id}"]
    job = world.queue.get(job_id)
    assert job is not None and job.state == "done" and job.claimed_by == "fast"


def test_a_failing_handler_rolls_back_and_retries(world: World) -> None:
    calls: list[int] = []

    def flaky(job: Job, conn: Connection) -> None:
        conn.execute(world.schema.meta.insert().values(key=f"effect:{job.id}", value="x"))
        calls.append(job.attempts)
        if job.attempts < 2:
            raise RuntimeError("smtp down")

    world.queue.register("flaky", flaky)
    job_id = _schedule(world, "flaky")
    assert world.queue.run_due("w") == 1
    job = world.queue.get(job_id)
    assert job is not None and job.state == "pending"
    assert job.last_error == "RuntimeError: smtp down"
    assert _effects(world) == []  # the failed attempt's write was undone
    world.clock.advance(backoff(1))
    assert world.queue.run_due("w") == 1
    assert calls == [1, 2]
    assert _effects(world) == [f"effect:{job_id}"]


def test_a_kind_without_handler_fails_the_attempt(world: World) -> None:
    job_id = _schedule(world, "unknown", max_attempts=1)
    assert world.queue.run_due("w") == 1
    job = world.queue.get(job_id)
    assert job is not None and job.state == "failed"
    assert "no handler" in (job.last_error or "")
    with pytest.raises(ValueError):
        world.queue.register("x", _effect(world))
        world.queue.register("x", _effect(world))


# --------------------------------------------------------------------------- concurrency


def test_threads_claim_each_job_exactly_once(world: World) -> None:
    total = 120
    with writer(world.engine).begin() as conn:
        for n in range(total):
            world.queue.schedule(conn, "k", T0, {"n": n})
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(6)

    def work(name: str) -> None:
        mine: list[int] = []
        start.wait()
        while True:
            jobs = world.queue.claim(name, limit=4)
            if not jobs:
                break
            mine.extend(j.id for j in jobs)
        claimed[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in claimed.values() for i in ids]
    assert len(every) == total and len(set(every)) == total
    owners = {j.id: j.claimed_by for j in world.queue.jobs()}
    for name, ids in claimed.items():
        assert all(owners[i] == name for i in ids)


def test_threads_run_each_job_once(world: World) -> None:
    world.queue.register("effect", _effect(world))
    with writer(world.engine).begin() as conn:
        for _ in range(40):
            world.queue.schedule(conn, "effect", T0, {})
    start = threading.Barrier(4)

    def work(name: str) -> None:
        start.wait()
        while world.queue.run_due(name, limit=3):
            pass

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(_effects(world)) == 40
    assert {j.state for j in world.queue.jobs()} == {"done"}


def _claim_in_process(url: str, worker: str, now: datetime, out: Any) -> None:
    """A separate process (its own engine and connections) claiming until nothing is left."""
    bp = _blueprint()
    engine = create_engine(url)
    queue = JobQueue(engine, build_schema(bp), lambda: now)
    mine: list[int] = []
    while True:
        jobs = queue.claim(worker, limit=3)
        if not jobs:
            break
        mine.extend(j.id for j in jobs)
    engine.dispose()
    out.put((worker, mine))


def test_processes_claim_each_job_exactly_once(world: World) -> None:
    total = 60
    with writer(world.engine).begin() as conn:
        for n in range(total):
            world.queue.schedule(conn, "k", T0, {"n": n})
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_claim_in_process, args=(world.url, f"p{i}", T0, out)) for i in range(2)
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    every = [i for ids in results.values() for i in ids]
    assert sorted(every) == sorted(j.id for j in world.queue.jobs())
    assert len(set(every)) == total


# --------------------------------------------------------------------------- external handlers


def test_an_external_handler_runs_outside_any_transaction(world: World) -> None:
    """While it runs, another connection may write the job's own row (nothing is locked)."""
    seen: list[int] = []

    def call_out(job: Job) -> None:
        with writer(world.engine).begin() as conn:
            if not is_sqlite(world.engine):
                conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            t = world.queue.table
            conn.execute(t.update().where(t.c.id == job.id).values(last_error="touched"))
        seen.append(job.id)

    world.queue.register_external("mail", call_out)
    job_id = _schedule(world, "mail")
    assert world.queue.run_due("w") == 1
    job = world.queue.get(job_id)
    assert seen == [job_id]
    assert job is not None and job.state == "done" and job.last_error == "touched"
    assert "mail" in world.queue.kinds
    with pytest.raises(ValueError):
        world.queue.register("mail", _effect(world))


def test_a_failing_external_handler_is_retried(world: World) -> None:
    calls: list[int] = []

    def flaky(job: Job) -> None:
        calls.append(job.attempts)
        if job.attempts < 2:
            raise RuntimeError("receiver down")

    world.queue.register_external("hook", flaky)
    job_id = _schedule(world, "hook")
    world.queue.run_due("w")
    job = world.queue.get(job_id)
    assert (
        job is not None
        and job.state == "pending"
        and job.last_error == "RuntimeError: receiver down"
    )
    world.clock.advance(backoff(1))
    world.queue.run_due("w")
    done = world.queue.get(job_id)
    assert calls == [1, 2] and done is not None and done.state == "done"


def test_an_external_job_taken_over_is_not_called_by_the_old_worker(world: World) -> None:
    calls: list[str] = []
    world.queue.register_external("hook", lambda job: calls.append(job.claimed_by or ""))
    _schedule(world, "hook")
    [late] = world.queue.claim("slow", lease=timedelta(minutes=1))
    world.clock.advance(timedelta(minutes=2))
    assert world.queue.run_due("fast") == 1
    assert not world.queue.run(late, "slow")
    assert calls == ["fast"]
