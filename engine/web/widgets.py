"""Field views: everything a template needs to draw one input, already decided.

Templates only draw; they never look at permissions, formulas or kinds. A
:class:`FieldView` says which widget, its input value, options with labels in
the page's language, whether it is required / read-only / visible, and the
error messages that belong next to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.errors import FormflowError
from engine.fields import kind_of
from engine.fields.file import allowed_extensions
from engine.i18n import Text
from engine.locales import format_decimal
from engine.model import Entity, Field
from engine.records import Actor
from engine.storage.query import Query
from engine.web.conditions import FieldState
from engine.web.formatting import display, lookup_titles, record_title
from engine.web.forms import FormState, RowState, accepts_input
from engine.web.i18n import _
from engine.web.people import People, PeopleView
from engine.web.services import services

#: A reference is a drop-down when the target has at most this many records
#: the user can see; otherwise a search box.
SELECT_LIMIT = 100

_INPUT_TYPES = {
    "text": "text",
    "email": "email",
    "tel": "tel",
    "url": "url",
    "number": "number",
    "money": "number",
    "percent": "number",
    "date": "date",
    "datetime": "datetime-local",
}


@dataclass
class OptionView:
    value: str
    label: str
    selected: bool


@dataclass
class RefView:
    target: str
    mode: str  # "select" or "search"
    title: str  # the chosen record's title
    options: list[OptionView] = field(default_factory=list)


@dataclass
class FileView:
    """A file field's input: the held file's name, its download link, the limits."""

    name: str  # the held file's name ('' when none)
    accept: str  # the input's accept attribute (".pdf,.docx"), '' for any
    limits: str  # "Up to 20 MB; allowed: pdf, docx"
    url: str | None = None  # download link, when the held file is the stored one
    pending: bool = False  # uploaded in this form, not saved yet


@dataclass
class FieldView:
    name: str
    input_name: str
    label: str
    widget: str
    input_type: str = "text"
    help: str = ""
    placeholder: str = ""
    value: Any = ""
    shown: str = ""  # the value as text (computed and read-only fields)
    required: bool = False
    readonly: bool = False
    computed: bool = False
    visible: bool = True
    step: str | None = None
    min: str | None = None
    max: str | None = None
    options: list[OptionView] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ref: RefView | None = None
    table: TableView | None = None
    people: PeopleView | None = None
    file: FileView | None = None


@dataclass
class RowView:
    token: str
    id: int | None
    cells: list[FieldView]
    errors: list[str] = field(default_factory=list)


@dataclass
class TableView:
    columns: list[str]
    rows: list[RowView]


@dataclass
class SectionView:
    label: str
    fields: list[FieldView]


class RefCache:
    """Per-request cache of reference choices and titles, and of user pickers.

    ``entity`` is the form's entity: whom a user picker offers depends on it.
    """

    def __init__(self, actor: Actor, lang: str, entity: str | None = None) -> None:
        self.actor = actor
        self.lang = lang
        self.entity = entity
        self.people = People(actor)
        self.choices: dict[str, tuple[list[tuple[int, str]], bool]] = {}

    def options(self, target: str) -> tuple[list[tuple[int, str]], bool]:
        """Up to SELECT_LIMIT (id, title) pairs, and whether there are more."""
        if target not in self.choices:
            svc = services()
            entity = svc.blueprint.entities[target]
            sort = (entity.title_field,) if entity.title_field else ()
            try:
                page = svc.records.list_records(
                    target,
                    Query(limit=SELECT_LIMIT, sort=sort),
                    actor=self.actor,
                    with_count=False,
                )
                pairs = [
                    (int(r["id"]), record_title(entity, r, r["id"], self.lang)) for r in page.rows
                ]
                self.choices[target] = (pairs, page.has_more)
            except FormflowError:
                self.choices[target] = ([], True)
        return self.choices[target]

    def title(self, target: str, record_id: int) -> str:
        pairs, _ = self.options(target)
        for rid, title in pairs:
            if rid == record_id:
                return title
        found = lookup_titles({target: {record_id}}, self.actor, self.lang)
        return found.get(target, {}).get(record_id, f"#{record_id}")


def _number_attrs(f: Field) -> tuple[str | None, str | None, str | None]:
    kind = kind_of(f)
    if kind.widget not in ("number", "money", "percent"):
        return None, None, None
    step = "1" if f.kind == "integer" else "any"
    low = None if f.min is None or isinstance(f.min, str) else str(f.min)
    high = None if f.max is None or isinstance(f.max, str) else str(f.max)
    return step, low, high


def field_view(
    f: Field,
    input_name: str,
    value: Any,
    canonical: Any,
    lang: str,
    *,
    state: FieldState,
    readonly: bool,
    errors: list[str],
    refs: RefCache,
) -> FieldView:
    """The view of one field (top level or a child-table cell)."""
    kind = kind_of(f)
    widget = kind.widget
    takes_input = accepts_input(f)
    computed = not takes_input and f.kind != "file"  # a file has no input, but is not computed
    view = FieldView(
        name=f.name,
        input_name=input_name,
        label=f.label.get(lang) or f.name,
        widget="readonly" if computed else widget,
        input_type=_INPUT_TYPES.get(widget, "text"),
        help=f.help.get(lang),
        placeholder=f.placeholder.get(lang),
        value=value,
        shown=display(f, canonical, lang),
        required=state.required and takes_input,
        readonly=readonly or state.readonly or not takes_input,
        computed=computed,
        visible=state.visible,
        errors=errors,
    )
    view.step, view.min, view.max = _number_attrs(f)
    if widget in ("select", "multiselect"):
        chosen = set(value) if isinstance(value, list) else {value}
        view.options = [
            OptionView(o.value, o.label.get(lang) or o.value, o.value in chosen) for o in f.options
        ]
    if widget == "ref" and f.to:
        pairs, more = refs.options(f.to)
        rid = int(value) if isinstance(value, str) and value.isdigit() else None
        title = refs.title(f.to, rid) if rid is not None else ""
        if more:
            view.ref = RefView(f.to, "search", title)
        else:
            options = [OptionView(str(i), t, i == rid) for i, t in pairs]
            view.ref = RefView(f.to, "select", title, options)
        if rid is not None and view.shown.startswith("#"):
            view.shown = title
    if f.kind == "user":
        if isinstance(canonical, str) and canonical:
            view.shown = refs.people.label(canonical)
        if widget == "user" and not view.readonly and refs.entity:
            view.people = refs.people.view(refs.entity, str(value or ""))
    return view


def table_view(
    f: Field,
    rows: list[RowState],
    canonical_rows: list[Mapping[str, Any]],
    lang: str,
    *,
    readonly: bool,
    errors: Mapping[str, list[str]],
    refs: RefCache,
) -> TableView:
    """Rows of a child table as cells (inputs, or read-only computed cells)."""
    columns = [cf.label.get(lang) or cf.name for cf in f.fields.values()]
    out: list[RowView] = []
    for i, row in enumerate(rows):
        canonical = canonical_rows[i] if i < len(canonical_rows) else {}
        cells = []
        for cname, cf in f.fields.items():
            key = f"{f.name}.{row.token}.{cname}"
            cells.append(
                field_view(
                    cf,
                    key,
                    row.values.get(cname, ""),
                    canonical.get(cname),
                    lang,
                    state=FieldState(required=cf.required),
                    readonly=readonly,
                    errors=errors.get(key, []),
                    refs=refs,
                )
            )
        out.append(RowView(row.token, row.id, cells, errors.get(f"{f.name}.{row.token}", [])))
    return TableView(columns, out)


def form_sections(
    entity: Entity,
    form: FormState,
    values: Mapping[str, Any],
    tables: Mapping[str, list[dict[str, Any]]],
    lang: str,
    *,
    states: Mapping[str, FieldState],
    hidden: Collection[str],
    readonly: Collection[str],
    errors: Mapping[str, list[str]],
    refs: RefCache,
) -> list[SectionView]:
    """The form's sections (the blueprint's, else one), hidden fields left out."""
    sections = section_layout(entity, hidden)
    out: list[SectionView] = []
    for label, names in sections:
        views: list[FieldView] = []
        for name in names:
            f = entity.fields[name]
            st = states.get(name, FieldState())
            view = field_view(
                f,
                name,
                form.values.get(name, ""),
                values.get(name),
                lang,
                state=st,
                readonly=name in readonly,
                errors=errors.get(name, []),
                refs=refs,
            )
            if f.kind == "file":  # an input here (child rows take keys through the API)
                view.file = file_view(f, str(form.values.get(name) or ""), lang)
                view.readonly = name in readonly or st.readonly
                view.required = st.required
            if f.kind == "table":
                view.widget = "table"
                view.table = table_view(
                    f,
                    form.rows.get(name, []),
                    list(tables.get(name, [])),
                    lang,
                    readonly=name in readonly or st.readonly,
                    errors=errors,
                    refs=refs,
                )
            views.append(view)
        out.append(SectionView(label.get(lang), views))
    return out


def file_view(f: Field, key: str, lang: str) -> FileView:
    """The file input of ``f`` holding ``key`` (links are added by the page)."""
    allowed = sorted(allowed_extensions(f))
    mb = format_decimal(Decimal(str(services().uploads.max_mb(f))), lang)
    limits = (
        _("Up to %(mb)s MB; allowed: %(types)s", mb=mb, types=", ".join(allowed))
        if allowed
        else _("Up to %(mb)s MB", mb=mb)
    )
    return FileView(
        name=key.rsplit("/", 1)[-1] if key else "",
        accept=",".join(f".{a}" for a in allowed),
        limits=limits,
    )


def section_layout(entity: Entity, hidden: Collection[str]) -> list[tuple[Text, list[str]]]:
    """(label, field names) per section; fields no section names go in a last one."""
    placed: set[str] = set()
    layout: list[tuple[Text, list[str]]] = []
    for section in entity.sections:
        names = [n for n in section.fields if n in entity.fields and n not in hidden]
        placed.update(section.fields)
        if names:
            layout.append((section.label, names))
    rest = [n for n in entity.fields if n not in placed and n not in hidden]
    if rest:
        label = Text(zh="其他", en="Other") if layout else entity.label
        layout.append((label, rest))
    return layout
