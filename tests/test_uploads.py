"""engine.uploads and the record service's key check, on SQLite and PostgreSQL.

Hostile input: path traversal names, SVG with script, HTML renamed .png, over-size
and empty files, keys of other users' uploads forged into records.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine.errors import RecordInvalid
from engine.loader import load
from engine.records import SYSTEM, Actor, BatchInvalid, RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.uploads import MAX_NAME, OCTET_STREAM, UploadRefused, UploadService, safe_name

BLUEPRINT = """
formflow: 1
id: docs
title: {zh: 文档, en: Documents}
entities:
  doc:
    label: {zh: 文档, en: Document}
    title_field: title
    fields:
      title: {type: text, label: {zh: 标题, en: Title}}
      anything: {type: file, label: {zh: 任意文件, en: Any file}, max_size_mb: 0.05}
      picture: {type: file, label: {zh: 图片, en: Picture}, accept: [png, jpg], max_size_mb: 1}
      pages:
        type: table
        label: {zh: 页, en: Pages}
        fields:
          note: {type: text, label: {zh: 说明, en: Note}}
          scan: {type: file, label: {zh: 扫描件, en: Scan}, accept: [pdf]}
"""

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
ALICE = Actor("alice", frozenset({"admin"}))
BOB = Actor("bob", frozenset({"admin"}))


@dataclass
class World:
    uploads: UploadService
    records: RecordService
    folder: Path
    engine: Engine


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    folder = tmp_path / "bp"
    folder.mkdir()
    (folder / "blueprint.yaml").write_text(BLUEPRINT, encoding="utf-8")
    bp = load(folder)
    schema = build_schema(bp)
    engine = create_engine(db_url)
    initialise(engine, bp, schema)
    files = tmp_path / "files"
    try:
        yield World(
            UploadService(bp, schema, engine, files),
            RecordService(bp, schema, engine),
            files,
            engine,
        )
    finally:
        engine.dispose()


def store(world: World, field: str, name: str, data: bytes, who: Actor = ALICE) -> str:
    return world.uploads.store("doc", field, name, io.BytesIO(data), actor=who).key


def stored_files(world: World) -> list[Path]:
    return sorted(p for p in world.folder.rglob("*") if p.is_file())


# -- storing -----------------------------------------------------------------------------------


def test_bytes_are_kept_under_a_random_key_with_the_uploader(world: World) -> None:
    up = world.uploads.store("doc", "picture", "合同 照片.PNG", io.BytesIO(PNG), actor=ALICE)
    year, month, token, name = up.key.split("/")
    assert len(year) == 4 and len(month) == 2 and len(token) == 32 and name == "合同 照片.PNG"
    assert (up.name, up.size, up.user, up.entity, up.field) == (
        "合同 照片.PNG",
        len(PNG),
        "alice",
        "doc",
        "picture",
    )
    assert up.content_type == "image/png"
    [path] = stored_files(world)
    assert path == world.folder / token[:2] / token  # never under a name the client chose
    assert path.read_bytes() == PNG
    again = world.uploads.get(up.key)
    assert again == up
    assert world.uploads.file_path(up) == path
    other = world.uploads.store("doc", "picture", "合同 照片.PNG", io.BytesIO(PNG), actor=ALICE)
    assert other.key != up.key  # the same bytes and name: still a key of its own


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/报价单.pdf", "报价单.pdf"),
        ("a\x00b\r\nc.pdf", "abc.pdf"),
        ('x<script>"|?*.pdf', "x_script_____.pdf"),
        ("...", "file"),
        ("   .htaccess", "htaccess"),
        ("", "file"),
        (None, "file"),
        ("e\u0301.txt", "\u00e9.txt"),  # NFC
    ],
)
def test_safe_names(raw: str | None, kept: str) -> None:
    assert safe_name(raw) == kept


def test_a_long_name_keeps_its_extension() -> None:
    name = safe_name("长" * 300 + ".pdf")
    assert len(name) == MAX_NAME and name.endswith(".pdf")


def test_path_traversal_names_stay_inside_the_folder(world: World) -> None:
    key = store(world, "anything", "../../../../etc/passwd", b"root:x:0:0")
    assert key.endswith("/passwd") and ".." not in key
    assert all(world.folder in p.parents for p in stored_files(world))
    # a field with accept: the name has no allowed extension left
    with pytest.raises(UploadRefused) as info:
        store(world, "picture", "../../x/evil.png/../passwd", PNG)
    assert "file type not allowed" in info.value.as_dict("en")["file"][0]


@pytest.mark.parametrize(
    ("name", "data", "served"),
    [
        ("logo.svg", SVG, OCTET_STREAM),  # SVG can script: never an image type
        ("page.html", HTML, OCTET_STREAM),
        ("page.htm", HTML, OCTET_STREAM),
        ("evil.png", HTML, OCTET_STREAM),  # an HTML page renamed .png is no image
        ("real.png", PNG, "image/png"),
        ("real.pdf", PDF, "application/pdf"),
        ("fake.pdf", HTML, OCTET_STREAM),
        ("notes.txt", HTML, "text/plain; charset=utf-8"),
        ("run.js", b"alert(1)", OCTET_STREAM),
        ("noext", HTML, OCTET_STREAM),
    ],
)
def test_the_served_type_comes_from_extension_and_bytes(
    world: World, name: str, data: bytes, served: str
) -> None:
    key = store(world, "anything", name, data)
    found = world.uploads.get(key)
    assert found is not None and found.content_type == served


def test_accept_and_size_are_enforced_and_nothing_is_kept(world: World) -> None:
    with pytest.raises(UploadRefused) as info:
        store(world, "picture", "logo.svg", SVG)
    assert info.value.as_dict("en") == {"file": ["file type not allowed (allowed: jpg, png)"]}
    assert info.value.as_dict("zh")["file"][0].startswith("不允许的文件类型")
    limit = int(0.05 * 1024 * 1024)
    with pytest.raises(UploadRefused) as info:
        store(world, "anything", "big.bin", b"x" * (limit + 1))
    assert info.value.as_dict("en") == {"file": ["the file is larger than 0.05 MB"]}
    assert info.value.as_dict("zh") == {"file": ["文件超过 0.05 MB"]}
    with pytest.raises(UploadRefused) as info:
        store(world, "anything", "empty.txt", b"")
    assert info.value.as_dict("en") == {"file": ["the file is empty"]}
    with pytest.raises(UploadRefused) as info:
        store(world, "title", "a.txt", b"x")  # not a file field
    assert set(info.value.as_dict("en")) == {"field"}
    assert stored_files(world) == []  # no bytes kept, no half-written file left
    assert store(world, "anything", "exact.bin", b"x" * limit)  # the limit itself is fine


# -- records take only their user's uploads ------------------------------------------------------


def test_a_record_takes_a_key_only_from_its_uploader_for_that_field(world: World) -> None:
    mine = store(world, "picture", "me.png", PNG, ALICE)
    rec = world.records.create("doc", {"title": "a", "picture": mine}, actor=ALICE)
    assert rec.values["picture"] == mine
    # bob forges alice's key into his own record: refused, in both languages
    with pytest.raises(RecordInvalid) as info:
        world.records.create("doc", {"title": "b", "picture": mine}, actor=BOB)
    assert info.value.as_dict("en") == {
        "picture": ["no file you uploaded for this field has this key"]
    }
    assert info.value.as_dict("zh") == {"picture": ["没有你为此字段上传的这个文件"]}
    # a key that does not exist at all gets the same answer (no probing)
    invented = mine.rsplit("/", 2)[0] + "/" + "0" * 32 + "/me.png"
    with pytest.raises(RecordInvalid) as info:
        world.records.create("doc", {"title": "c", "picture": invented}, actor=ALICE)
    assert list(info.value.as_dict("en")) == ["picture"]
    # an upload made for another field does not fit this one
    anything = store(world, "anything", "x.png", PNG, ALICE)
    with pytest.raises(RecordInvalid):
        world.records.create("doc", {"picture": anything}, actor=ALICE)
    # preview says the same as a save
    _values, errors = world.records.preview("doc", {"picture": mine}, actor=BOB)
    assert "picture" in errors
    # bob may edit alice's record and leave her file as it is (no change, no check)
    updated = world.records.update(
        "doc", rec.id, {"title": "b2", "picture": mine}, version=rec.version, actor=BOB
    )
    assert updated.values["picture"] == mine
    # ... and remove it, or put his own upload in
    his = store(world, "picture", "bob.png", PNG, BOB)
    updated = world.records.update(
        "doc", rec.id, {"picture": his}, version=updated.version, actor=BOB
    )
    assert updated.values["picture"] == his
    with pytest.raises(RecordInvalid):  # but not put alice's back: it is no longer held
        world.records.update("doc", rec.id, {"picture": mine}, version=updated.version, actor=BOB)
    # the engine itself (imports of old data, migrations) may set any key
    assert world.records.create("doc", {"picture": "old/system/key.png"}, actor=SYSTEM)


def test_child_table_columns_and_batches_are_checked_too(world: World) -> None:
    mine = store(world, "pages.scan", "p1.pdf", PDF, ALICE)
    rec = world.records.create("doc", {"pages": [{"note": "1", "scan": mine}]}, actor=ALICE)
    with pytest.raises(RecordInvalid) as info:
        world.records.create("doc", {"pages": [{"scan": mine}]}, actor=BOB)
    assert list(info.value.as_dict("en")) == ["pages[0].scan"]
    # bob keeps alice's row as it is and adds a row: only the new key is checked
    row = rec.tables["pages"][0]
    updated = world.records.update(
        "doc",
        rec.id,
        {"pages": [{"id": row["id"], "note": "1", "scan": mine}, {"note": "2"}]},
        version=rec.version,
        actor=BOB,
    )
    assert [r["scan"] for r in updated.tables["pages"]] == [mine, None]
    theirs = store(world, "pages.scan", "p2.pdf", PDF, BOB)
    with pytest.raises(BatchInvalid) as batch:
        world.records.create_many(
            "doc",
            [{"picture": None, "pages": [{"scan": theirs}]}, {"pages": [{"scan": mine}]}],
            actor=BOB,
            via="api",
        )
    assert batch.value.rows == {1: {"pages[0].scan": [batch.value.rows[1]["pages[0].scan"][0]]}}
    assert world.records.create_many("doc", [{"pages": [{"scan": theirs}]}], actor=BOB, via="api")
