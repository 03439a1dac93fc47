"""Running many app processes on one database: probes, request logs, blueprint reloads.

* ``GET /healthz``: the process is alive (never touches the database), for a
  liveness probe: ``200 {"status": "ok"}``.
* ``GET /readyz``: the database answers and holds the schema this process
  serves; ``200 {"status": "ready", "schema_version": N}``, else ``503`` with
  ``{"status": "not ready", "reason": ...}`` (English, for operators), so a load
  balancer stops sending requests to a process that cannot serve them.
* **Request log**: one JSON line per request on the ``formflow.request``
  logger: ``time, method, path, status, duration_ms, user, ip, request_id``.
  ``X-Request-Id`` is taken from the request when it is a plain token (letters,
  digits, ``._:-``, at most 128) and otherwise generated; either way it is sent
  back on the response and is in the log line, so one request can be followed
  from the proxy's log to the app's.
* **Blueprint reloads**: ``formflow migrate`` bumps the schema version in
  ``ff_meta``. Every process reads it at most once per ``FORMFLOW_RELOAD_SECONDS``
  (default 1; 0 checks on every request) and, when it changed, loads the
  blueprint from its path again and swaps in services built for it, once the
  loaded blueprint is the one the database records. When it is not (this host
  has other blueprint files than the migrator's) the process keeps serving what
  it had, ``/readyz`` says why, and the files are read again at the next version
  change or every ten polls.

Nothing here is kept per user or per request between requests: the only state
of a process is the blueprint it serves and short, bounded caches
(docs/configuration.md lists them).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint as FlaskBlueprint
from flask import Flask, current_app, g, jsonify, request
from werkzeug.wrappers import Response

from engine.loader import load
from engine.model import Blueprint
from engine.storage.migrate import blueprint_digest, schema_digest, stored_state
from engine.web.services import EXTENSION_KEY, Services

__all__ = [
    "PROBE_ENDPOINTS",
    "REQUEST_LOGGER",
    "Watcher",
    "init_app",
    "request_id",
]

REQUEST_LOGGER = "formflow.request"
WATCHER_KEY = "formflow.watcher"
PROBE_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_RETRY_POLLS = 10

log = logging.getLogger(REQUEST_LOGGER)
watch_log = logging.getLogger("formflow.reload")
bp = FlaskBlueprint("ops", __name__)


@dataclass
class _Served:
    """The digests of what this process serves (computed once per build)."""

    blueprint: str
    schema: str


class Watcher:
    """Polls ``ff_meta`` and swaps in services for a migrated blueprint (see the module doc)."""

    def __init__(
        self,
        app: Flask,
        path: Path,
        rebuild: Callable[[Blueprint], Services],
        interval: float,
    ) -> None:
        self.app = app
        self.path = path
        self.rebuild = rebuild
        self.interval = interval
        self.version: int | None = None
        self.stale: str | None = None
        self._served = self._digests(self.services)
        self._checked = float("-inf")
        self._polls_since_try = 0
        self._lock = threading.Lock()
        try:
            self.version = stored_state(self.services.engine).version
        except Exception:  # unreachable now: the first poll will tell
            self.version = None

    @property
    def services(self) -> Services:
        found: Services = self.app.extensions[EXTENSION_KEY]
        return found

    @staticmethod
    def _digests(svc: Services) -> _Served:
        return _Served(
            blueprint=blueprint_digest(svc.blueprint),
            schema=schema_digest(svc.schema, svc.engine.dialect),
        )

    def poll(self) -> None:
        """Check the stored version when ``interval`` has passed; reload when it moved."""
        now = time.monotonic()
        if now - self._checked < self.interval:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread of this process is checking right now
        try:
            self._checked = now
            try:
                state = stored_state(self.services.engine)
            except Exception as exc:  # the request itself will report the database
                watch_log.warning("cannot read the schema version: %s", exc)
                return
            moved = state.version != self.version
            self._polls_since_try += 1
            if not moved and not (self.stale and self._polls_since_try >= _RETRY_POLLS):
                return
            self._polls_since_try = 0
            self.version = state.version
            if state.blueprint_digest == self._served.blueprint:
                self.stale = None
                return
            self._reload(state.blueprint_digest)
        finally:
            self._lock.release()

    def _reload(self, wanted: str | None) -> None:
        try:
            blueprint = load(self.path)
        except Exception as exc:
            self.stale = f"the blueprint at {self.path} does not load: {exc}"
            watch_log.error("%s", self.stale)
            return
        if blueprint_digest(blueprint) != wanted:
            self.stale = (
                f"the database was migrated to another blueprint than the one at {self.path}; "
                "deploy the same blueprint files on every host"
            )
            watch_log.error("%s", self.stale)
            return
        services = self.rebuild(blueprint)
        self._served = self._digests(services)
        self.app.extensions[EXTENSION_KEY] = services
        self.stale = None
        watch_log.info("now serving blueprint %s (schema version %s)", wanted, self.version)

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Whether this process can serve, and the JSON body of ``/readyz``."""
        try:
            state = stored_state(self.services.engine)
        except Exception as exc:
            return False, {"status": "not ready", "reason": f"database unreachable: {exc}"}
        body: dict[str, object] = {"schema_version": state.version}
        if state.blueprint_digest is None:
            reason = "the database has no Formflow schema; run `formflow migrate`"
        elif self.stale:
            reason = self.stale
        elif (
            state.blueprint_digest != self._served.blueprint
            or state.schema_digest != self._served.schema
        ):
            reason = (
                "the database schema does not match the blueprint this process serves; "
                "run `formflow migrate`"
            )
        else:
            return True, {"status": "ready", **body}
        return False, {"status": "not ready", "reason": reason, **body}


