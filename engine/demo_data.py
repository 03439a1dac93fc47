"""Demo data of any template: a ``demo.yaml`` beside the blueprint (docs/demo-data.md).

``formflow serve PATH --demo`` seeds it (through :func:`engine.demo.seed_demo`) when
the blueprint's folder holds one. The file names users (with roles and managers),
records per entity, and approvals to replay::

    users:
      - {name: wang.fang, display_name: 王芳, roles: [sales_manager], manager: zhou.min}
    records:
      course:
        - {name: 新员工入职培训, category: new_hire, hours: 16, owner: zheng.hong}
      session:
        - {name: 第 1 期, course: 新员工入职培训, start_date: today+5d, end_date: today+6d}
    flows:
      - {entity: budget_request, record: 销售谈判外训, submit: li.lei,
         decisions: [{approve: wang.fang, comment: 同意}]}

Every write goes through the services of :func:`engine.runtime.build_runtime`
(the record service with ``via="system"``, the flow service as the named users),
so the blueprint's rules, formulas, autonumbers and automations apply exactly as
they do for people. Entities are seeded in the order their references need
(a ``ref`` to another entity of the file comes first), records in file order.

Values are the record service's, with three conveniences: a ``ref`` names the
target record by its title (or by the ``_key`` a record of the file was given),
dates and date-times may be relative to the day of seeding (:func:`relative_date`),
and ``owner`` names the user who owns the record. Any problem - a syntax error,
an unknown entity, field or user, a reference that finds nothing, a record the
blueprint refuses, a flow step that cannot be taken - is a
:class:`~engine.errors.DemoDataInvalid` naming ``demo.yaml:line:column``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from engine.demo import DEMO_PASSWORD
from engine.errors import BlueprintError, DemoDataInvalid, FormflowError, Location, Problem
from engine.i18n import T, Text
from engine.loading.positions import Pos
from engine.model import Blueprint, Entity
from engine.model import Field as ModelField
from engine.records import SYSTEM
from engine.runtime import Runtime, build_runtime
from engine.storage.migrate import initialise
from engine.yamlsafe import parse_yaml

__all__ = [
    "DEMO_FILE",
    "DemoSummary",
    "demo_file",
    "load_demo_file",
    "relative_date",
    "seed_demo_file",
    "signin_lines",
]

#: The file a template's demo data lives in, beside its blueprint.
DEMO_FILE = "demo.yaml"

_ANCHORS = ("today", "now", "month_start", "month_end", "quarter_start", "year_start")
_RELATIVE = re.compile(
    r"\A(?P<anchor>today|now|month_start|month_end|quarter_start|year_start)"
    r"(?P<offsets>(?:\s*[+-]\s*\d+\s*[dwmy])*)"
    r"(?:\s+(?P<hour>\d{1,2}):(?P<minute>\d{2}))?\s*\Z"
)
_OFFSET = re.compile(r"([+-])\s*(\d+)\s*([dwmy])")

_TOP_KEYS = ("users", "records", "flows")
_USER_KEYS = ("name", "display_name", "roles", "manager", "email", "locale")
_FLOW_KEYS = ("entity", "record", "flow", "submit", "comment", "decisions")
_DECISIONS = ("approve", "reject", "return")
_DECISION_KEYS = (*_DECISIONS, "comment", "values", "to")


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def relative_date(text: Any, today: date) -> tuple[date, time | None] | None:
    """The day (and time of day) a relative date names, or None when ``text`` is not one.

    Grammar: an anchor - ``today``, ``now``, ``month_start``, ``month_end``,
    ``quarter_start``, ``year_start`` - then any number of offsets ``+N`` / ``-N``
    with a unit ``d`` (days), ``w`` (weeks), ``m`` (months, clamped to the month's
    end) or ``y`` (years), then optionally a time ``HH:MM``:
    ``today+5d``, ``month_start-1m``, ``today-2w 09:30``, ``year_start+3m+14d``.
    Offsets apply left to right.
    """
    if not isinstance(text, str):
        return None
    match = _RELATIVE.match(text.strip())
    if match is None:
        return None
    anchor = match["anchor"]
    day = today
    if anchor == "month_start":
        day = today.replace(day=1)
    elif anchor == "month_end":
        day = _add_months(today.replace(day=1), 1) - timedelta(days=1)
    elif anchor == "quarter_start":
        day = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    elif anchor == "year_start":
        day = date(today.year, 1, 1)
    for sign, amount, unit in _OFFSET.findall(match["offsets"] or ""):
        n = int(amount) * (1 if sign == "+" else -1)
        if unit == "d":
            day += timedelta(days=n)
        elif unit == "w":
            day += timedelta(weeks=n)
        elif unit == "m":
            day = _add_months(day, n)
        else:
            day = _add_months(day, 12 * n)
    at: time | None = None
    if match["hour"] is not None:
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour > 23 or minute > 59:
            return None
        at = time(hour, minute)
    return day, at


def demo_file(blueprint: Blueprint) -> Path | None:
    """The ``demo.yaml`` of the blueprint's folder, if there is one.

    A fork (``extends:``) may have its own; without one it gets the demo data of
    the template it extends (the nearest one up the ``extends`` chain).
    """
    folders: list[Path] = []
    for source in blueprint.source_files:  # bases first, the overlay last
        folder = Path(source).parent
        if folder not in folders:
            folders.append(folder)
    for folder in reversed(folders):
        path = folder / DEMO_FILE
        if path.is_file():
            return path
    return None


def load_demo_file(path: Path) -> tuple[Any, Pos]:
    """The values of a demo file and where each was written (syntax problems raised)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoDataInvalid(
            [Problem(Location(str(path)), T(f"无法读取演示数据：{exc}", f"cannot read: {exc}"))]
        ) from None
    try:
        return parse_yaml(text, str(path))
    except BlueprintError as exc:
        raise DemoDataInvalid(exc.problems) from None


