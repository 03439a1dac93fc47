"""List pages: search, filters, sort by header, keyset paging with previous, totals, counts."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from test_web_support import make_app, records, sign_in, text

from engine.records import Actor

ADMIN = Actor("admin", frozenset({"admin"}))

SMALL = """
formflow: 1
id: small
title: {zh: 小, en: Small}
entities:
  deal:
    label: {zh: 交易, en: Deal}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true}
      stage:
        type: choice
        label: {zh: 阶段, en: Stage}
        options: {open: {zh: 进行中, en: Open}, won: {zh: 赢单, en: Won}}
      amount: {type: money, label: {zh: 金额, en: Amount}}
      closes: {type: date, label: {zh: 成交日, en: Closes}}
    list:
      columns: [name, stage, amount, closes]
      filters: [stage, amount, closes]
      sort: [name]
      page_size: 3
"""


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(SMALL, encoding="utf-8")
    app = make_app(folder, db_url, [("admin", ["admin"])])
    svc = records(app)
    for i in range(7):
        svc.create(
            "deal",
            {
                "name": f"deal-{i}",
                "stage": "won" if i % 2 else "open",
                "amount": str(100 * (i + 1)),
                "closes": f"2026-0{i + 1}-15",
            },
            actor=ADMIN,
        )
    yield app
    svc.engine.dispose()


def names(page: str) -> list[str]:
    return re.findall(r'class="ff-row-link" href="[^"]+">(deal-\d)<', page)


def test_search_filter_sort(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    assert names(text(client.get("/e/deal?q=deal-3"))) == ["deal-3"]
    assert names(text(client.get("/e/deal?stage=won"))) == ["deal-1", "deal-3", "deal-5"]
    page = text(client.get("/e/deal?amount__gte=300&amount__lte=500"))
    assert names(page) == ["deal-2", "deal-3", "deal-4"]
    assert names(text(client.get("/e/deal?closes__gte=2026-06-01"))) == ["deal-5", "deal-6"]
    page = text(client.get("/e/deal?sort=-amount&lang=en"))
    assert names(page) == ["deal-6", "deal-5", "deal-4"]
    assert "sort=amount" in html.unescape(page)  # clicking again sorts ascending
    assert "7 records" in page
    assert "Page total" in page and "¥1,800.00" in page  # 700 + 600 + 500


def test_bad_filter_value_is_a_400_with_message(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    response = client.get("/e/deal?nope=1&lang=en")
    assert response.status_code == 400
    assert "nope" in text(response)


def test_keyset_paging_next_and_previous(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    page1 = text(client.get("/e/deal"))
    assert names(page1) == ["deal-0", "deal-1", "deal-2"]
    next_url = html.unescape(re.search(r'href="([^"]+)" rel="next"', page1).group(1))  # type: ignore[union-attr]
    page2 = text(client.get(next_url))
    assert names(page2) == ["deal-3", "deal-4", "deal-5"]
    next_url = html.unescape(re.search(r'href="([^"]+)" rel="next"', page2).group(1))  # type: ignore[union-attr]
    page3 = text(client.get(next_url))
    assert names(page3) == ["deal-6"]
    assert 'rel="next"' not in page3
    prev_url = html.unescape(re.search(r'href="([^"]+)" rel="prev"', page3).group(1))  # type: ignore[union-attr]
    assert names(text(client.get(prev_url))) == ["deal-3", "deal-4", "deal-5"]


def test_filter_controls_use_bilingual_option_labels(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    assert "赢单" in text(client.get("/e/deal?lang=zh"))
    page = text(client.get("/e/deal?lang=en"))
    assert ">Won<" in page and 'name="closes__gte"' in page and 'name="amount__lte"' in page


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"sort": "-amount"},
        {"q": "a b&c=d/é", "stage": ["open", "won"], "after": "eyJ4IjoxfQ==", "empty": ""},
        {"back": ["", "abc", "中文"], "skip": None, "sort": ("name", "-id")},
        {"x": "!$'()*,/:;?@~#[]%+"},
    ],
)
def test_with_query_builds_what_url_for_builds(app: Flask, args: dict[str, object]) -> None:
    from flask import url_for

    from engine.web.views.common import with_query

    with app.test_request_context("/e/deal", base_url="http://h/prefix"):
        base = url_for("lists.index", entity="deal")
        assert base == "/prefix/e/deal"
        assert with_query(base, args) == url_for("lists.index", entity="deal", **args)
