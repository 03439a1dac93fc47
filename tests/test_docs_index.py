"""docs/README.md lists every doc, README.md links to it, and no relative link is broken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
INDEX = DOCS / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_the_index_lists_every_doc() -> None:
    listed = {Path(t.split("#")[0]).name for t in _links(INDEX) if "/" not in t}
    missing = sorted(p.name for p in DOCS.glob("*.md") if p != INDEX and p.name not in listed)
    assert not missing, f"docs/README.md does not list {missing}"


def test_the_readme_links_the_index() -> None:
    assert "docs/README.md" in _links(ROOT / "README.md")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    broken = [t for t in _links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"
