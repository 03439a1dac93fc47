"""Running one test case through the engine's real services.

Each case gets an empty database (:mod:`engine.testing.databases`) and the
services of :func:`engine.runtime.build_runtime` on it, with the clock frozen
at the case's ``now``. Then, in this order:

1. ``users``: created through :class:`~engine.users.UserService` (managers
   first); every other user the case names (the acting user, ``owner`` and
   user-field values, approvers) is created too, with the case's ``role``;
2. ``given``: records created by the engine (``via="system"``) in the order
   written, owned by the acting user unless they say ``owner``; a ref is the
   title of a record (or its local ``id:`` key);
3. the write (``create`` / ``update`` / ``delete``) as the acting user, through
   the record service exactly as a form would;
4. ``submit``, then each ``approve``, ``return``, ``reject`` as the named user,
   through the flow service;
5. the expectations: ``expect_error`` against the first refusal, ``expect``
   against the record as stored now, ``expect_flow``, ``expect_kpi``.

A case *fails* when an expectation does not hold (each difference is a
:class:`Mismatch`: what, expected, actual, where it was written), and is an
*error* when it cannot run: a problem in the case itself, or ``given`` data
the blueprint refuses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from engine.errors import FormflowError, Location, Problem, RecordInvalid
from engine.i18n import T, Text
from engine.loading.describe import did_you_mean
from engine.model import Blueprint, Entity, Field
from engine.records import SYSTEM, Actor, Record
from engine.runtime import Runtime, build_runtime
from engine.settings import Settings
from engine.storage.query import Query
from engine.storage.schema import Schema, build_schema
from engine.testing.cases import Case, Suite
from engine.testing.compare import plain, same
from engine.testing.databases import Databases
from engine.users import ADMIN_ROLE

__all__ = ["Mismatch", "Outcome", "run_case", "run_suite"]

STATUSES = ("passed", "failed", "error", "skipped")
_NOW = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
#: The comment a shorthand ``reject: wang`` / ``return: wang`` gives.
DEFAULT_COMMENT = "测试 / test"


@dataclass(frozen=True)
class Mismatch:
    """One expectation that did not hold."""

    what: str
    expected: Any
    actual: Any
    location: Location
    note: str = ""


@dataclass
class Outcome:
    """What came of one case."""

    case: Case
    status: str  # one of STATUSES
    mismatches: list[Mismatch] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    checked: list[str] = field(default_factory=list)  # what held (for -v)
    reason: str = ""  # a skipped case's reason


class CaseError(Exception):
    """The case cannot go on: reported as an error at ``problem.location``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message.get("en"))
        self.problem = problem


class _Refused(Exception):
    """A write or flow action the engine refused: ``errors`` field -> messages."""

    def __init__(self, action: str, errors: Mapping[str, list[Text]]) -> None:
        super().__init__(action)
        self.action = action
        self.errors = dict(errors)


def _errors_of(exc: FormflowError) -> dict[str, list[Text]]:
    if isinstance(exc, RecordInvalid):
        return {k: list(v) for k, v in exc.errors.items()}
    return {"_record": [exc.text]}


