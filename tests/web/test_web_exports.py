"""Exports on the web: the list page's buttons, ``/e/<entity>/export.csv|xlsx`` and
``GET /api/v1/<entity>/export``, on SQLite and PostgreSQL, over the CRM blueprint.

Permissions hold on every path (a rep gets their own customers, never the
hidden ``weighted`` of an opportunity), the download is an attachment with a
UTF-8 file name, the CSV body is streamed, and every download is audited.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from test_web_support import CRM, make_app, records, sign_in, text

from engine.records import SYSTEM
from engine.web.services import services

USERS = [
    ("admin", ["admin"]),
    ("wang.fang", ["sales_manager"]),
    ("li.lei", ["sales_rep"]),
    ("han.meimei", ["sales_rep"]),
    ("sun.li", ["finance"]),
]


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(CRM, db_url, USERS)
    svc = records(app)
    for i, (owner, level) in enumerate(
        [("li.lei", "A"), ("li.lei", "B"), ("han.meimei", "A"), ("han.meimei", "C")]
    ):
        data = {
            "name": f"=HYPERLINK(客户{i})" if i == 0 else f"客户{i}",
            "phone": "021-5555 1234",
            "owner": owner,
            "level": level,
            "annual_revenue": str(2_000_000 * (i + 1)),
        }
        cid = svc.create("customer", data, actor=SYSTEM).id
        svc.create(
            "opportunity",
            {
                "name": f"商机{i}",
                "customer": cid,
                "stage": "proposal",
                "amount": "1000",
                "owner": owner,
                "lines": [{"product": "@SUM(A1)", "qty": 2, "price": "10"}],
            },
            actor=SYSTEM,
        )
    yield app
    svc.engine.dispose()


def client_for(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, name)
    return client


def csv_rows(response: Any) -> list[dict[str, str]]:
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    head, *body = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return [dict(zip(head, row, strict=True)) for row in body]


def history(app: Flask) -> list[Any]:
    with app.app_context():
        return services().exports.history()


def token(app: Flask, user: str) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {services().users.create_token(user)}"}


# -- the list page ---------------------------------------------------------------------------


def test_the_list_page_offers_exports_of_what_it_shows(app: Flask) -> None:
    client = client_for(app, "li.lei")
    page = text(client.get("/e/customer?level=A&q=客户&sort=name&lang=zh"))
    found = re.findall(r'href="([^"]+/export\.(csv|xlsx)[^"]*)"', page)
    links = {fmt: html.unescape(url) for url, fmt in found}
    assert set(links) == {"csv", "xlsx"}
    assert "导出 CSV" in page and "导出 Excel" in page
    assert links["csv"].startswith("/e/customer/export.csv?")
    assert "level=A" in links["csv"] and "sort=name" in links["csv"]
    response = client.get(links["csv"])
    assert response.status_code == 200
    rows = csv_rows(response)
    assert [r["客户名称 / Name"] for r in rows] == [
        "'=HYPERLINK(客户0)"
    ]  # own, level A, neutralised
    english = text(client.get("/e/customer?lang=en"))
    assert "Export CSV" in english and "Export Excel" in english


def test_a_csv_download_is_a_streamed_attachment(app: Flask) -> None:
    client = client_for(app, "admin")
    response = client.get("/e/customer/export.csv?lang=zh", buffered=False)
    assert response.status_code == 200
    assert response.is_streamed
    assert not isinstance(response.response, (list, tuple, bytes))  # not one buffered body
    assert response.content_type == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="customer-')
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition)
    assert encoded and unquote(encoded.group(1)).startswith("客户-")
    assert unquote(encoded.group(1)).endswith(".csv")
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    rows = csv_rows(response)
    response.close()
    assert len(rows) == 4
    entry = history(app)[0]
    assert (entry.user, entry.entity, entry.format, entry.rows, entry.via, entry.status) == (
        "admin",
        "customer",
        "csv",
        4,
        "web",
        "done",
    )
    assert entry.file_name == unquote(encoded.group(1))


def test_an_aborted_download_is_audited_as_aborted(app: Flask) -> None:
    client = client_for(app, "admin")
    response = client.get("/e/opportunity/export.xlsx", buffered=False)
    assert response.status_code == 200
    next(iter(response.response))  # the first bytes, then the client goes away
    response.close()
    entry = history(app)[0]
    assert (entry.format, entry.status, entry.rows) == ("xlsx", "aborted", 4)


def test_a_rep_downloads_own_records_without_hidden_fields(app: Flask) -> None:
    client = client_for(app, "li.lei")
    response = client.get("/e/opportunity/export.xlsx?lang=en")
    assert response.status_code == 200
    assert response.content_type.startswith("application/vnd.openxmlformats")
    assert "filename*=UTF-8''Opportunity-" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.get_data()))
    main = book.worksheets[0]
    head = [c.value for c in next(main.iter_rows())]
    assert "加权金额 / Weighted amount" not in head and "商机名称 / Name" in head
    names = [r[head.index("商机名称 / Name")].value for r in main.iter_rows(min_row=2)]
    assert names == ["商机0", "商机1"]
    lines = book["产品明细"]
    assert next(lines.iter_rows())[0].value == "编号 / ID"
    products = [r[1].value for r in lines.iter_rows(min_row=2)]
    assert products == ["'@SUM(A1)", "'@SUM(A1)"]
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            assert all(c.data_type != "f" for c in row)
    admin = load_workbook(
        io.BytesIO(client_for(app, "admin").get("/e/opportunity/export.xlsx").get_data())
    )
    assert "加权金额 / Weighted amount" in [c.value for c in next(admin.worksheets[0].iter_rows())]


def test_bad_requests(app: Flask) -> None:
    client = client_for(app, "li.lei")
    # a hidden field is as unknown as a misspelt one
    response = client.get("/e/opportunity/export.csv?weighted__gte=0&lang=en")
    assert response.status_code == 400 and "weighted" in text(response)
    assert client.get("/e/customer/export.csv?owner=han.meimei").get_data().count(b"\r\n") == 1
    assert client.get("/e/customer/export.pdf").status_code == 404
    assert client.get("/e/nope/export.csv").status_code == 404
    assert client.get("/e/customer/export.csv?headers=fancy").status_code == 400
    finance = client_for(app, "sun.li")
    assert finance.get("/e/visit/export.csv").status_code == 403
    anonymous = app.test_client().get("/e/customer/export.csv")
    assert anonymous.status_code == 302 and "/signin" in anonymous.headers["Location"]
    assert [e.status for e in history(app)] == ["done"]  # refused requests export nothing


# -- the API -----------------------------------------------------------------------------------


def test_the_api_exports_with_bearer_tokens(app: Flask) -> None:
    client = app.test_client()
    response = client.get(
        "/api/v1/customer/export?format=csv&level=A&refs=ids&headers=names",
        headers=token(app, "li.lei"),
    )
    assert response.status_code == 200, text(response)
    assert "attachment" in response.headers["Content-Disposition"]
    rows = csv_rows(response)
    assert [r["name"] for r in rows] == ["'=HYPERLINK(客户0)"]
    assert rows[0]["level"] == "A" and rows[0]["owner"] == "li.lei"
    entry = history(app)[0]
    assert (entry.via, entry.user, entry.rows) == ("api", "li.lei", 1)
    assert entry.filters["filters"] == [["level", "eq", "A"]]
    assert entry.filters["headers"] == "names" and entry.filters["refs"] == "ids"

    xlsx = client.get("/api/v1/opportunity/export?format=xlsx", headers=token(app, "admin"))
    assert xlsx.status_code == 200
    assert len(load_workbook(io.BytesIO(xlsx.get_data())).worksheets[0]["A"]) == 5


def test_api_errors_are_json(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/v1/customer/export").status_code == 401
    rep = token(app, "li.lei")
    bad = client.get("/api/v1/customer/export?format=pdf&lang=en", headers=rep)
    assert bad.status_code == 400 and bad.get_json()["param"] == "format"
    hidden = client.get("/api/v1/opportunity/export?weighted__gte=1&lang=en", headers=rep)
    assert hidden.status_code == 400 and "weighted" in hidden.get_json()["error"]
    denied = client.get("/api/v1/visit/export", headers=token(app, "sun.li"))
    assert denied.status_code == 403 and "error" in denied.get_json()
    assert client.get("/api/v1/nope/export", headers=rep).status_code == 404
    assert client.post("/api/v1/customer/export", headers=rep).status_code == 405


def test_the_export_is_in_the_openapi_document(app: Flask) -> None:
    doc = app.test_client().get("/api/v1/openapi.json", headers=token(app, "li.lei")).get_json()
    op = doc["paths"]["/api/v1/customer/export"]["get"]
    params = {p.get("name") for p in op["parameters"]}
    assert {"format", "headers", "refs", "level"} <= params
    assert set(op["responses"]["200"]["content"]) == {
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    opp = {p.get("name") for p in doc["paths"]["/api/v1/opportunity/export"]["get"]["parameters"]}
    assert "weighted" not in opp and "weighted__gte" not in opp
