"""Deployment configuration: environment over file, unknown keys refused, every key documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config import (
    CONFIG_ENV,
    KEYS,
    config_file,
    load_config,
    pool_budget,
    pool_options,
    with_environment,
)
from engine.errors import SettingInvalid
from engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"

FILE = """
[database]
url = "postgresql+psycopg://app@db/crm"
pool_size = 3

[server]
workers = 6

[smtp]
host = "smtp.example.com"
from = "CRM <crm@example.com>"

[webhooks]
allow_hosts = ["hooks.example.com", "erp.internal:8443"]
"""


def test_file_values_are_keyed_by_environment_name(tmp_path: Path) -> None:
    path = tmp_path / "formflow.toml"
    path.write_text(FILE, encoding="utf-8")
    config = load_config(path, environ={})
    assert config["FORMFLOW_DB"] == "postgresql+psycopg://app@db/crm"
    assert config["FORMFLOW_WORKERS"] == 6
    assert config["FORMFLOW_WEBHOOK_ALLOW_HOSTS"] == "hooks.example.com,erp.internal:8443"
    settings = Settings.from_config(config, environ={})
    assert settings.mail.configured and settings.mail.host == "smtp.example.com"
    assert settings.webhooks.allow_hosts == ("hooks.example.com", "erp.internal:8443")


def test_the_environment_wins_over_the_file_and_blank_is_unset(tmp_path: Path) -> None:
    path = tmp_path / "formflow.toml"
    path.write_text(FILE, encoding="utf-8")
    config = load_config(
        path, environ={"FORMFLOW_WORKERS": "9", "FORMFLOW_DB": "", "FORMFLOW_PORT": "8100"}
    )
    assert config["FORMFLOW_WORKERS"] == "9"
    assert config["FORMFLOW_DB"] == "postgresql+psycopg://app@db/crm"
    assert config["FORMFLOW_PORT"] == "8100"


def test_which_file_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    assert config_file(None, folder, environ={}) is None
    beside = folder / "formflow.toml"
    beside.write_text("", encoding="utf-8")
    assert config_file(None, folder, environ={}) == beside
    named = tmp_path / "prod.toml"
    named.write_text("", encoding="utf-8")
    assert config_file(None, folder, environ={CONFIG_ENV: str(named)}) == named
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("", encoding="utf-8")
    assert config_file(explicit, folder, environ={CONFIG_ENV: str(named)}) == explicit
    with pytest.raises(SettingInvalid, match="does not exist"):
        config_file(tmp_path / "missing.toml", folder, environ={})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[database]\npool_sise = 3\n", "database.pool_sise"),
        ("workers = 3\n", "workers"),
        ("[server\n", "cannot read"),
    ],
)
def test_unknown_keys_and_bad_files_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "formflow.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingInvalid) as caught:
        load_config(path, environ={})
    assert needle in caught.value.message("en")


def test_pool_options_and_budget() -> None:
    assert pool_options({}) == {
        "pool_size": 5,
        "max_overflow": 5,
        "pool_timeout": 30,
        "pool_recycle": 1800,
    }
    options = pool_options({"FORMFLOW_DB_POOL_SIZE": "2", "FORMFLOW_DB_MAX_OVERFLOW": 0})
    assert (options["pool_size"], options["max_overflow"]) == (2, 0)
    assert pool_budget(8, 2, 3) == 40
    for bad in ("0", "-1", "many"):
        with pytest.raises(SettingInvalid, match="FORMFLOW_DB_POOL_SIZE"):
            pool_options({"FORMFLOW_DB_POOL_SIZE": bad})


def test_explicit_config_wins_over_the_environment() -> None:
    merged = with_environment(
        {"FORMFLOW_UPLOAD_MAX_MB": 3},
        environ={"FORMFLOW_UPLOAD_MAX_MB": "9", "FORMFLOW_SMTP_HOST": "mail", "OTHER": "x"},
    )
    assert merged == {"FORMFLOW_UPLOAD_MAX_MB": 3, "FORMFLOW_SMTP_HOST": "mail"}


def _doc_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(FORMFLOW_[A-Z_]+)` \| (.+?) \| (.+?) \| (.+?) \|$", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_key_is_documented_with_its_file_key_default_and_meaning() -> None:
    rows = _doc_rows()
    missing = [k.env for k in KEYS if k.env not in rows]
    assert not missing, f"docs/configuration.md does not document {missing}"
    for key in KEYS:
        row = rows[key.env]
        assert f"`{key.file}`" in row, f"{key.env}: the file key {key.file} is not documented"
        assert key.default in row and key.meaning in row, f"{key.env}: stale default or meaning"
    unknown = set(rows) - {k.env for k in KEYS} - {CONFIG_ENV}
    assert not unknown, f"docs/configuration.md documents keys the engine does not read: {unknown}"


def test_the_engine_reads_no_formflow_setting_outside_the_list() -> None:
    known = {k.env for k in KEYS} | {CONFIG_ENV, "FORMFLOW_DEFAULT_LANG"}  # internal app key
    found: dict[str, str] = {}
    for path in (ROOT / "engine").rglob("*.py"):
        for name in re.findall(r"[\"'](FORMFLOW_[A-Z_]+)[\"']", path.read_text(encoding="utf-8")):
            found.setdefault(name, str(path.relative_to(ROOT)))
    undocumented = {n: p for n, p in found.items() if n not in known}
    assert not undocumented, f"settings read but not in engine.config.KEYS: {undocumented}"
