"""Hostile blueprint text and record values stay text in a real browser.

The ``hostile_server`` blueprint puts ``<img src=x onerror=alert(1)>``,
``<svg onload=alert(1)>``, ``javascript:alert(1)`` and ``{{7*7}}`` in its title,
description, entity and field labels, help, placeholders, options, section
labels, rule messages and a record. Each page is opened twice: once with the
app's Content-Security-Policy (any refused script fails the test) and once with
the CSP bypassed, so that only escaping stands between the text and a script;
a JavaScript dialog, or an element or handler made from the text, fails the
test, and every text must show exactly as written (``{{7*7}}``, never ``49``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import JS_URL, SVG, TEMPLATE, XSS, Server, Watch, screenshot, sign_in

pytestmark = pytest.mark.browser

#: Elements and attributes that exist only if some hostile text became markup.
INERT_CHECK = """() => {
  const bad = [];
  const made = 'img, svg, iframe, object, embed, script:not([src])';
  for (const el of document.querySelectorAll(made)) bad.push(el.outerHTML);
  const links = ['href', 'src', 'action', 'formaction'];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(el.tagName + ' ' + a.name);
      if (links.includes(a.name) && /^\\s*javascript:/i.test(a.value)) {
        bad.push(el.tagName + ' ' + a.name + '=' + a.value);
      }
    }
  }
  return bad;
}"""


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _assert_inert(page: Any, watch: Watch, where: str) -> None:
    page.wait_for_load_state("networkidle")
    made = page.evaluate(INERT_CHECK)
    assert made == [], f"{where}: hostile text became markup: {made}"
    assert watch.dialogs == [], f"{where}: a dialog opened: {watch.dialogs}"


@pytest.fixture(params=["csp", "no-csp"])
def any_page(request: pytest.FixtureRequest) -> Any:
    """The page with the app's CSP, then with the CSP bypassed."""
    return request.getfixturevalue("page" if request.param == "csp" else "unprotected_page")


def test_hostile_text_never_runs(
    any_page: Any, watch: Watch, hostile_server: Server, request: pytest.FixtureRequest
) -> None:
    expect = _expect()
    page = any_page
    suffix = "" if request.node.callspec.params["any_page"] == "csp" else "_nocsp"
    base = hostile_server.url
    record_id = hostile_server.extra["record_id"]

    # The sign-in page carries the blueprint title.
    page.goto(f"{base}signin")
    expect(page).to_have_title(re.compile(re.escape(XSS)))
    _assert_inert(page, watch, "signin")
    sign_in(page, hostile_server, "admin")

    # Home: title, description and the entity card.
    main = page.locator("main")
    expect(page.locator("main h1")).to_have_text(f"{XSS} 标题 {TEMPLATE}")
    expect(main).to_contain_text(f"{SVG} {JS_URL}")
    expect(main).to_contain_text(f"{XSS}客户")
    expect(main).to_contain_text(f"{SVG}{TEMPLATE}")
    _assert_inert(page, watch, "home")
    screenshot(page, f"hostile_home{suffix}")

    # List: labels, option labels and option values in the filters, the record.
    page.locator("header nav").get_by_role("link", name=f"{XSS}客户").click()
    expect(page.locator("main h1")).to_have_text(f"{XSS}客户")
    table = page.locator("table.ff-list")
    expect(table.locator("thead")).to_contain_text(f"{XSS}名称")
    expect(table.locator("tbody")).to_contain_text(f"{XSS}{TEMPLATE}")
    expect(table.locator("tbody")).to_contain_text(SVG)
    kind = page.get_by_label(f"{TEMPLATE}类型")
    expect(kind.locator("option", has_text=SVG)).to_have_count(1)
    _assert_inert(page, watch, "list")
    kind.select_option(SVG)
    page.get_by_role("searchbox").fill(XSS)
    page.get_by_role("button", name="搜索").click()
    expect(page.get_by_role("searchbox")).to_have_value(XSS)
    expect(table.locator("tbody tr.ff-row")).to_have_count(1)
    expect(page.get_by_label(f"{TEMPLATE}类型")).to_have_value(SVG)
    _assert_inert(page, watch, "list filtered")
    screenshot(page, f"hostile_list{suffix}")

    # Detail: title, values, child rows, section labels, history.
    table.locator("a.ff-row-link").first.click()
    expect(page).to_have_url(f"{base}e/customer/{record_id}")
    expect(page.locator("main h1")).to_have_text(f"{XSS}{TEMPLATE}")
    expect(main).to_contain_text(f"{SVG}\n{JS_URL}\n{TEMPLATE}")
    expect(main.locator("h2").first).to_have_text(f"{SVG}基本")
    expect(main.locator("table tbody").first).to_contain_text(XSS)
    _assert_inert(page, watch, "detail")
    screenshot(page, f"hostile_detail{suffix}")

    # Edit form: every label, help and placeholder; an added row (htmx); a preview.
    page.get_by_role("button", name="编辑").click()
    expect(page.locator("#in-name")).to_have_value(f"{XSS}{TEMPLATE}")
    expect(page.locator("#in-notes")).to_have_value(f"{SVG}\n{JS_URL}\n{TEMPLATE}")
    expect(page.locator("#help-name")).to_have_text(f"{SVG} 帮助 {TEMPLATE}")
    expect(page.locator("#in-name")).to_have_attribute("placeholder", JS_URL)
    expect(page.locator("label[for=in-level]")).to_contain_text(f"{SVG}等级")
    _assert_inert(page, watch, "edit form")
    page.get_by_role("button", name="添加一行").click()
    expect(page.locator("#rows-lines tr")).to_have_count(2)
    with page.expect_response(re.compile(r"/preview$")):
        page.locator("#rows-lines tr").nth(1).locator("input[name$='.item']").fill(SVG)
    _assert_inert(page, watch, "edit form with a new row")
    screenshot(page, f"hostile_form{suffix}")

    # A new record typed with hostile values: a javascript: website is refused.
    page.goto(f"{base}e/customer/new")
    page.locator("#in-name").fill(f"{SVG}新{TEMPLATE}")
    page.locator("#in-level").select_option(label=XSS)
    page.locator("#in-website").fill(JS_URL)
    page.get_by_role("button", name="保存").click()
    expect(page.locator("#field-website .ff-error")).to_contain_text("http")
    expect(page.locator("#in-name")).to_have_value(f"{SVG}新{TEMPLATE}")
    _assert_inert(page, watch, "form with errors")
    # A link that tries to break out of its href attribute.
    breakout = 'https://example.com/?q="><svg/onload=alert(1)>'
    page.locator("#in-website").fill(breakout)
    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"/e/customer/\d+$"))
    expect(page.locator("main h1")).to_have_text(f"{SVG}新{TEMPLATE}")
    website = page.locator("dt", has_text=JS_URL).locator("xpath=following-sibling::dd[1]")
    expect(website).to_have_text(breakout)
    expect(page.locator(".ff-flash")).to_have_text("已创建")
    _assert_inert(page, watch, "new record's detail")

    # The same pages in English.
    page.goto(f"{base}?lang=en")
    expect(page.locator("main h1")).to_have_text(f"{XSS} Title {TEMPLATE}")
    _assert_inert(page, watch, "home (en)")
    page.goto(f"{base}e/customer/{record_id}")
    expect(main.locator("h2").first).to_have_text(f"{SVG}Basics")
    _assert_inert(page, watch, "detail (en)")
