"""Finding a blueprint's test cases and checking them before anything runs.

Cases come from the blueprint's ``tests:`` (its includes and the templates it
extends too) and from every ``tests/*.yaml`` file of the template folder (each
a list of cases; a case named like one of ``tests:`` replaces it, so a fork
can change or ``skip:`` a case it inherits). The files are appended to ``tests`` with their own
positions and the whole document goes through the loader, so a case is
schema-checked like the rest of the blueprint and every message points at
``file:line:col``.

:func:`check_case` then checks what the schema cannot know: that the entities,
fields, flows, steps, roles and KPIs a case names exist (with a did-you-mean).
A case with such a problem is reported as an error and not run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.errors import BlueprintError, Location, Problem
from engine.i18n import T, Text
from engine.loader import Report, diagnose_document
from engine.loading import sources
from engine.loading.describe import did_you_mean
from engine.loading.positions import Doc, Pos
from engine.model import SYSTEM_COLUMNS, Blueprint, Entity
from engine.users import ADMIN_ROLE
from engine.yamlsafe import parse_yaml

__all__ = ["TESTS_FOLDER", "Case", "Suite", "case_warnings", "check_case", "collect"]

#: The folder of a template that holds extra case files (``tests/*.yaml``).
TESTS_FOLDER = "tests"
#: Keys of a record in ``given`` / ``create`` that are not fields.
RECORD_KEYS = frozenset({"id", "owner"})
#: What ``update:`` may hold besides ``set``.
MATCH_KEYS = ("id", "title", "match")
FLOW_KEYS = ("status", "step", "approvers", "path", "skipped", "flow")
KPI_KEYS = ("name", "by", "period", "as", "rows", "total", "start", "end", "filters")
ERROR_KEYS = ("field", "message_contains")
#: Record columns an ``expect`` may name besides fields.
SYSTEM_EXPECT = frozenset(SYSTEM_COLUMNS) - {"parent_id"}


@dataclass
class Case:
    """One test case: its spec as written and where each part of it was written."""

    index: int
    name: str
    spec: Mapping[str, Any]
    pos: Pos
    problems: list[Problem] = field(default_factory=list)

    @property
    def location(self) -> Location:
        return self.pos.value

    def at(self, *path: Any) -> Location:
        """Where the value at ``path`` (inside the case) was written."""
        return self.pos.locate(path)

    def key_at(self, *path: Any) -> Location:
        """Where the key naming ``path`` (inside the case) was written."""
        return self.pos.locate_key(tuple(path))


@dataclass
class Suite:
    """What ``formflow test PATH`` runs: the blueprint and its cases."""

    path: Path
    blueprint: Blueprint | None
    cases: list[Case]
    problems: tuple[Problem, ...]  # problems of the blueprint itself (nothing runs)
    locale: str | None = None

    @property
    def ok(self) -> bool:
        return self.blueprint is not None and not any(p.severity == "error" for p in self.problems)


def collect(path: str | os.PathLike[str]) -> Suite:
    """The blueprint at ``path`` and its cases, each already checked (:func:`check_case`)."""
    folder = Path(path)
    try:
        doc = sources.resolve(folder)
    except BlueprintError as exc:
        return Suite(folder, None, [], exc.problems)
    main = sources.find_main(folder)
    extra: list[Problem] = []
    doc = _with_case_files(doc, main.parent / TESTS_FOLDER, extra)
    report: Report = diagnose_document(doc)
    problems = (*extra, *report.problems)
    if extra or not report.ok or report.blueprint is None:
        return Suite(folder, report.blueprint, [], problems, report.locale)
    blueprint = report.blueprint
    raw = doc.data.get("tests") or []
    tests_pos = doc.pos.kids.get("tests") or Pos(doc.pos.value)
    cases = []
    for index, (spec, model) in enumerate(zip(raw, blueprint.tests, strict=True)):
        pos = tests_pos.kids.get(index) or Pos(model.location)
        case = Case(index, model.name, spec, pos)
        case.problems = check_case(blueprint, case)
        cases.append(case)
    return Suite(folder, blueprint, cases, problems, report.locale)


def _with_case_files(doc: Doc, folder: Path, problems: list[Problem]) -> Doc:
    """``doc`` with the cases of ``folder/*.yaml`` appended to ``tests`` (sorted by name)."""
    if not folder.is_dir():
        return doc
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml"))
    data = dict(doc.data)
    current = list(data.get("tests") or []) if isinstance(data.get("tests"), list) else []
    old = doc.pos.kids.get("tests") or Pos(doc.pos.value)
    pos = Pos(old.value, old.text, dict(old.kids), dict(old.keys))
    inherited = len(current)
    added = False
    for file in files:
        shown = sources.display_path(file)
        try:
            value, file_pos = parse_yaml(file.read_text(encoding="utf-8-sig"), shown)
        except BlueprintError as exc:
            problems.extend(exc.problems)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(
                Problem(
                    Location(shown),
                    T(f"无法读取测试文件：{exc}", f"cannot read the test file: {exc}"),
                    T("用 UTF-8 保存", "save it as UTF-8 text"),
                )
            )
            continue
        if value is None:
            continue
        if not isinstance(value, list):
            problems.append(
                Problem(
                    file_pos.value,
                    T("测试文件应为用例的列表", "a test file should be a list of cases"),
                    T("每个用例以 '- name: ...' 开始", "start each case with '- name: ...'"),
                )
            )
            continue
        for index, case in enumerate(value):
            kid = file_pos.kids.get(index) or Pos(file_pos.value)
            name = case.get("name") if isinstance(case, dict) else None
            same = [
                i for i, c in enumerate(current) if isinstance(c, dict) and c.get("name") == name
            ]
            if name is not None and same and same[0] < inherited:
                # A case named like one of the blueprint's (or the template's it
                # extends) replaces it: a fork overrides or skips an upstream case.
                current[same[0]] = case
                pos.kids[same[0]] = kid
            else:
                pos.kids[len(current)] = kid
                current.append(case)
            added = True
    if not added:
        return doc
    data["tests"] = current
    return Doc(data, doc.pos.with_kid("tests", pos), [*doc.files, *map(str, files)])


# -- checking a case against the blueprint ---------------------------------------------------


class _Checker:
    def __init__(self, blueprint: Blueprint, case: Case) -> None:
        self.bp = blueprint
        self.case = case
        self.problems: list[Problem] = []

    def add(self, where: Location, message: Text, hint: Text | None = None) -> None:
        self.problems.append(Problem(where, message, hint or Text()))

    def entity(self, name: Any, *path: Any) -> Entity | None:
        if isinstance(name, str) and name in self.bp.entities:
            return self.bp.entities[name]
        self.add(
            self.case.key_at(*path),
            T(f"没有实体 '{name}'", f"unknown entity '{name}'"),
            did_you_mean(str(name), self.bp.entities),
        )
        return None

    def fields(self, entity: Entity, values: Any, extra: Iterable[str], *path: Any) -> None:
        if not isinstance(values, Mapping):
            self.add(
                self.case.at(*path),
                T(f"应为 {entity.name} 的字段值映射", f"expected a map of {entity.name} values"),
                T("写成 字段: 值", "write field: value"),
            )
            return
        allowed = {*entity.fields, *extra}
        for key in values:
            if key not in allowed:
                self.add(
                    self.case.key_at(*path, key),
                    T(
                        f"实体 {entity.name} 没有字段 '{key}'",
                        f"entity {entity.name} has no field '{key}'",
                    ),
                    did_you_mean(str(key), allowed),
                )

    def user_role(self, role: Any, *path: Any) -> None:
        roles = {*self.bp.roles, ADMIN_ROLE}
        if role not in roles:
            self.add(
                self.case.at(*path),
                T(f"没有角色 '{role}'", f"unknown role '{role}'"),
                did_you_mean(str(role), roles),
            )

    def one_entity(self, key: str) -> tuple[str, Any] | None:
        value = self.case.spec.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping) or len(value) != 1:
            self.add(
                self.case.at(key),
                T(f"{key} 应只写一个实体", f"{key} should name exactly one entity"),
                T(
                    f"例如 {key}: {{customer: {{...}}}}；其余数据写在 given 中",
                    f"e.g. {key}: {{customer: {{...}}}}; put other data under given",
                ),
            )
            return None
        ((name, body),) = value.items()
        return str(name), body

    def run(self) -> list[Problem]:
        spec = self.case.spec
        if spec.get("role") is not None:
            self.user_role(spec["role"], "role")
        for name, user in (spec.get("users") or {}).items():
            for i, role in enumerate((user or {}).get("roles") or []):
                self.user_role(role, "users", name, "roles", i)
        for entity_name, records in (spec.get("given") or {}).items():
            entity = self.entity(entity_name, "given", entity_name)
            if entity is None:
                continue
            rows = records if isinstance(records, list) else [records]
            for i, values in enumerate(rows):
                where = (
                    ("given", entity_name, i)
                    if isinstance(records, list)
                    else ("given", entity_name)
                )
                self.fields(entity, values, RECORD_KEYS, *where)
        subject = self.writes()
        self.flow(subject)
        self.expectations(subject)
        return self.problems

    def writes(self) -> Entity | None:
        """Check create / update / delete; the entity of the case's record."""
        spec = self.case.spec
        written = [k for k in ("create", "update", "delete") if spec.get(k) is not None]
        if len(written) > 1:
            self.add(
                self.case.key_at(written[1]),
                T(
                    f"一个用例只做一次写入：{' 和 '.join(written)} 不能同时出现",
                    f"a case makes one write: {' and '.join(written)} cannot both be used",
                ),
                T(
                    "把其他数据写在 given 中，或拆成几个用例",
                    "put other data under given, or split the case",
                ),
            )
        subject: Entity | None = None
        created = self.one_entity("create")
        if created is not None:
            subject = self.entity(created[0], "create", created[0])
            if subject is not None:
                self.fields(subject, created[1], RECORD_KEYS, "create", created[0])
        updated = self.one_entity("update")
        if updated is not None:
            subject = self.entity(updated[0], "update", updated[0])
            body = updated[1]
            if subject is not None and isinstance(body, Mapping):
                self.match(subject, body, "update", updated[0])
                if not isinstance(body.get("set"), Mapping):
                    self.add(
                        self.case.key_at("update", updated[0]),
                        T("update 需要 set: {字段: 值}", "update needs set: {field: value}"),
                        T("例如 set: {stage: won}", "e.g. set: {stage: won}"),
                    )
                else:
                    self.fields(subject, body["set"], ("owner",), "update", updated[0], "set")
        deleted = self.one_entity("delete")
        if deleted is not None:
            subject = self.entity(deleted[0], "delete", deleted[0])
            if subject is not None and isinstance(deleted[1], Mapping):
                self.match(subject, deleted[1], "delete", deleted[0])
        return subject

    def match(self, entity: Entity, body: Mapping[str, Any], *path: Any) -> None:
        keys = [k for k in body if k in MATCH_KEYS]
        for key in body:
            if key not in (*MATCH_KEYS, "set"):
                self.add(
                    self.case.key_at(*path, key),
                    T(f"未知的键 '{key}'", f"unknown key '{key}'"),
                    did_you_mean(str(key), (*MATCH_KEYS, "set")),
                )
        if len(keys) != 1:
            self.add(
                self.case.key_at(*path),
                T(
                    "用 title（标题）、id（本地键）或 match（字段: 值）中的一个指明记录",
                    "name the record with one of title (its title), id (a local key) "
                    "or match (field: value)",
                ),
            )
        if "title" in body and entity.title_field is None:
            self.add(
                self.case.key_at(*path, "title"),
                T(
                    f"实体 {entity.name} 没有 title_field，不能按标题查找",
                    f"entity {entity.name} has no title_field to find a record by",
                ),
                T("改用 id 或 match", "use id or match instead"),
            )
        if isinstance(body.get("match"), Mapping):
            self.fields(entity, body["match"], ("owner",), *path, "match")

    def flow(self, subject: Entity | None) -> None:
        spec = self.case.spec
        submit = spec.get("submit")
        if submit is None:
            for key in ("approve", "reject", "return"):
                if spec.get(key) is not None:
                    self.add(
                        self.case.key_at(key),
                        T(f"{key} 需要先 submit", f"{key} needs a submit first"),
                        T("加上 submit: 流程名", "add submit: flow_name"),
                    )
            return
        name = submit.get("flow") if isinstance(submit, Mapping) else submit
        path = ("submit", "flow") if isinstance(submit, Mapping) else ("submit",)
        if name not in self.bp.flows:
            self.add(
                self.case.at(*path),
                T(f"没有流程 '{name}'", f"unknown flow '{name}'"),
                did_you_mean(str(name), self.bp.flows),
            )
            return
        flow = self.bp.flows[str(name)]
        if subject is None:
            given = spec.get("given") or {}
            if flow.entity not in given:
                self.add(
                    self.case.at(*path),
                    T(
                        f"没有可提交的 {flow.entity} 记录",
                        f"there is no {flow.entity} record to submit",
                    ),
                    T(
                        f"用 create 新建一条 {flow.entity}，或在 given 中给出",
                        f"create a {flow.entity} or give one under given",
                    ),
                )
        elif subject.name != flow.entity:
            self.add(
                self.case.at(*path),
                T(
                    f"流程 {name} 审批的是 {flow.entity}，不是 {subject.name}",
                    f"flow {name} approves {flow.entity} records, not {subject.name}",
                ),
            )
        expected = spec.get("expect_flow")
        if isinstance(expected, Mapping):
            for key in expected:
                if key not in FLOW_KEYS:
                    self.add(
                        self.case.key_at("expect_flow", key),
                        T(
                            f"expect_flow 中有未知的键 '{key}'",
                            f"unknown key '{key}' in expect_flow",
                        ),
                        did_you_mean(str(key), FLOW_KEYS),
                    )
            steps = set(flow.steps)
            step = expected.get("step")
            if step is not None and step not in steps:
                self.add(
                    self.case.at("expect_flow", "step"),
                    T(f"流程 {name} 没有步骤 '{step}'", f"flow {name} has no step '{step}'"),
                    did_you_mean(str(step), steps),
                )
            for key in ("path", "skipped"):
                listed = expected.get(key)
                for i, item in enumerate(listed if isinstance(listed, list) else []):
                    if item not in steps:
                        self.add(
                            self.case.at("expect_flow", key, i),
                            T(
                                f"流程 {name} 没有步骤 '{item}'",
                                f"flow {name} has no step '{item}'",
                            ),
                            did_you_mean(str(item), steps),
                        )

    def expectations(self, subject: Entity | None) -> None:
        spec = self.case.spec
        expect = spec.get("expect")
        if expect is not None:
            target = subject or self._flow_entity()
            if target is None:
                self.add(
                    self.case.key_at("expect"),
                    T(
                        "expect 检查本用例写入的记录：需要 create 或 update",
                        "expect checks the record the case writes: it needs create or update",
                    ),
                )
            elif spec.get("delete") is not None:
                self.add(
                    self.case.key_at("expect"),
                    T("删除后没有记录可检查", "after a delete there is no record to check"),
                    T(
                        "用 expect_error 检查删除被拒绝",
                        "use expect_error to check a refused delete",
                    ),
                )
            else:
                self.fields(target, expect, SYSTEM_EXPECT, "expect")
        errors = spec.get("expect_error")
        if isinstance(errors, Mapping):
            errors = [errors]
        if isinstance(errors, list):
            path: tuple[Any, ...] = ("expect_error",)
            for i, item in enumerate(errors):
                here = (*path, i) if isinstance(spec.get("expect_error"), list) else path
                self.expected_error(item, subject, here)
        kpis = spec.get("expect_kpi")
        if isinstance(kpis, Mapping):
            self.kpi(kpis, ("expect_kpi",))
        elif isinstance(kpis, list):
            for i, item in enumerate(kpis):
                self.kpi(item, ("expect_kpi", i))

    def _flow_entity(self) -> Entity | None:
        submit = self.case.spec.get("submit")
        name = submit.get("flow") if isinstance(submit, Mapping) else submit
        flow = self.bp.flows.get(name) if isinstance(name, str) else None
        return self.bp.entities.get(flow.entity) if flow is not None else None

    def expected_error(self, item: Any, subject: Entity | None, path: tuple[Any, ...]) -> None:
        if not isinstance(item, Mapping):
            self.add(
                self.case.at(*path),
                T(
                    "expect_error 的每一项应为 {field, message_contains}",
                    "each expect_error item should be {field, message_contains}",
                ),
            )
            return
        for key in item:
            if key not in ERROR_KEYS:
                self.add(
                    self.case.key_at(*path, key),
                    T(f"expect_error 中有未知的键 '{key}'", f"unknown key '{key}' in expect_error"),
                    did_you_mean(str(key), ERROR_KEYS),
                )
        target = subject or self._flow_entity()
        name = item.get("field")
        if name is not None and target is not None:
            allowed = {*target.fields, "owner", "_record"}
            if name not in allowed:
                self.add(
                    self.case.at(*path, "field"),
                    T(
                        f"实体 {target.name} 没有字段 '{name}'",
                        f"entity {target.name} has no field '{name}'",
                    ),
                    did_you_mean(str(name), allowed),
                )

    def kpi(self, item: Any, path: tuple[Any, ...]) -> None:
        if not isinstance(item, Mapping):
            return
        for key in item:
            if key not in KPI_KEYS:
                self.add(
                    self.case.key_at(*path, key),
                    T(f"expect_kpi 中有未知的键 '{key}'", f"unknown key '{key}' in expect_kpi"),
                    did_you_mean(str(key), KPI_KEYS),
                )
        name = item.get("name")
        if name not in self.bp.kpis:
            self.add(
                self.case.at(*path, "name"),
                T(f"没有指标 '{name}'", f"unknown KPI '{name}'"),
                did_you_mean(str(name), self.bp.kpis),
            )
            return
        kpi = self.bp.kpis[str(name)]
        by = item.get("by") or []
        for i, dim in enumerate([by] if isinstance(by, str) else by):
            if dim not in kpi.by:
                self.add(
                    self.case.at(*path, "by", i)
                    if not isinstance(by, str)
                    else self.case.at(*path, "by"),
                    T(
                        f"指标 {name} 不能按 '{dim}' 分组",
                        f"KPI {name} cannot be grouped by '{dim}'",
                    ),
                    did_you_mean(str(dim), kpi.by),
                )


def case_warnings(
    blueprint: Blueprint, doc: Doc, tests_folder: Path | None = None
) -> list[Problem]:
    """The problems of every case ``formflow test`` would run, as warnings (``formflow check``).

    With ``tests_folder`` (the template's ``tests/``) its ``*.yaml`` cases count
    too, so a case a fork replaces there is not reported.
    """
    if not isinstance(doc.data, dict):
        return []
    if tests_folder is not None:
        doc = _with_case_files(doc, tests_folder, [])
    raw = doc.data.get("tests")
    if not isinstance(raw, list):
        return []
    tests_pos = doc.pos.kids.get("tests") or Pos(doc.pos.value)
    out = []
    for index, spec in enumerate(raw):
        if not isinstance(spec, Mapping):
            continue
        name = str(spec.get("name") or f"test {index + 1}")
        case = Case(index, name, spec, tests_pos.kids.get(index) or Pos(doc.pos.value))
        out += [replace(p, severity="warning") for p in check_case(blueprint, case)]
    return out


def check_case(blueprint: Blueprint, case: Case) -> list[Problem]:
    """What is wrong with ``case`` for this blueprint (names it uses that do not exist)."""
    return _Checker(blueprint, case).run()
