"""People in forms: the user picker of ``user`` fields and the record owner.

Whom a picker offers is :meth:`engine.permissions.Permissions.assignees`: the
active users the signed-in user may make the owner of a record of the entity
(admins and ``update: all`` everyone, ``update: team`` their team, anyone else
themself). A value already held that is not among them (set by someone else,
a departed user) is offered too, so saving the form unchanged keeps it. The
picker only chooses; the record service stays the judge of every save (the
owner rules of ``RecordService``, a ``user`` field's shape).

A user is shown as ``display name (login name)``, or the login name alone.
Up to :data:`SELECT_LIMIT` choices make a drop-down; more a search box (htmx,
``GET /e/<entity>/people``), like the reference picker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.records import Actor
from engine.users import User
from engine.web.services import services

#: A user picker is a drop-down up to this many choices; otherwise a search box.
SELECT_LIMIT = 100
#: How many matches a picker search shows.
SEARCH_LIMIT = 10


def user_label(user: User | None, name: str) -> str:
    """``李雷 (li.lei)``; the login name alone without a display name (or user)."""
    if user is None or not user.display_name or user.display_name == name:
        return name
    return f"{user.display_name} ({name})"


@dataclass
class PersonOption:
    value: str
    label: str
    selected: bool


@dataclass
class PeopleView:
    """A user picker: a drop-down of ``options`` or a search box holding ``title``."""

    entity: str
    mode: str  # "select" or "search"
    title: str  # the chosen user's label ('' when nobody)
    options: list[PersonOption] = field(default_factory=list)
    allow_none: bool = True


class People:
    """Per-request cache of whom pickers offer, by entity, and of user labels."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self._choices: dict[str, list[User]] = {}
        self._labels: dict[str, str] = {}

    def choices(self, entity: str) -> list[User]:
        """The users a picker on ``entity`` offers (see the module docs)."""
        if entity not in self._choices:
            found = services().permissions.assignees(self.actor, entity)
            self._choices[entity] = found
            for user in found:
                self._labels[user.name] = user_label(user, user.name)
        return self._choices[entity]

    def may_leave_blank(self, entity: str) -> bool:
        """Whether ``actor`` may make nobody the owner (admins, ``update: all``)."""
        return services().permissions.may_assign_to(self.actor, entity, None)

    def labels(self, names: Iterable[str]) -> dict[str, str]:
        """``{name: label}`` for ``names`` (one query for those not seen yet)."""
        wanted = {n for n in names if n}
        missing = [n for n in wanted if n not in self._labels]
        if missing:
            found = services().users.find_many(missing)
            for name in missing:
                self._labels[name] = user_label(found.get(name), name)
        return {n: self._labels[n] for n in wanted}

    def label(self, name: str) -> str:
        return self.labels([name]).get(name, name) if name else ""

    def view(self, entity: str, value: str, *, allow_none: bool = True) -> PeopleView:
        """The picker for a field (or the owner) of ``entity`` currently holding ``value``."""
        users = self.choices(entity)
        title = self.label(value)
        if len(users) > SELECT_LIMIT:
            return PeopleView(entity, "search", title, allow_none=allow_none)
        options = [PersonOption(u.name, self._labels[u.name], u.name == value) for u in users]
        if value and not any(o.selected for o in options):
            options.insert(0, PersonOption(value, title, True))
        return PeopleView(entity, "select", title, options, allow_none)

    def search(self, entity: str, query: str) -> list[tuple[str, str]]:
        """Up to SEARCH_LIMIT ``(name, label)`` of the choices matching ``query``."""
        return matches(self.choices(entity), query, SEARCH_LIMIT)

    def offers(self, entity: str, name: str) -> bool:
        return any(u.name == name for u in self.choices(entity))


def matches(users: Sequence[User], query: str, limit: int) -> list[tuple[str, str]]:
    """Users whose login or display name holds every term of ``query`` (case-insensitive)."""
    terms = query.casefold().split()
    out: list[tuple[str, str]] = []
    for user in users:
        haystack = f"{user.name} {user.display_name or ''}".casefold()
        if all(t in haystack for t in terms):
            out.append((user.name, user_label(user, user.name)))
            if len(out) >= limit:
                break
    return out
