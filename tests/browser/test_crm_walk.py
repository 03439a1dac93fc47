"""The CRM walked in a real browser, from a new lead to an approved contract and a commission.

A fresh CRM (no demo data, so the month's figures are only what this walk makes) is
served by gunicorn. The manager (wang) sets the rep's target for this month; the rep (li)
adds a customer and a lead, moves it 客户开发 → 需求分析 → 方案制定 → 合同签订, writes a
contract for it and submits it; the manager approves it in the inbox (under ¥100,000 the
finance step is skipped: see ``contract_approval``); the rep opens /commissions for the
month of the contract's signed date (``signed_on = TODAY()`` on approval, in the
blueprint's time zone) and finds the payout computed here from ``incentives.yaml``.
Screenshots go to ``test-artifacts/screenshots/`` and ``/tmp/crm-walk-*.png``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from browser_support import (
    CRM,
    DEMO_PASSWORD,
    Server,
    Watch,
    open_page,
    screenshot,
    sign_in,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.browser

TARGET = Decimal("50000")
TOTAL = Decimal("80000")
STAGES = [("needs", "需求分析"), ("proposal", "方案制定"), ("contract", "合同签订")]


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _cli(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        input=DEMO_PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def fresh_crm(
    browser_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The CRM on an empty database with two users: wang (manager) and li (his rep)."""
    folder = tmp_path_factory.mktemp("crm-walk") / "crm"
    shutil.copytree(CRM, folder, ignore=shutil.ignore_patterns("*.db*", ".formflow-secret"))
    db = f"sqlite:///{folder / 'formflow-test.db'}"
    _cli("migrate", str(folder), "--db", db)
    _cli("user", "add", "wang", str(folder), "--role", "sales_manager", "--display-name", "王经理",
         "--password-stdin", "--db", db)  # fmt: skip
    _cli("user", "add", "li", str(folder), "--role", "sales_rep", "--manager", "wang",
         "--display-name", "李明", "--password-stdin", "--db", db)  # fmt: skip
    server = start_server(folder, demo=False)
    try:
        yield server
    finally:
        stop_server(server)


@contextmanager
def person(browser: Any, server: Server, name: str) -> Iterator[Any]:
    watch = Watch()
    with open_page(browser, watch) as page:
        sign_in(page, server, name)
        yield page
    assert watch.dialogs == [] and watch.csp == [], (watch.dialogs, watch.csp)


def shot(page: Any, name: str) -> None:
    path = screenshot(page, f"crm_walk_{name}")
    shutil.copyfile(path, f"/tmp/crm-walk-{name}.png")


def expected_commission(revenue: Decimal, target: Decimal) -> Decimal:
    """The rep plan of incentives.yaml: tiers by attainment, marginal or flat, then the cap."""
    plan = yaml.safe_load((CRM / "incentives.yaml").read_text(encoding="utf-8"))["commissions"][
        "rep_plan"
    ]
    payout = Decimal(0)
    lower = Decimal(0)
    attainment = revenue / target * 100
    for tier in plan["tiers"]:
        upper = Decimal(str(tier["upto"])) if tier.get("upto") is not None else None
        rate = Decimal(str(tier["rate"])) / 100
        if plan["mode"] == "marginal":
            top = revenue if upper is None else min(revenue, target * upper / 100)
            payout += max(Decimal(0), top - target * lower / 100) * rate
        elif attainment >= lower:
            payout = revenue * rate
        if upper is None or attainment < upper:
            break
        lower = upper
    if plan.get("cap") is not None:
        payout = min(payout, Decimal(str(plan["cap"])))
    return payout.quantize(Decimal("0.01"))


def _money(amount: Decimal) -> str:
    return f"¥{amount:,.2f}"


def _panel(page: Any) -> Any:
    return page.locator("section.ff-flow")


