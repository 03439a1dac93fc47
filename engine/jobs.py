"""A durable job queue in the database (table ``ff_jobs``): timers and outbox work.

Reminders and timeouts of flow steps, date triggers, e-mails and webhook
retries are jobs: a ``kind`` (which handler runs it), a ``payload`` (JSON), and
the moment it is ``due_at``. Workers (``formflow worker``, or the in-process
runner of ``formflow serve --demo``) claim due jobs and run their handlers.

Rules:

* **Scheduling is transactional.** :meth:`JobQueue.schedule` writes in the
  caller's transaction: a job scheduled by a flow action or an automation
  exists exactly when that action committed (an outbox).
* **Deduplication.** A job may carry a ``dedupe_key`` (unique): scheduling a
  key that a pending, running, done or failed job holds is a no-op (``None``
  comes back), so a handler or a listener that runs twice schedules once.
  Cancelling a job releases its key, so the same thing can be scheduled again.
* **Each due job is claimed by exactly one worker**, across threads,
  processes and hosts: on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``
  (claimers never wait for each other), on SQLite with a conditional
  ``UPDATE`` inside ``BEGIN IMMEDIATE`` (writers take turns). A claim is a
  *lease* (``claimed_until``); a job whose lease ran out (its worker was killed)
  is claimable again, so killed work is retried. ``attempts`` counts claims: a
  job whose lease ran out ``max_attempts`` times is marked failed instead of
  being claimed again (it keeps killing its workers).
* **A job's effect and its completion commit together.** :meth:`JobQueue.run`
  runs the handler in one transaction that first re-takes the claim (it must
  still be this worker's; on PostgreSQL the row stays locked, so nobody else can
  re-claim it meanwhile) and ends with :meth:`JobQueue.complete`. If another
  worker took the job over after the lease ran out, completing fails and the
  whole transaction, the handler's writes included, is rolled back: a job done
  twice has no double effect. Handlers should still be idempotent where they
  can (check that what they act on is still due), and must not call the outside
  world before their transaction commits unless a repeat is harmless.
* **Failures back off.** A handler that raises rolls back its writes; the job
  goes back to pending, due after ``30s · 2^(attempts-1)`` (at most an hour),
  until ``max_attempts`` attempts have failed; then it stays ``failed`` with its
  ``last_error``.
* **Time** comes from the injected ``clock`` (aware UTC datetimes), so tests
  move time forward instead of sleeping.
* **Handlers on SQLite** hold the database's write lock while they run: keep
  them short (a few statements), as every write of the app waits meanwhile.
* **External handlers** (:meth:`JobQueue.register_external`) talk to the
  outside world — an SMTP server, a webhook receiver — and may take seconds.
  They run *outside* any transaction (so SQLite's write lock is not held while
  a server answers), after the worker renewed its lease; the completion
  commits right after the handler returns. A worker killed in between repeats
  the call on retry: external effects are at least once, so receivers should
  deduplicate (webhooks carry a delivery id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.storage.database import is_sqlite, writer
from engine.storage.schema import JOBS_TABLE, Schema

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DEFAULT_LEASE",
    "JOB_STATES",
    "ExternalHandler",
    "Handler",
    "Job",
    "JobQueue",
    "backoff",
]

log = logging.getLogger(__name__)

JOB_STATES: tuple[str, ...] = ("pending", "running", "done", "failed", "cancelled")
DEFAULT_LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
MAX_ERROR_TEXT = 4000


def backoff(attempts: int) -> timedelta:
    """How long to wait before the next attempt after ``attempts`` failed ones."""
    delay: timedelta = BACKOFF_BASE * (2 ** max(0, min(attempts - 1, 20)))
    return delay if delay < BACKOFF_CAP else BACKOFF_CAP


@dataclass(frozen=True)
class Job:
    """One row of ``ff_jobs``."""

    id: int
    kind: str
    due_at: datetime
    payload: Mapping[str, Any]
    dedupe_key: str | None
    state: str
    attempts: int
    max_attempts: int
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str | None
    created_at: datetime
    done_at: datetime | None


#: A job handler: does the job's work with ``conn``, the transaction that completes it.
Handler = Callable[[Job, Connection], None]
#: An external handler: calls the outside world, outside any transaction (see the module doc).
ExternalHandler = Callable[[Job], None]


def _job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=int(m["id"]),
        kind=m["kind"],
        due_at=m["due_at"],
        payload=dict(m["payload"] or {}),
        dedupe_key=m["dedupe_key"],
        state=m["state"],
        attempts=int(m["attempts"]),
        max_attempts=int(m["max_attempts"]),
        claimed_by=m["claimed_by"],
        claimed_until=m["claimed_until"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        done_at=m["done_at"],
    )


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_TEXT]


class _LeaseLost(Exception):
    """Another worker owns the job now; this worker's transaction must not commit."""


