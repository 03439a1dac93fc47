"""The OpenAPI 3.1 document of the API, generated from the blueprint for the caller.

One schema per entity (``<entity>``: what GET returns) and one for writes
(``<entity>_input``), the endpoints of every entity the caller may read, the
list filters of every field, and the error responses. Fields hidden from the
caller are left out, so the document confirms no more than the API would.

Type mapping (by field kind; a formula by its result kind):

=========================  ===================================================
text, long_text, phone,    ``string`` (``format: email`` / ``uri`` for email
email, url, user, file,    and url; ``maxLength`` / ``minLength`` when set;
                           a file is its key, from ``POST /uploads``)
autonumber
integer                    ``integer``
decimal, money, percent    ``string`` with ``format: decimal`` in responses
                           (exact: JSON numbers are binary floats); a write
                           accepts a string or a number
boolean                    ``boolean``
date / datetime            ``string`` with ``format: date`` / ``date-time``
choice                     ``string`` with ``enum``
multi_choice               ``array`` of the options (``uniqueItems``)
ref                        ``integer``: the id of the referenced record
table                      ``array`` of row objects (each with its ``id``)
=========================  ===================================================

Every value may be ``null`` (blank). ``readOnly`` marks the system columns,
computed and autonumber fields, a flow's status field and fields read-only for
the caller.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from engine.exports import CONTENT_TYPES, EXPORT_PARAMS, FORMATS, HEADER_MODES, REF_MODES
from engine.fields import kind_of
from engine.fields.file import MAX_KEY_LENGTH
from engine.i18n import T, Text
from engine.model import Blueprint, Entity, Field
from engine.permissions import Permissions
from engine.records import Actor
from engine.storage.query import MAX_LIMIT, OPS_BY_STORAGE, RESERVED_PARAMS, SYSTEM_FIELDS
from engine.web.api import dashboard_schema
from engine.web.api.base import VERSION_PREFIX, api_actor, request_lang
from engine.web.api.openapi_incentives import incentive_paths
from engine.web.dashboards import may_see
from engine.web.services import services

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
JSON = "application/json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")

_STRING_FORMATS = {"email": "email", "url": "uri"}
_OP_HELP: dict[str, Text] = {
    "eq": T("等于", "equals"),
    "ne": T("不等于（保留空值）", "not equal (blank rows kept)"),
    "lt": T("小于", "less than"),
    "lte": T("小于等于", "at most"),
    "gt": T("大于", "greater than"),
    "gte": T("大于等于", "at least"),
    "in": T("属于列表（逗号分隔，可重复参数）", "one of (comma-separated; repeat to add)"),
    "contains": T(
        "包含（文本：不区分大小写；多选：包含全部所列选项）",
        "contains (text: case-insensitive; multi-choice: holds every listed option)",
    ),
    "blank": T("为空（1）或不为空（0）", "is blank (1) or not (0)"),
    "not_blank": T("不为空", "is not blank"),
    "between": T("介于（low,high，任一端可空）", "between (low,high; either end may be empty)"),
}


def component_name(name: str) -> str:
    """A component key for an entity (OpenAPI allows only ``[A-Za-z0-9._-]``)."""
    if _COMPONENT.fullmatch(name):
        return name
    return "entity_" + hashlib.sha256(name.encode()).hexdigest()[:12]


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _describe(f: Field, lang: str) -> str:
    parts = [f.label.get(lang) or f.name]
    if f.help:
        parts.append(f.help.get(lang))
    return " — ".join(p for p in parts if p)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _value_schema(f: Field, lang: str, *, writing: bool) -> dict[str, Any]:
    """The JSON schema of one (non-table) field's value, ``null`` not yet allowed."""
    kind = kind_of(f)
    result = kind.result_kind(f) if hasattr(kind, "result_kind") else kind
    name = result.name
    storage = result.storage
    if name == "choice":
        return {"type": "string", "enum": [o.value for o in f.options]}
    if name == "multi_choice":
        return {
            "type": "array",
            "items": {"type": "string", "enum": [o.value for o in f.options]},
            "uniqueItems": True,
        }
    if name == "ref":
        return {"type": "integer", "minimum": 1, "description": f"id → {f.to}"}
    if storage == "integer":
        schema: dict[str, Any] = {"type": "integer"}
        if isinstance(f.min, int) and not isinstance(f.min, bool):
            schema["minimum"] = f.min
        if isinstance(f.max, int) and not isinstance(f.max, bool):
            schema["maximum"] = f.max
        return schema
    if storage == "decimal":
        if writing:
            return {"type": ["string", "number"], "pattern": DECIMAL_PATTERN}
        return {"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN}
    if storage == "boolean":
        return {"type": "boolean"}
    if storage == "date":
        return {"type": "string", "format": "date"}
    if storage == "datetime":
        return {"type": "string", "format": "date-time"}
    if storage == "json":
        return {}
    schema = {"type": "string"}
    if name == "file":
        schema["maxLength"] = MAX_KEY_LENGTH
        schema["description"] = (
            "file key: POST /api/v1/uploads answers it; only the uploader may put a new key "
            "into a record"
            if writing
            else "file key; GET /api/v1/<entity>/<id>/files/<field> downloads the file"
        )
        return schema
    if name in _STRING_FORMATS:
        schema["format"] = _STRING_FORMATS[name]
    if f.max_length is not None:
        schema["maxLength"] = f.max_length
    if f.min_length is not None:
        schema["minLength"] = f.min_length
    return schema


def _row_schema(table: Field, lang: str, *, writing: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {
            "type": "integer",
            "description": "row id (send it back to keep the row)" if writing else "row id",
        }
    }
    required = []
    for name, child in table.fields.items():
        computed = not kind_of(child).editable(child)
        if writing and computed:
            continue
        schema = _nullable(_value_schema(child, lang, writing=writing))
        schema["description"] = _describe(child, lang)
        if computed:
            schema["readOnly"] = True
        props[name] = schema
        if writing and child.required and child.default is None and child.default_formula is None:
            required.append(name)
    row: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        row["required"] = required
    return row


def _field_schema(f: Field, lang: str, *, writing: bool, read_only: bool) -> dict[str, Any]:
    if f.kind == "table":
        schema: dict[str, Any] = {
            "type": "array",
            "items": _row_schema(f, lang, writing=writing),
        }
        if f.max_rows is not None:
            schema["maxItems"] = f.max_rows
        if f.min_rows:
            schema["minItems"] = f.min_rows
    else:
        schema = _nullable(_value_schema(f, lang, writing=writing))
    described = _describe(f, lang)
    if "description" in schema:
        described = f"{described} ({schema['description']})"
    schema["description"] = described
    schema["x-formflow-kind"] = f.kind
    if read_only:
        schema["readOnly"] = True
    return schema


class _Builder:
    def __init__(
        self, blueprint: Blueprint, permissions: Permissions, actor: Actor, lang: str
    ) -> None:
        self.blueprint = blueprint
        self.permissions = permissions
        self.actor = actor
        self.lang = lang
        self.status_fields: dict[str, set[str]] = {}
        for flow in blueprint.flows.values():
            self.status_fields.setdefault(flow.entity, set()).add(flow.status_field)

    # -- schemas ---------------------------------------------------------------------

    def _visible(self, entity: Entity) -> list[Field]:
        hidden = self.permissions.hidden_fields(self.actor, entity.name)
        return [f for n, f in entity.fields.items() if n not in hidden]

    def _locked(self, entity: Entity, f: Field) -> bool:
        if not kind_of(f).editable(f) or f.name in self.status_fields.get(entity.name, ()):
            return True
        return f.name in self.permissions.readonly_fields(self.actor, entity.name)

    def record_schema(self, entity: Entity) -> dict[str, Any]:
        props: dict[str, Any] = {
            "id": {"type": "integer", "readOnly": True},
            "version": {"type": "integer", "readOnly": True, "description": "ETag of the record"},
            "owner": {"type": ["string", "null"], "description": "owner (user name)"},
            "created_at": {"type": "string", "format": "date-time", "readOnly": True},
            "created_by": {"type": ["string", "null"], "readOnly": True},
            "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
            "updated_by": {"type": ["string", "null"], "readOnly": True},
        }
        for f in self._visible(entity):
            props[f.name] = _field_schema(
                f, self.lang, writing=False, read_only=self._locked(entity, f)
            )
        return {
            "type": "object",
            "title": entity.label.get(self.lang) or entity.name,
            "description": entity.description.get(self.lang)
            or "child tables are included by GET one record, not by lists",
            "properties": props,
            "required": ["id", "version", "owner", "created_at", "updated_at"],
        }

    def input_schema(self, entity: Entity) -> dict[str, Any]:
        props: dict[str, Any] = {
            "owner": {
                "type": ["string", "null"],
                "description": "only for callers the owner rules allow (admins, managers "
                "within their team); refused otherwise",
            },
            "version": {
                "type": "integer",
                "minimum": 0,
                "description": "updates: the version the change is based on (or If-Match)",
            },
        }
        for f in self._visible(entity):
            if self._locked(entity, f):
                continue
            props[f.name] = _field_schema(f, self.lang, writing=True, read_only=False)
        return {
            "type": "object",
            "title": f"{entity.label.get(self.lang) or entity.name} (input)",
            "description": "unknown keys are refused (422); id, created_at, created_by, "
            "updated_at, updated_by and computed fields are ignored",
            "properties": props,
        }

    def required_on_create(self, entity: Entity) -> list[str]:
        return [
            f.name
            for f in self._visible(entity)
            if f.required
            and f.required_if is None
            and f.default is None
            and f.default_formula is None
            and not self._locked(entity, f)
        ]

    # -- parameters ------------------------------------------------------------------

    def _filter(self, name: str, op: str, label: str) -> dict[str, Any]:
        return {
            "name": name if op == "eq" else f"{name}__{op}",
            "in": "query",
            "required": False,
            "description": f"{label}: {_OP_HELP[op].get(self.lang)}",
            "schema": {"type": "string"},
        }

    def filters(self, entity: Entity, reserved: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        taken = set(RESERVED_PARAMS) | {"lang", *reserved}
        out: list[dict[str, Any]] = []
        columns: list[tuple[str, str, str]] = [(n, s, n) for n, s in SYSTEM_FIELDS.items()]
        for f in self._visible(entity):
            kind = kind_of(f)
            storage = kind.storage_of(f)
            if f.kind == "table" or not kind.filterable or f.name in SYSTEM_FIELDS:
                continue
            columns.append((f.name, storage, f.label.get(self.lang) or f.name))
        for name, storage, label in columns:
            for op in sorted(OPS_BY_STORAGE.get(storage, ())):
                if op == "eq":
                    if name not in taken:
                        out.append(self._filter(name, "eq", label))
                    out.append({**self._filter(name, "eq", label), "name": f"{name}__eq"})
                else:
                    out.append(self._filter(name, op, label))
        return out

    # -- operations ------------------------------------------------------------------

    def _errors(self, *codes: int) -> dict[str, Any]:
        names = {
            400: "BadRequest",
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            409: "Conflict",
            412: "PreconditionFailed",
            413: "PayloadTooLarge",
            422: "Invalid",
            428: "PreconditionRequired",
        }
        return {str(c): _ref(names[c], "responses") for c in codes}

    def paths(self, entity: Entity) -> dict[str, Any]:
        comp = component_name(entity.name)
        label = entity.label.get(self.lang) or entity.name
        base = f"{VERSION_PREFIX}/{entity.name}"
        record = {JSON: {"schema": _ref(comp)}}
        etag = {"ETag": _ref("ETag", "headers")}
        id_param = _ref("RecordId", "parameters")
        create_body = {
            "allOf": [_ref(f"{comp}_input")],
            "required": self.required_on_create(entity),
        }
        if not create_body["required"]:
            del create_body["required"]
        return {
            base: {
                "get": {
                    "operationId": f"list_{comp}",
                    "summary": f"{label}: list",
                    "tags": [entity.name],
                    "parameters": [
                        _ref(p, "parameters")
                        for p in ("q", "sort", "limit", "offset", "after", "lang")
                    ]
                    + self.filters(entity),
                    "responses": {
                        "200": {
                            "description": "one page",
                            "content": {JSON: {"schema": self._page_schema(comp)}},
                        },
                        **self._errors(400, 401, 403, 404),
                    },
                },
                "post": {
                    "operationId": f"create_{comp}",
                    "summary": f"{label}: create",
                    "tags": [entity.name],
                    "parameters": [
                        _ref("IdempotencyKey", "parameters"),
                        _ref("lang", "parameters"),
                    ],
                    "requestBody": {"required": True, "content": {JSON: {"schema": create_body}}},
                    "responses": {
                        "201": {
                            "description": "created (or, with a reused Idempotency-Key, the "
                            "record the first request created)",
                            "headers": {"Location": _ref("Location", "headers"), **etag},
                            "content": record,
                        },
                        **self._errors(400, 401, 403, 404, 409, 413, 422),
                    },
                },
            },
            f"{base}/{{id}}": {
                "parameters": [id_param, _ref("lang", "parameters")],
                "get": {
                    "operationId": f"get_{comp}",
                    "summary": f"{label}: one record with its child tables",
                    "tags": [entity.name],
                    "responses": {
                        "200": {"description": "the record", "headers": etag, "content": record},
                        **self._errors(401, 404),
                    },
                },
                "patch": {
                    "operationId": f"update_{comp}",
                    "summary": f"{label}: partial update (needs the version)",
                    "tags": [entity.name],
                    "parameters": [_ref("IfMatch", "parameters")],
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": _ref(f"{comp}_input")}},
                    },
                    "responses": {
                        "200": {"description": "the record", "headers": etag, "content": record},
                        **self._errors(400, 401, 403, 404, 409, 412, 413, 422, 428),
                    },
                },
                "delete": {
                    "operationId": f"delete_{comp}",
                    "summary": f"{label}: delete",
                    "tags": [entity.name],
                    "parameters": [_ref("IfMatchOptional", "parameters")],
                    "responses": {
                        "204": {"description": "deleted"},
                        **self._errors(400, 401, 403, 404, 409, 422),
                    },
                },
            },
            **self.file_paths(entity),
            f"{base}/export": self.export_path(entity),
            f"{base}/{{id}}/history": {
                "parameters": [id_param, _ref("lang", "parameters")],
                "get": {
                    "operationId": f"history_{comp}",
                    "summary": f"{label}: history",
                    "tags": [entity.name],
                    "responses": {
                        "200": {
                            "description": "the audit trail, oldest first",
                            "content": {JSON: {"schema": _ref("History")}},
                        },
                        **self._errors(401, 404),
                    },
                },
            },
        }

    def export_path(self, entity: Entity) -> dict[str, Any]:
        """``GET /<entity>/export``: the list as a CSV or XLSX download."""
        comp = component_name(entity.name)
        label = entity.label.get(self.lang) or entity.name
        options = [
            ("format", list(FORMATS), "csv", "file format"),
            ("headers", list(HEADER_MODES), "labels", "header row: '中文 / English' or names"),
            ("refs", list(REF_MODES), "titles", "references as the target's title or id"),
        ]
        file_schema = {"type": "string", "contentMediaType": CONTENT_TYPES["xlsx"]}
        return {
            "get": {
                "operationId": f"export_{comp}",
                "summary": f"{label}: export the list (CSV or XLSX)",
                "description": "the same filters, search and sort as the list (paging is "
                "ignored); only records and fields the caller may read; text cells that a "
                "spreadsheet could run as a formula start with ' (see docs/exports.md). "
                "Audited in ff_exports when the download ends.",
                "tags": [entity.name],
                "parameters": [
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": help_text,
                        "schema": {"type": "string", "enum": values, "default": default},
                    }
                    for name, values, default, help_text in options
                ]
                + [_ref(p, "parameters") for p in ("q", "sort", "lang")]
                + self.filters(entity, reserved=EXPORT_PARAMS),
                "responses": {
                    "200": {
                        "description": "the file (an attachment; the CSV is UTF-8 with a BOM)",
                        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                        "content": {
                            "text/csv": {
                                "schema": {"type": "string", "contentMediaType": "text/csv"}
                            },
                            CONTENT_TYPES["xlsx"]: {"schema": file_schema},
                        },
                    },
                    **self._errors(400, 401, 403, 404),
                    "422": {
                        "description": "the export cannot be made as asked (an XLSX sheet "
                        "holds at most 1,048,575 rows: narrow the filters or export CSV)",
                        "content": _error_content(),
                    },
                },
            }
        }

    def file_paths(self, entity: Entity) -> dict[str, Any]:
        """``GET /<entity>/{id}/files/{field}`` when the caller sees a file field."""
        names = [f.name for f in self._visible(entity) if f.kind == "file"]
        if not names:
            return {}
        comp = component_name(entity.name)
        label = entity.label.get(self.lang) or entity.name
        return {
            f"{VERSION_PREFIX}/{entity.name}/{{id}}/files/{{field}}": {
                "parameters": [
                    _ref("RecordId", "parameters"),
                    {
                        "name": "field",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": names},
                    },
                    _ref("lang", "parameters"),
                ],
                "get": {
                    "operationId": f"file_{comp}",
                    "summary": f"{label}: download a file the record holds",
                    "description": "always an attachment; the type is the one decided at "
                    "upload (application/octet-stream unless on a short safe list), nosniff",
                    "tags": [entity.name],
                    "responses": {
                        "200": {
                            "description": "the file",
                            "headers": {
                                "Content-Disposition": {"schema": {"type": "string"}},
                            },
                            "content": {
                                "application/octet-stream": {
                                    "schema": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    }
                                }
                            },
                        },
                        **self._errors(401, 404),
                    },
                },
            }
        }

    def uploads_path(self) -> dict[str, Any]:
        """``POST /uploads``: store a file for one file field, get its key."""
        return {
            "post": {
                "operationId": "upload",
                "summary": "upload a file for a file field; put the key into a record",
                "description": "the field's max_size_mb and accept are enforced; the client's "
                "MIME type is ignored. entity and field may also be query parameters.",
                "tags": ["uploads"],
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("entity", "field")
                ]
                + [_ref("lang", "parameters")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    },
                                    "entity": {"type": "string"},
                                    "field": {
                                        "type": "string",
                                        "description": "a file field, or table.column",
                                    },
                                },
                                "required": ["file"],
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "stored",
                        "content": {JSON: {"schema": _ref("Upload")}},
                    },
                    **self._errors(400, 401, 403, 404, 413, 422),
                },
            }
        }

    def flow_paths(self, entity: Entity) -> dict[str, Any]:
        """``/{entity}/{id}/flow`` (state), ``.../flow/submit`` and ``.../flow/recall``."""
        comp = component_name(entity.name)
        label = entity.label.get(self.lang) or entity.name
        base = f"{VERSION_PREFIX}/{entity.name}/{{id}}/flow"
        params = [_ref("RecordId", "parameters"), _ref("lang", "parameters")]
        state = {
            "description": "the flow state as the caller sees it now",
            "content": {JSON: {"schema": _ref("FlowState")}},
        }
        flows = [f.name for f in self.blueprint.flows.values() if f.entity == entity.name]

        def action(verb: str, body: str, summary: str, codes: tuple[int, ...]) -> dict[str, Any]:
            return {
                "operationId": f"flow_{verb}_{comp}",
                "summary": f"{label}: {summary}",
                "tags": ["flows"],
                "requestBody": {"required": False, "content": {JSON: {"schema": _ref(body)}}},
                "responses": {"200": state, **self._flow_errors(*codes)},
            }

        return {
            base: {
                "parameters": params,
                "get": {
                    "operationId": f"flow_state_{comp}",
                    "summary": f"{label}: where the record stands in its flow ({', '.join(flows)})",
                    "tags": ["flows"],
                    "parameters": [_ref("FlowName", "parameters")],
                    "responses": {"200": state, **self._flow_errors(401, 404, 409)},
                },
            },
            f"{base}/submit": {
                "parameters": params,
                "post": action(
                    "submit",
                    "FlowSubmit",
                    "submit (again after a rejection, return or recall)",
                    (400, 401, 403, 404, 409, 422),
                ),
            },
            f"{base}/recall": {
                "parameters": params,
                "post": action(
                    "recall",
                    "FlowRecall",
                    "recall a pending submission (the submitter, before any decision)",
                    (400, 401, 403, 404, 409),
                ),
            },
        }

    def task_paths(self) -> dict[str, Any]:
        """``/tasks`` (the caller's inbox) and the actions on one task."""
        base = f"{VERSION_PREFIX}/tasks"
        state = {
            "description": "the flow state of the task's record, as the caller sees it now",
            "content": {JSON: {"schema": _ref("FlowState")}},
        }
        actions = {
            "approve": ("TaskApprove", "approve (values: the step's editable fields)"),
            "reject": ("TaskReject", "reject (the flow says where the run goes)"),
            "return": ("TaskReturn", "send back to the submitter or an earlier step (回退)"),
            "transfer": ("TaskUser", "hand the task to another user (转交)"),
            "add-approver": ("TaskUser", "ask another user at this step too (加签)"),
        }
        paths: dict[str, Any] = {
            base: {
                "get": {
                    "operationId": "list_tasks",
                    "summary": "my open tasks, oldest first (待我审批 / waiting for me)",
                    "tags": ["flows"],
                    "parameters": [
                        _ref("TaskLimit", "parameters"),
                        _ref("offset", "parameters"),
                        _ref("lang", "parameters"),
                    ],
                    "responses": {
                        "200": {
                            "description": "one page of open tasks",
                            "content": {JSON: {"schema": _ref("TaskPage")}},
                        },
                        **self._errors(400, 401),
                    },
                }
            }
        }
        for verb, (body, summary) in actions.items():
            paths[f"{base}/{{task_id}}/{verb}"] = {
                "parameters": [_ref("TaskId", "parameters"), _ref("lang", "parameters")],
                "post": {
                    "operationId": f"task_{verb.replace('-', '_')}",
                    "summary": summary,
                    "tags": ["flows"],
                    "requestBody": {
                        "required": verb not in ("approve", "reject"),
                        "content": {JSON: {"schema": _ref(body)}},
                    },
                    "responses": {"200": state, **self._flow_errors(400, 401, 403, 404, 409, 422)},
                },
            }
        return paths

    def _flow_errors(self, *codes: int) -> dict[str, Any]:
        out = self._errors(*(c for c in codes if c not in (409, 422)))
        if 409 in codes:
            out["409"] = _ref("FlowConflict", "responses")
        if 422 in codes:
            out["422"] = _ref("FlowInvalid", "responses")
        return out

    def import_path(self, entity: Entity) -> dict[str, Any]:
        """``POST /<entity>/import``: a CSV or XLSX file, for callers who may create."""
        comp = component_name(entity.name)
        label = entity.label.get(self.lang) or entity.name
        keys = [n for n, f in entity.fields.items() if f.unique or f.kind == "autonumber"]
        update_on: dict[str, Any] = {"type": "string", "description": "a unique field"}
        if keys:
            update_on["enum"] = keys
        job = {JSON: {"schema": _ref("ImportJob")}}
        return {
            "post": {
                "operationId": f"import_{comp}",
                "summary": f"{label}: import a CSV or XLSX file (docs/imports.md)",
                "description": "all or nothing unless mode=partial; a small file is imported "
                "during the request (200), a large one in the background (202, poll Location)",
                "tags": [entity.name],
                "parameters": [_ref("lang", "parameters")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                        "description": ".xlsx or .csv (UTF-8 or GB18030)",
                                    },
                                    "mode": {"type": "string", "enum": ["all", "partial"]},
                                    "update_on": update_on,
                                    "dry_run": {"type": "string", "enum": ["true", "false"]},
                                    "mapping": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                        "description": "YAML or JSON: column header -> field",
                                    },
                                },
                                "required": ["file"],
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "imported (the finished job)", "content": job},
                    "202": {
                        "description": "importing in the background",
                        "headers": {"Location": _ref("Location", "headers")},
                        "content": job,
                    },
                    **self._errors(400, 401, 403, 404, 413),
                    "422": _ref("ImportRefused", "responses"),
                },
            }
        }

    def import_job_paths(self) -> dict[str, Any]:
        """``GET /imports/{id}`` and its report."""
        param = {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
        return {
            f"{VERSION_PREFIX}/imports/{{id}}": {
                "parameters": [param, _ref("lang", "parameters")],
                "get": {
                    "operationId": "import_job",
                    "summary": "an import job: state, counts, progress, first errors",
                    "tags": ["imports"],
                    "responses": {
                        "200": {
                            "description": "the job",
                            "content": {JSON: {"schema": _ref("ImportJob")}},
                        },
                        **self._errors(401, 404),
                    },
                },
            },
            f"{VERSION_PREFIX}/imports/{{id}}/report": {
                "parameters": [param, _ref("lang", "parameters")],
                "get": {
                    "operationId": "import_report",
                    "summary": "the annotated report (the bad rows, their errors) as XLSX",
                    "tags": ["imports"],
                    "responses": {
                        "200": {
                            "description": "the report",
                            "content": {
                                XLSX: {"schema": {"type": "string", "contentMediaType": XLSX}}
                            },
                        },
                        **self._errors(401, 404),
                    },
                },
            },
        }

    def kpi_paths(self) -> dict[str, Any]:
        """``GET /kpis`` and ``GET /kpis/{name}`` (docs/kpis.md)."""
        names = [
            k.name
            for k in self.blueprint.kpis.values()
            if self.permissions.can_read(self.actor, k.entity)
        ]
        query = [
            ("by", "dimensions, comma-separated (owner, team, day ... year, a field)", "string"),
            (
                "period",
                "this_month, last_month, this_quarter, last_quarter, this_year, "
                "last_year, all, custom",
                "string",
            ),
            ("from", "first day of a custom period (YYYY-MM-DD)", "string"),
            ("to", "last day of a custom period (YYYY-MM-DD)", "string"),
            ("compare", "1: also the previous period and the change", "string"),
            ("team", "only records owned by this manager's team", "string"),
            ("owner", "only records this user owns", "string"),
        ]
        params = [
            {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": t}}
            for n, d, t in query
        ]
        name_schema: dict[str, Any] = {"type": "string"}
        if names:
            name_schema["enum"] = names
        return {
            f"{VERSION_PREFIX}/kpis": {
                "get": {
                    "operationId": "kpis",
                    "summary": "the KPIs the caller may see",
                    "tags": ["kpis"],
                    "parameters": [_ref("lang", "parameters")],
                    "responses": {
                        "200": {
                            "description": "the KPIs",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": {"type": "array", "items": _ref("Kpi")}
                                        },
                                        "required": ["data"],
                                    }
                                }
                            },
                        },
                        **self._errors(401),
                    },
                }
            },
            f"{VERSION_PREFIX}/kpis/{{name}}": {
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": name_schema},
                    _ref("lang", "parameters"),
                ],
                "get": {
                    "operationId": "kpi",
                    "summary": "a KPI over the records the caller may read, grouped, with targets",
                    "tags": ["kpis"],
                    "parameters": params,
                    "responses": {
                        "200": {
                            "description": "the KPI's rows and total",
                            "content": {JSON: {"schema": _ref("KpiResult")}},
                        },
                        **self._errors(400, 401, 403, 404),
                    },
                },
            },
        }

    @staticmethod
    def _page_schema(comp: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": _ref(comp)},
                "next_cursor": {"type": ["string", "null"]},
                "has_more": {"type": "boolean"},
                "count": {"type": ["integer", "null"]},
                "count_capped": {"type": "boolean"},
                "count_is_estimate": {"type": "boolean"},
            },
            "required": ["data", "next_cursor", "has_more", "count", "count_capped"],
        }

    # -- the document ----------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        entities = [
            e
            for e in self.blueprint.entities.values()
            if self.permissions.can_read(self.actor, e.name)
        ]
        schemas: dict[str, Any] = dict(_COMMON_SCHEMAS)
        paths: dict[str, Any] = {}
        flow_entities = {f.entity for f in self.blueprint.flows.values()}
        for entity in entities:
            comp = component_name(entity.name)
            schemas[comp] = self.record_schema(entity)
            schemas[f"{comp}_input"] = self.input_schema(entity)
            paths.update(self.paths(entity))
            if self.permissions.can_create(self.actor, entity.name):
                paths[f"{VERSION_PREFIX}/{entity.name}/import"] = self.import_path(entity)
            if entity.name in flow_entities:
                paths.update(self.flow_paths(entity))
        tags = [{"name": e.name, "description": e.label.get(self.lang) or e.name} for e in entities]
        if self.blueprint.flows:
            schemas.update(_FLOW_SCHEMAS)
            paths.update(self.task_paths())
            tags.append({"name": "flows", "description": "approval flows and tasks / 审批"})
        paths[f"{VERSION_PREFIX}/uploads"] = self.uploads_path()
        tags.append({"name": "uploads", "description": "files for file fields"})
        paths.update(self.import_job_paths())
        tags.append({"name": "imports", "description": "import jobs (docs/imports.md)"})
        if any(may_see(self.actor, b) for b in self.blueprint.dashboards.values()):
            schemas.update(dashboard_schema.SCHEMAS)
            paths.update(dashboard_schema.paths(self._errors))
            tags.append({"name": "dashboards", "description": "dashboards and their KPIs"})
        incentives = incentive_paths(self.blueprint, VERSION_PREFIX, self._errors)
        paths.update(incentives)
        if self.blueprint.forecasts:
            tags.append({"name": "forecast", "description": "sales forecast (docs/forecasts.md)"})
        if self.blueprint.commissions:
            tags.append({"name": "commissions", "description": "commissions (docs/commissions.md)"})
        paths.update(self.kpi_paths())
        schemas.update(_KPI_SCHEMAS)
        tags.append({"name": "kpis", "description": "KPIs and targets (docs/kpis.md) / 指标"})
        paths[f"{VERSION_PREFIX}/openapi.json"] = {
            "get": {
                "operationId": "openapi",
                "summary": "this document (fields hidden from the caller left out)",
                "parameters": [_ref("lang", "parameters")],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **self._errors(401),
                },
            }
        }
        title = self.blueprint.title.get(self.lang) or self.blueprint.id
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": f"{title} API",
                "version": API_VERSION,
                "description": "Formflow JSON API; see docs/api.md. Blueprint "
                f"{self.blueprint.id} ({self.blueprint.digest[:12] or 'no digest'}).",
            },
            "servers": [{"url": "/"}],
            "security": [{"bearer": []}],
            "tags": tags,
            "paths": paths,
            "components": {
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "ff_ API token (formflow token create)",
                    }
                },
                "schemas": schemas,
                "parameters": _PARAMETERS,
                "headers": _HEADERS,
                "responses": _RESPONSES,
            },
        }