@dataclass
class DemoSummary:
    """What a demo file seeded: the users (in order) and records per entity."""

    users: list[str] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    flows: int = 0


class _Stop(Exception):
    """Problems found: stop seeding (raised as DemoDataInvalid by the caller)."""


@dataclass
class _Seeder:
    blueprint: Blueprint
    runtime: Runtime
    data: Any
    pos: Pos
    today: date
    problems: list[Problem] = field(default_factory=list)
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)
    titles: dict[str, dict[str, int]] = field(default_factory=dict)
    summary: DemoSummary = field(default_factory=DemoSummary)

    # -------------------------------------------------------------- problems
    def at(self, path: tuple[Any, ...]) -> Location:
        return self.pos.locate(path)

    def problem(
        self, path: tuple[Any, ...], message: Text, hint: Text | None = None, *, key: bool = False
    ) -> None:
        """A problem at the value of ``path`` (``key``: at the key naming it)."""
        where = self.pos.locate_key(path) if key else self.at(path)
        self.problems.append(Problem(where, message, hint or Text()))

    def check(self) -> None:
        if self.problems:
            raise _Stop

    # -------------------------------------------------------------- shape
    def shape(self) -> None:
        """Everything that can be checked before writing anything."""
        if self.data is None:
            self.data = {}
        if not isinstance(self.data, dict):
            self.problem(
                (),
                T(
                    "演示数据应是一个映射（users/records/flows）",
                    "demo data must be a mapping (users/records/flows)",
                ),
            )
            raise _Stop
        for key in self.data:
            if key not in _TOP_KEYS:
                self.problem(
                    (key,),
                    T(f"未知的键 '{key}'", f"unknown key '{key}'"),
                    T("可用的键：users、records、flows", "known keys: users, records, flows"),
                    key=True,
                )
        for index, user in enumerate(self._list("users")):
            self._unknown_keys(user, ("users", index), _USER_KEYS)
            if not isinstance(user, dict) or not isinstance(user.get("name"), str):
                self.problem(("users", index), T("每个用户都需要 name", "every user needs a name"))
            elif not isinstance(user.get("roles"), list) or not user["roles"]:
                self.problem(
                    ("users", index),
                    T(
                        f"用户 {user['name']} 需要 roles 列表",
                        f"user {user['name']} needs a list of roles",
                    ),
                )
        records = self.data.get("records") or {}
        if not isinstance(records, dict):
            self.problem(
                ("records",),
                T(
                    "records 应是 实体 → 记录列表 的映射",
                    "records must map each entity to a list of records",
                ),
            )
        else:
            for entity, rows in records.items():
                if entity not in self.blueprint.entities:
                    self.problem(
                        ("records", entity),
                        T(f"蓝图中没有实体 '{entity}'", f"the blueprint has no entity '{entity}'"),
                        _nearest(entity, self.blueprint.entities),
                        key=True,
                    )
                    continue
                if not isinstance(rows, list):
                    self.problem(
                        ("records", entity), T("应是记录列表", "must be a list of records")
                    )
                    continue
                et = self.blueprint.entities[entity]
                for index, row in enumerate(rows):
                    path: tuple[Any, ...] = ("records", entity, index)
                    if not isinstance(row, dict):
                        self.problem(
                            path,
                            T(
                                "每条记录应是 字段 → 值 的映射",
                                "each record must map fields to values",
                            ),
                        )
                        continue
                    for name in row:
                        if name in ("owner", "_key"):
                            continue
                        if name not in et.fields:
                            self.problem(
                                (*path, name),
                                T(
                                    f"实体 {entity} 没有字段 '{name}'",
                                    f"entity {entity} has no field '{name}'",
                                ),
                                _nearest(name, et.fields),
                                key=True,
                            )
        for index, flow in enumerate(self._list("flows")):
            path = ("flows", index)
            self._unknown_keys(flow, path, _FLOW_KEYS)
            if not isinstance(flow, dict):
                continue
            for required in ("entity", "record", "submit"):
                if not isinstance(flow.get(required), str):
                    self.problem(path, T(f"缺少 {required}", f"{required} is missing"))
            if (
                isinstance(flow.get("entity"), str)
                and flow["entity"] not in self.blueprint.entities
            ):
                self.problem(
                    (*path, "entity"),
                    T(
                        f"蓝图中没有实体 '{flow['entity']}'",
                        f"the blueprint has no entity '{flow['entity']}'",
                    ),
                )
            for d_index, decision in enumerate(flow.get("decisions") or []):
                d_path = (*path, "decisions", d_index)
                self._unknown_keys(decision, d_path, _DECISION_KEYS)
                kinds = [k for k in _DECISIONS if isinstance(decision, dict) and k in decision]
                if len(kinds) != 1:
                    self.problem(
                        d_path,
                        T(
                            "每个决定只能写 approve、reject、return 之一（值为用户名）",
                            "each decision names one of approve, reject, return (a user name)",
                        ),
                    )
        self.check()

    def _list(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem((key,), T(f"{key} 应是列表", f"{key} must be a list"))
            return []
        return value

    def _unknown_keys(self, value: Any, path: tuple[Any, ...], known: tuple[str, ...]) -> None:
        if not isinstance(value, dict):
            self.problem(path, T("应是一个映射", "must be a mapping"))
            return
        for key in value:
            if key not in known:
                self.problem(
                    (*path, key),
                    T(f"未知的键 '{key}'", f"unknown key '{key}'"),
                    T("可用的键：" + "、".join(known), "known keys: " + ", ".join(known)),
                    key=True,
                )

    # -------------------------------------------------------------- users
    def users(self) -> None:
        service = self.runtime.users
        allowed = service.allowed_roles()
        for index, user in enumerate(self._list("users")):
            path = ("users", index)
            roles = [r for r in user["roles"]]
            for r_index, role in enumerate(roles):
                if role not in allowed:
                    self.problem(
                        (*path, "roles", r_index),
                        T(f"蓝图中没有角色 '{role}'", f"the blueprint has no role '{role}'"),
                    )
            manager = user.get("manager")
            if manager is not None and manager not in self.summary.users:
                self.problem(
                    (*path, "manager"),
                    T(
                        f"上级 '{manager}' 须在此之前列出",
                        f"the manager '{manager}' must be listed before",
                    ),
                )
            if self.problems:
                continue
            try:
                service.add(
                    user["name"],
                    roles=roles,
                    manager=manager,
                    password=DEMO_PASSWORD,
                    display_name=user.get("display_name"),
                    email=user.get("email"),
                    locale=user.get("locale"),
                )
            except FormflowError as exc:
                self.problem(path, exc.text)
                continue
            self.summary.users.append(user["name"])
        self.check()

    # -------------------------------------------------------------- records
    def entity_order(self) -> list[str]:
        """The file's entities, each after the entities its references point at."""
        records = self.data.get("records") or {}
        written = list(records)
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order or name in visiting:
                return
            visiting.add(name)
            for target in _targets(self.blueprint.entities[name]):
                if target in records and target != name:
                    visit(target)
            visiting.discard(name)
            order.append(name)

        for name in written:
            visit(name)
        return order

    def records(self) -> None:
        records = self.data.get("records") or {}
        for entity in self.entity_order():
            et = self.blueprint.entities[entity]
            for index, row in enumerate(records[entity]):
                path = ("records", entity, index)
                values = self.values(et.fields, row, path, top=True)
                if values is None:
                    continue
                try:
                    record = self.runtime.records.create(entity, values, actor=SYSTEM, via="system")
                except FormflowError as exc:
                    self.problem(
                        path,
                        T(
                            f"{entity} 记录被拒绝：{_describe(exc, 'zh')}",
                            f"the {entity} record was refused: {_describe(exc, 'en')}",
                        ),
                    )
                    continue
                self.summary.records[entity] = self.summary.records.get(entity, 0) + 1
                key = row.get("_key")
                if isinstance(key, str):
                    if key in self.keys:
                        self.problem(
                            (*path, "_key"), T(f"_key '{key}' 重复", f"_key '{key}' is used twice")
                        )
                    self.keys[key] = (entity, record.id)
                if et.title_field:
                    title = record.values.get(et.title_field)
                    if title is not None:
                        self.titles.setdefault(entity, {}).setdefault(str(title), record.id)
        self.check()

    def values(
        self,
        fields: Mapping[str, ModelField],
        row: Mapping[str, Any],
        path: tuple[Any, ...],
        *,
        top: bool,
    ) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        before = len(self.problems)
        for name, raw in row.items():
            here = (*path, name)
            if name == "_key":
                continue
            if name == "owner" and top:
                if (
                    raw is not None
                    and raw not in self.summary.users
                    and self.runtime.users.find(raw) is None
                ):
                    self.problem(
                        here,
                        T(f"没有用户 '{raw}'", f"no user '{raw}'"),
                        T("先在 users 中列出", "list them under users first"),
                    )
                out["owner"] = raw
                continue
            spec = fields.get(name)
            if spec is None:
                self.problem(
                    here,
                    T(f"没有字段 '{name}'", f"no field '{name}'"),
                    _nearest(name, fields),
                    key=True,
                )
                continue
            out[name] = self.value(spec, raw, here)
        return out if len(self.problems) == before else None

    def value(self, spec: ModelField, raw: Any, path: tuple[Any, ...]) -> Any:
        kind = spec.kind
        if kind == "table":
            if not isinstance(raw, list):
                self.problem(path, T("子表应是行的列表", "a child table is a list of rows"))
                return None
            rows = []
            for index, row in enumerate(raw):
                if not isinstance(row, dict):
                    self.problem(
                        (*path, index),
                        T("每行应是 字段 → 值 的映射", "each row maps fields to values"),
                    )
                    continue
                rows.append(self.values(spec.fields, row, (*path, index), top=False) or {})
            return rows
        if kind == "ref" and isinstance(raw, str):
            return self.reference(spec, raw, path)
        if kind in ("date", "datetime") and isinstance(raw, str):
            parsed = relative_date(raw, self.today)
            if parsed is None:
                if raw.strip().split("+")[0].split("-")[0].strip() in _ANCHORS:
                    self.problem(
                        path,
                        T(f"无法识别的相对日期 '{raw}'", f"cannot read the relative date '{raw}'"),
                        T(
                            "例如 today+5d、month_start-1m、today-2w 09:30",
                            "e.g. today+5d, month_start-1m, today-2w 09:30",
                        ),
                    )
                return raw
            day, at = parsed
            if kind == "date":
                if at is not None:
                    self.problem(path, T("日期字段不能带时间", "a date field takes no time of day"))
                return day
            if at is None:
                if raw.strip().startswith("now"):
                    moment = datetime.now(self._zone())
                    return moment.replace(
                        year=day.year, month=day.month, day=day.day, second=0, microsecond=0
                    )
                at = time(9, 0)
            return datetime.combine(day, at, tzinfo=self._zone())
        return raw

    def _zone(self) -> Any:
        try:
            return ZoneInfo(self.blueprint.timezone)
        except Exception:  # a zone the loader accepted but this host lacks: UTC
            return UTC

    def reference(self, spec: ModelField, raw: str, path: tuple[Any, ...]) -> int | None:
        target = spec.to or ""
        if raw in self.keys:
            entity, record_id = self.keys[raw]
            if entity != target:
                self.problem(
                    path,
                    T(
                        f"'{raw}' 是 {entity} 记录，而此字段引用 {target}",
                        f"'{raw}' is a {entity} record; this field refers to {target}",
                    ),
                )
            return record_id
        found = self.titles.get(target, {}).get(raw)
        if found is None:
            self.problem(
                path,
                T(f"找不到标题为 '{raw}' 的 {target} 记录", f"no {target} record titled '{raw}'"),
                T(
                    "引用写记录的标题或 _key，且被引用的记录须先创建",
                    "name the record's title or _key; it must be created first",
                ),
            )
        return found

    # -------------------------------------------------------------- flows
    def flows(self) -> None:
        service = self.runtime.flows
        for index, flow in enumerate(self._list("flows")):
            path = ("flows", index)
            entity = flow["entity"]
            record_id = self._flow_record(entity, flow["record"], (*path, "record"))
            if record_id is None:
                continue
            try:
                submitter = self.runtime.users.get(flow["submit"]).actor
                service.submit(
                    entity,
                    record_id,
                    actor=submitter,
                    flow=flow.get("flow"),
                    comment=flow.get("comment"),
                )
            except FormflowError as exc:
                self.problem(
                    (*path, "submit"),
                    T(
                        f"提交失败：{_describe(exc, 'zh')}",
                        f"the submit failed: {_describe(exc, 'en')}",
                    ),
                )
                continue
            for d_index, decision in enumerate(flow.get("decisions") or []):
                if not self._decide(
                    entity, record_id, flow.get("flow"), decision, (*path, "decisions", d_index)
                ):
                    break
            self.summary.flows += 1
        self.check()

    def _flow_record(self, entity: str, name: str, path: tuple[Any, ...]) -> int | None:
        if name in self.keys:
            return self.keys[name][1]
        found = self.titles.get(entity, {}).get(name)
        if found is None:
            self.problem(
                path,
                T(f"找不到标题为 '{name}' 的 {entity} 记录", f"no {entity} record titled '{name}'"),
            )
        return found

    def _decide(
        self,
        entity: str,
        record_id: int,
        flow: str | None,
        decision: Mapping[str, Any],
        path: tuple[Any, ...],
    ) -> bool:
        kind = next(k for k in _DECISIONS if k in decision)
        service = self.runtime.flows
        comment = decision.get("comment")
        try:
            actor = self.runtime.users.get(decision[kind]).actor
            mine = service.state(entity, record_id, actor=actor, flow=flow).my_tasks
            if not mine:
                self.problem(
                    (*path, kind),
                    T(
                        f"{decision[kind]} 此时没有待审批的任务",
                        f"{decision[kind]} has no open task at this point",
                    ),
                )
                return False
            task = mine[0].id
            if kind == "approve":
                values = decision.get("values") or {}
                service.approve(task, actor=actor, comment=comment, values=values)
            elif kind == "reject":
                service.reject(task, actor=actor, comment=comment)
            else:
                service.return_to(
                    task, decision.get("to") or "submitter", actor=actor, comment=comment
                )
        except FormflowError as exc:
            self.problem(
                (*path, kind),
                T(
                    f"审批操作失败：{_describe(exc, 'zh')}",
                    f"the decision failed: {_describe(exc, 'en')}",
                ),
            )
            return False
        return True


def _targets(entity: Entity) -> Iterable[str]:
    for spec in entity.fields.values():
        if spec.kind == "ref" and spec.to:
            yield spec.to
        for child in (spec.fields or {}).values():
            if child.kind == "ref" and child.to:
                yield child.to


def _describe(exc: FormflowError, lang: str) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict) and errors:
        sep = "；" if lang == "zh" else "; "
        return sep.join(f"{k}: {m.get(lang)}" for k, msgs in errors.items() for m in msgs)
    return exc.text.get(lang)


