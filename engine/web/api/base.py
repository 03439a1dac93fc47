"""The API blueprint and what every endpoint needs: the caller, the language, the entity.

The blueprint is mounted at ``/api``; the endpoints live under ``/api/v1`` and a
catch-all answers every other ``/api/...`` path with a JSON 404, so nothing under
``/api`` ever renders an HTML page.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from engine.i18n import LANGUAGES, T
from engine.model import Entity
from engine.records import Actor
from engine.users import User
from engine.web.api.errors import ApiError
from engine.web.services import services

bp = Blueprint("api", __name__, url_prefix="/api")
VERSION_PREFIX = "/api/v1"

_LANGUAGE_TAGS = ("zh", "zh-CN", "zh-TW", "zh-Hans", "zh-Hant", "en", "en-US", "en-GB")


def api_user() -> User:
    """The user whose bearer token authenticated this request."""
    user: User = g.api_user
    return user


def api_actor() -> Actor:
    """The caller as the record service's actor."""
    return api_user().actor


def _known_lang(tag: str | None) -> str | None:
    if not tag:
        return None
    head = tag.replace("_", "-").split("-", 1)[0].strip().lower()
    return head if head in LANGUAGES else None


def request_lang() -> str:
    """``?lang=``, else ``Accept-Language``, else the user's locale, else the blueprint's."""
    cached = g.get("api_lang")
    if isinstance(cached, str):
        return cached
    lang = _known_lang(request.args.get("lang"))
    if lang is None:
        lang = _known_lang(request.accept_languages.best_match(_LANGUAGE_TAGS))
    if lang is None and "api_user" in g:
        lang = _known_lang(api_user().locale)
    if lang is None:
        lang = _known_lang(str(current_app.config.get("FORMFLOW_DEFAULT_LANG", ""))) or "zh"
    g.api_lang = lang
    return lang


def entity_or_404(name: str) -> Entity:
    """The blueprint entity ``name``, else a JSON 404."""
    entity = services().blueprint.entities.get(name)
    if entity is None:
        raise ApiError(404, T(f"没有实体 {name}", f"no entity {name!r}"))
    return entity
