"""Exports (engine.exports) on SQLite and PostgreSQL: what is exported, for whom, how.

Permissions (a rep exports only their own records, hidden fields never, no way
round it through filters), filters/search/sort, the CSV (utf-8-sig, RFC 4180)
and XLSX (typed cells, never a formula, child-table sheets) formats, formula
injection (the payload list and a property test), the ff_exports audit, streaming
in chunks with flat memory, and ``formflow export``.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import GeneratorType
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

import engine.exports as exports_module
from engine.cli import main
from engine.errors import NotFound, PermissionDenied
from engine.exports import (
    Export,
    ExportRefused,
    ExportService,
    columns,
    content_disposition,
    export_query,
    filter_args,
    header,
    is_dangerous,
    neutralise,
    unneutralise,
)
from engine.i18n import Text
from engine.loader import load
from engine.permissions import Permissions
from engine.records import SYSTEM, Actor, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.query import Query, QueryError
from engine.storage.schema import Schema, build_schema
from engine.users import UserService

SHOP = """
formflow: 1
id: shop
title: {zh: 商店, en: Shop}
timezone: Asia/Shanghai
roles:
  rep: {zh: 销售, en: Rep}
  finance: {zh: 财务, en: Finance}
entities:
  product:
    label: {zh: 产品, en: Product}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true}
    access:
      rep: {create: true, read: own, update: own}
      finance: {read: all}
  purchase:
    label: {zh: 订单, en: Order}
    title_field: code
    fields:
      code: {type: text, label: {zh: 单号, en: Code}, required: true, unique: true}
      note: {type: long_text, label: {zh: 备注, en: Note}}
      total: {type: money, label: {zh: 金额, en: Total}}
      margin: {type: money, label: {zh: 毛利, en: Margin}}
      qty: {type: integer, label: {zh: 数量, en: Quantity}}
      rate: {type: decimal, label: 费率, precision: 3}
      share: {type: percent, label: {zh: 占比, en: Share}, precision: 1}
      placed: {type: date, label: {zh: 下单日, en: Placed}}
      due: {type: datetime, label: {zh: 到期, en: Due}}
      paid: {type: boolean, label: {zh: 已付, en: Paid}}
      status:
        type: choice
        label: {zh: 状态, en: Status}
        options: {open: {zh: 进行中, en: Open}, done: {zh: 完成, en: Done}}
      tags: {type: multi_choice, label: {zh: 标签, en: Tags}, options: [a, b, "x;y"]}
      product: {type: ref, to: product, label: {zh: 产品, en: Product}}
      clerk: {type: user, label: {zh: 经办人, en: Clerk}}
      memo1: {type: text, label: {zh: 附注, en: Memo}}
      memo2: {type: text, label: {zh: 附注, en: Memo}}
      items:
        type: table
        label: {zh: 明细, en: Items}
        fields:
          product: {type: ref, to: product, label: {zh: 产品, en: Product}}
          qty: {type: integer, label: {zh: 数量, en: Quantity}}
          price: {type: money, label: {zh: 单价, en: Price}}
    access:
      rep: {create: true, read: own, update: own, hidden_fields: [margin]}
      finance: {read: all}
    list:
      sort: [code]
      search: [code, note]
  secret:
    label: {zh: 机密, en: Secret}
    fields:
      x: {type: text, label: X}
    access:
      finance: {read: all}
