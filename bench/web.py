"""Web page latency under gunicorn: the generated Formflow pages vs hand-written Flask views.

What is measured (all on 127.0.0.1, both apps under gunicorn with 2 sync workers,
the same SQLite file, the same connection setup from ``engine.storage.database``):

* list   ``GET /e/opportunity``: the first page of 50 rows, newest first.
* detail ``GET /e/opportunity/<id>``: one record (ids spread over the whole table).
* submit ``POST /e/opportunity/new``: one new record from a form (CSRF token checked),
  answered with a redirect to the new record (not followed).

The engine is started the way users start it (``formflow serve PATH --db URL
--workers 2``) and signed in for real (``GET /signin`` for the CSRF token, then the
credentials). The baseline (``baseline_app`` below) is a minimal hand-written Flask
app doing the same kind of work: a session-cookie auth check that loads the user
row, flask-wtf CSRF, the same ORDER BY / LIMIT 51, one JOIN for the customer name,
a small cached Jinja template rendering an HTML table, and one INSERT per submit.

Load: a bounded closed loop. ``--clients`` client processes (default 2, one per
server worker: the machine this was written on has 2 cores, and more clients only
add queueing) each send one request at a time over a fresh connection (gunicorn's
sync workers close it) for ``--seconds`` per endpoint and app, after a short
warm-up. Per-request latency is connect-to-last-byte. Seeding (SQLite executemany
in one transaction) is outside the timing.

Target (the issue): engine median <= 2x the baseline median for each endpoint, and
the list page must not slow with table size (10k vs 1M rows). Each figure is also
printed as a ``RESULT name|figure|baseline|ratio|target`` line for ``bench/run``.

Usage:
  python bench/web.py                 # 10k and 1M rows, 10 s per endpoint and app
  python bench/web.py --quick         # smoke: 1k and 20k rows, 2 s each
  python bench/web.py --profile       # also cProfile one request of each page (test client)
  python bench/web.py --keep DIR      # keep the seeded databases in DIR (reused next time)
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import multiprocessing
import os
import pstats
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
WORKERS = 2
PASSWORD = "correct-horse-9"
USER = "admin"
SECRET = "bench-web-secret-not-for-production"
PAGE = 50
CUSTOMERS = 500

BLUEPRINT = """
formflow: 1
id: webbench
title: Web bench
default_locale: en
currency: CNY
entities:
  customer:
    label: Customer
    title_field: name
    fields:
      name: {type: text, label: Name, required: true, unique: true}
  opportunity:
    label: Opportunity
    title_field: name
    fields:
      name: {type: text, label: Name, required: true, max_length: 200}
      customer: {type: ref, label: Customer, to: customer, required: true}
      stage:
        type: choice
        label: Stage
        required: true
        default: lead
        index: true
        options:
          - {value: lead, label: Prospecting}
          - {value: needs, label: Needs analysis}
          - {value: proposal, label: Proposal}
          - {value: contract, label: Contract}
          - {value: won, label: Won}
          - {value: lost, label: Lost}
      amount: {type: money, label: Amount, required: true, min: 0}
      close_date: {type: date, label: Close date}
      probability:
        type: percent
        label: Probability
        precision: 0
        formula: >-
          CHOOSE_BY(stage, {'lead': 10, 'needs': 30, 'proposal': 60,
          'contract': 90, 'won': 100, 'lost': 0})
      weighted:
        type: formula
        label: Weighted
        result: money
        formula: "IF(stage == 'lost', 0, amount * probability / 100)"
      is_key: {type: boolean, label: Key deal, default: false}
      source: {type: text, label: Source}
