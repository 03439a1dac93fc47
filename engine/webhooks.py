"""Webhooks: POST a record's change as signed JSON, as ``webhook.deliver`` jobs (an outbox).

An automation's ``webhook:`` action schedules one job in the writer's
transaction (so a rolled-back change calls nobody); a worker delivers it
afterwards, outside any transaction (:meth:`engine.jobs.JobQueue.register_external`),
and retries with backoff until :data:`WEBHOOK_ATTEMPTS` attempts failed.

The request::

    POST <url>
    Content-Type: application/json; charset=utf-8
    User-Agent: Formflow-Webhook/1
    X-Formflow-Event: approved
    X-Formflow-Delivery: 5f0c…            (the same on every retry: deduplicate on it)
    X-Formflow-Signature: sha256=<hex>    (HMAC-SHA256 of the exact body bytes)

    {"automation": "contract_approved", "delivery": "5f0c…", "entity": "contract",
     "event": "approved", "occurred_at": "2024-06-01T09:00:00+00:00",
     "record": {"id": 7, "version": 3, "owner": "li.lei", "contract_no": "HT-0007", …},
     "record_id": 7}

Rules:

* **Signature.** The secret is the environment variable named by the action's
  ``secret_env`` (read by the worker when it delivers; the secret is never
  stored in the blueprint or the database), else the setting
  ``FORMFLOW_WEBHOOK_SECRET``. A ``secret_env`` that is not set fails the
  attempt (and is retried, so setting it fixes the queue). With no secret at
  all the request is sent unsigned and a warning is logged. A receiver checks
  ``hmac.compare_digest(header, "sha256=" + hmac_sha256(secret, body).hex())``
  over the raw body, before parsing it (:func:`verify`).
* **Success** is a 2xx answer within ``FORMFLOW_WEBHOOK_TIMEOUT`` seconds
  (default 10). Anything else — another status, a timeout, a refused address —
  fails the attempt; the queue retries after 30 s, 1 min, 2 min … (at most an
  hour apart) and gives up after :data:`WEBHOOK_ATTEMPTS` attempts, keeping
  the last error on the job.
* **Where** (:mod:`engine.urlguard`): http(s) only; the host is resolved on
  every attempt and each address must be public unless the settings allow it;
  the connection goes to the address that was checked; **redirects are never
  followed** (a 3xx fails the attempt: point the webhook at the final URL).
* Delivery is at least once (see :mod:`engine.jobs`); the body is the record
  as it was when the change committed, not as it is when delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import ssl
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from engine.errors import FormflowError
from engine.i18n import T, Text
from engine.jobs import Job, JobQueue
from engine.records import Record
from engine.settings import WebhookSettings
from engine.storage.database import json_dumps
from engine.urlguard import Resolver, Target, check_url

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_JOB",
    "WebhookError",
    "Webhooks",
    "record_json",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

WEBHOOK_JOB = "webhook.deliver"
WEBHOOK_ATTEMPTS = 8
SIGNATURE_HEADER = "X-Formflow-Signature"
EVENT_HEADER = "X-Formflow-Event"
DELIVERY_HEADER = "X-Formflow-Delivery"
USER_AGENT = "Formflow-Webhook/1"
#: At most this much of an answer is read (and kept in an error message: 200 characters).
MAX_ANSWER = 64 * 1024


class WebhookError(FormflowError):
    """A delivery attempt failed (the job is retried with backoff)."""

    http_status = 502
    default_message = Text(zh="webhook 调用失败", en="The webhook call failed")


def sign(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Does ``header`` sign ``body`` with ``secret``? (What a receiver does; constant time.)"""
    return bool(header) and hmac.compare_digest(sign(secret, body), str(header))


