"""Uploaded files: the bytes in a folder, a row in ``ff_uploads``, a key in the record.

A ``file`` field holds only a *key*; :class:`UploadService` stores the bytes and
hands the key out. The rules (docs/records.md copies them):

* **For one field.** An upload is made for one file field of one entity
  (``attachment``, or ``lines.doc`` for a child-table column) and only fits
  that field: its ``accept`` extensions and its ``max_size_mb`` (fields without
  one: :data:`DEFAULT_MAX_MB`, or the app's ``FORMFLOW_UPLOAD_MAX_MB``) are
  enforced while the bytes stream in, so an over-size file is never kept.
  Empty files are refused.
* **Who.** The row records the uploader. The record service accepts a *new* key
  in a record only from the user who uploaded it, for that entity and field
  (an unchanged key is no change); so a key seen elsewhere cannot be forged
  into one's own record to read someone else's file.
* **Keys and names.** A key is ``<yyyy>/<mm>/<32 random hex>/<name>``: random,
  so it reveals nothing and cannot be guessed. ``<name>`` is the client's file
  name made safe: the last part of any path (``../../etc/passwd`` ->
  ``passwd``), NFC, without control characters or ``<>:"/\\|?*``, no leading
  dots, at most :data:`MAX_NAME` characters (the extension kept). The bytes are
  stored under the random part only (``<folder>/<2 hex>/<32 hex>``), never
  under a name the client chose.
* **Types.** The client's MIME type is ignored. The type a download is served
  with is decided at upload from the extension *and* the first bytes: PDF,
  PNG, JPEG, GIF, WebP and Office files get their own type only when the bytes
  are what the extension says (an HTML page renamed ``.png`` is not an image);
  ``txt`` / ``csv`` are ``text/plain`` / ``text/csv``; everything else (SVG,
  HTML, scripts ...) is ``application/octet-stream``. Downloads are always
  attachments (``Content-Disposition: attachment``) with ``nosniff``.
* **Reading** a file is the web layer's job, through a record: whoever may
  read the record (and the field) may download the file it holds; anyone else
  gets a 404.

Uploads that no record ever took stay in the folder and the table (a later
clean-up command may remove them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.errors import RecordInvalid
from engine.fields import FieldValueError, kind_of
from engine.fields.file import MAX_SIZE_MB, allowed_extensions, extension
from engine.i18n import T, Text
from engine.model import Blueprint, Field
from engine.records import Actor
from engine.storage.database import writer
from engine.storage.schema import Schema

__all__ = [
    "DEFAULT_MAX_MB",
    "MAX_NAME",
    "OCTET_STREAM",
    "Upload",
    "UploadRefused",
    "UploadService",
    "safe_name",
    "upload_folder",
]

#: The size limit of a file field without ``max_size_mb``, in MB.
DEFAULT_MAX_MB = 10
#: The longest file name kept in a key (characters, extension included).
MAX_NAME = 120
OCTET_STREAM = "application/octet-stream"
FOLDER_NAME = "uploads"
_CHUNK = 64 * 1024
_TOKEN = re.compile(r"[0-9a-f]{32}\Z")
_UNSAFE = re.compile(r'[<>:"/\\|?*]')

_OFFICE = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_ZIP = (b"PK\x03\x04",)
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
#: extension -> (content type, the first bytes it must start with; () = any)
SAFE_TYPES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "pdf": ("application/pdf", (b"%PDF-",)),
    "png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    "jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "gif": ("image/gif", (b"GIF87a", b"GIF89a")),
    "webp": ("image/webp", (b"RIFF",)),
    **{ext: (kind, _ZIP) for ext, kind in _OFFICE.items()},
    "zip": ("application/zip", _ZIP),
    "doc": ("application/msword", _OLE),
    "xls": ("application/vnd.ms-excel", _OLE),
    "ppt": ("application/vnd.ms-powerpoint", _OLE),
    "txt": ("text/plain; charset=utf-8", ()),
    "csv": ("text/csv; charset=utf-8", ()),
}

MSG_NO_FIELD = T("没有这个文件字段", "no such file field")
MSG_EMPTY = T("文件是空的", "the file is empty")
MSG_NO_FILE = T("请选择要上传的文件", "choose a file to upload")
MSG_TOO_LARGE = T("文件超过 {mb} MB", "the file is larger than {mb} MB")


class UploadRefused(RecordInvalid):
    """An upload was refused; ``errors`` holds the reasons (under ``file``, or ``field``)."""


def _refused(key: str, message: Text) -> UploadRefused:
    return UploadRefused({key: [message]})


@dataclass(frozen=True)
class Upload:
    """One stored upload (the ``ff_uploads`` row)."""

    key: str
    name: str
    size: int
    content_type: str
    sha256: str
    entity: str
    field: str
    user: str | None
    created_at: datetime
    path: str  # under the upload folder: ``<2 hex>/<32 hex>``


def safe_name(raw: str | None) -> str:
    """A client's file name as kept in a key (see the module docs); ``file`` when none is left."""
    text = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    text = " ".join(_UNSAFE.sub("_", text).split()).lstrip(". ").rstrip(" ")
    if len(text) > MAX_NAME:
        ext = extension(text)
        if ext and len(ext) < 20:
            stem = text[: -(len(ext) + 1)][: MAX_NAME - len(ext) - 1].rstrip(" .")
            text = f"{stem}.{ext}"
        else:
            text = text[:MAX_NAME].rstrip(" .")
    return text or "file"