class FrozenClock:
    """The runtime's clock: a fixed moment, or the real time when none was given."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


def parse_now(text: Any, tz: ZoneInfo) -> datetime | None:
    """``now:`` as an aware datetime: a date is noon of that day in the business zone."""
    match = _NOW.match(str(text).strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour) if hour is not None else 12,
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
    return moment.astimezone(UTC)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class _CaseRun:
    """The state of one case while it runs."""

    def __init__(self, blueprint: Blueprint, case: Case, runtime: Runtime, clock: FrozenClock):
        self.bp = blueprint
        self.case = case
        self.spec = case.spec
        self.rt = runtime
        self.clock = clock
        self.tz = ZoneInfo(blueprint.timezone)
        self.local: dict[str, tuple[str, int]] = {}  # local id key -> (entity, id)
        self.titles: dict[tuple[str, str], int] = {}  # (entity, title) -> id
        self.given_ids: dict[str, list[int]] = {}
        self.users: dict[str, Actor] = {}
        self.actor: Actor = SYSTEM
        self.subject: tuple[str, int] | None = None
        self.flow_name: str | None = None
        self.refusal: _Refused | None = None
        self.mismatches: list[Mismatch] = []
        self.checked: list[str] = []

    # -- helpers ----------------------------------------------------------------------------
    def error(self, where: Location, message: Text, hint: Text | None = None) -> CaseError:
        return CaseError(Problem(where, message, hint or Text()))

    def mismatch(
        self, what: str, expected: Any, actual: Any, where: Location, note: str = ""
    ) -> None:
        self.mismatches.append(Mismatch(what, expected, actual, where, note))

    # -- 1. users ---------------------------------------------------------------------------
    def default_roles(self) -> list[str]:
        role = self.spec.get("role")
        if role:
            return [str(role)]
        return [next(iter(self.bp.roles), ADMIN_ROLE)]

    def named_users(self) -> list[str]:
        """Every user name the case mentions, in first-mention order."""
        names: list[str] = []
        spec = self.spec
        acting = spec.get("user") or spec.get("role") or ADMIN_ROLE
        names.append(str(acting))
        for name, user in (spec.get("users") or {}).items():
            names.append(str(name))
            if user and user.get("manager"):
                names.append(str(user["manager"]))
        for entity_name, records in (spec.get("given") or {}).items():
            for values in _as_list(records):
                names.extend(self._user_values(entity_name, values))
        for key in ("create",):
            for entity_name, values in (spec.get(key) or {}).items():
                names.extend(self._user_values(entity_name, values))
        for entity_name, body in (spec.get("update") or {}).items():
            if isinstance(body, Mapping):
                names.extend(self._user_values(entity_name, body.get("set") or {}))
        submit = spec.get("submit")
        if isinstance(submit, Mapping) and submit.get("as"):
            names.append(str(submit["as"]))
        for key in ("approve", "reject", "return"):
            for decision in self.decisions(key):
                names.append(decision["as"])
        for item in _as_list(spec.get("expect_kpi")):
            if isinstance(item, Mapping) and item.get("as"):
                names.append(str(item["as"]))
        return list(dict.fromkeys(n for n in names if n))

    def _user_values(self, entity_name: str, values: Any) -> list[str]:
        entity = self.bp.entities.get(entity_name)
        if entity is None or not isinstance(values, Mapping):
            return []
        out = []
        for key, value in values.items():
            f = entity.fields.get(key)
            is_user = key == "owner" or (f is not None and f.kind == "user")
            if is_user and isinstance(value, str) and not value.startswith("="):
                out.append(value)
        return out

    def make_users(self) -> None:
        declared: dict[str, Mapping[str, Any]] = {
            str(k): (v or {}) for k, v in (self.spec.get("users") or {}).items()
        }
        spec = self.spec
        acting = str(spec.get("user") or spec.get("role") or ADMIN_ROLE)
        wanted = self.named_users()
        created: set[str] = set()

        def roles_of(name: str) -> list[str]:
            if name in declared and declared[name].get("roles"):
                return [str(r) for r in declared[name]["roles"]]
            if name == acting and not spec.get("user") and not spec.get("role"):
                return [ADMIN_ROLE]
            return self.default_roles()

        def add(name: str, chain: tuple[str, ...] = ()) -> None:
            if name in created:
                return
            if name in chain:
                raise self.error(
                    self.case.key_at("users", name),
                    T(
                        f"上级关系形成循环：{' → '.join((*chain, name))}",
                        f"the managers form a cycle: {' → '.join((*chain, name))}",
                    ),
                )
            manager = declared.get(name, {}).get("manager")
            if manager:
                add(str(manager), (*chain, name))
            info = declared.get(name, {})
            try:
                user = self.rt.users.add(
                    name,
                    roles=roles_of(name),
                    manager=str(manager) if manager else None,
                    display_name=info.get("display_name"),
                )
            except RecordInvalid as exc:
                where = self.case.key_at("users", name) if name in declared else self.case.location
                raise self.error(
                    where,
                    T(
                        f"不能创建用户 {name}：{exc.text.get('zh')}",
                        f"cannot create the user {name}: {exc.text.get('en')}",
                    ),
                ) from None
            created.add(name)
            self.users[name] = user.actor

        for name in [*declared, *wanted]:
            add(name)
        self.actor = self.users[acting]

    def actor_of(self, name: str) -> Actor:
        return self.users[name]

    # -- values -----------------------------------------------------------------------------
    def resolve_ref(self, target: str, value: Any, where: Location) -> int:
        """The id of the ``target`` record a case names by local key or title."""
        key = str(value)
        if key in self.local and self.local[key][0] == target:
            return self.local[key][1]
        if (target, key) in self.titles:
            return self.titles[(target, key)]
        entity = self.bp.entities[target]
        if entity.title_field:
            page = self.rt.records.list_records(target, Query(limit=500), actor=SYSTEM)
            for row in page.rows:
                if str(row.get(entity.title_field)) == key:
                    return int(row["id"])
        known = [k for k, (e, _) in self.local.items() if e == target]
        known += [t for (e, t) in self.titles if e == target]
        raise self.error(
            where,
            T(
                f"找不到标题或 id 为 '{key}' 的 {target} 记录",
                f"no {target} record has the title or id '{key}'",
            ),
            did_you_mean(
                key,
                known,
                T(f"先在 given 中给出这条 {target}", f"give that {target} under given first"),
            ),
        )

    def values(self, entity: Entity, data: Mapping[str, Any], *path: Any) -> dict[str, Any]:
        """The data a case wrote, with refs resolved to ids and floats read exactly."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "id":
                continue
            f = entity.fields.get(key)
            out[key] = self.value(f, value, (*path, key))
        return out

    def value(self, f: Field | None, value: Any, path: tuple[Any, ...]) -> Any:
        if f is None or value is None:
            return value
        if (
            f.kind == "ref"
            and f.to
            and isinstance(value, str | int)
            and not isinstance(value, bool)
        ):
            return self.resolve_ref(f.to, value, self.case.at(*path))
        if f.is_table and isinstance(value, list):
            rows = []
            for i, row in enumerate(value):
                if isinstance(row, Mapping):
                    rows.append(
                        {k: self.value(f.fields.get(k), v, (*path, i, k)) for k, v in row.items()}
                    )
                else:
                    rows.append(row)
            return rows
        if isinstance(value, float):
            return repr(value)
        return value

    def remember(self, entity: Entity, record: Record, local: Any) -> None:
        if local is not None:
            self.local[str(local)] = (entity.name, record.id)
        if entity.title_field and record.get(entity.title_field) is not None:
            self.titles[(entity.name, str(record.get(entity.title_field)))] = record.id

    # -- 2. given ---------------------------------------------------------------------------
    def given(self) -> None:
        for entity_name, records in (self.spec.get("given") or {}).items():
            entity = self.bp.entities[entity_name]
            many = isinstance(records, list)
            for i, data in enumerate(_as_list(records)):
                path = ("given", entity_name, i) if many else ("given", entity_name)
                values = self.values(entity, data, *path)
                values.setdefault("owner", self.actor.name)
                try:
                    record = self.rt.records.create(entity_name, values, actor=SYSTEM, via="system")
                except FormflowError as exc:
                    details = "; ".join(
                        f"{k}: {m.get('en')}" for k, ms in _errors_of(exc).items() for m in ms
                    )
                    details_zh = "；".join(
                        f"{k}：{m.get('zh')}" for k, ms in _errors_of(exc).items() for m in ms
                    )
                    raise self.error(
                        self.case.at(*path),
                        T(
                            f"预置的 {entity_name} 记录被拒绝：{details_zh}",
                            f"the given {entity_name} record was refused: {details}",
                        ),
                        T(
                            "预置数据也必须符合蓝图的规则",
                            "given data must follow the blueprint's rules too",
                        ),
                    ) from None
                self.remember(entity, record, data.get("id"))
                self.given_ids.setdefault(entity_name, []).append(record.id)

    # -- 3. the write -----------------------------------------------------------------------
    def find(self, entity: Entity, body: Any, *path: Any) -> int:
        if not isinstance(body, Mapping):
            return self.resolve_ref(entity.name, body, self.case.at(*path))
        if "id" in body:
            return self.resolve_ref(entity.name, body["id"], self.case.at(*path, "id"))
        if "title" in body:
            return self.resolve_ref(entity.name, body["title"], self.case.at(*path, "title"))
        match = body.get("match") or {}
        page = self.rt.records.list_records(entity.name, Query(limit=500), actor=SYSTEM)
        wanted = self.values(entity, match, *path, "match")
        for row in page.rows:
            if all(same(entity.fields.get(k), v, row.get(k), self.tz) for k, v in wanted.items()):
                return int(row["id"])
        raise self.error(
            self.case.at(*path, "match"),
            T(f"没有符合 match 的 {entity.name} 记录", f"no {entity.name} record matches"),
        )

    def write(self) -> None:
        spec = self.spec
        records = self.rt.records
        try:
            if spec.get("create") is not None:
                ((name, data),) = spec["create"].items()
                entity = self.bp.entities[name]
                values = self.values(entity, data or {}, "create", name)
                record = records.create(name, values, actor=self.actor, via="form")
                self.remember(entity, record, (data or {}).get("id"))
                self.subject = (name, record.id)
            elif spec.get("update") is not None:
                ((name, body),) = spec["update"].items()
                entity = self.bp.entities[name]
                record_id = self.find(entity, body, "update", name)
                self.subject = (name, record_id)
                current = records.get(name, record_id, actor=SYSTEM)
                values = self.values(entity, body.get("set") or {}, "update", name, "set")
                record = records.update(
                    name, record_id, values, version=current.version, actor=self.actor, via="form"
                )
                self.remember(entity, record, None)
            elif spec.get("delete") is not None:
                ((name, body),) = spec["delete"].items()
                entity = self.bp.entities[name]
                record_id = self.find(entity, body, "delete", name)
                current = records.get(name, record_id, actor=SYSTEM)
                records.delete(
                    name, record_id, version=current.version, actor=self.actor, via="form"
                )
        except FormflowError as exc:
            action = next(k for k in ("create", "update", "delete") if spec.get(k) is not None)
            raise _Refused(action, _errors_of(exc)) from None

    # -- 4. the flow ------------------------------------------------------------------------
    def decisions(self, key: str) -> list[dict[str, Any]]:
        out = []
        for item in _as_list(self.spec.get(key)):
            if isinstance(item, str):
                out.append({"as": item, "comment": DEFAULT_COMMENT if key != "approve" else None})
            elif isinstance(item, Mapping):
                out.append({**item, "as": str(item.get("as"))})
        return out

    def flow(self) -> None:
        submit = self.spec.get("submit")
        if submit is None:
            return
        options = submit if isinstance(submit, Mapping) else {"flow": submit}
        fl = self.bp.flows[str(options["flow"])]
        self.flow_name = fl.name
        if self.subject is None or self.subject[0] != fl.entity:
            ids = self.given_ids.get(fl.entity) or []
            if not ids:
                raise self.error(
                    self.case.at("submit"),
                    T(
                        f"没有可提交的 {fl.entity} 记录",
                        f"there is no {fl.entity} record to submit",
                    ),
                )
            self.subject = (fl.entity, ids[-1])
        entity, record_id = self.subject
        submitter = self.actor_of(str(options["as"])) if options.get("as") else self.actor
        flows = self.rt.flows
        try:
            flows.submit(
                entity, record_id, actor=submitter, flow=fl.name, comment=options.get("comment")
            )
        except FormflowError as exc:
            raise _Refused("submit", _errors_of(exc)) from None
        steps = [("approve", d) for d in self.decisions("approve")]
        steps += [("return", d) for d in self.decisions("return")]
        steps += [("reject", d) for d in self.decisions("reject")]
        for i, (kind, decision) in enumerate(steps):
            name = decision["as"]
            state = flows.state(entity, record_id, actor=SYSTEM, flow=fl.name)
            mine = [t for t in state.open_tasks if t.approver == name]
            if not mine:
                asked = sorted({t.approver or "" for t in state.open_tasks})
                where = (
                    self.case.at(kind, i)
                    if isinstance(self.spec.get(kind), list)
                    else self.case.at(kind)
                )
                self.mismatch(
                    f"{kind} {name}",
                    f"{name} has an open task",
                    f"step {state.current_step or '-'} asks {', '.join(asked) or 'nobody'} "
                    f"(flow {state.state})",
                    where,
                )
                return
            actor = self.actor_of(name)
            comment = decision.get("comment")
            try:
                if kind == "approve":
                    values = decision.get("values") or {}
                    resolved = self.values(self.bp.entities[entity], values, kind, "values")
                    flows.approve(mine[0].id, actor=actor, comment=comment, values=resolved)
                elif kind == "reject":
                    flows.reject(mine[0].id, actor=actor, comment=comment)
                else:
                    flows.return_to(
                        mine[0].id,
                        str(decision.get("to") or "submitter"),
                        actor=actor,
                        comment=comment,
                    )
            except FormflowError as exc:
                raise _Refused(kind, _errors_of(exc)) from None

    # -- 5. expectations --------------------------------------------------------------------
    def expect_error(self) -> None:
        spec = self.spec
        expected = spec.get("expect_error")
        refusal = self.refusal
        if expected is None or expected is False:
            if refusal is not None:
                for name, messages in refusal.errors.items():
                    for message in messages:
                        self.mismatch(
                            f"{refusal.action} {name}",
                            "accepted",
                            message.get("en"),
                            self.case.key_at(refusal.action)
                            if refusal.action in spec
                            else self.case.location,
                            message.get("zh"),
                        )
            return
        where = self.case.key_at("expect_error")
        if refusal is None:
            self.mismatch("expect_error", "refused", "accepted (nothing was refused)", where)
            return
        items = (
            [expected]
            if isinstance(expected, Mapping)
            else ([] if expected is True else list(expected))
        )
        got = {
            name: [m.get("zh") + " / " + m.get("en") for m in ms]
            for name, ms in refusal.errors.items()
        }
        for i, item in enumerate(items):
            here = self.case.at("expect_error", i) if isinstance(expected, list) else where
            field_name = item.get("field")
            contains = item.get("message_contains")
            pool = (
                got.get(str(field_name), [])
                if field_name is not None
                else [m for ms in got.values() for m in ms]
            )
            shown = "; ".join(f"{k}: {' | '.join(v)}" for k, v in got.items())
            if field_name is not None and not pool:
                wanted = f"an error on {field_name}"
                self.mismatch(f"expect_error {field_name}", wanted, shown, here)
            elif contains is not None and not any(str(contains).lower() in m.lower() for m in pool):
                self.mismatch(
                    f"expect_error {field_name or ''}".strip(),
                    f"a message containing '{contains}'",
                    shown,
                    here,
                )
            else:
                self.checked.append(f"expect_error {field_name or contains}")

    def expect(self) -> None:
        expected = self.spec.get("expect")
        if not expected or self.subject is None:
            return
        entity_name, record_id = self.subject
        entity = self.bp.entities[entity_name]
        record = self.rt.records.get(entity_name, record_id, actor=SYSTEM)
        for key, want in expected.items():
            f = entity.fields.get(key)
            actual = record.get(key)
            where = self.case.at("expect", key)
            if f is not None and f.kind == "ref" and f.to and want is not None:
                try:
                    want_id: Any = self.resolve_ref(f.to, want, where)
                except CaseError:
                    want_id = None
                titles = self.rt.records.title_values(f.to, [actual] if actual else [])
                shown = titles.get(actual, actual) if actual is not None else None
                if want_id != actual:
                    self.mismatch(key, want, shown, where)
                else:
                    self.checked.append(key)
                continue
            if same(f, want, actual, self.tz):
                self.checked.append(key)
            else:
                self.mismatch(key, want, plain(actual, self.tz), where)

    def expect_flow(self) -> None:
        expected = self.spec.get("expect_flow")
        if not expected or self.subject is None:
            return
        name = str(expected.get("flow") or self.flow_name or "")
        entity, record_id = self.subject
        flow = self.bp.flows.get(name) or next(
            (f for f in self.bp.flows.values() if f.entity == entity), None
        )
        if flow is None:
            return
        state = self.rt.flows.state(entity, record_id, actor=SYSTEM, flow=flow.name)
        views = [*state.path, *state.next_steps]
        actual = {
            "status": state.state,
            "step": state.current_step,
            "approvers": sorted({t.approver for t in state.open_tasks if t.approver}),
            "path": [s.name for s in state.path if s.state != "skipped"],
            "skipped": [s.name for s in views if s.state == "skipped"],
        }
        for key, want in expected.items():
            if key == "flow":
                continue
            got = actual[key]
            where = self.case.at("expect_flow", key)
            if key == "approvers":
                ok = sorted(map(str, _as_list(want))) == got
            elif key in ("path", "skipped"):
                ok = [str(w) for w in _as_list(want)] == got
            elif key == "status":
                status_value = self.rt.records.get(entity, record_id).get(flow.status_field)
                ok = str(want) in (got, str(status_value))
            else:
                ok = (None if want is None else str(want)) == got
            if ok:
                self.checked.append(f"flow {key}")
            else:
                self.mismatch(f"flow {key}", want, got, where)

    def expect_kpi(self) -> None:
        from engine.testing.kpis import check_kpis

        check_kpis(self)

    # -- all of it --------------------------------------------------------------------------
    def run(self) -> None:
        if self.spec.get("now") is not None:
            moment = parse_now(self.spec["now"], self.tz)
            if moment is None:
                raise self.error(
                    self.case.at("now"),
                    T(
                        f"无法识别的时间 '{self.spec['now']}'",
                        f"cannot read the time '{self.spec['now']}'",
                    ),
                    T(
                        '写成 "2024-06-30" 或 "2024-06-30 09:30"',
                        'write "2024-06-30" or "2024-06-30 09:30"',
                    ),
                )
            self.clock.at = moment
        self.make_users()
        self.given()
        try:
            self.write()
            self.flow()
        except _Refused as refused:
            self.refusal = refused
        self.expect_error()
        if self.spec.get("delete") is None:
            self.expect()
            self.expect_flow()
        self.expect_kpi()