class JobQueue:
    """Schedule, claim, run, complete and fail jobs of ``ff_jobs`` (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        schema: Schema,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.write_engine = writer(engine)
        self.table: sa.Table = schema.metadata.tables[JOBS_TABLE]
        self.clock = clock or (lambda: datetime.now(UTC))
        self._handlers: dict[str, Handler] = {}
        self._external: dict[str, ExternalHandler] = {}

    # -- scheduling (in the caller's transaction) --------------------------------------

    def schedule(
        self,
        conn: Connection,
        kind: str,
        due_at: datetime,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        max_attempts: int = 5,
    ) -> int | None:
        """Add a job in ``conn``'s transaction; its id, or None if ``dedupe_key`` is taken."""
        if not kind:
            raise ValueError("a job needs a kind")
        if due_at.tzinfo is None:
            raise ValueError(f"due_at must be timezone-aware, got {due_at!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        t = self.table
        values = {
            "kind": kind,
            "due_at": due_at,
            "payload": dict(payload),
            "dedupe_key": dedupe_key,
            "state": "pending",
            "attempts": 0,
            "max_attempts": max_attempts,
            "created_at": self.clock(),
        }
        if dedupe_key is None:
            result = conn.execute(t.insert().values(**values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]
        if is_sqlite(self.engine):
            from sqlalchemy.dialects import sqlite

            lite = (
                sqlite.insert(t)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[t.c.dedupe_key])
            )
            found = conn.execute(lite.returning(t.c.id)).first()
        else:
            from sqlalchemy.dialects import postgresql

            pg = (
                postgresql.insert(t)
                .values(**values)
                .on_conflict_do_nothing(index_elements=[t.c.dedupe_key])
            )
            found = conn.execute(pg.returning(t.c.id)).first()
        return None if found is None else int(found[0])

    def cancel(
        self,
        conn: Connection,
        *,
        dedupe_key: str | None = None,
        kind: str | None = None,
        payload_match: Mapping[str, Any] | None = None,
    ) -> int:
        """Cancel the pending jobs matching every given criterion; how many.

        ``payload_match``: each key must equal in the job's payload. Running jobs
        are left alone (their handler is expected to find there is nothing left to
        do); a cancelled job's ``dedupe_key`` is released.
        """
        if dedupe_key is None and kind is None and not payload_match:
            raise ValueError("cancel needs a dedupe_key, a kind or a payload_match")
        t = self.table
        where = [t.c.state == "pending"]
        if dedupe_key is not None:
            where.append(t.c.dedupe_key == dedupe_key)
        if kind is not None:
            where.append(t.c.kind == kind)
        if payload_match:
            wanted = dict(payload_match)
            rows = conn.execute(sa.select(t.c.id, t.c.payload).where(*where)).all()
            ids = [
                r.id
                for r in rows
                if all((r.payload or {}).get(k, _MISSING) == v for k, v in wanted.items())
            ]
            if not ids:
                return 0
            where.append(t.c.id.in_(ids))
        result = conn.execute(
            t.update()
            .where(*where)
            .values(state="cancelled", dedupe_key=None, done_at=self.clock(), claimed_until=None)
        )
        return int(result.rowcount)

    # -- claiming and finishing --------------------------------------------------------

    def claim(
        self, worker_id: str, *, limit: int = 20, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Claim up to ``limit`` due jobs for ``worker_id`` for ``lease``; oldest due first.

        Due: pending with ``due_at`` reached, or running with an expired lease. A
        job whose expired lease used up its attempts is marked failed instead.
        """
        if limit < 1:
            return []
        t = self.table
        now = self.clock()
        due = sa.or_(
            sa.and_(t.c.state == "pending", t.c.due_at <= now),
            sa.and_(t.c.state == "running", t.c.claimed_until < now),
        )
        with self.write_engine.begin() as conn:
            stmt = (
                sa.select(t.c.id, t.c.state, t.c.attempts, t.c.max_attempts)
                .where(due)
                .order_by(t.c.due_at, t.c.id)
                .limit(limit)
            )
            if not is_sqlite(self.engine):
                stmt = stmt.with_for_update(skip_locked=True)
            found = conn.execute(stmt).all()
            exhausted = [
                r.id for r in found if r.state == "running" and r.attempts >= r.max_attempts
            ]
            wanted = [r.id for r in found if r.id not in set(exhausted)]
            if exhausted:
                conn.execute(
                    t.update()
                    .where(t.c.id.in_(exhausted), due)
                    .values(
                        state="failed",
                        done_at=now,
                        claimed_until=None,
                        last_error=sa.func.coalesce(t.c.last_error, "")
                        + f" [the lease ran out on every attempt; last worker {worker_id!r}"
                        " found it abandoned]",
                    )
                )
            if not wanted:
                return []
            # Conditional: on SQLite the WHERE re-checks under the write lock; on
            # PostgreSQL the rows are locked by this transaction already.
            rows = conn.execute(
                t.update()
                .where(t.c.id.in_(wanted), due)
                .values(
                    state="running",
                    claimed_by=worker_id,
                    claimed_until=now + lease,
                    attempts=t.c.attempts + 1,
                )
                .returning(*t.c)
            ).all()
        jobs = sorted((_job(r) for r in rows), key=lambda j: (j.due_at, j.id))
        return jobs

    def complete(self, job_id: int, worker_id: str, *, conn: Connection | None = None) -> bool:
        """Mark a job this worker holds as done; False if it does not hold it (any more)."""
        if conn is None:
            with self.write_engine.begin() as own:
                return self.complete(job_id, worker_id, conn=own)
        t = self.table
        result = conn.execute(
            t.update()
            .where(t.c.id == job_id, t.c.claimed_by == worker_id, t.c.state == "running")
            .values(state="done", done_at=self.clock(), claimed_until=None)
        )
        return int(result.rowcount) == 1

    def fail(
        self,
        job_id: int,
        worker_id: str,
        error: str,
        retry_in: timedelta | None = None,
        *,
        conn: Connection | None = None,
    ) -> str | None:
        """Record a failed attempt of a job this worker holds.

        Back to pending, due after ``retry_in`` (default :func:`backoff` of the
        attempts so far), or ``failed`` once ``max_attempts`` attempts are used.
        Returns the job's new state, or None if this worker does not hold it.
        """
        if conn is None:
            with self.write_engine.begin() as own:
                return self.fail(job_id, worker_id, error, retry_in, conn=own)
        t = self.table
        held = sa.and_(t.c.id == job_id, t.c.claimed_by == worker_id, t.c.state == "running")
        row = conn.execute(sa.select(t.c.attempts, t.c.max_attempts).where(held)).first()
        if row is None:
            return None
        now = self.clock()
        text = str(error)[:MAX_ERROR_TEXT]
        if row.attempts >= row.max_attempts:
            values: dict[str, Any] = {
                "state": "failed",
                "done_at": now,
                "claimed_until": None,
                "last_error": text,
            }
        else:
            delay = retry_in if retry_in is not None else backoff(row.attempts)
            values = {
                "state": "pending",
                "due_at": now + delay,
                "claimed_by": None,
                "claimed_until": None,
                "last_error": text,
            }
        conn.execute(t.update().where(held).values(**values))
        return str(values["state"])

    # -- running -----------------------------------------------------------------

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler(job, conn)`` for jobs of ``kind`` (one handler per kind)."""
        if (kind in self._handlers and self._handlers[kind] != handler) or (  # == for bound methods
            kind in self._external
        ):
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        self._handlers[kind] = handler

    def register_external(self, kind: str, handler: ExternalHandler) -> None:
        """Run ``handler(job)`` for jobs of ``kind``, outside any transaction (module doc)."""
        if (kind in self._external and self._external[kind] != handler) or (kind in self._handlers):
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        self._external[kind] = handler

    @property
    def kinds(self) -> frozenset[str]:
        """The job kinds with a handler."""
        return frozenset(self._handlers) | frozenset(self._external)

    def run(self, job: Job, worker_id: str, *, lease: timedelta = DEFAULT_LEASE) -> bool:
        """Run one job this worker claimed: handler and completion in one transaction.

        True when the job is done; False when it failed (recorded, retried later)
        or another worker owns it now (nothing of this run is kept).
        """
        handler = self._handlers.get(job.kind)
        external = self._external.get(job.kind)
        if handler is None and external is None:
            self.fail(job.id, worker_id, f"no handler for job kind {job.kind!r} in this worker")
            return False
        try:
            if external is not None:
                with self.write_engine.begin() as conn:  # a short transaction: renew the lease
                    if not self._retake(conn, job.id, worker_id, lease):
                        raise _LeaseLost()
                external(job)
                with self.write_engine.begin() as conn:
                    if not self.complete(job.id, worker_id, conn=conn):
                        raise _LeaseLost()
                return True
            assert handler is not None
            with self.write_engine.begin() as conn:
                if not self._retake(conn, job.id, worker_id, lease):
                    raise _LeaseLost()
                handler(job, conn)
                if not self.complete(job.id, worker_id, conn=conn):
                    raise _LeaseLost()
        except _LeaseLost:
            log.info(
                "job %s (%s): worker %s lost its claim; not done here", job.id, job.kind, worker_id
            )
            return False
        except Exception as exc:  # any handler error: recorded on the job, retried later
            log.warning("job %s (%s) failed: %s", job.id, job.kind, _describe(exc))
            self.fail(job.id, worker_id, _describe(exc))
            return False
        return True

    def run_due(self, worker_id: str, limit: int = 20, *, lease: timedelta = DEFAULT_LEASE) -> int:
        """Claim due jobs and run each (see :meth:`run`); how many were claimed.

        0 means there was nothing due: a worker loop may sleep a little.
        """
        jobs = self.claim(worker_id, limit=limit, lease=lease)
        for job in jobs:
            self.run(job, worker_id, lease=lease)
        return len(jobs)

    def _retake(self, conn: Connection, job_id: int, worker_id: str, lease: timedelta) -> bool:
        """Renew this worker's lease inside the job's transaction (locks the row on PostgreSQL)."""
        t = self.table
        result = conn.execute(
            t.update()
            .where(t.c.id == job_id, t.c.claimed_by == worker_id, t.c.state == "running")
            .values(claimed_until=self.clock() + lease)
        )
        return int(result.rowcount) == 1

    # -- reading -------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.id == job_id)).first()
        return None if row is None else _job(row)

    def jobs(
        self,
        *,
        kind: str | None = None,
        state: str | None = None,
        conn: Connection | None = None,
    ) -> list[Job]:
        """Jobs by id, optionally of one kind and/or state."""
        t = self.table
        stmt = sa.select(t).order_by(t.c.id)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        if state is not None:
            stmt = stmt.where(t.c.state == state)
        if conn is not None:
            return [_job(r) for r in conn.execute(stmt).all()]
        with self.engine.connect() as own:
            return [_job(r) for r in own.execute(stmt).all()]


_MISSING = object()
