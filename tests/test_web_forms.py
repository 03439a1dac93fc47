"""Forms on SQLite and PostgreSQL: field errors in zh/en with values kept, conflicts, child rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from test_web_support import CRM, make_app, records, sign_in, text

from engine.records import Actor

ADMIN = Actor("admin", frozenset({"admin"}))


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(CRM, db_url, [("admin", ["admin"])])
    yield app
    records(app).engine.dispose()


@pytest.mark.parametrize(("lang", "message"), [("zh", "必填"), ("en", "is required")])
def test_create_with_errors_shows_them_next_to_fields_and_keeps_values(
    app: Flask, lang: str, message: str
) -> None:
    client = app.test_client()
    sign_in(client)
    response = client.post(
        f"/e/customer/new?lang={lang}",
        data={"name": "", "website": "not a url <b>", "employees": "12", "phone": "021-5555 1234"},
    )
    assert response.status_code == 422
    page = text(response)
    name_block = page.split('id="field-name"', 1)[1].split('class="ff-field', 1)[0]
    assert message in name_block
    assert 'value="12"' in page  # what the user typed is kept
    assert "not a url &lt;b&gt;" in page


def test_create_and_edit_round_trip_with_child_rows(app: Flask) -> None:
    svc = records(app)
    cid = svc.create("customer", {"name": "杭州云栖", "phone": "0571-8888 1234"}, actor=ADMIN).id
    client = app.test_client()
    sign_in(client)
    response = client.post(
        "/e/opportunity/new",
        data={
            "name": "云平台续约",
            "customer": str(cid),
            "stage": "lead",
            "amount": "1000",
            "lines.__rows": ["", "nA1", "nB2"],
            "lines.nA1.product": "服务器",
            "lines.nA1.qty": "2",
            "lines.nA1.price": "100",
            "lines.nB2.product": "交换机",
            "lines.nB2.qty": "1",
            "lines.nB2.price": "50.5",
        },
    )
    assert response.status_code == 302, text(response)
    oid = int(response.headers["Location"].rsplit("/", 1)[1])
    rec = svc.get("opportunity", oid)
    assert [r["product"] for r in rec.tables["lines"]] == ["服务器", "交换机"]
    first, second = rec.tables["lines"]
    page = text(client.get(f"/e/opportunity/{oid}/edit"))
    assert f'value="r{first["id"]}"' in page
    # Remove the first row, change the second, add one.
    response = client.post(
        f"/e/opportunity/{oid}/edit",
        data={
            "version": str(rec.version),
            "name": "云平台续约",
            "customer": str(cid),
            "stage": "lead",
            "amount": "1000",
            "lines.__rows": ["", f"r{second['id']}", "nC3"],
            f"lines.r{second['id']}.product": "交换机",
            f"lines.r{second['id']}.qty": "3",
            f"lines.r{second['id']}.price": "50.5",
            "lines.nC3.product": "机柜",
            "lines.nC3.qty": "1",
            "lines.nC3.price": "10",
        },
    )
    assert response.status_code == 302, text(response)
    rec = svc.get("opportunity", oid)
    assert [(r["product"], r["qty"]) for r in rec.tables["lines"]] == [("交换机", 3), ("机柜", 1)]
    # A bad cell shows its error next to the cell.
    response = client.post(
        f"/e/opportunity/{oid}/edit?lang=en",
        data={
            "version": str(rec.version),
            "lines.__rows": ["", "nD4"],
            "lines.nD4.product": "",
            "lines.nD4.qty": "0",
        },
    )
    assert response.status_code == 422
    page = text(response)
    assert 'id="err-lines.nD4.product"' in page
    assert 'id="err-lines.nD4.qty"' in page


def test_edit_with_stale_version_shows_conflict(app: Flask) -> None:
    svc = records(app)
    rec = svc.create("customer", {"name": "南京金陵百货", "phone": "025-8470 2000"}, actor=ADMIN)
    other_admin = Actor("wang.fang", frozenset({"admin"}))
    svc.update("customer", rec.id, {"employees": 5}, version=rec.version, actor=other_admin)
    client = app.test_client()
    sign_in(client)
    response = client.post(
        f"/e/customer/{rec.id}/edit?lang=en",
        data={"version": str(rec.version), "employees": "7"},
    )
    assert response.status_code == 409
    page = text(response)
    assert "wang.fang changed this record at" in page
    assert f"/e/customer/{rec.id}/edit" in page
    assert 'value="7"' in page
    assert svc.get("customer", rec.id).values["employees"] == 5


def test_delete_needs_post_and_confirms(app: Flask) -> None:
    svc = records(app)
    rec = svc.create("customer", {"name": "厦门鹭岛", "phone": "0592-1234 567"}, actor=ADMIN)
    client = app.test_client()
    sign_in(client)
    assert client.get(f"/e/customer/{rec.id}/delete").status_code == 200
    assert svc.get("customer", rec.id)
    response = client.post(f"/e/customer/{rec.id}/delete", data={"version": str(rec.version)})
    assert response.status_code == 302
    assert client.get(f"/e/customer/{rec.id}").status_code == 404


def test_preview_and_row_parts(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    response = client.get("/e/opportunity/rows/lines")
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "ff-rows-changed"
    assert 'name="lines.__rows"' in text(response)
    response = client.post("/e/opportunity/preview", data={"stage": "won"})
    assert response.status_code == 200
    page = text(response)
    assert 'id="state-win_reason"' in page
    assert 'id="state-win_reason" data-visible="1" data-required="1"' in page
