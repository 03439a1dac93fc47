"""The CRM contract approval in a real browser (the demo served by gunicorn).

A rep (李雷) creates a ¥150,000 contract and submits it; the manager (王芳) finds
it in "待我审批" and approves; the two finance users (孙丽, 钱慧) both approve
(两人会签); the rep sees it approved. Then a rejection: the manager rejects a
contract with a comment, and the rep sees it returned with that comment.

Each person uses their own browser context and signs in through the form; no
JavaScript dialog opens and the CSP refuses nothing (the ``page`` fixture and
``open_page`` watch both). Screenshots of the inbox and the flow panel go to
``test-artifacts/screenshots/``. The signed copy a finance approval needs is
uploaded through the contract form's file input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from browser_support import Server, Watch, open_page, screenshot, sign_in

pytestmark = pytest.mark.browser

#: A small PDF (the contract's scan accepts pdf only).
SIGNED_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


@contextmanager
def person(browser: Any, server: Server, name: str) -> Iterator[Any]:
    """A fresh browser context signed in as ``name``; fails on dialogs or CSP reports."""
    watch = Watch()
    with open_page(browser, watch) as page:
        sign_in(page, server, name)
        yield page
    assert watch.dialogs == [] and watch.csp == [], (watch.dialogs, watch.csp)


@contextmanager
def services_of(server: Server) -> Iterator[Any]:
    """The record service over the server's database (as the engine, ``via="system"``)."""
    from engine.loader import load
    from engine.records import RecordService
    from engine.storage.database import create_engine
    from engine.storage.schema import build_schema

    blueprint = load(server.folder)
    engine = create_engine(f"sqlite:///{server.db}")
    try:
        yield RecordService(blueprint, build_schema(blueprint), engine)
    finally:
        engine.dispose()


def draft_contract(server: Server, owner: str, subject: str, total: str) -> int:
    from engine.records import SYSTEM
    from engine.storage.query import Filter, Query

    with services_of(server) as records:
        [customer] = records.list_records(
            "customer", Query(filters=(Filter("owner", "eq", owner),), limit=1)
        ).rows
        today = date.today()
        return records.create(
            "contract",
            {
                "subject": subject,
                "customer": customer["id"],
                "total": total,
                "start_date": today.isoformat(),
                "end_date": (today + timedelta(days=365)).isoformat(),
                "scan": "contracts/draft/signed.pdf",
                "owner": owner,
            },
            actor=SYSTEM,
            via="system",
        ).id


def panel(page: Any) -> Any:
    return page.locator("section.ff-flow")


