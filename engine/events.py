"""Events: what happened to a record, told to listeners inside the writer's transaction.

The record service emits ``created`` / ``updated`` / ``deleted`` after each
successful write; the flow service (:mod:`engine.flows`) emits ``submitted``,
``approved``, ``rejected``, ``returned``, ``recalled``, ``step_entered`` and
``assigned`` (a task opened at a step already open: transfer, 加签, escalation)
for its actions, and ``reminder`` when a step's reminder comes due. Automations,
notifications and webhooks subscribe to an :class:`EventBus` and act on them.

Rules:

* **Listeners run inside the writer's transaction.** ``event.conn`` is the
  open connection of the write that caused the event, so whatever a listener
  writes through it (an automation's ``RecordService.update(..., conn=event.conn)``,
  a job scheduled with ``JobQueue.schedule(event.conn, ...)``, a notification
  row) commits or rolls back together with the change. A listener that raises
  undoes the whole write, and the error reaches the writer's caller. Listeners
  must therefore be quick and must not talk to the outside world themselves:
  schedule a job (an outbox) for e-mail and webhooks.
* **Order.** Listeners run in the order they subscribed, one after the other,
  in the writer's thread.
* **Depth.** ``depth`` counts how deeply writes are nested: a user's write is
  0, a write an automation makes while handling a depth-0 event passes
  ``depth=1`` (``RecordService.update(..., depth=event.depth + 1)``), and so on.
  The automation layer stops at a documented depth to break loops; the bus
  itself only carries the number.
* **Batches.** ``RecordService.create_many`` (imports) emits no events: a
  batch of 100,000 rows must not run 100,000 listeners. Single writes with any
  ``via`` (form, api, flow, automation, system) emit them.
* ``changes`` maps each changed field to ``[old, new]`` (child tables to
  ``{"added": n, "changed": n, "removed": n}``), as the audit row stores it;
  ``details`` carries what a kind adds (a comment, the approvers asked, the
  people to notify), documented with :mod:`engine.flows`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from engine.records import Actor, Record

__all__ = ["EVENT_KINDS", "FLOW_EVENT_KINDS", "RECORD_EVENT_KINDS", "Event", "EventBus", "Listener"]

#: What the record service emits.
RECORD_EVENT_KINDS: tuple[str, ...] = ("created", "updated", "deleted")
#: What the flow service emits.
FLOW_EVENT_KINDS: tuple[str, ...] = (
    "submitted",
    "approved",
    "rejected",
    "returned",
    "recalled",
    "step_entered",
    "assigned",
    "reminder",
)
EVENT_KINDS: tuple[str, ...] = RECORD_EVENT_KINDS + FLOW_EVENT_KINDS

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Event:
    """One thing that happened to one record, inside the open transaction ``conn``."""

    kind: str
    entity: str
    record_id: int
    actor: Actor
    conn: Connection
    record: Record | None  # after the change (None once deleted)
    prior: Record | None  # before the change (None for created)
    changes: Mapping[str, Any]  # field -> [old, new]
    flow: str | None = None
    step: str | None = None
    depth: int = 0  # automation nesting: 0 for a user's own write
    via: str = ""  # the write's via (form, api, flow, automation, system, ...)
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


Listener = Callable[[Event], None]


class EventBus:
    """Listeners, called in subscription order for every emitted event."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, callback: Listener) -> None:
        """Call ``callback`` for every event from now on (inside the writer's transaction)."""
        self._listeners.append(callback)

    def unsubscribe(self, callback: Listener) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def emit(self, event: Event) -> None:
        """Run every listener now; an exception stops here and undoes the writer's work."""
        for listener in tuple(self._listeners):
            listener(event)

    def __len__(self) -> int:
        return len(self._listeners)