def _nearest(name: str, known: Iterable[str]) -> Text:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    if not close:
        return Text()
    return T(f"你是不是想写 '{close[0]}'？", f"did you mean '{close[0]}'?")


def seed_demo_file(
    blueprint: Blueprint,
    engine: Engine,
    path: Path,
    *,
    today: date | None = None,
    clock: Callable[[], datetime] | None = None,
) -> DemoSummary:
    """Create the tables, then the users, records and approvals of the demo file at ``path``.

    ``today`` anchors the relative dates (default: today in the blueprint's time
    zone). Raises :class:`DemoDataInvalid` with every problem of the step that
    failed (the file's shape is checked before anything is written).
    """
    data, pos = load_demo_file(path)
    runtime = build_runtime(blueprint, engine, clock=clock)
    if today is None:
        now = clock() if clock is not None else datetime.now(UTC)
        try:
            today = now.astimezone(ZoneInfo(blueprint.timezone)).date()
        except Exception:
            today = now.date()
    seeder = _Seeder(blueprint, runtime, data, pos, today)
    try:
        seeder.shape()
        initialise(engine, blueprint, runtime.schema)
        seeder.users()
        seeder.records()
        seeder.flows()
    except _Stop:
        raise DemoDataInvalid(seeder.problems) from None
    return seeder.summary


def signin_lines(users: Iterable[str]) -> list[str]:
    """What ``formflow serve --demo`` prints: who may sign in, with which password."""
    names = ", ".join(users)
    return [
        f"演示数据已创建。用户：{names}；密码（仅用于演示）：{DEMO_PASSWORD}",
        f"Demo data created. Users: {names}; password (demo only): {DEMO_PASSWORD}",
    ]
