"""schemathesis against ``/api/v1/openapi.json``: no server errors, answers match the schema.

Every operation of the CRM's generated OpenAPI document is called with
examples schemathesis generates from it (bounded, derandomised: the same
examples each run), through the WSGI app with an admin's API token, over a
database holding a few records so ids hit real rows too. Each answer must not
be a server error (Flask's testing mode re-raises a crash, which counts too),
must use a status code the document declares and must match the declared
response schema. All failures are collected and reported together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from test_web_support import CRM, make_app, records

from engine.records import SYSTEM
from engine.web.services import services

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLES = 20  # per operation: the whole document runs in under a minute


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    folder = tmp_path_factory.mktemp("schemathesis")
    app = make_app(
        CRM,
        f"sqlite:///{folder / 'formflow.db'}",
        [("admin", ["admin"]), ("li.lei", ["sales_rep"])],
        FORMFLOW_UPLOAD_DIR=str(folder / "uploads"),
    )
    service = records(app)
    customer = service.create(
        "customer", {"name": "样例客户", "email": "c@example.com", "owner": "li.lei"}, actor=SYSTEM
    )
    service.create("contact", {"name": "联系人", "customer": customer.id}, actor=SYSTEM)
    yield app
    service.engine.dispose()


def _token(app: Flask) -> str:
    with app.app_context():
        token: str = services().users.create_token("admin")
        return token


def _exercise(
    operation: Any, headers: dict[str, str], checks: list[Any], failures: dict[str, str]
) -> int:
    """Call ``operation`` with EXAMPLES generated cases; keep its first failure; the call count."""
    calls = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        try:
            case.call_and_validate(headers=headers, checks=checks)
        except (Exception, BaseExceptionGroup) as exc:  # collected: the first per operation
            failures.setdefault(operation.label, f"{type(exc).__name__}: {str(exc)[:1500]}")

    run()
    return calls


def test_every_operation_answers_without_server_errors_and_as_documented(
    app: Flask, record_property: Any
) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        response_schema_conformance,
        status_code_conformance,
    )

    headers = {"Authorization": f"Bearer {_token(app)}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    failures: dict[str, str] = {}
    operations = calls = 0
    for result in schema.get_all_operations():
        operations += 1
        calls += _exercise(result.ok(), headers, checks, failures)
    line = f"schemathesis: {operations} operations, {calls} calls, {len(failures)} failing"
    print("\n" + line)
    record_property("counts", line)  # repeated in the terminal summary (tests/conftest.py)
    assert operations > 30
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
