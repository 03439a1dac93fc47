"""The checked blueprint model: frozen dataclasses, no I/O, no database.

The loader (``engine.loader``) builds these from YAML/JSON after JSON-Schema and
semantic checks; everything downstream (storage, records, flows, KPIs, web)
reads only this model. Mappings are read-only views and sequences are tuples,
so a checked model cannot drift after it has been checked.

Formulas are kept as :class:`Formula` (source text + where it is in the file).
The checker attaches the compiled form once (``Formula.bind``); after loading,
``formula.compiled`` is always available.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from engine.errors import Location
from engine.i18n import Text

#: System columns every entity table has; a blueprint field may not use these names.
SYSTEM_COLUMNS: frozenset[str] = frozenset(
    {"id", "created_at", "created_by", "updated_at", "updated_by", "version", "owner", "parent_id"}
)

#: How pages and exports name the system columns a list may show.
SYSTEM_LABELS: Mapping[str, Text] = MappingProxyType(
    {
        "id": Text(zh="编号", en="ID"),
        "owner": Text(zh="负责人", en="Owner"),
        "created_at": Text(zh="创建时间", en="Created"),
        "created_by": Text(zh="创建人", en="Created by"),
        "updated_at": Text(zh="更新时间", en="Updated"),
        "updated_by": Text(zh="更新人", en="Updated by"),
        "version": Text(zh="版本", en="Version"),
    }
)

#: Scopes a role may have on an entity's records (or a boolean formula).
SCOPES: tuple[str, ...] = ("none", "own", "team", "all")

EMPTY_MAP: Mapping[str, Any] = MappingProxyType({})


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only mapping that keeps insertion order."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class Formula:
    """A formula as written (``source``) and where it is (``location``).

    ``location`` points at the first character of the formula text itself, so an
    error at offset (line, col) inside the formula maps to
    ``location.shifted(line, col)``.
    """

    source: str
    location: Location = dataclasses.field(default_factory=Location)
    _compiled: Any = dataclasses.field(default=None, compare=False, repr=False, hash=False)

    def bind(self, compiled: Any) -> None:
        """Attach the compiled formula; called once by the checker."""
        object.__setattr__(self, "_compiled", compiled)

    @property
    def compiled(self) -> Any:
        if self._compiled is None:
            raise RuntimeError(f"formula {self.source!r} at {self.location} was not checked")
        return self._compiled

    @property
    def is_compiled(self) -> bool:
        return self._compiled is not None


@dataclass(frozen=True)
class Option:
    """One choice of a choice / multi-choice field."""

    value: str
    label: Text
    color: str | None = None
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Field:
    """A field of an entity or of a child table.

    ``kind`` names a field kind in ``engine.fields`` (text, money, choice, ref,
    table, formula, autonumber, ...). Options that do not apply to a kind are
    refused by the schema and by the kind's own check.
    """

    name: str
    kind: str
    label: Text
    location: Location = dataclasses.field(default_factory=Location)
    help: Text = dataclasses.field(default_factory=Text)
    placeholder: Text = dataclasses.field(default_factory=Text)
    required: bool = False
    required_if: Formula | None = None
    visible_if: Formula | None = None
    readonly_if: Formula | None = None
    readonly: bool = False
    unique: bool = False
    index: bool = False
    default: Any = None  # a plain value; a formula default is in ``default_formula``
    default_formula: Formula | None = None
    formula: Formula | None = None  # computed field: recomputed on every write
    result: str | None = None  # for kind "formula": the kind of the computed value
    min: Any = None
    max: Any = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None  # regular expression a text value must match
    pattern_message: Text = dataclasses.field(default_factory=Text)
    options: tuple[Option, ...] = ()
    to: str | None = None  # ref: target entity
    on_delete: str = "restrict"  # ref: restrict | set_null | cascade
    fields: Mapping[str, Field] = dataclasses.field(
        default_factory=lambda: EMPTY_MAP
    )  # table: child fields
    min_rows: int | None = None  # table
    max_rows: int | None = None  # table
    format: str | None = None  # autonumber: e.g. "OPP-{YYYY}{MM}-{SEQ:4}"
    currency: str | None = None  # money: ISO code, default from the blueprint
    precision: int | None = None  # decimal places for decimal / money / percent
    max_size_mb: float | None = None  # file
    accept: tuple[str, ...] = ()  # file: allowed extensions
    renamed_from: str | None = None  # migrations: previous name of this field

    @property
    def computed(self) -> bool:
        return self.formula is not None

    @property
    def is_table(self) -> bool:
        return self.kind == "table"

    def option(self, value: str) -> Option | None:
        for opt in self.options:
            if opt.value == value:
                return opt
        return None


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: ``check`` must be true, else ``message`` shows on ``field``."""

    check: Formula
    message: Text
    field: str | None = None  # None: the error belongs to the whole record
    on: tuple[str, ...] = ("create", "update")
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Access:
    """What one role may do with one entity's records.

    Each of read/update/delete is a scope name from :data:`SCOPES` or a boolean
    formula evaluated against the record; ``create`` is a bool or a formula.
    """

    role: str
    create: bool | Formula = False
    read: str | Formula = "none"
    update: str | Formula = "none"
    delete: str | Formula = "none"
    hidden_fields: tuple[str, ...] = ()
    readonly_fields: tuple[str, ...] = ()
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class ListView:
    """How an entity's list page looks."""

    columns: tuple[str, ...] = ()
    sort: tuple[str, ...] = ()  # field names, "-" prefix for descending
    filters: tuple[str, ...] = ()  # fields offered as list filters (indexed)
    search: tuple[str, ...] = ()  # text fields the search box looks in
    page_size: int = 50


