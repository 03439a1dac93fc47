"""The signed-in user's notifications: a list page, and marking them read.

``GET /notifications`` shows the newest notifications (unread first marked),
each linking to its record; ``POST /notifications/read`` marks the ones named
in ``id`` (repeatable) read, or all of them with ``all=1``, then returns to the
list (or to ``next``, a path on this site: the record a notification linked to).
A user only ever sees and marks their own (:class:`NotificationService`).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from engine.web.auth import safe_next
from engine.web.formatting import show_datetime
from engine.web.i18n import current_lang
from engine.web.services import services

bp = Blueprint("notifications", __name__)

PAGE_SIZE = 50


def _user() -> str:
    name: str = current_user.actor.name
    return name


@bp.route("/notifications")
def index() -> str:
    notes = services().notifications
    lang = current_lang()
    items = [
        {
            "id": n.id,
            "title": n.title.get(lang),
            "body": n.body.get(lang),
            "link": n.link,
            "read": n.read,
            "at": show_datetime(n.created_at, lang),
        }
        for n in notes.list(_user(), limit=PAGE_SIZE)
    ]
    unread = sum(1 for item in items if not item["read"])
    return render_template("notifications.html", items=items, unread=unread)


@bp.route("/notifications/read", methods=["POST"])
def mark_read() -> Response:
    notes = services().notifications
    if request.form.get("all"):
        notes.mark_read(_user(), "all")
    else:
        ids = [int(v) for v in request.form.getlist("id") if v.isdigit()]
        notes.mark_read(_user(), ids)
    target = safe_next(request.form.get("next"))
    return redirect(target or url_for("notifications.index"))
