"""Every YAML example of docs/testing.md runs, and passes, against the CRM template."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from engine.testing import collect, run_suite

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example{i + 1}" for i in range(len(BLOCKS))])
def test_doc_example_passes(block: str, tmp_path: Path) -> None:
    folder = tmp_path / "crm"
    shutil.copytree(ROOT / "blueprints" / "crm", folder)
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / "doc.yaml").write_text(block, encoding="utf-8")
    suite = collect(folder)
    assert suite.ok, [p.message.en for p in suite.problems]
    names = {c.name for c in suite.cases if c.location.file.endswith("doc.yaml")}
    assert names
    outcomes = [o for o in run_suite(suite) if o.case.name in names]
    bad = [(o.case.name, o.mismatches, o.problems) for o in outcomes if o.status != "passed"]
    assert not bad
