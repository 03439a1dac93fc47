"""The JSON API under /api/v1 over the CRM blueprint, on SQLite and PostgreSQL.

Everything goes through the Flask test client with real bearer tokens: auth,
lists, one record, create/update/delete, history, permissions (IDOR), mass
assignment and the JSON error contract.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import CRM, make_app, records, sign_in

from engine.records import Actor
from engine.web.services import services

ADMIN = Actor("admin", frozenset({"admin"}))


@dataclass
class Api:
    """A test client that sends one user's bearer token."""

    client: FlaskClient
    token: str | None

    def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query_string: dict[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = raw if raw is not None else None if body is None else json.dumps(body)
        return self.client.open(
            url,
            method=method,
            data=data,
            headers=sent,
            content_type="application/json",
            query_string=query_string,
        )

    def get(self, url: str, **kw: Any) -> Any:
        return self.call("GET", url, **kw)

    def post(self, url: str, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", url, body, **kw)

    def patch(self, url: str, body: Any = None, **kw: Any) -> Any:
        return self.call("PATCH", url, body, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.call("DELETE", url, **kw)


@dataclass
class Env:
    app: Flask
    admin: Api
    rep_a: Api
    rep_b: Api
    finance: Api
    anonymous: Api


@pytest.fixture
def env(db_url: str) -> Iterator[Env]:
    app = make_app(
        CRM,
        db_url,
        [
            ("admin", ["admin"]),
            ("rep.a", ["sales_rep"]),
            ("rep.b", ["sales_rep"]),
            ("fin", ["finance"]),
        ],
    )
    with app.app_context():
        users = services().users
        tokens = {
            name: users.create_token(name, "tests") for name in ("admin", "rep.a", "rep.b", "fin")
        }
    yield Env(
        app,
        Api(app.test_client(), tokens["admin"]),
        Api(app.test_client(), tokens["rep.a"]),
        Api(app.test_client(), tokens["rep.b"]),
        Api(app.test_client(), tokens["fin"]),
        Api(app.test_client(), None),
    )
    records(app).engine.dispose()


def customer(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "email": f"{len(name)}@example.com", **extra}


def make_customer(api: Api, name: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/api/v1/customer", customer(name, **extra))
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


# -- authentication -------------------------------------------------------------------------


def test_every_endpoint_needs_a_bearer_token(env: Env) -> None:
    cid = make_customer(env.admin, "上海华东机电")["id"]
    for method, url in (
        ("GET", "/api/v1/customer"),
        ("POST", "/api/v1/customer"),
        ("GET", f"/api/v1/customer/{cid}"),
        ("PATCH", f"/api/v1/customer/{cid}"),
        ("DELETE", f"/api/v1/customer/{cid}"),
        ("GET", f"/api/v1/customer/{cid}/history"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/nothing/here"),
    ):
        response = env.anonymous.call(method, url, {"name": "x"})
        assert_json_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = Api(env.app.test_client(), "ff_not-a-real-token")
    response = bad.get("/api/v1/customer")
    assert_json_error(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    basic = env.anonymous.get("/api/v1/customer", headers={"Authorization": "Basic YTpi"})
    assert_json_error(basic, 401)
    in_query = env.anonymous.get(f"/api/v1/customer?access_token={env.admin.token}")
    assert_json_error(in_query, 401)


def test_a_session_cookie_alone_is_not_accepted(env: Env) -> None:
    client = env.app.test_client()
    sign_in(client, "admin")
    assert client.get("/e/customer").status_code == 200  # the cookie works for pages
    cookie_only = Api(client, None)
    assert_json_error(cookie_only.get("/api/v1/customer"), 401)
    # CSRF is off for the API, so a forged cross-site POST must get nothing either.
    assert_json_error(cookie_only.post("/api/v1/customer", customer("伪造的客户")), 401)
    assert env.admin.get("/api/v1/customer").get_json()["count"] == 0


def test_a_revoked_token_or_inactive_user_is_refused(env: Env) -> None:
    assert env.rep_a.get("/api/v1/customer").status_code == 200
    with env.app.app_context():
        services().users.revoke_token(str(env.rep_a.token))
    assert_json_error(env.rep_a.get("/api/v1/customer"), 401)
    with env.app.app_context():
        services().users.deactivate("rep.b")
    assert_json_error(env.rep_b.get("/api/v1/customer"), 401)


# -- lists ----------------------------------------------------------------------------------


def test_list_filters_sort_search_and_paging(env: Env) -> None:
    for i, (level, revenue) in enumerate(
        [("A", 5_000_000), ("A", 2_000_000), ("B", 900_000), ("C", 10), ("A", 3_000_000)]
    ):
        make_customer(env.admin, f"客户{i} Acme", level=level, annual_revenue=revenue)
    listed = env.admin.get("/api/v1/customer?level=A&sort=-annual_revenue&limit=2")
    assert listed.status_code == 200
    page = listed.get_json()
    assert set(page) >= {"data", "next_cursor", "has_more", "count", "count_capped"}
    assert [r["annual_revenue"] for r in page["data"]] == ["5000000", "3000000"]
    assert page["has_more"] is True and page["count"] == 3 and page["count_capped"] is False
    first = page["data"][0]
    assert list(first)[:7] == [
        "id",
        "version",
        "owner",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    ]
    assert first["owner"] == "admin" and first["tags"] == ["new"]
    nxt = env.admin.get(
        f"/api/v1/customer?level=A&sort=-annual_revenue&limit=2&after={page['next_cursor']}"
    ).get_json()
    assert [r["annual_revenue"] for r in nxt["data"]] == ["2000000"]
    assert nxt["has_more"] is False and nxt["next_cursor"] is None
    offset = env.admin.get("/api/v1/customer?sort=name&limit=2&offset=4").get_json()
    assert [r["name"] for r in offset["data"]] == ["客户4 Acme"]
    ranged = env.admin.get("/api/v1/customer?annual_revenue__between=1000,2500000").get_json()
    assert sorted(r["annual_revenue"] for r in ranged["data"]) == ["2000000", "900000"]
    assert env.admin.get("/api/v1/customer?q=客户3").get_json()["count"] == 1
    assert env.admin.get("/api/v1/customer?level__in=B,C&lang=en").get_json()["count"] == 2


def test_bad_list_queries_are_400_json(env: Env) -> None:
    body = assert_json_error(env.admin.get("/api/v1/customer?nmae=x&lang=en"), 400)
    assert body["param"] == "nmae"
    assert_json_error(env.admin.get("/api/v1/customer?limit=100000"), 400)
    assert_json_error(env.admin.get("/api/v1/customer?after=garbage"), 400)
    assert_json_error(env.admin.get("/api/v1/customer?sort=name;DROP TABLE x"), 400)
    assert_json_error(env.admin.get("/api/v1/opportunity?lines=1"), 400)


def test_a_filter_value_is_inert_sql(env: Env) -> None:
    make_customer(env.admin, "Acme")
    injections = ["' OR 1=1 --", "x'; DROP TABLE customer; --", '" OR ""="']
    for value in injections:
        for param in ("name", "name__contains", "q", "name__in", "website__contains", "owner"):
            response = env.admin.get("/api/v1/customer", query_string={param: value})
            assert response.status_code == 200, (param, response.get_json())
            assert response.get_json()["data"] == []
        assert_json_error(
            env.admin.get("/api/v1/customer", query_string={"annual_revenue__gte": value}), 400
        )
    assert env.admin.get("/api/v1/customer").get_json()["count"] == 1


def test_an_entity_the_caller_cannot_read_is_403_unknown_is_404(env: Env) -> None:
    assert_json_error(env.finance.get("/api/v1/visit"), 403)
    assert_json_error(env.admin.get("/api/v1/nothing"), 404)
    assert_json_error(env.admin.get("/api/v1/nothing/1"), 404)
    assert_json_error(env.admin.post("/api/v1/nothing", {"a": 1}), 404)


# -- one record -----------------------------------------------------------------------------


def seed_opportunity(env: Env) -> tuple[int, dict[str, Any]]:
    cid = make_customer(env.admin, "上海华东机电有限公司")["id"]
    response = env.admin.post(
        "/api/v1/opportunity",
        {
            "name": "2026 年度设备采购",
            "customer": cid,
            "stage": "proposal",
            "amount": 1234.5,
            "close_date": "2099-11-27",
            "next_visit": "2099-11-20T09:30:00",
            "lines": [
                {"product": "数控机床", "qty": 2, "price": "300.10"},
                {"product": "夹具", "qty": 1, "price": 0.1},
            ],
        },
    )
    assert response.status_code == 201, response.get_json()
    return cid, response.get_json()


def test_get_one_record_with_tables_and_etag(env: Env) -> None:
    _cid, created = seed_opportunity(env)
    response = env.admin.get(f"/api/v1/opportunity/{created['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    body = response.get_json()
    assert body == created
    assert body["amount"] == "1234.50"  # a string: exact
    assert body["probability"] == "60" and body["weighted"] == "740.70"
    assert body["close_date"] == "2099-11-27"
    assert body["next_visit"].startswith("2099-11-20T09:30:00+08:00")
    assert body["code"].startswith("OPP-")
    assert [(r["product"], r["qty"], r["price"], r["subtotal"]) for r in body["lines"]] == [
        ("数控机床", 2, "300.10", "600.20"),
        ("夹具", 1, "0.10", "0.10"),
    ]
    assert all(isinstance(r["id"], int) for r in body["lines"])
    assert body["total"] == "600.30"
    listed = env.admin.get("/api/v1/opportunity").get_json()["data"]
    assert listed[0]["id"] == body["id"] and "lines" not in listed[0]
    assert_json_error(env.admin.get("/api/v1/opportunity/999999"), 404)
    assert_json_error(env.admin.get("/api/v1/opportunity/abc"), 404)


def test_create_is_201_with_location(env: Env) -> None:
    response = env.rep_a.post("/api/v1/customer", customer("深圳新创科技"))
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/customer/{body['id']}")
    assert response.headers["ETag"] == '"1"'
    assert body["owner"] == "rep.a" and body["created_by"] == "rep.a" and body["version"] == 1
    assert body["level"] == "C"  # the default
    assert env.rep_a.get(response.headers["Location"]).get_json() == body
    history = env.rep_a.get(f"/api/v1/customer/{body['id']}/history").get_json()["data"]
    assert [(e["action"], e["via"], e["user"]) for e in history] == [("create", "api", "rep.a")]


def test_validation_errors_are_422_in_the_request_language(env: Env) -> None:
    bad = {"name": "X", "level": "Z", "nope": 1, "annual_revenue": "lots"}
    en = assert_json_error(env.admin.post("/api/v1/customer?lang=en", bad), 422)
    assert set(en["errors"]) >= {"name", "level", "nope", "annual_revenue"}
    assert en["errors"]["nope"] == ["unknown field"]
    zh = assert_json_error(env.admin.post("/api/v1/customer?lang=zh", bad), 422)
    assert zh["errors"]["nope"] == ["没有这个字段"]
    by_header = env.admin.post("/api/v1/customer", bad, headers={"Accept-Language": "en-US"})
    assert by_header.get_json()["errors"]["nope"] == ["unknown field"]
    assert by_header.headers["Content-Language"] == "en"
    default = env.admin.post("/api/v1/customer", bad).get_json()  # the blueprint's: zh
    assert default["errors"]["nope"] == ["没有这个字段"]
    rule = env.admin.post("/api/v1/customer?lang=en", {"name": "Acme Ltd"}).get_json()
    assert rule["errors"]["_record"] == ["Give an email or a phone number"]
    child = env.admin.post(
        "/api/v1/opportunity?lang=en",
        {"name": "x", "customer": 999, "amount": "1", "lines": [{"qty": 0}]},
    ).get_json()
    assert "customer" in child["errors"]
    assert any(key.startswith("lines") for key in child["errors"])
    assert env.admin.get("/api/v1/customer").get_json()["count"] == 0


def test_idempotency_key(env: Env) -> None:
    key = {"Idempotency-Key": "order-7f3a"}
    first = env.rep_a.post("/api/v1/customer", customer("重试客户"), headers=key)
    again = env.rep_a.post("/api/v1/customer", customer("重试客户"), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert env.admin.get("/api/v1/customer").get_json()["count"] == 1
    # Keys are per user: rep.b's same key is a new create, not rep.a's record.
    other = env.rep_b.post("/api/v1/customer", customer("另一个客户"), headers=key)
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    assert env.admin.get("/api/v1/customer").get_json()["count"] == 2
    # A failed create stores nothing under the key: the corrected retry creates.
    key2 = {"Idempotency-Key": "k2"}
    assert env.rep_a.post("/api/v1/customer", {"name": "Y"}, headers=key2).status_code == 422
    assert env.rep_a.post("/api/v1/customer", customer("改正后"), headers=key2).status_code == 201
    assert_json_error(
        env.rep_a.post("/api/v1/customer", customer("z"), headers={"Idempotency-Key": "a b"}), 400
    )
    assert_json_error(
        env.rep_a.post("/api/v1/customer", customer("z"), headers={"Idempotency-Key": "x" * 256}),
        400,
    )
    # The same key for another entity is a conflict.
    assert_json_error(env.rep_a.post("/api/v1/contact", {"name": "n"}, headers=key), 409)


# -- updates --------------------------------------------------------------------------------


def test_update_needs_the_version(env: Env) -> None:
    cid = make_customer(env.admin, "版本测试")["id"]
    url = f"/api/v1/customer/{cid}"
    missing = assert_json_error(env.admin.patch(f"{url}?lang=en", {"level": "B"}), 428)
    assert "If-Match" in missing["error"]
    by_header = env.admin.patch(url, {"level": "B"}, headers={"If-Match": '"1"'})
    assert by_header.status_code == 200, by_header.get_json()
    assert by_header.headers["ETag"] == '"2"' and by_header.get_json()["level"] == "B"
    by_body = env.admin.patch(url, {"level": "C", "version": 2})
    assert by_body.status_code == 200 and by_body.get_json()["version"] == 3
    weak = env.admin.patch(url, {"employees": 5}, headers={"If-Match": 'W/"3"'})
    assert weak.status_code == 200 and weak.get_json()["employees"] == 5
    stale = assert_json_error(
        env.admin.patch(f"{url}?lang=en", {"level": "A"}, headers={"If-Match": '"1"'}), 409
    )
    assert stale["current_version"] == 4
    assert stale["updated_by"] == "admin" and stale["updated_at"]
    assert "admin" in stale["error"]
    assert_json_error(
        env.admin.patch(url, {"level": "A", "version": 3}, headers={"If-Match": '"4"'}), 412
    )
    for bad in ("*", '"abc"', '"1", "2"', '""'):
        assert_json_error(env.admin.patch(url, {"level": "A"}, headers={"If-Match": bad}), 400)
    assert_json_error(env.admin.patch(url, {"level": "A", "version": "x"}), 400)
    assert_json_error(env.admin.patch(url, {"level": "A", "version": True}), 400)
    assert env.admin.get(url).get_json()["version"] == 4
    unchanged = env.admin.patch(url, {"employees": 5, "version": 4})
    assert unchanged.status_code == 200 and unchanged.headers["ETag"] == '"4"'
    invalid = env.admin.patch(f"{url}?lang=en", {"level": "Q", "version": 4})
    assert assert_json_error(invalid, 422)["errors"]["level"]


def test_put_is_not_offered(env: Env) -> None:
    cid = make_customer(env.admin, "PUT 测试")["id"]
    response = env.admin.call("PUT", f"/api/v1/customer/{cid}", customer("x", version=1))
    body = assert_json_error(response, 405)
    assert "PATCH" in body["error"] or "PATCH" in response.headers["Allow"]
    assert set(response.headers["Allow"].split(", ")) == {
        "GET",
        "HEAD",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }
    assert_json_error(env.admin.call("DELETE", "/api/v1/customer"), 405)
    options = env.admin.call("OPTIONS", "/api/v1/customer")
    assert options.status_code == 204 and "POST" in options.headers["Allow"]
    head = env.admin.call("HEAD", f"/api/v1/customer/{cid}")
    assert head.status_code == 200 and head.headers["ETag"] == '"1"'


def test_a_table_value_replaces_the_rows_kept_by_id(env: Env) -> None:
    _cid, opp = seed_opportunity(env)
    url = f"/api/v1/opportunity/{opp['id']}"
    first, _second = opp["lines"]
    response = env.admin.patch(url, {"lines": [{**first, "qty": 3}], "version": opp["version"]})
    assert response.status_code == 200, response.get_json()
    lines = response.get_json()["lines"]
    assert [(r["id"], r["qty"], r["subtotal"]) for r in lines] == [(first["id"], 3, "900.30")]


# -- delete and history ---------------------------------------------------------------------


def test_delete(env: Env) -> None:
    cid, opp = seed_opportunity(env)
    url = f"/api/v1/opportunity/{opp['id']}"
    assert_json_error(env.admin.delete(url, headers={"If-Match": '"7"'}), 409)
    referenced = assert_json_error(env.admin.delete(f"/api/v1/customer/{cid}?lang=en"), 422)
    assert "referenced" in referenced["errors"]["_record"][0]
    response = env.admin.delete(url, headers={"If-Match": '"1"'})
    assert response.status_code == 204 and response.get_data() == b""
    assert_json_error(env.admin.get(url), 404)
    assert_json_error(env.admin.delete(url), 404)
    assert env.admin.delete(f"/api/v1/customer/{cid}").status_code == 204
    # A rep may not delete customers at all (read/update own, no delete).
    mine = make_customer(env.rep_a, "代表的客户")["id"]
    assert_json_error(env.rep_a.delete(f"/api/v1/customer/{mine}"), 403)


def test_history(env: Env) -> None:
    cid = make_customer(env.admin, "历史客户", level="B")["id"]
    env.admin.patch(f"/api/v1/customer/{cid}", {"level": "C", "version": 1})
    body = env.admin.get(f"/api/v1/customer/{cid}/history").get_json()
    entries = body["data"]
    assert [(e["action"], e["version"], e["via"]) for e in entries] == [
        ("create", 1, "api"),
        ("update", 2, "api"),
    ]
    assert entries[1]["changes"]["level"] == ["B", "C"]
    assert entries[0]["at"].endswith("+08:00")
    assert_json_error(env.admin.get("/api/v1/customer/999/history"), 404)


# -- permissions ----------------------------------------------------------------------------


def test_a_rep_cannot_reach_another_reps_records(env: Env) -> None:
    mine = make_customer(env.rep_a, "A 的客户")
    theirs = make_customer(env.rep_b, "B 的客户")
    url = f"/api/v1/customer/{theirs['id']}"
    assert_json_error(env.rep_a.get(url), 404)
    assert_json_error(env.rep_a.patch(url, {"level": "B", "version": 1}), 404)
    assert_json_error(env.rep_a.patch(url, {"level": "B"}, headers={"If-Match": '"1"'}), 404)
    assert_json_error(env.rep_a.delete(url), 404)
    assert_json_error(env.rep_a.get(f"{url}/history"), 404)
    listed = env.rep_a.get("/api/v1/customer?limit=500").get_json()
    assert [r["id"] for r in listed["data"]] == [mine["id"]] and listed["count"] == 1
    for query in (f"id={theirs['id']}", "owner=rep.b", "q=B 的客户", "name=B 的客户"):
        assert env.rep_a.get(f"/api/v1/customer?{query}").get_json()["data"] == []
    # Nothing changed and the owner still sees it.
    assert env.rep_b.get(url).get_json() == theirs


def test_hidden_fields_never_show(env: Env) -> None:
    cid = make_customer(env.rep_a, "隐藏字段")["id"]
    opp = env.rep_a.post(
        "/api/v1/opportunity", {"name": "商机", "customer": cid, "amount": "100"}
    ).get_json()
    assert "weighted" not in opp and opp["probability"] == "10"
    assert "weighted" not in env.rep_a.get(f"/api/v1/opportunity/{opp['id']}").get_json()
    assert "weighted" not in env.rep_a.get("/api/v1/opportunity").get_json()["data"][0]
    assert env.admin.get(f"/api/v1/opportunity/{opp['id']}").get_json()["weighted"] == "10.00"
    refused = env.rep_a.get("/api/v1/opportunity?weighted__gte=0&lang=en")
    assert assert_json_error(refused, 400)["param"] == "weighted__gte"
    assert_json_error(env.rep_a.get("/api/v1/opportunity?sort=weighted"), 400)
    history = env.rep_a.get(f"/api/v1/opportunity/{opp['id']}/history").get_json()["data"]
    assert "weighted" not in history[0]["changes"] and "amount" in history[0]["changes"]


def test_a_ref_to_a_record_the_caller_cannot_read_is_refused(env: Env) -> None:
    theirs = make_customer(env.rep_b, "B 的客户")
    contact = env.rep_a.post("/api/v1/contact", {"name": "张三", "customer": theirs["id"]})
    assert contact.status_code == 422


# -- mass assignment ------------------------------------------------------------------------


def test_owner_is_refused_unless_allowed(env: Env) -> None:
    refused = env.rep_a.post("/api/v1/customer?lang=en", customer("想改负责人", owner="rep.b"))
    assert assert_json_error(refused, 422)["errors"]["owner"] == ["you may not set the owner"]
    mine = make_customer(env.rep_a, "我的客户")
    hijack = env.rep_a.patch(f"/api/v1/customer/{mine['id']}", {"owner": "rep.b", "version": 1})
    assert "owner" in assert_json_error(hijack, 422)["errors"]
    same = env.rep_a.patch(f"/api/v1/customer/{mine['id']}", {"owner": "rep.a", "version": 1})
    assert same.status_code == 200  # sending back what was read is fine
    assigned = make_customer(env.admin, "分配给 B", owner="rep.b")
    assert assigned["owner"] == "rep.b"
    assert env.rep_b.get(f"/api/v1/customer/{assigned['id']}").status_code == 200


def test_status_field_is_refused(env: Env) -> None:
    cid = make_customer(env.rep_a, "合同客户")["id"]
    contract = {
        "subject": "设备采购合同",
        "customer": cid,
        "total": "1000",
        "start_date": "2099-01-01",
        "end_date": "2099-12-31",
    }
    refused = env.rep_a.post("/api/v1/contract?lang=en", {**contract, "status": "approved"})
    assert "status" in assert_json_error(refused, 422)["errors"]
    created = env.rep_a.post("/api/v1/contract", contract).get_json()
    assert created["status"] == "draft"
    approve = env.rep_a.patch(
        f"/api/v1/contract/{created['id']}", {"status": "approved", "version": 1}
    )
    assert "status" in assert_json_error(approve, 422)["errors"]
    admin = env.admin.patch(
        f"/api/v1/contract/{created['id']}", {"status": "approved", "version": 1}
    )
    assert "status" in assert_json_error(admin, 422)["errors"]  # only the flow moves it
    signed = env.rep_a.patch(
        f"/api/v1/contract/{created['id']}", {"signed_on": "2099-01-01", "version": 1}
    )
    assert "signed_on" in assert_json_error(signed, 422)["errors"]  # read-only for reps


def test_system_columns_are_ignored_and_computed_fields_too(env: Env) -> None:
    forged = {
        "id": 424242,
        "created_at": "2000-01-01T00:00:00Z",
        "created_by": "someone.else",
        "updated_at": "2000-01-01T00:00:00Z",
        "updated_by": "someone.else",
    }
    body = make_customer(env.rep_a, "伪造系统字段", **forged)
    assert body["id"] != 424242 and body["created_by"] == "rep.a"
    assert not body["created_at"].startswith("2000")
    assert_json_error(env.rep_a.get("/api/v1/customer/424242"), 404)
    cid = body["id"]
    opp = env.rep_a.post(
        "/api/v1/opportunity",
        {
            "name": "计算字段",
            "customer": cid,
            "amount": "100",
            "stage": "lead",
            "probability": 99,
            "weighted": "1000000",
            "code": "FORGED-1",
        },
    ).get_json()
    assert opp["probability"] == "10" and "weighted" not in opp  # hidden from reps
    assert opp["code"].startswith("OPP-")
    # Sending back what was read (system columns included) is a valid update.
    echo = env.rep_a.patch(f"/api/v1/customer/{cid}", {**body, "level": "B"})
    assert echo.status_code == 200, echo.get_json()
    assert echo.get_json()["version"] == 2
    # ... and the version in it is the expected version: a stale echo conflicts.
    assert_json_error(env.rep_a.patch(f"/api/v1/customer/{cid}", {**body, "level": "C"}), 409)
    credit = env.rep_a.patch(
        f"/api/v1/customer/{cid}?lang=en", {"credit_limit": "99999", "version": 2}
    )
    assert "credit_limit" in assert_json_error(credit, 422)["errors"]


# -- the error contract ---------------------------------------------------------------------


def test_bad_bodies_are_json_errors(env: Env) -> None:
    for raw in (
        b"{",
        b"",
        b"   ",
        b"[1, 2]",
        b'"text"',
        b"42",
        b"null",
        b'{"a": NaN}',
        b"\xff\xfe{",
    ):
        assert_json_error(env.admin.post("/api/v1/customer", raw=raw), 400)
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_json_error(env.admin.post("/api/v1/customer", raw=deep), 400)
    huge = b'{"name": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    assert_json_error(env.admin.post("/api/v1/customer", raw=huge), 413)
    assert_json_error(env.admin.get("/api/v2/customer"), 404)
    assert_json_error(env.admin.get("/api/"), 404)
    assert_json_error(env.admin.get("/api/v1/customer/1/nothing"), 404)


def test_an_unexpected_failure_is_a_logged_500(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret detail 9f8e")

    monkeypatch.setattr(records(env.app), "get", boom)
    with caplog.at_level(logging.ERROR):
        response = env.admin.get("/api/v1/customer/1")
    body = assert_json_error(response, 500)
    assert body == {"error": "服务器内部错误"}
    assert "9f8e" not in response.get_data(as_text=True)
    assert "secret detail 9f8e" in caplog.text


def test_pages_still_require_sign_in(env: Env) -> None:
    response = env.app.test_client().get("/e/customer")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    with_token = env.admin.client.get(
        "/e/customer", headers={"Authorization": f"Bearer {env.admin.token}"}
    )
    assert with_token.status_code == 302  # a token is for the API only
