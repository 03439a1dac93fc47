"""The CRM manager dashboard in a real browser: charts drawn, click-through to the list.

Signs in as 王芳 (a sales manager of the demo), opens the team dashboard and checks
that ECharts drew the funnel and the gauge (an instance on each chart element and
a canvas with painted pixels), then clicks the funnel's first segment and lands on
the opportunity list filtered to that stage. The ``page`` fixture fails the test on
any CSP violation (the charts are drawn by static files only).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from browser_support import Server, screenshot, sign_in

pytestmark = pytest.mark.browser

#: How many pixels of the chart's canvas are painted (alpha > 0); 0 for a blank chart.
PAINTED = """(el) => {
  const chart = echarts.getInstanceByDom(el);
  if (!chart) return -1;
  const canvas = el.querySelector('canvas');
  if (!canvas) return -2;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""

#: The centre of data item ``index`` of the chart's first series, in viewport pixels.
ITEM_CENTRE = """([el, index]) => {
  const chart = echarts.getInstanceByDom(el);
  const graphic = chart.getModel().getSeriesByIndex(0).getData().getItemGraphicEl(index);
  const rect = graphic.getBoundingRect();
  const box = el.getBoundingClientRect();
  return {x: box.left + rect.x + rect.width / 2, y: box.top + rect.y + rect.height / 2,
          name: chart.getOption().series[0].data[index].name};
}"""


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _widget(page: Any, kind: str) -> Any:
    return page.locator(f"article.ff-widget-{kind} .ff-chart").first


def test_manager_dashboard_draws_funnel_and_gauge_and_drills_down(
    page: Any, crm_server: Server, tmp_path: Path
) -> None:
    expect = _expect()
    sign_in(page, crm_server, "wang.fang")
    page.get_by_role("link", name="团队业绩看板").first.click()
    expect(page).to_have_url(f"{crm_server.url}d/sales_manager")
    expect(page.locator("h1")).to_have_text("团队业绩看板")
    funnel, gauge = _widget(page, "funnel"), _widget(page, "gauge")
    expect(funnel).to_have_class("ff-chart ff-chart-drawn")
    expect(gauge).to_have_class("ff-chart ff-chart-drawn")
    page.wait_for_function("() => document.querySelectorAll('.ff-chart-drawn canvas').length >= 5")
    page.wait_for_timeout(1200)  # the charts' entry animation (about 1 s) ends
    for chart in (funnel, gauge):
        assert chart.evaluate(PAINTED) > 500
    assert page.locator("article.ff-widget-leaderboard li").count() >= 1
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, "/tmp/dash-shot.png")
    screenshot(page, "dashboard_manager")

    funnel.scroll_into_view_if_needed()  # page.mouse clicks in the viewport
    handle = funnel.element_handle()
    target = page.evaluate(ITEM_CENTRE, [handle, 0])
    page.mouse.click(target["x"], target["y"])
    page.wait_for_url("**/e/opportunity?**")
    assert "stage=" in page.url
    headers = [t.strip() for t in page.locator("table.ff-list thead th").all_inner_texts()]
    stage_column = next(i for i, h in enumerate(headers, start=1) if h.startswith("销售阶段"))
    stages = {
        t.strip()
        for t in page.locator(
            f"table.ff-list tbody tr td:nth-child({stage_column})"
        ).all_inner_texts()
    }
    assert stages == {target["name"]}
    screenshot(page, "dashboard_drill_funnel")


def test_rep_dashboard_shows_my_attainment_and_commission(page: Any, crm_server: Server) -> None:
    expect = _expect()
    sign_in(page, crm_server, "li.lei")
    assert page.get_by_role("link", name="团队业绩看板").count() == 0  # the managers' one
    page.get_by_role("link", name="我的业绩").first.click()
    expect(page).to_have_url(f"{crm_server.url}d/sales_rep")
    gauge = _widget(page, "gauge")
    expect(gauge).to_have_class("ff-chart ff-chart-drawn")
    page.wait_for_timeout(1200)  # the entry animation ends
    assert gauge.evaluate(PAINTED) > 500
    commission = page.locator("article.ff-widget-commission")
    expect(commission.locator("h2")).to_have_text("本月提成")
    expect(commission.locator(".ff-figure")).to_contain_text("¥")
    screenshot(page, "dashboard_rep")