def test_from_a_lead_to_an_approved_contract_and_a_commission_line(
    browser: Any, fresh_crm: Server
) -> None:
    expect = _expect()
    url = fresh_crm.url
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the blueprint's time zone
    month = today.replace(day=1)

    # The manager sets li's target for this month.
    with person(browser, fresh_crm, "wang") as manager:
        manager.goto(f"{url}e/sales_target/new")
        manager.locator("#in-rep").select_option("li")
        manager.locator("#in-period_start").fill(month.isoformat())
        manager.locator("#in-amount").fill(str(TARGET))
        manager.get_by_role("button", name="保存").click()
        expect(manager).to_have_url(re.compile(r"/e/sales_target/\d+$"))

    with person(browser, fresh_crm, "li") as rep:
        # A customer ...
        rep.goto(f"{url}e/customer/new")
        rep.locator("#in-name").fill("苏州博远精密制造有限公司")
        rep.locator("#in-email").fill("purchase@boyuan.example.com")
        rep.get_by_role("button", name="保存").click()
        expect(rep).to_have_url(re.compile(r"/e/customer/\d+$"))
        shot(rep, "1-customer")

        # ... a new lead (客户开发) ...
        rep.goto(f"{url}e/opportunity/new")
        rep.locator("#in-name").fill("博远 2 台数控机床采购")
        rep.locator("#in-customer").select_option(label="苏州博远精密制造有限公司")
        rep.locator("#in-amount").fill(str(TOTAL))
        rep.locator("#in-close_date").fill((today + timedelta(days=20)).isoformat())
        rep.get_by_role("button", name="保存").click()
        expect(rep).to_have_url(re.compile(r"/e/opportunity/\d+$"))
        deal_url = rep.url
        stage = rep.locator("dt", has_text="销售阶段").locator("xpath=following-sibling::dd[1]")
        expect(stage).to_contain_text("客户开发")
        shot(rep, "2-lead")

        # ... moved through the stages, one edit (one version) at a time.
        for value, label in STAGES:
            rep.goto(f"{deal_url}/edit")
            rep.locator("#in-stage").select_option(value)
            rep.get_by_role("button", name="保存").click()
            expect(rep).to_have_url(deal_url)
            expect(stage).to_contain_text(label)
        probability = rep.locator("dt", has_text="赢单概率").locator(
            "xpath=following-sibling::dd[1]"
        )
        expect(probability).to_contain_text("90")
        shot(rep, "3-contract-stage")

        # The contract for it, submitted for approval.
        rep.goto(f"{url}e/contract/new")
        rep.locator("#in-subject").fill("博远数控机床采购合同")
        rep.locator("#in-customer").select_option(label="苏州博远精密制造有限公司")
        rep.locator("#in-opportunity").select_option(label="博远 2 台数控机床采购")
        rep.locator("#in-total").fill(str(TOTAL))
        rep.locator("#in-start_date").fill(today.isoformat())
        rep.locator("#in-end_date").fill((today + timedelta(days=364)).isoformat())
        rep.get_by_role("button", name="保存").click()
        expect(rep).to_have_url(re.compile(r"/e/contract/\d+$"))
        contract_url = rep.url
        rep.get_by_role("button", name="提交审批").click()
        expect(rep.locator(".ff-flash")).to_have_text("已提交审批")
        expect(_panel(rep).locator("h2 .ff-badge")).to_have_text("审批中")
        expect(_panel(rep).locator("li.ff-step", has_text="财务会签")).to_contain_text("已跳过")
        shot(rep, "4-submitted")

    # The manager approves it from the inbox.
    with person(browser, fresh_crm, "wang") as manager:
        manager.locator("header nav .ff-inbox-link").click()
        expect(manager.locator("main h1")).to_have_text("待我审批")
        row = manager.locator("table.ff-inbox tbody tr", has_text=_money(TOTAL))
        expect(row).to_contain_text("经理审批")
        shot(manager, "5-inbox")
        row.locator("a").first.click()
        expect(manager).to_have_url(contract_url)
        _panel(manager).locator(".ff-decide").get_by_role("button", name="通过", exact=True).click()
        expect(manager.locator(".ff-flash")).to_have_text("已通过")
        expect(_panel(manager).locator("h2 .ff-badge")).to_have_text("已通过")

    with person(browser, fresh_crm, "li") as rep:
        rep.goto(contract_url)
        signed = rep.locator("dt", has_text="签约日期").locator("xpath=following-sibling::dd[1]")
        expect(signed).to_have_text(re.compile(r"^\s*\d{4}年\d{1,2}月\d{1,2}日\s*$"))
        y, m, d = re.findall(r"\d+", signed.inner_text())
        signed_on = date(int(y), int(m), int(d))
        assert signed_on in (today, today + timedelta(days=1))  # approved around midnight
        shot(rep, "6-approved")

        # The commission statement of the signed month has the line, at the plan's amount.
        period = signed_on.strftime("%Y-%m")
        rep.goto(f"{url}commissions?period={period}")
        expect(rep.locator("main h1")).to_have_text("提成单")
        statement = rep.locator("table.ff-statement")
        expect(statement).to_contain_text(_money(TOTAL))
        expect(statement).to_contain_text(_money(TARGET))
        commission = expected_commission(TOTAL, TARGET)
        assert commission == Decimal("3000.00")  # 50,000 × 3% + 30,000 × 5%
        expect(rep.locator(".ff-total")).to_have_text(_money(commission))
        line = rep.locator("table.ff-sources tr", has_text=_money(TOTAL))
        expect(line).to_have_count(1)
        expect(line.locator("td").nth(0)).to_contain_text("HT-")
        expect(line.locator("td").nth(1)).to_have_text(signed_on.isoformat())
        shot(rep, "7-commission")
    assert Path("/tmp/crm-walk-7-commission.png").exists()
