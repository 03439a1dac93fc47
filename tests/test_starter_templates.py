"""The training, appraisal and risk starter templates: checked, seeded and served.

For each template: ``formflow check`` is clean (no warnings either); its
``demo.yaml`` seeds on SQLite and PostgreSQL with records in every entity and
approvals waiting in inboxes; every dashboard widget's KPI evaluates on the demo
data; and the home page and every entity's list page answer 200 for a demo user
of each role. (Their blueprint tests run in tests/test_templates.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from engine.cli import main
from engine.demo import DEMO_PASSWORD, seed_demo
from engine.demo_data import DEMO_FILE, demo_file
from engine.loader import load
from engine.model import Blueprint
from engine.records import SYSTEM
from engine.runtime import Runtime, build_runtime
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.web import create_app

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ("training", "appraisal", "risk")

#: Entities a template's demo fills itself or through its automations.
SEEDED = {
    "training": ("course", "session", "enrolment", "assessment", "certificate", "budget_request"),
    "appraisal": ("cycle", "scorecard", "feedback", "action_item"),
    "risk": ("risk", "plan", "incident", "review"),
}
#: Who has an approval waiting after seeding (the first screen is alive).
WAITING = {
    "training": ("zheng.hong", "zhao.qiang"),
    "appraisal": ("li.lei", "wang.fang", "zheng.hong"),
    "risk": ("zhou.min", "admin"),
}


def path_of(name: str) -> Path:
    return ROOT / "blueprints" / name


@pytest.mark.parametrize("name", TEMPLATES)
def test_check_is_clean(name: str) -> None:
    result = CliRunner().invoke(main, ["check", str(path_of(name)), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert ": OK — " in result.output
    assert "warning" not in result.output.lower(), result.output


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_label_is_bilingual(name: str) -> None:
    """Chinese first with English beside it: no label of the template lacks a language."""
    blueprint = load(path_of(name))
    missing = []
    for entity in blueprint.entities.values():
        for field in entity.fields.values():
            for text, where in [(field.label, field.name), (field.help, f"{field.name}.help")]:
                if (text.zh or text.en) and not (text.zh and text.en):
                    missing.append(f"{entity.name}.{where}")
            for option in field.options:
                if not (option.label.zh and option.label.en):
                    missing.append(f"{entity.name}.{field.name}={option.value}")
            for child in field.fields.values():
                if not (child.label.zh and child.label.en):
                    missing.append(f"{entity.name}.{field.name}.{child.name}")
                for option in child.options:
                    if not (option.label.zh and option.label.en):
                        missing.append(f"{entity.name}.{field.name}.{child.name}={option.value}")
        for rule in entity.rules:
            if not (rule.message.zh and rule.message.en):
                missing.append(f"{entity.name} rule {rule.check.source}")
    for kpi in blueprint.kpis.values():
        if not (kpi.label.zh and kpi.label.en):
            missing.append(f"kpi {kpi.name}")
    assert not missing, missing


@pytest.fixture(params=TEMPLATES)
def seeded(request: pytest.FixtureRequest, db_url: str) -> Iterator[tuple[str, Blueprint, Runtime]]:
    name: str = request.param
    blueprint = load(path_of(name))
    assert demo_file(blueprint) == path_of(name) / DEMO_FILE
    engine = create_engine(db_url)
    try:
        lines = seed_demo(blueprint, engine)
        assert DEMO_PASSWORD in lines[1]
        yield name, blueprint, build_runtime(blueprint, engine)
    finally:
        engine.dispose()


def test_demo_fills_every_entity_and_leaves_approvals_waiting(
    seeded: tuple[str, Blueprint, Runtime],
) -> None:
    name, blueprint, rt = seeded
    assert set(SEEDED[name]) == set(blueprint.entities)
    counts = {e: rt.records.list_records(e).count for e in blueprint.entities}
    assert all(counts[e] for e in SEEDED[name]), counts
    for user in WAITING[name]:
        assert rt.flows.inbox(rt.users.get(user).actor), f"{user} has nothing to approve"


def test_every_dashboard_kpi_evaluates_on_the_demo(seeded: tuple[str, Blueprint, Runtime]) -> None:
    _name, blueprint, rt = seeded
    for dashboard in blueprint.dashboards.values():
        roles = dashboard.roles or tuple(blueprint.roles)
        viewer = next(u for u in rt.users.list() if set(u.roles) & set(roles))
        for widget in dashboard.widgets:
            assert widget.kpi is not None
            result = rt.kpis.evaluate(
                widget.kpi, viewer.actor, by=list(widget.by), period=widget.period or "all"
            )
            assert result is not None


def test_demo_numbers_add_up(seeded: tuple[str, Blueprint, Runtime]) -> None:
    """A few figures of each demo, computed by the engine from the seeded records."""
    name, _blueprint, rt = seeded
    admin = rt.users.get("admin").actor
    if name == "training":
        # every passed assessment got its certificate from the automation
        passed = [r for r in rt.records.list_records("assessment").rows if r["passed"]]
        assert rt.records.list_records("certificate").count == len(passed) == 4
        total = rt.kpis.evaluate("certificates_issued", admin, period="all").total
        assert total is not None and total.value == 4
    elif name == "appraisal":
        final = [r for r in rt.records.list_records("scorecard").rows if r["status"] == "final"]
        assert len(final) == 4
        assert {r["grade"] for r in final} >= {"A", "D"}
    else:
        total = rt.kpis.evaluate("open_high_risks", admin, period="all").total
        assert total is not None and total.value == 4  # 客户流失、应收逾期、数据泄露、人员离职


def test_pages_render_for_a_demo_user_of_each_role(
    seeded: tuple[str, Blueprint, Runtime], db_url: str
) -> None:
    name, blueprint, rt = seeded
    settings = {"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test-secret"}
    app: Flask = create_app(path_of(name), db_url, settings)
    by_role: dict[str, str] = {}
    for user in rt.users.list():
        for role in user.roles:
            by_role.setdefault(role, user.name)
    assert set(by_role) == set(blueprint.roles), f"{name}: a role has no demo user"
    for role, user in by_role.items():
        client = app.test_client()
        response = client.post("/signin", data={"name": user, "password": DEMO_PASSWORD})
        assert response.status_code == 302, (role, response.get_data(as_text=True)[:500])
        home = client.get("/")
        assert home.status_code == 200, (role, "/")
        for entity, spec in blueprint.entities.items():
            if role not in spec.access:
                continue
            page = client.get(f"/e/{entity}")
            assert page.status_code == 200, (role, entity, page.status_code)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_an_unanswered_incident_escalates_up_the_reporting_line(db_url: str) -> None:
    """risk: no answer from the team manager in 2 hours asks the director; the CEO step
    taken as acknowledged after 8 hours (the flow's timeouts, run by the job queue)."""
    blueprint = load(path_of("risk"))
    clock = Clock(datetime(2024, 6, 5, 1, 0, tzinfo=UTC))
    engine = create_engine(db_url)
    try:
        rt = build_runtime(blueprint, engine, clock=clock)
        initialise(engine, blueprint, rt.schema)
        for name, roles, manager in [
            ("admin", ["admin"], None),
            ("zhou.min", ["sales_manager"], None),
            ("wang.fang", ["sales_manager"], "zhou.min"),
            ("li.lei", ["sales_rep"], "wang.fang"),
        ]:
            rt.users.add(name, roles=roles, manager=manager, password=DEMO_PASSWORD)
        incident = rt.records.create(
            "incident",
            {
                "title": "CRM 账号异常批量导出",
                "severity": "critical",
                "occurred_at": "2024-06-05 08:30",
                "occurred_on": "2024-06-05",
                "description": "离职员工账号在夜间导出了大量客户联系人",
                "immediate_actions": "已冻结账号",
                "owner": "li.lei",
            },
            via="system",
        )
        li = rt.users.get("li.lei").actor
        rt.flows.submit("incident", incident.id, actor=li)
        clock.now += timedelta(hours=2, minutes=1)
        rt.jobs.run_due("test")
        state = rt.flows.state("incident", incident.id, actor=SYSTEM)
        assert state.current_step == "team_manager"
        assert {(t.approver, t.origin) for t in state.open_tasks} == {
            ("wang.fang", "resolved"),
            ("zhou.min", "escalated"),
        }
        zhou = rt.users.get("zhou.min").actor
        [escalated] = [t for t in state.open_tasks if t.approver == "zhou.min"]
        rt.flows.approve(escalated.id, actor=zhou)
        state = rt.flows.state("incident", incident.id, actor=SYSTEM)
        assert state.current_step == "director"
        assert [t.approver for t in state.open_tasks] == ["zhou.min"]
        rt.flows.approve(state.open_tasks[0].id, actor=zhou)
        state = rt.flows.state("incident", incident.id, actor=SYSTEM)
        assert state.current_step == "executive"
        clock.now += timedelta(hours=8, minutes=1)
        rt.jobs.run_due("test")
        state = rt.flows.state("incident", incident.id, actor=SYSTEM)
        assert state.state == "approved"
        assert rt.records.get("incident", incident.id).values["escalation"] == "acknowledged"
    finally:
        engine.dispose()
