"""Deployment configuration: every key, read from the environment and a config file.

One deployment is configured the same way on every host: environment variables
(``FORMFLOW_*``) and/or a TOML file. :data:`KEYS` lists every key the engine
reads, with its environment name, its place in the file, its default and its
meaning; ``docs/configuration.md`` documents each one (a test checks that none
is missing, and that the engine reads no ``FORMFLOW_*`` name outside this list).

Which file: ``--config FILE``, else ``$FORMFLOW_CONFIG``, else ``formflow.toml``
in the blueprint folder when it exists. Precedence, highest first: a command
line option (``--db``, ``--workers`` ...), the environment variable, the file,
the default. A blank environment variable counts as unset. A key the file does
not know is refused (a typo would otherwise be silently ignored).

The result of :func:`load_config` is a mapping keyed by environment name, the
shape :class:`engine.settings.Settings` and the web app's ``config=`` read.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from engine.errors import SettingInvalid
from engine.i18n import T

__all__ = [
    "CONFIG_ENV",
    "CONFIG_FILE_NAME",
    "KEYS",
    "ConfigKey",
    "PoolOptions",
    "config_file",
    "database_url",
    "load_config",
    "pool_budget",
    "pool_options",
    "read_file",
    "seconds",
    "whole",
    "with_environment",
]

CONFIG_ENV = "FORMFLOW_CONFIG"
CONFIG_FILE_NAME = "formflow.toml"


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: ``env`` name, ``file`` key (``table.key``), default, meaning."""

    env: str
    file: str
    default: str
    meaning: str


