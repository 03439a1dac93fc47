"""Approval flows in the JSON API (bearer tokens), on SQLite and PostgreSQL.

A record's flow state, submit and recall; the caller's tasks; approve, reject,
return, transfer and add an approver; and the error contract: 403 a task that
is not yours, 404 an unknown task or a record you may not see, 409 already
decided / after a recall / locked, 422 a missing comment or an invalid value,
400 a malformed body. The OpenAPI document lists every endpoint and validates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flow_support import crm_app, flow_state, new_contract, new_quote, open_task, submit, values
from openapi_spec_validator import validate as validate_spec
from test_web_support import records

from engine.web.services import services


@dataclass
class Caller:
    client: FlaskClient
    token: str | None

    def call(self, method: str, url: str, body: Any = None, raw: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = raw if raw is not None else None if body is None else json.dumps(body)
        return self.client.open(
            url, method=method, data=data, headers=headers, content_type="application/json"
        )

    def get(self, url: str) -> Any:
        return self.call("GET", url)

    def post(self, url: str, body: Any = None, raw: str | None = None) -> Any:
        return self.call("POST", url, body, raw)


@dataclass
class Env:
    app: Flask
    callers: dict[str, Caller]

    def __getitem__(self, name: str) -> Caller:
        return self.callers[name]


@pytest.fixture
def env(db_url: str) -> Iterator[Env]:
    app = crm_app(db_url)
    names = ("li.lei", "wang.fang", "zhao.qiang", "chen.jing", "fin.a", "fin.b", "zhou.min")
    with app.app_context():
        users = services().users
        tokens = {name: users.create_token(name, "tests") for name in names}
    callers = {name: Caller(app.test_client(), token) for name, token in tokens.items()}
    callers["anonymous"] = Caller(app.test_client(), None)
    yield Env(app, callers)
    records(app).engine.dispose()


def test_submit_state_and_the_whole_contract_flow(env: Env) -> None:
    cid = new_contract(env.app, "li.lei")
    state = env["li.lei"].get(f"/api/v1/contract/{cid}/flow").get_json()
    assert state["state"] == "draft" and state["round"] == 0
    assert state["actions"] == ["submit"]
    assert [s["name"] for s in state["steps"]] == ["manager_review", "finance_review"]
    assert {s["state"] for s in state["steps"]} == {"not_submitted"}

    response = env["li.lei"].post(f"/api/v1/contract/{cid}/flow/submit", {"comment": "请审批"})
    assert response.status_code == 200
    state = response.get_json()
    assert state["state"] == "pending" and state["current_step"] == "manager_review"
    assert state["actions"] == ["recall"]
    assert state["label"] == "合同审批"
    assert state["steps"][1]["approvers"] == ["fin.a", "fin.b"]
    assert state["trail"][0]["action"] == "submit" and state["trail"][0]["comment"] == "请审批"

    inbox = env["wang.fang"].get("/api/v1/tasks?lang=en").get_json()
    assert inbox["count"] == 1 and inbox["has_more"] is False
    [item] = inbox["data"]
    assert item["record_id"] == cid and item["entity"] == "contract"
    assert item["step_label"] == "Manager review" and item["submitted_by"] == "li.lei"
    assert item["record_url"] == f"/api/v1/contract/{cid}"

    response = env["wang.fang"].post(
        f"/api/v1/tasks/{item['task_id']}/approve",
        {"comment": "同意", "values": {"payment_terms": "net60"}},
    )
    assert response.status_code == 200
    assert response.get_json()["current_step"] == "finance_review"
    assert values(env.app, "contract", cid)["payment_terms"] == "net60"
    for name in ("fin.a", "fin.b"):
        [task] = env[name].get("/api/v1/tasks").get_json()["data"]
        state = env[name].post(f"/api/v1/tasks/{task['task_id']}/approve").get_json()
    assert state["state"] == "approved"
    assert [e["who"] for e in state["trail"]] == ["li.lei", "wang.fang", "fin.a", "fin.b"]
    assert env["fin.a"].get("/api/v1/tasks").get_json() == {
        "data": [],
        "count": 0,
        "has_more": False,
    }


def test_reject_return_transfer_and_add_an_approver(env: Env) -> None:
    cid = new_contract(env.app, "li.lei")
    submit(env.app, "contract", cid, "li.lei")
    task = open_task(env.app, "contract", cid, "wang.fang")
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/transfer", {"user": "zhao.qiang"})
    assert response.status_code == 200
    # The new approver outside the team may now read the record (rule 8), others may not.
    assert env["zhao.qiang"].get(f"/api/v1/contract/{cid}").status_code == 200
    assert env["chen.jing"].get(f"/api/v1/contract/{cid}").status_code == 404
    task = open_task(env.app, "contract", cid, "zhao.qiang")
    response = env["zhao.qiang"].post(
        f"/api/v1/tasks/{task}/add-approver", {"user": "zhou.min", "comment": "请总监也看看"}
    )
    assert response.status_code == 200
    approvers = {t["approver"] for t in response.get_json()["open_tasks"]}
    assert approvers == {"zhao.qiang", "zhou.min"}
    # 或签: the director's approval decides the step.
    task = open_task(env.app, "contract", cid, "zhou.min")
    assert env["zhou.min"].post(f"/api/v1/tasks/{task}/approve").status_code == 200
    # Finance sends it back to the manager step, then a rejection needs a comment.
    task = open_task(env.app, "contract", cid, "fin.a")
    response = env["fin.a"].post(
        f"/api/v1/tasks/{task}/return", {"step": "manager_review", "comment": "金额核对"}
    )
    assert response.status_code == 200
    assert response.get_json()["current_step"] == "manager_review"
    task = open_task(env.app, "contract", cid, "zhou.min")
    response = env["zhou.min"].post(f"/api/v1/tasks/{task}/reject", {})
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"] == {"comment": ["请填写审批意见"]}
    response = env["zhou.min"].post(f"/api/v1/tasks/{task}/reject", {"comment": "不批"})
    assert response.status_code == 200 and response.get_json()["state"] == "returned"
    state = env["li.lei"].get(f"/api/v1/contract/{cid}/flow").get_json()
    assert state["trail"][-1]["comment"] == "不批" and "submit" in state["actions"]


def test_the_error_contract(env: Env) -> None:
    cid = new_contract(env.app, "li.lei")
    assert env["anonymous"].get(f"/api/v1/contract/{cid}/flow").status_code == 401
    assert env["anonymous"].get("/api/v1/tasks").status_code == 401
    submit(env.app, "contract", cid, "li.lei")
    task = open_task(env.app, "contract", cid, "wang.fang")
    # 403: not yours, on a record you may see.
    response = env["fin.a"].post(f"/api/v1/tasks/{task}/approve")
    assert response.status_code == 403 and "wang.fang" in response.get_json()["error"]
    # 404: forged ids, records you may not see, entities without the flow.
    response = env["chen.jing"].post(f"/api/v1/tasks/{task}/approve")
    assert response.status_code == 404 and "wang.fang" not in response.get_json()["error"]
    assert env["chen.jing"].get(f"/api/v1/contract/{cid}/flow").status_code == 404
    assert env["chen.jing"].post(f"/api/v1/contract/{cid}/flow/recall").status_code == 404
    assert env["wang.fang"].post("/api/v1/tasks/999999/approve").status_code == 404
    assert env["wang.fang"].post("/api/v1/tasks/abc/approve").status_code == 404
    assert env["wang.fang"].post(f"/api/v1/tasks/{'9' * 25}/approve").status_code == 404
    assert env["wang.fang"].get(f"/api/v1/contract/{'9' * 25}/flow").status_code == 404
    assert env["wang.fang"].get("/api/v1/nothing/1/flow").status_code == 404
    response = env["wang.fang"].get(f"/api/v1/contract/{cid}/flow?flow=nope")
    assert response.status_code == 404
    # 405 with Allow, JSON.
    response = env["wang.fang"].get(f"/api/v1/tasks/{task}/approve")
    assert response.status_code == 405 and response.headers["Allow"] == "POST, OPTIONS"
    # 400: bodies.
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve", raw="{not json")
    assert response.status_code == 400
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve", {"sneaky": True})
    assert response.status_code == 400 and "sneaky" in response.get_json()["error"]
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve", {"comment": 5})
    assert response.status_code == 400
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve", {"values": [1]})
    assert response.status_code == 400
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/transfer", {})
    assert response.status_code == 400 and "user" in response.get_json()["error"]
    assert env["wang.fang"].get("/api/v1/tasks?limit=0").status_code == 400
    assert env["wang.fang"].get("/api/v1/tasks?limit=101").status_code == 400
    # 422: a field the step may not change, an invalid value.
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve", {"values": {"total": 1}})
    assert response.status_code == 422 and "total" in response.get_json()["errors"]
    response = env["wang.fang"].post(
        f"/api/v1/tasks/{task}/approve", {"values": {"payment_terms": "weekly"}}
    )
    assert response.status_code == 422 and "payment_terms" in response.get_json()["errors"]
    # 409: the record is locked against edits while pending.
    response = env["wang.fang"].call(  # the manager may edit the team's contracts, not now
        "PATCH", f"/api/v1/contract/{cid}", {"subject": "改名", "version": 2}
    )
    assert response.status_code == 409
    assert response.get_json()["flow"] == "contract_approval"
    # 409: twice, with who and when.
    assert env["wang.fang"].post(f"/api/v1/tasks/{task}/approve").status_code == 200
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve?lang=en")
    assert response.status_code == 409
    body = response.get_json()
    assert body["by"] == "wang.fang" and body["decision"] == "approved"
    assert body["error"].startswith("you already approved this at")
    # 409: a recall after a decision; approving after a recall.
    response = env["li.lei"].post(f"/api/v1/contract/{cid}/flow/recall")
    assert response.status_code == 409
    other = new_contract(env.app, "li.lei")
    submit(env.app, "contract", other, "li.lei")
    task = open_task(env.app, "contract", other, "wang.fang")
    response = env["li.lei"].post(f"/api/v1/contract/{other}/flow/recall", {"flow": None})
    assert response.status_code == 200 and response.get_json()["state"] == "recalled"
    response = env["wang.fang"].post(f"/api/v1/tasks/{task}/approve?lang=en")
    assert response.status_code == 409
    assert "recalled by li.lei" in response.get_json()["error"]
    # 409: submitting a pending record again; 422: nobody to approve.
    submit(env.app, "contract", other, "li.lei")
    assert env["li.lei"].post(f"/api/v1/contract/{other}/flow/submit").status_code == 409
    with env.app.app_context():
        services().users.deactivate("fin.b")
        services().users.deactivate("fin.a")
    third = new_contract(env.app, "li.lei")
    response = env["li.lei"].post(f"/api/v1/contract/{third}/flow/submit")
    assert response.status_code == 422 and response.get_json()["step"] == "finance_review"
    assert flow_state(env.app, "contract", third) == "draft"


def test_the_discount_flow_through_the_api(env: Env) -> None:
    quote = new_quote(env.app, "li.lei", "25")
    state = env["li.lei"].post(f"/api/v1/quote/{quote}/flow/submit", {}).get_json()
    assert state["flow"] == "discount_approval" and state["current_step"] == "manager_review"
    task = open_task(env.app, "quote", quote, "wang.fang")
    state = (
        env["wang.fang"]
        .post(f"/api/v1/tasks/{task}/approve", {"values": {"discount": "22"}})
        .get_json()
    )
    assert state["current_step"] == "director_review"
    task = open_task(env.app, "quote", quote, "zhou.min")
    state = env["zhou.min"].post(f"/api/v1/tasks/{task}/approve").get_json()
    assert state["state"] == "approved"
    record = env["li.lei"].get(f"/api/v1/quote/{quote}").get_json()
    assert record["discount"] == "22.0" and record["approved_discount"] == "22.0"
    assert record["discount_status"] == "approved"


def test_the_openapi_document_lists_the_flow_endpoints(env: Env) -> None:
    for name in ("li.lei", "fin.a", "wang.fang"):
        doc = env[name].get("/api/v1/openapi.json").get_json()
        validate_spec(doc)
        paths = doc["paths"]
        assert "/api/v1/tasks" in paths
        for verb in ("approve", "reject", "return", "transfer", "add-approver"):
            post = paths[f"/api/v1/tasks/{{task_id}}/{verb}"]["post"]
            assert {"200", "403", "404", "409", "422"} <= set(post["responses"])
        assert "get" in paths["/api/v1/contract/{id}/flow"]
        assert "post" in paths["/api/v1/contract/{id}/flow/submit"]
        assert "post" in paths["/api/v1/contract/{id}/flow/recall"]
        assert "/api/v1/customer/{id}/flow" not in paths  # no flow on customers
        assert "FlowState" in doc["components"]["schemas"]
    rep = env["li.lei"].get("/api/v1/openapi.json").get_json()
    assert "/api/v1/quote/{id}/flow" in rep["paths"]
    fin = env["fin.a"].get("/api/v1/openapi.json").get_json()
    assert "/api/v1/quote/{id}/flow" not in fin["paths"]  # finance may not read quotes
