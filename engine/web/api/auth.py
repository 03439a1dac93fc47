"""Bearer-token authentication: the only way into the API.

``Authorization: Bearer ff_...`` is checked with :meth:`UserService.verify_token`;
a missing, malformed, revoked or unknown token (or an inactive user) is a 401 with
``WWW-Authenticate: Bearer``. The session cookie of the web pages is never
accepted: the API is exempt from CSRF because a browser cannot attach the
bearer header to a forged cross-site request, which holds only if a cookie alone
gets nothing.

:func:`authenticate` runs first of the app's ``before_request`` hooks, so an API
call is answered before the pages' sign-in redirect; a valid token is also handed
to flask-login (for this request only, via a request loader) so that redirect
lets it through. The request loader answers only for API requests and only with
the user this module already verified.
"""

from __future__ import annotations

from flask import Flask, g, request
from werkzeug.wrappers import Response

from engine.i18n import T, Text
from engine.web.api.base import bp
from engine.web.api.errors import error_response
from engine.web.auth import SignedIn, login_manager
from engine.web.services import services

REALM = "formflow"
MSG_MISSING = T(
    "需要 API 令牌：请求头 Authorization: Bearer <令牌>",
    "an API token is required: send Authorization: Bearer <token>",
)
MSG_SCHEME = T(
    "Authorization 请求头应为 Bearer <令牌>", "the Authorization header must be Bearer <token>"
)
MSG_INVALID = T("API 令牌无效、已撤销或用户已停用", "the API token is invalid, revoked or inactive")


def _unauthorized(message: Text, error: str | None) -> Response:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    from engine.web.api.base import request_lang

    return error_response(401, message, request_lang(), {"WWW-Authenticate": challenge})


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``""`` for another scheme."""
    header = request.headers.get("Authorization")
    if header is None or not header.strip():
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def authenticate() -> Response | None:
    """For an API request: the 401 response, or None with ``g.api_user`` set."""
    if request.blueprint != bp.name:
        return None
    token = bearer_token()
    if token is None:
        return _unauthorized(MSG_MISSING, None)
    if not token:
        return _unauthorized(MSG_SCHEME, "invalid_request")
    user = services().users.verify_token(token)
    if user is None:
        return _unauthorized(MSG_INVALID, "invalid_token")
    g.api_user = user
    return None


def _token_user(_request: object) -> SignedIn | None:
    if request.blueprint == bp.name and "api_user" in g:
        return SignedIn(g.api_user)
    return None


def init_app(app: Flask) -> None:
    """Run :func:`authenticate` before every other request hook of ``app``."""
    app.before_request_funcs.setdefault(None, []).insert(0, authenticate)
    login_manager.request_loader(_token_user)
