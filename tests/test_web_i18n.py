"""The UI's gettext catalogs (flask-babel) and how a request's language is chosen."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import flask_babel
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask
from test_web_support import CRM, make_app, records, sign_in, text

from engine.locales import babel_locale, format_money
from engine.web.i18n import CATALOG_LOCALES, TRANSLATIONS_DIR, current_lang, ngettext
from engine.web.services import services

ROOT = Path(__file__).resolve().parent.parent
ZH_PO = TRANSLATIONS_DIR / "zh_Hans" / "LC_MESSAGES" / "messages.po"
ZH_MO = ZH_PO.with_suffix(".mo")

Key = tuple[str | None, str]  # (msgctxt, msgid)


# -- the catalog ---------------------------------------------------------------------


def extracted() -> dict[Key, str]:
    """Every message in the code and templates, as ``pybabel extract -F babel.cfg`` finds it."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[Key, str] = {}
    for filename, _lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found[(context, msgid)] = filename
    return found


def po_catalog() -> Catalog:
    with ZH_PO.open("rb") as f:
        return read_po(f)


def messages_of(catalog: Catalog) -> dict[Key, object]:
    out: dict[Key, object] = {}
    for m in catalog:
        if m.id:
            msgid = m.id[0] if isinstance(m.id, list | tuple) else m.id
            string = m.string
            out[(m.context, msgid)] = tuple(string) if isinstance(string, list | tuple) else string
    return out


def test_extraction_finds_the_ui_strings() -> None:
    found = extracted()
    assert (None, "Sign in") in found  # a template
    assert (None, "Wrong user name or password") in found  # Python
    assert (None, "This page or record does not exist") in found  # marked with N_
    assert ("list", "%(num)s record") in found  # npgettext, with its context
    assert ("confirm deletion", "Delete") in found  # pgettext in a template
    assert not [key for key in found if "." in key[1] and " " not in key[1]], "a dict-style key"


def test_every_message_has_a_chinese_translation() -> None:
    catalog = po_catalog()
    translated = messages_of(catalog)
    missing = sorted(str(key) for key in extracted() if key not in translated)
    assert not missing, f"not in {ZH_PO.name} (run the update one-liner): {missing}"
    for key, string in translated.items():
        strings = string if isinstance(string, tuple) else (string,)
        assert strings and all(s.strip() for s in strings), f"empty translation: {key}"


def test_the_catalog_has_no_stale_or_fuzzy_entries() -> None:
    catalog = po_catalog()
    assert not catalog.fuzzy, "the header is marked fuzzy"
    assert not [m.id for m in catalog if m.id and m.fuzzy], "fuzzy entries"
    assert not catalog.obsolete, "obsolete (#~) entries"
    stale = set(messages_of(catalog)) - set(extracted())
    assert not stale, f"no longer in the code: {sorted(map(str, stale))}"
    assert catalog.num_plurals == 1  # Chinese has one form for every count


def test_translations_keep_the_placeholders() -> None:
    errors = [(m.id, [str(e) for e in errs]) for m, errs in po_catalog().check()]
    assert errors == []


def test_the_committed_mo_matches_the_po() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, po_catalog())
    compiled.seek(0)
    with ZH_MO.open("rb") as f:
        committed = read_mo(f)
    assert messages_of(committed) == messages_of(read_mo(compiled)), (
        "messages.mo is out of date: pybabel compile -d engine/web/translations"
    )


# -- the pages -----------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(
        CRM, f"sqlite:///{tmp_path}/i18n.db", [("admin", ["admin"]), ("li.lei", ["sales_rep"])]
    )
    yield app
    records(app).engine.dispose()


def html_lang(page: str) -> str:
    start = page.index('<html lang="') + len('<html lang="')
    return page[start : page.index('"', start)]


def test_pages_use_the_catalog_in_chinese_and_the_msgids_in_english(app: Flask) -> None:
    client = app.test_client()
    zh = text(client.get("/signin?lang=zh"))
    assert "<h1>登录</h1>" in zh and "用户名" in zh and "跳到正文" in zh
    assert html_lang(zh) == "zh-CN"
    assert ">English</a>" in zh  # the switch names the other language in that language
    en = text(client.get("/signin?lang=en"))
    assert "<h1>Sign in</h1>" in en and "User name" in en and "Skip to content" in en
    assert html_lang(en) == "en"
    assert ">中文</a>" in en
    failed = text(client.post("/signin?lang=zh", data={"name": "admin", "password": "nope"}))
    assert "用户名或密码不正确" in failed  # a string from Python code


