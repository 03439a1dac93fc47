"""``bandit`` finds nothing in engine/ (skips and their reasons: pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_reports_no_issue_in_the_engine() -> None:
    if shutil.which("bandit") is None and not (Path(sys.executable).parent / "bandit").exists():
        pytest.fail("bandit is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-c", "pyproject.toml", "-r", "engine", "-q", "-f", "txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
