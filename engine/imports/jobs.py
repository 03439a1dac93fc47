"""Import jobs: one ``ff_imports`` row per import (CLI or web), and background runs.

States: ``queued`` (created, not started) -> ``running`` -> ``done`` (ran to the
end: committed, or a dry run, or a partial import with some rows reported) or
``failed`` (nothing written: invalid rows in all-or-nothing mode, a refused file,
an error, or an interrupted process).

Progress. A running import writes its progress (0..1) and counts to its row
after every chunk, from a connection of its own, on PostgreSQL. On SQLite the
import's transaction holds the database's only write lock until it ends, so the
row says ``running`` until then and the live progress is kept in the memory of
the process running it (:func:`live_progress`; the web page of that process
shows it, another worker process shows "running").

Interrupted imports. An import runs in one transaction, so a process that dies
(a worker restart, ``kill -9``) writes nothing, in every mode. Its row records
``worker`` (``host:pid``); reading a ``running`` or ``queued`` job whose worker
is on this host but no longer alive marks it ``failed`` ("interrupted"). A job
on another host is left as it is.

Background runs (:meth:`ImportJobs.run_in_thread`) are threads of the process
that accepted the upload: simple and independent of any job queue, and the
reason a restart interrupts them (documented in docs/imports.md).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.i18n import T, Text
from engine.imports.report import RowError
from engine.storage.database import is_sqlite
from engine.storage.schema import Schema

__all__ = ["STATES", "ImportJob", "ImportJobs", "live_progress", "worker_id"]

STATES = ("queued", "running", "done", "failed")
#: Row errors kept with a job (the report holds more, the result counts them all).
STORED_ERRORS = 100

MSG_INTERRUPTED = T(
    "导入被中断（运行它的进程已结束），未写入任何数据",
    "the import was interrupted (the process running it ended); nothing was written",
)

_live: dict[tuple[str, int], tuple[float, int]] = {}
_threads: dict[tuple[str, int], threading.Thread] = {}
_lock = threading.Lock()


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str | None) -> bool:
    """False only when ``worker`` is a process on this host that has ended."""
    if not worker:
        return True
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_progress(engine: Engine, job_id: int) -> tuple[float, int] | None:
    """(progress, rows read) of a job running in this process, if any."""
    return _live.get((str(engine.url), job_id))


@dataclass(frozen=True)
class ImportJob:
    """One ``ff_imports`` row."""

    id: int
    user: str | None
    entity: str
    file_name: str
    mode: str
    update_on: str | None
    dry_run: bool
    state: str
    rows_read: int
    created: int
    updated: int
    failed: int
    progress: float
    message: Text | None
    errors: list[RowError] = field(default_factory=list)
    errors_total: int = 0
    warnings: list[Text] = field(default_factory=list)
    report_path: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def as_json(self, lang: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": self.entity,
            "file_name": self.file_name,
            "user": self.user,
            "state": self.state,
            "mode": self.mode,
            "update_on": self.update_on,
            "dry_run": self.dry_run,
            "rows_read": self.rows_read,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "progress": round(self.progress, 4),
            "message": self.message.get(lang) if self.message else None,
            "errors": [e.as_json(lang) for e in self.errors],
            "errors_total": self.errors_total,
            "warnings": [w.get(lang) for w in self.warnings],
            "has_report": bool(self.report_path),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class ImportJobs:
    """The ``ff_imports`` table: create, progress, finish and read import jobs."""

    def __init__(self, schema: Schema, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.table: sa.Table = schema.metadata.tables["ff_imports"]
        self.engine = engine
        self.clock = clock
        self._key = str(engine.url)

    def create(
        self,
        *,
        user: str | None,
        entity: str,
        file_name: str,
        mode: str,
        update_on: str | None,
        dry_run: bool,
    ) -> int:
        """A new ``queued`` job; its id."""
        with self.engine.begin() as conn:
            result = conn.execute(
                self.table.insert().values(
                    user=user,
                    entity=entity,
                    file_name=file_name[:255],
                    mode=mode,
                    update_on=update_on,
                    dry_run=dry_run,
                    state="queued",
                    rows_read=0,
                    created=0,
                    updated=0,
                    failed=0,
                    progress=0.0,
                    errors_total=0,
                    worker=worker_id(),
                    created_at=self.clock(),
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def _set(self, job_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.id == job_id).values(**values))

    def started(self, job_id: int) -> None:
        self._set(job_id, state="running", worker=worker_id(), started_at=self.clock())

    def progress(self, job_id: int, fraction: float, rows_read: int) -> None:
        """Record progress: in memory always, in the row unless SQLite (see the module)."""
        _live[(self._key, job_id)] = (fraction, rows_read)
        if not is_sqlite(self.engine):
            self._set(job_id, progress=fraction, rows_read=rows_read)

    def finished(
        self,
        job_id: int,
        *,
        state: str,
        rows_read: int = 0,
        created: int = 0,
        updated: int = 0,
        failed: int = 0,
        message: Text | None = None,
        errors: list[RowError] | None = None,
        errors_total: int = 0,
        warnings: list[Text] | None = None,
        report_path: Path | None = None,
    ) -> None:
        _live.pop((self._key, job_id), None)
        self._set(
            job_id,
            state=state,
            rows_read=rows_read,
            created=created,
            updated=updated,
            failed=failed,
            progress=1.0,
            message=message.as_dict() if message else None,
            errors=[e.stored() for e in (errors or [])[:STORED_ERRORS]],
            errors_total=errors_total,
            warnings=[w.as_dict() for w in warnings or []],
            report_path=str(report_path) if report_path else None,
            finished_at=self.clock(),
        )

    def _job(self, row: Any) -> ImportJob:
        m = row._mapping
        progress, rows_read = float(m["progress"]), int(m["rows_read"])
        live = _live.get((self._key, int(m["id"])))
        if live is not None and m["state"] == "running":
            progress, rows_read = live
        message = m["message"]
        return ImportJob(
            id=int(m["id"]),
            user=m["user"],
            entity=m["entity"],
            file_name=m["file_name"],
            mode=m["mode"],
            update_on=m["update_on"],
            dry_run=bool(m["dry_run"]),
            state=m["state"],
            rows_read=rows_read,
            created=int(m["created"]),
            updated=int(m["updated"]),
            failed=int(m["failed"]),
            progress=progress,
            message=Text.of(message) if message else None,
            errors=[RowError.from_stored(e) for e in m["errors"] or []],
            errors_total=int(m["errors_total"]),
            warnings=[Text.of(w) for w in m["warnings"] or []],
            report_path=m["report_path"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
        )

    def get(self, job_id: int) -> ImportJob | None:
        """The job, after marking it failed if its process on this host has ended."""
        if not 0 < job_id < 2**63:  # no such id; PostgreSQL would refuse it as out of range
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.id == job_id)).first()
        if row is None:
            return None
        if row.state in ("queued", "running") and not _alive(row.worker):
            self._interrupted(job_id)
            return self.get(job_id)
        return self._job(row)

    def _interrupted(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.table.update()
                .where(self.table.c.id == job_id, self.table.c.state.in_(("queued", "running")))
                .values(
                    state="failed",
                    message=MSG_INTERRUPTED.as_dict(),
                    finished_at=self.clock(),
                )
            )

    def reap(self) -> int:
        """Mark every unfinished job whose process on this host ended as failed; how many."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.table.c.id, self.table.c.worker).where(
                    self.table.c.state.in_(("queued", "running"))
                )
            ).all()
        dead = [r.id for r in rows if not _alive(r.worker)]
        for job_id in dead:
            self._interrupted(job_id)
        return len(dead)

    # -- background runs -----------------------------------------------------------

    def run_in_thread(
        self,
        job_id: int,
        work: Callable[[], object],
        *,
        cleanup: Callable[[], None] | None = None,
    ) -> threading.Thread:
        """Run ``work`` (an import with this ``job_id``) in a thread of this process.

        ``work`` records its own outcome in the job; an exception it lets out
        marks the job failed. ``cleanup`` runs afterwards in every case.
        """
        key = (self._key, job_id)

        def target() -> None:
            try:
                work()
            except BaseException as exc:  # the job must never stay "running"
                with contextlib.suppress(Exception):
                    self.finished(
                        job_id,
                        state="failed",
                        message=T(
                            f"导入出错：{type(exc).__name__}",
                            f"the import failed: {type(exc).__name__}",
                        ),
                    )
            finally:
                if cleanup is not None:
                    with contextlib.suppress(Exception):
                        cleanup()
                with _lock:
                    _threads.pop(key, None)

        thread = threading.Thread(target=target, name=f"formflow-import-{job_id}", daemon=True)
        with _lock:
            _threads[key] = thread
        thread.start()
        return thread

    def wait(self, job_id: int, timeout: float | None = None) -> bool:
        """Wait for this process's background run of ``job_id``; False if still running."""
        with _lock:
            thread = _threads.get((self._key, job_id))
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()
