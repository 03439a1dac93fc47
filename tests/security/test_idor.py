"""IDOR: a user of one team cannot reach another team's records by any route.

Two teams on the CRM: manager ``mgr.a`` with rep ``a1``, manager ``mgr.b``
with rep ``b1``. ``b1`` owns a customer and a contract (with a signed copy
uploaded, submitted for approval: a task waits for ``mgr.b``) and started an
import. ``a1`` and ``mgr.a`` then try every route:

* every route of the Flask ``url_map`` that takes a record, task or job id is
  called with ``b1``'s ids by every method it accepts: each is refused (403,
  404 or 405) and its body does not carry ``b1``'s data; a route with such an
  id that this test has not classified fails the test, so a new route is
  covered the day it is added;
* lists, search, pickers, the inbox, notifications and exports (CSV, XLSX; web
  and API, including ``owner=b1`` filters) do not show ``b1``'s records;
* afterwards nothing of ``b1``'s changed: values, the file, the open task, the
  pending flow and ``mgr.b``'s unread notifications;
* KPIs, dashboards (API and pages), the forecast and commission statements
  count only the viewer's scope: ``a1``'s open pipeline is ``a1``'s records
  alone, ``owner=b1`` / ``team=mgr.b`` are refused or empty, another rep's
  commission statement is a 403.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient
from test_web_support import CRM, make_app, sign_in

from engine.records import SYSTEM
from engine.storage.schema import NOTIFICATIONS_TABLE
from engine.web.services import services

SECRET = "B机密"  # in every name of b1's records: never shown to team A (searched as 机密)
PDF = b"%PDF-1.4\n% b1's signed contract\n%%EOF\n"
USERS = [
    ("admin", ["admin"]),
    ("mgr.a", ["sales_manager"]),
    ("a1", ["sales_rep"]),
    ("mgr.b", ["sales_manager"]),
    ("b1", ["sales_rep"]),
]
ATTACKERS = ("a1", "mgr.a")
REFUSED = (403, 404, 405)
BAD_BODY = (400, 422)  # a body the route does not take: refused before any lookup

# Every route that takes an id, by endpoint: which of b1's objects it is called with.
RECORD_ROUTES = {
    "records.detail",
    "records.edit",
    "records.delete",
    "records.file",
    "flows.recall",
    "flows.submit",
    "parts.preview",
    "api.record",
    "api.record_file",
    "api.record_flow",
    "api.flow_recall",
    "api.flow_submit",
    "api.history",
}
TASK_ROUTES = {
    "flows.approve",
    "flows.reject",
    "flows.return_to",
    "flows.transfer",
    "flows.add_approver",
    "api.task_approve",
    "api.task_reject",
    "api.task_return",
    "api.task_transfer",
    "api.task_add_approver",
}
JOB_ROUTES = {
    "imports.job",
    "imports.report",
    "imports.status",
    "api.import_job",
    "api.import_report",
}
ID_ARGUMENTS = {"record_id", "task_id", "job_id"}


class World:
    def __init__(self, app: Flask) -> None:
        self.app = app
        with app.app_context():
            svc = services()
            svc.users.set_manager("a1", "mgr.a")
            svc.users.set_manager("b1", "mgr.b")
            self.tokens = {name: svc.users.create_token(name) for name, _ in USERS}
        b1 = self.auth("b1")
        api = app.test_client()
        self.customer = svc_create(
            app, "customer", {"name": f"{SECRET}客户", "email": "b@example.com", "owner": "b1"}
        )
        stored = api.post(
            "/api/v1/uploads?entity=contract&field=scan",
            data={"file": (io.BytesIO(PDF), "signed.pdf", "application/pdf")},
            content_type="multipart/form-data",
            headers=b1,
        )
        assert stored.status_code in (200, 201), stored.get_data(as_text=True)
        made = api.post(
            "/api/v1/contract",
            json={
                "subject": f"{SECRET}合同",
                "customer": self.customer,
                "total": "8000",
                "start_date": "2026-01-01",
                "end_date": "2026-12-31",
                "scan": stored.get_json()["key"],
            },
            headers=b1,
        )
        assert made.status_code == 201, made.get_data(as_text=True)
        self.contract = int(made.get_json()["id"])
        submitted = api.post(f"/api/v1/contract/{self.contract}/flow/submit", json={}, headers=b1)
        assert submitted.status_code == 200, submitted.get_data(as_text=True)
        tasks = api.get("/api/v1/tasks", headers=self.auth("mgr.b")).get_json()["data"]
        [self.task] = [t["task_id"] for t in tasks]
        started = api.post(
            "/api/v1/customer/import",
            data={
                "file": (
                    io.BytesIO(f"name,email\n{SECRET}导入,i@example.com\n".encode()),
                    "b.csv",
                    "text/csv",
                )
            },
            content_type="multipart/form-data",
            headers=b1,
        )
        assert started.status_code in (200, 202), started.get_data(as_text=True)
        self.job = int(started.get_json()["id"])
        # Team A's own record, so lists and exports are not empty for the wrong reason.
        svc_create(app, "customer", {"name": "A队客户", "email": "a@example.com", "owner": "a1"})

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def snapshot(self) -> dict[str, Any]:
        """What b1 owns and mgr.b is owed, read as the admin sees it."""
        api = self.app.test_client()
        admin = self.auth("admin")
        with self.app.app_context():
            engine = services().records.engine
        table = sa.table(NOTIFICATIONS_TABLE, sa.column("user"), sa.column("read_at"))
        with engine.connect() as conn:
            unread = conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.user.in_(["mgr.b", "b1"]), table.c.read_at.is_(None))
            ).scalar_one()
        return {
            "customer": api.get(f"/api/v1/customer/{self.customer}", headers=admin).get_json(),
            "contract": api.get(f"/api/v1/contract/{self.contract}", headers=admin).get_json(),
            "flow": api.get(f"/api/v1/contract/{self.contract}/flow", headers=admin).get_json(),
            "file": api.get(f"/api/v1/contract/{self.contract}/files/scan", headers=admin).data,
            "job": api.get(f"/api/v1/imports/{self.job}", headers=admin).get_json(),
            "unread": unread,
        }


def svc_create(app: Flask, entity: str, values: dict[str, Any]) -> int:
    with app.app_context():
        return services().records.create(entity, values, actor=SYSTEM).id


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    app = make_app(CRM, db_url, USERS, FORMFLOW_UPLOAD_DIR=str(tmp_path / "uploads"))
    yield World(app)
    app.extensions["formflow"].engine.dispose()


def _arguments(
    world: World, endpoint: str, arguments: set[str], other: int | None = None
) -> dict[str, Any]:
    """URL arguments naming b1's object (or ``other``, an id that does not exist)."""
    values: dict[str, Any] = {"entity": "contract", "field": "scan"}
    if endpoint in RECORD_ROUTES:
        values["record_id"] = other or world.contract
    elif endpoint in TASK_ROUTES:
        values["task_id"] = other or world.task
    elif endpoint in JOB_ROUTES:
        values.update(job_id=other or world.job, entity="customer")
    else:
        pytest.fail(f"{endpoint} takes {arguments & ID_ARGUMENTS}: classify it in test_idor.py")
    missing = arguments - set(values)
    assert not missing, f"teach this test a value for {missing} ({endpoint})"
    return {a: values[a] for a in arguments}


