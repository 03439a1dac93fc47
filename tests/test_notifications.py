"""In-app notifications (engine.notifications) and safe message templates (engine.messages).

Rows are written in the caller's transaction; each user reads and marks only
their own; e-mail is queued as ``mail.send`` jobs only when SMTP is configured.
Every database test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from test_web_support import make_app, sign_in, text

from engine.i18n import T
from engine.jobs import JobQueue
from engine.loader import load
from engine.mail import MAIL_JOB
from engine.messages import fill, placeholders
from engine.notifications import NotificationService
from engine.storage.database import create_engine, writer
from engine.storage.migrate import initialise
from engine.storage.schema import NOTIFICATIONS_TABLE, Schema, build_schema
from engine.users import UserService
from engine.web.services import services

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
BLUEPRINT = """
formflow: 1
id: notes
title: Notes
roles:
  rep: Rep
entities:
  deal:
    label: Deal
    fields:
      name: {type: text, label: Name}
"""


@dataclass
class World:
    engine: Engine
    schema: Schema
    users: UserService
    jobs: JobQueue

    def service(self, *, mail: bool = False) -> NotificationService:
        return NotificationService(
            self.schema, self.engine, jobs=self.jobs, mail_configured=mail, clock=lambda: NOW
        )


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(BLUEPRINT, encoding="utf-8")
    bp = load(path)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    users = UserService(bp, schema, engine, clock=lambda: NOW)
    users.add("li.lei", roles=["rep"], email="li@example.com")
    users.add("han.meimei", roles=["rep"])
    users.add("gone", roles=["rep"])
    users.deactivate("gone")
    yield World(engine, schema, users, JobQueue(engine, schema, lambda: NOW))
    engine.dispose()


MESSAGE = T("合同 HT-1 已通过审批", "Contract HT-1 was approved")


def test_notify_writes_one_row_per_active_user_in_the_callers_transaction(world: World) -> None:
    notes = world.service()
    with writer(world.engine).begin() as conn:
        ids = notes.notify(
            conn,
            ["li.lei", "han.meimei", "li.lei", "gone", "nobody", None, ""],
            MESSAGE,
            ("deal", 7),
            kind="approved",
            body=T("意见：同意", "Comment: fine"),
        )
    assert len(ids) == 2
    [mine] = notes.list("li.lei")
    assert mine.title == MESSAGE and mine.body.get("en") == "Comment: fine"
    assert (mine.kind, mine.entity, mine.record_id, mine.link) == (
        "approved",
        "deal",
        7,
        "/e/deal/7",
    )
    assert mine.created_at == NOW and not mine.read
    assert notes.list("gone") == [] and notes.list("nobody") == []
    table = world.schema.metadata.tables[NOTIFICATIONS_TABLE]
    with world.engine.connect() as conn:
        stored = conn.execute(sa.select(table.c.title).where(table.c.id == ids[0])).scalar_one()
    assert stored == {"zh": "合同 HT-1 已通过审批", "en": "Contract HT-1 was approved"}


def test_a_rolled_back_transaction_leaves_no_notification(world: World) -> None:
    notes = world.service(mail=True)
    with pytest.raises(RuntimeError), writer(world.engine).begin() as conn:
        notes.notify(conn, ["li.lei"], MESSAGE)
        raise RuntimeError("undo")
    assert notes.list("li.lei") == []
    assert world.jobs.jobs(kind=MAIL_JOB) == []


def test_list_count_and_mark_read_are_per_user(world: World) -> None:
    notes = world.service()
    with writer(world.engine).begin() as conn:
        first = notes.notify(conn, ["li.lei"], T("一", "one"))
        second = notes.notify(conn, ["li.lei"], T("二", "two"))
        theirs = notes.notify(conn, ["han.meimei"], T("三", "three"))
    assert [n.title.get("en") for n in notes.list("li.lei")] == ["two", "one"]  # newest first
    assert notes.unread_count("li.lei") == 2
    assert notes.mark_read("li.lei", [first[0], theirs[0], 99999]) == 1  # not someone else's
    assert notes.unread_count("han.meimei") == 1
    assert [n.title.get("en") for n in notes.list("li.lei", unread_only=True)] == ["two"]
    assert notes.mark_read("li.lei", "all") == 1
    assert notes.mark_read("li.lei", "all") == 0
    assert notes.unread_count("li.lei") == 0
    assert [n.id for n in notes.list("li.lei", before=second[0])] == first
    assert notes.list("li.lei", limit=1)[0].read_at == NOW


def test_mail_jobs_are_queued_only_when_smtp_is_configured(world: World) -> None:
    with writer(world.engine).begin() as conn:
        world.service().notify(conn, ["li.lei"], MESSAGE)
    assert world.jobs.jobs(kind=MAIL_JOB) == []
    with writer(world.engine).begin() as conn:
        [nid] = world.service(mail=True).notify(conn, ["li.lei"], MESSAGE, ("deal", 3))
        world.service(mail=True).notify(conn, ["han.meimei"], MESSAGE, email=False)
    [job] = world.jobs.jobs(kind=MAIL_JOB)
    assert job.dedupe_key == f"mail:notification:{nid}"
    assert job.payload == {
        "user": "li.lei",
        "subject": MESSAGE.as_dict(),
        "body": MESSAGE.as_dict(),
        "link": "/e/deal/3",
    }


# --------------------------------------------------------------------------- templates


VALUES = {"name": "ACME", "amount": Decimal("150000.00"), "on": date(2024, 6, 1), "blank": None}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("合同 {name} 已通过审批", "合同 ACME 已通过审批"),
        ("{amount} on {on}{blank}", "150000.00 on 2024-06-01"),
        ("{{name}} is {name}", "{name} is ACME"),
        ("{name.__class__}", "{name.__class__}"),
        ("{name.__class__.__mro__}", "{name.__class__.__mro__}"),
        ("{name[0]}", "{name[0]}"),
        ("{name!r}", "{name!r}"),
        ("{name:>99999999}", "{name:>99999999}"),
        ("{unknown}", "{unknown}"),
        ("{0}", "{0}"),
        ("{}", "{}"),
        ("{name", "{name"),
        ("}", "}"),
    ],
)
def test_fill_puts_in_values_and_nothing_else(template: str, expected: str) -> None:
    assert fill(template, VALUES) == expected


def test_fill_never_reaches_into_objects() -> None:
    class Loud:
        def __getattr__(self, name: str) -> str:
            raise AssertionError(f"attribute {name} was read")

        def __format__(self, spec: str) -> str:
            raise AssertionError("format was called")

        def __str__(self) -> str:
            return "loud"

    assert fill("{x.secret} {x[1]} {x}", {"x": Loud()}) == "{x.secret} {x[1]} loud"


def test_placeholders_lists_what_a_template_names() -> None:
    assert placeholders("{a} {b.c} {{d}} {e!r:>3}") == ["a", "b.c", "e!r:>3"]
    with pytest.raises(ValueError):
        placeholders("{a")


# --------------------------------------------------------------------------- the web page

WEB_BLUEPRINT = """
formflow: 1
id: webnotes
title: Web notes
roles:
  rep: Rep