#: Every key the engine reads (docs/configuration.md documents each; tests check both ways).
KEYS: tuple[ConfigKey, ...] = (
    # -- server
    ConfigKey("FORMFLOW_DB", "database.url", "SQLite file beside the blueprint", "database URL"),
    ConfigKey("FORMFLOW_HOST", "server.host", "127.0.0.1", "address `formflow serve` binds"),
    ConfigKey("FORMFLOW_PORT", "server.port", "8000", "port `formflow serve` binds"),
    ConfigKey("FORMFLOW_WORKERS", "server.workers", "2", "gunicorn worker processes"),
    ConfigKey(
        "FORMFLOW_TIMEOUT", "server.timeout", "60", "seconds before a stuck worker is killed"
    ),
    ConfigKey(
        "FORMFLOW_PROXY_COUNT",
        "server.proxy_count",
        "0",
        "reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted",
    ),
    ConfigKey(
        "FORMFLOW_RELOAD_SECONDS",
        "server.reload_seconds",
        "1",
        "how often a process checks the database for a migrated blueprint (0: every request)",
    ),
    # -- database pool
    ConfigKey("FORMFLOW_DB_POOL_SIZE", "database.pool_size", "5", "connections kept per process"),
    ConfigKey(
        "FORMFLOW_DB_MAX_OVERFLOW",
        "database.max_overflow",
        "5",
        "extra connections a process may open under load",
    ),
    ConfigKey(
        "FORMFLOW_DB_POOL_TIMEOUT",
        "database.pool_timeout",
        "30",
        "seconds a request waits for a free connection",
    ),
    ConfigKey(
        "FORMFLOW_DB_POOL_RECYCLE",
        "database.pool_recycle",
        "1800",
        "seconds after which a pooled connection is replaced",
    ),
    # -- sessions and secrets
    ConfigKey("FORMFLOW_SECRET_KEY", "session.secret_key", "generated file", "signs sessions"),
    ConfigKey(
        "FORMFLOW_SECRET_FILE",
        "session.secret_file",
        ".formflow-secret beside the database",
        "where a generated key is kept",
    ),
    ConfigKey(
        "FORMFLOW_SESSION_COOKIE_SECURE",
        "session.cookie_secure",
        "false",
        "send the session cookie over HTTPS only",
    ),
    ConfigKey(
        "FORMFLOW_USER_CACHE_SECONDS",
        "session.user_cache_seconds",
        "5",
        "how long a process reuses the signed-in user it read",
    ),
    # -- sign-in throttling
    ConfigKey(
        "FORMFLOW_LOGIN_MAX_FAILURES",
        "login.max_failures",
        "5",
        "failed sign-ins per account within the window before it is slowed down",
    ),
    ConfigKey(
        "FORMFLOW_LOGIN_IP_MAX_FAILURES",
        "login.ip_max_failures",
        "20",
        "failed sign-ins per client address within the window before it is slowed down",
    ),
    ConfigKey(
        "FORMFLOW_LOGIN_WINDOW_SECONDS",
        "login.window_seconds",
        "900",
        "the window of the sign-in limits (seconds)",
    ),
    # -- logging
    ConfigKey("FORMFLOW_LOG_LEVEL", "log.level", "INFO", "level of the formflow loggers"),
    ConfigKey(
        "FORMFLOW_LOG_REQUESTS", "log.requests", "true", "one JSON line per request on stderr"
    ),
    # -- files
    ConfigKey(
        "FORMFLOW_UPLOAD_DIR", "files.upload_dir", "uploads beside the database", "uploaded files"
    ),
    ConfigKey("FORMFLOW_UPLOAD_MAX_MB", "files.upload_max_mb", "10", "size limit of a file field"),
    ConfigKey(
        "FORMFLOW_IMPORT_DIR", "files.import_dir", "imports in the upload folder", "import uploads"
    ),
    ConfigKey("FORMFLOW_IMPORT_MAX_MB", "files.import_max_mb", "50", "size limit of an import"),
    ConfigKey(
        "FORMFLOW_IMPORT_INLINE_KB",
        "files.import_inline_kb",
        "256",
        "imports up to this size run in the request, larger ones in the background",
    ),
    # -- mail
    ConfigKey("FORMFLOW_SMTP_HOST", "smtp.host", "(none: no mail)", "SMTP server"),
    ConfigKey("FORMFLOW_SMTP_PORT", "smtp.port", "587/465/25 by security", "SMTP port"),
    ConfigKey("FORMFLOW_SMTP_SECURITY", "smtp.security", "starttls", "starttls, ssl or none"),
    ConfigKey("FORMFLOW_SMTP_USER", "smtp.user", "(none)", "SMTP user"),
    ConfigKey("FORMFLOW_SMTP_PASSWORD", "smtp.password", "(none)", "SMTP password"),
    ConfigKey("FORMFLOW_SMTP_FROM", "smtp.from", "(none: no mail)", "the sender of mails"),
    ConfigKey("FORMFLOW_SMTP_TIMEOUT", "smtp.timeout", "30", "seconds per SMTP connection"),
    ConfigKey("FORMFLOW_BASE_URL", "server.base_url", "(none)", "public URL, for links in mails"),
    # -- webhooks
    ConfigKey("FORMFLOW_WEBHOOK_SECRET", "webhooks.secret", "(none)", "default signing secret"),
    ConfigKey(
        "FORMFLOW_WEBHOOK_ALLOW_HOSTS",
        "webhooks.allow_hosts",
        "(none)",
        "hosts a webhook may reach whatever they resolve to",
    ),
    ConfigKey(
        "FORMFLOW_WEBHOOK_ALLOW_PRIVATE",
        "webhooks.allow_private",
        "false",
        "let webhooks reach loopback and private addresses",
    ),
    ConfigKey("FORMFLOW_WEBHOOK_TIMEOUT", "webhooks.timeout", "10", "seconds per delivery"),
)

_BY_FILE = {k.file: k for k in KEYS}


