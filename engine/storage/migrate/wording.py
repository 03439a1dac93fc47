"""Small helpers for counting words in plan messages."""

from __future__ import annotations


def _n(count: int, noun: str) -> str:
    """``1 record`` / ``2 records``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _be(count: int) -> str:
    return "is" if count == 1 else "are"


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _have(count: int) -> str:
    return "has" if count == 1 else "have"


def _match(count: int) -> str:
    return "matches" if count == 1 else "match"


def _appear(count: int) -> str:
    return "appears" if count == 1 else "appear"
