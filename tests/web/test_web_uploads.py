"""File fields in forms, downloads and the JSON API, on SQLite and PostgreSQL.

The CRM: ``opportunity.attachment`` (pdf, docx, xlsx, pptx, png, jpg; 20 MB),
``visit.photo`` (jpg, png; 5 MB). Hostile input: SVG with script, HTML renamed
.png, a ``text/html;image/png`` MIME type, ``../../etc/passwd``, over-size files,
another user's key forged into a record; all refused or served inertly.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import CRM, csrf_token, make_app, records, sign_in, text

from engine.records import SYSTEM
from engine.web.services import services

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
USERS = [
    ("admin", ["admin"]),
    ("wang.fang", ["sales_manager"]),
    ("li.lei", ["sales_rep"]),
    ("han.meimei", ["sales_rep"]),
    ("sun.li", ["finance"]),
]


@pytest.fixture
def app(db_url: str, tmp_path: Any) -> Iterator[Flask]:
    app = make_app(CRM, db_url, USERS, FORMFLOW_UPLOAD_DIR=str(tmp_path / "uploads"))
    with app.app_context():
        users = services().users
        users.set_manager("li.lei", "wang.fang")
        users.set_manager("han.meimei", "wang.fang")
    yield app
    records(app).engine.dispose()


def client_for(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, name)
    return client


def customer(app: Flask, owner: str = "li.lei") -> int:
    data = {"name": f"客户{owner}", "phone": "021-5555 1234", "owner": owner}
    return records(app).create("customer", data, actor=SYSTEM).id


def opportunity_form(cid: int, **extra: Any) -> dict[str, Any]:
    return {"name": "设备采购", "customer": str(cid), "stage": "lead", "amount": "1000", **extra}


def post_new(client: FlaskClient, data: dict[str, Any], lang: str = "en") -> Any:
    return client.post(
        f"/e/opportunity/new?lang={lang}", data=data, content_type="multipart/form-data"
    )


def created_id(response: Any) -> int:
    assert response.status_code == 302, text(response)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def field_block(page: str, name: str) -> str:
    return page.split(f'id="field-{name}"', 1)[1].split('class="ff-field', 1)[0]


def token_for(app: Flask, user: str) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {services().users.create_token(user)}"}


# -- forms ------------------------------------------------------------------------------------


def test_the_form_is_multipart_and_previews_leave_files_out(app: Flask) -> None:
    page = text(client_for(app, "li.lei").get("/e/opportunity/new?lang=en"))
    form = re.search(r'<form method="post" action="/e/opportunity/new"[^>]*>', page)
    assert form is not None
    assert 'enctype="multipart/form-data"' in form.group(0)
    assert 'hx-params="not attachment.__upload"' in form.group(0)
    block = field_block(page, "attachment")
    assert 'type="file"' in block and 'name="attachment.__upload"' in block
    assert 'accept=".docx,.jpg,.pdf,.png,.pptx,.xlsx"' in block
    assert "Up to 20 MB; allowed: docx, jpg, pdf, png, pptx, xlsx" in block
    zh = text(client_for(app, "li.lei").get("/e/opportunity/new?lang=zh"))
    assert "最大 20 MB；允许：docx, jpg, pdf, png, pptx, xlsx" in zh
    # an entity without file fields keeps a plain form
    plain = text(client_for(app, "li.lei").get("/e/customer/new"))
    assert "multipart" not in plain


def test_upload_download_replace_and_remove_through_the_form(app: Flask) -> None:
    client = client_for(app, "li.lei")
    cid = customer(app)
    data = opportunity_form(cid, **{"attachment.__upload": (io.BytesIO(PDF), "方案 v1.pdf")})
    oid = created_id(post_new(client, data))
    svc = records(app)
    key = svc.get("opportunity", oid).values["attachment"]
    assert key.endswith("/方案 v1.pdf")
    detail = text(client.get(f"/e/opportunity/{oid}?lang=en"))
    url = f"/e/opportunity/{oid}/files/attachment"
    assert f'<a href="{url}">方案 v1.pdf</a>' in detail
    got = client.get(url)
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E6%96%B9%E6%A1%88%20v1.pdf" in got.headers["Content-Disposition"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    # the edit form shows the file with its link and a way to remove it
    page = text(client.get(f"/e/opportunity/{oid}/edit?lang=en"))
    block = field_block(page, "attachment")
    assert f'<input type="hidden" name="attachment" value="{key}">' in block
    assert f'<a href="{url}" download>方案 v1.pdf</a>' in block
    assert 'name="attachment.__remove" value="1"' in block and "Remove this file" in block
    # replace it with a PNG
    rec = svc.get("opportunity", oid)
    response = client.post(
        f"/e/opportunity/{oid}/edit",
        data={
            "version": str(rec.version),
            "attachment": key,
            "attachment.__upload": (io.BytesIO(PNG), "图.png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, text(response)
    rec = svc.get("opportunity", oid)
    assert rec.values["attachment"].endswith("/图.png")
    assert client.get(url).data == PNG
    # saving without touching the file keeps it
    response = client.post(
        f"/e/opportunity/{oid}/edit",
        data={"version": str(rec.version), "attachment": rec.values["attachment"], "notes": "x"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    rec = svc.get("opportunity", oid)
    assert rec.values["attachment"].endswith("/图.png")
    # remove it
    response = client.post(
        f"/e/opportunity/{oid}/edit",
        data={
            "version": str(rec.version),
            "attachment": rec.values["attachment"],
            "attachment.__remove": "1",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert svc.get("opportunity", oid).values["attachment"] is None
    assert client.get(url).status_code == 404
    history = text(client.get(f"/e/opportunity/{oid}?lang=en")).split("ff-timeline", 1)[1]
    assert "Proposal file: <del>图.png</del> → —" in history


def test_a_failed_save_keeps_the_upload_and_shows_every_error(app: Flask) -> None:
    client = client_for(app, "li.lei")
    cid = customer(app)
    data = opportunity_form(cid, name="", **{"attachment.__upload": (io.BytesIO(PDF), "a.pdf")})
    response = post_new(client, data)
    assert response.status_code == 422
    page = text(response)
    assert "is required" in field_block(page, "name")
    block = field_block(page, "attachment")
    held = re.search(r'<input type="hidden" name="attachment" value="([^"]+)">', block)
    assert held and held.group(1).endswith("/a.pdf")
    assert "a.pdf <small>(uploaded; kept when you save)</small>" in block
    response = post_new(client, opportunity_form(cid, attachment=held.group(1)))
    oid = created_id(response)
    assert records(app).get("opportunity", oid).values["attachment"] == held.group(1)


@pytest.mark.parametrize(
    ("name", "data", "mime", "message"),
    [
        ("logo.svg", SVG, "image/svg+xml", "file type not allowed"),
        ("../../etc/passwd", b"root:x:0:0", "text/plain", "file type not allowed"),
        ("page.html", HTML, "text/html;image/png", "file type not allowed"),
        ("big.png", PNG + b"\x00" * (5 * 1024 * 1024), "image/png", "larger than 5 MB"),
        ("empty.png", b"", "image/png", "the file is empty"),
    ],
)
def test_hostile_form_uploads_are_refused_next_to_the_field(
    app: Flask, name: str, data: bytes, mime: str, message: str
) -> None:
    client = client_for(app, "li.lei")
    cid = customer(app)
    response = client.post(
        "/e/visit/new?lang=en",
        data={
            "subject": "拜访",
            "customer": str(cid),
            "summary": "",  # a second error, shown as well
            "photo.__upload": (io.BytesIO(data), name, mime),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    page = text(response)
    assert message in field_block(page, "photo")
    assert "is required" in field_block(page, "summary")
    assert records(app).list_records("visit").rows == []


def test_html_renamed_png_is_served_inertly(app: Flask) -> None:
    client = client_for(app, "li.lei")
    cid = customer(app)
    response = client.post(
        "/e/visit/new",
        data={
            "subject": "拜访",
            "customer": str(cid),
            "summary": "现场沟通了十分钟以上",
            "photo.__upload": (io.BytesIO(HTML), "photo.png", "text/html;image/png"),
        },
        content_type="multipart/form-data",
    )
    vid = created_id(response)
    got = client.get(f"/e/visit/{vid}/files/photo")
    assert got.status_code == 200 and got.data == HTML
    assert got.headers["Content-Type"] == "application/octet-stream"  # not image/png, not html
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_a_forged_key_in_the_form_is_refused(app: Flask) -> None:
    with app.app_context():
        han = services().users.get("han.meimei").actor
        theirs = services().uploads.store(
            "opportunity", "attachment", "h.pdf", io.BytesIO(PDF), actor=han
        )
    client = client_for(app, "li.lei")
    cid = customer(app)
    response = post_new(client, opportunity_form(cid, attachment=theirs.key), lang="zh")
    assert response.status_code == 422
    assert "没有你为此字段上传的这个文件" in field_block(text(response), "attachment")
    assert records(app).list_records("opportunity").rows == []


def test_downloads_need_a_readable_record(app: Flask) -> None:
    li = client_for(app, "li.lei")
    oid = created_id(
        post_new(
            li,
            opportunity_form(customer(app), **{"attachment.__upload": (io.BytesIO(PDF), "x.pdf")}),
        )
    )
    url = f"/e/opportunity/{oid}/files/attachment"
    assert client_for(app, "han.meimei").get(url).status_code == 404  # another rep's deal
    assert client_for(app, "wang.fang").get(url).status_code == 200  # their manager
    assert client_for(app, "sun.li").get(url).status_code == 200  # finance reads all
    assert li.get(f"/e/opportunity/{oid}/files/name").status_code == 404  # not a file field
    assert li.get(f"/e/opportunity/{oid}/files/nothing").status_code == 404
    assert li.get(f"/e/opportunity/{oid + 1}/files/attachment").status_code == 404
    assert app.test_client().get(url).status_code == 302  # signed out: to the sign-in page


def test_csrf_is_still_enforced_on_multipart_forms(db_url: str, tmp_path: Any) -> None:
    app = make_app(
        CRM,
        db_url,
        [("li.lei", ["sales_rep"])],
        WTF_CSRF_ENABLED=True,
        FORMFLOW_UPLOAD_DIR=str(tmp_path / "up"),
    )
    try:
        client = app.test_client()
        page = text(client.get("/signin"))
        response = client.post(
            "/signin",
            data={"name": "li.lei", "password": "correct-horse-9", "csrf_token": csrf_token(page)},
        )
        assert response.status_code == 302
        cid = customer(app)
        upload = {"attachment.__upload": (io.BytesIO(PDF), "a.pdf")}
        refused = post_new(client, opportunity_form(cid, **upload))
        assert refused.status_code == 400
        token = csrf_token(text(client.get("/e/opportunity/new")))
        upload = {"attachment.__upload": (io.BytesIO(PDF), "a.pdf")}
        created_id(post_new(client, opportunity_form(cid, csrf_token=token, **upload)))
        [stored] = [p for p in (tmp_path / "up").rglob("*") if p.is_file()]
        assert stored.read_bytes() == PDF and "." not in stored.name  # by token, not by name
    finally:
        records(app).engine.dispose()


def test_a_body_over_every_limit_is_413(app: Flask) -> None:
    client = client_for(app, "li.lei")
    cid = customer(app)
    huge = b"\x00" * (10 * 1024 * 1024)  # over 4 MB + the 5 MB photo limit
    for lang, message in (("en", "The upload is too large"), ("zh", "上传的文件太大")):
        response = client.post(
            f"/e/visit/new?lang={lang}",
            data={"customer": str(cid), "photo.__upload": (io.BytesIO(huge), "p.png")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 413
        assert message in text(response)


# -- the JSON API ---------------------------------------------------------------------------------


def test_api_upload_then_record_then_download(app: Flask) -> None:
    client = app.test_client()
    auth = token_for(app, "li.lei")
    response = client.post(
        "/api/v1/uploads?entity=opportunity&field=attachment",
        data={"file": (io.BytesIO(PDF), "报价.pdf", "application/pdf")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["name"] == "报价.pdf" and body["size"] == len(PDF)
    assert body["content_type"] == "application/pdf"
    assert (body["entity"], body["field"]) == ("opportunity", "attachment")
    cid = customer(app)
    created = client.post(
        "/api/v1/opportunity",
        json={"name": "API", "customer": cid, "amount": "10", "attachment": body["key"]},
        headers=auth,
    )
    assert created.status_code == 201, created.get_json()
    oid = created.get_json()["id"]
    assert created.get_json()["attachment"] == body["key"]
    got = client.get(f"/api/v1/opportunity/{oid}/files/attachment", headers=auth)
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Disposition"].startswith("attachment;")
    other = token_for(app, "han.meimei")
    missing = client.get(f"/api/v1/opportunity/{oid}/files/attachment", headers=other)
    assert missing.status_code == 404 and missing.is_json
    # entity and field as form fields work too
    response = client.post(
        "/api/v1/uploads",
        data={"entity": "visit", "field": "photo", "file": (io.BytesIO(PNG), "p.png")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201


def test_api_refuses_hostile_uploads_and_forged_keys(app: Flask) -> None:
    client = app.test_client()
    auth = token_for(app, "li.lei")

    def upload(name: str, data: bytes, query: str = "entity=visit&field=photo", **kw: Any) -> Any:
        return client.post(
            f"/api/v1/uploads?{query}&lang=en",
            data={"file": (io.BytesIO(data), name, kw.get("mime", "application/octet-stream"))},
            headers=kw.get("headers", auth),
            content_type="multipart/form-data",
        )

    for name, data, mime in (
        ("x.svg", SVG, "image/svg+xml"),
        ("x.html", HTML, "text/html;image/png"),
        ("../../etc/passwd", b"root", "text/plain"),
    ):
        response = upload(name, data, mime=mime)
        assert response.status_code == 422, name
        assert "file type not allowed" in response.get_json()["errors"]["file"][0]
    response = upload("big.png", PNG + b"\x00" * (5 * 1024 * 1024))
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"file": ["the file is larger than 5 MB"]}
    assert upload("p.png", PNG, "entity=visit&field=subject").status_code == 422
    assert upload("p.png", PNG, "entity=nothing&field=photo").status_code == 404
    assert upload("p.png", PNG, headers={}).status_code == 401
    # finance may only read opportunities: no uploads for them
    fin = token_for(app, "sun.li")
    assert upload("a.pdf", PDF, "entity=opportunity&field=attachment", headers=fin).status_code == (
        403
    )
    no_file = client.post("/api/v1/uploads?entity=visit&field=photo&lang=en", data={}, headers=auth)
    assert no_file.status_code == 422
    assert no_file.get_json()["errors"] == {"file": ["choose a file to upload"]}
    assert client.get("/api/v1/uploads", headers=auth).status_code == 405
    # an upload of han's, forged into li's record
    theirs = upload("h.png", PNG, headers=token_for(app, "han.meimei")).get_json()["key"]
    cid = customer(app)
    response = client.post(
        "/api/v1/visit?lang=en",
        json={"subject": "s", "customer": cid, "summary": "long enough text", "photo": theirs},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "photo": ["no file you uploaded for this field has this key"]
    }


def test_openapi_documents_uploads_and_downloads(app: Flask) -> None:
    doc = app.test_client().get("/api/v1/openapi.json", headers=token_for(app, "li.lei"))
    paths = doc.get_json()["paths"]
    post = paths["/api/v1/uploads"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Upload"
    }
    download = paths["/api/v1/opportunity/{id}/files/{field}"]["get"]
    assert "application/octet-stream" in download["responses"]["200"]["content"]
    assert "/api/v1/customer/{id}/files/{field}" not in paths  # no file fields there