_NUMBER = {
    "type": ["string", "integer", "null"],
    "description": "a decimal as a string, an integer as a number, null when blank",
}
_PERIOD = {
    "type": ["object", "null"],
    "properties": {
        "name": {"type": "string"},
        "start": {"type": ["string", "null"], "format": "date"},
        "end": {"type": ["string", "null"], "format": "date", "description": "last day included"},
    },
    "required": ["name", "start", "end"],
}
_BETTER = {
    "type": "string",
    "enum": ["higher", "lower"],
    "description": "which way the KPI improves",
}
_KPI_ROW = {
    "type": "object",
    "properties": {
        "keys": {"type": "object", "description": "dimension -> raw value (a bucket's first day)"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "value": _NUMBER,
        "target": _NUMBER,
        "attainment": {
            **_NUMBER,
            "description": "percent: 100 * value / target "
            "(lower is better: 100 * (2 - value / target))",
        },
        "gap": {**_NUMBER, "description": "target - value (lower is better: value - target)"},
        "previous": _NUMBER,
        "change": {**_NUMBER, "description": "percent change vs the previous period"},
        "drill": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "list-page filters that show this row's records",
        },
    },
    "required": ["keys", "labels", "value", "target", "attainment", "gap", "drill"],
}
_KPI_SCHEMAS: dict[str, Any] = {
    "Kpi": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "label": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "entity": {"type": "string"},
            "format": {"type": "string", "enum": ["number", "money", "percent"]},
            "better": _BETTER,
            "date": {"type": ["string", "null"]},
            "by": {"type": "array", "items": {"type": "string"}},
            "target": {"type": ["string", "null"], "enum": ["constant", "entity", None]},
            "url": {"type": "string"},
        },
        "required": ["name", "label", "entity", "format", "by", "url"],
    },
    "KpiRow": _KPI_ROW,
    "KpiResult": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "label": {"type": "string"},
            "format": {"type": "string", "enum": ["number", "money", "percent"]},
            "better": _BETTER,
            "by": {"type": "array", "items": {"type": "string"}},
            "period": _PERIOD,
            "previous_period": _PERIOD,
            "rows": {"type": "array", "items": {"$ref": "#/components/schemas/KpiRow"}},
            "total": {"$ref": "#/components/schemas/KpiRow"},
            "drill_exact": {"type": "boolean"},
        },
        "required": ["name", "label", "format", "by", "period", "rows", "total"],
    },
}


