"""Permission rule 8: approvers may read the records they are asked about (CRM, both databases).

The single-record answer (``Permissions.allows``) and the list WHERE
(``Permissions.read_scope``) agree; reading only (update and delete keep their
scopes); a user never asked keeps the plain scope; hidden fields stay hidden.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flow_support import actor, crm_app, new_contract, open_task, submit
from test_web_support import records

from engine.errors import NotFound, PermissionDenied
from engine.web.services import services


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = crm_app(db_url)
    yield app
    records(app).engine.dispose()


def readable_ids(app: Flask, name: str) -> set[int]:
    with app.app_context():
        svc = services()
        et = svc.schema.entity("contract")
        scope = svc.permissions.read_scope(actor(app, name), et)
        stmt = sa.select(et.table.c.id)
        if scope is not None:
            stmt = stmt.where(scope)
        with svc.engine.connect() as conn:
            return {int(r) for r in conn.execute(stmt).scalars()}


def allowed_ids(app: Flask, name: str, action: str = "read") -> set[int]:
    with app.app_context():
        svc = services()
        out = set()
        for rid in readable_ids(app, "admin"):
            record = svc.records.get("contract", rid)
            if svc.permissions.allows(actor(app, name), "contract", action, record):  # type: ignore[arg-type]
                out.add(rid)
        return out


def test_an_approver_reads_what_they_are_asked_about_and_nothing_more(app: Flask) -> None:
    asked = new_contract(app, "li.lei")
    other = new_contract(app, "li.lei")
    own = new_contract(app, "chen.jing")
    submit(app, "contract", asked, "li.lei")
    for name in ("zhao.qiang", "chen.jing", "han.meimei"):
        assert readable_ids(app, name) == allowed_ids(app, name)  # lists agree with records
    assert readable_ids(app, "zhao.qiang") == {own}  # his team only
    with app.app_context():
        task = open_task(app, "contract", asked, "wang.fang")
        services().flows.transfer(task, "zhao.qiang", actor=actor(app, "wang.fang"))
    assert readable_ids(app, "zhao.qiang") == allowed_ids(app, "zhao.qiang") == {own, asked}
    assert other not in readable_ids(app, "zhao.qiang")
    # Still nobody else; and reading only.
    assert readable_ids(app, "chen.jing") == {own}
    assert readable_ids(app, "han.meimei") == set()
    assert allowed_ids(app, "zhao.qiang", "update") == {own}
    with app.app_context():
        svc = services()
        boss = actor(app, "zhao.qiang")
        assert svc.records.get("contract", asked, actor=boss).id == asked
        with pytest.raises(PermissionDenied):
            svc.records.update("contract", asked, {"subject": "x"}, version=2, actor=boss)
        with pytest.raises(NotFound):
            svc.records.get("contract", other, actor=boss)
        # The wider scope reaches the record service's lists too.
        page = svc.records.list_records("contract", None, actor=boss)
        assert {r["id"] for r in page.rows} == {own, asked}
