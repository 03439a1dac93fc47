"""The web pages' own words in zh and en, and how a request's language is chosen.

UI strings live in :data:`CATALOG` (key -> zh, en), a plain dict: nothing to
compile, so a fresh ``pip install -e .`` serves both languages with no build
step, and a test checks that every key has both. Blueprint text (labels, help,
options, messages) is :class:`engine.i18n.Text` and is picked with ``Text.get``.

The language of a request: ``?lang=zh|en`` (remembered in the session), then the
signed-in user's ``locale``, then the browser's ``Accept-Language``, then the
blueprint's ``default_locale``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request, session
from flask_login import current_user

from engine.i18n import LANGUAGES, normalise_lang

CATALOG: dict[str, tuple[str, str]] = {
    "app.name": ("Formflow", "Formflow"),
    "nav.home": ("首页", "Home"),
    "nav.signout": ("退出", "Sign out"),
    "nav.language": ("English", "中文"),
    "nav.skip": ("跳到正文", "Skip to content"),
    "nav.notifications": ("通知", "Notifications"),
    "notifications.title": ("通知", "Notifications"),
    "notifications.empty": ("还没有通知", "No notifications yet"),
    "notifications.mark_all": ("全部标为已读", "Mark all as read"),
    "notifications.mark": ("标为已读", "Mark as read"),
    "notifications.open": ("查看", "Open"),
    "signin.title": ("登录", "Sign in"),
    "signin.name": ("用户名", "User name"),
    "signin.password": ("密码", "Password"),
    "signin.submit": ("登录", "Sign in"),
    "signin.failed": ("用户名或密码不正确", "Wrong user name or password"),
    "signin.required": ("请先登录", "Please sign in first"),
    "signout.done": ("已退出", "You are signed out"),
    "home.title": ("我的应用", "My apps"),
    "home.records": ("{n} 条记录", "{n} records"),
    "home.records_capped": ("{n}+ 条记录", "{n}+ records"),
    "home.empty": ("没有可以查看的数据", "There is nothing you may see yet"),
    "list.new": ("新建", "New"),
    "list.search": ("搜索", "Search"),
    "list.search_placeholder": ("搜索…", "Search…"),
    "list.filter": ("筛选", "Filter"),
    "list.clear": ("清除", "Clear"),
    "list.any": ("全部", "Any"),
    "list.from": ("从", "From"),
    "list.to": ("到", "To"),
    "list.min": ("最小", "Min"),
    "list.max": ("最大", "Max"),
    "list.yes": ("是", "Yes"),
    "list.no": ("否", "No"),
    "list.empty": ("没有符合条件的记录", "No records match"),
    "list.count": ("共 {n} 条", "{n} records"),
    "list.count_capped": ("超过 {n} 条", "{n}+ records"),
    "list.count_estimate": ("约 {n} 条", "about {n} records"),
    "list.next": ("下一页", "Next"),
    "list.first": ("第一页", "First page"),
    "list.previous": ("上一页", "Previous"),
    "list.page_total": ("本页合计", "Page total"),
    "list.sort_by": ("按此列排序", "Sort by this column"),
    "detail.edit": ("编辑", "Edit"),
    "detail.delete": ("删除", "Delete"),
    "detail.history": ("修改记录", "History"),
    "detail.related": ("相关记录", "Related records"),
    "detail.no_rows": ("没有行", "No rows"),
    "detail.more": ("查看全部", "See all"),
    "detail.owner": ("负责人", "Owner"),
    "detail.created": ("创建于", "Created"),
    "detail.updated": ("更新于", "Updated"),
    "detail.version": ("版本", "Version"),
    "history.create": ("创建", "created"),
    "history.update": ("修改", "changed"),
    "history.delete": ("删除", "deleted"),
    "history.by": ("{user} 于 {at}", "{user} at {at}"),
    "history.system": ("系统", "the system"),
    "history.via": ("来源：{via}", "via {via}"),
    "form.new": ("新建{entity}", "New {entity}"),
    "form.edit": ("编辑{entity}", "Edit {entity}"),
    "form.save": ("保存", "Save"),
    "form.cancel": ("取消", "Cancel"),
    "form.required": ("必填", "required"),
    "form.computed": ("自动计算", "computed"),
    "form.readonly": ("只读", "read-only"),
    "form.add_row": ("添加一行", "Add a row"),
    "form.remove_row": ("删除此行", "Remove this row"),
    "form.row": ("第 {n} 行", "Row {n}"),
    "form.choose": ("请选择", "Choose…"),
    "form.none": ("（无）", "(none)"),
    "form.find": ("输入以搜索{entity}", "Type to find a {entity}"),
    "form.errors": ("请修改标出的字段后再保存", "Please fix the marked fields and save again"),
    "form.saved": ("已保存", "Saved"),
    "form.created": ("已创建", "Created"),
    "form.file_note": ("文件请通过 API 上传", "Files are uploaded through the API"),
    "form.no_results": ("没有找到", "Nothing found"),
    "conflict.title": ("记录已被修改", "The record was changed"),
    "conflict.reload": ("重新加载最新版本", "Reload the latest version"),
    "conflict.by": (
        "{who} 于 {at} 修改了此记录。你的修改没有保存。",
        "{who} changed this record at {at}. Your changes were not saved.",
    ),
    "delete.title": ("删除{entity}", "Delete {entity}"),
    "delete.confirm": (
        "确定删除「{title}」吗？此操作不能撤销。",
        "Delete “{title}”? This cannot be undone.",
    ),
    "delete.submit": ("确认删除", "Delete"),
    "delete.done": ("已删除", "Deleted"),
    "delete.failed": ("不能删除", "Cannot delete"),
    "error.title": ("出错了", "Something went wrong"),
    "error.404": ("找不到这个页面或记录", "This page or record does not exist"),
    "error.403": ("你没有权限执行此操作", "You may not do this"),
    "error.400": ("请求无效", "Bad request"),
    "error.csrf": (
        "页面已过期，请刷新后重试",
        "The page has expired; reload it and try again",
    ),
    "error.500": ("服务器出错，请稍后再试", "The server failed; try again later"),
    "error.back": ("返回首页", "Back to the home page"),
}


def translate(key: str, lang: str, **params: Any) -> str:
    """The UI string ``key`` in ``lang`` with ``{name}`` placeholders filled."""
    zh, en = CATALOG[key]
    text = zh if normalise_lang(lang) == "zh" else en
    return text.format(**params) if params else text


def _user_locale() -> str | None:
    try:
        if current_user.is_authenticated:
            locale = getattr(current_user, "locale", None)
            return str(locale) if locale else None
    except Exception:  # no login manager on this request (static files)
        return None
    return None


def pick_language() -> str:
    """The language of the current request (see the module docs)."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    stored = session.get("lang")
    if stored in LANGUAGES:
        return str(stored)
    locale = _user_locale()
    if locale:
        return normalise_lang(locale)
    best = request.accept_languages.best_match(["zh", "zh-CN", "zh-TW", "en", "en-US"])
    if best:
        return normalise_lang(best)
    default: str = current_app.config.get("FORMFLOW_DEFAULT_LANG", "zh")
    return normalise_lang(default)


def current_lang() -> str:
    """The language chosen for this request (chosen once, then cached on ``g``)."""
    lang = g.get("lang")
    if lang is None:
        lang = pick_language()
        g.lang = lang
    return str(lang)


def _(key: str, **params: Any) -> str:
    """Translate ``key`` into the current request's language."""
    return translate(key, current_lang(), **params)