def _error_content(schema: str = "Error") -> dict[str, Any]:
    return {JSON: {"schema": _ref(schema)}}


_COMMON_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
    "ValidationError": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "errors": {
                "type": "object",
                "description": "field (or _record, or lines[0].qty) -> messages",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        "required": ["error", "errors"],
    },
    "ConflictError": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "current_version": {"type": "integer"},
            "updated_by": {"type": ["string", "null"]},
            "updated_at": {"type": "string"},
        },
        "required": ["error"],
    },
    "Upload": {
        "type": "object",
        "properties": {
            "key": {"type": "string", "description": "put this into the record's file field"},
            "name": {"type": "string", "description": "the file name as kept"},
            "size": {"type": "integer"},
            "content_type": {"type": "string", "description": "the type downloads get"},
            "entity": {"type": "string"},
            "field": {"type": "string"},
        },
        "required": ["key", "name", "size", "content_type", "entity", "field"],
    },
    "ImportJob": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "entity": {"type": "string"},
            "file_name": {"type": "string"},
            "user": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "mode": {"type": "string", "enum": ["all", "partial"]},
            "update_on": {"type": ["string", "null"]},
            "dry_run": {"type": "boolean"},
            "rows_read": {"type": "integer"},
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "failed": {"type": "integer"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "message": {"type": ["string", "null"], "description": "the outcome, for people"},
            "errors": {
                "type": "array",
                "description": "the first 100 row errors (the report has more)",
                "items": {
                    "type": "object",
                    "properties": {
                        "sheet": {"type": ["string", "null"]},
                        "row": {"type": ["integer", "null"]},
                        "column": {"type": ["string", "null"]},
                        "field": {"type": ["string", "null"]},
                        "value": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                    },
                },
            },
            "errors_total": {"type": "integer"},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "status_url": {"type": "string"},
            "report_url": {"type": ["string", "null"]},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "required": ["id", "entity", "state", "rows_read", "created", "updated", "failed"],
    },
    "History": {
        "type": "object",
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "user": {"type": ["string", "null"]},
                        "action": {"type": "string"},
                        "via": {"type": "string"},
                        "version": {"type": "integer"},
                        "changes": {"type": "object"},
                    },
                },
            }
        },
        "required": ["data"],
    },
}

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_MOMENT: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_TASK = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "step": {"type": "string"},
        "visit": {"type": "integer", "description": "1, then 2 after a return to the step"},
        "approver": _NULLABLE_STRING,
        "state": {
            "type": "string",
            "enum": [
                "waiting",
                "open",
                "approved",
                "rejected",
                "transferred",
                "cancelled",
                "skipped",
            ],
        },
        "origin": {"type": "string", "enum": ["resolved", "added", "transferred", "escalated"]},
        "added_by": _NULLABLE_STRING,
        "transferred_to": _NULLABLE_STRING,
        "comment": _NULLABLE_STRING,
        "opened_at": _MOMENT,
        "decided_at": _MOMENT,
        "due_at": _MOMENT,
    },
    "required": ["id", "step", "approver", "state", "origin"],
}
_COMMENT = {"type": ["string", "null"], "maxLength": 2000}