def _id_routes(app: Flask) -> list[tuple[str, str, set[str]]]:
    out = []
    for rule in app.url_map.iter_rules():
        if not set(rule.arguments) & ID_ARGUMENTS:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, rule.endpoint, set(rule.arguments)))
    return out


# Bodies a route may take (a body it does not take is refused before the lookup, so
# each route gets at least one it accepts): nothing, a comment, a person, a step.
BODIES: list[dict[str, str]] = [
    {},
    {"comment": "x"},
    {"user": "a1", "comment": "x"},
    {"step": "submitter", "comment": "x"},
    {"subject": "改掉", "name": "改掉"},
]


def _send(
    world: World,
    web: FlaskClient,
    api: FlaskClient,
    auth: dict[str, str],
    method: str,
    endpoint: str,
    url: str,
    form: dict[str, str],
) -> Any:
    if endpoint.startswith("api."):
        # With a version, so a write reaches the permission check (not a 428).
        headers = {**auth, "If-Match": '"1"'}
        return api.open(url, method=method, json=form, headers=headers)
    return web.open(url, method=method, data=form)


def _body(response: Any) -> str:
    return str(response.get_data(as_text=True)) if response.data else ""


def _web(app: Flask, user: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, user)
    return client


def test_every_route_with_an_id_refuses_another_teams_objects(
    world: World, record_property: Any
) -> None:
    before = world.snapshot()
    routes = _id_routes(world.app)
    classified = RECORD_ROUTES | TASK_ROUTES | JOB_ROUTES
    assert {endpoint for _m, endpoint, _a in routes} == classified
    tried = 0
    for user in ATTACKERS:
        web, api, auth = _web(world.app, user), world.app.test_client(), world.auth(user)
        for method, endpoint, arguments in routes:
            with world.app.test_request_context():
                url = url_for(endpoint, **_arguments(world, endpoint, arguments))
            with world.app.test_request_context():
                missing = url_for(endpoint, **_arguments(world, endpoint, arguments, 999_999))
            reached = False
            for form in BODIES:
                response = _send(world, web, api, auth, method, endpoint, url, form)
                tried += 1
                where = f"{user}: {method} {url} {sorted(form)}"
                assert response.status_code in REFUSED + BAD_BODY, (
                    f"{where} -> {response.status_code}: {_body(response)[:200]}"
                )
                assert SECRET not in _body(response), where
                assert PDF not in response.data, where
                # No oracle: the same request for an id that does not exist answers alike.
                twin = _send(world, web, api, auth, method, endpoint, missing, form)
                assert twin.status_code == response.status_code or (
                    {twin.status_code, response.status_code} <= {403, 404}
                ), f"{where}: {response.status_code}, for a missing id {twin.status_code}"
                reached = reached or response.status_code in REFUSED
            assert reached, f"{user}: {method} {url}: no body reached the object"
    after = world.snapshot()
    assert after == before
    assert after["flow"]["state"] == "pending" and after["unread"] > 0
    line = f"idor: {len(routes)} id routes x {len(ATTACKERS)} users, {tried} requests refused"
    print("\n" + line)
    record_property("counts", line)