def sniffed_type(name: str, head: bytes) -> str:
    """The content type to serve ``name`` with, given its first bytes (see the module docs)."""
    found = SAFE_TYPES.get(extension(name))
    if found is None:
        return OCTET_STREAM
    kind, magic = found
    if magic and not any(head.startswith(m) for m in magic):
        return OCTET_STREAM
    if kind == "image/webp" and head[8:12] != b"WEBP":
        return OCTET_STREAM
    return kind


def upload_folder(blueprint_path: Path, db_url: str) -> Path:
    """The default folder: ``uploads`` beside a SQLite file, else in the blueprint folder."""
    if db_url.startswith("sqlite:///") and ":memory:" not in db_url:
        return Path(db_url[len("sqlite:///") :]).resolve().parent / FOLDER_NAME
    folder = blueprint_path if blueprint_path.is_dir() else blueprint_path.parent
    return folder.resolve() / FOLDER_NAME


class UploadService:
    """Store uploads for file fields and find them again (see the module docs)."""

    def __init__(
        self,
        blueprint: Blueprint,
        schema: Schema,
        engine: Engine,
        folder: Path,
        *,
        default_max_mb: float = DEFAULT_MAX_MB,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.schema = schema
        self.engine = engine
        self.write_engine = writer(engine)
        self.folder = Path(folder)
        self.default_max_mb = default_max_mb
        self.clock = clock or (lambda: datetime.now(UTC))
        self.table: sa.Table = schema.uploads

    # -- fields and limits -------------------------------------------------------------

    def file_field(self, entity: str, path: str) -> Field:
        """The file field ``path`` (``attachment`` or ``lines.doc``) of ``entity``."""
        ent = self.blueprint.entities.get(entity)
        head, _, child = path.partition(".")
        f = ent.fields.get(head) if ent is not None else None
        if f is not None and child:
            f = f.fields.get(child) if f.kind == "table" else None
        if f is None or f.kind != "file":
            raise _refused("field", MSG_NO_FIELD)
        return f

    def file_fields(self, entity: str) -> list[str]:
        """Paths of every file field of ``entity`` (top level, then child columns)."""
        ent = self.blueprint.entities.get(entity)
        if ent is None:
            return []
        out = [n for n, f in ent.fields.items() if f.kind == "file"]
        for table in ent.tables():
            out.extend(f"{table.name}.{c}" for c, cf in table.fields.items() if cf.kind == "file")
        return out

    def max_mb(self, f: Field) -> float:
        size = f.max_size_mb
        if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0:
            return float(size)
        return float(min(self.default_max_mb, MAX_SIZE_MB))

    def max_bytes(self, f: Field) -> int:
        return int(self.max_mb(f) * 1024 * 1024)

    def largest_bytes(self, entity: str | None = None) -> int:
        """The largest file any file field (of ``entity``, or of the blueprint) takes."""
        entities = [entity] if entity is not None else list(self.blueprint.entities)
        sizes = [
            self.max_bytes(self.file_field(e, p)) for e in entities for p in self.file_fields(e)
        ]
        return max(sizes, default=0)

    # -- storing -------------------------------------------------------------------------

    def store(
        self,
        entity: str,
        field_path: str,
        name: str | None,
        stream: IO[bytes],
        *,
        actor: Actor,
    ) -> Upload:
        """Store one file for ``entity.field_path``; :class:`UploadRefused` when it may not be."""
        f = self.file_field(entity, field_path)
        clean = safe_name(name)
        allowed = allowed_extensions(f)
        problems = kind_of(f).check_value(f, clean) if allowed else []
        if problems:
            raise UploadRefused({"file": problems})
        limit = self.max_bytes(f)
        token = secrets.token_hex(16)
        relative = f"{token[:2]}/{token}"
        target = self.folder / relative
        temp = self.folder / ".incoming" / f"{token}.part"
        temp.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with open(temp, "xb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        mb = f"{self.max_mb(f):g}"
                        raise _refused("file", MSG_TOO_LARGE.format(mb=mb))
                    if len(head) < 16:
                        head = (head + chunk)[:16]
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise _refused("file", MSG_EMPTY)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        now = self.clock()
        key = f"{now:%Y/%m}/{token}/{clean}"
        try:
            kind_of(f).parse(f, key)  # the shape every file key has (never fails here)
        except FieldValueError as exc:  # pragma: no cover - safe_name makes a valid segment
            target.unlink()
            raise UploadRefused({"file": [exc.text]}) from None
        upload = Upload(
            key=key,
            name=clean,
            size=size,
            content_type=sniffed_type(clean, head),
            sha256=digest.hexdigest(),
            entity=entity,
            field=field_path,
            user=actor.name,
            created_at=now,
            path=relative,
        )
        try:
            with self.write_engine.begin() as conn:
                conn.execute(
                    self.table.insert().values(
                        key=upload.key,
                        path=upload.path,
                        name=upload.name,
                        size=upload.size,
                        content_type=upload.content_type,
                        sha256=upload.sha256,
                        entity=upload.entity,
                        field=upload.field,
                        user=upload.user,
                        created_at=upload.created_at,
                    )
                )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            raise
        return upload

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str) -> Upload | None:
        """The upload with this key, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.key == key)).first()
        if row is None:
            return None
        m = row._mapping
        return Upload(
            key=m["key"],
            name=m["name"],
            size=int(m["size"]),
            content_type=m["content_type"],
            sha256=m["sha256"],
            entity=m["entity"],
            field=m["field"],
            user=m["user"],
            created_at=m["created_at"],
            path=m["path"],
        )

    def file_path(self, upload: Upload) -> Path | None:
        """Where the bytes are (None if they are gone or the row is not one of ours)."""
        head, _, token = upload.path.partition("/")
        if not _TOKEN.match(token) or head != token[:2]:
            return None
        path = self.folder / head / token
        return path if path.is_file() else None
