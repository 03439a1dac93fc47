"""The web pages' own words (gettext catalogs, through flask-babel) and their language.

UI strings are gettext messages whose msgid is the English text: ``_("Sign in")``
in Python, ``{{ _('Sign in') }}`` in a template, ``ngettext``/``npgettext`` where
a count is shown, placeholders always named (``_("Edit %(entity)s", entity=...)``).
English pages therefore need no catalog; the Chinese one is
``engine/web/translations/zh_Hans/LC_MESSAGES/messages.po``, compiled to the
``messages.mo`` beside it, which is committed so an install has no build step.
``docs/architecture.md`` ("Translating the UI") has the commands that
re-extract, update and compile it; tests check that every message has a
translation and that the ``.mo`` matches the ``.po``. Templates get these
functions bound to the request's catalog once per page (:func:`template_gettext`,
through :mod:`engine.web.context`) rather than flask-babel's own, which look the
catalog up again on every call.

Blueprint text (labels, help, options, messages) is not in the catalog: it is
:class:`engine.i18n.Text`, picked with ``Text.get(current_lang())``.

The language of a request, chosen by flask-babel's locale selector
(:func:`select_locale`): ``?lang=zh|en`` (remembered in the session), then the
signed-in user's ``locale``, then the browser's ``Accept-Language``, then the
blueprint's ``default_locale``. Values are formatted per locale by
:mod:`engine.locales`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import flask_babel
from babel import Locale
from babel.support import NullTranslations
from flask import Flask, current_app, request, session
from flask_login import current_user
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

from engine.i18n import DEFAULT_LANGUAGE, LANGUAGES, normalise_lang
from engine.resources import TRANSLATIONS_DIR

#: The gettext domain (``messages.po`` / ``messages.mo``).
DOMAIN = "messages"
#: The locale flask-babel is handed for each language: the catalog's name. gettext
#: finds a catalog by the full locale name or the language alone (``zh_Hans_CN``
#: looks in ``zh_Hans_CN`` and ``zh``), so Chinese is ``zh_Hans`` here. Formatting
#: uses :data:`engine.locales.BABEL_LOCALES` (``zh_Hans_CN``): the same CLDR data.
CATALOG_LOCALES: dict[str, Locale] = {
    "zh": Locale.parse("zh_Hans"),
    "en": Locale.parse("en"),
}

babel = flask_babel.Babel()


def _(message: str, /, **params: Any) -> str:
    """``message`` (an English msgid) in the request's language, ``%(name)s`` filled."""
    return str(flask_babel.gettext(message, **params))


def ngettext(singular: str, plural: str, count: int, /, **params: Any) -> str:
    """The singular or plural message for ``count``; ``%(num)s`` is ``count`` unless
    given (pass it formatted for the reader: ``num=show_count(count, lang)``)."""
    params.setdefault("num", count)
    text = flask_babel.get_translations().ungettext(singular, plural, count)
    return str(text % params)


