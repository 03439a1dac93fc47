"""Dashboard pages and the dashboard API: roles, every widget kind against numbers
computed here from the records made here, filters, drill-down to the list, bad input."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_web_support import make_app, records, sign_in, text

from engine.locales import format_money, format_percent
from engine.records import Actor
from engine.web.services import services

ADMIN = Actor("admin", frozenset({"admin"}))
ZONE = "Asia/Shanghai"

BLUEPRINT = """
formflow: 1
id: dash
title: {zh: 看板测试, en: Dashboard test}
timezone: Asia/Shanghai
currency: CNY
roles:
  rep: {zh: 销售, en: Rep}
  manager: {zh: 经理, en: Manager}
  viewer: {zh: 访客, en: Viewer}
entities:
  deal:
    label: {zh: 交易, en: Deal}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true}
      stage:
        type: choice
        label: {zh: 阶段, en: Stage}
        options:
          - {value: lead, label: {zh: 线索, en: Lead}}
          - {value: proposal, label: {zh: 方案, en: Proposal}}
          - {value: won, label: {zh: 赢单, en: Won}}
          - {value: lost, label: {zh: 输单, en: Lost}}
      amount: {type: money, label: {zh: 金额, en: Amount}}
      closes: {type: date, label: {zh: 成交日, en: Closes}}
    access:
      rep: {create: true, read: own, update: own}
      manager: {create: true, read: team, update: team}
      viewer: {read: all}
    list:
      columns: [name, stage, amount, closes, owner]
      filters: [stage, closes]
      sort: [name]
      page_size: 100
  target:
    label: {zh: 目标, en: Target}
    fields:
      rep: {type: user, label: {zh: 销售, en: Rep}, required: true}
      month: {type: date, label: {zh: 月份, en: Month}, required: true}
      amount: {type: money, label: {zh: 目标金额, en: Target amount}, required: true}
    access:
      rep: {read: "=rep == CURRENT_USER()"}
      manager: {create: true, read: team, update: team}
kpis:
  sales:
    label: {zh: 赢单金额, en: Sales}
    entity: deal
    measure: "SUM(amount)"
    where: "stage == 'won'"
    date: closes
    by: [owner, month]
    target: {entity: target, measure: "SUM(amount)", match: {owner: rep}, date: month}
    format: money
  pipeline:
    label: {zh: 在途金额, en: Pipeline}
    entity: deal
    measure: "SUM(amount)"
    where: "stage in ['lead', 'proposal']"
    date: closes
    by: [owner, stage]
    format: money
  win_rate:
    label: {zh: 赢单率, en: Win rate}
    entity: deal
    measure: "100 * COUNT(stage == 'won') / COUNT(stage in ['won', 'lost'])"
    date: closes
    by: [owner]
    target: 50
    format: percent
  losses:
    label: {zh: 输单金额, en: Lost amount}
    entity: deal
    measure: "SUM(amount)"
    where: "stage == 'lost'"
    date: closes
    by: [owner]
    format: money
    better: lower
commissions:
  rep_plan:
    label: {zh: 提成, en: Commission}
    roles: [rep]
    kpi: sales
    period: month
    mode: marginal
    tiers:
      - {upto: 100, rate: 3}
      - {rate: 5}
dashboards:
  board:
    label: {zh: 业绩, en: Performance}
    roles: [manager, rep]
    filters: [period, team, owner]
    widgets:
      - {kind: number, kpi: sales, period: this_month, label: {zh: 本月赢单, en: Won this month}}
      - {kind: gauge, kpi: sales, period: this_month, label: {zh: 达成, en: Attainment}}
      - {kind: bar, kpi: sales, by: [owner], period: all, width: 2}
      - {kind: line, kpi: win_rate, by: [owner], period: all, width: 2}
      - {kind: pie, kpi: pipeline, by: [owner], period: all}
      - {kind: funnel, kpi: pipeline, by: [stage], period: all, width: 2, label: {zh: 漏斗}}
      - {kind: table, kpi: sales, by: [owner], period: all, width: 4}
      - {kind: leaderboard, kpi: sales, by: [owner], period: all, limit: 1}
      - {kind: number, kpi: win_rate, period: all, label: {zh: 总赢单率, en: Overall win rate}}
      - {kind: commission, period: this_month}
  managers_only:
    label: {zh: 经理专用, en: Managers only}
    roles: [manager]
    widgets:
      - {kind: number, kpi: sales, period: all}
  losses_board:
    label: {zh: 输单, en: Losses}
    roles: [manager]
    widgets:
      - {kind: number, kpi: losses, period: this_month}
      - {kind: leaderboard, kpi: losses, by: [owner], period: all}
  everyone:
    label: {zh: 公开, en: Everyone}
    widgets:
      - {kind: number, kpi: pipeline, period: all}
