"""Imports through the API (docs/api.md, docs/imports.md).

* ``POST /api/v1/<entity>/import`` (multipart): ``file`` (.xlsx or .csv), and as
  form fields ``mode`` (``all`` or ``partial``; or ``partial=true``),
  ``update_on`` (a unique field), ``dry_run`` (``true``), and an optional
  ``mapping`` file (YAML or JSON). A small file is imported during the request:
  200 with the finished job. A large one runs in the background: 202 with the
  job (``queued`` or ``running``) and ``Location: /api/v1/imports/<id>``.
  A file refused as a whole is a 422 (nothing was read into the database; the
  job is recorded as failed).
* ``GET /api/v1/imports/<id>``: the job (state, counts, progress, the first 100
  errors, ``report_url`` when there is an annotated report). Only the user who
  started it, or an admin, sees it (404 otherwise).
* ``GET /api/v1/imports/<id>/report``: the annotated XLSX report.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from werkzeug.wrappers import Response

from engine.i18n import T
from engine.imports import ImportJob
from engine.web.api.base import api_actor, bp, entity_or_404, request_lang
from engine.web.api.errors import ApiError, json_response
from engine.web.api.routes import METHODS, V1, _dispatch
from engine.web.importing import options_from, report_response, start_import, visible_job

MSG_NO_JOB = T("没有这个导入任务", "no such import job")
MSG_NO_REPORT = T("此导入没有报告", "this import has no report")


def job_json(job: ImportJob, lang: str) -> dict[str, Any]:
    out = job.as_json(lang)
    del out["has_report"]
    out["status_url"] = url_for("api.import_job", job_id=job.id)
    out["report_url"] = (
        url_for("api.import_report", job_id=job.id) if job.report_path and job.finished else None
    )
    return out


@bp.route(f"{V1}/<entity>/import", methods=METHODS)
def import_file(entity: str) -> Response:
    ent = entity_or_404(entity)

    def post() -> Response:
        lang = request_lang()
        options = options_from(request.form.to_dict(), request.files.get("mapping"), lang)
        job = start_import(ent, api_actor(), request.files.get("file"), options)
        body = job_json(job, lang)
        if job.finished:
            return json_response(body, 200)
        return json_response(body, 202, {"Location": body["status_url"]})

    return _dispatch({"POST": post})


def _job(job_id: int) -> ImportJob:
    job = visible_job(api_actor(), job_id)
    if job is None:
        raise ApiError(404, MSG_NO_JOB)
    return job


@bp.route(f"{V1}/imports/<int:job_id>", methods=METHODS)
def import_job(job_id: int) -> Response:
    def get() -> Response:
        return json_response(job_json(_job(job_id), request_lang()))

    return _dispatch({"GET": get})


@bp.route(f"{V1}/imports/<int:job_id>/report", methods=METHODS)
def import_report(job_id: int) -> Response:
    def get() -> Response:
        job = _job(job_id)
        response = report_response(job) if job.finished else None
        if response is None:
            raise ApiError(404, MSG_NO_REPORT)
        return response

    return _dispatch({"GET": get})