def npgettext(context: str, singular: str, plural: str, count: int, /, **params: Any) -> str:
    """:func:`ngettext` for a msgid that means something else in another ``context``."""
    params.setdefault("num", count)
    text = flask_babel.get_translations().unpgettext(context, singular, plural, count)
    return str(text % params)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for extraction only; translate it later with :func:`_`."""
    return message


#: Templates' gettext functions by catalog (see :func:`template_gettext`): one entry per
#: language in practice; started over past :data:`BOUND_CATALOGS`.
_BOUND: dict[object, Mapping[str, Callable[..., str]]] = {}
BOUND_CATALOGS = 16
#: Most messages without placeholders a catalog's templates keep ready as markup.
PLAIN_MESSAGES = 4096


def template_gettext() -> Mapping[str, Callable[..., str]]:
    """The templates' ``_``, ``gettext``, ``ngettext``, ``pgettext`` and ``npgettext``,
    bound to the catalog of this request's language (given to every template).

    flask-babel's own (installed through Jinja's i18n extension) look the catalog up
    again on every call: the domain, the locale, the catalog cache, each through
    ``g``; a page calls them dozens of times. These are bound to the catalog
    flask-babel chose for the request (its locale selected once per request),
    found once per page; they are built once per catalog. They behave exactly
    like Jinja's "newstyle" gettext: the translation is markup under
    autoescaping, and its placeholders are always filled with ``%`` (so a
    literal ``%`` is ``%%``), their values escaped.
    """
    catalog = flask_babel.get_translations()
    bound = _BOUND.get(catalog)
    if bound is None:
        if len(_BOUND) >= BOUND_CATALOGS:
            _BOUND.clear()
        bound = _BOUND[catalog] = _bind(catalog)
    return bound


def _bind(catalog: NullTranslations) -> Mapping[str, Callable[..., str]]:
    # What flask-babel's own template callables call on the catalog.
    find, find_n = catalog.ugettext, catalog.ungettext
    find_p, find_np = catalog.upgettext, catalog.unpgettext
    # (context, message) -> the translation as markup, for calls without placeholders
    plain: dict[tuple[str | None, str], Markup] = {}

    def ready(context: str | None, message: str, text: str, variables: dict[str, str]) -> Markup:
        """``text`` as Jinja's gettext returns it without placeholders, kept for next time."""
        if len(plain) >= PLAIN_MESSAGES:
            plain.clear()
        # Markup over our own catalog's text; ``%`` escapes every value it inserts.
        found: Markup = Markup(text) % variables  # nosec B704
        plain[context, message] = found
        return found

    @pass_eval_context
    def gettext(ctx: EvalContext, message: str, /, **variables: Any) -> str:
        if not variables and ctx.autoescape:
            found = plain.get((None, message))
            return found if found is not None else ready(None, message, find(message), {})
        text = find(message)
        return (Markup(text) if ctx.autoescape else text) % variables  # nosec B704

    @pass_eval_context
    def ngettext_(
        ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: Any
    ) -> str:
        variables.setdefault("num", num)
        text = find_n(singular, plural, num)
        return (Markup(text) if ctx.autoescape else text) % variables  # nosec B704

    @pass_eval_context
    def pgettext(ctx: EvalContext, context: str, message: str, /, **variables: Any) -> str:
        if not variables and ctx.autoescape:
            found = plain.get((context, message))
            if found is not None:
                return found
            return ready(context, message, find_p(context, message), {"context": context})
        variables.setdefault("context", context)
        text = find_p(context, message)
        return (Markup(text) if ctx.autoescape else text) % variables  # nosec B704

    @pass_eval_context
    def npgettext_(
        ctx: EvalContext,
        context: str,
        singular: str,
        plural: str,
        num: int,
        /,
        **variables: Any,
    ) -> str:
        variables.setdefault("context", context)
        variables.setdefault("num", num)
        text = find_np(context, singular, plural, num)
        return (Markup(text) if ctx.autoescape else text) % variables  # nosec B704

    return MappingProxyType(
        {
            "_": gettext,
            "gettext": gettext,
            "ngettext": ngettext_,
            "pgettext": pgettext,
            "npgettext": npgettext_,
        }
    )


def _user_locale() -> str | None:
    try:
        if current_user.is_authenticated:
            locale = getattr(current_user, "locale", None)
            return str(locale) if locale else None
    except Exception:  # no login manager on this request (static files)
        return None
    return None


def pick_language() -> str:
    """The language of the current request (see the module docs)."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    stored = session.get("lang")
    if stored in LANGUAGES:
        return str(stored)
    locale = _user_locale()
    if locale:
        return normalise_lang(locale)
    best = request.accept_languages.best_match(["zh", "zh-CN", "zh-TW", "en", "en-US"])
    if best:
        return normalise_lang(best)
    default: str = current_app.config.get("FORMFLOW_DEFAULT_LANG", DEFAULT_LANGUAGE)
    return normalise_lang(default)


def select_locale() -> Locale:
    """flask-babel's locale selector: the catalog locale of :func:`pick_language`."""
    return CATALOG_LOCALES[pick_language()]


def current_lang() -> str:
    """The language of this request, ``zh`` or ``en`` (chosen once by flask-babel)."""
    locale = flask_babel.get_locale()
    if locale is None:  # no application context
        return DEFAULT_LANGUAGE
    return normalise_lang(str(locale.language))


def init_app(app: Flask, timezone: str) -> None:
    """Install flask-babel: the catalogs, the locale selector, ``_`` in templates."""
    app.config.setdefault(
        "BABEL_DEFAULT_LOCALE",
        str(CATALOG_LOCALES[normalise_lang(app.config.get("FORMFLOW_DEFAULT_LANG"))]),
    )
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", timezone)
    babel.init_app(
        app,
        default_translation_directories=str(TRANSLATIONS_DIR),
        default_domain=DOMAIN,
        locale_selector=select_locale,
    )
