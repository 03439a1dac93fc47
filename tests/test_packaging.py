"""A regular (non-editable) install ships the templates, static files, the UI's gettext
catalogs and the JSON schema.

``pyproject.toml`` maps the top-level ``templates/`` and ``schemas/`` folders into
the package (``engine/_templates``, ``engine/_schemas``); ``engine.resources``
finds them there after ``pip install`` and at the top level in a checkout. The
static files (``engine/web/static``) and the catalogs (``engine/web/translations``,
each language's ``messages.po`` and compiled ``messages.mo``) are package data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_version() -> tuple[int, ...]:
    try:
        import setuptools
    except ImportError:
        return (0,)
    return tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())


#: Files a checkout may hold that are not shipped: bytecode and the ``.pot`` template
#: that ``pybabel extract`` writes (a by-product, not committed).
NOT_SHIPPED = ("*.pyc", "*.pot")
CATALOGS = ROOT / "engine" / "web" / "translations"


def _shipped(path: Path) -> bool:
    return path.is_file() and not any(path.match(pattern) for pattern in NOT_SHIPPED)


def _data_packages(folder: Path, package: str) -> set[str]:
    """``package`` and a dotted name for every sub-folder of ``folder`` holding files."""
    out = set()
    for sub in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if sub.name == "__pycache__" or not any(_shipped(f) for f in sub.iterdir()):
            continue
        rel = sub.relative_to(folder).parts
        out.add(".".join((package, *rel)))
    return out


def test_pyproject_lists_every_package_and_data_folder() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    expected = (
        _data_packages(ROOT / "engine", "engine")
        | _data_packages(ROOT / "templates", "engine._templates")
        | _data_packages(ROOT / "schemas", "engine._schemas")
        | {"engine._blueprints"}  # one data package: its package-data globs every template
    )
    assert set(setuptools["packages"]) == expected
    # Every language's catalog folder is a package (its .po and .mo are package data).
    for po in CATALOGS.glob("*/LC_MESSAGES/messages.po"):
        folder = ".".join(po.parent.relative_to(ROOT).parts)
        assert folder in setuptools["packages"], folder
        assert {"*.po", "*.mo"} <= set(setuptools["package-data"][folder]), folder
    assert setuptools["package-dir"] == {
        "engine._templates": "templates",
        "engine._schemas": "schemas",
        "engine._blueprints": "blueprints",
    }
    # Every blueprint file (templates, their tests/ and demo data) matches a package-data glob.
    patterns = setuptools["package-data"]["engine._blueprints"]
    for file in _blueprint_files():
        assert any(file.match(p.removeprefix("**/")) for p in patterns), file


#: What a starter blueprint folder ships (a local ``crm.db`` from ``serve`` does not).
BLUEPRINT_SUFFIXES = (".yaml", ".yml", ".json", ".md", ".csv")


def _blueprint_files() -> list[Path]:
    return [
        p
        for p in sorted((ROOT / "blueprints").rglob("*"))
        if _shipped(p) and p.suffix in BLUEPRINT_SUFFIXES
    ]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (the build writes build/ and egg-info)."""
    if _setuptools_version() < (70, 1):
        pytest.skip("building the wheel offline needs setuptools>=70.1 (the test extra has it)")
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", *NOT_SHIPPED)
    for name in ("engine", "templates", "schemas", "blueprints"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    out = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        cwd=work,
        capture_output=True,
    )
    (built,) = out.glob("formflow-*.whl")
    return built


def test_the_wheel_holds_templates_static_files_catalogs_and_the_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        "engine/_templates/" + p.relative_to(ROOT / "templates").as_posix()
        for p in (ROOT / "templates").rglob("*.html")
    }
    static = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "engine" / "web" / "static").rglob("*")
        if p.is_file()
    }
    catalogs = {
        p.relative_to(ROOT).as_posix()
        for p in CATALOGS.rglob("*")
        if _shipped(p) and p.suffix in (".po", ".mo")
    }
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "engine").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert "engine/_templates/base.html" in templates
    assert "engine/web/static/vendor/htmx/htmx.min.js" in static
    assert "engine/web/static/vendor/pico/pico.min.css" in static
    assert templates <= names, sorted(templates - names)
    assert static <= names, sorted(static - names)
    assert "engine/web/translations/zh_Hans/LC_MESSAGES/messages.mo" in catalogs
    assert "engine/web/translations/zh_Hans/LC_MESSAGES/messages.po" in catalogs
    assert catalogs <= names, sorted(catalogs - names)
    # Only what is shipped: no .pot by-product, no bytecode.
    assert not [n for n in names if n.endswith((".pot", ".pyc"))]
    assert modules <= names, sorted(modules - names)
    assert "engine/_schemas/blueprint.schema.json" in names
    blueprints = {
        "engine/_blueprints/" + p.relative_to(ROOT / "blueprints").as_posix()
        for p in _blueprint_files()
    }
    assert "engine/_blueprints/crm/blueprint.yaml" in blueprints
    assert blueprints <= names, sorted(blueprints - names)


def test_an_installed_wheel_finds_its_templates_catalogs_and_schema_and_renders_a_page(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    assert not (site / "templates").exists() and not (site / "schemas").exists()
    blueprint = tmp_path / "app" / "blueprint.yaml"
    blueprint.parent.mkdir()
    blueprint.write_text(
        "formflow: 1\nid: tiny\ntitle: Tiny\nentities:\n  thing:\n    label: Thing\n"
        "    fields:\n      name: {type: text, label: Name}\n",
        encoding="utf-8",
    )
    script = """
import sys
import engine, engine.resources as r
from engine.loader import load
from engine.web import create_app
site = sys.argv[1]
assert engine.__file__.startswith(site), engine.__file__
assert str(r.TEMPLATES_DIR) == site + "/engine/_templates", r.TEMPLATES_DIR
assert str(r.SCHEMAS_DIR) == site + "/engine/_schemas", r.SCHEMAS_DIR
assert str(r.BLUEPRINTS_DIR) == site + "/engine/_blueprints", r.BLUEPRINTS_DIR
load(str(r.BLUEPRINTS_DIR / "crm"))  # the packaged starter template loads
assert str(r.TRANSLATIONS_DIR) == site + "/engine/web/translations", r.TRANSLATIONS_DIR
assert (r.TRANSLATIONS_DIR / "zh_Hans" / "LC_MESSAGES" / "messages.mo").is_file()
load(sys.argv[2])  # validates against the packaged JSON schema
app = create_app(sys.argv[2], "sqlite://", {"SECRET_KEY": "k"})
client = app.test_client()
page = client.get("/signin")
assert page.status_code == 200, page.status_code
html = page.get_data(as_text=True)
assert 'name="password"' in html and "/static/vendor/htmx/htmx.min.js" in html, html[:300]
# The Chinese page: its words come from the packaged messages.mo.
zh = client.get("/signin?lang=zh").get_data(as_text=True)
assert 'lang="zh-CN"' in zh and "用户名" in zh and "密码" in zh, zh[:600]
en = client.get("/signin?lang=en").get_data(as_text=True)
assert "User name" in en and "Password" in en, en[:600]
css = client.get("/static/vendor/pico/pico.min.css")
assert css.status_code == 200 and len(css.get_data()) > 1000
print("rendered")
"""
    # The installed copy only: no PYTHONPATH to this checkout, and cwd elsewhere.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", script, str(site), str(blueprint)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("rendered")
