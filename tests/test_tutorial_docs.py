"""docs/tutorial.md, followed step by step: every YAML snippet written, every command run.

A YAML snippet whose first line is ``# some/file.yaml`` belongs to that file: its first
snippet writes it, the next ones append. A ``console`` snippet's ``$`` lines are commands
(run by bash with ``formflow`` the engine's CLI); the lines after one must appear in its
output, in order, ``…`` standing for any text. ``formflow serve`` is started on a free
port and must answer before it is stopped.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "tutorial.md"
SNIPPET = re.compile(r"```(yaml|console)\n(.*?)```", re.S)
FILE_MARK = re.compile(r"# ([\w./-]+\.yaml)\n")


def _snippets() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in SNIPPET.finditer(DOC.read_text(encoding="utf-8"))]


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env["XDG_RUNTIME_DIR"] = str(tmp)
    env.pop("FORMFLOW_DB", None)
    env.pop("FORMFLOW_CONFIG", None)
    return env


def _shell(command: str, cwd: Path, env: dict[str, str]) -> str:
    script = (
        f'formflow() {{ "{sys.executable}" -m engine.cli "$@"; }}\nset -o pipefail\n{command}\n'
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


def _matches(expected: str, line: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, line.strip()) is not None


def _assert_output(command: str, expected: list[str], output: str) -> None:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    at = 0
    for want in expected:
        while at < len(lines) and not _matches(want, lines[at]):
            at += 1
        assert at < len(lines), f"{command!r}: {want!r} not found (in order) in:\n{output}"
        at += 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(command: str, expected: list[str], cwd: Path, env: dict[str, str]) -> None:
    port = _free_port()
    args = command.split()[1:]
    args[args.index("--port") + 1] = str(port)
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *args, "--workers", "1", "--no-worker"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=5) as reply:
                    assert reply.status == 200
                    assert "拜访记录" in reply.read().decode()
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)  # polling the server's start
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    shown = [w.replace("8000", str(port)) for w in expected]
    _assert_output(command, shown, log.read_text())


def _run_console(text: str, cwd: Path, env: dict[str, str]) -> int:
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip():
            steps[-1][1].append(line.strip())
    for command, expected in steps:
        if command.startswith("formflow serve"):
            _serve(command, expected, cwd, env)
        else:
            _assert_output(command, expected, _shell(command, cwd, env))
    return len(steps)


def test_the_tutorial_has_every_part() -> None:
    kinds = [kind for kind, _ in _snippets()]
    assert kinds.count("yaml") >= 5 and kinds.count("console") >= 3
    text = "".join(body for kind, body in _snippets() if kind == "yaml")
    blueprint = yaml.safe_load(
        "".join(
            body
            for kind, body in _snippets()
            if kind == "yaml" and body.startswith("# visits/blueprint.yaml")
        )
    )
    assert {"roles", "entities", "flows", "kpis", "dashboards", "tests"} <= set(blueprint)
    visit = blueprint["entities"]["visit"]
    assert visit["rules"] and visit["access"] and visit["list"]
    assert any("formula" in f for f in visit["fields"].values())
    assert "extends:" in text


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    env = _env(tmp_path)
    written: set[str] = set()
    commands = 0
    for kind, body in _snippets():
        if kind == "yaml":
            mark = FILE_MARK.match(body)
            assert mark, f"a YAML snippet of the tutorial names no file:\n{body}"
            target = tmp_path / mark.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a" if mark.group(1) in written else "w", encoding="utf-8") as out:
                out.write(body)
            written.add(mark.group(1))
        else:
            commands += _run_console(body, tmp_path, env)
    assert commands >= 9
    assert (tmp_path / "visits" / "visits.db").exists()
