"""Every page renders for the CRM blueprint: sign-in, home, lists, detail, forms, delete."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from test_web_support import CRM, make_app, records, sign_in, text

from engine.records import Actor

ADMIN = Actor("admin", frozenset({"admin"}))


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(CRM, db_url, [("admin", ["admin"]), ("li.lei", ["sales_rep"])])
    yield app
    records(app).engine.dispose()


def seed(app: Flask) -> tuple[int, int]:
    svc = records(app)
    cid = svc.create(
        "customer",
        {
            "name": "上海华东机电有限公司",
            "level": "B",
            "industry": "manufacturing",
            "annual_revenue": "5000000",
            "phone": "021-5555 1234",
        },
        actor=ADMIN,
        via="system",
    ).id
    oid = svc.create(
        "opportunity",
        {
            "name": "2026 年度设备采购",
            "customer": cid,
            "stage": "proposal",
            "amount": "1234.5",
            "close_date": "2099-11-27",
            "lines": [{"product": "数控机床", "qty": 2, "price": "300"}],
        },
        actor=ADMIN,
        via="system",
    ).id
    return cid, oid


def test_every_page_requires_sign_in(app: Flask) -> None:
    client = app.test_client()
    for url in ("/", "/e/customer", "/e/customer/1", "/e/customer/new", "/e/customer/1/edit"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/signin" in response.headers["Location"]
    assert client.get("/signin").status_code == 200


def test_pages_render_in_both_languages(app: Flask) -> None:
    cid, oid = seed(app)
    client = app.test_client()
    sign_in(client)
    for lang in ("zh", "en"):
        for url in (
            "/",
            "/e/customer",
            "/e/opportunity",
            "/e/contact",
            "/e/visit",
            "/e/contract",
            f"/e/customer/{cid}",
            f"/e/opportunity/{oid}",
            "/e/customer/new",
            "/e/opportunity/new",
            "/e/visit/new",
            "/e/contract/new",
            f"/e/customer/{cid}/edit",
            f"/e/opportunity/{oid}/edit",
            f"/e/opportunity/{oid}/delete",
        ):
            response = client.get(f"{url}?lang={lang}")
            assert response.status_code == 200, (url, text(response)[:2000])
    client.get("/?lang=zh")
    page = text(client.get(f"/e/opportunity/{oid}"))
    assert "¥1,234.50" in page
    assert "2099年11月27日" in page
    assert "上海华东机电有限公司" in page  # the customer's title, not #1
    page = text(client.get(f"/e/opportunity/{oid}?lang=en"))
    assert "Nov 27, 2099" in page
    assert "CN¥1,234.50" in page  # in English a bare ¥ is the yen
    customer = text(client.get(f"/e/customer/{cid}?lang=en"))
    assert "2026 年度设备采购" in customer  # related opportunities


def test_history_names_referenced_records_by_title(app: Flask) -> None:
    svc = records(app)
    first, oid = seed(app)
    other = {"name": "南京金陵百货", "level": "C", "phone": "025-8888 0000"}
    second = svc.create("customer", other, actor=ADMIN).id
    svc.update("opportunity", oid, {"customer": second}, version=1, actor=ADMIN)
    client = app.test_client()
    sign_in(client)
    history = text(client.get(f"/e/opportunity/{oid}")).split('class="ff-timeline"')[1]
    assert "<del>上海华东机电有限公司</del> → 南京金陵百货" in history
    assert f"#{first}" not in history and f"#{second}" not in history
    # A record that is gone keeps its number: there is no title left to show.
    svc.delete("customer", first, version=1, actor=ADMIN)
    history = text(client.get(f"/e/opportunity/{oid}")).split('class="ff-timeline"')[1]
    assert f"<del>#{first}</del> → 南京金陵百货" in history


def test_unknown_record_is_404(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    assert client.get("/e/customer/999").status_code == 404
    assert client.get("/e/nothing").status_code == 404
    assert client.get("/e/customer/999/edit").status_code == 404