"""

STAGES = {
    "lead": "Prospecting",
    "needs": "Needs analysis",
    "proposal": "Proposal",
    "contract": "Contract",
    "won": "Won",
    "lost": "Lost",
}
PROB = {"lead": 10, "needs": 30, "proposal": 60, "contract": 90, "won": 100, "lost": 0}
SOURCES = ["web", "referral", "expo"]


# -- seeding ------------------------------------------------------------------------------


def seed(folder: Path, n: int) -> tuple[Path, str]:
    """A blueprint file and an initialised SQLite file with ``n`` opportunities."""
    from engine.loader import load
    from engine.records import SYSTEM, RecordService
    from engine.storage.database import create_engine
    from engine.storage.migrate import initialise
    from engine.storage.schema import build_schema
    from engine.users import UserService

    folder.mkdir(parents=True, exist_ok=True)
    bp_file = folder / "blueprint.yaml"
    bp_file.write_text(BLUEPRINT, encoding="utf-8")
    db = folder / f"opps_{n}.db"
    url = f"sqlite:///{db}"
    done = folder / f"opps_{n}.ok"
    if db.exists() and done.exists() and done.read_text() == BLUEPRINT:
        return bp_file, url
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), done):
        p.unlink(missing_ok=True)

    bp = load(bp_file)
    schema = build_schema(bp)
    engine = create_engine(url)
    initialise(engine, bp, schema)
    UserService(bp, schema, engine).add(USER, roles=["admin"], password=PASSWORD)
    RecordService(bp, schema, engine).create_many(
        "customer", [{"name": f"Customer {i:04d} Ltd"} for i in range(CUSTOMERS)], actor=SYSTEM
    )
    table = schema.entity("opportunity").table
    engine.dispose()

    now = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).replace(tzinfo=None).isoformat(sep=" ")

    def rows() -> Iterator[tuple[Any, ...]]:
        rnd = random.Random(7)
        start = date(2026, 1, 1)
        for i in range(n):
            stage = rnd.choice(list(STAGES))
            amount = Decimal(rnd.randint(1_000, 5_000_000)) / 100
            prob = PROB[stage]
            weighted = (
                Decimal(0) if stage == "lost" else (amount * prob / 100).quantize(Decimal("0.01"))
            )
            yield (
                1,
                None,
                now,
                None,
                now,
                None,
                f"Deal {i}",
                rnd.randint(1, CUSTOMERS),
                stage,
                str(amount),
                str(start + timedelta(days=rnd.randint(0, 700))),
                str(prob),
                str(weighted),
                rnd.random() < 0.2,
                rnd.choice(SOURCES),
            )

    cols = [
        "version",
        "owner",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "name",
        "customer",
        "stage",
        "amount",
        "close_date",
        "probability",
        "weighted",
        "is_key",
        "source",
    ]
    assert set(cols) | {"id"} == set(table.c.keys()), sorted(table.c.keys())
    sql = (
        f'INSERT INTO "{table.name}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
        f"VALUES ({', '.join('?' for _ in cols)})"
    )
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        conn.executemany(sql, rows())
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    print(f"  seeded {n:,} opportunities in {time.perf_counter() - t0:.1f} s ({db})", flush=True)
    done.write_text(BLUEPRINT)
    return bp_file, url


# -- the hand-written baseline ---------------------------------------------------------------

BASE_TEMPLATES = {
    "layout.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}{% endblock %}</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body>
<header><a href="/">Home</a> <span>{{ user }}</span>
<form method="post" action="/signout"><input type="hidden" name="csrf_token"
 value="{{ csrf_token() }}"><button>Sign out</button></form></header>
{% with messages = get_flashed_messages() %}{% for m in messages %}<p class="flash">{{ m }}</p>
{% endfor %}{% endwith %}
<main>{% block main %}{% endblock %}</main>
</body></html>""",
    "list.html": """{% extends "layout.html" %}{% block title %}Opportunities{% endblock %}
{% block main %}<h1>Opportunities</h1><a href="/e/opportunity/new">New</a>
<table><thead><tr><th>Name</th><th>Customer</th><th>Stage</th><th>Amount</th>
<th>Close date</th><th>Probability</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="/e/opportunity/{{ r.id }}">{{ r.name }}</a></td>
<td><a href="/e/customer/{{ r.customer_id }}">{{ r.customer }}</a></td><td>{{ r.stage }}</td>
<td class="num">{{ r.amount }}</td><td>{{ r.close_date }}</td>
<td class="num">{{ r.probability }}</td></tr>
{% endfor %}</tbody></table>
{% if next_url %}<a href="{{ next_url }}">Next</a>{% endif %}{% endblock %}""",
    "detail.html": """{% extends "layout.html" %}{% block title %}{{ r.name }}{% endblock %}
{% block main %}<h1>{{ r.name }}</h1><dl>
{% for label, value in items %}<dt>{{ label }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl><p>v{{ r.version }} · created {{ r.created_at }} · updated {{ r.updated_at }}</p>
<a href="/e/opportunity">Back</a>{% endblock %}""",
    "signin.html": """<form method="post"><input type="hidden" name="csrf_token"
 value="{{ csrf_token() }}"><input name="name"><button>Sign in</button></form>""",
    "form.html": """{% extends "layout.html" %}{% block title %}New opportunity{% endblock %}
{% block main %}<form method="post">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
{% for name in fields %}<label>{{ name }} <input name="{{ name }}"></label>{% endfor %}
<button>Save</button></form>{% endblock %}""",
}