entities:
  deal:
    label: Deal
    title_field: name
    fields:
      name: {type: text, label: Name, required: true}
    access:
      rep: {create: true, read: own, update: own}
automations:
  tell_owner:
    entity: deal
    on: create
    actions:
      - notify: {to: [owner], message: {zh: "已创建商机 {name}", en: "Deal {name} created"}}
"""


def test_a_form_write_notifies_and_the_page_lists_and_marks(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(WEB_BLUEPRINT, encoding="utf-8")
    app = make_app(path, db_url, [("li.lei", ["rep"]), ("han.meimei", ["rep"])])
    try:
        client = app.test_client()
        sign_in(client, "li.lei")
        response = client.post("/e/deal/new", data={"name": "泵站改造"})
        assert response.status_code == 302, text(response)
        page = text(client.get("/notifications?lang=zh"))
        assert "已创建商机 泵站改造" in page
        assert "<mark" in page  # the unread count in the header
        with app.app_context():
            [note] = services().notifications.list("li.lei")
        assert note.link is not None and note.link.startswith("/e/deal/")
        # another user cannot mark it
        other = app.test_client()
        sign_in(other, "han.meimei")
        other.post("/notifications/read", data={"id": str(note.id)})
        assert "已创建商机" not in text(other.get("/notifications"))
        # opening it marks it read and goes to the record
        response = client.post("/notifications/read", data={"id": str(note.id), "next": note.link})
        assert response.status_code == 302 and response.headers["Location"].endswith(note.link)
        with app.app_context():
            assert services().notifications.unread_count("li.lei") == 0
        assert "<mark" not in text(client.get("/notifications?lang=en"))
        response = client.post("/notifications/read", data={"all": "1", "next": "//evil.example"})
        assert response.headers["Location"].endswith("/notifications")
    finally:
        with app.app_context():
            services().engine.dispose()
