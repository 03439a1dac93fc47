"""The worker loop: claim due jobs, run them, sleep a little, until told to stop.

``formflow worker`` runs it in the foreground; ``formflow serve --dev`` runs it
in a daemon thread (:func:`start_in_thread`). The loop itself is simple because
the queue (:mod:`engine.jobs`) carries the guarantees:

* **Several workers at once** — threads, processes, hosts — each due job is
  claimed by exactly one of them (``SKIP LOCKED`` on PostgreSQL, ``BEGIN
  IMMEDIATE`` on SQLite). Give each a distinct ``worker_id`` (the default is
  ``host:pid``).
* **Kill it at any moment** (even ``kill -9``): a job's effect and its
  completion commit together, so a killed job left nothing behind and runs
  again once its lease (default 5 minutes, ``--lease``) runs out; a job done
  twice has no double effect. External jobs (mail, webhooks) are at least once.
* **Stopping** (:meth:`Worker.stop`, SIGTERM, SIGINT) finishes the job in hand,
  then returns. A failing database is logged and retried after the interval.
* **Idle**: when nothing is due the loop waits ``interval`` seconds (default
  2), waking early when stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta

from engine.jobs import DEFAULT_LEASE, JobQueue

__all__ = ["DEFAULT_INTERVAL", "Worker", "default_worker_id", "start_in_thread"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
DEFAULT_BATCH = 20


def default_worker_id() -> str:
    """``host:pid``: unique per running worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Runs ``jobs`` until :meth:`stop` (see the module doc)."""

    def __init__(
        self,
        jobs: JobQueue,
        worker_id: str | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        lease: timedelta = DEFAULT_LEASE,
        batch: int = DEFAULT_BATCH,
        keep_going: Callable[[], bool] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.jobs = jobs
        self.worker_id = worker_id or default_worker_id()
        self.interval = interval
        self.lease = lease
        self.batch = batch
        self.keep_going = keep_going
        self._stop = threading.Event()
        self.claimed = 0

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Finish the job in hand, then return from :meth:`run_forever`."""
        self._stop.set()

    def _alive(self) -> bool:
        if self._stop.is_set():
            return False
        if self.keep_going is not None and not self.keep_going():
            self._stop.set()
            return False
        return True

    def run_once(self) -> int:
        """Run due jobs until none is due (or stopped); how many were claimed."""
        total = 0
        while self._alive():
            claimed = self.jobs.run_due(self.worker_id, self.batch, lease=self.lease)
            total += claimed
            self.claimed += claimed
            if claimed == 0:
                break
        return total

    def run_forever(self) -> None:
        """The loop: run what is due, wait ``interval`` when idle, until stopped."""
        log.info(
            "worker %s started (kinds: %s)", self.worker_id, ", ".join(sorted(self.jobs.kinds))
        )
        while self._alive():
            try:
                self.run_once()
            except Exception:  # the database went away: say so, wait, try again
                log.exception("worker %s: running jobs failed; retrying", self.worker_id)
            self._stop.wait(self.interval)
        log.info("worker %s stopped", self.worker_id)


def start_in_thread(worker: Worker, *, name: str = "formflow-worker") -> threading.Thread:
    """Run ``worker`` in a daemon thread (it dies with the process); the thread."""
    thread = threading.Thread(target=worker.run_forever, name=name, daemon=True)
    thread.start()
    return thread