def _money(v: Any) -> str:
    return "" if v is None else f"¥{Decimal(str(v)):,.2f}"


def baseline_app(db_url: str) -> Any:
    """The hand-written Flask app: same queries, a small template, no framework on top."""
    import sqlalchemy as sa
    from flask import (
        Flask,
        abort,
        flash,
        redirect,
        render_template,
        request,
        session,
    )
    from flask_wtf.csrf import CSRFProtect
    from jinja2 import DictLoader

    from engine.storage.database import create_engine, writer

    app = Flask("baseline")
    app.config.update(SECRET_KEY=SECRET, WTF_CSRF_TIME_LIMIT=None)
    app.jinja_loader = DictLoader(BASE_TEMPLATES)
    CSRFProtect(app)
    engine = create_engine(db_url)  # the engine's SQLite setup (WAL, BEGIN IMMEDIATE writes)
    write = writer(engine)

    user_sql = sa.text("SELECT name, roles, active FROM ff_users WHERE name = :name")
    list_sql = sa.text(
        "SELECT o.id, o.name, o.customer, c.name AS customer_name, o.stage, o.amount, "
        "o.close_date, o.probability FROM e_opportunity o "
        "LEFT JOIN e_customer c ON c.id = o.customer ORDER BY o.id DESC LIMIT :limit"
    )
    detail_sql = sa.text(
        "SELECT o.*, c.name AS customer_name FROM e_opportunity o "
        "LEFT JOIN e_customer c ON c.id = o.customer WHERE o.id = :id"
    )
    insert_sql = sa.text(
        "INSERT INTO e_opportunity (version, owner, created_at, created_by, updated_at, "
        "updated_by, name, customer, stage, amount, close_date, probability, weighted, "
        "is_key, source) VALUES (1, :user, :now, :user, :now, :user, :name, :customer, "
        ":stage, :amount, :close_date, :probability, :weighted, :is_key, :source)"
    )

    def signed_in() -> str | None:
        name = session.get("user")
        if not name:
            return None
        with engine.connect() as conn:
            row = conn.execute(user_sql, {"name": name}).first()
        return row.name if row is not None and row.active else None

    @app.route("/signin", methods=["GET", "POST"])
    def signin() -> Any:
        if request.method == "POST":
            session.clear()
            session["user"] = request.form.get("name", "")
            return redirect("/e/opportunity")
        return render_template("signin.html")

    @app.get("/e/opportunity")
    def index() -> Any:
        user = signed_in()
        if user is None:
            return redirect("/signin")
        with engine.connect() as conn:
            found = conn.execute(list_sql, {"limit": PAGE + 1}).all()
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "customer_id": r.customer,
                "customer": r.customer_name,
                "stage": STAGES.get(r.stage, r.stage),
                "amount": _money(r.amount),
                "close_date": r.close_date or "",
                "probability": "" if r.probability is None else f"{r.probability:.0f}%",
            }
            for r in found[:PAGE]
        ]
        next_url = f"/e/opportunity?after={rows[-1]['id']}" if len(found) > PAGE else None
        return render_template("list.html", rows=rows, next_url=next_url, user=user)

    @app.get("/e/opportunity/<int:record_id>")
    def detail(record_id: int) -> Any:
        user = signed_in()
        if user is None:
            return redirect("/signin")
        with engine.connect() as conn:
            r = conn.execute(detail_sql, {"id": record_id}).first()
        if r is None:
            abort(404)
        items = [
            ("Name", r.name),
            ("Customer", r.customer_name),
            ("Stage", STAGES.get(r.stage, r.stage)),
            ("Amount", _money(r.amount)),
            ("Close date", r.close_date or ""),
            ("Probability", "" if r.probability is None else f"{r.probability:.0f}%"),
            ("Weighted", _money(r.weighted)),
            ("Key deal", "Yes" if r.is_key else "No"),
            ("Source", r.source or ""),
            ("Owner", r.owner or ""),
        ]
        return render_template("detail.html", r=r, items=items, user=user)

    @app.route("/e/opportunity/new", methods=["GET", "POST"])
    def new() -> Any:
        user = signed_in()
        if user is None:
            return redirect("/signin")
        if request.method == "GET":
            fields = ["name", "customer", "stage", "amount", "close_date", "is_key", "source"]
            return render_template("form.html", fields=fields, user=user)
        f = request.form
        stage = f.get("stage", "lead")
        try:
            amount = Decimal(f["amount"])
            customer = int(f["customer"])
            close = date.fromisoformat(f["close_date"]) if f.get("close_date") else None
        except (KeyError, ValueError, ArithmeticError):
            abort(422)
        if not f.get("name") or stage not in PROB or amount < 0:
            abort(422)
        prob = PROB[stage]
        weighted = (
            Decimal(0) if stage == "lost" else (amount * prob / 100).quantize(Decimal("0.01"))
        )
        now = datetime.now(UTC).replace(tzinfo=None)
        with write.begin() as conn:
            new_id = conn.execute(
                insert_sql,
                {
                    "user": user,
                    "now": now,
                    "name": f["name"],
                    "customer": customer,
                    "stage": stage,
                    "amount": str(amount),
                    "close_date": close,
                    "probability": prob,
                    "weighted": str(weighted),
                    "is_key": f.get("is_key") == "true",
                    "source": f.get("source") or None,
                },
            ).lastrowid
        flash("Opportunity created")
        return redirect(f"/e/opportunity/{new_id}")

    return app


