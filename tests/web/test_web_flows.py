"""Approval flows in the web app (Flask test client), on SQLite and PostgreSQL.

The record's flow panel, the submitter's and the approvers' forms, locked
records, the "Waiting for me" inbox with bulk approve, "Submitted by me", the
counts in the menu and on the home page, who may open a record under approval,
and bad input: a task that is not yours, twice, after a recall, a forged id, a
cross-site POST without the CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flow_support import (
    actor,
    crm_app,
    flow_state,
    new_contract,
    new_quote,
    open_task,
    submit,
    values,
)
from test_web_support import PASSWORD, csrf_token, make_app, records, sign_in, text

from engine.records import SYSTEM
from engine.web.services import services


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = crm_app(db_url)
    yield app
    records(app).engine.dispose()


def client_of(app: Flask, name: str, lang: str = "zh") -> FlaskClient:
    client = app.test_client()
    sign_in(client, name)
    client.get(f"/?lang={lang}")
    return client


def flow_panel(html: str) -> str:
    m = re.search(r'<div id="flow">(.*?)</div>\s*(?:<section class="ff-section">|$)', html, re.S)
    assert m, "no flow panel on the page"
    return m.group(1)


def flashes(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", m).strip()
        for m in re.findall(r'<p class="ff-flash[^"]*" role="\w+">(.*?)</p>', html, re.S)
    ]


# -- the flow panel ----------------------------------------------------------------------


def test_a_draft_shows_the_steps_and_only_the_submit_button(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    rep = client_of(app, "li.lei")
    page = text(rep.get(f"/e/contract/{cid}"))
    panel = flow_panel(page)
    assert "合同审批" in panel and "草稿" in panel
    assert "经理审批" in panel and "财务会签" in panel and "未开始" in panel
    assert f'action="/e/contract/{cid}/flow/submit"' in panel
    assert "/tasks/" not in panel and "flow/recall" not in panel
    assert "尚未提交审批" in panel  # the trail
    assert f'href="/e/contract/{cid}/edit"' in page  # a draft may be edited
    # The manager sees the panel but has nothing to press.
    manager = client_of(app, "wang.fang")
    panel = flow_panel(text(manager.get(f"/e/contract/{cid}")))
    assert "flow/submit" in panel  # a team manager who may edit may also submit
    assert "/tasks/" not in panel


def test_submit_then_the_record_is_locked_and_the_manager_is_asked(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    rep = client_of(app, "li.lei")
    response = rep.post(f"/e/contract/{cid}/flow/submit", data={"comment": "请审批"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/e/contract/{cid}#flow")
    page = text(rep.get(f"/e/contract/{cid}"))
    assert flashes(page) == ["已提交审批"]
    panel = flow_panel(page)
    assert "审批中" in panel and "第 1 轮" in panel and "李雷" in panel
    assert "当前步骤：经理审批；审批人：王芳" in panel
    assert "财务甲" in panel and "财务乙" in panel  # the 会签 asked later, by name
    assert "请审批" in panel  # the submit comment in the trail
    # Locked: a notice, no edit or delete buttons; the recall is offered (behind a <details>).
    assert 'class="ff-notice"' in page and "记录已锁定" in page
    assert f'href="/e/contract/{cid}/edit"' not in page
    assert f"/e/contract/{cid}/flow/recall" in panel and "<details" in panel
    assert "/tasks/" not in panel
    # The manager gets the decision forms.
    manager = client_of(app, "wang.fang")
    panel = flow_panel(text(manager.get(f"/e/contract/{cid}")))
    task = open_task(app, "contract", cid, "wang.fang")
    for action in ("approve", "reject", "return", "transfer", "add-approver"):
        assert f'action="/tasks/{task}/{action}"' in panel
    assert 'name="payment_terms"' in panel  # the step's editable field
    assert "提交人（李雷）" in panel  # where a return may go
    assert 'value="li.lei"' not in panel  # the submitter is nobody to transfer to
    # Finance waits: no buttons yet.
    panel = flow_panel(text(client_of(app, "fin.a").get(f"/e/contract/{cid}")))
    assert "/tasks/" not in panel and "等待中" in panel


def test_the_contract_through_the_manager_and_the_finance_countersign(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    submit(app, "contract", cid, "li.lei")
    manager = client_of(app, "wang.fang")
    task = open_task(app, "contract", cid, "wang.fang")
    response = manager.post(
        f"/tasks/{task}/approve", data={"comment": "同意", "payment_terms": "net60"}
    )
    assert response.status_code == 303
    assert values(app, "contract", cid)["payment_terms"] == "net60"  # editable at this step
    assert flashes(text(manager.get(f"/e/contract/{cid}"))) == ["已通过"]

    fin_a = client_of(app, "fin.a")
    assert (
        fin_a.post(f"/tasks/{open_task(app, 'contract', cid, 'fin.a')}/approve").status_code == 303
    )
    panel = flow_panel(text(fin_a.get(f"/e/contract/{cid}")))
    assert "当前步骤：财务会签；审批人：财务乙" in panel  # 会签: each approver's state
    assert re.search(r"财务甲</span> <span class=\"ff-badge ff-task-approved\">已通过", panel)
    assert re.search(r"财务乙</span> <span class=\"ff-badge ff-task-open\">待审批", panel)
    assert flow_state(app, "contract", cid) == "pending"

    fin_b = client_of(app, "fin.b")
    task = open_task(app, "contract", cid, "fin.b")
    assert fin_b.post(f"/tasks/{task}/approve", data={"comment": "财务确认"}).status_code == 303
    rep = client_of(app, "li.lei")
    page = text(rep.get(f"/e/contract/{cid}"))
    panel = flow_panel(page)
    assert 'ff-badge ff-state-approved">已通过' in panel
    trail = panel[panel.index("审批记录") :]
    assert [w for w in ("李雷", "王芳", "财务甲", "财务乙") if w in trail] == [
        "李雷",
        "王芳",
        "财务甲",
        "财务乙",
    ]
    assert "同意" in trail and "财务确认" in trail
    assert values(app, "contract", cid)["status"] == "approved"
    assert isinstance(values(app, "contract", cid)["signed_on"], date)
    assert "记录已锁定" not in page  # approved: no longer pending


def test_a_rejection_needs_a_comment_and_returns_to_the_rep(app: Flask) -> None:
    cid = new_contract(app, "li.lei", total="8000")
    submit(app, "contract", cid, "li.lei")
    manager = client_of(app, "wang.fang")
    task = open_task(app, "contract", cid, "wang.fang")
    response = manager.post(f"/tasks/{task}/reject", data={"comment": "  "})
    assert response.status_code == 422
    page = text(response)
    assert flashes(page) == ["审批意见: 请填写审批意见"]
    assert 'role="alert"' in page
    assert f'action="/tasks/{task}/reject"' in flow_panel(page)  # still the manager's to decide
    response = manager.post(f"/tasks/{task}/reject", data={"comment": "价格太低 <b>请重报</b>"})
    assert response.status_code == 303
    rep = client_of(app, "li.lei")
    page = text(rep.get(f"/e/contract/{cid}"))
    panel = flow_panel(page)
    assert "已退回" in panel
    assert "价格太低 &lt;b&gt;请重报&lt;/b&gt;" in panel  # escaped, never markup
    assert "<b>请重报</b>" not in page
    assert "重新提交审批" in panel  # resubmit
    assert f'href="/e/contract/{cid}/edit"' in page  # back to draft: editable again
    assert values(app, "contract", cid)["status"] == "draft"
    assert rep.post(f"/e/contract/{cid}/flow/submit").status_code == 303
    assert "第 2 轮" in flow_panel(text(rep.get(f"/e/contract/{cid}")))


def test_return_transfer_and_add_an_approver(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    submit(app, "contract", cid, "li.lei")
    manager = client_of(app, "wang.fang")
    task = open_task(app, "contract", cid, "wang.fang")
    response = manager.post(f"/tasks/{task}/approve")
    assert response.status_code == 303
    # Finance sends it back to the manager's step (回退), with a comment.
    fin_a = client_of(app, "fin.a")
    task = open_task(app, "contract", cid, "fin.a")
    response = fin_a.post(
        f"/tasks/{task}/return", data={"step": "manager_review", "comment": "请经理复核"}
    )
    assert response.status_code == 303
    panel = flow_panel(text(fin_a.get(f"/e/contract/{cid}")))
    assert "当前步骤：经理审批" in panel and "请经理复核" in panel
    # The manager hands the task to 赵强, who adds 韩梅梅 (加签).
    task = open_task(app, "contract", cid, "wang.fang")
    response = manager.post(f"/tasks/{task}/transfer", data={"user": "zhao.qiang"})
    assert response.status_code == 303
    assert flashes(text(manager.get(f"/e/contract/{cid}")))[-1] == "已转交给 zhao.qiang"
    other = client_of(app, "zhao.qiang")
    task = open_task(app, "contract", cid, "zhao.qiang")
    response = other.post(f"/tasks/{task}/add-approver", data={"user": "han.meimei"})
    assert response.status_code == 303
    panel = flow_panel(text(other.get(f"/e/contract/{cid}")))
    assert "由 zhao.qiang 加签" in panel or "由 赵强 加签" in panel
    # Transferring to yourself or to nobody: a clear message, nothing changes.
    response = other.post(f"/tasks/{task}/transfer", data={"user": "zhao.qiang"})
    assert response.status_code == 422
    assert flashes(text(response)) == ["用户: 不能转交或加签给自己"]
    response = other.post(f"/tasks/{task}/transfer", data={"user": "nobody"})
    assert response.status_code == 422


def test_recall_before_a_decision_then_the_task_is_gone(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    submit(app, "contract", cid, "li.lei")
    task = open_task(app, "contract", cid, "wang.fang")
    rep = client_of(app, "li.lei")
    response = rep.post(f"/e/contract/{cid}/flow/recall", data={"flow": "contract_approval"})
    assert response.status_code == 303
    page = text(rep.get(f"/e/contract/{cid}"))
    assert flashes(page) == ["已撤回提交"]
    assert "已撤回" in flow_panel(page)
    manager = client_of(app, "wang.fang")
    response = manager.post(f"/tasks/{task}/approve")
    assert response.status_code == 409
    assert "提交已由 li.lei" in flashes(text(response))[0] and "撤回" in flashes(text(response))[0]
    response = rep.post(f"/e/contract/{cid}/flow/recall")
    assert response.status_code == 409  # nothing pending any more
    assert flashes(text(response)) == ["没有审批中的提交可以撤回"]


# -- bad input ---------------------------------------------------------------------------


def test_bad_input_on_tasks(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    submit(app, "contract", cid, "li.lei")
    task = open_task(app, "contract", cid, "wang.fang")
    # Not yours, on a record you may see: 403 naming whose it is.
    fin_a = client_of(app, "fin.a")
    response = fin_a.post(f"/tasks/{task}/approve")
    assert response.status_code == 403
    assert "这是 wang.fang 的审批任务" in text(response)
    # The submitter cannot approve either.
    assert (
        client_of(app, "li.lei").post(f"/tasks/{task}/reject", data={"comment": "x"}).status_code
        == 403
    )
    # Someone who may not even see the record: not found, nothing revealed.
    stranger = client_of(app, "chen.jing")
    response = stranger.post(f"/tasks/{task}/approve")
    assert response.status_code == 404 and "wang.fang" not in text(response)
    assert stranger.get(f"/e/contract/{cid}").status_code == 404
    assert stranger.post(f"/e/contract/{cid}/flow/recall").status_code == 404
    assert stranger.post(f"/e/contract/{cid}/flow/submit").status_code == 404
    # Forged or unknown ids.
    manager = client_of(app, "wang.fang")
    assert manager.post("/tasks/999999/approve").status_code == 404
    assert manager.post("/tasks/abc/approve").status_code == 404
    assert manager.post(f"/tasks/{'9' * 25}/approve").status_code == 404  # past bigint
    assert manager.post(f"/e/contract/{'9' * 25}/flow/submit").status_code == 404
    assert manager.post("/e/nothing/1/flow/submit").status_code == 404
    assert manager.post("/e/customer/1/flow/submit").status_code == 404  # no flow there
    assert manager.get(f"/tasks/{task}/approve").status_code == 405
    # Twice: 409 with who and when.
    assert manager.post(f"/tasks/{task}/approve").status_code == 303
    response = manager.post(f"/tasks/{task}/approve")
    assert response.status_code == 409
    assert "你已于" in flashes(text(response))[-1]
    # Submitting a pending record again.
    response = client_of(app, "li.lei").post(f"/e/contract/{cid}/flow/submit")
    assert response.status_code == 409
    assert "正在审批中" in flashes(text(response))[0]
    # A return to a step that is not earlier.
    task = open_task(app, "contract", cid, "fin.a")
    response = fin_a.post(f"/tasks/{task}/return", data={"step": "finance_review", "comment": "x"})
    assert response.status_code == 409
    assert "不能退回到 finance_review" in flashes(text(response))[0]


def test_no_approvers_is_a_clear_message(app: Flask) -> None:
    with app.app_context():
        for name in ("fin.a", "fin.b"):
            services().users.deactivate(name)
    cid = new_contract(app, "li.lei")
    response = client_of(app, "li.lei").post(f"/e/contract/{cid}/flow/submit")
    assert response.status_code == 422
    assert flashes(text(response)) == ["步骤 财务会签 没有审批人：角色 finance 没有启用的成员"]
    assert flow_state(app, "contract", cid) == "draft"
    response = client_of(app, "li.lei", "en").post(f"/e/contract/{cid}/flow/submit")
    assert flashes(text(response)) == [
        "step Finance review has no approvers: role finance has no active members"
    ]


def test_a_failed_validation_and_a_bad_editable_value(app: Flask) -> None:
    cid = new_contract(app, "li.lei", scan=None)  # no signed copy: finance cannot approve
    submit(app, "contract", cid, "li.lei")
    manager = client_of(app, "wang.fang")
    task = open_task(app, "contract", cid, "wang.fang")
    response = manager.post(f"/tasks/{task}/approve", data={"payment_terms": "weekly"})
    assert response.status_code == 422
    assert flashes(text(response))[0].startswith("付款方式: ")
    assert values(app, "contract", cid)["payment_terms"] == "net30"
    assert manager.post(f"/tasks/{task}/approve").status_code == 303
    for name in ("fin.a", "fin.b"):
        task = open_task(app, "contract", cid, name)
        response = client_of(app, name).post(f"/tasks/{task}/approve")
    assert response.status_code == 422  # the last 会签 approval checks the step's rule
    assert flashes(text(response)) == ["请先上传合同扫描件"]
    assert flow_state(app, "contract", cid) == "pending"


def test_a_cross_site_post_without_the_csrf_token_is_refused(db_url: str) -> None:
    app = crm_app(db_url, WTF_CSRF_ENABLED=True)
    try:
        cid = new_contract(app, "li.lei")
        submit(app, "contract", cid, "li.lei")
        task = open_task(app, "contract", cid, "wang.fang")
        client = app.test_client()
        token = csrf_token(text(client.get("/signin")))
        response = client.post(
            "/signin", data={"name": "wang.fang", "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302
        for url in (f"/tasks/{task}/approve", f"/tasks/{task}/reject", "/inbox"):
            response = client.post(url, data={"comment": "forged", "task": str(task)})
            assert response.status_code == 400, url
        assert flow_state(app, "contract", cid) == "pending"
        # The page's own form carries the token and works.
        page = text(client.get(f"/e/contract/{cid}"))
        response = client.post(f"/tasks/{task}/approve", data={"csrf_token": csrf_token(page)})
        assert response.status_code == 303
    finally:
        records(app).engine.dispose()


# -- locked records ----------------------------------------------------------------------


def test_a_pending_record_cannot_be_edited_or_deleted(app: Flask) -> None:
    cid = new_contract(app, "li.lei", total="8000")
    submit(app, "contract", cid, "li.lei")
    admin = client_of(app, "admin")
    page = text(admin.get(f"/e/contract/{cid}"))
    assert f'href="/e/contract/{cid}/edit"' not in page
    assert f'href="/e/contract/{cid}/delete"' not in page
    for url in (f"/e/contract/{cid}/edit", f"/e/contract/{cid}/delete"):
        response = admin.get(url)
        assert response.status_code == 302 and response.headers["Location"].endswith(
            f"/e/contract/{cid}"
        )
        assert "记录已锁定" in flashes(text(admin.get(f"/e/contract/{cid}")))[0]
        response = admin.post(url, data={"subject": "改名", "version": "2"})
        assert response.status_code == 302
    assert values(app, "contract", cid)["subject"] == "设备采购合同"
    # In English too.
    admin.get("/?lang=en")
    admin.get(f"/e/contract/{cid}/edit")
    assert "the record is locked" in flashes(text(admin.get(f"/e/contract/{cid}")))[0]


def test_a_record_submitted_while_its_form_was_open_is_not_saved(app: Flask) -> None:
    cid = new_contract(app, "li.lei", total="8000")
    rep = client_of(app, "li.lei")
    assert rep.get(f"/e/contract/{cid}/edit").status_code == 200
    with app.app_context():
        version = services().records.get("contract", cid).version
    submit(app, "contract", cid, "li.lei")  # meanwhile, e.g. in another tab
    response = rep.post(
        f"/e/contract/{cid}/edit", data={"subject": "改名", "version": str(version)}
    )
    assert response.status_code == 302
    assert "记录已锁定" in flashes(text(rep.get(f"/e/contract/{cid}")))[0]
    assert values(app, "contract", cid)["subject"] == "设备采购合同"


# -- the inbox ---------------------------------------------------------------------------


def test_the_inbox_lists_counts_and_pages(app: Flask) -> None:
    ids = [new_contract(app, "li.lei", total=str(1000 + i)) for i in range(23)]
    for cid in ids:
        submit(app, "contract", cid, "li.lei")
    manager = client_of(app, "wang.fang")
    home = text(manager.get("/"))
    assert "23 项审批等待你处理" in home
    assert re.search(r'class="ff-count-badge"[^>]*>23</span>', home)  # the menu badge
    page = text(manager.get("/inbox"))
    assert "23 项待审批" in page and "第 1 页，共 2 页" in page
    rows = re.findall(r'name="task" value="(\d+)"', page)
    assert len(rows) == 20
    assert '合同金额: <span class="ff-num">¥1,000.00</span>' in page  # oldest first
    assert "经理审批" in page and "李雷" in page and "合同审批" in page
    assert f'href="/e/contract/{ids[0]}"' in page
    page2 = text(manager.get("/inbox?page=2"))
    assert len(re.findall(r'name="task" value="(\d+)"', page2)) == 3
    assert text(manager.get("/inbox?page=x")).count('name="task"') == 20
    # Someone with nothing to do.
    rep = client_of(app, "li.lei")
    assert "没有等待你审批的事项" in text(rep.get("/inbox"))
    assert "ff-count-badge" not in text(rep.get("/"))
    # English.
    page = text(client_of(app, "wang.fang", "en").get("/inbox"))
    assert "23 tasks waiting" in page and "Waiting for me" in page


def test_bulk_approve_reports_each_task_on_its_own(app: Flask) -> None:
    good = new_contract(app, "li.lei", total="200000")
    unsigned = new_contract(app, "li.lei", total="300000", scan=None)
    decided = new_contract(app, "han.meimei", total="400000")
    for cid in (good, unsigned, decided):
        submit(app, "contract", cid, "li.lei" if cid != decided else "han.meimei")
        with app.app_context():
            manager = actor(app, "wang.fang")
            services().flows.approve(open_task(app, "contract", cid, "wang.fang"), actor=manager)
    # fin.b approved the unsigned one first, so fin.a's is the last approval: its rule fails.
    with app.app_context():
        flows = services().flows
        flows.approve(open_task(app, "contract", unsigned, "fin.b"), actor=actor(app, "fin.b"))
    tasks = {cid: open_task(app, "contract", cid, "fin.a") for cid in (good, unsigned, decided)}
    with app.app_context():  # decided meanwhile (an earlier click in another tab)
        services().flows.approve(tasks[decided], actor=actor(app, "fin.a"))
    fin_a = client_of(app, "fin.a")
    response = fin_a.post(
        "/inbox",
        data={"task": [str(tasks[c]) for c in (good, unsigned, decided)], "comment": "批量通过"},
    )
    assert response.status_code == 200
    page = text(response)
    assert "已通过 3 项中的 1 项" in page
    results = re.findall(r'<li class="ff-result-(\w+)">(.*?)</li>', page, re.S)
    outcomes = [outcome for outcome, _ in results]
    assert outcomes == ["approved", "invalid", "decided"]
    assert "请先上传合同扫描件" in results[1][1]
    assert "你已于" in results[2][1]
    # Each in its own transaction: the good one went through, the failed one is still open.
    with app.app_context():
        flows = services().flows
        good_state = flows.state("contract", good, actor=SYSTEM)
        assert [t.approver for t in good_state.open_tasks] == ["fin.b"]
        assert good_state.trail[-1].comment == "批量通过"
    assert open_task(app, "contract", unsigned, "fin.a")
    # Nothing ticked, or too many.
    response = fin_a.post("/inbox", data={"comment": "x"})
    assert response.status_code == 422 and flashes(text(response)) == ["请先勾选要通过的任务"]
    response = fin_a.post("/inbox", data={"task": [str(i) for i in range(1, 103)]})
    assert response.status_code == 422
    # A forged id among them is reported, not a crash.
    response = fin_a.post("/inbox", data={"task": ["999999"]})
    assert response.status_code == 200 and "没有审批任务 #999999" in text(response)


def test_submitted_by_me(app: Flask) -> None:
    first = new_contract(app, "li.lei", total="8000")
    second = new_contract(app, "li.lei", total="9000")
    submit(app, "contract", first, "li.lei")
    submit(app, "contract", second, "li.lei")
    manager = actor(app, "wang.fang")
    with app.app_context():
        flows = services().flows
        flows.reject(open_task(app, "contract", first, "wang.fang"), actor=manager, comment="不行")
    submit(app, "contract", first, "li.lei")  # round 2: one row per record
    rep = client_of(app, "li.lei")
    page = text(rep.get("/inbox/submitted"))
    assert page.count('class="ff-badge ff-state-pending"') == 3  # two rows and the tab
    assert page.count(f'href="/e/contract/{first}"') == 1
    assert "经理审批" in page
    assert "你还没有提交过审批" in text(client_of(app, "wang.fang").get("/inbox/submitted"))


# -- who may open a record under approval ------------------------------------------------


def test_an_approver_outside_the_team_may_open_the_record(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    submit(app, "contract", cid, "li.lei")
    other = client_of(app, "zhao.qiang")  # another team's manager: not in his read scope
    assert other.get(f"/e/contract/{cid}").status_code == 404
    assert f"/e/contract/{cid}" not in text(other.get("/e/contract"))
    task = open_task(app, "contract", cid, "wang.fang")
    with app.app_context():
        services().flows.transfer(task, "zhao.qiang", actor=actor(app, "wang.fang"))
    page = text(other.get(f"/e/contract/{cid}"))
    assert "设备采购合同" in page
    assert f'href="/e/contract/{cid}/edit"' not in page  # reading only
    assert f'href="/e/contract/{cid}"' in text(other.get("/e/contract"))  # lists agree
    assert f'href="/e/contract/{cid}"' in text(other.get("/inbox"))
    task = open_task(app, "contract", cid, "zhao.qiang")
    assert other.post(f"/tasks/{task}/approve").status_code == 303
    assert other.get(f"/e/contract/{cid}").status_code == 200  # asked once: still readable
    assert client_of(app, "chen.jing").get(f"/e/contract/{cid}").status_code == 404


SECRET_BLUEPRINT = """\
formflow: 1
id: memos
title: Memos
roles:
  author: Author
  checker: Checker
