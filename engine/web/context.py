"""What every template can use: the language, the menu, the signed-in user.

``_``, ``gettext``, ``ngettext``, ``pgettext`` and ``npgettext`` are flask-babel's
catalog of the page's language, bound once per page
(:func:`engine.web.i18n.template_gettext`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request, url_for
from flask_login import current_user

from engine.web import access, dashboards
from engine.web.i18n import current_lang, template_gettext
from engine.web.services import services
from engine.web.views.common import with_query

_T = TypeVar("_T")
CACHE_KEY = "formflow.page_parts"
CACHE_SIZE = 256


def _switch_language_url() -> str:
    other = "en" if current_lang() == "zh" else "zh"
    args = request.args.to_dict(flat=False)
    args["lang"] = [other]
    endpoint = request.endpoint or "home.index"
    try:
        here = url_for(endpoint, **(request.view_args or {}))
    except Exception:  # an endpoint without a GET view (a POST result page)
        return url_for("home.index", lang=other)
    return with_query(here, args)


def _cached(key: tuple[Any, ...], build: Callable[[], _T]) -> _T:
    """``build()`` once per app and ``key`` (at most CACHE_SIZE keys, then anew)."""
    cache: dict[tuple[Any, ...], Any] = current_app.extensions.setdefault(CACHE_KEY, {})
    if key in cache:
        found: _T = cache[key]
        return found
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    value = cache[key] = build()
    return value


def _chrome() -> dict[str, str]:
    """The URLs every page links to, built once per script root instead of per page."""
    return _cached(
        ("chrome", request.script_root),
        lambda: {
            "home": url_for("home.index"),
            "signout": url_for("auth.signout"),
            "pico_css": url_for("static", filename="vendor/pico/pico.min.css"),
            "app_css": url_for("static", filename="app.css"),
            "htmx_js": url_for("static", filename="vendor/htmx/htmx.min.js"),
        },
    )


def _menu() -> list[dict[str, str]]:
    """The dashboards and entities the user may see. The same for every user with the same
    roles (the permission layer decides by roles), so it is built once per roles and
    language."""
    if not current_user.is_authenticated:
        return []
    lang = current_lang()
    actor = current_user.actor

    def build() -> list[dict[str, str]]:
        out = []
        blueprint = services().blueprint
        for board in dashboards.visible(blueprint, actor):
            out.append(
                {
                    "name": f"dashboard:{board.name}",
                    "label": board.label.get(lang) or board.name,
                    "url": url_for("dashboards.show", name=board.name),
                }
            )
        for entity in blueprint.entities.values():
            if access.can_see(actor, entity):
                out.append(
                    {
                        "name": entity.name,
                        "label": entity.label.get(lang) or entity.name,
                        "url": url_for("lists.index", entity=entity.name),
                    }
                )
        return out

    key = ("menu", request.script_root, lang, actor.is_system, actor.roles)
    return [dict(item) for item in _cached(key, build)]


def _unread_notifications() -> int:
    """The signed-in user's unread notifications (one small query, for the header)."""
    if not current_user.is_authenticated:
        return 0
    return services().notifications.unread_count(current_user.actor.name)


def _globals() -> dict[str, Any]:
    lang = current_lang()
    bp = services().blueprint
    return {
        # _, gettext, ngettext, pgettext, npgettext: bound to this page's catalog once
        **template_gettext(),
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "app_title": bp.title.get(lang) or bp.id,
        "chrome": _chrome(),
        "menu": _menu,
        "switch_language_url": _switch_language_url,
        "unread_notifications": _unread_notifications,
    }


def init_app(app: Flask) -> None:
    app.context_processor(_globals)