def test_a_contract_through_the_manager_and_the_finance_countersign(
    page: Any, browser: Any, crm_server: Server
) -> None:
    expect = _expect()
    # The rep creates the contract through the form...
    sign_in(page, crm_server, "li.lei")
    page.goto(f"{crm_server.url}e/contract/new")
    page.locator("#in-subject").fill("华东区数控机床年度采购合同")
    page.locator("#in-customer").select_option(label="上海华东机电设备有限公司")
    page.locator("#in-total").fill("150000")
    start = date.today() + timedelta(days=7)
    page.locator("#in-start_date").fill(start.isoformat())
    page.locator("#in-end_date").fill((start + timedelta(days=364)).isoformat())
    # The signed copy the finance step asks for (validate: not ISBLANK(scan)), uploaded
    # through the form's file input.
    page.locator("#in-scan").set_input_files(
        files=[{"name": "签字合同.pdf", "mimeType": "application/pdf", "buffer": SIGNED_PDF}]
    )
    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"/e/contract/\d+$"))
    contract_id = int(page.url.rsplit("/", 1)[1])
    url = f"{crm_server.url}e/contract/{contract_id}"
    expect(panel(page)).to_contain_text("草稿")
    expect(page.get_by_role("button", name="编辑")).to_be_visible()
    scan = page.locator("dt", has_text="合同扫描件").locator("xpath=following-sibling::dd[1]")
    expect(scan.locator("a")).to_contain_text("签字合同.pdf")

    # ... and submits it.
    page.goto(url)
    panel(page).locator("textarea[name=comment]").fill("客户要求月底前签约")
    page.get_by_role("button", name="提交审批").click()
    expect(page.locator(".ff-flash")).to_have_text("已提交审批")
    expect(panel(page).locator("h2 .ff-badge")).to_have_text("审批中")
    expect(panel(page)).to_contain_text("当前步骤：经理审批；审批人：王芳（华东经理）")
    expect(page.locator(".ff-notice")).to_contain_text("记录已锁定")
    expect(page.get_by_role("button", name="编辑")).to_have_count(0)

    # The manager finds it in her inbox and approves.
    with person(browser, crm_server, "wang.fang") as manager:
        badge = manager.locator("header nav .ff-inbox-link .ff-count-badge")
        expect(badge).to_be_visible()
        manager.locator("header nav .ff-inbox-link").click()
        expect(manager.locator("main h1")).to_have_text("待我审批")
        row = manager.locator("table.ff-inbox tbody tr", has_text="¥150,000.00")
        expect(row).to_contain_text("经理审批")
        expect(row).to_contain_text("李雷")
        screenshot(manager, "flow_inbox_manager")
        row.locator("a").first.click()
        expect(manager).to_have_url(url)
        decide = panel(manager).locator(".ff-decide")
        expect(decide).to_contain_text("审批时可以修改以下字段")
        decide.locator("textarea[name=comment]").first.fill("同意，按 30 天账期")
        decide.get_by_role("button", name="通过", exact=True).click()
        expect(manager.locator(".ff-flash")).to_have_text("已通过")
        expect(panel(manager)).to_contain_text("当前步骤：财务会签")

    # 两人会签: both finance users approve; after the first it is still pending.
    with person(browser, crm_server, "sun.li") as finance:
        finance.goto(url)
        panel(finance).get_by_role("button", name="通过", exact=True).click()
        expect(finance.locator(".ff-flash")).to_have_text("已通过")
        step = panel(finance).locator("li.ff-step", has_text="财务会签")
        expect(step.locator("li", has_text="孙丽（财务）")).to_contain_text("已通过")
        expect(step.locator("li", has_text="钱慧（财务）")).to_contain_text("待审批")
        expect(panel(finance).locator("h2 .ff-badge")).to_have_text("审批中")
        screenshot(finance, "flow_panel_countersign")
    with person(browser, crm_server, "qian.hui") as finance:
        finance.goto(url)
        panel(finance).get_by_role("button", name="通过", exact=True).click()
        expect(panel(finance).locator("h2 .ff-badge")).to_have_text("已通过")

    # The rep sees it approved, with the whole trail.
    page.goto(url)
    expect(panel(page).locator("h2 .ff-badge")).to_have_text("已通过")
    expect(
        page.locator("dt", has_text="审批状态").locator("xpath=following-sibling::dd[1]")
    ).to_have_text("已通过")
    trail = panel(page).locator("ol.ff-trail > li")
    expect(trail).to_have_count(4)
    expect(trail.nth(0)).to_contain_text("钱慧（财务）")
    expect(trail.nth(2)).to_contain_text("同意，按 30 天账期")
    expect(trail.nth(3)).to_contain_text("客户要求月底前签约")
    expect(page.locator(".ff-notice")).to_have_count(0)
    screenshot(page, "flow_panel_approved")


def test_a_rejection_returns_to_the_rep_with_the_comment(
    page: Any, browser: Any, crm_server: Server
) -> None:
    expect = _expect()
    contract_id = draft_contract(crm_server, "li.lei", "办公设备补充采购合同", "8000")
    url = f"{crm_server.url}e/contract/{contract_id}"
    sign_in(page, crm_server, "li.lei")
    page.goto(url)
    page.get_by_role("button", name="提交审批").click()
    expect(panel(page).locator("h2 .ff-badge")).to_have_text("审批中")
    expect(panel(page).locator("li.ff-step", has_text="财务会签")).to_contain_text("已跳过")

    with person(browser, crm_server, "wang.fang") as manager:
        manager.goto(url)
        decide = panel(manager).locator(".ff-decide")
        decide.locator("summary", has_text="驳回…").click()
        reject = decide.locator("form[action$='/reject']")
        expect(reject.locator("textarea")).to_be_visible()
        reject.locator("textarea").fill("单价高于框架协议，请按协议价重新报价")
        screenshot(manager, "flow_panel_reject_form")
        reject.get_by_role("button", name="驳回", exact=True).click()
        expect(manager.locator(".ff-flash")).to_have_text("已驳回")

    page.goto(url)
    expect(panel(page).locator("h2 .ff-badge")).to_have_text("已退回")
    expect(panel(page)).to_contain_text("单价高于框架协议，请按协议价重新报价")
    expect(panel(page).get_by_role("button", name="重新提交审批")).to_be_visible()
    expect(page.get_by_role("button", name="编辑")).to_be_visible()  # a draft again
    screenshot(page, "flow_panel_returned")
