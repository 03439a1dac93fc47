"""The "Import / 导入" page of an entity, its jobs' pages, status fragments and reports.

``GET /e/<entity>/import``: the upload form (file, mode, update key, dry run,
optional mapping file). ``POST``: starts the import (``engine.web.importing``)
and redirects to the job page, which shows the result, or, for a background
import, a progress bar that htmx refreshes every second from
``/e/<entity>/import/<job>/status`` until the job ends. The result lists the
first errors (row, column, value, message) and links the annotated report.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import FormflowError, NotFound, PermissionDenied
from engine.imports import ImportJob
from engine.model import Entity
from engine.web.auth import current_actor
from engine.web.formatting import show_count, show_datetime
from engine.web.i18n import _, current_lang, ngettext
from engine.web.importing import (
    max_bytes,
    may_import,
    options_from,
    report_response,
    start_import,
    visible_job,
)
from engine.web.views.common import entity_or_404

bp = Blueprint("imports", __name__)


def _importable(entity: str) -> Entity:
    ent = entity_or_404(entity)
    if not may_import(current_actor(), ent):
        abort(403)
    return ent


def _key_fields(ent: Entity, lang: str) -> list[tuple[str, str]]:
    """Fields an import may update on: unique ones and autonumbers."""
    return [
        (name, f.label.get(lang) or name)
        for name, f in ent.fields.items()
        if f.unique or f.kind == "autonumber"
    ]


def _form(ent: Entity, error: str | None = None, status: int = 200) -> tuple[str, int]:
    lang = current_lang()
    return (
        render_template(
            "import.html",
            entity=ent,
            entity_label=ent.label.get(lang) or ent.name,
            list_url=url_for("lists.index", entity=ent.name),
            action=url_for("imports.start", entity=ent.name),
            key_fields=_key_fields(ent, lang),
            max_mb=max_bytes() // 2**20,
            error=error,
        ),
        status,
    )


@bp.route("/e/<entity>/import", methods=["GET", "POST"])
def start(entity: str) -> Response | tuple[str, int]:
    ent = _importable(entity)
    if request.method == "GET":
        return _form(ent)
    actor = current_actor()
    lang = current_lang()
    try:
        options = options_from(request.form.to_dict(), request.files.get("mapping"), lang)
        job = start_import(ent, actor, request.files.get("file"), options)
    except (NotFound, PermissionDenied):
        abort(403)
    except FormflowError as exc:
        return _form(ent, exc.message(lang), 422)
    return redirect(url_for("imports.job", entity=ent.name, job_id=job.id))


def _job_or_404(entity: str, job_id: int) -> tuple[Entity, ImportJob]:
    ent = entity_or_404(entity)
    job = visible_job(current_actor(), job_id, ent.name)
    if job is None:
        abort(404)
    return ent, job


def _view(ent: Entity, job: ImportJob) -> dict[str, Any]:
    lang = current_lang()
    percent = round(job.progress * 100)
    mode = _("Partial") if job.mode == "partial" else _("All or nothing")
    return {
        "job": job,
        "entity": ent,
        "entity_label": ent.label.get(lang) or ent.name,
        "running": not job.finished,
        "percent": percent,
        "rows": show_count(job.rows_read, lang),
        "counts": {
            name: show_count(getattr(job, name), lang)
            for name in ("rows_read", "created", "updated", "failed")
        },
        "mode": mode,
        "message": job.message.get(lang) if job.message else "",
        "warnings": [w.get(lang) for w in job.warnings],
        "errors": [e.as_json(lang) for e in job.errors],
        "more_errors": _more(job.errors_total - len(job.errors), lang),
        "started": show_datetime(job.started_at or job.created_at, lang),
        "finished": show_datetime(job.finished_at, lang) if job.finished_at else "",
        "status_url": url_for("imports.status", entity=ent.name, job_id=job.id),
        "report_url": url_for("imports.report", entity=ent.name, job_id=job.id)
        if job.report_path and job.finished
        else None,
        "list_url": url_for("lists.index", entity=ent.name),
        "again_url": url_for("imports.start", entity=ent.name),
    }


def _more(count: int, lang: str) -> str:
    if count <= 0:
        return ""
    return ngettext(
        "%(num)s more error is in the report.",
        "%(num)s more errors are in the report.",
        count,
        num=show_count(count, lang),
    )


@bp.route("/e/<entity>/import/<int:job_id>")
def job(entity: str, job_id: int) -> str:
    ent, found = _job_or_404(entity, job_id)
    return render_template("import_job.html", **_view(ent, found))


@bp.route("/e/<entity>/import/<int:job_id>/status")
def status(entity: str, job_id: int) -> str:
    ent, found = _job_or_404(entity, job_id)
    return render_template("parts/import_status.html", **_view(ent, found))


@bp.route("/e/<entity>/import/<int:job_id>/report")
def report(entity: str, job_id: int) -> Response:
    _ent, found = _job_or_404(entity, job_id)
    response = report_response(found) if found.finished else None
    if response is None:
        abort(404)
    return response
