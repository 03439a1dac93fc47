"""The services of one blueprint on one database, wired together once.

The web app, ``formflow worker`` and the in-process worker of ``formflow serve
--demo`` / ``--dev`` all need the same graph::

    EventBus ─┬─ RecordService (emits created/updated/deleted)
              ├─ FlowService (emits submitted/approved/rejected/returned/recalled/
              │               step_entered/assigned/reminder; ends runs of deleted records)
              ├─ AutomationService (listens; schedules date, mail, webhook jobs)
              └─ FlowNotices (listens: approvers, submitters, CC told)
    JobQueue ── handlers: flow.remind, flow.timeout, automation.date, automation.sweep,
                mail.send, webhook.deliver
    NotificationService · Mailer · Webhooks · UserService · Permissions
    KpiService (KPIs in the viewer's read scope)

:func:`build_runtime` builds it, so the three faces cannot drift apart: a job
scheduled by a web request is understood by every worker. Settings come from
:class:`engine.settings.Settings` (config mapping, else environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from engine.automations import AutomationService
from engine.events import EventBus
from engine.flows import FlowService
from engine.jobs import JobQueue
from engine.kpis.commissions import CommissionService
from engine.kpis.forecast import ForecastService
from engine.kpis.service import KpiService
from engine.kpis.snapshots import SnapshotService
from engine.mail import Mailer
from engine.model import Blueprint
from engine.notifications import NotificationService
from engine.permissions import Permissions
from engine.records import RecordService
from engine.settings import Settings
from engine.storage.schema import Schema, build_schema
from engine.users import USER_CACHE_SECONDS, UserService
from engine.webhooks import Webhooks

__all__ = ["Runtime", "build_runtime"]


@dataclass
class Runtime:
    """Every service of one blueprint on one database (see the module doc)."""

    blueprint: Blueprint
    schema: Schema
    engine: Engine
    settings: Settings
    clock: Callable[[], datetime]
    events: EventBus
    jobs: JobQueue
    users: UserService
    permissions: Permissions
    records: RecordService
    flows: FlowService
    notifications: NotificationService
    automations: AutomationService
    mailer: Mailer
    webhooks: Webhooks
    kpis: KpiService
    forecasts: ForecastService
    snapshots: SnapshotService
    commissions: CommissionService

    @property
    def job_kinds(self) -> frozenset[str]:
        """The job kinds this runtime's workers run."""
        return self.jobs.kinds


def build_runtime(
    blueprint: Blueprint,
    engine: Engine,
    *,
    schema: Schema | None = None,
    settings: Settings | None = None,
    config: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
    user_cache_seconds: float = USER_CACHE_SECONDS,
) -> Runtime:
    """Build and wire every service; ``settings`` default to ``Settings.from_config(config)``.

    ``user_cache_seconds``: how long :meth:`UserService.recent` (the web session
    check) may reuse a user it read (``FORMFLOW_USER_CACHE_SECONDS`` in the app).
    """
    schema = schema or build_schema(blueprint)
    settings = settings or Settings.from_config(config)
    now = clock or (lambda: datetime.now(UTC))
    events = EventBus()
    jobs = JobQueue(engine, schema, now)
    users = UserService(blueprint, schema, engine, clock=now, cache_seconds=user_cache_seconds)
    permissions = Permissions(blueprint, users)
    records = RecordService(blueprint, schema, engine, clock=now, access=permissions, events=events)
    flows = FlowService(
        blueprint, schema, engine, records, users, clock=now, events=events, jobs=jobs
    )
    notifications = NotificationService(
        schema, engine, jobs=jobs, mail_configured=settings.mail.configured, clock=now
    )
    automations = AutomationService(
        blueprint,
        records,
        users,
        jobs,
        clock=now,
        settings=settings,
        notifications=notifications,
    )
    mailer = Mailer(settings.mail, users, default_lang=blueprint.default_locale)
    mailer.register_jobs(jobs)
    webhooks = Webhooks(settings.webhooks)
    webhooks.register_jobs(jobs)
    kpis = KpiService(blueprint, schema, engine, permissions, users, clock=now)
    forecasts = ForecastService(blueprint, schema, engine, permissions, users, clock=now)
    return Runtime(
        blueprint=blueprint,
        schema=schema,
        engine=engine,
        settings=settings,
        clock=now,
        events=events,
        jobs=jobs,
        users=users,
        permissions=permissions,
        records=records,
        flows=flows,
        notifications=notifications,
        automations=automations,
        mailer=mailer,
        webhooks=webhooks,
        kpis=kpis,
        forecasts=forecasts,
        snapshots=SnapshotService(forecasts, clock=now),
        commissions=CommissionService(
            blueprint, schema, engine, permissions, users, kpis, clock=now
        ),
    )
