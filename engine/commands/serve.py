"""``formflow serve PATH [--config FILE] [--db URL] [--host H] [--port P] [--workers N]
[--dev] [--demo] [--worker/--no-worker]``.

Options not given come from the configuration (``FORMFLOW_*`` environment
variables, else the config file; see :mod:`engine.config` and
docs/configuration.md), else their defaults. The app processes keep no state of
their own (sessions are signed cookies, everything else is in the database), so
any number of them, on any number of hosts, can serve one PostgreSQL database;
each picks up a blueprint migrated by ``formflow migrate`` within
``FORMFLOW_RELOAD_SECONDS`` (:mod:`engine.web.serving`). Requests are logged as
one JSON line each on stderr (gunicorn's own access log is off).

Serves the web app with gunicorn (``--dev``: Flask's reloading dev server).
Refuses to start when the database schema is behind the blueprint (run
``formflow migrate``), except with ``--demo`` on a SQLite file that does not
exist yet: then the database is created, demo users and records are added
(:mod:`engine.demo`) and the sign-in details are printed.

The job worker (reminders, date triggers, mail, webhooks; see
:mod:`engine.worker`) runs beside the server with ``--worker``, which is the
default with ``--demo`` and ``--dev`` so a demo needs one command:

* with ``--dev`` it is a daemon thread of the same process;
* under gunicorn it is **one** child process (``formflow worker``) started
  before the gunicorn master and stopped with it — not a thread in the master,
  because gunicorn forks its web workers from the master and forking a process
  that runs threads is unsafe, and not one per web worker, so there is exactly
  one loop however many ``--workers`` serve pages. The child also exits when
  the server process is gone.

In production run ``formflow worker`` as a service of its own (as many as you
like, on any hosts) and serve with ``--no-worker`` (the default without
``--demo``/``--dev``).
"""

from __future__ import annotations

import os
import subprocess  # starts `formflow worker` itself, no shell  # nosec B404
import sys
from pathlib import Path
from typing import Any

import click

from engine.commands.output import fail, internal_error
from engine.errors import FormflowError, SchemaBehind
from engine.i18n import LANGUAGES, Text

__all__ = ["serve_command"]


def _sqlite_file(url: str) -> Path | None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///") :])
    return None


def _gunicorn(app: Any, host: str, port: int, workers: int, timeout: int) -> None:
    from gunicorn.app.base import BaseApplication

    def post_fork(_server: Any, _worker: Any) -> None:
        # Connections the master opened (schema checks, the first version read) must
        # not be shared with the forked workers: each worker opens its own.
        services().engine.dispose(close=False)

    def services() -> Any:
        from engine.web.services import EXTENSION_KEY

        return app.extensions[EXTENSION_KEY]

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("timeout", timeout)
            self.cfg.set("post_fork", post_fork)
            # gunicorn >= 25 opens a control socket at one fixed path per user, which a
            # second server on the same machine silently takes over; Formflow needs none.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return app

    _Server().run()


def _worker_thread(blueprint: Any, url: str, config: dict[str, Any]) -> None:
    """The job worker in a daemon thread of this process (``--dev``)."""
    from engine.runtime import build_runtime
    from engine.storage.database import create_engine
    from engine.worker import Worker, start_in_thread

    runtime = build_runtime(blueprint, create_engine(url), config=config)
    runtime.automations.schedule_sweep()
    start_in_thread(Worker(runtime.jobs))


def _worker_process(
    path: Path, url: str, lang: str, config_path: str | None
) -> subprocess.Popen[bytes]:
    """``formflow worker`` as a child process that exits with this one (gunicorn)."""
    command = [
        sys.executable,
        "-c",
        "import sys; from engine.cli import main; sys.exit(main())",
        "worker",
        str(path),
        "--db",
        url,
        "--lang",
        lang,
        "--exit-with-parent",
        str(os.getpid()),
    ]
    if config_path:
        command += ["--config", config_path]
    return subprocess.Popen(command)  # our own interpreter and arguments  # nosec B603


def _stop_process(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=15)


