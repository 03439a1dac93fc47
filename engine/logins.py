"""Slowing down password guessing: failed sign-ins counted per account and per address.

Every failed sign-in adds two rows to ``ff_login_attempts``: one for the account
name typed (lower-cased, whether or not such a user exists, so the limit tells
nothing about which names exist) and one for the client address. Before a
password is checked, :meth:`LoginThrottle.blocked` counts the rows of both in
the last ``window`` seconds; at ``max_failures`` for the account, or
``ip_max_failures`` for the address, the sign-in is refused without checking
the password, until the oldest counted failure leaves the window (the web page
answers 429 with ``Retry-After``). A successful sign-in clears the account's
failures; the address's stay, so one good password does not reopen guessing on
other accounts from the same place.

The counts live in the database, so they hold across app processes and hosts.
Settings: ``FORMFLOW_LOGIN_MAX_FAILURES`` (5), ``FORMFLOW_LOGIN_IP_MAX_FAILURES``
(20), ``FORMFLOW_LOGIN_WINDOW_SECONDS`` (900).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.storage.database import writer
from engine.storage.schema import LOGIN_ATTEMPTS_TABLE, Schema

__all__ = ["LoginLimits", "LoginThrottle"]

ACCOUNT = "account"
ADDRESS = "ip"
_SUBJECT_MAX = 200


@dataclass(frozen=True)
class LoginLimits:
    """How many failures, per account and per address, within how many seconds."""

    max_failures: int = 5
    ip_max_failures: int = 20
    window_seconds: int = 900

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LoginLimits:
        from engine.config import whole

        return cls(
            max_failures=whole(config, "FORMFLOW_LOGIN_MAX_FAILURES", 5, 1),
            ip_max_failures=whole(config, "FORMFLOW_LOGIN_IP_MAX_FAILURES", 20, 1),
            window_seconds=whole(config, "FORMFLOW_LOGIN_WINDOW_SECONDS", 900, 1),
        )


def _account(name: str) -> str:
    return name.strip().lower()[:_SUBJECT_MAX]


class LoginThrottle:
    """Counts failed sign-ins in the database (see the module doc)."""

    def __init__(
        self,
        schema: Schema,
        engine: Engine,
        limits: LoginLimits,
        clock: Callable[[], datetime],
    ) -> None:
        self.table = schema.metadata.tables[LOGIN_ATTEMPTS_TABLE]
        self.engine = engine
        self.limits = limits
        self.clock = clock

    def blocked(self, name: str, address: str | None) -> int:
        """Seconds until ``name`` from ``address`` may try again; 0 when it may now."""
        now = self.clock()
        since = now - timedelta(seconds=self.limits.window_seconds)
        t = self.table
        checks = [(ACCOUNT, _account(name), self.limits.max_failures)]
        if address:
            checks.append((ADDRESS, address[:_SUBJECT_MAX], self.limits.ip_max_failures))
        wait = 0.0
        with self.engine.connect() as conn:
            for scope, subject, most in checks:
                # The most-th newest failure in the window: while it is in the window,
                # there are at least ``most`` failures; the wait is until it leaves.
                row = conn.execute(
                    sa.select(t.c.at)
                    .where(t.c.scope == scope, t.c.subject == subject, t.c.at > since)
                    .order_by(t.c.at.desc())
                    .offset(most - 1)
                    .limit(1)
                ).first()
                if row is not None:
                    left = (row.at - since).total_seconds()
                    wait = max(wait, left)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, name: str, address: str | None) -> None:
        """Count a failed sign-in (and forget this account's and address's expired ones)."""
        now = self.clock()
        since = now - timedelta(seconds=self.limits.window_seconds)
        t = self.table
        rows = [{"scope": ACCOUNT, "subject": _account(name), "at": now}]
        if address:
            rows.append({"scope": ADDRESS, "subject": address[:_SUBJECT_MAX], "at": now})
        with writer(self.engine).begin() as conn:
            for row in rows:
                conn.execute(
                    sa.delete(t).where(
                        t.c.scope == row["scope"], t.c.subject == row["subject"], t.c.at <= since
                    )
                )
            conn.execute(sa.insert(t), rows)

    def succeeded(self, name: str) -> None:
        """A good sign-in: the account's failures are forgotten."""
        t = self.table
        with writer(self.engine).begin() as conn:
            conn.execute(sa.delete(t).where(t.c.scope == ACCOUNT, t.c.subject == _account(name)))
