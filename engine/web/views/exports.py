"""``GET /e/<entity>/export.csv|xlsx``: the list page's records as a file.

The query string is the list page's (filters, ``q``, ``sort``; paging is
ignored), so the export buttons on a list page just carry it along. What is
exported, and how, is :mod:`engine.exports` (see docs/exports.md).
"""

from __future__ import annotations

from flask import Blueprint, abort, request
from werkzeug.wrappers import Response

from engine.exports import FORMATS
from engine.web.auth import current_actor
from engine.web.exporting import export_response, start_export
from engine.web.i18n import current_lang
from engine.web.views.common import entity_or_404

bp = Blueprint("exports", __name__)


@bp.route("/e/<entity>/export.<fmt>")
def download(entity: str, fmt: str) -> Response:
    if fmt not in FORMATS:
        abort(404)
    ent = entity_or_404(entity)
    export = start_export(
        ent, request.args, fmt=fmt, actor=current_actor(), via="web", lang=current_lang()
    )
    return export_response(export)
