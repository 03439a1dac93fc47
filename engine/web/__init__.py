"""The web face: Flask pages generated from any blueprint.

Public API: :func:`create_app`. Modules, one idea each: ``app`` (factory,
security headers, error pages), ``auth`` (sign-in), ``i18n`` (UI words and the
request's language), ``formatting`` (values as text), ``forms`` (form data in
and out), ``widgets`` (field views), ``conditions`` (visible/required/readonly
formulas), ``editing`` (building a form), ``access`` (what a page offers),
``views/`` (home, lists, records, htmx parts).
"""

from engine.web.app import create_app

__all__ = ["create_app"]