def record_json(record: Record) -> dict[str, Any]:
    """A record as plain JSON values: decimals as strings, dates ISO, child rows as lists."""
    data: dict[str, Any] = {"id": record.id, "version": record.version, "owner": record.owner}
    data.update(record.values)
    data.update(record.tables)
    plain: dict[str, Any] = json.loads(json_dumps(data))
    return plain


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to the address the guard checked (no second DNS lookup)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to the checked address, with the certificate checked against the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class Webhooks:
    """Schedules and delivers webhook calls (see the module doc).

    ``resolve`` replaces DNS (tests); ``environ`` the process environment the
    ``secret_env`` variables are read from.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        resolve: Resolver | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.resolve = resolve
        self.environ = environ

    # -- scheduling (in the caller's transaction) ------------------------------------

    @staticmethod
    def schedule(
        jobs: JobQueue,
        conn: Connection,
        *,
        url: str,
        secret_env: str | None,
        event: str,
        entity: str,
        record_id: int,
        record: Mapping[str, Any] | None,
        automation: str,
        occurred_at: datetime,
    ) -> int | None:
        """Queue one delivery of ``event`` on the record (sent after ``conn`` commits)."""
        delivery = uuid.uuid4().hex
        body = {
            "automation": automation,
            "delivery": delivery,
            "entity": entity,
            "event": event,
            "occurred_at": occurred_at.isoformat(),
            "record": dict(record) if record is not None else None,
            "record_id": record_id,
        }
        return jobs.schedule(
            conn,
            WEBHOOK_JOB,
            jobs.clock(),
            {"url": url, "secret_env": secret_env, "body": body},
            max_attempts=WEBHOOK_ATTEMPTS,
        )

    def register_jobs(self, queue: JobQueue) -> None:
        """Let ``queue`` run ``webhook.deliver`` jobs (outside transactions)."""
        queue.register_external(WEBHOOK_JOB, self._run_job)

    # -- delivering ----------------------------------------------------------------

    def _secret(self, secret_env: str | None) -> str | None:
        environ = os.environ if self.environ is None else self.environ
        if secret_env:
            secret = environ.get(secret_env)
            if not secret:
                raise WebhookError(
                    T(
                        f"环境变量 {secret_env} 未设置，无法签名",
                        f"the environment variable {secret_env} is not set: cannot sign",
                    )
                )
            return secret
        return self.settings.secret or None

    def check(self, url: str) -> Target:
        """Where ``url`` would be delivered now; :class:`engine.urlguard.UrlRefused` if nowhere."""
        return check_url(
            url,
            allow_hosts=self.settings.allow_hosts,
            allow_private=self.settings.allow_private,
            resolve=self.resolve,
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` to ``url`` once (guarded, no redirects); the status of a 2xx answer.

        Raises :class:`WebhookError` for any other answer or a network failure and
        :class:`engine.urlguard.UrlRefused` for a refused address.
        """
        target = self.check(url)
        timeout = self.settings.timeout
        conn: http.client.HTTPConnection = (
            _PinnedHTTPS(target, timeout)
            if target.scheme == "https"
            else _PinnedHTTP(target, timeout)
        )
        try:
            conn.request("POST", target.path, body=body, headers=dict(headers))
            response = conn.getresponse()
            answer = response.read(MAX_ANSWER)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            raise WebhookError(
                T(
                    f"调用 {url} 失败：{type(exc).__name__}: {exc}",
                    f"calling {url} failed: {type(exc).__name__}: {exc}",
                )
            ) from None
        finally:
            conn.close()
        if 200 <= status < 300:
            return status
        excerpt = answer[:200].decode("utf-8", "replace")
        if 300 <= status < 400:
            raise WebhookError(
                T(
                    f"{url} 返回重定向 {status}（不跟随重定向，请填写最终地址）",
                    f"{url} answered with a redirect {status} (redirects are not followed: "
                    "use the final URL)",
                )
            )
        raise WebhookError(
            T(f"{url} 返回 HTTP {status}：{excerpt}", f"{url} answered HTTP {status}: {excerpt}")
        )

    def _run_job(self, job: Job) -> None:
        url = str(job.payload.get("url") or "")
        body_data = job.payload.get("body") or {}
        body = json.dumps(body_data, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: str(body_data.get("event") or ""),
            DELIVERY_HEADER: str(body_data.get("delivery") or job.id),
        }
        secret = self._secret(job.payload.get("secret_env"))
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        else:
            log.warning(
                "webhook to %s sent unsigned: no secret is configured (job %s)", url, job.id
            )
        status = self.post(url, body, headers)
        log.info("webhook %s delivered to %s: HTTP %s (job %s)", job.kind, url, status, job.id)
