"""Where the engine's data files are, in a source checkout and in an installed wheel.

The repository keeps the page templates and the blueprint JSON schema in the
top-level ``templates/`` and ``schemas/`` folders. A regular ``pip install``
ships them inside the package as ``engine/_templates`` and ``engine/_schemas``
(``pyproject.toml`` maps the folders); a source checkout or an editable install
uses the top-level folders themselves. Static files (``engine/web/static``) and the
UI's gettext catalogs (``engine/web/translations``: each language's ``messages.po``
and the compiled ``messages.mo`` beside it) live inside the package in both.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (``templates``, ``schemas`` or ``blueprints``) of this installation.

    The packaged copy (``engine/_<name>``) when there is one, else the top-level
    folder beside the ``engine`` package.
    """
    packaged = PACKAGE_DIR / f"_{name}"
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parent / name


TEMPLATES_DIR = data_dir("templates")
#: The starter blueprints (``formflow new DIR --from crm``): ``blueprints/`` in a
#: checkout, ``engine/_blueprints`` in an installed wheel.
BLUEPRINTS_DIR = data_dir("blueprints")
SCHEMAS_DIR = data_dir("schemas")
STATIC_DIR = PACKAGE_DIR / "web" / "static"
TRANSLATIONS_DIR = PACKAGE_DIR / "web" / "translations"
