"""User pickers, owner reassignment and file uploads in a real browser (the CRM demo).

wang.fang manages li.lei and han.meimei: her pickers offer her team; she creates
an opportunity with a presales consultant picked from the list, hands it to
han.meimei, uploads a proposal, downloads it again, and moves the deal back.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import Server, screenshot, sign_in

pytestmark = pytest.mark.browser

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_pick_a_user_reassign_the_owner_and_upload_a_file(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "wang.fang")
    page.goto(f"{crm_server.url}e/opportunity/new")
    expect(page.locator("main h1")).to_have_text("新建商机")

    # The presales picker lists her team by display name and login name.
    presales = page.locator("#in-presales")
    expect(presales.locator("option")).to_have_text(
        ["（无）", "韩梅梅 (han.meimei)", "李雷 (li.lei)", "王芳（华东经理） (wang.fang)"]
    )
    owner = page.locator("#in-owner")
    expect(owner).to_have_value("wang.fang")
    expect(page.locator("#owner-section legend")).to_have_text("记录归属")

    page.locator("#in-name").fill("华东区会议系统升级")
    page.locator("#in-customer").select_option(label="上海华东机电设备有限公司")
    page.locator("#in-amount").fill("36000")
    presales.select_option(label="李雷 (li.lei)")
    owner.select_option(label="韩梅梅 (han.meimei)")
    page.locator("#in-attachment").set_input_files(
        files=[{"name": "会议系统方案.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    # The live preview still works on the multipart form (files are left out of it).
    page.locator("#in-stage").select_option("proposal")
    expect(page.locator("#computed-probability")).to_have_text("60%")
    screenshot(page, "form_opportunity_people_and_file")
    page.get_by_role("button", name="保存").click()

    expect(page).to_have_url(re.compile(r"/e/opportunity/\d+$"))
    expect(page.locator("main h1")).to_have_text("华东区会议系统升级")
    value = page.locator("dt", has_text="售前顾问").locator("xpath=following-sibling::dd[1]")
    expect(value).to_have_text("李雷 (li.lei)")
    expect(page.locator(".ff-meta")).to_contain_text("负责人: 韩梅梅 (han.meimei)")
    link = page.get_by_role("link", name="会议系统方案.pdf")
    expect(link).to_be_visible()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "会议系统方案.pdf"
    with open(download.path(), "rb") as got:
        assert got.read() == PDF

    # Hand the deal back to li.lei; the history shows both owners by name.
    page.get_by_role("button", name="编辑").click()
    expect(page.locator("#in-owner")).to_have_value("han.meimei")
    expect(page.locator("#field-attachment a")).to_have_text("会议系统方案.pdf")
    page.locator("#in-owner").select_option("li.lei")
    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"/e/opportunity/\d+$"))
    expect(page.locator(".ff-meta")).to_contain_text("负责人: 李雷 (li.lei)")
    timeline = page.locator(".ff-timeline > li").first
    expect(timeline).to_contain_text("负责人: 韩梅梅 (han.meimei) → 李雷 (li.lei)")
    screenshot(page, "detail_opportunity_owner_history")


def test_a_rep_gets_no_owner_field_and_only_themself_to_pick(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "han.meimei")
    page.goto(f"{crm_server.url}e/opportunity/new")
    expect(page.locator("#in-presales option")).to_have_text(["（无）", "韩梅梅 (han.meimei)"])
    expect(page.locator("#owner-section")).to_have_count(0)
    expect(page.locator("[name=owner]")).to_have_count(0)
