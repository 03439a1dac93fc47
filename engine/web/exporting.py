"""Exports as HTTP downloads, shared by the list pages and the JSON API.

The export itself (query, permissions, formats, audit) is :mod:`engine.exports`;
this module turns a request into an export and the export into a streamed
response: ``Content-Disposition: attachment`` with an ASCII ``filename`` and the
UTF-8 one (``filename*``, RFC 5987) so a Chinese entity label survives, and the
body iterated by the WSGI server (closing it early audits the export as aborted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Response

from engine.exports import Export, content_disposition, export_query
from engine.model import Entity
from engine.records import Actor
from engine.web.services import services


def start_export(
    entity: Entity,
    args: Mapping[str, Any],
    *,
    fmt: str,
    actor: Actor,
    via: str,
    lang: str,
) -> Export:
    """An export of ``entity`` for ``actor`` with the list query in ``args``
    (``headers=labels|names`` and ``refs=titles|ids`` among them)."""
    svc = services()
    hidden = svc.permissions.hidden_fields(actor, entity.name)
    query = export_query(entity, args, hidden=hidden)
    return svc.exports.start(
        entity.name,
        query,
        fmt=fmt,
        actor=actor,
        via=via,
        headers=str(args.get("headers") or "labels"),
        refs=str(args.get("refs") or "titles"),
        lang=lang,
    )


def export_response(export: Export) -> Response:
    """The streamed download of ``export`` (audited when the stream ends)."""
    response = Response(export, content_type=export.content_type, direct_passthrough=True)
    response.headers["Content-Disposition"] = content_disposition(
        export.file_name, export.ascii_name
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
