"""Users, the reporting line, passwords and API tokens (table ``ff_users`` / ``ff_tokens``).

A user is a row of ``ff_users``; the engine acts for them through
:class:`engine.records.Actor` (``user.actor``). The permission layer
(:mod:`engine.permissions`) asks this service who is in whose team.

Rules (kept in one place so the docs can copy them):

* **Names** are login names and the value of every ``owner`` / ``created_by``
  column: 1-150 characters out of ASCII letters and digits, ``_ . @ -`` and
  Chinese characters (CJK unified ideographs, U+4E00-U+9FFF), starting with a
  letter, digit or Chinese character (never ``-``, so a name is never taken for
  a command-line option). Chinese names are allowed because a team may well
  sign in as ``张伟``; a name that differs from an existing one only in case
  (``Li.Lei`` / ``li.lei``) is refused as a duplicate, so two people never look
  alike in an owner column. Names never change (they are stored in records).
* **Roles** are the blueprint's ``roles:``, plus the built-in ``admin``, which is
  always allowed and means "everything": every record of every entity, every
  field, any owner (see :mod:`engine.permissions`). A user has at least one
  role. A typo gets "did you mean".
* **Manager** must be an existing user; a reporting line never loops (``a``
  cannot report to ``b`` while ``b`` is ``a`` or below ``a``).
* **Passwords** are at least 8 and at most 1024 characters, hashed with
  ``werkzeug.security.generate_password_hash`` (its default method, scrypt);
  the plain text is never stored, logged or put into an error message. A user
  without a password cannot sign in with one (API tokens still work).
* **Authenticating** a missing user, a user without a password or an inactive
  user checks the password against a dummy hash first, so the answer takes
  about as long as for a real user (no user enumeration by timing).
* **Deactivating** keeps the user (their records keep their owner), refuses
  sign-in and revokes every API token. The last active ``admin`` cannot be
  deactivated or lose the role.
* **Teams**: ``team(name)`` is the user plus everyone below them, transitively,
  inactive people included (a manager still sees a departed rep's deals). A
  name that is not a user has the team ``{name}``. Every call reads the
  reporting line afresh (one small query), so it is right after any change,
  also one made by another process; use :meth:`UserService.hierarchy` to reuse
  one snapshot within a request.
* **Recently read users** (:meth:`UserService.recent`, the web session's check on
  every request) may be up to ``cache_seconds`` old (default
  :data:`USER_CACHE_SECONDS`, 0 turns it off). A change made through this service
  (deactivate, roles, profile, manager, password) drops the user from this
  process's cache at once; a change made by another process (a script, the CLI,
  another server worker) counts there within ``cache_seconds``. Signing in, API
  tokens, owner checks and teams always read afresh.
* **API tokens** are ``ff_`` + 32 random bytes (urlsafe base64), shown once;
  only their sha256 is stored. A token works while it is not revoked and its
  user is active. ``last_used_at`` is written at most once a minute per token,
  so API reads do not turn into database writes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from werkzeug.security import check_password_hash, generate_password_hash

from engine.errors import NotFound, RecordInvalid
from engine.i18n import LANGUAGES, T, Text
from engine.loading.describe import did_you_mean
from engine.model import Blueprint
from engine.records import Actor
from engine.storage.database import writer
from engine.storage.schema import Schema

__all__ = [
    "ADMIN_ROLE",
    "NAME_PATTERN",
    "TOKEN_PREFIX",
    "Hierarchy",
    "TokenInfo",
    "TokenNotFound",
    "User",
    "UserInvalid",
    "UserNotFound",
    "UserService",
    "hash_token",
]

#: The built-in role that may do everything; always allowed, also when the blueprint omits it.
ADMIN_ROLE = "admin"
#: Login names: see the module docstring.
NAME_PATTERN = re.compile(r"[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9_.@\-\u4e00-\u9fff]{0,149}\Z")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOKEN_PREFIX = "ff_"
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 100
#: ``last_used_at`` of a token is refreshed at most this often.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
#: How long :meth:`UserService.recent` may reuse a user it read (seconds).
USER_CACHE_SECONDS = 5.0
#: At most this many users are kept (the cache starts over when it is full).
USER_CACHE_SIZE = 1024

MSG_NAME = T(
    "用户名须为 1-150 个字母、数字、汉字或 _ . @ -，且不能以符号开头",
    "a user name is 1-150 letters, digits, Chinese characters or _ . @ -, "
    "and does not start with a symbol",
)
MSG_NAME_TAKEN = T("用户 '{name}' 已存在", "user '{name}' already exists")
MSG_NO_ROLE = T("至少需要一个角色", "needs at least one role")
MSG_NO_MANAGER = T("没有用户 '{name}'", "no user '{name}'")
MSG_CYCLE = T(
    "'{manager}' 是 '{name}' 的下属，不能成为其上级",
    "'{manager}' reports to '{name}' and cannot be their manager",
)
MSG_SELF_MANAGER = T("不能做自己的上级", "cannot be their own manager")
MSG_PASSWORD_SHORT = T(f"密码至少 {MIN_PASSWORD} 个字符", f"at least {MIN_PASSWORD} characters")
MSG_PASSWORD_LONG = T(f"密码最多 {MAX_PASSWORD} 个字符", f"at most {MAX_PASSWORD} characters")
MSG_EMAIL = T("邮箱格式不对", "not an email address")
MSG_LOCALE = T("语言须为 zh 或 en", "the language must be zh or en")
MSG_DISPLAY = T("显示名最多 200 个字符", "at most 200 characters")
MSG_LAST_ADMIN = T("'{name}' 是最后一个启用的管理员", "'{name}' is the last active admin")
MSG_LABEL = T("令牌说明最多 200 个字符", "a token label is at most 200 characters")
MSG_INACTIVE = T("用户 '{name}' 已停用", "user '{name}' is inactive")


class UserInvalid(RecordInvalid):
    """A user cannot be added or changed; ``errors`` maps each field to messages."""

    def __init__(self, errors: Mapping[str, Iterable[Text]]) -> None:
        super().__init__(errors)
        en = "; ".join(f"{k}: {m.get('en')}" for k, msgs in self.errors.items() for m in msgs)
        zh = "；".join(f"{k}：{m.get('zh')}" for k, msgs in self.errors.items() for m in msgs)
        self.text = Text(zh="用户无效：" + zh, en="Invalid user: " + en)
        self.args = (self.text.get("en"),)


class UserNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(T(f"没有用户 '{name}'", f"no user '{name}'"))
        self.name = name


class TokenNotFound(NotFound):
    default_message = T("没有这个令牌", "no such token")


@dataclass(frozen=True)
class User:
    """A person who signs in. ``roles`` keeps the order they were given in."""

    name: str
    display_name: str | None
    email: str | None
    roles: tuple[str, ...]
    manager: str | None
    locale: str | None
    active: bool

    @property
    def actor(self) -> Actor:
        return Actor(self.name, frozenset(self.roles))

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def label(self) -> str:
        """What a page shows for the user: the display name, else the name."""
        return self.display_name or self.name


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed (never its secret or its hash)."""

    id: int
    user: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Hierarchy:
    """One snapshot of the reporting line: who manages whom."""

    def __init__(self, managers: Mapping[str, str | None]) -> None:
        self._manager = dict(managers)
        below: dict[str, list[str]] = defaultdict(list)
        for name, manager in self._manager.items():
            if manager is not None:
                below[manager].append(name)
        self._below = below

    def team(self, name: str) -> frozenset[str]:
        """``name`` and everyone below them, transitively."""
        seen = {name}
        todo = [name]
        while todo:
            for report in self._below.get(todo.pop(), ()):
                if report not in seen:
                    seen.add(report)
                    todo.append(report)
        return frozenset(seen)

    def manager_of(self, name: str, levels: int = 1) -> str | None:
        """The manager ``levels`` up (2: the manager's manager); None when the line ends."""
        if levels < 1:
            raise ValueError(f"levels must be at least 1, not {levels}")
        current: str | None = name
        seen = {name}
        for _ in range(levels):
            current = self._manager.get(current) if current is not None else None
            if current is None or current in seen:  # a loop made outside Formflow: stop
                return None
            seen.add(current)
        return current


