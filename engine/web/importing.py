"""Imports from the web: upload, run inline or in the background, show, download the report.

Pages (``engine.web.views.imports``) and the API (``engine.web.api.imports``)
share this module. The work itself is :class:`engine.imports.ImportService`.

* **Who.** Users who may create records of the entity. A job (its page, status,
  report) is visible to the user who started it and to admins; others get a 404.
* **Size.** The request body of an import is limited to ``FORMFLOW_IMPORT_MAX_MB``
  (default 50 MB), decided before anything reads it (413 beyond).
* **Inline or background.** A file up to ``FORMFLOW_IMPORT_INLINE_KB`` (default
  256 KB) is imported during the request; a larger one in a thread of this process
  (:meth:`engine.imports.ImportJobs.run_in_thread`) while the page polls its state.
  A worker restart interrupts a background import: it writes nothing (one
  transaction) and is marked failed the next time its job is read.
* **Files.** The upload is kept under ``FORMFLOW_IMPORT_DIR`` (default ``imports``
  in the upload folder) under a random name while it is imported, then deleted;
  the annotated report stays there (``report-<job>-<random>.xlsx``) for download.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from flask import Flask, current_app, request, send_file, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from engine.errors import PermissionDenied
from engine.i18n import T
from engine.imports import (
    FileRefused,
    ImportJob,
    ImportOptions,
    ImportService,
    load_mapping_file,
)
from engine.model import Entity
from engine.records import Actor
from engine.uploads import safe_name
from engine.web.services import services

DEFAULT_MAX_MB = 50
DEFAULT_INLINE_KB = 256
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Endpoints whose body is an import upload.
UPLOAD_ENDPOINTS = frozenset({"imports.start", "api.import_file"})

MSG_NO_FILE = T("请选择要导入的文件（.xlsx 或 .csv）", "choose a file to import (.xlsx or .csv)")


def import_service() -> ImportService:
    """The app's import service (built by create_app over build_runtime's record service)."""
    return services().imports


def import_folder() -> Path:
    configured = current_app.config.get("FORMFLOW_IMPORT_DIR")
    folder = Path(configured) if configured else services().uploads.folder / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def max_bytes() -> int:
    return int(float(current_app.config.get("FORMFLOW_IMPORT_MAX_MB") or DEFAULT_MAX_MB) * 2**20)


def inline_bytes() -> int:
    configured = current_app.config.get("FORMFLOW_IMPORT_INLINE_KB")
    return int(float(DEFAULT_INLINE_KB if configured is None else configured) * 1024)


def set_import_body_limit() -> None:
    """An import upload may be up to ``FORMFLOW_IMPORT_MAX_MB`` (see the module docs)."""
    if request.method == "POST" and request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = max_bytes()


def may_import(actor: Actor, entity: Entity) -> bool:
    return services().permissions.can_create(actor, entity.name)


def import_url(entity: Entity) -> str | None:
    """The import page of ``entity`` if the signed-in user may import into it (templates)."""
    from engine.web.auth import current_actor

    if not may_import(current_actor(), entity):
        return None
    return url_for("imports.start", entity=entity.name)


def options_from(values: dict[str, str], mapping: FileStorage | None, lang: str) -> ImportOptions:
    """Import options from form fields: ``mode`` (all / partial), ``update_on``, ``dry_run``."""
    flag = {"1", "true", "on", "yes"}
    mode = values.get("mode", "all")
    partial = mode == "partial" or values.get("partial", "").lower() in flag
    parsed = None
    if mapping is not None and mapping.filename:
        suffix = ".json" if mapping.filename.lower().endswith(".json") else ".yaml"
        path = import_folder() / f"mapping-{secrets.token_hex(16)}{suffix}"
        try:
            mapping.save(path)
            parsed = load_mapping_file(path)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
    return ImportOptions(
        partial=partial,
        update_on=(values.get("update_on") or "").strip() or None,
        dry_run=values.get("dry_run", "").lower() in flag,
        mapping=parsed,
        lang=lang,
    )


def start_import(
    entity: Entity, actor: Actor, sent: FileStorage | None, options: ImportOptions
) -> ImportJob:
    """Check, store the upload, create the job; run it now (small) or in a thread (large).

    A small file refused as a whole raises :class:`FileRefused` (its job is recorded
    as failed); a large one is refused in its job.
    """
    service = import_service()
    if sent is None or not sent.filename:
        raise FileRefused(MSG_NO_FILE)
    service.check(entity.name, options, actor)
    name = safe_name(sent.filename)
    folder = import_folder()
    token = secrets.token_hex(16)
    upload = folder / f"upload-{token}"
    sent.save(upload)
    size = upload.stat().st_size
    job_id = service.jobs.create(
        user=actor.name,
        entity=entity.name,
        file_name=name,
        mode=options.mode,
        update_on=options.update_on,
        dry_run=options.dry_run,
    )
    report = folder / f"report-{job_id}-{token}.xlsx"

    def work() -> object:
        return service.run(
            entity.name,
            upload,
            actor=actor,
            options=options,
            file_name=name,
            report_path=report,
            job_id=job_id,
        )

    def cleanup() -> None:
        with contextlib.suppress(OSError):
            upload.unlink()

    if size <= inline_bytes():
        try:
            result = service.run(
                entity.name,
                upload,
                actor=actor,
                options=options,
                file_name=name,
                report_path=report,
                job_id=job_id,
            )
        finally:
            cleanup()
        if result.refused is not None:  # the job records it; the caller shows why
            raise FileRefused(result.refused)
    else:
        service.jobs.run_in_thread(job_id, work, cleanup=cleanup)
    job = service.jobs.get(job_id)
    assert job is not None
    return job


def visible_job(actor: Actor, job_id: int, entity: str | None = None) -> ImportJob | None:
    """The job if ``actor`` started it (or is an admin), else None (a 404 for the caller)."""
    job = import_service().jobs.get(job_id)
    if job is None or (entity is not None and job.entity != entity):
        return None
    if job.user != actor.name and "admin" not in actor.roles:
        return None
    return job


def report_response(job: ImportJob) -> Response | None:
    """The job's annotated report as a download, or None when it has none."""
    if not job.report_path:
        return None
    path = Path(job.report_path)
    if not path.is_file():
        return None
    stem = job.file_name.rsplit(".", 1)[0] or "import"
    response = send_file(
        path,
        mimetype=XLSX_TYPE,
        as_attachment=True,
        download_name=f"{stem}-errors.xlsx",
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def init_app(app: Flask) -> None:
    """The pages, the body limit and the ``import_url`` template helper."""
    from engine.web.views import imports as pages

    app.register_blueprint(pages.bp)
    app.before_request_funcs.setdefault(None, []).insert(0, set_import_body_limit)
    app.jinja_env.globals["import_url"] = import_url


__all__ = [
    "MSG_NO_FILE",
    "PermissionDenied",
    "import_service",
    "import_url",
    "init_app",
    "options_from",
    "report_response",
    "start_import",
    "visible_job",
]
