"""The suites' counts, printed and attached to the test report.

``report`` prints one line (seen with ``-s``), records each count as a property
of the test (in JUnit XML) and the whole line as its ``counts`` property, which
``tests/conftest.py`` repeats in the terminal summary so CI output shows the
counts without ``-s``.
"""

from __future__ import annotations

from typing import Any


def report(record_property: Any, name: str, **counts: int) -> str:
    """Print ``name: key value, …`` and attach every count to the running test."""
    line = f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
    print("\n" + line)
    for key, value in counts.items():
        record_property(key, value)
    record_property("counts", line)
    return line