def run_case(
    blueprint: Blueprint, case: Case, databases: Databases, *, schema: Schema | None = None
) -> Outcome:
    """Run one case in a database of its own."""
    started = time.perf_counter()
    skip = case.spec.get("skip")
    if skip:
        return Outcome(case, "skipped", reason="" if skip is True else str(skip))
    if case.problems:
        return Outcome(case, "error", problems=list(case.problems))
    clock = FrozenClock()
    try:
        with databases.fresh() as engine:
            runtime = _runtime(blueprint, engine, schema or databases.schema, clock)
            run = _CaseRun(blueprint, case, runtime, clock)
            run.run()
    except CaseError as exc:
        return Outcome(case, "error", problems=[exc.problem], seconds=time.perf_counter() - started)
    except FormflowError as exc:
        problem = Problem(
            case.location,
            exc.text,
            T("这是蓝图或引擎的问题", "a problem of the blueprint or the engine"),
        )
        return Outcome(case, "error", problems=[problem], seconds=time.perf_counter() - started)
    except Exception as exc:  # a bug in Formflow: this case errs, the others still run
        name = type(exc).__name__
        problem = Problem(
            case.location,
            T(
                f"formflow 内部错误（请报告此问题）：{name}: {exc}",
                f"formflow internal error (please report this bug): {name}: {exc}",
            ),
        )
        return Outcome(case, "error", problems=[problem], seconds=time.perf_counter() - started)
    status = "failed" if run.mismatches else "passed"
    return Outcome(
        case,
        status,
        mismatches=run.mismatches,
        seconds=time.perf_counter() - started,
        checked=run.checked,
    )


def _runtime(
    blueprint: Blueprint, engine: Engine, schema: Schema, clock: Callable[[], datetime]
) -> Runtime:
    settings = Settings.from_config({}, environ={})
    return build_runtime(blueprint, engine, schema=schema, settings=settings, clock=clock)


def selected(suite: Suite, keyword: str | None) -> list[Case]:
    """The cases whose name contains ``keyword`` (case-insensitive), all without one."""
    if not keyword:
        return list(suite.cases)
    word = keyword.casefold()
    return [c for c in suite.cases if word in c.name.casefold()]


def run_suite(
    suite: Suite,
    *,
    db_url: str | None = None,
    keyword: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the suite's (selected) cases in order; ``on_outcome`` hears each as it ends."""
    if suite.blueprint is None:
        return []
    outcomes = []
    with Databases(suite.blueprint, build_schema(suite.blueprint), db_url) as databases:
        for case in selected(suite, keyword):
            outcome = run_case(suite.blueprint, case, databases)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes
