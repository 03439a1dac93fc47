"""What every template can use: the language, the menu, the signed-in user.

``_``, ``ngettext`` and ``pgettext`` come from flask-babel (see :mod:`engine.web.i18n`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, url_for
from flask_login import current_user

from engine.web import access
from engine.web.i18n import current_lang
from engine.web.services import services
from engine.web.views.common import link


def _switch_language_url() -> str:
    other = "en" if current_lang() == "zh" else "zh"
    args = request.args.to_dict(flat=False)
    args["lang"] = [other]
    endpoint = request.endpoint or "home.index"
    values = dict(request.view_args or {})
    try:
        return link(endpoint, {**values, **args})
    except Exception:  # an endpoint without a GET view (a POST result page)
        return url_for("home.index", lang=other)


def _menu() -> list[dict[str, str]]:
    if not current_user.is_authenticated:
        return []
    lang = current_lang()
    actor = current_user.actor
    out = []
    for entity in services().blueprint.entities.values():
        if access.can_see(actor, entity):
            out.append(
                {
                    "name": entity.name,
                    "label": entity.label.get(lang) or entity.name,
                    "url": url_for("lists.index", entity=entity.name),
                }
            )
    return out


def _globals() -> dict[str, Any]:
    lang = current_lang()
    bp = services().blueprint
    return {
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "app_title": bp.title.get(lang) or bp.id,
        "menu": _menu,
        "switch_language_url": _switch_language_url,
    }


def init_app(app: Flask) -> None:
    app.context_processor(_globals)