def serve_baseline(db_url: str, port: int) -> None:
    """Run the baseline under gunicorn, configured like ``formflow serve``."""
    from gunicorn.app.base import BaseApplication

    app = baseline_app(db_url)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{HOST}:{port}")
            self.cfg.set("workers", WORKERS)
            self.cfg.set("accesslog", "-")

        def load(self) -> Any:
            return app

    _Server().run()


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of its workers
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session only
                self.proc.wait(timeout=5)


def start_server(name: str, cmd: list[str], port: int, log: Path) -> Server:
    env = {**os.environ, "FORMFLOW_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,  # the access log, written by both apps
            stderr=err,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
    server = Server(name, port, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            status, _, _ = http_call(port, "GET", "/signin")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")


# -- a small HTTP client --------------------------------------------------------------------


def http_call(
    port: int, method: str, path: str, body: dict[str, str] | None = None, cookie: str = ""
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    data = None
    if body is not None:
        data = urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    cookies = {}
    for value in resp.headers.get_all("Set-Cookie") or []:
        jar = SimpleCookie()
        jar.load(value)
        cookies.update({k: m.value for k, m in jar.items()})
    conn.close()
    return resp.status, cookies, text


def _merge(cookie: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    return {**cookie, **new}


def _cookie_header(cookie: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookie.items())


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token"\s+value="([^"]+)"', html)
    if not m:
        raise RuntimeError("no CSRF token on the page")
    return m.group(1)


def sign_in_engine(port: int) -> tuple[str, str]:
    """(Cookie header, CSRF token) of a real signed-in engine session."""
    status, jar, html = http_call(port, "GET", "/signin")
    assert status == 200, status
    token = _token(html)
    status, new, html = http_call(
        port,
        "POST",
        "/signin",
        {"name": USER, "password": PASSWORD, "csrf_token": token},
        _cookie_header(jar),
    )
    assert status == 302, (status, html[:500])
    jar = _merge(jar, new)
    status, new, html = http_call(port, "GET", "/e/opportunity/new", cookie=_cookie_header(jar))
    assert status == 200, status
    jar = _merge(jar, new)
    return _cookie_header(jar), _token(html)


def sign_in_baseline(port: int) -> tuple[str, str]:
    status, jar, html = http_call(port, "GET", "/signin")
    assert status == 200, status
    status, new, _ = http_call(
        port, "POST", "/signin", {"name": USER, "csrf_token": _token(html)}, _cookie_header(jar)
    )
    assert status == 302, status
    jar = _merge(jar, new)
    status, new, html = http_call(port, "GET", "/e/opportunity/new", cookie=_cookie_header(jar))
    assert status == 200, status
    jar = _merge(jar, new)
    return _cookie_header(jar), _token(html)


# -- load ------------------------------------------------------------------------------------


def requests_for(
    endpoint: str, port: int, cookie: str, token: str, n_rows: int, count: int = 400
) -> list[bytes]:
    """Raw HTTP/1.1 requests for one endpoint (the clients cycle through them)."""
    rnd = random.Random(11)
    head = f"Host: {HOST}:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n"
    out = []
    for i in range(count):
        if endpoint == "list":
            out.append(f"GET /e/opportunity HTTP/1.1\r\n{head}\r\n".encode())
        elif endpoint == "detail":
            rid = rnd.randint(1, n_rows)
            out.append(f"GET /e/opportunity/{rid} HTTP/1.1\r\n{head}\r\n".encode())
        else:
            stage = rnd.choice(list(STAGES))
            form = {
                "csrf_token": token,
                "name": f"Web deal {i}",
                "customer": str(rnd.randint(1, CUSTOMERS)),
                "stage": stage,
                "amount": f"{rnd.randint(1_000, 5_000_000) / 100:.2f}",
                "close_date": str(date(2026, 3, 1) + timedelta(days=rnd.randint(0, 300))),
                "is_key": "false",
                "source": rnd.choice(SOURCES),
            }
            body = urlencode(form).encode()
            out.append(
                (
                    f"POST /e/opportunity/new HTTP/1.1\r\n{head}"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
    return out


def _client(args: tuple[int, list[bytes], float, float, int]) -> tuple[list[float], Counter[int]]:
    """One closed-loop client: one request at a time until the deadline (bounded)."""
    port, reqs, start_at, seconds, offset = args
    lat: list[float] = []
    statuses: Counter[int] = Counter()
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = time.perf_counter() + seconds
    i = offset
    size = 0
    buf = bytearray()
    while time.perf_counter() < deadline:
        req = reqs[i % len(reqs)]
        i += 1
        t0 = time.perf_counter()
        s = socket.create_connection((HOST, port), timeout=30)
        try:
            s.sendall(req)
            buf.clear()
            while chunk := s.recv(65536):
                buf += chunk
        finally:
            s.close()
        lat.append(time.perf_counter() - t0)
        status = int(buf[9:12]) if len(buf) >= 12 else 0
        if status == 302 and b"/signin" in buf[: buf.find(b"\r\n\r\n")]:
            status = 401  # sent to the sign-in page: the session was not accepted
        statuses[status] += 1
        size += len(buf)
    statuses[-1] = size  # total bytes received, popped by load()
    return lat, statuses


@dataclass
class Result:
    latencies: list[float]
    statuses: Counter[int]
    seconds: float
    avg_bytes: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


def load(port: int, reqs: list[bytes], clients: int, seconds: float) -> Result:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(clients) as pool:
        start_at = time.time() + 0.3
        parts = pool.map(_client, [(port, reqs, start_at, seconds, k * 97) for k in range(clients)])
    lat = [x for p, _ in parts for x in p]
    statuses: Counter[int] = Counter()
    for _, s in parts:
        statuses.update(s)
    size = statuses.pop(-1, 0)
    return Result(lat, statuses, seconds, size / max(1, len(lat)))


EXPECTED = {"list": 200, "detail": 200, "submit": 302}


@dataclass
class Target:
    """One app over one table, signed in."""

    app: str  # engine | baseline
    rows: int
    server: Server
    cookie: str
    token: str

    @property
    def label(self) -> str:
        return f"{self.app} @{self.rows:,}"


def measure(
    targets: list[Target],
    endpoint: str,
    clients: int,
    seconds: float,
    warmup: float,
    rounds: int,
) -> dict[tuple[str, int], Result]:
    """Load each target with ``endpoint`` for ``seconds`` in all.

    The time is cut into ``rounds`` slices taken in turn by every target, so that
    any other load on the machine falls on all of them alike.
    """
    reqs = {
        t.label: requests_for(endpoint, t.server.port, t.cookie, t.token, t.rows) for t in targets
    }
    for t in targets:
        load(t.server.port, reqs[t.label], clients, warmup)
    parts: dict[str, list[Result]] = {t.label: [] for t in targets}
    for _ in range(rounds):
        for t in targets:
            parts[t.label].append(load(t.server.port, reqs[t.label], clients, seconds / rounds))
    out = {}
    for t in targets:
        got = parts[t.label]
        statuses: Counter[int] = Counter()
        for r in got:
            statuses.update(r.statuses)
        n = sum(len(r.latencies) for r in got)
        result = Result(
            [x for r in got for x in r.latencies],
            statuses,
            seconds,
            sum(r.avg_bytes * len(r.latencies) for r in got) / max(1, n),
        )
        bad = {k: v for k, v in result.statuses.items() if k != EXPECTED[endpoint]}
        if bad:
            raise RuntimeError(f"{t.label} {endpoint}: unexpected statuses {bad}")
        slices = " ".join(f"{r.median:.1f}" for r in got)
        print(
            f"  {endpoint:6} {t.label:<20} n={len(result.latencies):6,}  "
            f"median {result.median:7.2f} ms  p95 {result.p95:7.2f} ms  {result.rps:5.0f} req/s  "
            f"{result.avg_bytes / 1024:5.1f} KiB  (slice medians {slices})",
            flush=True,
        )
        out[(t.app, t.rows)] = result
    return out


# -- profiling (in process, Flask test client) ---------------------------------------------


def profile(bp_file: Path, url: str, n_rows: int, repeat: int = 200, top: int = 25) -> None:
    """cProfile ``repeat`` requests of each engine page through the Flask test client."""
    from engine.web import create_app

    app = create_app(bp_file, url, {"SECRET_KEY": SECRET})
    client = app.test_client()
    html = client.get("/signin").get_data(as_text=True)
    r = client.post(
        "/signin", data={"name": USER, "password": PASSWORD, "csrf_token": _token(html)}
    )
    assert r.status_code == 302, r.status_code
    token = _token(client.get("/e/opportunity/new").get_data(as_text=True))
    rnd = random.Random(5)

    def one(endpoint: str) -> int:
        if endpoint == "list":
            return client.get("/e/opportunity").status_code
        if endpoint == "detail":
            return client.get(f"/e/opportunity/{rnd.randint(1, n_rows)}").status_code
        form = {
            "csrf_token": token,
            "name": "Profiled deal",
            "customer": str(rnd.randint(1, CUSTOMERS)),
            "stage": "proposal",
            "amount": "1234.50",
            "close_date": "2026-06-01",
            "is_key": "false",
            "source": "web",
        }
        return client.post("/e/opportunity/new", data=form).status_code

    def forget_flashes() -> None:
        # The test client keeps the cookie a submit sets; a browser would show the
        # flash on the next page. Unread, the flashes would pile up in the session.
        with client.session_transaction() as sess:
            sess.pop("_flashes", None)

    for endpoint in ("list", "detail", "submit"):
        for _ in range(20):
            assert one(endpoint) == EXPECTED[endpoint]
            forget_flashes()
        prof = cProfile.Profile()
        spent = 0.0
        for _ in range(repeat):
            t0 = time.perf_counter()
            prof.enable()
            one(endpoint)
            prof.disable()
            spent += time.perf_counter() - t0
            forget_flashes()
        per = spent / repeat * 1000
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        print(f"\n== profile {endpoint}: {per:.2f} ms/request in process (cProfile on) ==")
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        text = out.getvalue().replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
        print(text)
    for ext in app.extensions.values():
        eng = getattr(ext, "engine", None)
        if eng is not None:
            eng.dispose()


# -- the run ---------------------------------------------------------------------------------


def _row(label: str, e: Result, b: Result, target: float = 2.0) -> str:
    ratio = e.median / b.median
    met = "yes" if ratio <= target else "NO"
    return (
        f"| {label:<22} | {e.median:7.2f} | {e.p95:7.2f} | {b.median:7.2f} | {b.p95:7.2f} "
        f"| {ratio:5.2f}x | {met:^4} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1k/20k rows, 2 s per run")
    parser.add_argument("--small", type=int, default=None, help="rows of the small table")
    parser.add_argument("--large", type=int, default=None, help="rows of the large table")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per endpoint/app")
    parser.add_argument("--clients", type=int, default=2, help="closed-loop client processes")
    parser.add_argument("--keep", type=Path, default=None, help="keep/reuse databases here")
    parser.add_argument("--profile", action="store_true", help="cProfile each engine page")
    parser.add_argument(
        "--serve-baseline", nargs=2, metavar=("DB_URL", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline[0], int(args.serve_baseline[1]))
        return

    small = args.small or (1_000 if args.quick else 10_000)
    large = args.large or (20_000 if args.quick else 1_000_000)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    warmup = 0.5 if args.quick else 2.0
    clients = max(1, min(args.clients, 8))
    rounds = 1 if args.quick else 5

    folder = args.keep or Path(tempfile.mkdtemp(prefix="formflow-web-bench-"))
    servers: list[Server] = []
    try:
        print(f"seeding in {folder}", flush=True)
        bp_file, url_small = seed(folder / "small", small)
        bp_large, url_large = seed(folder / "large", large)
        formflow = str(Path(sys.executable).parent / "formflow")
        print(
            f"load: {clients} closed-loop clients, {seconds:g} s per endpoint and app "
            f"in {rounds} alternating slices (+{warmup:g} s warm-up), gunicorn {WORKERS} sync "
            f"workers each, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        targets: dict[tuple[str, int], Target] = {}
        for n, bp, url in ((large, bp_large, url_large), (small, bp_file, url_small)):
            pe, pb = free_port(), free_port()
            engine_cmd = [formflow, "serve", str(bp), "--db", url, "--port", str(pe)]
            engine_srv = start_server(
                f"engine@{n}",
                [*engine_cmd, "--workers", str(WORKERS)],
                pe,
                folder / f"engine_{n}.log",
            )
            servers.append(engine_srv)
            base_srv = start_server(
                f"baseline@{n}",
                [sys.executable, __file__, "--serve-baseline", url, str(pb)],
                pb,
                folder / f"baseline_{n}.log",
            )
            servers.append(base_srv)
            targets[("engine", n)] = Target("engine", n, engine_srv, *sign_in_engine(pe))
            targets[("baseline", n)] = Target("baseline", n, base_srv, *sign_in_baseline(pb))
        results: dict[tuple[str, int, str], Result] = {}
        for endpoint in ("list", "detail", "submit"):
            # The list page runs on both table sizes, in turn, so they share the same noise.
            chosen = [t for t in targets.values() if endpoint == "list" or t.rows == large]
            got = measure(chosen, endpoint, clients, seconds, warmup, rounds)
            for (app_name, n), result in got.items():
                results[(app_name, n, endpoint)] = result
        for srv in list(servers):
            srv.stop()
            servers.remove(srv)

        print()
        print(f"Engine vs hand-written Flask, {large:,}-row opportunity table (latency in ms)")
        print("| endpoint               | eng med | eng p95 | base med| base p95| ratio  | met  |")
        print("|------------------------|---------|---------|---------|---------|--------|------|")
        for endpoint, label in (
            ("list", "list (50 rows)"),
            ("detail", "detail"),
            ("submit", "form submit (POST)"),
        ):
            print(
                _row(
                    label,
                    results[("engine", large, endpoint)],
                    results[("baseline", large, endpoint)],
                )
            )
        print()
        es, el = results[("engine", small, "list")], results[("engine", large, "list")]
        bs, bl = results[("baseline", small, "list")], results[("baseline", large, "list")]
        growth = el.median / es.median
        print("List page vs table size (median ms)")
        print("| rows       | engine  | baseline |")
        print(f"| {small:>10,} | {es.median:7.2f} | {bs.median:8.2f} |")
        print(f"| {large:>10,} | {el.median:7.2f} | {bl.median:8.2f} |")
        print(
            f"engine list {large:,} / {small:,} rows = {growth:.2f}x "
            f"({'flat' if growth <= 1.2 else 'SLOWS with table size'}; baseline "
            f"{bl.median / bs.median:.2f}x)"
        )
        # Machine-readable lines for bench/run: name|figure|baseline|ratio|target.
        for endpoint, label in (
            ("list", "list page"),
            ("detail", "detail page"),
            ("submit", "form submit"),
        ):
            e, b = results[("engine", large, endpoint)], results[("baseline", large, endpoint)]
            print(
                f"RESULT {label}, {large:,} rows, median vs hand-written Flask|"
                f"{e.median:.2f} ms|{b.median:.2f} ms|{e.median / b.median:.2f}|<= 2"
            )
        print(
            f"RESULT list page {large:,} vs {small:,} rows (engine median)|{el.median:.2f} ms|"
            f"{es.median:.2f} ms|{growth:.2f}|<= 1.2"
        )
        if args.profile:
            profile(bp_large, url_large, large)
    finally:
        for srv in servers:
            srv.stop()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
