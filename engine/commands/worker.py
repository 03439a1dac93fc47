"""``formflow worker PATH [--config FILE] [--db URL] [--once] [--interval S] [--id NAME]
[--lease S]``.

Runs the blueprint's timers and outbox (see :mod:`engine.worker`): flow
reminders and timeouts, date-triggered automations and their periodic sweep,
e-mails (``mail.send``) and webhooks (``webhook.deliver``). Settings (SMTP,
webhook secrets and allowed hosts) come from the environment, else the config
file (:mod:`engine.config`, docs/configuration.md).

* Refuses to start when the database schema is behind the blueprint (run
  ``formflow migrate``), like ``formflow serve``.
* ``--once``: run what is due now, then exit (cron-style); otherwise loop until
  SIGTERM or SIGINT, which finish the job in hand and exit 0.
* Safe on several hosts at once against one PostgreSQL database, and safe to
  kill at any moment (``kill -9`` included): state lives in the database.
* ``--id`` names the worker in the jobs it claims (default ``host:pid``);
  ``--lease`` is how long a claim holds before another worker may take the job
  over (default 300 seconds).
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta
from pathlib import Path
from types import FrameType

import click

from engine.commands.output import fail, internal_error
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, Text

__all__ = ["worker_command"]


def _parent_alive(pid: int) -> bool:
    return os.getppid() == pid


@click.command("worker")
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
@click.option("--once", is_flag=True, help="Run the jobs due now, then exit.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds to wait when nothing is due.",
)
@click.option("--id", "worker_id", default=None, metavar="NAME", help="Worker name (host:pid).")
@click.option(
    "--lease",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds a claimed job is this worker's before another may take it over.",
)
@click.option("--exit-with-parent", type=int, default=None, hidden=True)
@click.option("--lang", type=click.Choice(LANGUAGES), default=None, help="Language of messages.")
def worker_command(
    path: Path,
    config_path: str | None,
    db_url: str | None,
    once: bool,
    interval: float,
    worker_id: str | None,
    lease: float,
    exit_with_parent: int | None,
    lang: str | None,
) -> None:
    """Run the timers and the outbox of the blueprint at PATH (reminders, dates, mail, webhooks)."""
    chosen = lang or "zh"
    try:
        from engine.config import load_config, pool_options
        from engine.loader import load
        from engine.runtime import build_runtime
        from engine.storage.database import create_engine, default_url
        from engine.storage.migrate import ensure_current
        from engine.worker import Worker

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        blueprint = load(path)
        chosen = lang or blueprint.default_locale or "zh"
        config = load_config(config_path, path)
        url = db_url or config.get("FORMFLOW_DB") or default_url(path)
        engine = create_engine(url, **pool_options(config))
        try:
            ensure_current(engine, blueprint)
            runtime = build_runtime(blueprint, engine, config=config)
            keep_going = None
            if exit_with_parent is not None:
                parent = exit_with_parent

                def keep_going() -> bool:
                    return _parent_alive(parent)

            worker = Worker(
                runtime.jobs,
                worker_id,
                interval=interval,
                lease=timedelta(seconds=lease),
                keep_going=keep_going,
            )
            runtime.automations.schedule_sweep()
            if once:
                worker.run_once()
                click.echo(
                    Text(
                        zh=f"已处理 {worker.claimed} 个到期任务",
                        en=f"ran {worker.claimed} due job(s)",
                    ).get(chosen)
                )
                return

            def _stop(signum: int, _frame: FrameType | None) -> None:
                worker.stop()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            click.echo(
                Text(
                    zh=f"Formflow 后台任务已启动：{worker.worker_id}",
                    en=f"Formflow worker {worker.worker_id} is running",
                ).get(chosen)
            )
            worker.run_forever()
        finally:
            engine.dispose()
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)
