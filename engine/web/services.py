"""What the pages talk to: the blueprint and the services, kept on the Flask app.

The web layer calls services only (records, users, permissions, uploads,
notifications, flows, exports, imports), never tables or sessions; :func:`services` is
how a view reaches them. The services come from one :func:`engine.runtime.build_runtime` (one
:class:`EventBus` and one :class:`JobQueue` per app): the record service emits on the
bus, the flow service emits on it too and schedules its timers on the queue (a worker
runs them).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine

from engine.events import EventBus
from engine.exports import ExportService
from engine.flows import FlowService
from engine.imports import ImportService
from engine.jobs import JobQueue
from engine.model import Blueprint
from engine.notifications import NotificationService
from engine.permissions import Permissions
from engine.records import RecordService
from engine.runtime import Runtime
from engine.storage.schema import Schema
from engine.uploads import UploadService
from engine.users import UserService

EXTENSION_KEY = "formflow"


@dataclass
class Services:
    """The blueprint, its schema and engine, and the services built over them."""

    blueprint: Blueprint
    schema: Schema
    engine: Engine
    records: RecordService
    users: UserService
    permissions: Permissions
    uploads: UploadService
    notifications: NotificationService
    events: EventBus
    jobs: JobQueue
    flows: FlowService
    runtime: Runtime
    exports: ExportService
    imports: ImportService


def services() -> Services:
    """The services of the current app."""
    found: Services = current_app.extensions[EXTENSION_KEY]
    return found
