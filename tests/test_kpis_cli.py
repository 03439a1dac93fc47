"""``formflow kpi``: the table, JSON, --as, periods and the errors a user can fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.loader import load
from engine.records import SYSTEM
from engine.runtime import build_runtime
from engine.storage.database import create_engine
from engine.storage.migrate import initialise

CRM = Path(__file__).resolve().parent.parent / "blueprints" / "crm"
DEALS = [
    ("r1", "won", "100.00", "2026-01-05"),
    ("r1", "lost", "50.00", "2026-02-05"),
    ("r2", "won", "70.00", "2026-02-15"),
    ("r2", "proposal", "300.00", "2026-03-01"),
    ("m1", "needs", "10.00", "2026-03-31"),
]


@pytest.fixture
def crm(tmp_path: Path, db_url: str) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "crm"
    shutil.copytree(CRM, folder)
    bp = load(folder / "blueprint.yaml")
    engine = create_engine(db_url)
    rt = build_runtime(bp, engine, clock=lambda: datetime(2025, 1, 1, tzinfo=UTC))
    initialise(engine, bp, rt.schema)
    rt.users.add("root", roles=["admin"])
    rt.users.add("m1", roles=["sales_manager"], display_name="Manager One")
    rt.users.add("r1", roles=["sales_rep"], manager="m1", display_name="Rep One")
    rt.users.add("r2", roles=["sales_rep"], manager="m1")
    customer = rt.records.create("customer", {"name": "Acme", "email": "a@x.example"})
    for i, (owner, stage, amount, day) in enumerate(DEALS):
        values = {
            "name": f"Deal {i}",
            "customer": customer.id,
            "stage": stage,
            "amount": Decimal(amount),
            "close_date": day,
            "owner": owner,
            "win_reason": "price" if stage == "won" else None,
        }
        rt.records.create("opportunity", values, actor=SYSTEM, via="system")
    engine.dispose()
    yield folder, db_url


def run(crm: tuple[Path, str], *args: str) -> tuple[int, str, str]:
    folder, url = crm
    result = CliRunner().invoke(main, ["kpi", str(folder), *args, "--db", url])
    return result.exit_code, result.stdout, result.stderr


def test_a_table_with_targets_and_a_total(crm: tuple[Path, str]) -> None:
    code, out, _ = run(crm, "win_rate", "--by", "owner", "--lang", "en")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "Win rate (all)"
    assert lines[1].split() == ["Owner", "Value", "Target", "Attained", "Gap"]
    rows = {line.split()[0]: line.split() for line in lines[3:] if not line.startswith("-")}
    assert rows["r2"][1:] == ["100.0%", "30.0%", "333.3%", "-70.0%"]
    assert rows["Rep"][2:] == ["50.0%", "30.0%", "166.7%", "-20.0%"]  # "Rep One"
    assert rows["Manager"][2] == "—"  # "Manager One" decided nothing: blank, not an error
    assert rows["Total"][1:] == ["66.7%", "30.0%", "222.2%", "-36.7%"]
    # the columns line up under their headers (CJK counts double in zh)
    widths = {len(line) for line in lines[1:] if line.strip() and not line.startswith("-")}
    assert len(widths) == 1


def test_json_as_a_user_with_a_custom_period(crm: tuple[Path, str]) -> None:
    code, out, _ = run(
        crm,
        "pipeline",
        "--by",
        "stage",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--as",
        "r2",
        "--json",
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["period"] == {"name": "custom", "start": "2026-03-01", "end": "2026-03-31"}
    assert data["total"]["value"] == "180"  # r2's proposal: 300 x 60%
    assert [r["keys"]["stage"] for r in data["rows"]] == ["proposal"]
    assert data["rows"][0]["labels"]["stage"] == "方案制定"
    assert data["rows"][0]["drill"]["close_date__between"] == "2026-03-01,2026-03-31"


def test_compare_shows_the_previous_period(crm: tuple[Path, str]) -> None:
    code, out, _ = run(
        crm,
        "pipeline",
        "--period",
        "custom",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--compare",
        "--json",
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["previous_period"] == {
        "name": "before_custom",
        "start": "2026-01-29",
        "end": "2026-02-28",
    }
    assert data["total"]["previous"] == "0" and data["total"]["change"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no KPI 'nope'"),
        (["win_rate", "--period", "custom", "--from", "2026-02-30"], "2026-02-30"),
        (["win_rate", "--period", "fortnight"], "unknown period 'fortnight'"),
        (["win_rate", "--by", "colour"], "cannot be grouped by 'colour'"),
        (["pipeline", "--by", "weighted", "--as", "r1"], "weighted"),
        (["win_rate", "--as", "ghost"], "no active user called 'ghost'"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    crm: tuple[Path, str], args: list[str], message: str
) -> None:
    code, out, err = run(crm, *args, "--lang", "en")
    assert code == 1
    assert message in err
    assert "Traceback" not in err and out == ""


def test_the_database_comes_from_formflow_db_without_db(
    crm: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like every other command: --db, else FORMFLOW_DB (environment or formflow.toml).
    folder, url = crm
    monkeypatch.setenv("FORMFLOW_DB", url)
    with_db = run(crm, "win_rate", "--lang", "en")
    result = CliRunner().invoke(main, ["kpi", str(folder), "win_rate", "--lang", "en"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == with_db[1]
