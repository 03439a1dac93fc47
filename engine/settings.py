"""Runtime settings of the services: SMTP, webhooks, links (not part of any blueprint).

A blueprint says *what* to do (notify the owner, call this URL); these settings
say *how* in one deployment: which mail server, which internal hosts a webhook
may reach, the shared signing secret. Secrets never belong in a blueprint.

Every setting is read from the config mapping handed to the services (the web
app's ``config=``, whose keys are Flask config keys) and else from the
environment variable of the same name, so ``formflow serve`` and
``formflow worker`` on one host read the same environment. A blank value counts
as unset. A value the engine cannot use raises
:class:`~engine.errors.SettingInvalid` naming the setting.

=================================  ==================================================
setting                            meaning
=================================  ==================================================
``FORMFLOW_SMTP_HOST``             SMTP server; without it (or a sender) no mail
``FORMFLOW_SMTP_PORT``             default 587 (starttls), 465 (ssl), 25 (none)
``FORMFLOW_SMTP_SECURITY``         ``starttls`` (default), ``ssl`` or ``none``
``FORMFLOW_SMTP_USER``             log in as this user (with the password)
``FORMFLOW_SMTP_PASSWORD``         the SMTP password
``FORMFLOW_SMTP_FROM``             the sender, e.g. ``CRM <crm@example.com>``
``FORMFLOW_SMTP_TIMEOUT``          seconds (default 30)
``FORMFLOW_BASE_URL``              e.g. ``https://crm.example.com``: links in mails
``FORMFLOW_WEBHOOK_SECRET``        signing secret of webhooks without ``secret_env``
``FORMFLOW_WEBHOOK_ALLOW_HOSTS``   comma-separated hosts (or host:port) a webhook may
                                   reach whatever they resolve to
``FORMFLOW_WEBHOOK_ALLOW_PRIVATE`` ``1``/``true``: also loopback and private addresses
``FORMFLOW_WEBHOOK_TIMEOUT``       seconds per delivery attempt (default 10)
=================================  ==================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import SettingInvalid
from engine.i18n import T

__all__ = [
    "SECURITY_MODES",
    "MailSettings",
    "Settings",
    "WebhookSettings",
    "flag",
    "setting",
]

SECURITY_MODES: tuple[str, ...] = ("starttls", "ssl", "none")
_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def setting(config: Mapping[str, Any], key: str, environ: Mapping[str, str] | None = None) -> Any:
    """``config[key]``, else the environment variable ``key``, else None (blank is unset)."""
    value = config.get(key)
    if value is None or value == "":
        value = (os.environ if environ is None else environ).get(key)
    return None if value == "" else value


def _invalid(key: str, value: Any, expected: str, expected_zh: str) -> SettingInvalid:
    return SettingInvalid(
        T(
            f"设置 {key} 的值 {value!r} 无效：应为{expected_zh}",
            f"the setting {key} is {value!r}: expected {expected}",
        )
    )


def _number(key: str, value: Any, *, integer: bool) -> float | None:
    if value is None:
        return None
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise _invalid(key, value, "a number", "数字") from None
    if number <= 0:
        raise _invalid(key, value, "a positive number", "正数")
    return number


def flag(key: str, value: Any, *, default: bool = False) -> bool:
    """``value`` as a yes/no setting (1/true/yes/on, 0/false/no/off; unset: ``default``)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _invalid(key, value, "1/true or 0/false", "1/true 或 0/false")


def _hosts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(h).strip().lower() for h in items if str(h).strip())


@dataclass(frozen=True)
class MailSettings:
    """How to reach the SMTP server (``FORMFLOW_SMTP_*``)."""

    host: str | None = None
    port: int | None = None
    security: str = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    timeout: float = 30.0
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise _invalid(
                "FORMFLOW_SMTP_SECURITY",
                self.security,
                " or ".join(SECURITY_MODES),
                "、".join(SECURITY_MODES),
            )

    @property
    def configured(self) -> bool:
        """Mail can be sent: a host and a sender are set."""
        return bool(self.host and self.sender)

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]


@dataclass(frozen=True)
class WebhookSettings:
    """Where webhooks may go and how they are signed (``FORMFLOW_WEBHOOK_*``)."""

    secret: str | None = field(default=None, repr=False)
    allow_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    timeout: float = 10.0


@dataclass(frozen=True)
class Settings:
    """Everything the automation, mail and webhook services read from the deployment."""

    mail: MailSettings = field(default_factory=MailSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read every setting from ``config``, else the environment (see the module doc)."""
        cfg = config or {}

        def get(key: str) -> Any:
            return setting(cfg, key, environ)

        port = _number("FORMFLOW_SMTP_PORT", get("FORMFLOW_SMTP_PORT"), integer=True)
        mail_timeout = _number("FORMFLOW_SMTP_TIMEOUT", get("FORMFLOW_SMTP_TIMEOUT"), integer=False)
        hook_timeout = _number(
            "FORMFLOW_WEBHOOK_TIMEOUT", get("FORMFLOW_WEBHOOK_TIMEOUT"), integer=False
        )
        mail = MailSettings(
            host=get("FORMFLOW_SMTP_HOST"),
            port=int(port) if port is not None else None,
            security=str(get("FORMFLOW_SMTP_SECURITY") or "starttls").strip().lower(),
            user=get("FORMFLOW_SMTP_USER"),
            password=get("FORMFLOW_SMTP_PASSWORD"),
            sender=get("FORMFLOW_SMTP_FROM"),
            timeout=mail_timeout or 30.0,
            base_url=get("FORMFLOW_BASE_URL"),
        )
        webhooks = WebhookSettings(
            secret=get("FORMFLOW_WEBHOOK_SECRET"),
            allow_hosts=_hosts(get("FORMFLOW_WEBHOOK_ALLOW_HOSTS")),
            allow_private=flag(
                "FORMFLOW_WEBHOOK_ALLOW_PRIVATE", get("FORMFLOW_WEBHOOK_ALLOW_PRIVATE")
            ),
            timeout=hook_timeout or 10.0,
        )
        return cls(mail=mail, webhooks=webhooks)
