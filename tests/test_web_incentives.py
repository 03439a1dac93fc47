"""The forecast and commission faces over the CRM template: ``/api/v1/forecast``,
``/api/v1/commissions/...`` and the ``/forecast`` and ``/commissions`` pages
(SQLite and PostgreSQL): scopes, 403s, bad input, menu links, snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import CRM, make_app, sign_in, text

from engine.records import SYSTEM
from engine.web.services import services


@dataclass
class Crm:
    app: Flask
    deals: dict[str, int]
    month: str

    def token(self, user: str) -> dict[str, str]:
        with self.app.app_context():
            return {"Authorization": f"Bearer {services().users.create_token(user)}"}

    def api(self, user: str, path: str, **kw: Any) -> Any:
        return self.app.test_client().get(path, headers=self.token(user), **kw)

    def client(self, user: str) -> FlaskClient:
        client = self.app.test_client()
        sign_in(client, user)
        return client


@pytest.fixture
def crm(db_url: str) -> Iterator[Crm]:
    app = make_app(
        CRM,
        db_url,
        [
            ("admin", ["admin"]),
            ("m", ["sales_manager"]),
            ("r1", ["sales_rep"]),
            ("r2", ["sales_rep"]),
            ("fin", ["finance"]),
        ],
    )
    deals: dict[str, int] = {}
    with app.app_context():
        s = services()
        s.users.set_manager("r1", "m")
        today = s.runtime.forecasts.today()
        customers = {
            owner: s.records.create(
                "customer",
                {"name": f"客户 {owner}", "phone": "021-12345678", "owner": owner},
                actor=SYSTEM,
                via="system",
            ).id
            for owner in ("r1", "r2")
        }
        for owner, name, stage, amount, override in (
            ("r1", "r1 proposal", "proposal", "1000", None),
            ("r1", "r1 contract", "contract", "2000", None),
            ("r1", "r1 lead to commit", "lead", "500", "commit"),
            ("r2", "r2 proposal", "proposal", "7000", None),
        ):
            data = {
                "name": name,
                "customer": customers[owner],
                "stage": stage,
                "amount": amount,
                "close_date": "2099-01-15",
                "owner": owner,
            }
            if override:
                data["forecast_category"] = override
            deals[name] = s.records.create("opportunity", data, actor=SYSTEM, via="system").id
        day = today.isoformat()
        s.records.create(
            "contract",
            {
                "subject": "r1 合同",
                "customer": customers["r1"],
                "total": "120000",
                "start_date": day,
                "end_date": day,
                "status": "approved",
                "signed_on": day,
                "owner": "r1",
            },
            actor=SYSTEM,
            via="system",
        )
        s.records.create(
            "sales_target",
            {"rep": "r1", "period_start": today.replace(day=1).isoformat(), "amount": "100000"},
            actor=SYSTEM,
            via="system",
        )
        month = today.strftime("%Y-%m")
    yield Crm(app, deals, month)
    with app.app_context():
        services().engine.dispose()


def test_api_forecast_in_the_callers_scope(crm: Crm) -> None:
    everyone = crm.api("admin", "/api/v1/forecast?by=category").get_json()
    cats = {r["keys"]["category"]: Decimal(r["amount"]) for r in everyone["rows"]}
    assert cats == {
        "best_case": Decimal("8000.00"),
        "commit": Decimal("2500.00"),
    }
    mine = crm.api("r1", "/api/v1/forecast?by=owner").get_json()
    assert [r["keys"]["owner"] for r in mine["rows"]] == ["r1"]
    assert Decimal(mine["total"]["amount"]) == Decimal("3500.00")
    team = crm.api("m", "/api/v1/forecast?by=owner").get_json()
    assert [r["keys"]["owner"] for r in team["rows"]] == ["r1"]
    bad = crm.api("r1", "/api/v1/forecast?by=colour")
    assert bad.status_code == 400
    assert crm.api("r1", "/api/v1/forecast?period=2026-13").status_code == 400
    assert crm.api("r1", "/api/v1/forecast?name=nope").status_code == 404


def test_api_snapshots_and_compare(crm: Crm) -> None:
    client = crm.app.test_client()
    taken = client.post("/api/v1/forecast/snapshots", json={"note": "Q1"}, headers=crm.token("m"))
    assert taken.status_code == 201, taken.get_data(as_text=True)
    snap = taken.get_json()
    assert snap["note"] == "Q1" and snap["user"] == "m"
    with crm.app.app_context():
        s = services()
        record = s.records.get("opportunity", crm.deals["r1 proposal"])
        s.records.update(
            "opportunity",
            record.id,
            {"stage": "contract"},
            version=record.version,
            actor=SYSTEM,
            via="system",
        )
    body = crm.api("m", f"/api/v1/forecast?compare_to={snap['id']}").get_json()
    commit = next(c for c in body["categories"] if c["category"] == "commit")
    assert [d["title"] for d in commit["entered"]] == ["r1 proposal"]
    assert commit["change"] == "1000.00"
    assert crm.api("r2", f"/api/v1/forecast?compare_to={snap['id']}").status_code == 403
    listed = crm.api("r1", "/api/v1/forecast/snapshots").get_json()
    assert listed["items"] == []  # m's snapshot is not r1's to see


def test_api_commission_statement_access(crm: Crm) -> None:
    own = crm.api("r1", f"/api/v1/commissions/statement?period={crm.month}")
    assert own.status_code == 200, own.get_data(as_text=True)
    body = own.get_json()
    assert (body["value"], body["target"], body["attainment"], body["total"]) == (
        "120000.00",
        "100000.00",
        "120.0",
        "4000.00",
    )
    assert body["records"][0]["amount"] == "120000.00"
    assert (
        crm.api("m", f"/api/v1/commissions/statement?rep=r1&period={crm.month}").status_code == 200
    )
    assert crm.api("fin", "/api/v1/commissions/statement?rep=r1").status_code == 200
    assert crm.api("r2", "/api/v1/commissions/statement?rep=r1").status_code == 403
    assert crm.api("m", "/api/v1/commissions/statement?rep=r2").status_code == 403
    assert crm.api("m", "/api/v1/commissions/statement?rep=ghost").status_code == 404
    impossible = crm.api("r1", "/api/v1/commissions/statement?period=2026-13&lang=en")
    assert impossible.status_code == 400 and "2026-13" in impossible.get_json()["error"]
    plans = crm.api("r1", "/api/v1/commissions/plans").get_json()["items"]
    assert plans[0]["tiers"] == [{"upto": "100", "rate": "3"}, {"upto": None, "rate": "5"}]


def test_pages_and_menu_links(crm: Crm) -> None:
    rep = crm.client("r1")
    home = text(rep.get("/"))
    assert 'href="/forecast"' in home and 'href="/commissions"' in home
    page = rep.get("/forecast")
    assert page.status_code == 200
    html = text(page)
    assert "¥3,500.00" in html and "¥7,000.00" not in html  # r1's deals only
    assert "ff-forecast" in html and "ff-rates" in html
    statement = text(rep.get(f"/commissions?period={crm.month}"))
    assert "¥4,000.00" in statement and "/e/contract/" in statement
    assert rep.get("/commissions?rep=r2").status_code == 403
    bad = rep.get("/commissions?period=2026-13")
    assert bad.status_code == 200 and "2026-13" in text(bad)
    manager = crm.client("m")
    picker = text(manager.get("/commissions?rep=r1"))
    assert 'name="rep"' in picker and "¥4,000.00" in picker
    fin = crm.client("fin")
    assert 'href="/forecast"' in text(fin.get("/"))


def test_taking_a_snapshot_on_the_page_shows_the_comparison(crm: Crm) -> None:
    manager = crm.client("m")
    response = manager.post("/forecast/snapshot", data={"note": "周一", "period": "all"})
    assert response.status_code == 302 and "compare_to=" in response.headers["Location"]
    page = text(manager.get(response.headers["Location"]))
    assert "ff-comparison" in page and "周一" in page