entities:
  memo:
    label: Memo
    title_field: name
    fields:
      name: {type: text, label: Name, required: true}
      secret: {type: text, label: Secret}
      status:
        type: choice
        label: Status
        default: draft
        options: [draft, pending, approved, rejected]
    access:
      author: {create: true, read: own, update: own}
      checker: {read: none, hidden_fields: [secret]}
flows:
  memo_check:
    label: Memo check
    entity: memo
    status_field: status
    steps:
      check:
        label: Check
        approvers: {users: [checker1]}
"""


def test_an_approver_reads_the_record_but_not_its_hidden_fields(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "memos"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(SECRET_BLUEPRINT, encoding="utf-8")
    app = make_app(
        folder,
        db_url,
        [
            ("admin", ["admin"]),
            ("author1", ["author"]),
            ("checker1", ["checker"]),
            ("checker2", ["checker"]),
        ],
    )
    try:
        with app.app_context():
            svc = services()
            author = svc.users.get("author1").actor
            memo = svc.records.create(
                "memo", {"name": "季度计划", "secret": "底价 42"}, actor=author, via="form"
            )
            svc.flows.submit("memo", memo.id, actor=author)
        checker = client_of(app, "checker1")
        page = text(checker.get(f"/e/memo/{memo.id}"))
        assert "季度计划" in page and "底价 42" not in page and "Secret" not in page
        assert "/tasks/" in flow_panel(page)
        assert client_of(app, "checker2").get(f"/e/memo/{memo.id}").status_code == 404
        assert client_of(app, "author1").get(f"/e/memo/{memo.id}").status_code == 200
    finally:
        records(app).engine.dispose()


# -- the discount approval of the CRM template -----------------------------------------


def test_discount_approval_routes_by_the_discount(app: Flask) -> None:
    small = new_quote(app, "li.lei", "8")
    medium = new_quote(app, "li.lei", "15")
    large = new_quote(app, "li.lei", "25")
    rep = client_of(app, "li.lei")
    for qid in (small, medium, large):
        assert rep.post(f"/e/quote/{qid}/flow/submit").status_code == 303
    # Up to 10%: approved at submit, the approved discount set.
    assert flow_state(app, "quote", small) == "approved"
    assert values(app, "quote", small)["approved_discount"] == Decimal("8")
    panel = flow_panel(text(rep.get(f"/e/quote/{small}")))
    assert panel.count("已跳过") == 2
    # 15%: the manager only; he lowers it to 12% as he approves.
    manager = client_of(app, "wang.fang")
    task = open_task(app, "quote", medium, "wang.fang")
    assert 'name="discount"' in flow_panel(text(manager.get(f"/e/quote/{medium}")))
    assert manager.post(f"/tasks/{task}/approve", data={"discount": "12"}).status_code == 303
    assert flow_state(app, "quote", medium) == "approved"
    assert values(app, "quote", medium)["approved_discount"] == Decimal("12")
    # 25%: the manager, then the director (the manager's manager).
    task = open_task(app, "quote", large, "wang.fang")
    assert manager.post(f"/tasks/{task}/approve").status_code == 303
    director = client_of(app, "zhou.min")
    assert "总监审批" in text(director.get("/inbox"))
    task = open_task(app, "quote", large, "zhou.min")
    response = director.post(f"/tasks/{task}/reject", data={"comment": ""})
    assert response.status_code == 422  # on_rejected requires a comment
    assert director.post(f"/tasks/{task}/reject", data={"comment": "最多 20%"}).status_code == 303
    assert flow_state(app, "quote", large) == "returned"
    assert values(app, "quote", large)["approved_discount"] is None
    panel = flow_panel(text(rep.get(f"/e/quote/{large}")))
    assert "最多 20%" in panel and "重新提交审批" in panel


def test_every_flow_page_renders_in_both_languages(app: Flask) -> None:
    cid = new_contract(app, "li.lei")
    submit(app, "contract", cid, "li.lei")
    for lang, words in (
        ("zh", ("待我审批", "审批中", "你的审批")),
        ("en", ("Waiting for me", "Pending", "Your decision")),
    ):
        manager = client_of(app, "wang.fang", lang)
        for url in ("/", "/inbox", "/inbox/submitted", f"/e/contract/{cid}"):
            response = manager.get(url)
            assert response.status_code == 200, url
        page = text(manager.get(f"/e/contract/{cid}"))
        for word in words:
            assert word in page, (lang, word)
