"""Signing in and out (flask-login over ``UserService.authenticate``).

Every page needs a signed-in user except the sign-in page and static files.
``?next=`` is followed only to a path on this site (``/e/customer?q=1``), never
to another host (``https://evil.example``, ``//evil.example``, ``/\\evil``).
The session is renewed on sign-in (no fixation) and cleared on sign-out.

Password guessing is slowed down by :class:`engine.logins.LoginThrottle`: after
too many failures for one account or from one address (counted in the
database, so across processes and hosts) the sign-in page answers 429 with
``Retry-After`` and does not check the password until the window has moved on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from werkzeug.wrappers import Response

from engine.logins import LoginLimits, LoginThrottle
from engine.records import Actor
from engine.users import User
from engine.web.i18n import _, ngettext
from engine.web.services import EXTENSION_KEY, Services, services

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
THROTTLE_KEY = "formflow.logins"

PUBLIC_ENDPOINTS = frozenset({"auth.signin", "static", "ops.healthz", "ops.readyz"})


class SignedIn(UserMixin):  # type: ignore[misc]
    """The flask-login user: a :class:`engine.users.User` for one request."""

    def __init__(self, user: User) -> None:
        self.user = user
        self._actor = user.actor

    def get_id(self) -> str:
        return self.user.name

    @property
    def is_active(self) -> bool:
        return self.user.active

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def label(self) -> str:
        return self.user.label

    @property
    def locale(self) -> str | None:
        return self.user.locale

    @property
    def actor(self) -> Actor:
        return self._actor


def current_actor() -> Actor:
    """The signed-in user as the record service's actor."""
    signed: SignedIn = current_user._get_current_object()
    return signed.actor


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(name: str) -> SignedIn | None:
    # Every request checks that the session's user still exists and is active, with
    # a user read at most FORMFLOW_USER_CACHE_SECONDS ago (see UserService.recent).
    user = services().users.recent(name)
    if user is None or not user.active:
        return None
    return SignedIn(user)


@login_manager.unauthorized_handler  # type: ignore[untyped-decorator]
def _unauthorized() -> Response:
    if request.headers.get("HX-Request"):
        response = Response(status=401)
        response.headers["HX-Redirect"] = url_for("auth.signin")
        return response
    flash(_("Please sign in first"))
    return redirect(url_for("auth.signin", next=request.full_path.rstrip("?")))


def _require_sign_in() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        result: Response = login_manager.unauthorized()
        return result
    return None


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Response | str | tuple[str, int]:
    target = safe_next(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(target or url_for("home.index"))
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        throttle = _throttle()
        address = request.remote_addr
        wait = throttle.blocked(name, address) if name else 0
        if wait:
            return _slow_down(wait, name, target)
        user = services().users.authenticate(name, password) if name and password else None
        if user is None and name:
            throttle.failed(name, address)
        if user is not None:
            throttle.succeeded(name)
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            login_user(SignedIn(user))
            return redirect(target or url_for("home.index"))
        return render_template(
            "signin.html", error=_("Wrong user name or password"), name=name, next=target
        ), 401
    return render_template("signin.html", error=None, name="", next=target)


def _throttle() -> LoginThrottle:
    found: LoginThrottle = current_app.extensions[THROTTLE_KEY]
    return found


def _slow_down(wait: int, name: str, target: str | None) -> Response:
    minutes = max(1, math.ceil(wait / 60))
    message = ngettext(
        "Too many failed sign-ins; try again in %(num)d minute",
        "Too many failed sign-ins; try again in %(num)d minutes",
        minutes,
    )
    page = render_template("signin.html", error=message, name=name, next=target)
    response = Response(page, status=429, mimetype="text/html")
    response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/signout", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def signout() -> Response:
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You are signed out"))
    return redirect(url_for("auth.signin"))


def init_app(app: Flask) -> None:
    svc: Services = app.extensions[EXTENSION_KEY]
    app.extensions[THROTTLE_KEY] = LoginThrottle(
        svc.schema, svc.engine, LoginLimits.from_config(app.config), lambda: datetime.now(UTC)
    )
    login_manager.init_app(app)
    app.before_request(_require_sign_in)
    app.register_blueprint(bp)