def test_language_order_query_then_session(app: Flask) -> None:
    client = app.test_client()
    assert html_lang(text(client.get("/signin"))) == "zh-CN"  # blueprint default_locale
    assert html_lang(text(client.get("/signin?lang=en"))) == "en"
    # remembered in the session, over the browser's Accept-Language
    page = text(client.get("/signin", headers={"Accept-Language": "zh-CN"}))
    assert html_lang(page) == "en" and "Sign in" in page
    assert html_lang(text(client.get("/signin?lang=zh"))) == "zh-CN"
    assert html_lang(text(client.get("/signin?lang=fr"))) == "zh-CN"  # unknown: ignored


def test_language_order_accept_language_then_default(app: Flask) -> None:
    client = app.test_client()
    assert html_lang(text(client.get("/signin", headers={"Accept-Language": "en-US"}))) == "en"
    page = text(client.get("/signin", headers={"Accept-Language": "fr, zh-TW;q=0.5"}))
    assert html_lang(page) == "zh-CN"
    app.config["FORMFLOW_DEFAULT_LANG"] = "en"
    assert html_lang(text(client.get("/signin", headers={"Accept-Language": "fr"}))) == "en"


def test_the_users_language_beats_accept_language_but_not_lang(app: Flask) -> None:
    with app.app_context():
        services().users.set_profile("li.lei", locale="en-US")
    client = app.test_client()
    sign_in(client, "li.lei")
    home = text(client.get("/", headers={"Accept-Language": "zh-CN"}))
    assert html_lang(home) == "en" and "My apps" in home and "Sign out" in home
    home = text(client.get("/?lang=zh", headers={"Accept-Language": "en"}))
    assert html_lang(home) == "zh-CN" and "我的应用" in home and "退出" in home


def test_flask_babel_locale_and_current_lang_agree(app: Flask) -> None:
    with app.test_request_context("/?lang=zh"):
        assert str(flask_babel.get_locale()) == "zh_Hans" and current_lang() == "zh"
        # The catalog's locale and the formatting locale format alike (same CLDR data).
        assert str(babel_locale("zh")) == "zh_Hans_CN"
        assert flask_babel.format_currency(1234.5, "CNY") == "¥1,234.50"
        assert flask_babel.format_date(date(2026, 11, 27)) == "2026年11月27日"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert flask_babel.get_locale() is CATALOG_LOCALES["en"] and current_lang() == "en"
        assert ngettext("%(num)s record", "%(num)s records", 1) == "1 record"
        assert ngettext("%(num)s record", "%(num)s records", 2) == "2 records"
    with app.test_request_context("/?lang=zh"):
        assert ngettext("%(num)s record", "%(num)s records", 1) == "1 条记录"
        assert ngettext("%(num)s record", "%(num)s records", 1234, num="1,234") == "1,234 条记录"
    assert format_money(Decimal("1234.5"), "CNY", "zh") == "¥1,234.50"


def test_counts_use_plurals_and_locale_numbers(app: Flask) -> None:
    svc = records(app)
    svc.create("customer", {"name": "甲公司", "level": "B", "phone": "021-5555 1234"})
    client = app.test_client()
    sign_in(client)
    home = text(client.get("/?lang=en"))
    assert ">1 record</a>" in home and ">0 records</a>" in home
    assert ">1 条记录</a>" in text(client.get("/?lang=zh"))
    assert "共 1 条" in text(client.get("/e/customer?lang=zh"))
    assert "1 record" in text(client.get("/e/customer?lang=en"))


def test_error_pages_are_translated(app: Flask) -> None:
    client = app.test_client()
    sign_in(client)
    zh = client.get("/e/customer/999?lang=zh")
    assert zh.status_code == 404 and "找不到这个页面或记录" in text(zh) and "出错了" in text(zh)
    en = client.get("/e/customer/999?lang=en")
    assert en.status_code == 404 and "This page or record does not exist" in text(en)
    assert "Something went wrong" in text(en)


def test_placeholders_in_templates_are_escaped(app: Flask) -> None:
    svc = records(app)
    cid = svc.create("customer", {"name": "<b>x</b>", "level": "B", "phone": "021-5555 1234"}).id
    client = app.test_client()
    sign_in(client)
    for lang, words in (("zh", "确定删除「"), ("en", "Delete “")):
        page = text(client.get(f"/e/customer/{cid}/delete?lang={lang}"))
        assert words + "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
