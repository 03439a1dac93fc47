"""The Flask app factory: one blueprint, one database, every page generated.

``create_app(blueprint_path, db_url=None, config=None)`` loads and checks the
blueprint, connects to the database (default: the SQLite file beside the
blueprint) and builds the services. It does not create or migrate tables:
``formflow serve`` checks the schema first (``formflow migrate`` updates it).

Templates come from ``templates/`` inside the blueprint folder first (to
override any page), then the engine's own (the repository's top-level
``templates/``, or its packaged copy: see :mod:`engine.resources`). Autoescaping is
always on and no blueprint text or record value is ever compiled as a template.

Configuration: every ``FORMFLOW_*`` key of :data:`engine.config.KEYS` is a
``config`` key, else its environment variable (docs/configuration.md lists them
all); Flask's own keys (``SECRET_KEY``, ``SESSION_COOKIE_SECURE``, ``TESTING``,
``WTF_CSRF_ENABLED`` ...) may be given too. The ones the app itself reads:

* ``SECRET_KEY`` / ``FORMFLOW_SECRET_KEY``: signs the session. When neither is
  given a random key is generated once and kept in ``FORMFLOW_SECRET_FILE``
  (default ``.formflow-secret`` beside the SQLite file, or in the blueprint
  folder for other databases; created with mode 0600), so every worker and
  every restart share it. Set the variable in production.
* ``SESSION_COOKIE_SECURE`` / ``FORMFLOW_SESSION_COOKIE_SECURE`` (default False;
  set True behind HTTPS).
* ``FORMFLOW_DB_POOL_*``: the connection pool of each process.
* ``FORMFLOW_PROXY_COUNT``: trusted reverse proxies (``X-Forwarded-*``).
* ``FORMFLOW_RELOAD_SECONDS``, ``FORMFLOW_LOG_REQUESTS``: see
  :mod:`engine.web.serving` (``/healthz``, ``/readyz``, request logs, blueprint
  reloads after ``formflow migrate``).
* ``WTF_CSRF_ENABLED`` (default True; tests may turn it off).
* ``FORMFLOW_UPLOAD_DIR``: where uploaded files are kept (default ``uploads``
  beside the SQLite file, or in the blueprint folder for other databases).
* ``FORMFLOW_UPLOAD_MAX_MB``: the size limit of a file field without
  ``max_size_mb`` (default 10).
* ``FORMFLOW_USER_CACHE_SECONDS`` (default 5): how
  long a worker may reuse the signed-in user it read for the session check on
  every request. A user deactivated or given other roles by another process
  (a script, the CLI, another worker) is refused or sees the new roles on
  every request at most this many seconds later; a change made through the same
  process counts at once. 0 reads the user on every request.

Request bodies are limited to 4 MB (``MAX_CONTENT_LENGTH``), except a form of
an entity with file fields (its file limits added) and ``POST /api/v1/uploads``
(the field's limit), decided before anything reads the body.
* The services' runtime settings — SMTP (``FORMFLOW_SMTP_*``), webhooks
  (``FORMFLOW_WEBHOOK_*``), ``FORMFLOW_BASE_URL`` — are config keys too, else
  environment variables (:mod:`engine.settings`).

Writes made through the app run the blueprint's automations (in the request's
transaction) and queue their mail and webhooks as jobs; a worker
(``formflow worker``, or the one ``formflow serve --demo`` / ``--dev`` starts)
runs them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from engine.config import pool_options, seconds, whole, with_environment
from engine.errors import FormflowError
from engine.exports import ExportService
from engine.fields import using_timezone
from engine.i18n import normalise_lang
from engine.imports import ImportService
from engine.loader import load
from engine.model import Blueprint
from engine.resources import STATIC_DIR, TEMPLATES_DIR
from engine.runtime import build_runtime
from engine.settings import flag
from engine.storage.database import create_engine, default_url
from engine.uploads import DEFAULT_MAX_MB, UploadService, upload_folder
from engine.users import USER_CACHE_SECONDS
from engine.web import serving
from engine.web.context import CACHE_KEY
from engine.web.i18n import N_, _, current_lang
from engine.web.services import EXTENSION_KEY, Services, services

SECRET_ENV = "FORMFLOW_SECRET_KEY"
USER_CACHE_ENV = "FORMFLOW_USER_CACHE_SECONDS"
SECRET_FILE_NAME = ".formflow-secret"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

csrf = CSRFProtect()

#: The message of an error page by HTTP status (others: "Something went wrong").
HTTP_ERROR_MESSAGES: Mapping[int, str] = {
    400: N_("Bad request"),
    403: N_("You may not do this"),
    404: N_("This page or record does not exist"),
    413: N_("The upload is too large"),
}


def _secret_file(blueprint_path: Path, db_url: str) -> Path:
    if db_url.startswith("sqlite:///") and ":memory:" not in db_url:
        return Path(db_url[len("sqlite:///") :]).resolve().parent / SECRET_FILE_NAME
    folder = blueprint_path if blueprint_path.is_dir() else blueprint_path.parent
    return folder / SECRET_FILE_NAME


def stored_secret(path: Path) -> str:
    """The key in ``path``, created (mode 0600, never overwritten) when missing."""
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race: use its key
        return path.read_text(encoding="utf-8").strip() or key
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key)
    return key


def create_app(
    blueprint_path: str | Path, db_url: str | None = None, config: Mapping[str, Any] | None = None
) -> Flask:
    """A Flask app serving the blueprint at ``blueprint_path`` (see the module docs)."""
    path = Path(blueprint_path)
    blueprint = load(path)
    settings = with_environment(config)
    url = db_url or settings.get("FORMFLOW_DB") or default_url(path)

    app = Flask("engine.web", static_folder=str(STATIC_DIR), static_url_path="/static")
    loaders = []
    folder = path if path.is_dir() else path.parent
    if (folder / "templates").is_dir():
        loaders.append(FileSystemLoader(str(folder / "templates")))
    loaders.append(FileSystemLoader(str(TEMPLATES_DIR)))
    app.jinja_loader = ChoiceLoader(loaders)
    app.jinja_env.autoescape = select_autoescape(default=True, default_for_string=True)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="formflow_session",
        SESSION_COOKIE_SECURE=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        FORMFLOW_DEFAULT_LANG=normalise_lang(blueprint.default_locale),
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
    )
    app.config.update(settings)
    if "SESSION_COOKIE_SECURE" not in settings and "FORMFLOW_SESSION_COOKIE_SECURE" in settings:
        app.config["SESSION_COOKIE_SECURE"] = flag(
            "FORMFLOW_SESSION_COOKIE_SECURE", settings["FORMFLOW_SESSION_COOKIE_SECURE"]
        )
    proxies = whole(app.config, "FORMFLOW_PROXY_COUNT", 0)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = app.config.get(SECRET_ENV) or stored_secret(
            Path(app.config.get("FORMFLOW_SECRET_FILE") or _secret_file(path, url))
        )

    engine = create_engine(url, **pool_options(app.config))

    def rebuild(loaded: Blueprint) -> Services:
        return _build_services(app, loaded, engine, path, url)

    app.extensions[EXTENSION_KEY] = rebuild(blueprint)

    csrf.init_app(app)
    from engine.web import api, auth, context, files, i18n, importing
    from engine.web.views import (
        dashboards,
        exports,
        flows,
        home,
        incentives,
        lists,
        notifications,
        parts,
        records,
    )

    i18n.init_app(app, blueprint.timezone)
    auth.init_app(app)
    api.init_app(app, csrf)  # JSON API: bearer tokens only, so exempt from CSRF
    context.init_app(app)
    for module in (
        home,
        lists,
        records,
        parts,
        notifications,
        flows,
        exports,
        incentives,
        dashboards,
    ):
        app.register_blueprint(module.bp)
    importing.init_app(app)  # the import pages, their body limit, import_url()

    _install_hooks(app)
    # Before the other hooks: the body limit must be set before CSRF reads the form.
    app.before_request_funcs.setdefault(None, []).insert(0, files.set_body_limit)
    # First of all: the request id and timing, and the switch to a migrated blueprint.
    serving.init_app(app, path, rebuild)
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    return app


def _build_services(
    app: Flask, blueprint: Blueprint, engine: Engine, path: Path, url: str
) -> Services:
    """Every service of ``blueprint`` on ``engine`` (at start, and after a migration)."""
    cache_seconds = seconds(app.config, USER_CACHE_ENV, USER_CACHE_SECONDS)
    runtime = build_runtime(blueprint, engine, config=app.config, user_cache_seconds=cache_seconds)
    upload_dir = app.config.get("FORMFLOW_UPLOAD_DIR") or upload_folder(path, url)
    app.extensions.pop(CACHE_KEY, None)  # page parts built for the previous blueprint
    return Services(
        blueprint=blueprint,
        schema=runtime.schema,
        engine=engine,
        records=runtime.records,
        users=runtime.users,
        permissions=runtime.permissions,
        uploads=UploadService(
            blueprint,
            runtime.schema,
            engine,
            Path(upload_dir),
            default_max_mb=float(app.config.get("FORMFLOW_UPLOAD_MAX_MB") or DEFAULT_MAX_MB),
        ),
        notifications=runtime.notifications,
        events=runtime.events,
        jobs=runtime.jobs,
        flows=runtime.flows,
        runtime=runtime,
        exports=ExportService(
            blueprint, runtime.schema, engine, runtime.records, permissions=runtime.permissions
        ),
        imports=ImportService(runtime.records),
    )


def _install_hooks(app: Flask) -> None:
    @app.before_request
    def _business_timezone() -> None:
        cm = using_timezone(services().blueprint.timezone)
        cm.__enter__()
        g.tz_context = cm

    @app.teardown_request
    def _leave_timezone(_exc: BaseException | None) -> None:
        cm = g.pop("tz_context", None)
        if cm is not None:
            cm.__exit__(None, None, None)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> tuple[str, int]:
        message = _("The page has expired; reload it and try again")
        return render_template("error.html", status=400, message=message), 400

    @app.errorhandler(FormflowError)
    def _formflow_error(exc: FormflowError) -> tuple[str, int]:
        status = exc.http_status if exc.http_status in (400, 403, 404, 409, 422) else 500
        return (
            render_template("error.html", status=status, message=exc.message(current_lang())),
            status,
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str, int]:
        status = exc.code or 500
        if status in HTTP_ERROR_MESSAGES:
            message = _(HTTP_ERROR_MESSAGES[status])
        else:
            message = _("Something went wrong")
        return render_template("error.html", status=status, message=message), status
