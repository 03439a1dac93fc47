"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document generated from the blueprint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from test_web_support import CRM, make_app, records

from engine.web.api.openapi import component_name
from engine.web.services import services

validate_spec = pytest.importorskip("openapi_spec_validator").validate


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    db = tmp_path_factory.mktemp("openapi") / "formflow.db"
    app = make_app(
        CRM, f"sqlite:///{db}", [("admin", ["admin"]), ("rep", ["sales_rep"]), ("fin", ["finance"])]
    )
    yield app
    records(app).engine.dispose()


def document(app: Flask, user: str = "admin", query: str = "") -> dict[str, Any]:
    with app.app_context():
        token = services().users.create_token(user)
    response = app.test_client().get(
        f"/api/v1/openapi.json{query}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def test_the_document_is_valid_openapi_3_1(app: Flask) -> None:
    for user, query in (("admin", ""), ("rep", "?lang=en"), ("fin", "")):
        doc = document(app, user, query)
        assert doc["openapi"].startswith("3.1")
        validate_spec(doc)  # raises on any problem


def test_it_lists_every_entity_and_endpoint(app: Flask) -> None:
    doc = document(app)
    entities = list(services_of(app).blueprint.entities)
    assert entities == [
        "customer",
        "contact",
        "opportunity",
        "visit",
        "contract",
        "quote",
        "sales_target",
    ]
    for name in entities:
        assert name in doc["components"]["schemas"]
        assert f"{name}_input" in doc["components"]["schemas"]
        base = f"/api/v1/{name}"
        assert set(doc["paths"][base]) == {"get", "post"}
        assert {"get", "patch", "delete"} <= set(doc["paths"][f"{base}/{{id}}"])
        assert "get" in doc["paths"][f"{base}/{{id}}/history"]
    assert "/api/v1/openapi.json" in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
    }
    assert doc["security"] == [{"bearer": []}]
    patch = doc["paths"]["/api/v1/customer/{id}"]["patch"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "412", "413", "422", "428"} <= set(patch)
    post = doc["paths"]["/api/v1/customer"]["post"]
    assert set(post["responses"]) >= {"201", "400", "401", "403", "409", "413", "422"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == ["name"]
    assert doc["paths"]["/api/v1/customer/{id}"]["delete"]["responses"]["204"]


def services_of(app: Flask) -> Any:
    with app.app_context():
        return services()


def test_field_types_follow_the_kinds(app: Flask) -> None:
    schemas = document(app)["components"]["schemas"]
    opp = schemas["opportunity"]["properties"]
    assert opp["id"]["readOnly"] and opp["version"]["readOnly"] and opp["created_at"]["readOnly"]
    assert opp["amount"]["type"] == ["string", "null"] and opp["amount"]["format"] == "decimal"
    assert opp["stage"]["enum"][:2] == ["lead", "needs"] and None in opp["stage"]["enum"]
    assert opp["close_date"]["format"] == "date"
    assert opp["next_visit"]["format"] == "date-time"
    assert opp["is_key"]["type"] == ["boolean", "null"]
    assert opp["customer"]["type"] == ["integer", "null"]
    assert opp["probability"]["readOnly"] and opp["weighted"]["readOnly"]
    assert opp["code"]["readOnly"] and opp["code"]["type"] == ["string", "null"]
    lines = opp["lines"]
    assert lines["type"] == "array" and lines["maxItems"] == 100
    row = lines["items"]["properties"]
    assert row["qty"]["type"] == ["integer", "null"] and row["qty"]["minimum"] == 1
    assert row["subtotal"]["readOnly"]
    tags = schemas["customer"]["properties"]["tags"]
    assert tags["type"] == ["array", "null"] and tags["items"]["enum"] == ["new", "vip", "at_risk"]
    assert schemas["customer"]["properties"]["email"]["format"] == "email"
    assert schemas["customer"]["properties"]["name"]["maxLength"] == 100
    assert schemas["contract"]["properties"]["status"]["readOnly"]  # the flow's status
    written = schemas["opportunity_input"]["properties"]
    assert {"probability", "weighted", "code", "total"}.isdisjoint(written)
    assert written["amount"]["type"] == ["string", "number", "null"]
    assert "status" not in schemas["contract_input"]["properties"]
    assert {"owner", "version"} <= set(written)


def test_filters_per_field(app: Flask) -> None:
    doc = document(app)
    params = doc["paths"]["/api/v1/opportunity"]["get"]["parameters"]
    names = {p["name"] for p in params if "name" in p}
    refs = {p["$ref"].rsplit("/", 1)[1] for p in params if "$ref" in p}
    assert {"q", "sort", "limit", "offset", "after", "lang"} <= refs
    assert {"stage", "stage__in", "stage__ne", "amount__gte", "amount__between"} <= names
    assert {"close_date__lte", "customer", "customer__in", "owner", "created_at__gte"} <= names
    assert "lines" not in names and "is_key__gte" not in names
    assert "amount__contains" not in names
    customer = {p.get("name") for p in doc["paths"]["/api/v1/customer"]["get"]["parameters"]}
    assert "tags__contains" in customer and "tags" not in customer


def test_the_document_shows_what_the_caller_may_see(app: Flask) -> None:
    rep = document(app, "rep")
    assert "weighted" not in rep["components"]["schemas"]["opportunity"]["properties"]
    names = {p.get("name") for p in rep["paths"]["/api/v1/opportunity"]["get"]["parameters"]}
    assert "weighted__gte" not in names
    assert rep["components"]["schemas"]["customer"]["properties"]["credit_limit"]["readOnly"]
    assert "credit_limit" not in rep["components"]["schemas"]["customer_input"]["properties"]
    fin = document(app, "fin")
    assert "/api/v1/visit" not in fin["paths"] and "visit" not in fin["components"]["schemas"]
    assert "/api/v1/customer" in fin["paths"]


def test_labels_follow_the_language(app: Flask) -> None:
    zh = document(app, query="?lang=zh")["components"]["schemas"]["customer"]
    en = document(app, query="?lang=en")["components"]["schemas"]["customer"]
    assert zh["title"] == "客户" and en["title"] == "Customer"
    assert en["properties"]["level"]["description"] == "Level"


def test_the_document_needs_a_token(app: Flask) -> None:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 401 and response.get_json()["error"]


def test_component_names_are_valid_keys() -> None:
    assert component_name("customer") == "customer"
    odd = component_name("客户")
    assert odd.startswith("entity_") and odd.isascii() and odd != component_name("客户2")


def test_dashboards_are_described_for_who_may_open_them(app: Flask) -> None:
    admin = document(app)
    board = admin["paths"]["/api/v1/dashboards/{name}"]["get"]
    params = {p.get("name") for p in admin["paths"]["/api/v1/dashboards/{name}"]["parameters"]}
    assert {"name", "period", "start", "end", "team", "owner"} <= params
    assert {"200", "400", "401", "403", "404"} <= set(board["responses"])
    assert {"Dashboard", "DashboardWidget", "DashboardKpiResult"} <= set(
        admin["components"]["schemas"]
    )
    assert "/api/v1/dashboards" in document(app, "rep")["paths"]  # the rep dashboard
    assert "/api/v1/dashboards" not in document(app, "fin")["paths"]  # none for finance
    validate_spec(admin)