def config_file(
    explicit: str | Path | None,
    blueprint_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The config file to read: ``explicit``, ``$FORMFLOW_CONFIG``, or the blueprint's."""
    env = os.environ if environ is None else environ
    chosen = explicit or env.get(CONFIG_ENV) or None
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise SettingInvalid(
                T(f"找不到配置文件 {path}", f"the config file {path} does not exist")
            )
        return path
    if blueprint_path is not None:
        bp = Path(blueprint_path)
        candidate = (bp if bp.is_dir() else bp.parent) / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_file(path: Path) -> dict[str, Any]:
    """The file's values keyed by environment name; unknown keys are refused."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingInvalid(
            T(f"无法读取配置文件 {path}：{exc}", f"cannot read the config file {path}: {exc}")
        ) from exc
    out: dict[str, Any] = {}
    for name, value in _flatten(data).items():
        key = _BY_FILE.get(name)
        if key is None:
            raise SettingInvalid(
                T(
                    f"配置文件 {path} 中的 {name} 不是已知的设置（见 docs/configuration.md）",
                    f"{name} in {path} is not a known setting (see docs/configuration.md)",
                )
            )
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out[key.env] = value
    return out


def load_config(
    explicit: str | Path | None = None,
    blueprint_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every configured key (environment over file), keyed by environment name."""
    env = os.environ if environ is None else environ
    path = config_file(explicit, blueprint_path, env)
    values = read_file(path) if path is not None else {}
    for key in KEYS:
        found = env.get(key.env)
        if found is not None and found != "":
            values[key.env] = found
    return values


def database_url(explicit: str | None, blueprint_path: str | Path) -> str:
    """``--db``, else ``FORMFLOW_DB`` (environment, then config file), else the SQLite file."""
    if explicit:
        return explicit
    configured = load_config(None, blueprint_path).get("FORMFLOW_DB")
    if configured:
        return str(configured)
    from engine.storage.database import default_url

    return default_url(blueprint_path)


def pool_budget(workers: int, pool_size: int, max_overflow: int) -> int:
    """The most connections ``workers`` app processes may hold: workers x (pool + overflow)."""
    return workers * (pool_size + max_overflow)


def _whole(config: Mapping[str, Any], name: str, default: int, least: int) -> int:
    value = config.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = least - 1
    if number < least:
        raise SettingInvalid(
            T(
                f"设置 {name} 的值 {value!r} 无效：应为不小于 {least} 的整数",
                f"the setting {name} is {value!r}: expected a whole number of at least {least}",
            )
        )
    return number


class PoolOptions(TypedDict):
    """The keyword arguments of :func:`engine.storage.database.create_engine`'s pool."""

    pool_size: int
    max_overflow: int
    pool_timeout: int
    pool_recycle: int


def pool_options(config: Mapping[str, Any]) -> PoolOptions:
    """The connection pool options of ``create_engine`` from ``FORMFLOW_DB_POOL_*``."""
    return PoolOptions(
        pool_size=_whole(config, "FORMFLOW_DB_POOL_SIZE", 5, 1),
        max_overflow=_whole(config, "FORMFLOW_DB_MAX_OVERFLOW", 5, 0),
        pool_timeout=_whole(config, "FORMFLOW_DB_POOL_TIMEOUT", 30, 1),
        pool_recycle=_whole(config, "FORMFLOW_DB_POOL_RECYCLE", 1800, 1),
    )


def whole(config: Mapping[str, Any], name: str, default: int, least: int = 0) -> int:
    """``config[name]`` as a whole number of at least ``least`` (default when unset)."""
    return _whole(config, name, default, least)


def seconds(config: Mapping[str, Any], name: str, default: float) -> float:
    """``config[name]`` as a number of seconds, 0 or more (default when unset)."""
    value = config.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise SettingInvalid(
            T(
                f"设置 {name} 的值 {value!r} 无效：应为不小于 0 的秒数",
                f"the setting {name} is {value!r}: expected seconds (0 or more)",
            )
        )
    return number


def with_environment(
    config: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``config`` plus every key it lacks that the environment sets (blank is unset)."""
    env = os.environ if environ is None else environ
    out = dict(config or {})
    for key in KEYS:
        if out.get(key.env) in (None, ""):
            found = env.get(key.env)
            if found:
                out[key.env] = found
    return out