def _check_pool_budget(url: str, workers: int, config: dict[str, Any], lang: str) -> None:
    """Warn when ``workers`` processes may open more connections than PostgreSQL allows."""
    from engine.config import pool_budget, pool_options
    from engine.storage.database import create_engine

    if not url.startswith("postgres"):
        return
    options = pool_options(config)
    needed = pool_budget(workers, options["pool_size"], options["max_overflow"])
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            most = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
            reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one())
    finally:
        engine.dispose()
    if needed > most - reserved:
        click.echo(
            Text(
                zh=f"警告：{workers} 个进程 × (连接池 {options['pool_size']} + 溢出 "
                f"{options['max_overflow']}) = {needed} 个连接，超过 PostgreSQL 可用的 "
                f"{most - reserved} 个（max_connections {most} − 保留 {reserved}）；"
                "见 docs/configuration.md",
                en=f"warning: {workers} workers x (pool {options['pool_size']} + overflow "
                f"{options['max_overflow']}) = {needed} connections, more than the "
                f"{most - reserved} PostgreSQL allows (max_connections {most} - reserved "
                f"{reserved}); see docs/configuration.md",
            ).get(lang),
            err=True,
        )


@click.command("serve")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    default=None,
    help="Config file (default: $FORMFLOW_CONFIG, else formflow.toml beside the blueprint).",
)
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: FORMFLOW_DB, else the SQLite file beside the blueprint).",
)
@click.option("--host", default=None, help="Address to bind (default: FORMFLOW_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: FORMFLOW_PORT, 8000).")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes (default: FORMFLOW_WORKERS, 2).",
)
@click.option("--dev", is_flag=True, help="Flask's development server (reloads, debug pages off).")
@click.option(
    "--demo", is_flag=True, help="On a new SQLite file: create it and add demo users and data."
)
@click.option(
    "--worker/--no-worker",
    "with_worker",
    default=None,
    help="Run the job worker beside the server (default: with --demo or --dev).",
)
@click.option("--lang", type=click.Choice(LANGUAGES), default=None, help="Language of messages.")
def serve_command(
    path: Path,
    config_path: str | None,
    db_url: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    dev: bool,
    demo: bool,
    with_worker: bool | None,
    lang: str | None,
) -> None:
    """Serve the blueprint at PATH in the browser."""
    chosen = lang or "zh"
    try:
        from engine.config import load_config, whole
        from engine.loader import load
        from engine.storage.database import create_engine, default_url
        from engine.storage.migrate import ensure_current
        from engine.web import create_app
        from engine.web.serving import configure_logging

        config = load_config(config_path, path)
        blueprint = load(path)
        chosen = lang or blueprint.default_locale or "zh"
        url = db_url or config.get("FORMFLOW_DB") or default_url(path)
        host = host or str(config.get("FORMFLOW_HOST") or "127.0.0.1")
        port = port or whole(config, "FORMFLOW_PORT", 8000, 1)
        workers = workers or whole(config, "FORMFLOW_WORKERS", 2, 1)
        timeout = whole(config, "FORMFLOW_TIMEOUT", 60, 1)
        configure_logging(config.get("FORMFLOW_LOG_LEVEL"))
        engine = create_engine(url)
        sqlite_file = _sqlite_file(url)
        seeded: list[str] = []
        try:
            if demo and sqlite_file is not None and not sqlite_file.exists():
                from engine.demo import seed_demo

                seeded = seed_demo(blueprint, engine)
            else:
                ensure_current(engine, blueprint)
        finally:
            engine.dispose()
        if not dev:
            _check_pool_budget(url, workers, config, chosen)
        app = create_app(path, url, config)
        link = f"http://{host}:{port}/"
        click.echo(
            Text(zh=f"Formflow 已启动：{link}", en=f"Formflow is serving {link}").get(chosen)
        )
        for line in seeded:
            click.echo(line)
        run_worker = with_worker if with_worker is not None else (demo or dev)
        if dev:
            if run_worker:
                _worker_thread(blueprint, url, config)
            app.run(host=host, port=port, debug=False, use_reloader=False)
        else:
            child = _worker_process(path, url, chosen, config_path) if run_worker else None
            try:
                _gunicorn(app, host, port, workers, timeout)
            finally:
                if child is not None:
                    _stop_process(child)
    except SchemaBehind as exc:
        fail(exc.text, chosen, 1)
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)
