"""Schemathesis against the running service's own OpenAPI schema: every operation, with data
that fits the schema and data that does not. No 5xx, and every response (status, content type,
body) as the schema declares it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from ml_platform_tests.serving.conftest import Server

EXAMPLES = 60  # per operation and mode


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_and_responses_match_the_schema(
    server: Server, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/pipelines/loan_default/predict",
        "/v1/pipelines/loan_default/models",
        "/readyz",
    }
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.url)

        try:
            check()
        except Unsatisfiable:
            # Negative data for an operation without inputs (GET /healthz) does not exist.
            assert mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET"
