"""The CRM demo in a real browser: sign in, forms with errors, live child tables, lists.

One gunicorn server (``crm_server``) serves the whole module; each test uses a
fresh browser context, signs in through the form and leaves screenshots in
``test-artifacts/screenshots/``. Playwright's ``expect`` waits for htmx swaps
(no sleeps); the ``page`` fixture fails a test on any dialog or CSP violation.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from browser_support import Server, screenshot, sign_in

pytestmark = pytest.mark.browser

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _money(text: str) -> Decimal | None:
    digits = text.replace("¥", "").replace(",", "").strip()
    return Decimal(digits) if digits and digits != "—" else None


def _column(page: Any, index: int) -> list[str]:
    return [
        t.strip()
        for t in page.locator(f"table.ff-list tbody tr td:nth-child({index})").all_inner_texts()
    ]


def _header_index(page: Any, label: str) -> int:
    headers = [t.strip() for t in page.locator("table.ff-list thead th").all_inner_texts()]
    for i, text in enumerate(headers, start=1):
        if text.startswith(label):
            return i
    raise AssertionError(f"no column {label!r} in {headers}")


def test_sign_in_in_chinese_and_home(page: Any, crm_server: Server) -> None:
    expect = _expect()
    page.goto(crm_server.url)
    expect(page).to_have_url(re.compile(r"/signin"))
    expect(page.locator("h1")).to_have_text("登录")
    page.locator("input[name=name]").fill("li.lei")
    page.locator("input[name=password]").fill("wrong-password")
    page.locator("form[action='/signin'] button[type=submit]").click()
    expect(page.locator("main .ff-error")).to_have_text("用户名或密码不正确")
    expect(page.locator("input[name=name]")).to_have_value("li.lei")
    screenshot(page, "signin_failed")

    sign_in(page, crm_server, "li.lei")
    expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^zh"))
    expect(page.locator("main h1")).to_have_text("销售客户管理")
    expect(page.locator("header nav")).to_contain_text("李雷")
    cards = page.locator(".ff-cards article")
    expect(cards.filter(has_text="客户").first).to_be_visible()
    # li.lei's deals in the demo: OPPORTUNITIES (deals in every stage, for the
    # dashboards) and STAGE_HISTORY (for the forecast) in engine/demo.py.
    expect(cards.filter(has_text="商机")).to_contain_text("7 条记录")
    screenshot(page, "home")


def test_create_customer_with_errors_then_fixed(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "li.lei")
    page.locator(".ff-cards article", has_text="公司或个人客户").get_by_role(
        "link", name="新建"
    ).click()
    expect(page).to_have_url(re.compile(r"/e/customer/new$"))
    expect(page.locator("main h1")).to_have_text("新建客户")

    # Everything but the required name.
    page.locator("#in-industry").select_option(label="信息技术")
    page.locator("#in-segment").select_option("中小企业")
    page.locator("#in-employees").fill("45")
    page.locator("#in-phone").fill("010-8888 6666")
    page.locator("#in-address").fill("北京市海淀区中关村大街 1 号")
    page.get_by_role("button", name="保存").click()

    # The error sits next to the field, in Chinese; what was typed is kept.
    error = page.locator("#field-name .ff-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(CHINESE)
    expect(page.locator("#in-name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("main [role=alert]").first).to_have_text(CHINESE)
    expect(page.locator("#in-industry")).to_have_value("it")
    expect(page.locator("#in-segment")).to_have_value("中小企业")
    expect(page.locator("#in-employees")).to_have_value("45")
    expect(page.locator("#in-phone")).to_have_value("010-8888 6666")
    expect(page.locator("#in-address")).to_have_value("北京市海淀区中关村大街 1 号")
    expect(page.locator("#field-phone .ff-error")).to_have_count(0)
    screenshot(page, "form_customer_errors")

    page.locator("#in-name").fill("北京星河智联科技有限公司")
    page.get_by_role("button", name="保存").click()

    expect(page).to_have_url(re.compile(r"/e/customer/\d+$"))
    expect(page.locator("main h1")).to_have_text("北京星河智联科技有限公司")
    values = page.locator("dl.ff-values")
    expect(values.first).to_contain_text("信息技术")
    phone = page.locator("dt", has_text="电话").locator("xpath=following-sibling::dd[1]")
    expect(phone).to_have_text(re.compile(r"^010[- ]?8888[- ]?6666$"))
    expect(page.locator("main")).to_contain_text("北京市海淀区中关村大街 1 号")
    expect(page.locator(".ff-meta")).to_contain_text("li.lei")
    expect(page.locator(".ff-timeline")).to_contain_text("负责人: 李雷 (li.lei)")
    screenshot(page, "detail_customer")

    page.goto(f"{crm_server.url}e/customer?q=星河智联")
    expect(page.locator("table.ff-list tbody tr.ff-row")).to_have_count(1)


def test_opportunity_lines_and_live_total(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "li.lei")
    page.goto(f"{crm_server.url}e/opportunity/new")
    expect(page.locator("main h1")).to_have_text("新建商机")
    # A file field is a file input with its limits; it is not "computed".
    attachment = page.locator("#field-attachment")
    expect(attachment.locator("input[type=file]")).to_have_count(1)
    expect(attachment).to_contain_text("最大 20 MB")
    expect(attachment.locator(".ff-tag")).to_have_count(0)
    screenshot(page, "form_opportunity_empty")

    page.locator("#in-name").fill("华东区办公设备集中采购")
    page.locator("#in-customer").select_option(label="上海华东机电设备有限公司")
    page.locator("#in-amount").fill("20000")
    total = page.locator("#computed-total")
    expect(total).to_have_text("¥0.00")

    rows = page.locator("#rows-lines tr")
    add_row = page.get_by_role("button", name="添加一行")

    add_row.click()
    expect(rows).to_have_count(1)
    first = rows.nth(0)
    expect(first.locator("input[name$='.qty']")).to_have_value("1")
    first.locator("input[name$='.product']").fill("激光打印机")
    first.locator("input[name$='.qty']").fill("3")
    first.locator("input[name$='.price']").fill("1200")
    expect(first.locator("output[id$='-subtotal']")).to_have_text("¥3,600.00")
    expect(total).to_have_text("¥3,600.00")

    add_row.click()
    expect(rows).to_have_count(2)
    second = rows.nth(1)
    second.locator("input[name$='.product']").fill("碎纸机")
    second.locator("input[name$='.qty']").fill("2")
    second.locator("input[name$='.price']").fill("450.50")
    expect(second.locator("output[id$='-subtotal']")).to_have_text("¥901.00")
    expect(total).to_have_text("¥4,501.00")

    # A third row, removed again: the total follows.
    add_row.click()
    expect(rows).to_have_count(3)
    third = rows.nth(2)
    third.locator("input[name$='.product']").fill("投影仪")
    third.locator("input[name$='.price']").fill("5000")
    expect(total).to_have_text("¥9,501.00")
    third.get_by_role("button", name="删除此行").click()
    expect(rows).to_have_count(2)
    expect(total).to_have_text("¥4,501.00")

    # The stage drives the computed probability too.
    page.locator("#in-stage").select_option("proposal")
    expect(page.locator("#computed-probability")).to_have_text("60%")
    screenshot(page, "form_opportunity_lines")

    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"/e/opportunity/\d+$"))
    expect(page.locator("main h1")).to_have_text("华东区办公设备集中采购")
    total_value = page.locator("dt", has_text="明细合计").locator("xpath=following-sibling::dd[1]")
    expect(total_value).to_have_text("¥4,501.00")
    lines = page.locator("section.ff-section", has_text="产品明细").locator("table tbody tr")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text("激光打印机")
    expect(lines.nth(0)).to_contain_text("¥3,600.00")
    expect(lines.nth(1)).to_contain_text("碎纸机")
    expect(page.locator("main")).to_contain_text("方案制定")
    expect(page.locator("main")).to_contain_text(re.compile(r"OPP-\d{6}-\d{4}"))
    screenshot(page, "detail_opportunity")


def test_list_filter_search_and_sort(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "admin")
    page.locator("header nav").get_by_role("link", name="客户", exact=True).click()
    expect(page).to_have_url(re.compile(r"/e/customer$"))
    expect(page.locator("main h1")).to_have_text("客户")
    rows = page.locator("table.ff-list tbody tr.ff-row")
    expect(rows.first).to_be_visible()
    screenshot(page, "list_customers")
    everyone = rows.count()
    assert everyone >= 8

    # A choice filter.
    page.get_by_label("所属行业").select_option(label="制造业")
    page.get_by_role("button", name="筛选").click()
    expect(page).to_have_url(re.compile(r"industry=manufacturing"))
    industry = _header_index(page, "所属行业")
    expect(page.locator(f"table.ff-list tbody tr td:nth-child({industry})").first).to_have_text(
        "制造业"
    )
    assert set(_column(page, industry)) == {"制造业"}
    names = _column(page, 1)
    assert "上海华东机电设备有限公司" in names
    assert "南京金陵百货股份有限公司" not in names
    expect(page.get_by_label("所属行业")).to_have_value("manufacturing")

    # Sort by a column: the filter stays, the order follows the column.
    revenue = _header_index(page, "年营业额")
    header = page.locator("table.ff-list thead th").nth(revenue - 1)
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"industry=manufacturing"))
    amounts = [v for v in map(_money, _column(page, revenue)) if v is not None]
    assert amounts == sorted(amounts) and len(amounts) >= 2
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    amounts = [v for v in map(_money, _column(page, revenue)) if v is not None]
    assert amounts == sorted(amounts, reverse=True)
    assert set(_column(page, industry)) == {"制造业"}
    screenshot(page, "list_customers_filtered_sorted")

    # The search box, together with the filter.
    page.get_by_role("searchbox").fill("精密")
    page.get_by_role("button", name="搜索").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("广州白云精密制造有限公司")
    expect(page.get_by_role("searchbox")).to_have_value("精密")
    expect(page.locator(".ff-count")).to_have_text("共 1 条")

    # Nothing matches: the empty message; "clear" brings every record back.
    page.get_by_role("searchbox").fill("不存在的客户名称")
    page.get_by_role("button", name="搜索").click()
    expect(page.locator("table.ff-list tbody")).to_contain_text("没有符合条件的记录")
    page.get_by_role("link", name="清除").click()
    expect(rows).to_have_count(everyone)

    # A filter on the opportunity list: the stage.
    page.goto(f"{crm_server.url}e/opportunity")
    page.get_by_label("销售阶段").select_option(label="方案制定")
    page.get_by_role("button", name="筛选").click()
    stage = _header_index(page, "销售阶段")
    expect(page.locator(f"table.ff-list tbody tr td:nth-child({stage})").first).to_have_text(
        "方案制定"
    )
    assert set(_column(page, stage)) == {"方案制定"}
    assert "核心交易系统灾备建设" in _column(page, 2)


def test_switch_language_to_english(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "wang.fang")
    expect(page.locator("main h1")).to_have_text("销售客户管理")
    page.locator("header nav").get_by_role("link", name="English").click()
    expect(page.locator("main h1")).to_have_text("Sales CRM")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    nav = page.locator("header nav")
    expect(nav.get_by_role("link", name="Customer", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="中文")).to_be_visible()
    screenshot(page, "home_en")

    # The choice is remembered in the session: other pages follow.
    nav.get_by_role("link", name="Opportunity", exact=True).click()
    expect(page.locator("main h1")).to_have_text("Opportunity")
    expect(page.locator("table.ff-list thead")).to_contain_text("Stage")
    expect(page.get_by_role("button", name="Filter")).to_be_visible()
    page.locator("table.ff-list tbody a.ff-row-link").first.click()
    expect(page.locator("main")).to_contain_text("History")
    page.goto(f"{crm_server.url}e/customer/new")
    expect(page.locator("label[for=in-name]")).to_contain_text("Name")
    expect(page.locator("#in-name")).to_have_attribute("placeholder", "Full legal name")
    expect(page.get_by_role("button", name="Save")).to_be_visible()
    screenshot(page, "form_customer_en")

    # ?lang=zh switches back.
    page.goto(f"{crm_server.url}?lang=zh")
    expect(page.locator("main h1")).to_have_text("销售客户管理")