"""

PAYLOADS = [
    "=1+1",
    "+1",
    "-1+2",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    " =1",
    "\u00a0=cmd|'/c calc'!A1",
    "\u200b=1",
    "\ufeff=1",
    "\x01=1",
]
FULL_WIDTH = "＝1"  # U+FF1D: spreadsheets do not evaluate it, so it is left alone


@dataclass
class Shop:
    folder: Path
    url: str
    schema: Schema
    records: RecordService
    exports: ExportService
    users: UserService
    li: Actor
    han: Actor
    finance: Actor

    def order(self, code: str, owner: str = "li", **values: Any) -> int:
        data = {"code": code, "owner": owner, **values}
        return self.records.create("purchase", data, actor=SYSTEM).id

    def product(self, name: str, owner: str = "li") -> int:
        return self.records.create("product", {"name": name, "owner": owner}, actor=SYSTEM).id

    def set_raw(self, entity: str, record_id: int, field: str, value: Any) -> None:
        """Store a value as it is (no coercion): data from before a rule, or another tool."""
        et = self.schema.entity(entity)
        with self.records.engine.begin() as conn:
            conn.execute(
                et.table.update()
                .where(et.table.c.id == record_id)
                .values({et.columns[field].name: value})
            )


def make_shop(folder: Path, url: str) -> Shop:
    folder.mkdir(exist_ok=True)
    (folder / "blueprint.yaml").write_text(SHOP, encoding="utf-8")
    bp = load(folder)
    schema = build_schema(bp)
    engine = create_engine(url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine)
    for name, role in (("li", "rep"), ("han", "rep"), ("fin", "finance")):
        users.add(name, roles=[role], password="correct-horse-9")
    permissions = Permissions(bp, users)
    records = RecordService(bp, schema, engine, access=permissions)
    exports = ExportService(bp, schema, engine, records, permissions=permissions)
    return Shop(
        folder,
        url,
        schema,
        records,
        exports,
        users,
        users.get("li").actor,
        users.get("han").actor,
        users.get("fin").actor,
    )


@pytest.fixture
def shop(db_url: str, tmp_path: Path) -> Iterator[Shop]:
    world = make_shop(tmp_path / "shop", db_url)
    yield world
    world.records.engine.dispose()


def csv_of(export: Export) -> list[list[str]]:
    data = b"".join(export)
    assert data.startswith(b"\xef\xbb\xbf")  # utf-8-sig: Excel reads Chinese
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def xlsx_of(export: Export) -> Any:
    return load_workbook(io.BytesIO(b"".join(export)))


def table_of(rows: list[list[str]]) -> list[dict[str, str]]:
    head, *body = rows
    return [dict(zip(head, row, strict=True)) for row in body]


def sheet_dicts(sheet: Any) -> list[dict[str, Any]]:
    rows = [[c.value for c in r] for r in sheet.iter_rows()]
    head, *body = rows
    return [dict(zip(head, row, strict=True)) for row in body]


def no_formulas(book: Any) -> None:
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.data_type == "s"


# -- permissions ------------------------------------------------------------------------


def test_a_rep_exports_only_their_own_records(shop: Shop) -> None:
    shop.order("A-1", "li")
    shop.order("A-2", "han")
    shop.order("A-3", "li")
    for fmt in ("csv", "xlsx"):
        export = shop.exports.start("purchase", fmt=fmt, actor=shop.li)
        if fmt == "csv":
            codes = [r["单号 / Code"] for r in table_of(csv_of(export))]
        else:
            codes = [r["单号 / Code"] for r in sheet_dicts(xlsx_of(export).worksheets[0])]
        assert codes == ["A-1", "A-3"]
        assert export.rows == 2
    everything = table_of(csv_of(shop.exports.start("purchase", actor=shop.finance)))
    assert [r["单号 / Code"] for r in everything] == ["A-1", "A-2", "A-3"]


def test_hidden_fields_are_never_exported(shop: Shop) -> None:
    shop.order("A-1", "li", margin="99.50", total="100")
    for headers in ("labels", "names"):
        rows = csv_of(shop.exports.start("purchase", actor=shop.li, headers=headers))
        assert not any("margin" in h or "毛利" in h for h in rows[0])
        assert "99.50" not in "".join(rows[1])
        book = xlsx_of(shop.exports.start("purchase", fmt="xlsx", actor=shop.li, headers=headers))
        cells = [c.value for s in book.worksheets for r in s.iter_rows() for c in r]
        assert not any(isinstance(v, str) and ("margin" in v or "毛利" in v) for v in cells)
        assert 99.5 not in cells
    # finance sees it
    assert "毛利 / Margin" in csv_of(shop.exports.start("purchase", actor=shop.finance))[0]


def test_filters_cannot_reach_records_or_fields_out_of_scope(shop: Shop) -> None:
    """IDOR: a filter only narrows what the reader may read; hidden fields are unknown."""
    mine = shop.order("A-1", "li")
    theirs = shop.order("B-1", "han", note="secret plan")
    purchase = shop.records.blueprint.entities["purchase"]
    hidden = shop.exports.hidden(shop.li, purchase)
    for args in (
        {"owner": "han"},
        {"id": str(theirs)},
        {"id__in": f"{mine},{theirs}", "code__contains": "B"},
        {"q": "secret plan"},
        {"code": "B-1"},
    ):
        query = export_query(purchase, args, hidden=hidden)
        rows = table_of(csv_of(shop.exports.start("purchase", query, actor=shop.li)))
        assert all(r["单号 / Code"] == "A-1" for r in rows), args
        assert not any("B-1" in v for r in rows for v in r.values())
    for args in ({"margin__gte": "0"}, {"sort": "margin"}):
        with pytest.raises(QueryError) as caught:
            query = export_query(purchase, args, hidden=hidden)
            shop.exports.start("purchase", query, actor=shop.li)
        assert "margin" in caught.value.text.en
    with pytest.raises(PermissionDenied):
        shop.exports.start("secret", actor=shop.li)
    with pytest.raises(NotFound):
        shop.exports.start("nope", actor=shop.li)


def test_refs_to_unreadable_records_are_ids_not_titles(shop: Shop) -> None:
    own = shop.product("我的产品", "li")
    other = shop.product("别人的产品", "han")
    shop.order("A-1", "li", product=own, items=[{"product": other, "qty": 1}])
    shop.order("A-2", "li", product=other)
    rows = table_of(csv_of(shop.exports.start("purchase", actor=shop.li)))
    assert [r["产品 / Product"] for r in rows] == ["我的产品", f"#{other}"]
    book = xlsx_of(shop.exports.start("purchase", fmt="xlsx", actor=shop.li))
    assert [r["产品 / Product"] for r in sheet_dicts(book["明细"])] == [f"#{other}"]
    ids = table_of(csv_of(shop.exports.start("purchase", actor=shop.li, refs="ids")))
    assert [r["产品 / Product"] for r in ids] == [str(own), str(other)]


# -- the query ---------------------------------------------------------------------------


def test_filters_search_and_sort_are_the_list_pages(shop: Shop) -> None:
    for i in range(6):
        shop.order(f"A-{i}", "li", total=str(100 * i), status="done" if i % 2 else "open")
    purchase = shop.records.blueprint.entities["purchase"]

    def codes(args: dict[str, Any]) -> list[str]:
        query = export_query(purchase, args)
        return [
            r["单号 / Code"]
            for r in table_of(csv_of(shop.exports.start("purchase", query, actor=SYSTEM)))
        ]

    assert codes({"status": "done"}) == ["A-1", "A-3", "A-5"]
    assert codes({"total__gte": "200", "total__lte": "400"}) == ["A-2", "A-3", "A-4"]
    assert codes({"sort": "-total"}) == [f"A-{i}" for i in (5, 4, 3, 2, 1, 0)]
    assert codes({"q": "A-4"}) == ["A-4"]
    # paging parameters of the page the button was on are ignored: the whole list
    assert codes({"limit": "2", "offset": "3", "after": "garbage", "back": "x", "lang": "en"}) == [
        f"A-{i}" for i in range(6)
    ]
    export = shop.exports.start(
        "purchase", export_query(purchase, {"status": "open", "q": "A"}), actor=SYSTEM
    )
    b"".join(export)
    entry = shop.exports.history()[0]
    assert entry.filters["filters"] == [["status", "eq", "open"]]
    assert entry.filters["search"] == "A"


def test_filter_args_of_the_cli() -> None:
    assert filter_args(["stage:eq:won", "amount:gte:1000", "at:between:2026-01-01,"]) == {
        "stage": ["won"],
        "amount__gte": ["1000"],
        "at__between": ["2026-01-01,"],
    }
    assert filter_args(["note:contains:a:b", "stage:won"]) == {
        "note__contains": ["a:b"],
        "stage": ["won"],
    }
    with pytest.raises(QueryError):
        filter_args(["nocolon"])


# -- formats -----------------------------------------------------------------------------


def test_csv_is_utf8_sig_rfc4180_with_bilingual_headers(shop: Shop) -> None:
    shop.order("上海-1", "li", note='第一行, "引号"\r\n第二行', total="1234.5")
    data = b"".join(shop.exports.start("purchase", actor=SYSTEM))
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.split("\r\n", 1)[0].startswith("编号 / ID,单号 / Code,备注 / Note,金额 / Total")
    assert '"第一行, ""引号""\n第二行"' in text  # quoted, quotes doubled, newline kept
    assert text.endswith("\r\n")
    rows = table_of(list(csv.reader(io.StringIO(text, newline=""))))
    assert rows[0]["单号 / Code"] == "上海-1"
    assert rows[0]["备注 / Note"] == '第一行, "引号"\n第二行'
    assert rows[0]["金额 / Total"] == "1234.50"
    head = list(rows[0])
    # one label when both are the same; a repeated header falls back to the field name
    assert "费率" in head and "附注 / Memo" in head and "memo2" in head
    assert head[-5:] == [
        "负责人 / Owner",
        "创建时间 / Created",
        "创建人 / Created by",
        "更新时间 / Updated",
        "更新人 / Updated by",
    ]
    names = csv_of(shop.exports.start("purchase", actor=SYSTEM, headers="names"))[0]
    assert names[:4] == ["id", "code", "note", "total"] and "items" not in names


def test_values_are_round_trippable(shop: Shop) -> None:
    pid = shop.product("螺丝")
    shop.order(
        "A-1",
        "li",
        total="-1234.56",
        qty=-3,
        rate="0.125",
        share="12.5",
        placed="2026-03-01",
        due="2026-03-01 10:30",
        paid=True,
        status="done",
        tags=["a", "b"],
        product=pid,
        clerk="han",
        memo1="-1+2",
    )
    shop.order("A-2", "li", tags=["a", "x;y"], paid=False)
    rows = table_of(csv_of(shop.exports.start("purchase", actor=SYSTEM)))
    first, second = rows
    assert first["金额 / Total"] == "-1234.56"  # a number: no quote
    assert first["数量 / Quantity"] == "-3"
    assert first["费率"] == "0.125" and first["占比 / Share"] == "12.5"
    assert first["下单日 / Placed"] == "2026-03-01"
    assert first["到期 / Due"] == "2026-03-01 10:30:00"  # business time, Asia/Shanghai
    assert first["已付 / Paid"] == "TRUE" and second["已付 / Paid"] == "FALSE"
    assert first["状态 / Status"] == "done"  # the stored option value
    assert first["标签 / Tags"] == "a, b"
    assert second["标签 / Tags"] == '["a", "x;y"]'  # a value holds a separator: JSON
    assert first["产品 / Product"] == "螺丝"
    assert first["经办人 / Clerk"] == "han"  # login name
    assert first["附注 / Memo"] == "'-1+2"  # text that looks like a formula is neutralised
    assert first["负责人 / Owner"] == "li"


def test_xlsx_cells_are_typed_and_never_formulas(shop: Shop) -> None:
    pid = shop.product("螺丝")
    shop.order(
        "=A-1",
        "li",
        total="-1234.56",
        qty=7,
        share="12.5",
        placed="2026-03-01",
        due="2026-03-01 10:30",
        paid=True,
        status="open",
        product=pid,
        memo1="#N/A",
        items=[{"product": pid, "qty": 2, "price": "1.50"}, {"qty": 1}],
    )
    book = xlsx_of(shop.exports.start("purchase", fmt="xlsx", actor=SYSTEM, lang="en"))
    no_formulas(book)
    main = book.worksheets[0]
    assert main.title == "订单"  # the zh label names the sheet (the importer maps it)
    head = [c.value for c in next(main.iter_rows())]
    cells = dict(zip(head, next(main.iter_rows(min_row=2)), strict=True))
    assert cells["单号 / Code"].value == "'=A-1" and cells["单号 / Code"].data_type == "s"
    total = cells["金额 / Total"]
    assert total.data_type == "n" and total.value == -1234.56 and total.number_format == "#,##0.00"
    assert cells["数量 / Quantity"].value == 7 and cells["数量 / Quantity"].data_type == "n"
    assert cells["占比 / Share"].value == 12.5 and cells["占比 / Share"].number_format == '0.0"%"'
    assert cells["下单日 / Placed"].is_date and cells["下单日 / Placed"].value.day == 1
    due = cells["到期 / Due"].value
    assert (due.hour, due.minute) == (10, 30)
    assert cells["已付 / Paid"].value is True and cells["已付 / Paid"].data_type == "b"
    assert cells["附注 / Memo"].value == "#N/A" and cells["附注 / Memo"].data_type == "s"
    assert cells["编号 / ID"].data_type == "n"
    # the child table: one sheet, first column the parent's key (its unique required title)
    items = book["明细"]
    rows = sheet_dicts(items)
    assert [r["单号 / Code"] for r in rows] == ["'=A-1", "'=A-1"]
    assert [r["产品 / Product"] for r in rows] == ["螺丝", None]
    assert [r["单价 / Price"] for r in rows] == [1.5, None]
    names = xlsx_of(shop.exports.start("purchase", fmt="xlsx", actor=SYSTEM, headers="names"))
    assert names.sheetnames == ["purchase", "items"]
    assert [c.value for c in next(names["items"].iter_rows())] == [
        "code",
        "product",
        "qty",
        "price",
    ]


def test_money_is_exact_in_csv_and_a_number_in_xlsx(shop: Shop) -> None:
    shop.order("A-1", total="1234567890123.45")  # 15 significant digits: exact in Excel too
    shop.order("A-2", total="123456789012345.67")  # 17: more than a spreadsheet number holds
    rows = table_of(csv_of(shop.exports.start("purchase", actor=SYSTEM)))
    assert [r["金额 / Total"] for r in rows] == ["1234567890123.45", "123456789012345.67"]
    book = xlsx_of(shop.exports.start("purchase", fmt="xlsx", actor=SYSTEM))
    values = [r["金额 / Total"] for r in sheet_dicts(book.worksheets[0])]
    assert Decimal(repr(values[0])) == Decimal("1234567890123.45")
    assert abs(Decimal(repr(values[1])) - Decimal("123456789012345.67")) < 1


# -- formula injection -------------------------------------------------------------------


def test_the_payload_list_is_neutralised_in_csv_and_xlsx(shop: Shop) -> None:
    ids = {}
    for i, payload in enumerate([*PAYLOADS, FULL_WIDTH, "plain", "'=quoted"]):
        ids[shop.order(f"P-{i:02d}", note="x")] = payload
    for rid, payload in ids.items():
        shop.set_raw("purchase", rid, "note", payload)  # kept exactly: no strip, no checks
    expected = {rid: ("'" + p if p in PAYLOADS or p == "'=quoted" else p) for rid, p in ids.items()}
    rows = table_of(csv_of(shop.exports.start("purchase", actor=SYSTEM)))
    got = {int(r["编号 / ID"]): r["备注 / Note"] for r in rows}
    assert got == expected
    assert got[next(k for k, v in ids.items() if v == FULL_WIDTH)] == FULL_WIDTH
    assert all(unneutralise(got[rid]) == payload for rid, payload in ids.items())
    book = xlsx_of(shop.exports.start("purchase", fmt="xlsx", actor=SYSTEM))
    no_formulas(book)
    for row in sheet_dicts(book.worksheets[0]):
        want = expected[row["编号 / ID"]].replace("\x01", "\ufffd")  # XML cannot hold \x01
        assert row["备注 / Note"].replace("\r", "\n") == want.replace("\r", "\n")


@pytest.mark.parametrize("payload", [*PAYLOADS, "\x00=1", "\x1f=1", " \t x", "\u2028+1"])
def test_each_payload_is_dangerous(payload: str) -> None:
    assert is_dangerous(payload)
    assert neutralise(payload) == "'" + payload
    assert unneutralise(neutralise(payload)) == payload


@pytest.mark.parametrize(
    "text",
    [FULL_WIDTH, "＋1", "－1", "＠x", "a=1", "1-2", "'", "", "  ", "#N/A", "'abc", "\u2212 1"],
)
def test_harmless_text_is_left_alone(text: str) -> None:
    assert not is_dangerous(text)
    assert neutralise(text) == text


def _significant(text: str) -> str:
    """``text`` without its leading whitespace and control/format characters (the spec)."""
    i = 0
    while i < len(text) and (text[i].isspace() or unicodedata.category(text[i]) in ("Cc", "Cf")):
        i += 1
    return text[i:]


_LEADERS = st.sampled_from(
    [" ", "\t", "\r", "\n", "\u00a0", "\u200b", "\ufeff", "\u2028", "\x01", "\x1f", "\u3000", "'"]
)
_FIRST = st.sampled_from(["=", "+", "-", "@", "'", "a", "1", "＝", "#", ""])
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8
)
PAYLOAD_STRATEGY = st.one_of(
    st.builds(lambda a, b, c: "".join(a) + b + c, st.lists(_LEADERS, max_size=4), _FIRST, _TEXT),
    _TEXT,
)


def _safe(cell: str) -> bool:
    if cell.startswith("'"):
        return True
    start = cell[: len(cell) - len(_significant(cell))]
    return _significant(cell)[:1] not in ("=", "+", "-", "@") and not any(
        ch in start for ch in "\t\r"
    )


@settings(max_examples=300, deadline=None)
@given(PAYLOAD_STRATEGY)
def test_property_neutralised_text_cannot_start_a_formula(text: str) -> None:
    cell = neutralise(text)
    assert _safe(cell)
    assert unneutralise(cell) == text
    assert neutralise(text) in (text, "'" + text)


def test_property_through_real_exports(tmp_path: Path) -> None:
    """Generated strings stored as they are, exported as CSV and XLSX by the real code."""
    world = make_shop(tmp_path / "prop", f"sqlite:///{tmp_path}/prop.db")
    first = world.order("P-0", note="x")
    try:

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(st.lists(PAYLOAD_STRATEGY, min_size=1, max_size=6))
        def check(texts: list[str]) -> None:
            world.set_raw("purchase", first, "note", texts[0])
            world.set_raw("purchase", first, "memo1", texts[-1])
            rows = table_of(csv_of(world.exports.start("purchase", actor=SYSTEM)))
            for cell, text in (
                (rows[0]["备注 / Note"], texts[0]),
                (rows[0]["附注 / Memo"], texts[-1]),
            ):
                assert _safe(cell), (text, cell)
                assert unneutralise(cell) == text
            book = xlsx_of(world.exports.start("purchase", fmt="xlsx", actor=SYSTEM))
            no_formulas(book)
            for sheet in book.worksheets:
                for row in sheet.iter_rows():
                    for c in row:
                        if isinstance(c.value, str):
                            assert _safe(c.value), (texts, c.value)

        check()
    finally:
        world.records.engine.dispose()


# -- the audit ---------------------------------------------------------------------------


def test_every_export_is_audited_when_its_stream_ends(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        shop.order(f"A-{i}", "li")
    purchase = shop.records.blueprint.entities["purchase"]
    query = export_query(purchase, {"code__contains": "A"})
    export = shop.exports.start("purchase", query, fmt="xlsx", actor=shop.li, via="web")
    assert shop.exports.history() == []  # nothing yet: the file has not been sent
    b"".join(export)
    entry = shop.exports.history()[0]
    assert (entry.user, entry.entity, entry.format, entry.rows, entry.via, entry.status) == (
        "li",
        "purchase",
        "xlsx",
        5,
        "web",
        "done",
    )
    assert entry.file_name == export.file_name and entry.file_name.startswith("订单-")
    assert entry.filters["filters"] == [["code", "contains", "A"]]
    assert entry.at >= entry.started_at

    # an aborted download (the client went away): audited with the rows sent so far
    monkeypatch.setattr(exports_module, "CHUNK_ROWS", 2)
    partial = shop.exports.start("purchase", actor=SYSTEM, via="api", lang="en")
    stream = iter(partial)
    next(stream)
    partial.close()
    entry = shop.exports.history()[0]
    assert (entry.status, entry.rows, entry.user, entry.via) == ("aborted", 2, None, "api")
    assert entry.file_name.startswith("Order-")
    # never started at all (e.g. a HEAD request): still one row, zero rows sent
    shop.exports.start("purchase", actor=SYSTEM).close()
    assert (shop.exports.history()[0].status, shop.exports.history()[0].rows) == ("aborted", 0)
    assert len(shop.exports.history()) == 3


# -- streaming ---------------------------------------------------------------------------


def test_exports_are_streamed_in_chunks(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.records.create_many("purchase", [{"code": f"C-{i:04d}"} for i in range(230)])
    monkeypatch.setattr(exports_module, "CHUNK_ROWS", 50)
    asked: list[Query] = []
    real = shop.records.list_records

    def counting(entity: str, query: Query | None = None, **kw: Any) -> Any:
        assert query is not None
        asked.append(query)
        return real(entity, query, **kw)

    monkeypatch.setattr(shop.records, "list_records", counting)
    export = shop.exports.start("purchase", actor=SYSTEM)
    assert len(asked) == 1  # the first chunk only: the rest is read while streaming
    stream = iter(export)
    assert isinstance(stream, GeneratorType)
    chunks = list(stream)
    assert len(chunks) >= 5 and export.rows == 230
    assert [q.limit for q in asked] == [50] * 5
    assert asked[0].after is None and all(q.after for q in asked[1:])  # keyset paging
    codes = [
        r["单号 / Code"]
        for r in table_of(
            list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"), newline="")))
        )
    ]
    assert codes == [f"C-{i:04d}" for i in range(230)]


def _peak(world: Shop, fmt: str) -> int:
    tracemalloc.start()
    try:
        export = world.exports.start("purchase", fmt=fmt, actor=SYSTEM)
        size = sum(len(chunk) for chunk in export)
        assert size > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_exports_grow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak memory while exporting 4x the rows stays about the same (chunks, not lists)."""
    monkeypatch.setattr(exports_module, "CHUNK_ROWS", 100)
    small = make_shop(tmp_path / "small", f"sqlite:///{tmp_path}/small.db")
    large = make_shop(tmp_path / "large", f"sqlite:///{tmp_path}/large.db")
    try:
        note = "备注 " * 20
        for world, count in ((small, 400), (large, 1600)):
            world.records.create_many(
                "purchase",
                [{"code": f"M-{i:05d}", "note": note, "total": str(i)} for i in range(count)],
            )
        for fmt in ("csv", "xlsx"):
            _peak(small, fmt)  # warm up imports and caches
            low, high = _peak(small, fmt), _peak(large, fmt)
            assert high < low * 1.5 + 256 * 1024, (fmt, low, high)
    finally:
        small.records.engine.dispose()
        large.records.engine.dispose()


