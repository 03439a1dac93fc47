"""The endpoints under ``/api/v1`` (see docs/api.md).

Every endpoint runs as the token's user (``via="api"``) through the record
service, which enforces the permissions: a record the caller may not read is a
404 (its existence is not confirmed), one they may read but not change a 403.

Decisions:

* ``PATCH`` is a partial update and must name the version it is based on:
  ``If-Match: "<version>"`` (the ETag of GET) or a ``version`` field in the body;
  neither is 428, both but different is 412, a stale one 409 with who changed the
  record and when. ``PUT`` is refused (405): a full replacement is not offered.
* ``POST`` with ``Idempotency-Key``: a retry with the same key (same user) answers
  201 with the record created the first time (as it is now) and creates nothing.
* ``POST /uploads`` (multipart: ``file``, plus ``entity`` and ``field`` as query
  parameters or form fields) stores a file for one file field and answers its
  key; a record then takes the key (only from the uploader, for that field).
  ``GET /<entity>/<id>/files/<field>`` downloads the file a record holds.
* ``GET /<entity>/export?format=csv|xlsx&...`` streams the list (the same
  filters, search and sort; paging ignored) as a file; see docs/exports.md.
* Each route takes every method and answers the ones it does not serve with a
  JSON 405 (and ``Allow``), because routing errors would otherwise reach the
  pages' HTML error handler.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from flask import request, url_for
from werkzeug.wrappers import Response

from engine.i18n import T
from engine.storage.query import parse_query_args
from engine.uploads import MSG_NO_FILE, UploadRefused
from engine.web.api.base import (
    VERSION_PREFIX,
    api_actor,
    api_user,
    bp,
    entity_or_404,
    request_lang,
)
from engine.web.api.encoding import history_json, json_object, page_json, record_json
from engine.web.api.errors import MSG_HTTP, ApiError, json_response
from engine.web.api.openapi import openapi_document
from engine.web.exporting import export_response, start_export
from engine.web.files import download, may_upload
from engine.web.services import services

V1 = VERSION_PREFIX.removeprefix(bp.url_prefix or "")
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: Query parameters that are the API's own, not filters (a field named so: ``lang__eq``).
API_PARAMS = ("lang",)
MAX_IDEMPOTENCY_KEY = 255
_VERSION = re.compile(r"[0-9]{1,18}")
_KEY = re.compile(r"[\x21-\x7e]+")

MSG_NO_VERSION = T(
    '更新需提供所基于的版本：请求头 If-Match: "<version>" 或请求体中的 version 字段',
    'an update must name the version it is based on: send If-Match: "<version>" '
    "(the ETag of GET) or a version field in the body",
)
MSG_BAD_IF_MATCH = T(
    'If-Match 应为一个带引号的版本号，例如 "3"',
    'If-Match must be one quoted version number, such as "3"',
)
MSG_BAD_VERSION = T("version 应为非负整数", "version must be a whole number of at least 0")
MSG_PUT = T("不支持 PUT：请用 PATCH 做部分更新", "PUT is not supported: use PATCH (partial update)")
MSG_NO_READ = T("你无权查看此实体的记录", "you may not read records of this entity")
MSG_NO_UPLOAD = T("你无权为此字段上传文件", "you may not upload files for this field")
MSG_BAD_KEY = T(
    f"Idempotency-Key 应为 1 到 {MAX_IDEMPOTENCY_KEY} 个可见 ASCII 字符",
    f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
)


def _dispatch(handlers: dict[str, Callable[[], Response]]) -> Response:
    """Call the handler of the request's method; 405 with ``Allow`` for any other."""
    allowed = [*handlers, "OPTIONS"]
    if "GET" in handlers:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    method = "GET" if request.method == "HEAD" else request.method
    if method == "OPTIONS":
        return Response(status=204, headers={"Allow": ", ".join(allowed)})
    handler = handlers.get(method)
    if handler is None:
        message = MSG_PUT if method == "PUT" and "PATCH" in handlers else MSG_HTTP[405]
        raise ApiError(405, message, headers={"Allow": ", ".join(allowed)})
    return handler()


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match() -> int | None:
    """The version named by ``If-Match`` (``"3"``, ``W/"3"`` or ``3``); None when absent."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _VERSION.fullmatch(value):
        raise ApiError(400, MSG_BAD_IF_MATCH)
    return int(value)


def _body_version(data: dict[str, object]) -> int | None:
    raw = data.get("version")
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**18:
        return raw
    if isinstance(raw, str) and _VERSION.fullmatch(raw.strip()):
        return int(raw.strip())
    raise ApiError(400, MSG_BAD_VERSION)


def _idempotency_key() -> str | None:
    """The caller's ``Idempotency-Key``, scoped to the caller (keys never cross users)."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY or not _KEY.fullmatch(key):
        raise ApiError(400, MSG_BAD_KEY)
    scoped = hashlib.sha256(f"{api_user().name}\x00{key}".encode()).hexdigest()
    return f"api:{scoped}"


def _record_url(entity: str, record_id: int) -> str:
    return url_for("api.record", entity=entity, record_id=record_id)


# -- collection -----------------------------------------------------------------------------


