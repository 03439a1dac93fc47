"""The import page, background jobs with a polled status, reports and the import API.

On SQLite and PostgreSQL, with the CRM blueprint: who may import, an inline
import with its error table and annotated report, a background import polled
by htmx until it ends, CSRF and size limits, the list page's link, Chinese
pages, and ``POST /api/v1/<entity>/import`` / ``GET /api/v1/imports/<id>``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import CRM, PASSWORD, csrf_token, make_app, records, sign_in, text

from engine.records import SYSTEM
from engine.storage.query import Query
from engine.web.importing import import_service
from engine.web.services import services

USERS = [
    ("admin", ["admin"]),
    ("wang.fang", ["sales_manager"]),
    ("li.lei", ["sales_rep"]),
    ("sun.li", ["finance"]),
]
GOOD = "客户名称 / Name,电话 / Phone\n甲公司,021-5555 0001\n乙公司,021-5555 0002\n"
BAD = (
    "客户名称 / Name,电话 / Phone,level\n甲公司,021-5555 0001,A\n乙公司,,B\n=1+2,021-5555 0003,C\n"
)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(
        CRM,
        db_url,
        USERS,
        FORMFLOW_UPLOAD_DIR=str(tmp_path / "uploads"),
        FORMFLOW_IMPORT_DIR=str(tmp_path / "imports"),
    )
    with app.app_context():
        services().users.set_manager("li.lei", "wang.fang")
    yield app
    records(app).engine.dispose()


def client_for(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, name)
    return client


def upload(client: FlaskClient, body: str | bytes, name: str = "客户.csv", **fields: str) -> Any:
    data = body.encode("utf-8") if isinstance(body, str) else body
    form: dict[str, Any] = {"file": (io.BytesIO(data), name), **fields}
    return client.post("/e/customer/import", data=form, content_type="multipart/form-data")


def customers(app: Flask) -> list[str]:
    query = Query(sort=("name",), limit=500)
    return [r["name"] for r in records(app).list_records("customer", query, actor=SYSTEM).rows]


def job_id_of(response: Any) -> int:
    match = re.search(r"/e/customer/import/(\d+)$", response.headers["Location"])
    assert match, response.headers.get("Location")
    return int(match.group(1))


# --------------------------------------------------------------------------- pages


def test_the_list_page_links_the_import_page_for_creators(app: Flask) -> None:
    rep = client_for(app, "li.lei")
    assert 'href="/e/customer/import"' in text(rep.get("/e/customer"))
    page = rep.get("/e/customer/import")
    assert page.status_code == 200 and 'type="file" name="file"' in text(page)
    finance = client_for(app, "sun.li")  # may read customers, not create them
    assert 'href="/e/customer/import"' not in text(finance.get("/e/customer"))
    assert finance.get("/e/customer/import").status_code == 403
    assert rep.get("/e/nothing/import").status_code == 404
    anonymous = app.test_client().get("/e/customer/import")
    assert anonymous.status_code == 302 and "/signin" in anonymous.headers["Location"]


def test_an_inline_import_shows_its_result(app: Flask) -> None:
    client = client_for(app, "li.lei")
    response = upload(client, GOOD)
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    body = text(page)
    assert page.status_code == 200 and "hx-trigger" not in body
    assert "2 created" in body or "新建 2 条" in body
    assert customers(app) == sorted(["乙公司", "甲公司"])
    owners = {r["owner"] for r in records(app).list_records("customer", actor=SYSTEM).rows}
    assert owners == {"li.lei"}


def test_errors_are_listed_with_a_report_to_download(app: Flask) -> None:
    client = client_for(app, "admin")
    response = upload(client, BAD, partial="", mode="all")
    page = client.get(response.headers["Location"] + "?lang=en")
    body = text(page)
    assert "nothing written" in body and "ff-import-errors" in body
    assert "A-level customers need annual revenue" in body  # row 2
    assert "Give an email or a phone number" in body  # row 3
    assert customers(app) == []
    link = re.search(r'href="(/e/customer/import/\d+/report)"', body)
    assert link, body
    report = client.get(link.group(1))
    assert report.status_code == 200
    assert report.headers["Content-Disposition"].startswith("attachment")
    assert report.headers["X-Content-Type-Options"] == "nosniff"
    book = openpyxl.load_workbook(io.BytesIO(report.data))
    rows = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
    assert rows[0][-1] == "错误 / Errors" and [r[0] for r in rows[1:]] == ["2", "3"]
    # another user cannot see the job or its report
    other = client_for(app, "li.lei")
    assert other.get(response.headers["Location"]).status_code == 404
    assert other.get(link.group(1)).status_code == 404


def test_partial_mode_and_a_formula_payload(app: Flask) -> None:
    client = client_for(app, "admin")
    response = upload(client, BAD, mode="partial")
    body = text(client.get(response.headers["Location"] + "?lang=en"))
    assert "1 created" in body and "2 failed" in body
    assert customers(app) == ["=1+2"]  # data, stored as typed


def test_update_on_and_dry_run_from_the_form(app: Flask) -> None:
    client = client_for(app, "admin")
    records(app).create("customer", {"name": "甲公司", "phone": "021-5555 0000"})
    response = upload(client, GOOD, update_on="name", dry_run="1")
    body = text(client.get(response.headers["Location"] + "?lang=en"))
    assert "Dry run" in body and "would create 1, would update 1" in body
    assert customers(app) == ["甲公司"]
    response = upload(client, GOOD, update_on="name")
    body = text(client.get(response.headers["Location"] + "?lang=en"))
    assert "1 created, 1 updated" in body


def test_a_refused_file_shows_why_on_the_form(app: Flask) -> None:
    client = client_for(app, "admin")
    response = upload(client, b"PK\x03\x04 not really", name="客户.csv")
    assert response.status_code == 422
    assert "ZIP" in text(response)
    response = client.post("/e/customer/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 422


def test_a_large_file_is_imported_in_the_background(app: Flask) -> None:
    app.config["FORMFLOW_IMPORT_INLINE_KB"] = 0
    client = client_for(app, "li.lei")
    body = "name,phone\n" + "".join(f"公司{i:04d},021-5555 0000\n" for i in range(300))
    response = upload(client, body)
    job_id = job_id_of(response)
    with app.app_context():
        assert import_service().jobs.wait(job_id, timeout=120)
    page = text(client.get(response.headers["Location"] + "?lang=en"))
    assert "300 created" in page and "hx-trigger" not in page
    assert len(customers(app)) == 300


def test_the_status_fragment_polls_while_the_job_runs(app: Flask) -> None:
    client = client_for(app, "li.lei")
    with app.app_context():
        jobs = import_service().jobs
        job_id = jobs.create(
            user="li.lei",
            entity="customer",
            file_name="x.csv",
            mode="all",
            update_on=None,
            dry_run=False,
        )
        jobs.started(job_id)
        jobs.progress(job_id, 0.42, 4200)
    fragment = text(client.get(f"/e/customer/import/{job_id}/status?lang=en"))
    assert f'hx-get="/e/customer/import/{job_id}/status"' in fragment
    assert 'hx-trigger="every 1s"' in fragment and 'hx-swap="outerHTML"' in fragment
    assert '<progress value="42" max="100">' in fragment and "4,200 rows read" in fragment
    with app.app_context():
        jobs.finished(job_id, state="failed")
    done = text(client.get(f"/e/customer/import/{job_id}/status"))
    assert "hx-trigger" not in done and 'id="import-status"' in done


def test_an_interrupted_job_reads_as_failed(app: Flask) -> None:
    client = client_for(app, "li.lei")
    with app.app_context():
        jobs = import_service().jobs
        job_id = jobs.create(
            user="li.lei",
            entity="customer",
            file_name="x.csv",
            mode="all",
            update_on=None,
            dry_run=False,
        )
        table = jobs.table
        with jobs.engine.begin() as conn:  # a worker of this host that has ended
            conn.execute(
                table.update()
                .where(table.c.id == job_id)
                .values(state="running", worker=f"{_host()}:999999999")
            )
    page = text(client.get(f"/e/customer/import/{job_id}?lang=en"))
    assert "interrupted" in page and "hx-trigger" not in page


def _host() -> str:
    import socket

    return socket.gethostname()


def test_csrf_and_the_size_limit(db_url: str, tmp_path: Path) -> None:
    app = make_app(
        CRM,
        db_url,
        USERS,
        WTF_CSRF_ENABLED=True,
        FORMFLOW_UPLOAD_DIR=str(tmp_path / "uploads"),
        FORMFLOW_IMPORT_DIR=str(tmp_path / "imports"),
        FORMFLOW_IMPORT_MAX_MB=0.01,
    )
    try:
        client = app.test_client()
        signin = csrf_token(text(client.get("/signin")))
        client.post("/signin", data={"name": "admin", "password": PASSWORD, "csrf_token": signin})
        refused = upload(client, GOOD)
        assert refused.status_code == 400 and customers(app) == []
        token = csrf_token(text(client.get("/e/customer/import")))
        accepted = upload(client, GOOD, csrf_token=token)
        assert accepted.status_code == 302 and len(customers(app)) == 2
        big = "name,phone\n" + "x" * 20_000 + ",1\n"
        too_large = upload(client, big, csrf_token=token)
        assert too_large.status_code == 413
    finally:
        records(app).engine.dispose()


def test_the_pages_speak_chinese(app: Flask) -> None:
    client = client_for(app, "admin")
    page = text(client.get("/e/customer/import?lang=zh"))
    assert "导入客户" in page and "全部或全不" in page and "试运行" in page
    response = upload(client, BAD)
    result = text(client.get(response.headers["Location"] + "?lang=zh"))
    assert "导入失败，未写入任何数据" in result and "下载带批注的报告" in result
    assert "邮箱和电话至少填写一项" in result


# --------------------------------------------------------------------------- API


def api_client(app: Flask, user: str) -> tuple[FlaskClient, dict[str, str]]:
    with app.app_context():
        token = services().users.create_token(user)
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def test_the_api_imports_a_file(app: Flask) -> None:
    client, auth = api_client(app, "li.lei")
    response = client.post(
        "/api/v1/customer/import?lang=en",
        data={"file": (io.BytesIO(BAD.encode()), "c.csv"), "mode": "partial"},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    job = response.get_json()
    assert job["state"] == "done" and (job["created"], job["failed"]) == (1, 2)
    assert [e["row"] for e in job["errors"]] == [2, 3] and job["errors_total"] == 2
    assert job["report_url"] == f"/api/v1/imports/{job['id']}/report"
    again = client.get(job["status_url"], headers=auth)
    assert again.status_code == 200 and again.get_json()["id"] == job["id"]
    report = client.get(job["report_url"], headers=auth)
    assert report.status_code == 200 and report.data.startswith(b"PK")
    other, other_auth = api_client(app, "wang.fang")
    assert other.get(job["status_url"], headers=other_auth).status_code == 404


def test_the_api_runs_large_files_in_the_background(app: Flask) -> None:
    app.config["FORMFLOW_IMPORT_INLINE_KB"] = 0
    client, auth = api_client(app, "admin")
    response = client.post(
        "/api/v1/customer/import",
        data={"file": (io.BytesIO(GOOD.encode()), "c.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == job["status_url"]
    with app.app_context():
        assert import_service().jobs.wait(job["id"], timeout=120)
    done = client.get(job["status_url"], headers=auth).get_json()
    assert done["state"] == "done" and done["created"] == 2 and done["progress"] == 1.0


def test_the_api_refuses_what_it_cannot_import(app: Flask) -> None:
    client, auth = api_client(app, "sun.li")
    forbidden = client.post(
        "/api/v1/customer/import",
        data={"file": (io.BytesIO(GOOD.encode()), "c.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert forbidden.status_code == 403
    client, auth = api_client(app, "admin")
    bad = client.post(
        "/api/v1/customer/import?lang=en",
        data={"file": (io.BytesIO(b"name\nx\n"), "c.xlsx")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and "Excel workbook" in bad.get_json()["error"]
    assert client.get("/api/v1/imports/999", headers=auth).status_code == 404
    assert client.get("/api/v1/customer/import", headers=auth).status_code == 405
    no_token = client.post("/api/v1/customer/import", data={})
    assert no_token.status_code == 401
