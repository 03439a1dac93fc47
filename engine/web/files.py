"""Files in pages and the API: body limits, uploads from forms, downloads.

* :func:`set_body_limit` runs before every other request hook (CSRF reads the
  form): a create/edit form of an entity with file fields may carry its file
  limits on top of the usual 4 MB, ``POST /api/v1/uploads`` its field's limit.
  A bigger body is a 413 before anything is stored.
* :func:`may_upload`: an upload is for a field the user may write (not hidden or
  read-only for them) of an entity they may create or update records of.
* :func:`store_form_uploads`: the files a form sent, stored through
  :class:`engine.uploads.UploadService` (the record service then checks that
  the keys are the user's own uploads for those fields).
* :func:`download`: ``GET /e/<entity>/<id>/files/<field>`` (and the API's twin):
  the file a record holds, for whoever may read the record and the field
  (404 otherwise), always as an attachment, with the type decided at upload
  (``application/octet-stream`` unless it is on the short safe list),
  ``nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import abort, request, send_file
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from engine.errors import NotFound, PermissionDenied, RecordInvalid
from engine.model import Entity
from engine.records import Actor, Record
from engine.web.forms import UPLOAD_SUFFIX
from engine.web.services import services

#: The part of a body that is not the files (the other inputs, multipart framing).
FORM_ALLOWANCE = 4 * 1024 * 1024
DOWNLOAD_CSP = "default-src 'none'; sandbox"
_FORM_ENDPOINTS = frozenset({"records.new", "records.edit"})


def set_body_limit() -> None:
    """Allow a form with file inputs, or an API upload, its files' size (see the module)."""
    if request.method != "POST":
        return
    svc = services()
    if request.endpoint in _FORM_ENDPOINTS:
        entity = str((request.view_args or {}).get("entity", ""))
        if entity not in svc.blueprint.entities:
            return
        top = [p for p in svc.uploads.file_fields(entity) if "." not in p]
        if top:
            extra = sum(svc.uploads.max_bytes(svc.uploads.file_field(entity, p)) for p in top)
            request.max_content_length = FORM_ALLOWANCE + extra
    elif request.endpoint == "api.uploads":
        entity = request.args.get("entity", "")
        path = request.args.get("field", "")
        try:
            largest = svc.uploads.max_bytes(svc.uploads.file_field(entity, path))
        except RecordInvalid:
            largest = svc.uploads.largest_bytes()  # named in the form: checked later
        request.max_content_length = FORM_ALLOWANCE + largest


def may_upload(actor: Actor, entity: Entity, path: str) -> bool:
    """May ``actor`` upload a file for ``entity``'s field ``path`` (``doc`` / ``lines.doc``)?"""
    perms = services().permissions
    access = perms.access(actor, entity.name)
    if not (access.may_create or not access.update.nothing):
        return False
    return path.split(".", 1)[0] not in perms.readonly_fields(actor, entity.name)


def file_inputs(entity: Entity) -> list[str]:
    """Names of the form's file fields (top level: child rows take keys through the API)."""
    return [n for n, f in entity.fields.items() if f.kind == "file"]


def store_form_uploads(
    entity: Entity, actor: Actor, editable: set[str], lang: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Store the files of this form request: ``({field: key}, {field: errors})``."""
    uploads = services().uploads
    keys: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name in file_inputs(entity):
        sent: FileStorage | None = request.files.get(f"{name}.{UPLOAD_SUFFIX}")
        if sent is None or not sent.filename:
            continue
        if name not in editable or not may_upload(actor, entity, name):
            continue  # the form offered no input: as with any field one may not write
        try:
            stored = uploads.store(entity.name, name, sent.filename, sent.stream, actor=actor)
        except RecordInvalid as exc:
            errors[name] = [m for msgs in exc.as_dict(lang).values() for m in msgs]
            continue
        keys[name] = stored.key
    return keys, errors


def download(entity: Entity, record: Record, field: str) -> Response:
    """The file ``record`` holds in ``field`` (404 when none, or hidden from the reader)."""
    f = entity.fields.get(field)
    key = record.values.get(field)  # hidden fields are not in a record the service returns
    if f is None or f.kind != "file" or not isinstance(key, str):
        abort(404)
    uploads = services().uploads
    upload = uploads.get(key)
    path = uploads.file_path(upload) if upload is not None else None
    if upload is None or path is None:
        abort(404)
    response = send_file(
        path,
        mimetype=upload.content_type,
        as_attachment=True,
        download_name=upload.name or key.rsplit("/", 1)[-1],
        conditional=True,
        etag=upload.sha256,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "private, no-store"
    return response


def readable_record(entity: Entity, record_id: int, actor: Actor) -> Record | None:
    """The record if ``actor`` may read it, else None."""
    try:
        return services().records.get(entity.name, record_id, actor=actor)
    except (NotFound, PermissionDenied):
        return None


def upload_urls(entity: Entity, record: Record | None) -> Mapping[str, str]:
    """Download links of the record's stored files, by field (for forms and the detail page)."""
    from flask import url_for

    if record is None:
        return {}
    return {
        name: url_for("records.file", entity=entity.name, record_id=record.id, field=name)
        for name in file_inputs(entity)
        if isinstance(record.values.get(name), str)
    }
