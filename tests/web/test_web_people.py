"""User pickers and owner reassignment in forms, on SQLite and PostgreSQL.

Two teams (wang.fang over li.lei and han.meimei; zhao.qiang over chen.jing), an
admin and an inactive rep. Pickers offer ``Permissions.assignees``; the record
service decides every save, also of a forged ``owner``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import CRM, make_app, records, sign_in, text

from engine.records import SYSTEM
from engine.web import people as people_module
from engine.web.services import services

TEAM = [
    ("admin", ["admin"], None, "系统管理员"),
    ("wang.fang", ["sales_manager"], None, "王芳"),
    ("li.lei", ["sales_rep"], "wang.fang", "李雷"),
    ("han.meimei", ["sales_rep"], "wang.fang", "<img src=x onerror=alert(1)>"),
    ("zhao.qiang", ["sales_manager"], None, "赵强"),
    ("chen.jing", ["sales_rep"], "zhao.qiang", None),
    ("gone", ["sales_rep"], "wang.fang", "离职"),
]


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(CRM, db_url, [(n, r) for n, r, _m, _d in TEAM])
    with app.app_context():
        users = services().users
        for name, _roles, manager, display in TEAM:
            if manager:
                users.set_manager(name, manager)
            if display:
                users.set_profile(name, display_name=display)
        users.deactivate("gone")
    yield app
    records(app).engine.dispose()


def client_for(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, name)
    return client


def options(page: str, select_name: str) -> list[tuple[str, str]]:
    """(value, label) of every option of the select named ``select_name``."""
    m = re.search(rf'<select[^>]*name="{re.escape(select_name)}"[^>]*>(.*?)</select>', page, re.S)
    assert m, f"no select {select_name!r}"
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', m.group(1))


def selected(page: str, select_name: str) -> str | None:
    m = re.search(rf'<select[^>]*name="{re.escape(select_name)}"[^>]*>(.*?)</select>', page, re.S)
    assert m
    chosen = re.search(r'<option value="([^"]*)" selected>', m.group(1))
    return chosen.group(1) if chosen else None


def new_customer(app: Flask, owner: str, name: str = "苏州工业园区客户") -> int:
    return (
        records(app)
        .create("customer", {"name": name, "phone": "0512-6666 8888", "owner": owner}, actor=SYSTEM)
        .id
    )


# -- pickers -----------------------------------------------------------------------------------


def test_admin_picks_any_active_user_by_display_and_login_name(app: Flask) -> None:
    page = text(client_for(app, "admin").get("/e/customer/new?lang=en"))
    offered = options(page, "service_rep")
    assert offered[0] == ("", "(none)")
    assert ("li.lei", "李雷 (li.lei)") in offered
    assert ("chen.jing", "chen.jing") in offered  # no display name: the login name
    assert "gone" not in [v for v, _ in offered]  # inactive users are not offered
    # hostile display names are text
    assert "&lt;img src=x onerror=alert(1)&gt; (han.meimei)" in page
    assert "<img src=x" not in page
    # the owner: any active user, or nobody; the admin by default
    owner = options(page, "owner")
    assert owner[0] == ("", "(none)")
    assert {v for v, _ in owner[1:]} == {v for v, _ in offered[1:]}
    assert selected(page, "owner") == "admin"
    assert 'id="owner-section"' in page


def test_manager_offers_their_team_and_rep_only_themself(app: Flask) -> None:
    page = text(client_for(app, "wang.fang").get("/e/customer/new?lang=zh"))
    team = {"wang.fang", "li.lei", "han.meimei"}
    assert {v for v, _ in options(page, "service_rep")} - {""} == team
    assert {v for v, _ in options(page, "owner")} == team  # nobody is not allowed
    section = page.split('id="owner-section"', 1)[1]
    assert "记录归属" in section and "负责人" in section
    assert selected(page, "owner") == "wang.fang"

    page = text(client_for(app, "li.lei").get("/e/customer/new?lang=zh"))
    assert options(page, "service_rep") == [("", "（无）"), ("li.lei", "李雷 (li.lei)")]
    assert 'name="owner"' not in page  # a rep may not set the owner: no field at all


def test_a_value_outside_the_choices_is_kept_and_shown(app: Flask) -> None:
    cid = new_customer(app, "li.lei")
    svc = records(app)
    rec = svc.get("customer", cid)
    svc.update("customer", cid, {"service_rep": "chen.jing"}, version=rec.version, actor=SYSTEM)
    client = client_for(app, "li.lei")
    page = text(client.get(f"/e/customer/{cid}/edit"))
    assert selected(page, "service_rep") == "chen.jing"
    rec = svc.get("customer", cid)
    response = client.post(
        f"/e/customer/{cid}/edit",
        data={"version": str(rec.version), "service_rep": "chen.jing", "employees": "9"},
    )
    assert response.status_code == 302, text(response)
    after = svc.get("customer", cid)
    assert (after.values["service_rep"], after.values["employees"]) == ("chen.jing", 9)


def test_search_mode_past_the_select_limit(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(people_module, "SELECT_LIMIT", 1)
    client = client_for(app, "admin")
    page = text(client.get("/e/customer/new?lang=en"))
    block = page.split('id="people-service_rep"', 1)[1].split("</div>", 1)[0]
    assert 'type="search"' in block
    assert "/e/customer/people?input=service_rep" in block
    found = text(client.get("/e/customer/people?input=service_rep&q=李"))
    assert "李雷 (li.lei)" in found
    assert "chen.jing" not in found
    assert "gone" not in text(client.get("/e/customer/people?input=service_rep&q=gone"))
    assert "Nothing found" in text(client.get("/e/customer/people?input=service_rep&q=zzz&lang=en"))
    picked = text(client.get("/e/customer/people/pick?input=service_rep&name=li.lei"))
    assert '<input type="hidden" name="service_rep" value="li.lei">' in picked
    assert "李雷 (li.lei)" in picked
    # only what the picker offers; nothing about anyone else
    assert client.get("/e/customer/people/pick?input=service_rep&name=gone").status_code == 404
    assert client.get("/e/customer/people/pick?input=service_rep&name=nobody").status_code == 404
    rep = client_for(app, "li.lei")
    assert rep.get("/e/customer/people/pick?input=service_rep&name=han.meimei").status_code == 404
    assert "han.meimei" not in text(rep.get("/e/customer/people?input=service_rep&q=han"))
    assert client.get("/e/customer/people?input=<bad>&q=li").status_code == 400


# -- owners ------------------------------------------------------------------------------------


def test_manager_transfers_a_record_and_the_history_shows_it(app: Flask) -> None:
    cid = new_customer(app, "li.lei")
    svc = records(app)
    client = client_for(app, "wang.fang")
    page = text(client.get(f"/e/customer/{cid}/edit?lang=en"))
    assert selected(page, "owner") == "li.lei"
    version = svc.get("customer", cid).version
    response = client.post(
        f"/e/customer/{cid}/edit", data={"version": str(version), "owner": "han.meimei"}
    )
    assert response.status_code == 302, text(response)
    assert svc.get("customer", cid).owner == "han.meimei"
    detail = text(client.get(f"/e/customer/{cid}?lang=en"))
    meta = detail.split('class="ff-meta"', 1)[1].split("</p>", 1)[0]
    assert "Owner: &lt;img src=x onerror=alert(1)&gt; (han.meimei)" in meta
    history = detail.split("ff-timeline", 1)[1]
    assert "Owner: <del>李雷 (li.lei)</del> → &lt;img src=x onerror=alert(1)&gt; (han.meimei)" in (
        history
    )
    [entry] = [e for e in svc.history("customer", cid) if e.action == "update"]
    assert entry.changes["owner"] == ["li.lei", "han.meimei"]
    assert entry.user == "wang.fang" and entry.via == "form"


def test_manager_creates_for_a_team_member(app: Flask) -> None:
    client = client_for(app, "wang.fang")
    response = client.post(
        "/e/customer/new",
        data={"name": "无锡新区客户", "phone": "0510-8888 1234", "owner": "li.lei"},
    )
    assert response.status_code == 302, text(response)
    cid = int(response.headers["Location"].rsplit("/", 1)[1])
    assert records(app).get("customer", cid).owner == "li.lei"


@pytest.mark.parametrize("target", ["chen.jing", "gone", "nobody", ""])
def test_manager_cannot_assign_outside_their_team(app: Flask, target: str) -> None:
    cid = new_customer(app, "li.lei")
    svc = records(app)
    version = svc.get("customer", cid).version
    response = client_for(app, "wang.fang").post(
        f"/e/customer/{cid}/edit?lang=en", data={"version": str(version), "owner": target}
    )
    assert response.status_code == 422
    page = text(response)
    owner_block = page.split('id="field-owner"', 1)[1].split("</fieldset>", 1)[0]
    assert "you may not set the owner" in owner_block
    assert svc.get("customer", cid).owner == "li.lei"


def test_rep_forging_an_owner_is_refused_as_the_record_service_documents(app: Flask) -> None:
    svc = records(app)
    client = client_for(app, "li.lei")
    response = client.post(
        "/e/customer/new?lang=en",
        data={"name": "伪造负责人客户", "phone": "0512-6666 1111", "owner": "han.meimei"},
    )
    assert response.status_code == 422
    assert "you may not set the owner" in text(response)
    assert svc.list_records("customer").rows == []
    # the same owner the record has is no change: ignored, the save goes through
    cid = new_customer(app, "li.lei")
    version = svc.get("customer", cid).version
    response = client.post(
        f"/e/customer/{cid}/edit",
        data={"version": str(version), "owner": "li.lei", "employees": "3"},
    )
    assert response.status_code == 302
    response = client.post(
        f"/e/customer/{cid}/edit?lang=en",
        data={"version": str(version + 1), "owner": "han.meimei"},
    )
    assert response.status_code == 422
    assert svc.get("customer", cid).owner == "li.lei"