@bp.route(f"{V1}/<entity>", methods=METHODS)
def collection(entity: str) -> Response:
    ent = entity_or_404(entity)

    def list_records() -> Response:
        svc = services()
        actor = api_actor()
        if not svc.permissions.can_read(actor, ent.name):
            raise ApiError(403, MSG_NO_READ)
        hidden = svc.permissions.hidden_fields(actor, ent.name)
        query = parse_query_args(ent, request.args, ignore=API_PARAMS, hidden=hidden)
        page = svc.records.list_records(ent.name, query, actor=actor)
        return json_response(page_json(ent, page))

    def create() -> Response:
        data = json_object()
        key = _idempotency_key()
        record = services().records.create(
            ent.name, data, actor=api_actor(), via="api", idempotency_key=key
        )
        headers = {"Location": _record_url(ent.name, record.id), "ETag": _etag(record.version)}
        return json_response(record_json(ent, record), 201, headers)

    return _dispatch({"GET": list_records, "POST": create})


# -- one record -----------------------------------------------------------------------------


@bp.route(f"{V1}/<entity>/<int:record_id>", methods=METHODS)
def record(entity: str, record_id: int) -> Response:
    ent = entity_or_404(entity)

    def get() -> Response:
        found = services().records.get(ent.name, record_id, actor=api_actor())
        return json_response(record_json(ent, found), headers={"ETag": _etag(found.version)})

    def update() -> Response:
        data = json_object()
        header, body = _if_match(), _body_version(data)
        if header is None and body is None:
            raise ApiError(428, MSG_NO_VERSION)
        if header is not None and body is not None and header != body:
            raise ApiError(
                412,
                T(
                    f"If-Match 指定版本 {header}，请求体 version 为 {body}，两者不一致",
                    f"If-Match names version {header} but the body's version is {body}",
                ),
            )
        version = header if header is not None else body
        updated = services().records.update(
            ent.name, record_id, data, version=version, actor=api_actor(), via="api"
        )
        return json_response(record_json(ent, updated), headers={"ETag": _etag(updated.version)})

    def delete() -> Response:
        services().records.delete(
            ent.name, record_id, version=_if_match(), actor=api_actor(), via="api"
        )
        return Response(status=204)

    return _dispatch({"GET": get, "PATCH": update, "DELETE": delete})


@bp.route(f"{V1}/<entity>/<int:record_id>/history", methods=METHODS)
def history(entity: str, record_id: int) -> Response:
    ent = entity_or_404(entity)

    def get() -> Response:
        svc = services()
        actor = api_actor()
        entries = svc.records.history(ent.name, record_id, actor=actor)
        return json_response(history_json(entries, svc.permissions.hidden_fields(actor, ent.name)))

    return _dispatch({"GET": get})


# -- exports --------------------------------------------------------------------------------


@bp.route(f"{V1}/<entity>/export", methods=METHODS)
def export(entity: str) -> Response:
    """The list (filters, ``q``, ``sort``; paging ignored) as a CSV or XLSX download."""
    ent = entity_or_404(entity)

    def get() -> Response:
        svc = services()
        actor = api_actor()
        if not svc.permissions.can_read(actor, ent.name):
            raise ApiError(403, MSG_NO_READ)
        fmt = request.args.get("format") or "csv"
        started = start_export(
            ent, request.args, fmt=fmt, actor=actor, via="api", lang=request_lang()
        )
        return export_response(started)

    return _dispatch({"GET": get})


# -- files ----------------------------------------------------------------------------------


@bp.route(f"{V1}/uploads", methods=METHODS)
def uploads() -> Response:
    """``POST`` multipart ``file`` for ``entity`` / ``field`` -> 201 ``{key, name, size, ...}``."""

    def post() -> Response:
        svc = services()
        actor = api_actor()
        ent = entity_or_404(request.values.get("entity", ""))
        path = request.values.get("field", "")
        svc.uploads.file_field(ent.name, path)  # 422 for a name that is no file field
        if not svc.permissions.can_read(actor, ent.name) or not may_upload(actor, ent, path):
            raise ApiError(403, MSG_NO_UPLOAD)
        sent = request.files.get("file")
        if sent is None or not sent.filename:
            raise UploadRefused({"file": [MSG_NO_FILE]})
        stored = svc.uploads.store(ent.name, path, sent.filename, sent.stream, actor=actor)
        return json_response(
            {
                "key": stored.key,
                "name": stored.name,
                "size": stored.size,
                "content_type": stored.content_type,
                "entity": stored.entity,
                "field": stored.field,
            },
            201,
        )

    return _dispatch({"POST": post})


@bp.route(f"{V1}/<entity>/<int:record_id>/files/<field>", methods=METHODS)
def record_file(entity: str, record_id: int, field: str) -> Response:
    """The file a record holds in ``field`` (404 unless the caller may read both)."""
    ent = entity_or_404(entity)

    def get() -> Response:
        found = services().records.get(ent.name, record_id, actor=api_actor())
        return download(ent, found, field)

    return _dispatch({"GET": get})


# -- the document and everything else -------------------------------------------------------


@bp.route(f"{V1}/openapi.json", methods=METHODS)
def openapi() -> Response:
    return _dispatch({"GET": lambda: json_response(openapi_document())})


@bp.route("/", defaults={"rest": ""}, methods=METHODS)
@bp.route("/<path:rest>", methods=METHODS)
def not_found(rest: str) -> Response:
    raise ApiError(404, MSG_HTTP[404])
