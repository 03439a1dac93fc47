"""The raw merged document -> the checked model (:mod:`engine.model`).

Normalising happens here and only here:

* labels and messages become :class:`~engine.i18n.Text` (a missing label falls
  back to the name);
* field kind aliases become canonical names (``number`` -> ``decimal``);
* ``default: "=TODAY()"`` becomes ``default_formula``; any value written as a
  string starting with ``=`` where a value or a formula may stand (defaults,
  min/max, ``set:``, ``values:``, access scopes, ``create:``) becomes a
  :class:`~engine.model.Formula`; formula-only keys (``check``, ``when``,
  ``formula`` ...) may be written with or without the leading ``=``;
* options (a list of values, a list of ``{value, label, color}`` or a map
  ``value: label``) become a tuple of :class:`~engine.model.Option`;
* durations (``30m``, ``48h``, ``2d``, ``1w``, ``1d12h``, ``-3d``) become
  ``timedelta``;
* keys that do not apply to a field's kind are *not* copied onto the field
  (the checks report them at the key), so ``kind.check`` sees a clean field.

Every Formula gets the location of its first character, so an expression
error at offset (line, column) maps to the exact place in the file.

The builder is defensive: it is also run on documents that failed the schema
(to find more problems in one pass), so a value of the wrong type is skipped,
never trusted. Automation action params, by action kind:
``set``: field -> value or Formula; ``create``: ``{"entity": str, "values":
field -> value or Formula}``; ``notify``: ``{"to": tuple[Recipient, ...],
"message": Text}``; ``webhook``: ``{"url": str, "secret_env": str | None}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeGuard

from engine.errors import Location
from engine.fields import COMMON_KEYS, get_kind
from engine.i18n import Text
from engine.loading.positions import Doc, Path
from engine.model import (
    SCOPES,
    Access,
    Approvers,
    Automation,
    AutomationAction,
    Blueprint,
    BlueprintTest,
    CommissionPlan,
    Dashboard,
    Entity,
    Field,
    Flow,
    FlowAction,
    Forecast,
    Formula,
    Kpi,
    ListView,
    Option,
    PayTerms,
    Recipient,
    Role,
    Rule,
    Section,
    Step,
    Target,
    Tier,
    Timeout,
    Widget,
    frozen_map,
)

_DURATION = re.compile(r"(-)?((?:[0-9]+[wdhm])+)\Z")
_DURATION_PART = re.compile(r"([0-9]+)([wdhm])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: Any) -> timedelta | None:
    """``"48h"`` -> 2 days; ``"-3d"`` -> minus 3 days; None if not a duration."""
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text.strip())
    if not match:
        return None
    total = timedelta()
    for amount, unit in _DURATION_PART.findall(match.group(2)):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return -total if match.group(1) else total


def digest(data: Any) -> str:
    """sha256 of the canonical JSON of the merged raw document."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _name(value: Any) -> str | None:
    """A name written as text (an integer such as a status value counts too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int | float) else None


def _bool(value: Any, default: bool = False) -> bool:
    return value if isinstance(value, bool) else default


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(value: Any) -> tuple[str, ...]:
    return tuple(s for s in (_name(v) for v in _list(value)) if s is not None)


def freeze(value: Any) -> Any:
    """Plain raw values made immutable: maps read-only, lists tuples."""
    if isinstance(value, dict):
        return frozen_map({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def is_formula_text(value: Any) -> TypeGuard[str]:
    """A value written as ``=expression`` (but not ``==``)."""
    return isinstance(value, str) and value.startswith("=") and not value.startswith("==")


class Builder:
    """Builds the model from one merged raw document."""

    def __init__(self, doc: Doc, refused: frozenset[Path] = frozenset()) -> None:
        self.doc = doc
        self.pos = doc.pos
        self.refused = refused

    # -- positions --------------------------------------------------------------------
    def at(self, path: Path) -> Location:
        return self.pos.locate(path)

    def key_at(self, path: Path) -> Location:
        return self.pos.locate_key(path)

    def formula(self, raw: Any, path: Path) -> Formula | None:
        """A formula-only value (with or without a leading ``=``)."""
        if not isinstance(raw, str) or not raw.strip():
            return None
        if is_formula_text(raw):
            return self._eq_formula(raw, path)
        return Formula(raw, self.pos.locate_text(path))

    def _eq_formula(self, raw: str, path: Path) -> Formula:
        start = self.pos.locate_text(path)
        shifted = Location(start.file, start.line, start.column + 1) if start.line else start
        return Formula(raw[1:], shifted)

    def value(self, raw: Any, path: Path) -> Any:
        """A value that may be a formula (``=...``): Formula or the frozen value."""
        if is_formula_text(raw):
            return self._eq_formula(raw, path)
        return freeze(raw)

    def values(self, raw: Any, path: Path) -> Mapping[str, Any]:
        return frozen_map({k: self.value(v, (*path, k)) for k, v in _map(raw).items()})

    # -- the blueprint ----------------------------------------------------------------
    def blueprint(self) -> Blueprint:
        data = _map(self.doc.data)
        return Blueprint(
            id=_str(data.get("id")) or "",
            title=Text.of(data.get("title") if _label(data.get("title")) else data.get("id")),
            version=_int(data.get("formflow")) or 0,
            location=self.pos.value,
            description=_text(data.get("description")),
            default_locale=_str(data.get("default_locale")) or "zh",
            timezone=_str(data.get("timezone")) or "Asia/Shanghai",
            currency=_str(data.get("currency")) or "CNY",
            roles=self.named("roles", self.role),
            entities=self.named("entities", self.entity),
            flows=self.named("flows", self.flow),
            kpis=self.named("kpis", self.kpi),
            dashboards=self.named("dashboards", self.dashboard),
            automations=self.named("automations", self.automation),
            forecasts=self.named("forecasts", self.forecast),
            commissions=self.named("commissions", self.commission),
            tests=tuple(
                BlueprintTest(
                    name=_str(_map(t).get("name")) or f"test {i + 1}",
                    spec=freeze(_map(t)),
                    location=self.at(("tests", i)),
                )
                for i, t in enumerate(_list(data.get("tests")))
            ),
            source_files=tuple(self.doc.files),
            digest=digest(self.doc.data),
        )

    def named(self, section: str, build: Any) -> Mapping[str, Any]:
        raw = _map(_map(self.doc.data).get(section))
        return frozen_map(
            {name: build(name, value, (section, name)) for name, value in raw.items()}
        )

    # -- roles and entities -----------------------------------------------------------
    def role(self, name: str, raw: Any, path: Path) -> Role:
        if isinstance(raw, dict) and "label" in raw:
            label, description = _text(raw.get("label")), _text(raw.get("description"))
        else:
            label, description = _text(raw), Text()
        return Role(name, label or Text.of(name), description, self.key_at(path))

    def entity(self, name: str, raw: Any, path: Path) -> Entity:
        data = _map(raw)
        fields_path = (*path, "fields")
        return Entity(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            location=self.key_at(path),
            description=_text(data.get("description")),
            title_field=_str(data.get("title_field")),
            fields=frozen_map(
                {
                    fname: self.field(fname, fraw, (*fields_path, fname))
                    for fname, fraw in _map(data.get("fields")).items()
                }
            ),
            rules=tuple(
                self.rule(r, (*path, "rules", i)) for i, r in enumerate(_list(data.get("rules")))
            ),
            access=frozen_map(
                {
                    role: self.access(role, a, (*path, "access", role))
                    for role, a in _map(data.get("access")).items()
                }
            ),
            list=self.list_view(_map(data.get("list"))),
            sections=tuple(
                Section(_text(_map(s).get("label")), _names(_map(s).get("fields")))
                for s in _list(data.get("sections"))
            ),
            renamed_from=_str(data.get("renamed_from")),
        )

    def field(self, name: str, raw: Any, path: Path) -> Field:
        data = _map(raw)
        written = _str(data.get("type")) or ""
        kind = get_kind(written) if written else None
        allowed = COMMON_KEYS | (kind.keys if kind is not None else frozenset())

        def get(key: str) -> Any:
            if key not in allowed or (*path, key) in self.refused:
                return None
            return data.get(key)

        default, default_formula = data.get("default"), None
        if is_formula_text(default):
            default_formula, default = self._eq_formula(default, (*path, "default")), None
        return Field(
            name=name,
            kind=kind.name if kind is not None else written,
            label=_text(data.get("label")) or Text.of(name),
            location=self.key_at(path),
            help=_text(data.get("help")),
            placeholder=_text(data.get("placeholder")),
            required=_bool(data.get("required")),
            required_if=self.formula(data.get("required_if"), (*path, "required_if")),
            visible_if=self.formula(data.get("visible_if"), (*path, "visible_if")),
            readonly_if=self.formula(data.get("readonly_if"), (*path, "readonly_if")),
            readonly=_bool(data.get("readonly")),
            unique=_bool(data.get("unique")),
            index=_bool(data.get("index")),
            default=freeze(default),
            default_formula=default_formula,
            formula=self.formula(get("formula"), (*path, "formula")),
            result=_str(get("result")),
            min=self.value(get("min"), (*path, "min")),
            max=self.value(get("max"), (*path, "max")),
            min_length=_int(get("min_length")),
            max_length=_int(get("max_length")),
            pattern=_str(get("pattern")),
            pattern_message=_text(get("pattern_message")),
            options=self.options(get("options"), (*path, "options")),
            to=_str(get("to")),
            on_delete=_str(get("on_delete")) or "restrict",
            fields=frozen_map(
                {
                    cname: self.field(cname, craw, (*path, "fields", cname))
                    for cname, craw in _map(get("fields")).items()
                }
            ),
            min_rows=_int(get("min_rows")),
            max_rows=_int(get("max_rows")),
            format=_str(get("format")),
            currency=_str(get("currency")),
            precision=_int(get("precision")),
            max_size_mb=_number(get("max_size_mb")),
            accept=_names(get("accept")),
            renamed_from=_str(data.get("renamed_from")),
        )

    def options(self, raw: Any, path: Path) -> tuple[Option, ...]:
        out: list[Option] = []
        if isinstance(raw, list):
            for index, item in enumerate(raw):
                where = self.at((*path, index))
                if isinstance(item, dict):
                    value = _name(item.get("value"))
                    if value is not None:
                        label = _text(item.get("label")) or Text.of(value)
                        out.append(Option(value, label, _str(item.get("color")), where))
                elif (value := _name(item)) is not None:
                    out.append(Option(value, Text.of(value), None, where))
        elif isinstance(raw, dict):
            for value, item in raw.items():
                where = self.key_at((*path, value))
                if isinstance(item, dict) and not (set(item) & {"zh", "en"}):
                    label = _text(item.get("label")) or Text.of(value)
                    out.append(Option(value, label, _str(item.get("color")), where))
                else:
                    out.append(Option(value, _text(item) or Text.of(value), None, where))
        return tuple(out)

    def rule(self, raw: Any, path: Path) -> Rule:
        data = _map(raw)
        check = self.formula(data.get("check"), (*path, "check")) or Formula("True", self.at(path))
        on = _names(data.get("on")) or ("create", "update")
        return Rule(check, _text(data.get("message")), _str(data.get("field")), on, self.at(path))

    def access(self, role: str, raw: Any, path: Path) -> Access:
        data = _map(raw)
        create_raw = data.get("create")
        create: bool | Formula = _bool(create_raw)
        if is_formula_text(create_raw):
            create = self._eq_formula(create_raw, (*path, "create"))
        return Access(
            role=role,
            create=create,
            read=self.scope(data.get("read"), (*path, "read")),
            update=self.scope(data.get("update"), (*path, "update")),
            delete=self.scope(data.get("delete"), (*path, "delete")),
            hidden_fields=_names(data.get("hidden_fields")),
            readonly_fields=_names(data.get("readonly_fields")),
            location=self.key_at(path),
        )

    def scope(self, raw: Any, path: Path) -> str | Formula:
        if isinstance(raw, str) and raw in SCOPES:
            return raw
        if is_formula_text(raw):
            return self._eq_formula(raw, path)
        return "none"

    def list_view(self, data: dict[str, Any]) -> ListView:
        return ListView(
            columns=_names(data.get("columns")),
            sort=_names(data.get("sort")),
            filters=_names(data.get("filters")),
            search=_names(data.get("search")),
            page_size=_int(data.get("page_size")) or 50,
        )

    # -- flows ------------------------------------------------------------------------
    def flow(self, name: str, raw: Any, path: Path) -> Flow:
        data = _map(raw)
        steps = {
            sname: self.step(sname, s, (*path, "steps", sname))
            for sname, s in _map(data.get("steps")).items()
        }
        statuses = {
            k: s for k, v in _map(data.get("statuses")).items() if (s := _name(v)) is not None
        }
        return Flow(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            entity=_str(data.get("entity")) or "",
            status_field=_str(data.get("status_field")) or "",
            steps=frozen_map(steps),
            location=self.key_at(path),
            submit_when=self.formula(data.get("submit_when"), (*path, "submit_when")),
            on_approved=self.action(data.get("on_approved"), (*path, "on_approved")),
            on_rejected=self.action(data.get("on_rejected"), (*path, "on_rejected")),
            lock_while_pending=_bool(data.get("lock_while_pending"), True),
            allow_self_approval=_bool(data.get("allow_self_approval")),
            remind_after=parse_duration(data.get("remind_after")),
            cc=self.approvers(data.get("cc"), (*path, "cc")) if "cc" in data else None,
            statuses=frozen_map(statuses),
        )

    def step(self, name: str, raw: Any, path: Path) -> Step:
        data = _map(raw)
        timeout_raw = _map(data.get("timeout"))
        after = parse_duration(timeout_raw.get("after"))
        action = _str(timeout_raw.get("action"))
        return Step(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            approvers=self.approvers(data.get("approvers"), (*path, "approvers")),
            mode=_str(data.get("mode")) or "any",
            when=self.formula(data.get("when"), (*path, "when")),
            validate=self.formula(data.get("validate"), (*path, "validate")),
            validate_message=_text(data.get("validate_message")),
            editable=_names(data.get("editable")),
            on_approve=self.action(data.get("on_approve"), (*path, "on_approve")),
            on_reject=self.action(data.get("on_reject"), (*path, "on_reject")),
            remind_after=parse_duration(data.get("remind_after")),
            timeout=Timeout(after, action) if after is not None and action else None,
            cc=self.approvers(data.get("cc"), (*path, "cc")) if "cc" in data else None,
            location=self.key_at(path),
        )

    def approvers(self, raw: Any, path: Path) -> Approvers:
        data = _map(raw)
        return Approvers(
            role=_str(data.get("role")),
            users=_names(data.get("users")),
            manager_of=_str(data.get("manager_of")),
            levels=_int(data.get("levels")) or 1,
            field=_str(data.get("field")),
            formula=self.formula(data.get("formula"), (*path, "formula")),
        )

    def action(self, raw: Any, path: Path) -> FlowAction:
        data = _map(raw)
        return FlowAction(
            set=self.values(data.get("set"), (*path, "set")),
            return_to=_str(data.get("return_to")),
            require_comment=_bool(data.get("require_comment")),
            notify=_names(data.get("notify")),
        )

    # -- KPIs, dashboards, automations ------------------------------------------------
    def kpi(self, name: str, raw: Any, path: Path) -> Kpi:
        data = _map(raw)
        measure = self.formula(data.get("measure"), (*path, "measure"))
        return Kpi(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            entity=_str(data.get("entity")) or "",
            measure=measure or Formula("0", self.key_at(path)),
            location=self.key_at(path),
            where=self.formula(data.get("where"), (*path, "where")),
            date=_str(data.get("date")),
            by=_names(data.get("by")),
            target=self.target(data.get("target"), (*path, "target")),
            format=_str(data.get("format")) or "number",
            description=_text(data.get("description")),
            better=_str(data.get("better")) or "higher",
        )

    def target(self, raw: Any, path: Path) -> Target | None:
        if _number(raw) is not None:
            return Target(value=raw)
        if not isinstance(raw, dict):
            return None
        return Target(
            value=_number(raw.get("value")),
            entity=_str(raw.get("entity")),
            measure=self.formula(raw.get("measure"), (*path, "measure")),
            match=frozen_map(
                {k: v for k, v in _map(raw.get("match")).items() if isinstance(v, str)}
            ),
            date=_str(raw.get("date")),
        )

    def dashboard(self, name: str, raw: Any, path: Path) -> Dashboard:
        data = _map(raw)
        widgets = []
        for index, item in enumerate(_list(data.get("widgets"))):
            w = _map(item)
            widgets.append(
                Widget(
                    kind=_str(w.get("kind")) or "",
                    kpi=_str(w.get("kpi")),
                    label=_text(w.get("label")),
                    by=_names(w.get("by")),
                    period=_str(w.get("period")),
                    limit=_int(w.get("limit")),
                    width=_int(w.get("width")) or 1,
                    location=self.at((*path, "widgets", index)),
                )
            )
        return Dashboard(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            widgets=tuple(widgets),
            roles=_names(data.get("roles")),
            filters=_names(data.get("filters")),
            location=self.key_at(path),
        )

    # -- forecasts and commission plans ---------------------------------------------
    def forecast(self, name: str, raw: Any, path: Path) -> Forecast:
        data = _map(raw)
        history = _map(data.get("history"))
        return Forecast(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            entity=_str(data.get("entity")) or "",
            amount=_str(data.get("amount")) or "",
            stage=_str(data.get("stage")) or "",
            date=_str(data.get("date")) or "",
            probability=self.formula(data.get("probability"), (*path, "probability")),
            categories=frozen_map({c: _names(v) for c, v in _map(data.get("categories")).items()}),
            override=_str(data.get("override")),
            history_months=_int(history.get("months")) or 12,
            description=_text(data.get("description")),
            location=self.key_at(path),
        )

    def pay_terms(self, raw: Any, path: Path, base: PayTerms | None = None) -> PayTerms:
        data = _map(raw)
        tiers = []
        for index, item in enumerate(_list(data.get("tiers"))):
            t = _map(item)
            rate, upto = _number(t.get("rate")), _number(t.get("upto"))
            tiers.append(
                Tier(
                    rate=Decimal(str(rate)) if rate is not None else Decimal(0),
                    upto=Decimal(str(upto)) if upto is not None else None,
                    location=self.at((*path, "tiers", index)),
                )
            )
        cap = _number(data.get("cap"))
        return PayTerms(
            tiers=tuple(tiers) if tiers or base is None else base.tiers,
            mode=_str(data.get("mode")) or (base.mode if base else "marginal"),
            cap=Decimal(str(cap)) if cap is not None else (base.cap if base else None),
        )

    def commission(self, name: str, raw: Any, path: Path) -> CommissionPlan:
        data = _map(raw)
        terms = self.pay_terms(data, path)
        return CommissionPlan(
            name=name,
            label=_text(data.get("label")) or Text.of(name),
            kpi=_str(data.get("kpi")) or "",
            terms=terms,
            roles=_names(data.get("roles")),
            period=_str(data.get("period")) or "month",
            by_role=frozen_map(
                {
                    role: self.pay_terms(v, (*path, "by_role", role), terms)
                    for role, v in _map(data.get("by_role")).items()
                }
            ),
            description=_text(data.get("description")),
            location=self.key_at(path),
        )

    def automation(self, name: str, raw: Any, path: Path) -> Automation:
        data = _map(raw)
        actions = []
        for index, item in enumerate(_list(data.get("actions"))):
            for kind, params in _map(item).items():
                actions.append(
                    AutomationAction(
                        kind=kind,
                        params=self.action_params(kind, params, (*path, "actions", index, kind)),
                        location=self.at((*path, "actions", index)),
                    )
                )
        return Automation(
            name=name,
            entity=_str(data.get("entity")) or "",
            on=_str(data.get("on")) or "",
            actions=tuple(actions),
            label=_text(data.get("label")) or Text.of(name),
            when=self.formula(data.get("when"), (*path, "when")),
            flow=_str(data.get("flow")),
            date_field=_str(data.get("date_field")),
            offset=parse_duration(data.get("offset")),
            location=self.key_at(path),
        )

    def recipient(self, raw: Any, path: Path) -> Recipient | None:
        where = self.at(path)
        name = _name(raw)
        if name is not None:
            return Recipient(name=name, location=where)
        data = _map(raw)
        if _str(data.get("manager_of")) is not None:
            return Recipient(
                manager_of=_str(data.get("manager_of")),
                levels=_int(data.get("levels")) or 1,
                location=where,
            )
        users = _names(data.get("users"))
        return Recipient(users=users, location=where) if users else None

    def action_params(self, kind: str, raw: Any, path: Path) -> Mapping[str, Any]:
        data = _map(raw)
        if kind == "set":
            return self.values(data, path)
        if kind == "create":
            return frozen_map(
                {
                    "entity": _str(data.get("entity")) or "",
                    "values": self.values(data.get("values"), (*path, "values")),
                }
            )
        if kind == "notify":
            to = tuple(
                r
                for r in (
                    self.recipient(item, (*path, "to", index))
                    for index, item in enumerate(_list(data.get("to")))
                )
                if r is not None
            )
            return frozen_map({"to": to, "message": _text(data.get("message"))})
        if kind == "webhook":
            return frozen_map(
                {"url": _str(data.get("url")) or "", "secret_env": _str(data.get("secret_env"))}
            )
        return freeze(data)  # type: ignore[no-any-return]


def _label(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, dict) and bool(set(value) & {"zh", "en"}))


def _text(value: Any) -> Text:
    """A label: text or a {zh, en} map; anything else is no text."""
    if isinstance(value, str):
        return Text.of(value)
    if isinstance(value, dict):
        zh, en = value.get("zh"), value.get("en")
        return Text(zh=zh if isinstance(zh, str) else None, en=en if isinstance(en, str) else None)
    return Text()


def build(doc: Doc, refused: frozenset[Path] = frozenset()) -> Blueprint:
    """The model of the merged raw document ``doc`` (no checks, no compiling).

    ``refused``: paths of values the schema refused (and reported); the kind
    specific keys of a field found there are left out of the model.
    """
    return Builder(doc, refused).blueprint()