#: The approval-flow schemas (added when the blueprint has flows).
_FLOW_SCHEMAS: dict[str, Any] = {
    "FlowTask": _TASK,
    "FlowState": {
        "type": "object",
        "properties": {
            "flow": {"type": "string"},
            "label": {"type": "string"},
            "entity": {"type": "string"},
            "record_id": {"type": "integer"},
            "state": {
                "type": "string",
                "enum": ["draft", "pending", "approved", "rejected", "returned", "recalled"],
            },
            "round": {"type": "integer", "description": "0 before the first submit"},
            "run_id": {"type": ["integer", "null"]},
            "current_step": _NULLABLE_STRING,
            "submitted_by": _NULLABLE_STRING,
            "submitted_at": _MOMENT,
            "finished_at": _MOMENT,
            "steps": {
                "type": "array",
                "description": "every step: those reached (decided, open, skipped), then those "
                "to come",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "label": {"type": "string"},
                        "mode": {"type": "string", "enum": ["any", "all"]},
                        "state": {
                            "type": "string",
                            "enum": [
                                "not_submitted",
                                "waiting",
                                "open",
                                "approved",
                                "rejected",
                                "cancelled",
                                "skipped",
                            ],
                        },
                        "visit": {"type": "integer"},
                        "approvers": {"type": "array", "items": {"type": "string"}},
                        "tasks": {"type": "array", "items": _ref("FlowTask")},
                    },
                },
            },
            "open_tasks": {"type": "array", "items": _ref("FlowTask")},
            "my_tasks": {"type": "array", "items": _ref("FlowTask")},
            "actions": {
                "type": "array",
                "description": "what the caller may do now",
                "items": {
                    "type": "string",
                    "enum": [
                        "submit",
                        "recall",
                        "approve",
                        "reject",
                        "return_to",
                        "transfer",
                        "add_approver",
                    ],
                },
            },
            "return_targets": {
                "type": "array",
                "description": "where the caller's task may send the run: submitter or a step",
                "items": {"type": "string"},
            },
            "trail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "who": _NULLABLE_STRING,
                        "action": {"type": "string"},
                        "step": _NULLABLE_STRING,
                        "round": {"type": ["integer", "null"]},
                        "comment": _NULLABLE_STRING,
                        "task_id": {"type": ["integer", "null"]},
                        "details": {"type": "object"},
                    },
                },
            },
        },
        "required": ["flow", "entity", "record_id", "state", "round", "steps", "actions"],
    },
    "TaskPage": {
        "type": "object",
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "task_id": {"type": "integer"},
                        "flow": {"type": "string"},
                        "flow_label": {"type": "string"},
                        "step": {"type": "string"},
                        "step_label": {"type": "string"},
                        "entity": {"type": "string"},
                        "entity_label": {"type": "string"},
                        "record_id": {"type": "integer"},
                        "record_url": {"type": "string"},
                        "title": _NULLABLE_STRING,
                        "round": {"type": "integer"},
                        "submitted_by": _NULLABLE_STRING,
                        "submitted_at": {"type": "string", "format": "date-time"},
                        "opened_at": _MOMENT,
                        "due_at": _MOMENT,
                        "origin": {"type": "string"},
                        "added_by": _NULLABLE_STRING,
                    },
                },
            },
            "count": {"type": "integer"},
            "has_more": {"type": "boolean"},
        },
        "required": ["data", "count", "has_more"],
    },
    "FlowSubmit": {
        "type": "object",
        "properties": {
            "flow": {"type": ["string", "null"], "description": "needed when several apply"},
            "comment": _COMMENT,
        },
        "additionalProperties": False,
    },
    "FlowRecall": {
        "type": "object",
        "properties": {"flow": {"type": ["string", "null"]}},
        "additionalProperties": False,
    },
    "TaskApprove": {
        "type": "object",
        "properties": {
            "comment": _COMMENT,
            "values": {
                "type": "object",
                "description": "the step's editable fields (others: 422)",
            },
        },
        "additionalProperties": False,
    },
    "TaskReject": {
        "type": "object",
        "properties": {"comment": _COMMENT},
        "additionalProperties": False,
    },
    "TaskReturn": {
        "type": "object",
        "properties": {
            "step": {"type": "string", "description": "submitter, or an earlier step"},
            "comment": _COMMENT,
        },
        "required": ["step"],
        "additionalProperties": False,
    },
    "TaskUser": {
        "type": "object",
        "properties": {"user": {"type": "string"}, "comment": _COMMENT},
        "required": ["user"],
        "additionalProperties": False,
    },
    "FlowError": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "by": _NULLABLE_STRING,
            "at": {"type": "string"},
            "decision": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "string"}},
            "flow": {"type": "string"},
            "submitted_by": _NULLABLE_STRING,
            "submitted_at": {"type": "string"},
        },
        "required": ["error"],
    },
    "FlowValidationError": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "errors": {
                "type": "object",
                "description": "comment, user, a field or _record -> messages",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "step": {"type": "string", "description": "the step nobody could approve"},
        },
        "required": ["error"],
    },
}

