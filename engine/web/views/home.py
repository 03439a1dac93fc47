"""The home page: the entities the user may see, with record counts (capped)."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from engine.errors import FormflowError
from engine.web import access, dashboards
from engine.web.auth import current_actor
from engine.web.formatting import show_count
from engine.web.i18n import current_lang, ngettext
from engine.web.services import services

bp = Blueprint("home", __name__)

#: The home page counts at most this many records per entity ("1,000+").
HOME_COUNT_CAP = 1000


@bp.route("/")
def index() -> str:
    svc = services()
    actor = current_actor()
    lang = current_lang()
    cards = []
    for entity in svc.blueprint.entities.values():
        if not access.can_see(actor, entity):
            continue
        try:
            page = svc.records.list_records(
                entity.name, None, actor=actor, count_cap=HOME_COUNT_CAP
            )
        except FormflowError:
            continue
        count = page.count if page.count is not None else len(page.rows)
        num = show_count(count, lang)
        text = (
            ngettext("%(num)s+ record", "%(num)s+ records", count, num=num)
            if page.count_capped
            else ngettext("%(num)s record", "%(num)s records", count, num=num)
        )
        cards.append(
            {
                "label": entity.label.get(lang) or entity.name,
                "description": entity.description.get(lang),
                "count": text,
                "url": url_for("lists.index", entity=entity.name),
                "new_url": url_for("records.new", entity=entity.name)
                if access.can_create(actor, entity)
                else None,
            }
        )
    boards = [
        {
            "label": board.label.get(lang) or board.name,
            "url": url_for("dashboards.show", name=board.name),
        }
        for board in dashboards.visible(svc.blueprint, actor)
    ]
    description = svc.blueprint.description.get(lang)
    return render_template("home.html", cards=cards, boards=boards, description=description)
