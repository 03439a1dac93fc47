"""What a page offers a user: which entities, fields and buttons to show.

This only shapes pages (hide a column, grey out an input, leave out a button);
the answers come from :class:`engine.permissions.Permissions`, the same rules the
record service enforces on every read and write. A page that offered too much
would still get :class:`~engine.errors.PermissionDenied` (403) or a 404.
"""

from __future__ import annotations

from engine.model import Entity
from engine.permissions import Permissions
from engine.records import Actor, Record
from engine.web.services import services


def _perms() -> Permissions:
    perms = services().permissions
    assert perms is not None, "create_app always installs the permission layer"
    return perms


def hidden_fields(actor: Actor, entity: Entity) -> frozenset[str]:
    """Fields this actor may not see on ``entity``."""
    return _perms().hidden_fields(actor, entity.name)


def readonly_fields(actor: Actor, entity: Entity) -> frozenset[str]:
    """Fields this actor may see but not change on ``entity``."""
    return _perms().readonly_fields(actor, entity.name)


def can_see(actor: Actor, entity: Entity) -> bool:
    """Whether the entity belongs on this actor's home page and menu."""
    return _perms().can_read(actor, entity.name)


def can_create(actor: Actor, entity: Entity) -> bool:
    """Whether to offer the "New" button."""
    return _perms().can_create(actor, entity.name)


def can_update(actor: Actor, entity: Entity, record: Record) -> bool:
    """Whether to offer the "Edit" button on ``record``."""
    return _perms().can_update(actor, entity.name, record)


def can_delete(actor: Actor, entity: Entity, record: Record) -> bool:
    """Whether to offer the "Delete" button on ``record``."""
    return _perms().can_delete(actor, entity.name, record)