@dataclass(frozen=True)
class Section:
    """A group of fields on the form and detail pages."""

    label: Text
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Entity:
    name: str
    label: Text
    location: Location = dataclasses.field(default_factory=Location)
    description: Text = dataclasses.field(default_factory=Text)
    title_field: str | None = None
    fields: Mapping[str, Field] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    rules: tuple[Rule, ...] = ()
    access: Mapping[str, Access] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    list: ListView = dataclasses.field(default_factory=ListView)
    sections: tuple[Section, ...] = ()
    renamed_from: str | None = None

    def field(self, name: str) -> Field:
        return self.fields[name]

    def tables(self) -> Iterator[Field]:
        return (f for f in self.fields.values() if f.kind == "table")


@dataclass(frozen=True)
class Approvers:
    """Who is asked at a flow step; exactly one source is set."""

    role: str | None = None
    users: tuple[str, ...] = ()
    manager_of: str | None = None  # a user field (usually "owner"): that user's manager
    levels: int = 1  # manager_of: 1 = manager, 2 = manager's manager
    field: str | None = None  # a user field of the record
    formula: Formula | None = None  # evaluates to a user name or a list of names


@dataclass(frozen=True)
class FlowAction:
    """What happens when a step or a flow is approved or rejected."""

    set: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: EMPTY_MAP
    )  # field -> value/Formula
    return_to: str | None = None  # "submitter" or a step name (回退)
    require_comment: bool = False
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class Timeout:
    after: timedelta
    action: str  # "escalate" | "return" | "approve" | "reject"


@dataclass(frozen=True)
class Step:
    name: str
    label: Text
    approvers: Approvers
    mode: str = "any"  # any (或签) | all (会签)
    when: Formula | None = None
    validate: Formula | None = None
    validate_message: Text = dataclasses.field(default_factory=Text)
    editable: tuple[str, ...] = ()
    on_approve: FlowAction = dataclasses.field(default_factory=FlowAction)
    on_reject: FlowAction = dataclasses.field(default_factory=FlowAction)
    remind_after: timedelta | None = None
    timeout: Timeout | None = None
    cc: Approvers | None = None
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Flow:
    name: str
    label: Text
    entity: str
    status_field: str
    steps: Mapping[str, Step]
    location: Location = dataclasses.field(default_factory=Location)
    submit_when: Formula | None = None
    on_approved: FlowAction = dataclasses.field(default_factory=FlowAction)
    on_rejected: FlowAction = dataclasses.field(default_factory=FlowAction)
    lock_while_pending: bool = True
    allow_self_approval: bool = False
    remind_after: timedelta | None = None
    cc: Approvers | None = None
    statuses: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: EMPTY_MAP
    )  # draft/pending/... -> value


@dataclass(frozen=True)
class Target:
    """Targets a KPI is measured against: a constant, or rows of a target entity."""

    value: Any = None
    entity: str | None = None
    measure: Formula | None = None
    match: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: EMPTY_MAP
    )  # dimension -> target field
    date: str | None = None


@dataclass(frozen=True)
class Kpi:
    name: str
    label: Text
    entity: str
    measure: Formula
    location: Location = dataclasses.field(default_factory=Location)
    where: Formula | None = None
    date: str | None = None
    by: tuple[str, ...] = ()
    target: Target | None = None
    format: str = "number"  # number | money | percent
    description: Text = dataclasses.field(default_factory=Text)
    better: str = "higher"  # higher | lower: which way the KPI improves


@dataclass(frozen=True)
class Widget:
    kind: str  # number | bar | line | pie | funnel | gauge | table | leaderboard | commission
    kpi: str | None = None
    label: Text = dataclasses.field(default_factory=Text)
    by: tuple[str, ...] = ()
    period: str | None = None
    limit: int | None = None
    width: int = 1
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Dashboard:
    name: str
    label: Text
    widgets: tuple[Widget, ...]
    roles: tuple[str, ...] = ()  # empty: everyone
    filters: tuple[str, ...] = ()  # period | team | owner
    location: Location = dataclasses.field(default_factory=Location)


