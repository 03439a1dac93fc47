"""Every starter template in ``blueprints/`` passes ``formflow check`` and its own tests.

Templates are discovered, so a new folder is covered without touching this file;
each blueprint test case is its own pytest case (``crm::赢单概率…``), so a
failure names the template and the case. The cases run on SQLite and on the
session's PostgreSQL database (a throwaway schema per case).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.storage.schema import build_schema
from engine.testing import Case, Suite, collect, run_case
from engine.testing.databases import Databases
from engine.testing.report import details

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints"
TEMPLATES = sorted(p for p in BLUEPRINTS.iterdir() if (p / "blueprint.yaml").is_file())
SUITES: dict[str, Suite] = {p.name: collect(p) for p in TEMPLATES}
CASES: list[tuple[str, Case]] = [(name, c) for name, s in SUITES.items() for c in s.cases]


def test_there_are_templates_and_each_has_tests() -> None:
    assert "crm" in SUITES
    for name, suite in SUITES.items():
        assert suite.cases, f"the template {name} has no blueprint tests"


@pytest.mark.parametrize("template", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_formflow_check_passes(template: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(template), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert ": OK — " in result.output


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[tuple[str, str], Databases]]:
    """One Databases per template and kind: on PostgreSQL one schema for the module."""
    made: dict[tuple[str, str], Databases] = {}
    yield made
    for dbs in made.values():
        dbs.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("template", "case"), CASES, ids=[f"{name}::{case.name}" for name, case in CASES]
)
def test_blueprint_case(
    template: str,
    case: Case,
    database: str,
    databases: dict[tuple[str, str], Databases],
    request: pytest.FixtureRequest,
) -> None:
    suite = SUITES[template]
    assert suite.ok and suite.blueprint is not None
    if (template, database) not in databases:
        url = None if database == "sqlite" else request.getfixturevalue("pg_url")
        databases[(template, database)] = Databases(
            suite.blueprint, build_schema(suite.blueprint), url
        )
    outcome = run_case(suite.blueprint, case, databases[(template, database)])
    assert outcome.status in ("passed", "skipped"), "\n".join(details([outcome], "en"))