def _csv_and_xlsx(response: Any) -> str:
    assert response.status_code == 200, _body(response)[:300]
    if response.data.startswith(b"PK"):
        book = openpyxl.load_workbook(io.BytesIO(response.data), read_only=True)
        return "\n".join(
            str(cell) for sheet in book.worksheets for row in sheet.values for cell in row
        )
    return _body(response)


def test_lists_search_pickers_exports_and_inboxes_hide_another_teams_records(
    world: World,
) -> None:
    before = world.snapshot()
    for user in ATTACKERS:
        web, api, auth = _web(world.app, user), world.app.test_client(), world.auth(user)
        pages = [
            "/e/customer",
            "/e/contract",
            f"/e/customer?q={SECRET[1:]}",
            f"/e/contract?q={SECRET[1:]}",
            "/e/contract?owner=b1",
            f"/e/contract/lookup?q={SECRET[1:]}&input=x",
            f"/e/customer/lookup?q={SECRET[1:]}&input=customer",
            f"/e/contract/pick?id={world.contract}&input=x",  # a reference picker by id
            f"/e/customer/pick?id={world.customer}&input=customer",
            "/inbox",
            "/inbox/submitted",
            "/notifications",
            "/",
        ]
        for page in pages:
            response = web.get(page)
            assert response.status_code in (200, *REFUSED), f"{user}: {page}"
            assert SECRET not in _body(response), f"{user}: {page}"
        for entity in ("customer", "contract"):
            for fmt in ("csv", "xlsx"):
                exported = web.get(f"/e/{entity}/export.{fmt}")
                assert SECRET not in _csv_and_xlsx(exported), f"{user}: web {entity}.{fmt}"
                exported = api.get(f"/api/v1/{entity}/export?format={fmt}", headers=auth)
                assert SECRET not in _csv_and_xlsx(exported), f"{user}: api {entity}.{fmt}"
            for query in ("", "?owner=b1", f"?q={SECRET[1:]}", "?limit=100"):
                listed = api.get(f"/api/v1/{entity}{query}", headers=auth)
                assert listed.status_code in (200, 400, 403), f"{user}: {entity}{query}"
                assert SECRET not in _body(listed), f"{user}: /api/v1/{entity}{query}"
        tasks = api.get("/api/v1/tasks", headers=auth)
        assert tasks.status_code == 200 and SECRET not in _body(tasks)
        assert world.task not in [t["task_id"] for t in tasks.get_json()["data"]]
        # Marking someone else's notifications read changes nothing of theirs.
        with world.app.app_context():
            engine = services().records.engine
        with engine.connect() as conn:
            ids = [
                str(r[0])
                for r in conn.execute(
                    sa.text(f'SELECT id FROM {NOTIFICATIONS_TABLE} WHERE "user" <> :u'),
                    {"u": user},
                )
            ]
        assert ids
        web.post("/notifications/read", data={"id": ids})
    # a1 sees their own team's customer (the lists were not simply empty).
    own = world.app.test_client().get("/api/v1/customer", headers=world.auth("a1"))
    assert re.search("A队客户", _body(own))
    assert world.snapshot() == before


