"""A submitted record form -> the data the record service takes, and back.

Input names: a field is ``<name>``; a child-table row is listed by a hidden
``<table>.__rows`` input holding its token (``r12`` for the stored row 12,
``n<random>`` for a new one), and its cells are ``<table>.<token>.<child>``.
A check box sends ``false`` from a hidden input and ``true`` from the box (the
last value wins); a multi-select sends an empty marker first so that clearing
every option is a change. Error keys of the record service (``lines[2].qty``)
map back to row tokens by position. ``owner`` is the record's owner (offered
to those the owner rules allow; passed to the record service whoever sends it).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from engine.fields import kind_of
from engine.model import Entity, Field
from engine.web.formatting import input_value

ROWS_SUFFIX = "__rows"
#: A file field's file input (``attachment.__upload``) and "remove it" box.
UPLOAD_SUFFIX = "__upload"
REMOVE_SUFFIX = "__remove"
#: The record's owner (a system column, not a field), when the form offers it.
OWNER = "owner"
_ROW_KEY = re.compile(r"^(?P<table>[^\[\]]+)\[(?P<index>\d+)\](?:\.(?P<child>.+))?$")
_TOKEN = re.compile(r"^[rn][A-Za-z0-9_-]{1,40}$")


def new_token() -> str:
    """A token for a row added in the browser."""
    return "n" + secrets.token_hex(6)


def accepts_input(f: Field) -> bool:
    """Whether a form has an input for ``f`` (not computed, numbered or a file)."""
    return kind_of(f).editable(f) and f.kind != "file"


@dataclass
class RowState:
    token: str
    id: int | None
    values: dict[str, Any] = field(default_factory=dict)  # child -> input value


@dataclass
class FormState:
    """What the inputs of a form hold: input values, not canonical values."""

    values: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, list[RowState]] = field(default_factory=dict)

    def row_token(self, table: str, index: int) -> str | None:
        rows = self.rows.get(table, [])
        return rows[index].token if 0 <= index < len(rows) else None


def state_from_values(
    entity: Entity, values: Mapping[str, Any], tables: Mapping[str, list[dict[str, Any]]]
) -> FormState:
    """Input values for a stored record (or for defaults)."""
    state = FormState()
    for name, f in entity.fields.items():
        if f.kind == "table":
            rows: list[RowState] = []
            for row in tables.get(name, []):
                rid = row.get("id")
                token = f"r{rid}" if isinstance(rid, int) else new_token()
                cells = {c: input_value(cf, row.get(c)) for c, cf in f.fields.items()}
                rows.append(RowState(token, rid if isinstance(rid, int) else None, cells))
            state.rows[name] = rows
        else:
            state.values[name] = input_value(f, values.get(name))
    return state


def _last(form: MultiDict[str, str], key: str) -> str | None:
    values = form.getlist(key)
    return values[-1] if values else None


def _read(f: Field, form: MultiDict[str, str], key: str) -> tuple[bool, Any]:
    """(present, value) of one input."""
    widget = kind_of(f).widget
    if widget == "multiselect":
        if key not in form:
            return False, None
        return True, [v for v in form.getlist(key) if v.strip()]
    if key not in form:
        return False, None
    value = _last(form, key)
    if widget == "checkbox":
        return True, value or "false"
    return True, value


def _read_file(
    name: str, form: MultiDict[str, str], uploaded: Mapping[str, str]
) -> tuple[bool, str]:
    """(present, key) of a file field: a new upload, else the held key unless removed."""
    if name in uploaded:
        return True, uploaded[name]
    if name not in form:
        return False, ""
    if _last(form, f"{name}.{REMOVE_SUFFIX}") == "1":
        return True, ""
    return True, (_last(form, name) or "").strip()


def read_form(
    entity: Entity,
    form: MultiDict[str, str],
    editable: Collection[str],
    uploaded: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], FormState]:
    """The record data to save and the form state to show again on errors.

    Only ``editable`` fields are read: a read-only, hidden or computed field is
    never sent to the record service from a form, whatever the request holds.
    A file field is ``<name>`` (the key it holds, hidden), ``<name>.__remove``
    (``1``: remove it) and a file input whose upload the view stored first
    (``uploaded``: field -> new key).
    """
    data: dict[str, Any] = {}
    state = FormState()
    for name, f in entity.fields.items():
        if f.kind == "file":
            got, key = _read_file(name, form, uploaded or {})
            if got:
                state.values[name] = key
                if name in editable:
                    data[name] = key or None
            continue
        if f.kind == "table":
            rows: list[RowState] = []
            payload: list[dict[str, Any]] = []
            present = f"{name}.{ROWS_SUFFIX}" in form
            for token in form.getlist(f"{name}.{ROWS_SUFFIX}"):
                if not _TOKEN.match(token):
                    continue
                rid = int(token[1:]) if token.startswith("r") and token[1:].isdigit() else None
                row = RowState(token, rid)
                item: dict[str, Any] = {} if rid is None else {"id": rid}
                for cname, cf in f.fields.items():
                    if not accepts_input(cf):
                        continue
                    got, value = _read(cf, form, f"{name}.{token}.{cname}")
                    if got:
                        row.values[cname] = value
                        item[cname] = value
                rows.append(row)
                payload.append(item)
            state.rows[name] = rows
            if name in editable and (present or rows):
                data[name] = payload
            continue
        got, value = _read(f, form, name)
        if got:
            state.values[name] = value
            if name in editable and accepts_input(f):
                data[name] = value
    if OWNER in form and OWNER not in entity.fields:
        # Whoever sends it, the record service decides: it ignores an unchanged owner
        # and refuses a change the owner rules do not allow (the form offers none then).
        owner = (_last(form, OWNER) or "").strip()
        state.values[OWNER] = owner
        data[OWNER] = owner or None
    return data, state


def errors_by_input(errors: Mapping[str, list[str]], state: FormState) -> dict[str, list[str]]:
    """Record-service error keys -> input names (``lines[0].qty`` -> ``lines.<token>.qty``)."""
    out: dict[str, list[str]] = {}
    for key, messages in errors.items():
        m = _ROW_KEY.match(key)
        target = key
        if m:
            token = state.row_token(m["table"], int(m["index"]))
            if token is None:
                target = m["table"]
            elif m["child"]:
                target = f"{m['table']}.{token}.{m['child']}"
            else:
                target = f"{m['table']}.{token}"
        out.setdefault(target, []).extend(messages)
    return out
