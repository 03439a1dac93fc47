"""GET /api/v1/kpis and /api/v1/kpis/<name>: the caller's numbers, encoded like the API."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from test_web_support import CRM, make_app, records

from engine.records import SYSTEM
from engine.web.services import services

DEALS = [
    ("rep", "won", "100.00", "2026-01-05"),
    ("rep", "lost", "50.00", "2026-02-05"),
    ("rep2", "won", "70.00", "2026-02-15"),
    ("rep2", "proposal", "300.00", "2099-03-01"),
    ("mgr", "needs", "10.00", "2099-03-31"),
]


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(
        CRM,
        db_url,
        [
            ("admin", ["admin"]),
            ("mgr", ["sales_manager"]),
            ("rep", ["sales_rep"]),
            ("rep2", ["sales_rep"]),
        ],
    )
    with app.app_context():
        users = services().users
        users.set_manager("rep", "mgr")
        users.set_manager("rep2", "mgr")
        customer = records(app).create("customer", {"name": "Acme", "email": "a@x.example"})
        for i, (owner, stage, amount, day) in enumerate(DEALS):
            values = {
                "name": f"Deal {i}",
                "customer": customer.id,
                "stage": stage,
                "amount": Decimal(amount),
                "close_date": day,
                "owner": owner,
                "win_reason": "price" if stage == "won" else None,
            }
            records(app).create("opportunity", values, actor=SYSTEM, via="system")
    yield app
    records(app).engine.dispose()


def get(app: Flask, path: str, user: str = "admin") -> tuple[int, Any]:
    with app.app_context():
        token = services().users.create_token(user)
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.get_json()


def test_the_list_holds_the_kpis_the_caller_may_see(app: Flask) -> None:
    status, body = get(app, "/api/v1/kpis?lang=en")
    assert status == 200
    names = [k["name"] for k in body["data"]]
    # The CRM's KPIs in blueprint order (analytics.yaml adds the open pipeline ones).
    assert names == ["revenue", "win_rate", "pipeline", "open_pipeline", "open_deals"]
    win = body["data"][1]
    assert win["label"] == "Win rate" and win["format"] == "percent"
    assert win["target"] == "constant" and win["url"] == "/api/v1/kpis/win_rate"
    assert body["data"][0]["target"] == "entity"


def test_a_kpi_with_rows_targets_and_drill_filters(app: Flask) -> None:
    status, body = get(app, "/api/v1/kpis/win_rate?by=owner&lang=en")
    assert status == 200, body
    rows = {r["keys"]["owner"]: r for r in body["rows"]}
    assert rows["rep"]["value"] == "50" and rows["rep"]["target"] == 30
    assert rows["rep"]["attainment"] == "166.666667"
    assert rows["rep2"]["value"] == "100"
    assert rows["mgr"]["value"] is None and rows["mgr"]["attainment"] is None
    assert rows["rep"]["drill"] == {"owner": "rep"}
    assert body["total"]["value"] == "66.666667"
    assert body["period"] == {"name": "all", "start": None, "end": None}


def test_a_rep_sees_their_own_numbers_and_a_manager_the_team(app: Flask) -> None:
    _, rep = get(app, "/api/v1/kpis/win_rate", "rep")
    assert rep["total"]["value"] == "50"
    _, mgr = get(app, "/api/v1/kpis/pipeline?by=team", "mgr")
    assert {r["keys"]["team"]: r["value"] for r in mgr["rows"]} == {"rep2": "180", "mgr": "3"}
    status, body = get(app, "/api/v1/kpis/pipeline?by=weighted&lang=en", "rep")
    assert status == 403 and "weighted" in body["error"]


def test_periods_compare_and_filters(app: Flask) -> None:
    status, body = get(
        app, "/api/v1/kpis/win_rate?period=custom&from=2026-02-01&to=2026-02-28&compare=1"
    )
    assert status == 200, body
    assert body["total"]["value"] == "50"  # one won, one lost in February
    assert body["previous_period"] == {
        "name": "before_custom",
        "start": "2026-01-04",
        "end": "2026-01-31",
    }
    assert body["total"]["previous"] == "100"
    assert body["total"]["change"] == "-50"
    _, team = get(app, "/api/v1/kpis/win_rate?team=mgr&owner=rep2")
    assert team["total"]["value"] == "100"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("nope", 404, "no KPI 'nope'"),
        ("win_rate?period=fortnight", 400, "unknown period"),
        ("win_rate?period=custom&from=2026-02-30", 400, "2026-02-30"),
        ("win_rate?by=colour", 400, "colour"),
        ("win_rate?colour=red", 400, "unknown parameter 'colour'"),
        ("win_rate?compare=maybe", 400, "compare"),
        ("win_rate?team=ghost", 400, "ghost"),
    ],
)
def test_bad_requests(app: Flask, query: str, status: int, message: str) -> None:
    got, body = get(
        app, f"/api/v1/kpis/{query}&lang=en" if "?" in query else f"/api/v1/kpis/{query}?lang=en"
    )
    assert got == status
    assert message in body["error"]


def test_chinese_labels(app: Flask) -> None:
    _, body = get(app, "/api/v1/kpis/pipeline?by=stage&lang=zh")
    assert [r["labels"]["stage"] for r in body["rows"]] == ["需求分析", "方案制定"]
    assert body["label"] == "加权商机（预测）"