def test_kpis_dashboards_forecast_and_commissions_count_only_the_viewers_scope(
    world: World,
) -> None:
    """a1's KPIs are over a1's records only; team B's filters are refused or empty."""
    for owner, amount in (("b1", "777777"), ("b1", "777777"), ("a1", "1111")):
        svc_create(
            world.app,
            "opportunity",
            {
                "name": f"{owner} 商机",
                "customer": world.customer,
                "amount": amount,
                "stage": "needs",
                "owner": owner,
                "lines": [{"product": "x", "qty": 1, "price": amount}],
            },
        )
    b_total = "1555554"  # b1's two opportunities: must never be counted for team A
    everyone = world.app.test_client().get(
        "/api/v1/kpis/open_pipeline?by=owner", headers=world.auth("admin")
    )
    assert {r["keys"]["owner"] for r in everyone.get_json()["rows"]} == {"a1", "b1"}
    assert str(everyone.get_json()["total"]["value"]).startswith("1556665")  # the data is there
    for user in ATTACKERS:
        api, auth = world.app.test_client(), world.auth(user)
        own = api.get("/api/v1/kpis/open_pipeline", headers=auth)
        assert own.status_code == 200, own.get_data(as_text=True)
        assert own.get_json()["total"]["value"] in ("1111", "1111.00"), (user, own.get_json())
        for query in ("by=owner", "by=team", "by=stage", "owner=b1", "team=mgr.b"):
            response = api.get(f"/api/v1/kpis/open_pipeline?{query}", headers=auth)
            assert response.status_code in (200, 400, 403), (user, query)
            text = _body(response)
            assert "777777" not in text and b_total not in text, (user, query, text[:300])
            if response.status_code == 200 and query.startswith(("owner", "team")):
                assert response.get_json()["total"]["value"] in (None, "0", "0.00"), (user, query)
            if response.status_code == 200 and query == "by=owner":
                owners = {r["keys"]["owner"] for r in response.get_json()["rows"]}
                assert owners <= {"a1", "mgr.a"}, (user, owners)
        deals = api.get("/api/v1/kpis/open_deals?by=owner", headers=auth)
        assert deals.status_code == 200 and "b1" not in {
            r["keys"]["owner"] for r in deals.get_json()["rows"]
        }
        board = "sales_rep" if user == "a1" else "sales_manager"
        for url in (
            f"/api/v1/dashboards/{board}",
            f"/api/v1/dashboards/{board}?owner=b1",
            f"/api/v1/dashboards/{board}?team=mgr.b",
            "/api/v1/forecast?by=owner",
            "/api/v1/forecast?owner=b1",
            "/api/v1/commissions/statement?rep=b1",
        ):
            response = api.get(url, headers=auth)
            assert response.status_code in (200, 400, 403, 404), (user, url)
            text = _body(response)
            assert "777777" not in text and b_total not in text and SECRET not in text, (user, url)
        refused = api.get("/api/v1/commissions/statement?rep=b1", headers=auth)
        assert refused.status_code == 403, (user, refused.status_code)
        web = _web(world.app, user)
        for page in (f"/d/{board}", f"/d/{board}?owner=b1", f"/d/{board}?team=mgr.b", "/forecast"):
            response = web.get(page)
            assert response.status_code in (200, 400, 403, 404), (user, page)
            text = _body(response)
            assert "777,777" not in text and "777777" not in text, (user, page)
            assert "1,555,554" not in text and SECRET not in text, (user, page)