_PARAMETERS: dict[str, Any] = {
    "RecordId": {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "q": {
        "name": "q",
        "in": "query",
        "description": "search: every term must match a search field",
        "schema": {"type": "string"},
    },
    "sort": {
        "name": "sort",
        "in": "query",
        "description": "field names, comma-separated, '-' for descending",
        "schema": {"type": "string"},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    "offset": {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    "after": {
        "name": "after",
        "in": "query",
        "description": "next_cursor of the previous page (keyset paging)",
        "schema": {"type": "string"},
    },
    "lang": {
        "name": "lang",
        "in": "query",
        "description": "language of messages (else Accept-Language)",
        "schema": {"type": "string", "enum": ["zh", "en"]},
    },
    "TaskId": {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "TaskLimit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    },
    "FlowName": {
        "name": "flow",
        "in": "query",
        "description": "which flow (default: the pending one, else the latest)",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "a retry with the same key creates nothing and returns the first "
        "record (1-255 visible ASCII characters; per user)",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "description": 'the version the change is based on, "3"; or send version in the '
        "body. Neither: 428",
        "schema": {"type": "string"},
    },
    "IfMatchOptional": {
        "name": "If-Match",
        "in": "header",
        "description": 'delete only if the record is still at this version, "3"',
        "schema": {"type": "string"},
    },
}

_HEADERS: dict[str, Any] = {
    "ETag": {"description": 'the record version, quoted: "3"', "schema": {"type": "string"}},
    "Location": {"description": "URL of the new record", "schema": {"type": "string"}},
}

_RESPONSES: dict[str, Any] = {
    "BadRequest": {
        "description": "malformed JSON, a body that is not an object, a bad query or header",
        "content": _error_content(),
    },
    "Unauthorized": {
        "description": "no valid bearer token",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": _error_content(),
    },
    "Forbidden": {"description": "not allowed for the caller", "content": _error_content()},
    "NotFound": {
        "description": "no such entity or record, or the caller may not read it",
        "content": _error_content(),
    },
    "Conflict": {
        "description": "the record changed since the given version",
        "content": _error_content("ConflictError"),
    },
    "PreconditionFailed": {
        "description": "If-Match and the body's version disagree",
        "content": _error_content(),
    },
    "PayloadTooLarge": {
        "description": "the body is over 4 MB (an upload: over its field's size limit)",
        "content": _error_content(),
    },
    "Invalid": {
        "description": "the record is invalid; every problem by field",
        "content": _error_content("ValidationError"),
    },
    "ImportRefused": {
        "description": "the file cannot be imported (its type, its encoding, no header row, "
        "a bad mapping or option); the message says what to change",
        "content": _error_content(),
    },
    "FlowConflict": {
        "description": "already decided (by, at, decision), not allowed in the current state, "
        "or the record is locked by a pending flow",
        "content": _error_content("FlowError"),
    },
    "FlowInvalid": {
        "description": "a comment is required, a value is invalid (errors by field), or a "
        "step has nobody to approve it (step)",
        "content": _error_content("FlowValidationError"),
    },
    "PreconditionRequired": {
        "description": "an update named no version (If-Match or version)",
        "content": _error_content(),
    },
}


def build_document(
    blueprint: Blueprint, permissions: Permissions, actor: Actor, lang: str
) -> dict[str, Any]:
    """The OpenAPI document of ``blueprint`` as ``actor`` sees it, labels in ``lang``."""
    return _Builder(blueprint, permissions, actor, lang).document()


def openapi_document() -> dict[str, Any]:
    """The document for the current API request."""
    svc = services()
    return build_document(svc.blueprint, svc.permissions, api_actor(), request_lang())