#: The forecast categories, from least to most certain (``omitted`` is outside them all).
FORECAST_CATEGORIES: tuple[str, ...] = ("pipeline", "best_case", "commit", "closed")


@dataclass(frozen=True)
class Forecast:
    """A sales forecast over an entity's open deals (see docs/forecasts.md).

    ``categories`` maps each of :data:`FORECAST_CATEGORIES` to the stages in it;
    a stage in none is *omitted* (lost). ``override`` names a choice field whose
    non-blank value replaces the stage's category for that deal. Deals in a
    ``closed`` stage are won; deals in an omitted stage are lost.
    """

    name: str
    label: Text
    entity: str
    amount: str
    stage: str
    date: str
    probability: Formula | None = None  # percent: 30 means 30%
    categories: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    override: str | None = None
    history_months: int = 12
    description: Text = dataclasses.field(default_factory=Text)
    location: Location = dataclasses.field(default_factory=Location)

    def category_of(self, stage: str | None) -> str:
        for category, stages in self.categories.items():
            if stage in stages:
                return category
        return "omitted"


@dataclass(frozen=True)
class Tier:
    """One slice of a commission plan: attainment up to ``upto`` % (None: no end) at ``rate`` %."""

    rate: Decimal
    upto: Decimal | None = None
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class PayTerms:
    """How a plan pays: tiers, marginal or flat, and a cap per period (None: no cap)."""

    tiers: tuple[Tier, ...]
    mode: str = "marginal"  # marginal | flat
    cap: Decimal | None = None


@dataclass(frozen=True)
class CommissionPlan:
    """Pays reps with ``roles`` a commission on a KPI's value against its target."""

    name: str
    label: Text
    kpi: str
    terms: PayTerms
    roles: tuple[str, ...] = ()
    period: str = "month"  # month | quarter
    by_role: Mapping[str, PayTerms] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    description: Text = dataclasses.field(default_factory=Text)
    location: Location = dataclasses.field(default_factory=Location)

    def terms_for(self, roles: Iterable[str]) -> PayTerms:
        """The terms for someone with ``roles``: the first override that applies, or the plan's."""
        for role in sorted(roles):
            if role in self.by_role:
                return self.by_role[role]
        return self.terms


@dataclass(frozen=True)
class Recipient:
    """One entry of an automation's ``notify: to:`` list; exactly one source is set.

    ``name``: a role, a user field of the record (``owner`` ...), ``submitter``
    or ``approvers``; ``manager_of``: a user field whose manager (``levels``
    up) is told; ``users``: named users.
    """

    name: str | None = None
    manager_of: str | None = None
    levels: int = 1
    users: tuple[str, ...] = ()
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class AutomationAction:
    kind: str  # set | create | notify | webhook
    params: Mapping[str, Any] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Automation:
    name: str
    entity: str
    on: str  # create | update | delete | submitted | approved | rejected | step_entered | date
    actions: tuple[AutomationAction, ...]
    label: Text = dataclasses.field(default_factory=Text)
    when: Formula | None = None
    flow: str | None = None
    date_field: str | None = None
    offset: timedelta | None = None  # date trigger: negative = before the date
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class BlueprintTest:
    """A test case an analyst writes in the blueprint (run by ``formflow test``)."""

    name: str
    spec: Mapping[str, Any]
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Role:
    name: str
    label: Text
    description: Text = dataclasses.field(default_factory=Text)
    location: Location = dataclasses.field(default_factory=Location)


@dataclass(frozen=True)
class Blueprint:
    id: str
    title: Text
    version: int  # language version (`formflow: 1`)
    location: Location = dataclasses.field(default_factory=Location)
    description: Text = dataclasses.field(default_factory=Text)
    default_locale: str = "zh"
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    roles: Mapping[str, Role] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    entities: Mapping[str, Entity] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    flows: Mapping[str, Flow] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    kpis: Mapping[str, Kpi] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    dashboards: Mapping[str, Dashboard] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    automations: Mapping[str, Automation] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    forecasts: Mapping[str, Forecast] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    commissions: Mapping[str, CommissionPlan] = dataclasses.field(default_factory=lambda: EMPTY_MAP)
    tests: tuple[BlueprintTest, ...] = ()
    source_files: tuple[str, ...] = ()  # every file read, in order
    digest: str = ""  # sha256 of the merged blueprint: the "blueprint version"

    def entity(self, name: str) -> Entity:
        return self.entities[name]