def watcher() -> Watcher:
    found: Watcher = current_app.extensions[WATCHER_KEY]
    return found


@bp.route("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz() -> tuple[Response, int]:
    ready, body = watcher().readiness()
    return jsonify(body), 200 if ready else 503


def request_id() -> str:
    """The id of the current request (``X-Request-Id``)."""
    found = g.get("request_id")
    return found if isinstance(found, str) else ""


def _begin() -> None:
    g.started = time.perf_counter()
    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    if request.endpoint not in ("ops.healthz", "static"):
        watcher().poll()


def _user() -> str | None:
    api_user = g.get("api_user")
    if api_user is not None:
        return str(api_user.name)
    signed = g.get("_login_user")  # flask-login's user, only when this request loaded it
    name = getattr(signed, "name", None)
    return str(name) if name else None


def _finish(response: Response) -> Response:
    rid = request_id()
    if rid:
        response.headers["X-Request-Id"] = rid
    if current_app.config["FORMFLOW_LOG_REQUESTS"] and log.isEnabledFor(logging.INFO):
        started = g.get("started")
        duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration, 2),
            "user": _user(),
            "ip": request.remote_addr,
            "request_id": rid,
        }
        log.info(json.dumps(line, ensure_ascii=False))
    return response


def init_app(app: Flask, path: Path, rebuild: Callable[[Blueprint], Services]) -> None:
    """The probes, the request id and log, and the blueprint watcher on ``app``."""
    from engine.config import seconds
    from engine.settings import flag

    app.config["FORMFLOW_LOG_REQUESTS"] = flag(
        "FORMFLOW_LOG_REQUESTS", app.config.get("FORMFLOW_LOG_REQUESTS"), default=True
    )
    app.register_blueprint(bp)
    app.extensions[WATCHER_KEY] = Watcher(
        app, path, rebuild, seconds(app.config, "FORMFLOW_RELOAD_SECONDS", 1.0)
    )
    # First of all hooks, so the log times the whole request and every hook after
    # it sees the services of the current blueprint.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finish)


def configure_logging(level: str | None) -> None:
    """Formflow's loggers to stderr, one message per line (``formflow serve``/``worker``)."""
    logger = logging.getLogger("formflow")
    if any(getattr(h, "_formflow", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._formflow = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel((level or "INFO").upper())
    logger.propagate = False
