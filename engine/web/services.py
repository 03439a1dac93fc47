"""What the pages talk to: the blueprint and the services, kept on the Flask app.

The web layer calls services only (records, users, permissions, uploads, exports), never tables
or sessions; :func:`services` is how a view reaches them.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine

from engine.exports import ExportService
from engine.model import Blueprint
from engine.permissions import Permissions
from engine.records import RecordService
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
    exports: ExportService


def services() -> Services:
    """The services of the current app."""
    found: Services = current_app.extensions[EXTENSION_KEY]
    return found
