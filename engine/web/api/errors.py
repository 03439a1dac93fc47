"""Every API failure is JSON: ``{"error": message, ...}`` with the right status.

* :class:`ApiError` is raised by the API's own checks (bad JSON, missing version...).
* Engine errors map by type: QueryError 400, PermissionDenied 403, NotFound 404,
  Conflict 409 (with its details: ``current_version``, ``updated_by``, ``updated_at``;
  a locked record: ``flow``, ``submitted_by``, ``submitted_at``), flow errors with
  their status and details (AlreadyDecided 409: ``by``, ``at``, ``decision``;
  NoApprovers 422: ``step``),
  RecordInvalid 422 (with ``errors``: field -> messages, in the request language).
* Werkzeug's HTTP errors (413 body too large, 405 ...) keep their status.
* Anything else is logged with its traceback and answered ``500 internal error``;
  the body never holds a traceback or an exception text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from engine.errors import (
    Conflict,
    FlowError,
    FormflowError,
    NotFound,
    PermissionDenied,
    RecordInvalid,
)
from engine.i18n import T, Text
from engine.storage.query import QueryError

JSON_TYPE = "application/json"

MSG_INTERNAL = T("服务器内部错误", "internal error")
MSG_HTTP: Mapping[int, Text] = {
    400: T("请求无效", "bad request"),
    404: T("没有这个 API 地址", "no such API endpoint"),
    405: T("不支持此方法", "method not allowed"),
    413: T(
        "请求体过大（超过 4 MB，或超过上传字段的文件大小上限）",
        "the request body is too large (over 4 MB, or over the file field's size limit)",
    ),
}


class ApiError(Exception):
    """An error the API answers directly: a status, a bilingual message, extra fields."""

    def __init__(
        self,
        status: int,
        message: Text,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message.get("en"))
        self.status = status
        self.text = message
        self.headers = dict(headers or {})
        self.extra = extra


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``payload`` as UTF-8 JSON (keys in the given order; Decimal as a string)."""
    body = json.dumps(payload, ensure_ascii=False, default=_plain, separators=(",", ":"))
    response = Response(body, status=status, mimetype=JSON_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(
    status: int,
    message: Text | str,
    lang: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    text = message.get(lang) if isinstance(message, Text) else message
    response = json_response({"error": text, **extra}, status, headers)
    response.headers["Content-Language"] = lang
    return response


def _lang() -> str:
    from engine.web.api.base import request_lang

    try:
        return request_lang()
    except Exception:  # never let choosing a language turn an error page into a 500
        return "en"


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.text, _lang(), exc.headers, **exc.extra)


def _internal(exc: BaseException) -> Response:
    current_app.logger.error(
        "API request failed: %s %s", request.method, request.path, exc_info=exc
    )
    return error_response(500, MSG_INTERNAL, _lang())


def _formflow_error(exc: FormflowError) -> Response:
    lang = _lang()
    if isinstance(exc, RecordInvalid):
        return error_response(422, exc.text, lang, errors=exc.as_dict(lang))
    if isinstance(exc, Conflict):
        return error_response(409, exc.text, lang, **exc.details)
    if isinstance(exc, FlowError) and 400 <= exc.http_status < 500:
        # already decided: by, at, decision; a refused return: choices; no approvers: step
        return error_response(exc.http_status, exc.text, lang, **exc.details)
    if isinstance(exc, QueryError):
        extra: dict[str, Any] = {k: v for k, v in (("param", exc.param), ("field", exc.field)) if v}
        return error_response(400, exc.text, lang, **extra)
    if isinstance(exc, (NotFound, PermissionDenied)) or 400 <= exc.http_status < 500:
        return error_response(exc.http_status, exc.text, lang)
    if exc.http_status == 503:
        return error_response(503, exc.text, lang)
    return _internal(exc)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _internal(exc)
    message = MSG_HTTP.get(status) or (exc.name or "error")
    headers: dict[str, str] = {}
    if status == 405:
        valid = getattr(exc, "valid_methods", None)
        if valid:
            headers["Allow"] = ", ".join(valid)
    return error_response(status, message, _lang(), headers)


def register(bp: Blueprint) -> None:
    """Install the JSON error handlers on the API blueprint."""
    handlers: list[tuple[type[Exception], Callable[[Any], Response]]] = [
        (ApiError, _api_error),
        (FormflowError, _formflow_error),
        (HTTPException, _http_error),
        (Exception, _internal),
    ]
    for exc_type, handler in handlers:
        bp.register_error_handler(exc_type, handler)