# -- small pieces ------------------------------------------------------------------------


def test_headers_and_content_disposition() -> None:
    assert header(Text("客户名称", "Name"), "name") == "客户名称 / Name"
    assert header(Text("费率", "费率"), "rate") == "费率"
    assert header(Text(None, "Rate"), "rate") == "Rate"
    assert header(Text(), "rate") == "rate"
    assert header(Text("客户名称", "Name"), "name", "names") == "name"
    value = content_disposition("商机-20261127.csv", "opportunity-20261127.csv")
    assert value == (
        'attachment; filename="opportunity-20261127.csv"; '
        "filename*=UTF-8''%E5%95%86%E6%9C%BA-20261127.csv"
    )
    assert '"' not in content_disposition('a"b.csv', 'a"b.csv').split("filename=", 1)[1][1:-40]


def test_columns_skip_tables_and_hidden_fields(shop: Shop) -> None:
    purchase = shop.records.blueprint.entities["purchase"]
    names = [c.name for c in columns(purchase, frozenset({"margin"}), "names")]
    assert names[0] == "id" and "margin" not in names and "items" not in names
    assert names[-5:] == ["owner", "created_at", "created_by", "updated_at", "updated_by"]


# -- the CLI -----------------------------------------------------------------------------


def test_formflow_export(shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.order("A-1", "li", total="10", status="done")
    shop.order("A-2", "li", total="20", status="open")
    shop.order("B-1", "han", total="30", status="done")
    runner = CliRunner()
    out = tmp_path / "out.csv"
    result = runner.invoke(
        main,
        [
            "export",
            str(shop.folder),
            "purchase",
            "--db",
            shop.url,
            "--as",
            "li",
            "--filter",
            "status:eq:done",
            "--out",
            str(out),
            "--lang",
            "en",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "exported 1 record(s)" in result.output
    rows = table_of(list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"), newline=""))))
    assert [r["单号 / Code"] for r in rows] == ["A-1"]
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    entry = shop.exports.history()[0]
    assert (entry.user, entry.via, entry.rows, entry.status) == ("li", "cli", 1, "done")

    # everything, as the engine, sorted, with names as headers, XLSX
    xlsx = tmp_path / "all.xlsx"
    result = runner.invoke(
        main,
        [
            "export",
            str(shop.folder),
            "purchase",
            "--db",
            shop.url,
            "--format",
            "xlsx",
            "--sort",
            "-total",
            "--headers",
            "names",
            "--out",
            str(xlsx),
        ],
    )
    assert result.exit_code == 0, result.output
    codes = [r["code"] for r in sheet_dicts(load_workbook(xlsx).worksheets[0])]
    assert codes == ["B-1", "A-2", "A-1"]

    # stdout, search
    result = runner.invoke(
        main,
        ["export", str(shop.folder), "purchase", "--db", shop.url, "--search", "B-", "--out", "-"],
    )
    assert result.exit_code == 0
    assert "B-1" in result.stdout and "A-1" not in result.stdout

    # the default file name, in the current folder
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["export", str(shop.folder), "purchase", "--db", shop.url])
    assert result.exit_code == 0, result.output
    assert any(p.name.startswith("订单-") and p.suffix == ".csv" for p in tmp_path.iterdir())

    # problems the user can fix: exit 1, one line
    for args, message in (
        (["--filter", "margin:gte:0", "--as", "li"], "margin"),
        (["--filter", "status:zz:1"], "zz"),
        (["--as", "nobody"], "nobody"),
        (["--sort", "nope"], "nope"),
    ):
        result = runner.invoke(
            main, ["export", str(shop.folder), "purchase", "--db", shop.url, "--lang", "en", *args]
        )
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
    result = runner.invoke(main, ["export", str(shop.folder), "nope", "--db", shop.url])
    assert result.exit_code == 1 and "nope" in result.output


def test_an_xlsx_sheet_over_the_row_limit_is_refused_before_sending(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        shop.order(f"A-{i}", items=[{"qty": 1}, {"qty": 2}])
    monkeypatch.setattr(exports_module, "XLSX_MAX_ROWS", 2)
    with pytest.raises(ExportRefused) as caught:
        shop.exports.start("purchase", fmt="xlsx", actor=SYSTEM)
    assert caught.value.http_status == 422 and "CSV" in caught.value.text.en
    assert shop.exports.history() == []  # nothing was sent, nothing to audit
    monkeypatch.setattr(exports_module, "XLSX_MAX_ROWS", 4)  # the parents fit, the items not
    with pytest.raises(ExportRefused):
        shop.exports.start("purchase", fmt="xlsx", actor=SYSTEM)
    assert len(csv_of(shop.exports.start("purchase", actor=SYSTEM))) == 4  # CSV has no limit