def hash_token(token: str) -> str:
    """The sha256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_dummy_hash: str | None = None


def _dummy_password_hash() -> str:
    """A real hash of a random password, checked when there is no user to check against."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = generate_password_hash(secrets.token_urlsafe(16))
    return _dummy_hash


def _invalid(field: str, message: Text) -> UserInvalid:
    return UserInvalid({field: [message]})


def _unknown_role(role: str, allowed: Iterable[str]) -> Text:
    hint = did_you_mean(role, allowed)
    return Text(
        zh=f"没有角色 '{role}'；{hint.get('zh')}", en=f"unknown role '{role}'; {hint.get('en')}"
    )


def _password_problem(password: str) -> Text | None:
    if len(password) < MIN_PASSWORD:
        return MSG_PASSWORD_SHORT
    if len(password) > MAX_PASSWORD:
        return MSG_PASSWORD_LONG
    return None


class UserService:
    """Add, find, change and authenticate users; the reporting line; API tokens."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        cache_seconds: float = USER_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.write_engine = writer(engine)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.cache_seconds = max(0.0, float(cache_seconds))
        self._monotonic = monotonic
        # name -> (when read, the user or None): see ``recent``.
        self._recent: dict[str, tuple[float, User | None]] = {}
        self.users: sa.Table = schema.users
        # Built once: this runs on every signed-in request (the session's user loader).
        self._by_name = sa.select(self.users).where(self.users.c.name == sa.bindparam("name"))
        self.tokens_table: sa.Table = schema.metadata.tables["ff_tokens"]

    # -- reading -------------------------------------------------------------

    @staticmethod
    def _user(row: Any) -> User:
        m = row._mapping
        return User(
            name=m["name"],
            display_name=m["display_name"],
            email=m["email"],
            roles=tuple(m["roles"] or ()),
            manager=m["manager"],
            locale=m["locale"],
            active=bool(m["active"]),
        )

    def _row(self, conn: Connection, name: str) -> Any:
        return conn.execute(self._by_name, {"name": name}).first()

    def find(self, name: str) -> User | None:
        """The user called ``name`` (exact), or None."""
        with self.engine.connect() as conn:
            row = self._row(conn, name)
        return None if row is None else self._user(row)

    def recent(self, name: str) -> User | None:
        """The user called ``name`` as read at most ``cache_seconds`` ago, or None.

        For the web session's check on every request: a change made through this
        service counts at once, one made by another process within
        ``cache_seconds`` (see the module docs). Anything that decides on a
        password, a token or an owner uses :meth:`find`.
        """
        if self.cache_seconds <= 0:
            return self.find(name)
        now = self._monotonic()
        hit = self._recent.get(name)
        if hit is not None and 0 <= now - hit[0] < self.cache_seconds:
            return hit[1]
        user = self.find(name)
        if len(self._recent) >= USER_CACHE_SIZE:
            self._recent.clear()
        self._recent[name] = (now, user)
        return user

    def forget(self, name: str | None = None) -> None:
        """Drop ``name`` (None: everyone) from this process's cache of recent users."""
        if name is None:
            self._recent.clear()
        else:
            self._recent.pop(name, None)

    def get(self, name: str) -> User:
        """The user called ``name``; :class:`UserNotFound` if there is none."""
        user = self.find(name)
        if user is None:
            raise UserNotFound(name)
        return user

    def find_many(self, names: Iterable[str]) -> dict[str, User]:
        """``{name: user}`` for those of ``names`` that are users (one query per 500)."""
        wanted = sorted({n for n in names if isinstance(n, str) and n})
        found: dict[str, User] = {}
        if not wanted:
            return found
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                stmt = sa.select(self.users).where(
                    self.users.c.name.in_(wanted[start : start + 500])
                )
                for row in conn.execute(stmt):
                    user = self._user(row)
                    found[user.name] = user
        return found

    def labels(self, names: Iterable[str]) -> dict[str, str]:
        """``{name: display name, else the name}`` of those users that exist (one query)."""
        wanted = sorted({n for n in names if n})
        out: dict[str, str] = {}
        if not wanted:
            return out
        u = self.users
        stmt = sa.select(u.c.name, u.c.display_name).where(
            u.c.name.in_(sa.bindparam("names", expanding=True))
        )
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                for name, display in conn.execute(stmt, {"names": wanted[start : start + 500]}):
                    out[name] = display or name
        return out

    def list(self, *, active_only: bool = False) -> list[User]:
        """Every user, by name."""
        stmt = sa.select(self.users).order_by(self.users.c.name)
        if active_only:
            stmt = stmt.where(self.users.c.active.is_(True))
        with self.engine.connect() as conn:
            return [self._user(r) for r in conn.execute(stmt).all()]

    # -- checks ----------------------------------------------------------------

    def allowed_roles(self) -> frozenset[str]:
        """The blueprint's roles plus the built-in ``admin``."""
        return frozenset(self.blueprint.roles) | {ADMIN_ROLE}

    def _check_roles(self, roles: Iterable[str]) -> tuple[str, ...]:
        wanted = tuple(dict.fromkeys(str(r) for r in roles))
        if not wanted:
            raise _invalid("roles", MSG_NO_ROLE)
        allowed = self.allowed_roles()
        unknown = [r for r in wanted if r not in allowed]
        if unknown:
            raise UserInvalid({"roles": [_unknown_role(r, allowed) for r in unknown]})
        return wanted

    @staticmethod
    def _check_profile(
        display_name: str | None, email: str | None, locale: str | None
    ) -> tuple[str | None, str | None, str | None]:
        errors: dict[str, list[Text]] = {}
        display = (display_name or "").strip() or None
        if display is not None and len(display) > 200:
            errors["display_name"] = [MSG_DISPLAY]
        mail = (email or "").strip() or None
        if mail is not None and (len(mail) > 320 or not EMAIL_PATTERN.match(mail)):
            errors["email"] = [MSG_EMAIL]
        lang = (locale or "").strip() or None
        if lang is not None:
            head = lang.replace("_", "-").split("-", 1)[0].lower()
            if head not in LANGUAGES:
                errors["locale"] = [MSG_LOCALE]
            lang = head
        if errors:
            raise UserInvalid(errors)
        return display, mail, lang

    def _managers(self, conn: Connection) -> dict[str, str | None]:
        rows = conn.execute(sa.select(self.users.c.name, self.users.c.manager)).all()
        return {r.name: r.manager for r in rows}

    def _check_manager(self, conn: Connection, name: str, manager: str) -> None:
        managers = self._managers(conn)
        if manager not in managers:
            hint = did_you_mean(manager, managers, Text())
            message = MSG_NO_MANAGER.format(name=manager)
            if hint:
                message = Text(zh=f"{message.zh}；{hint.zh}", en=f"{message.en}; {hint.en}")
            raise _invalid("manager", message)
        if manager == name:
            raise _invalid("manager", MSG_SELF_MANAGER)
        if manager in Hierarchy(managers).team(name):
            raise _invalid("manager", MSG_CYCLE.format(manager=manager, name=name))

    def _other_active_admins(self, conn: Connection, name: str) -> int:
        rows = conn.execute(
            sa.select(self.users.c.name, self.users.c.roles).where(
                self.users.c.active.is_(True), self.users.c.name != name
            )
        ).all()
        return sum(1 for r in rows if ADMIN_ROLE in (r.roles or ()))

    # -- writing -----------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        roles: Iterable[str],
        manager: str | None = None,
        password: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        locale: str | None = None,
    ) -> User:
        """A new active user. Raises :class:`UserInvalid` naming every bad field."""
        errors: dict[str, list[Text]] = {}
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            errors["name"] = [MSG_NAME]
        role_list: tuple[str, ...] = ()
        display = mail = lang = None
        try:
            role_list = self._check_roles(roles)
        except UserInvalid as exc:
            errors.update(exc.errors)
        try:
            display, mail, lang = self._check_profile(display_name, email, locale)
        except UserInvalid as exc:
            errors.update(exc.errors)
        if password is not None:
            problem = _password_problem(password)
            if problem is not None:
                errors["password"] = [problem]
        if errors:
            raise UserInvalid(errors)
        password_hash = generate_password_hash(password) if password is not None else None
        try:
            with self._changing(name) as conn:
                self._check_name_free(conn, name)
                if manager is not None:
                    self._check_manager(conn, name, manager)
                conn.execute(
                    sa.insert(self.users).values(
                        name=name,
                        display_name=display,
                        email=mail,
                        roles=list(role_list),
                        manager=manager,
                        password_hash=password_hash,
                        locale=lang,
                        active=True,
                        created_at=self.clock(),
                    )
                )
        except sa.exc.IntegrityError:  # added meanwhile by another process
            raise _invalid("name", MSG_NAME_TAKEN.format(name=name)) from None
        return User(name, display, mail, role_list, manager, lang, True)

    def _check_name_free(self, conn: Connection, name: str) -> None:
        folded = name.casefold()
        for (other,) in conn.execute(sa.select(self.users.c.name)).all():
            if other.casefold() == folded:
                raise _invalid("name", MSG_NAME_TAKEN.format(name=other))

    @contextmanager
    def _changing(self, name: str) -> Iterator[Connection]:
        """A write transaction on user ``name``; the cached user is dropped after it."""
        try:
            with self.write_engine.begin() as conn:
                yield conn
        finally:
            self.forget(name)

    def _update(self, conn: Connection, name: str, **values: Any) -> None:
        result = conn.execute(
            sa.update(self.users).where(self.users.c.name == name).values(**values)
        )
        if result.rowcount == 0:
            raise UserNotFound(name)

    def _require(self, conn: Connection, name: str) -> User:
        row = self._row(conn, name)
        if row is None:
            raise UserNotFound(name)
        return self._user(row)

    def set_password(self, name: str, password: str) -> None:
        problem = _password_problem(password)
        if problem is not None:
            raise _invalid("password", problem)
        password_hash = generate_password_hash(password)
        with self._changing(name) as conn:
            self._update(conn, name, password_hash=password_hash)

    def set_manager(self, name: str, manager: str | None) -> User:
        """Move ``name`` under ``manager`` (None: to the top). Refuses loops."""
        with self._changing(name) as conn:
            self._require(conn, name)
            if manager is not None:
                self._check_manager(conn, name, manager)
            self._update(conn, name, manager=manager)
            return self._require(conn, name)

    def set_roles(self, name: str, roles: Iterable[str]) -> User:
        role_list = self._check_roles(roles)
        with self._changing(name) as conn:
            user = self._require(conn, name)
            if (
                user.active
                and user.is_admin
                and ADMIN_ROLE not in role_list
                and not self._other_active_admins(conn, name)
            ):
                raise _invalid("roles", MSG_LAST_ADMIN.format(name=name))
            self._update(conn, name, roles=list(role_list))
            return self._require(conn, name)

    def set_profile(
        self,
        name: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        locale: str | None = None,
    ) -> User:
        """Replace the display name, email and language (None clears one)."""
        display, mail, lang = self._check_profile(display_name, email, locale)
        with self._changing(name) as conn:
            self._update(conn, name, display_name=display, email=mail, locale=lang)
            return self._require(conn, name)

    def deactivate(self, name: str) -> User:
        """Refuse sign-in and revoke every API token; the user and their records stay."""
        with self._changing(name) as conn:
            user = self._require(conn, name)
            if user.active and user.is_admin and not self._other_active_admins(conn, name):
                raise _invalid("active", MSG_LAST_ADMIN.format(name=name))
            self._update(conn, name, active=False)
            tokens = self.tokens_table
            conn.execute(
                sa.update(tokens)
                .where(tokens.c.user == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
            return self._require(conn, name)

    def activate(self, name: str) -> User:
        """Allow sign-in again (revoked tokens stay revoked)."""
        with self._changing(name) as conn:
            self._update(conn, name, active=True)
            return self._require(conn, name)

    # -- signing in ----------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> User | None:
        """The active user whose password this is, else None (same work either way)."""
        with self.engine.connect() as conn:
            row = self._row(conn, name) if isinstance(name, str) else None
        stored = row._mapping["password_hash"] if row is not None else None
        if stored is None or not isinstance(password, str):
            check_password_hash(_dummy_password_hash(), str(password))
            return None
        if not check_password_hash(stored, password):
            return None
        user = self._user(row)
        return user if user.active else None

    def ensure_admin(self, password: str | None = None) -> tuple[User, str | None]:
        """Make sure someone can sign in as an admin on a first start.

        When no active user holds the ``admin`` role, adds the user ``admin`` with
        ``password`` (or a random one) and returns it with the password, to be
        shown once. Otherwise returns the first active admin (by name) and None.
        """
        existing = self._first_admin()
        if existing is not None:
            return existing, None
        chosen = password if password is not None else secrets.token_urlsafe(12)
        try:
            user = self.add(
                ADMIN_ROLE, roles=(ADMIN_ROLE,), password=chosen, display_name="Administrator"
            )
        except UserInvalid as exc:
            existing = self._first_admin()
            if existing is not None and set(exc.errors) == {"name"}:  # a concurrent start
                return existing, None
            raise
        return user, chosen

    def _first_admin(self) -> User | None:
        return next((u for u in self.list(active_only=True) if u.is_admin), None)

    # -- the reporting line ----------------------------------------------------------

    def hierarchy(self) -> Hierarchy:
        """A snapshot of who manages whom (one query)."""
        with self.engine.connect() as conn:
            return Hierarchy(self._managers(conn))

    def team(self, name: str) -> frozenset[str]:
        """``name`` and everyone below them, transitively (a rep's team is themself)."""
        return self.hierarchy().team(name)

    def manager_of(self, name: str, levels: int = 1) -> str | None:
        """The manager ``levels`` up (2: the manager's manager); None when the line ends."""
        return self.hierarchy().manager_of(name, levels)

    # -- API tokens ----------------------------------------------------------------

    def create_token(self, name: str, label: str = "") -> str:
        """A new API token for ``name``; the plain token is returned once, never stored."""
        label = label.strip()
        if len(label) > 200:
            raise _invalid("label", MSG_LABEL)
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        with self.write_engine.begin() as conn:
            user = self._require(conn, name)
            if not user.active:
                raise _invalid("user", MSG_INACTIVE.format(name=name))
            conn.execute(
                sa.insert(self.tokens_table).values(
                    user=name,
                    label=label,
                    token_hash=hash_token(token),
                    created_at=self.clock(),
                )
            )
        return token

    def verify_token(self, token: str) -> User | None:
        """The active user a live token belongs to, else None."""
        if (
            not isinstance(token, str)
            or not token.startswith(TOKEN_PREFIX)
            or len(token) > MAX_TOKEN_LENGTH
        ):
            return None
        tokens, users = self.tokens_table, self.users
        digest = hash_token(token)
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(tokens.c.id, tokens.c.last_used_at, users)
                .join(users, users.c.name == tokens.c.user)
                .where(tokens.c.token_hash == digest, tokens.c.revoked_at.is_(None))
            ).first()
        if found is None:
            return None
        user = self._user(found)
        if not user.active:
            return None
        now = self.clock()
        last = found._mapping["last_used_at"]
        if last is None or now - last >= TOKEN_TOUCH_INTERVAL:
            with self.write_engine.begin() as conn:
                conn.execute(
                    sa.update(tokens)
                    .where(tokens.c.id == found._mapping["id"])
                    .values(last_used_at=now)
                )
        return user

    def revoke_token(self, token: int | str, *, user: str | None = None) -> None:
        """Revoke a token by its id (as listed) or by the token itself.

        With ``user``, only that user's token is found (for "revoke my token").
        Revoking a revoked token changes nothing. :class:`TokenNotFound` otherwise.
        """
        tokens = self.tokens_table
        if isinstance(token, int) and not isinstance(token, bool):
            where = tokens.c.id == token
        elif isinstance(token, str) and token.startswith(TOKEN_PREFIX):
            where = tokens.c.token_hash == hash_token(token)
        else:
            raise TokenNotFound()
        if user is not None:
            where = sa.and_(where, tokens.c.user == user)
        with self.write_engine.begin() as conn:
            row = conn.execute(sa.select(tokens.c.id, tokens.c.revoked_at).where(where)).first()
            if row is None:
                raise TokenNotFound()
            if row.revoked_at is None:
                conn.execute(
                    sa.update(tokens).where(tokens.c.id == row.id).values(revoked_at=self.clock())
                )

    def tokens(self, name: str, *, include_revoked: bool = True) -> Sequence[TokenInfo]:
        """The tokens of ``name``, oldest first (without secrets)."""
        tokens = self.tokens_table
        stmt = sa.select(tokens).where(tokens.c.user == name).order_by(tokens.c.id)
        if not include_revoked:
            stmt = stmt.where(tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            TokenInfo(
                id=r.id,
                user=r.user,
                label=r.label,
                created_at=r.created_at,
                last_used_at=r.last_used_at,
                revoked_at=r.revoked_at,
            )
            for r in rows
        ]