"""


@dataclass(frozen=True)
class Deal:
    name: str
    owner: str
    stage: str
    amount: int
    closes: date


def _months(today: date, back: int) -> date:
    index = today.year * 12 + today.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


TODAY = datetime.now(ZoneInfo(ZONE)).date()
THIS_MONTH = _months(TODAY, 0)
LAST_MONTH = _months(TODAY, 1)

DEALS = (
    Deal("r1-won-now", "rep1", "won", 100, THIS_MONTH),
    Deal("r1-won-before", "rep1", "won", 200, LAST_MONTH),
    Deal("r1-lost", "rep1", "lost", 50, THIS_MONTH),
    Deal("r1-lead", "rep1", "lead", 300, THIS_MONTH),
    Deal("r1-proposal", "rep1", "proposal", 400, THIS_MONTH),
    Deal("r2-won-now", "rep2", "won", 1000, THIS_MONTH),
    Deal("r2-proposal", "rep2", "proposal", 70, THIS_MONTH),
    Deal("r2-lead", "rep2", "lead", 30, THIS_MONTH),
    Deal("r3-won-now", "rep3", "won", 5000, THIS_MONTH),
    Deal("r3-lead", "rep3", "lead", 9000, THIS_MONTH),
)
#: (rep, month, amount)
TARGETS = (("rep1", THIS_MONTH, 1000), ("rep2", THIS_MONTH, 500), ("rep3", LAST_MONTH, 800))
#: name, roles, manager
USERS = (
    ("admin", ["admin"], None),
    ("boss", ["manager"], None),
    ("boss2", ["manager"], None),
    ("rep1", ["rep"], "boss"),
    ("rep2", ["rep"], "boss"),
    ("rep3", ["rep"], "boss2"),
    ("idle", ["rep"], "boss"),
    ("viewer", ["viewer"], None),
)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    folder = tmp_path / "dash"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(BLUEPRINT, encoding="utf-8")
    app = make_app(folder, db_url, [(n, r) for n, r, _m in USERS])
    svc = records(app)
    with app.app_context():
        for name, _roles, manager in USERS:
            if manager:
                services().users.set_manager(name, manager)
    for d in DEALS:
        svc.create(
            "deal",
            {
                "name": d.name,
                "stage": d.stage,
                "amount": str(d.amount),
                "closes": d.closes.isoformat(),
                "owner": d.owner,
            },
            actor=ADMIN,
        )
    for rep, month, amount in TARGETS:
        svc.create(
            "target",
            {"rep": rep, "month": month.isoformat(), "amount": str(amount), "owner": rep},
            actor=ADMIN,
        )
    yield app
    svc.engine.dispose()


# -- what the numbers should be (plain Python over DEALS) -------------------------------------

TEAMS = {"boss": {"rep1", "rep2", "idle", "boss"}, "boss2": {"rep3", "boss2"}}


def seen_by(viewer: str) -> set[str]:
    if viewer in ("admin", "viewer"):
        return {n for n, _r, _m in USERS}
    return TEAMS.get(viewer, {viewer})


def deals(
    viewer: str, *, stages: tuple[str, ...] = (), within: tuple[date, date] | None = None
) -> list[Deal]:
    out = [d for d in DEALS if d.owner in seen_by(viewer)]
    if stages:
        out = [d for d in out if d.stage in stages]
    if within:
        out = [d for d in out if within[0] <= d.closes < within[1]]
    return out


def total(found: list[Deal]) -> int:
    return sum(d.amount for d in found)


def by_owner(found: list[Deal]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in found:
        out[d.owner] = out.get(d.owner, 0) + d.amount
    return out


def money(value: float | int, lang: str = "zh") -> str:
    return format_money(Decimal(str(value)), "CNY", lang)


def percent(value: float | Decimal, lang: str = "zh") -> str:
    return format_percent(Decimal(str(value)).quantize(Decimal("0.1")), lang, places=1)


THIS = (THIS_MONTH, _months(TODAY, -1))
BEFORE = (LAST_MONTH, THIS_MONTH)


# -- page helpers ------------------------------------------------------------------------------


def client_as(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, name)
    return client


def widget(page: str, index: int) -> str:
    m = re.search(rf'<article[^>]*id="ff-widget-{index}".*?</article>', page, re.S)
    assert m, f"no widget {index}"
    return m.group(0)


def chart(page: str, index: int) -> dict[str, Any]:
    m = re.search(
        rf'<script type="application/json" id="ff-widget-{index}-data">(.*?)</script>', page, re.S
    )
    assert m, f"widget {index} has no chart"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def figure(page: str, index: int) -> str:
    m = re.search(r"data-ff-figure>(?:<a [^>]*>)?([^<]*)<", widget(page, index))
    assert m
    return html.unescape(m.group(1))


def cells(fragment: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", fragment, re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
        ]
        for r in rows
    ]


def list_names(client: FlaskClient, url: str) -> list[str]:
    page = text(client.get(html.unescape(url)))
    return sorted(re.findall(r'class="ff-row-link" href="[^"]+">([^<]+)<', page))


# -- tests -------------------------------------------------------------------------------------


def test_roles_see_their_dashboards_only(app: Flask) -> None:
    boss = client_as(app, "boss")
    home = text(boss.get("/"))
    assert "/d/board" in home and "/d/managers_only" in home and "/d/everyone" in home
    assert boss.get("/d/managers_only").status_code == 200

    rep = client_as(app, "rep1")
    home = text(rep.get("/"))
    assert "/d/board" in home and "/d/managers_only" not in home
    refused = rep.get("/d/managers_only")
    assert refused.status_code == 403

    viewer = client_as(app, "viewer")
    page = text(viewer.get("/"))
    assert "/d/everyone" in page and "/d/board" not in page
    assert viewer.get("/d/board").status_code == 403
    assert viewer.get("/d/everyone").status_code == 200
    assert viewer.get("/d/no_such_board").status_code == 404


def test_every_widget_kind_shows_the_numbers(app: Flask) -> None:
    boss = client_as(app, "boss")
    response = boss.get("/d/board")
    assert response.status_code == 200
    page = text(response)
    won = ("won",)
    now, before = (
        total(deals("boss", stages=won, within=THIS)),
        total(deals("boss", stages=won, within=BEFORE)),
    )
    # number card: this month, with the change vs last month
    assert figure(page, 0) == money(now)
    card = widget(page, 0)
    change = Decimal(100 * (now - before)) / before
    assert ("ff-change-up" if change > 0 else "ff-change-down") in card
    assert ("ff-change-good" if change > 0 else "ff-change-bad") in card  # more sales: good
    assert percent(abs(change)) in card and money(before) in card
    # gauge: attainment against this month's targets of the team
    target = sum(a for r, m, a in TARGETS if r in seen_by("boss") and m == THIS_MONTH)
    gauge = chart(page, 1)
    assert gauge["option"]["series"][0]["type"] == "gauge"
    assert gauge["option"]["series"][0]["data"][0]["value"] == pytest.approx(100 * now / target)
    assert percent(Decimal(100 * now) / target) in widget(page, 1)
    # bar: won amount by owner, each bar linking to its records
    bar = chart(page, 2)
    expected = by_owner(deals("boss", stages=won))
    labels = bar["option"]["xAxis"]["data"]
    values = bar["option"]["series"][0]["data"]
    got = dict(zip(labels, values, strict=True))
    assert {k: v for k, v in got.items() if v} == {k: float(v) for k, v in expected.items()}
    # line: win rate by owner
    line = chart(page, 3)
    rates = dict(
        zip(line["option"]["xAxis"]["data"], line["option"]["series"][0]["data"], strict=True)
    )
    for owner in ("rep1", "rep2"):
        mine = deals("boss", stages=("won", "lost"))
        closed = [d for d in mine if d.owner == owner]
        wins = [d for d in closed if d.stage == "won"]
        assert rates[owner] == pytest.approx(100 * len(wins) / len(closed))
    # pie: open pipeline by owner
    pie = chart(page, 4)
    slices = {d["name"]: d["value"] for d in pie["option"]["series"][0]["data"]}
    assert slices == {
        k: float(v) for k, v in by_owner(deals("boss", stages=("lead", "proposal"))).items()
    }
    # funnel: by stage in the choice's option order, not sorted by value
    funnel = chart(page, 5)
    series = funnel["option"]["series"][0]
    assert series["type"] == "funnel" and series["sort"] == "none"
    open_deals = deals("boss", stages=("lead", "proposal"))
    assert [(d["name"], d["value"]) for d in series["data"]] == [
        ("线索", float(total([d for d in open_deals if d.stage == "lead"]))),
        ("方案", float(total([d for d in open_deals if d.stage == "proposal"]))),
    ]
    # table: value, target, attainment and gap per owner, then the total
    rows = cells(widget(page, 6))
    targets_all = {r: a for r, _m, a in TARGETS}
    for owner, value in expected.items():
        t = targets_all[owner]
        assert [
            owner,
            money(value),
            money(t),
            percent(Decimal(100 * value) / t),
            money(t - value),
        ] in rows
    assert rows[-1][0] == "合计" and rows[-1][1] == money(total(deals("boss", stages=won)))
    # leaderboard: the first by value only (limit 1)
    board = widget(page, 7)
    leader = max(expected, key=lambda k: expected[k])
    assert re.findall(r'class="ff-drill">([^<]+)<', board) == [leader]
    assert money(expected[leader]) in board
    # a ratio card: overall win rate
    closed = deals("boss", stages=("won", "lost"))
    assert figure(page, 8) == percent(
        Decimal(100 * len([d for d in closed if d.stage == "won"])) / len(closed)
    )


def test_a_lower_is_better_kpi_ranks_the_lowest_first_and_a_rise_shows_red(app: Flask) -> None:
    svc = records(app)
    for name, owner, amount, closes in (
        ("r2-lost-now", "rep2", 20, THIS_MONTH),
        ("r1-lost-before", "rep1", 10, LAST_MONTH),
    ):
        svc.create(
            "deal",
            {"name": name, "stage": "lost", "amount": str(amount), "closes": closes.isoformat()}
            | {"owner": owner},
            actor=ADMIN,
        )
    page = text(client_as(app, "boss").get("/d/losses_board"))
    # This month's losses (50 + 20) against last month's 10: a rise, which is bad here.
    card = widget(page, 0)
    assert figure(page, 0) == money(70)
    assert "ff-change-up" in card and "ff-change-bad" in card and "ff-change-good" not in card
    # All-time losses by rep: rep2 20, rep1 60; the smallest loss leads.
    board = widget(page, 1)
    assert re.findall(r'class="ff-drill">([^<]+)<', board) == ["rep2", "rep1"]


def test_a_rep_sees_their_own_numbers(app: Flask) -> None:
    page = text(client_as(app, "rep1").get("/d/board"))
    assert figure(page, 0) == money(total(deals("rep1", stages=("won",), within=THIS)))
    slices = {d["name"]: d["value"] for d in chart(page, 4)["option"]["series"][0]["data"]}
    assert slices == {"rep1": float(total(deals("rep1", stages=("lead", "proposal"))))}


def test_filters_change_the_numbers(app: Flask) -> None:
    boss = client_as(app, "boss")
    page = text(boss.get("/d/board?owner=rep1"))
    assert figure(page, 0) == money(total([d for d in deals("rep1", stages=("won",), within=THIS)]))
    # a page period replaces every widget's own: last month only
    first, last = BEFORE[0].isoformat(), (BEFORE[1] - timedelta(days=1)).isoformat()
    page = text(boss.get(f"/d/board?period=custom&start={first}&end={last}"))
    assert figure(page, 0) == money(total(deals("boss", stages=("won",), within=BEFORE)))
    page = text(boss.get("/d/board?period=last_month"))
    assert figure(page, 0) == money(total(deals("boss", stages=("won",), within=BEFORE)))
    # the admin picks a team
    admin = client_as(app, "admin")
    page = text(admin.get("/d/board?team=boss2"))
    assert figure(page, 0) == money(total(deals("boss2", stages=("won",), within=THIS)))
    page = text(admin.get("/d/board"))
    assert figure(page, 0) == money(total(deals("admin", stages=("won",), within=THIS)))


def test_drill_links_list_exactly_the_counted_records(app: Flask) -> None:
    boss = client_as(app, "boss")
    page = text(boss.get("/d/board"))
    funnel = chart(page, 5)
    for index, stage in enumerate(("lead", "proposal")):
        url = funnel["links"][f"0:{index}"]
        assert list_names(boss, url) == sorted(d.name for d in deals("boss", stages=(stage,)))
    [link] = re.findall(r'href="([^"]+)" class="ff-drill">rep2<', widget(page, 7))
    assert list_names(boss, link) == sorted(
        d.name for d in deals("boss", stages=("won",)) if d.owner == "rep2"
    )
    [card] = re.findall(r'href="([^"]+)" class="ff-drill"', widget(page, 0))
    assert list_names(boss, card) == sorted(
        d.name for d in deals("boss", stages=("won",), within=THIS)
    )
    filtered = text(boss.get("/d/board?owner=rep1"))
    [card] = re.findall(r'href="([^"]+)" class="ff-drill"', widget(filtered, 0))
    assert list_names(boss, card) == sorted(
        d.name for d in deals("rep1", stages=("won",), within=THIS)
    )


@pytest.mark.parametrize(
    ("query", "zh", "en"),
    [
        ("period=custom&start=2026-02-30", "不是有效日期", "is not a real date"),
        ("period=someday", "未知的期间", "unknown period"),
        ("period=custom", "需填写开始或结束日期", "needs a start or an end date"),
        ("period=custom&start=2026-05-01&end=2026-04-01", "早于开始日期", "before it starts"),
        ("team=boss2", "不能查看 boss2 的团队", "may not look at the team of 'boss2'"),
        ("owner=rep3", "不能查看 rep3 的数据", "may not look at the figures of 'rep3'"),
    ],
)
def test_bad_filters_are_explained_in_both_languages(
    app: Flask, query: str, zh: str, en: str
) -> None:
    boss = client_as(app, "boss")
    for lang, expected in (("zh", zh), ("en", en)):
        response = boss.get(f"/d/board?{query}&lang={lang}")
        assert response.status_code == 400
        alerts = re.findall(r'class="ff-error" role="alert">([^<]+)<', text(response))
        assert alerts and expected in html.unescape(alerts[0])


def test_blank_ratio_and_empty_data(app: Flask) -> None:
    idle = client_as(app, "idle")
    page = text(idle.get("/d/board"))
    assert figure(page, 8) == "—"  # no closed deals: the win rate is blank, not 0 or an error
    assert figure(page, 0) == money(0)
    for index in (2, 3, 4, 5, 7):
        assert "ff-nodata" in widget(page, index)
    english = text(idle.get("/d/board?lang=en"))
    assert "No data for this period" in widget(english, 5)


def test_the_page_is_csp_friendly_and_readable_without_js(app: Flask) -> None:
    response = client_as(app, "boss").get("/d/board")
    page = text(response)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script([^>]*)>", page)
    assert all('src="' in s or 'type="application/json"' in s for s in scripts)
    assert "/static/vendor/echarts/echarts.min.js" in page and "/static/dashboard.js" in page
    # every chart has a title and its numbers in a table beside it
    for index in (1, 2, 3, 4, 5):
        part = widget(page, index)
        assert 'role="img" aria-label="' in part and "<details" in part and "<table" in part
    assert " ff-w4 " in widget(page, 6) and " ff-w2 " in widget(page, 2)


def test_dashboard_labels_follow_the_language(app: Flask) -> None:
    boss = client_as(app, "boss")
    zh = text(boss.get("/d/board?lang=zh"))
    assert "本月赢单" in widget(zh, 0) and "本月" in widget(zh, 0)
    en = text(boss.get("/d/board?lang=en"))
    assert "Won this month" in widget(en, 0) and "This month" in widget(en, 0)
    assert "Performance" in en and "Won this month" not in zh
    assert "Performance" in text(boss.get("/?lang=en"))


# -- the API -----------------------------------------------------------------------------------


def token(app: Flask, name: str) -> dict[str, str]:
    with app.app_context():
        secret = services().users.create_token(name)
    return {"Authorization": f"Bearer {secret}"}


def test_api_dashboard_with_filters(app: Flask) -> None:
    client = app.test_client()
    headers = token(app, "boss")
    listing = client.get("/api/v1/dashboards", headers=headers)
    assert listing.status_code == 200
    assert [b["name"] for b in listing.get_json()["dashboards"]] == [
        "board",
        "managers_only",
        "losses_board",
        "everyone",
    ]
    losses = client.get("/api/v1/dashboards/losses_board", headers=headers).get_json()
    assert [w["result"]["better"] for w in losses["widgets"]] == ["lower", "lower"]
    response = client.get("/api/v1/dashboards/board?owner=rep1", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["applied"] == {"owner": "rep1"}
    first = body["widgets"][0]
    assert first["kind"] == "number" and first["result"]["name"] == "sales"
    assert Decimal(first["result"]["total"]["value"]) == total(
        deals("rep1", stages=("won",), within=THIS)
    )
    table = body["widgets"][6]["result"]
    assert {r["keys"]["owner"]: Decimal(r["value"]) for r in table["rows"]} == by_owner(
        deals("rep1", stages=("won",))
    )
    url = table["rows"][0]["list_url"]
    assert url.startswith("/e/deal?") and "owner=rep1" in url
    bad = client.get("/api/v1/dashboards/board?period=custom&start=2026-13-01", headers=headers)
    assert bad.status_code == 400 and "2026-13-01" in bad.get_json()["error"]
    refused = client.get("/api/v1/dashboards/board", headers=token(app, "viewer"))
    assert refused.status_code == 403
    missing = client.get("/api/v1/dashboards/nope", headers=headers)
    assert missing.status_code == 404
    assert client.get("/api/v1/dashboards/board").status_code == 401


def test_commission_widget_shows_the_viewers_own_statement(app: Flask) -> None:
    rep = client_as(app, "rep1")
    page = text(rep.get("/d/board"))
    value = total(deals("rep1", stages=("won",), within=THIS))
    target = next(a for r, m, a in TARGETS if r == "rep1" and m == THIS_MONTH)
    assert value <= target  # all of it in the first tier: 3%
    assert figure(page, 9) == money(Decimal(value) * 3 / 100)
    [link] = re.findall(r'href="([^"]+)" class="ff-drill"', widget(page, 9))
    assert link == f"/commissions?period={THIS_MONTH:%Y-%m}"
    assert "我的提成" in widget(page, 9)
    # a manager has no plan: the widget says why, the rest of the page still shows
    boss = text(client_as(app, "boss").get("/d/board?lang=en"))
    assert "no commission plan applies" in widget(boss, 9)
    assert figure(boss, 0) == money(total(deals("boss", stages=("won",), within=THIS)), "en")
    body = app.test_client().get("/api/v1/dashboards/board", headers=token(app, "rep1")).get_json()
    assert Decimal(body["widgets"][9]["commission"]["total"]) == Decimal(value) * 3 / 100
